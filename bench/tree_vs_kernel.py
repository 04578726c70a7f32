"""Tree models: exact Tree SHAP against Kernel SHAP on the same rows, in one run.

For RandomForest(100) (probability), XGBoost(100) regressor and HistGradientBoosting (raw margin:
boosted trees are exact only there) it times, on the same rows and the same 100 background rows:

* xai ``kernel_shap.explain`` with default settings and exact, in the same output space;
* xai ``tree_shap.explain`` with the background (interventional: the game Kernel SHAP estimates)
  and without it (path-dependent: the trees' own statistics, a different game);
* ``shap.TreeExplainer`` called directly, to show xai's own overhead around it;
* Tree SHAP alone on more rows (``--tree-rows``), since its fixed cost per call (building the
  explainer) is spread over a chunk of rows in the CLI.

Goal: exact Tree SHAP at least 20x faster than Kernel SHAP at equal accuracy, i.e. Kernel SHAP
enumerating every coalition (--nsamples 2^M), also exact. Kernel SHAP with its defaults stops
sampling at its accuracy target (about 1% of the output's spread) and is shown too. Also reported:
the largest difference between interventional Tree SHAP and Kernel SHAP (the same game).

    python bench/tree_vs_kernel.py            # about a minute
    python bench/tree_vs_kernel.py --quick
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent))  # at the end: bench/lime.py must not shadow lime

import numpy as np  # noqa: E402
from benchlib import (  # noqa: E402
    BenchModel,
    build_model,
    fmt_ratio,
    markdown_table,
    output_range,
    phi_matrix,
    repeated,
    warn_if_busy,
    write_results,
    xai_model_and_batch,
)

GOAL = 20.0
MODELS = {"random_forest": None, "xgboost": None, "hist_gb": "raw"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--rows", type=int, default=10, help="rows explained by both methods (default 10)")
    parser.add_argument("--tree-rows", type=int, default=200, help="rows for Tree SHAP alone (default 200)")
    parser.add_argument("--quick", action="store_true", help="3 rows, 50 tree rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="tree_vs_kernel", help="results file stem under bench/results/")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.tree_rows = min(args.rows, 3), min(args.tree_rows, 50)
    return args


def run_method(module, model: BenchModel, n_rows: int, background, **overrides) -> dict:
    """One xai method's explain on the first ``n_rows`` rows: seconds and (rows, M) attributions."""
    from xai_cli.methods.base import Settings

    loaded, batch = xai_model_and_batch(model, n_rows)
    settings = Settings(output=model.output, **overrides)
    reason = module.applies(loaded, settings)
    if reason is not None:
        raise SystemExit(f"{module.NAME} does not apply to {model.name}: {reason}")
    start = time.perf_counter()
    explanations = module.explain(loaded, batch, background, settings=settings)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "phi": phi_matrix(explanations, list(model.background.columns))}


def run_shap_tree(model: BenchModel, n_rows: int, interventional: bool) -> dict:
    """shap.TreeExplainer on the raw estimator (what xai's tree_shap wraps)."""
    import shap

    rows = model.array(model.rows.iloc[:n_rows]).astype(np.float32).astype(np.float64)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if interventional:
            explainer = shap.TreeExplainer(
                model.estimator, data=model.array(model.background), feature_perturbation="interventional"
            )
        else:
            explainer = shap.TreeExplainer(model.estimator, feature_perturbation="tree_path_dependent")
        explainer.shap_values(rows, check_additivity=False)
    return {"seconds": time.perf_counter() - start}


