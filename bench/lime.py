"""LIME: xai's ``lime_tabular.explain`` against lime's own floor, in one run.

lime's floor is what a user gets from the ``lime`` package directly on numeric data:
``LimeTabularExplainer(background)`` built once, then ``explain_instance(row, model_method,
num_features=M, num_samples=5000)`` per row (classification mode with ``predict_proba`` for
classifiers, regression mode with ``predict`` for regressors). For the Pipeline, whose columns are
strings, the floor uses a minimal hand-written wrapper: categories as integer codes for lime, decoded
back into a DataFrame for the model. xai runs ``lime_tabular.explain`` with default settings on the
same rows and background.

Goal: xai's per-row time within 2x of the floor on cheap models. A model counts as cheap when it
takes less than half of the floor's own time (lime's work, not the model, dominates); the model's
predict floor in rows/s is shown too.

    python bench/lime.py            # about a minute
    python bench/lime.py --quick
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

# This file is named lime.py: drop its folder from the front of sys.path so that "import lime"
# finds the package, and append it at the end for benchlib.
_here = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != _here] + [_here]

import numpy as np  # noqa: E402
from benchlib import (  # noqa: E402
    MODEL_NAMES,
    BenchModel,
    PredictTimer,
    build_model,
    fmt_rate,
    fmt_ratio,
    installed_timer,
    markdown_table,
    predict_floor,
    repeated,
    warn_if_busy,
    write_results,
    xai_model_and_batch,
)

GOAL = 2.0
CHEAP_INSIDE_FRACTION = 0.5
NUM_SAMPLES = 5000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=list(MODEL_NAMES))
    parser.add_argument("--rows", type=int, default=10, help="rows to explain per model (default 10)")
    parser.add_argument("--quick", action="store_true", help="3 rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="lime", help="results file stem under bench/results/")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows = min(args.rows, 3)
    return args


class CategoryCodes:
    """The floor's minimal wrapper for string columns: integer codes for lime, strings for the model."""

    def __init__(self, model: BenchModel):
        self.model = model
        self.columns = list(model.background.columns)
        self.categorical = [i for i, c in enumerate(self.columns) if model.dtypes.get(c) is object]
        frames = [model.background, model.rows]
        self.levels = {
            i: np.array(sorted({v for f in frames for v in f[self.columns[i]]}), dtype=object) for i in self.categorical
        }

    def encode(self, frame) -> np.ndarray:
        out = np.empty(frame.shape, dtype=float)
        for i, name in enumerate(self.columns):
            values = frame[name].to_numpy()
            out[:, i] = np.searchsorted(self.levels[i], values) if i in self.levels else values
        return out

    def decode(self, samples: np.ndarray):
        import pandas as pd

        return pd.DataFrame(
            {
                name: (self.levels[i][samples[:, i].astype(int)] if i in self.levels else samples[:, i])
                for i, name in enumerate(self.columns)
            }
        )


def run_floor(model: BenchModel, seed: int) -> dict:
    """lime's LimeTabularExplainer + explain_instance per row, straight on the model."""
    from lime.lime_tabular import LimeTabularExplainer

    timer = PredictTimer(model.raw_predict())
    if model.dtypes:
        codes = CategoryCodes(model)
        background, rows = codes.encode(model.background), codes.encode(model.rows)
        predict = lambda samples: timer(codes.decode(samples))  # noqa: E731
        categorical = {"categorical_features": codes.categorical}
    else:
        background, rows = model.array(model.background), model.array(model.rows)
        predict, categorical = timer, {}
    mode = "classification" if model.is_classifier else "regression"
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = LimeTabularExplainer(background, mode=mode, random_state=seed, **categorical)
        for row in rows:
            explainer.explain_instance(row, predict, num_features=model.n_features, num_samples=NUM_SAMPLES)
    return {"seconds": time.perf_counter() - start, "inside": timer.seconds, "model_rows": timer.rows}


def run_xai(model: BenchModel, seed: int) -> dict:
    """xai's lime_tabular.explain with default settings."""
    from xai_cli.methods import lime_tabular
    from xai_cli.methods.base import Settings

    loaded, batch = xai_model_and_batch(model)
    with installed_timer(model.estimator, model.method) as timer:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lime_tabular.explain(loaded, batch, model.background, settings=Settings(output=model.output, seed=seed))
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "inside": timer.seconds, "model_rows": timer.rows}


def bench_model(name: str, args: argparse.Namespace) -> dict:
    """Floor vs xai for one model."""
    model = build_model(name, n_rows=args.rows, seed=args.seed)
    print(f"\n== {model.title} ({args.rows} rows)", file=sys.stderr)
    tiled = np.tile(model.array(model.background), (NUM_SAMPLES // len(model.background) * 10, 1))
    floor_rate = predict_floor(model.raw_predict(), model.to_model_input(tiled))
    run_floor(model, args.seed)  # warm-up: imports, first calls
    floor = repeated(lambda: run_floor(model, args.seed))
    ours = repeated(lambda: run_xai(model, args.seed))
    print(f"   floor {floor['seconds']:.2f}s, xai {ours['seconds']:.2f}s", file=sys.stderr)
    n = args.rows
    return {
        "model": name,
        "title": model.title,
        "rows": n,
        "predict_floor_rows_per_s": floor_rate,
        "cheap": floor["inside"] / floor["seconds"] < CHEAP_INSIDE_FRACTION,
        "floor": {
            **floor,
            "ms_per_row": floor["seconds"] / n * 1000,
            "inside_fraction": floor["inside"] / floor["seconds"],
        },
        "xai": {**ours, "ms_per_row": ours["seconds"] / n * 1000, "inside_fraction": ours["inside"] / ours["seconds"]},
        "ratio": ours["seconds"] / floor["seconds"],
    }


def report(results: list[dict], args: argparse.Namespace) -> str:
    headers = [
        "model",
        "predict floor rows/s",
        "cheap",
        "lime floor ms/row",
        "floor inside model",
        "xai ms/row",
        "xai inside model",
        "xai / floor",
        "goal (<= 2x on cheap models)",
    ]
    lines = []
    for r in results:
        if r["cheap"]:
            goal = "**met**" if r["ratio"] <= GOAL else f"NOT met ({r['ratio']:.2f}x)"
        else:
            goal = "n/a (model-bound)" + (" (met)" if r["ratio"] <= GOAL else "")
        lines.append(
            [
                r["title"],
                fmt_rate(r["predict_floor_rows_per_s"]),
                "yes" if r["cheap"] else "no",
                f"{r['floor']['ms_per_row']:.1f}",
                f"{r['floor']['inside_fraction']:.0%}",
                f"{r['xai']['ms_per_row']:.1f}",
                f"{r['xai']['inside_fraction']:.0%}",
                fmt_ratio(r["ratio"]),
                goal,
            ]
        )
    return "\n".join(
        [
            "# LIME: xai vs lime's own floor",
            "",
            f"One run, the same {args.rows} rows and 100 background rows, {NUM_SAMPLES} samples per row, all "
            "features in the explanation. Times include building the LimeTabularExplainer once. "
            "'cheap' = the model takes under half of the floor's time.",
            "",
            markdown_table(headers, lines),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warn_if_busy()
    results = [bench_model(name, args) for name in args.models]
    markdown = report(results, args)
    print(markdown)
    write_results(args.out, markdown, {"results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