def bench_model(name: str, args: argparse.Namespace) -> dict:
    """Kernel vs Tree SHAP on one model."""
    from xai_cli.methods import kernel_shap, tree_shap

    model = build_model(name, n_rows=max(args.rows, args.tree_rows), seed=args.seed, output=MODELS[name])
    n = args.rows
    print(f"\n== {model.title} ({model.output}), {n} rows", file=sys.stderr)
    run_method(tree_shap, model, 1, model.background)  # warm-up: imports, first calls
    run_method(kernel_shap, model, 1, model.background)

    kernel = repeated(lambda: run_method(kernel_shap, model, n, model.background))
    print(f"   kernel: {kernel['seconds']:.2f}s", file=sys.stderr)
    every_coalition = 2 ** len(model.background.columns)
    kernel_exact = repeated(lambda: run_method(kernel_shap, model, n, model.background, nsamples=every_coalition))
    print(f"   kernel, exact: {kernel_exact['seconds']:.2f}s", file=sys.stderr)
    interventional = repeated(lambda: run_method(tree_shap, model, n, model.background))
    path_dependent = repeated(lambda: run_method(tree_shap, model, n, None))
    shap_interventional = repeated(lambda: run_shap_tree(model, n, True))
    shap_path = repeated(lambda: run_shap_tree(model, n, False))
    many = args.tree_rows
    interventional_many = repeated(lambda: run_method(tree_shap, model, many, model.background))
    path_many = repeated(lambda: run_method(tree_shap, model, many, None))

    value_range = output_range(model)
    agreement = float(np.max(np.abs(kernel["phi"] - interventional["phi"])) / value_range * 100)
    per_row = lambda result, rows: result["seconds"] / rows * 1000  # noqa: E731
    return {
        "model": name,
        "title": model.title,
        "output": model.output,
        "rows": n,
        "tree_rows": many,
        "ms_per_row": {
            "kernel_shap": per_row(kernel, n),
            "kernel_shap_exact": per_row(kernel_exact, n),
            "tree_interventional": per_row(interventional, n),
            "tree_path_dependent": per_row(path_dependent, n),
            "shap_tree_interventional": per_row(shap_interventional, n),
            "shap_tree_path_dependent": per_row(shap_path, n),
            f"tree_interventional_{many}_rows": per_row(interventional_many, many),
            f"tree_path_dependent_{many}_rows": per_row(path_many, many),
        },
        "speedup_interventional": kernel["seconds"] / interventional["seconds"],
        "speedup_interventional_vs_exact_kernel": kernel_exact["seconds"] / interventional["seconds"],
        "tree_vs_exact_kernel_max_diff_pct": float(
            np.max(np.abs(kernel_exact["phi"] - interventional["phi"])) / value_range * 100
        ),
        "speedup_path_dependent": kernel["seconds"] / path_dependent["seconds"],
        "speedup_interventional_amortized": per_row(kernel, n) / per_row(interventional_many, many),
        "speedup_path_dependent_amortized": per_row(kernel, n) / per_row(path_many, many),
        "xai_overhead_interventional": interventional["seconds"] / shap_interventional["seconds"],
        "xai_overhead_path_dependent": path_dependent["seconds"] / shap_path["seconds"],
        "kernel_vs_tree_interventional_max_diff_pct": agreement,
    }


def report(results: list[dict], args: argparse.Namespace) -> str:
    """Markdown: speedups with the goal verdict, then per-row times and xai's overhead over shap."""
    headers = [
        "model (output)",
        "Kernel SHAP ms/row (default / exact)",
        "Tree interv. ms/row",
        "speedup interv. (vs default / vs exact Kernel)",
        "Tree path-dep. ms/row",
        "speedup path-dep.",
        f"speedup interv. / path-dep. ({args.tree_rows} rows)",
        "goal (>= 20x vs exact Kernel SHAP, interventional)",
        "max |kernel - tree interv.| % range (default / exact)",
    ]
    lines = []
    for r in results:
        t = r["ms_per_row"]
        speedup = r["speedup_interventional_vs_exact_kernel"]
        met = speedup >= GOAL
        lines.append(
            [
                f"{r['title']} ({r['output']})",
                f"{t['kernel_shap']:.1f} / {t['kernel_shap_exact']:.1f}",
                f"{t['tree_interventional']:.2f}",
                f"{fmt_ratio(r['speedup_interventional'])} / {fmt_ratio(speedup)}",
                f"{t['tree_path_dependent']:.3f}",
                fmt_ratio(r["speedup_path_dependent"]),
                f"{fmt_ratio(r['speedup_interventional_amortized'])} / {fmt_ratio(r['speedup_path_dependent_amortized'])}",
                "**met**" if met else f"NOT met ({speedup:.1f}x)",
                f"{r['kernel_vs_tree_interventional_max_diff_pct']:.2g} / {r['tree_vs_exact_kernel_max_diff_pct']:.2g}",
            ]
        )
    overhead = [
        [
            r["title"],
            f"{r['ms_per_row']['shap_tree_interventional']:.2f}",
            fmt_ratio(r["xai_overhead_interventional"]),
            f"{r['ms_per_row']['shap_tree_path_dependent']:.3f}",
            fmt_ratio(r["xai_overhead_path_dependent"]),
        ]
        for r in results
    ]
    return "\n".join(
        [
            "# Tree SHAP vs Kernel SHAP (xai's own methods)",
            "",
            f"One run, the same {args.rows} rows and 100 background rows for both methods. Kernel SHAP runs twice: "
            "with its defaults (sampling until its accuracy target) and exact (every coalition, --nsamples 2^M): "
            "the goal compares exact with exact. "
            "Speedup = Kernel SHAP time / Tree SHAP time on those rows (each includes its fixed per-call cost). "
            f"The amortized column divides Kernel SHAP's per-row time by Tree SHAP's per-row time on {args.tree_rows} "
            "rows (the CLI calls a method once per chunk of 32 rows). Interventional Tree SHAP computes the game "
            "Kernel SHAP estimates; path-dependent is a different game (no background).",
            "",
            markdown_table(headers, lines),
            "",
            "## xai's tree_shap against shap.TreeExplainer called directly (same rows)",
            "",
            markdown_table(
                ["model", "shap interv. ms/row", "xai / shap", "shap path-dep. ms/row", "xai / shap"], overhead
            ),
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
