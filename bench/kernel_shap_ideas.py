"""What the suggested changes to ``xai_cli/methods/kernel_shap.py`` would buy, measured before they are made.

Each idea is tried at run time on an unchanged file (module functions swapped in memory, restored
after), on the same rows and background as ``kernel_shap.py``, and reported as a ratio against
the current code in the same run, with the error against exact Shapley values so that no idea buys
speed with accuracy:

1. ``sampled_coalitions`` vectorized: the enumerated sizes cached per (M, budget), the sampled part
   drawn in one call (sizes with one ``rng.choice``, members by ranking random keys, complements
   paired) instead of two generator calls and an ``np.zeros`` per coalition.
2. ``synthetic_rows`` for all-numeric frames as one C-ordered float block (preallocate, fill with
   the background, ``np.copyto`` the row's values where the mask is set), wrapped in a DataFrame
   without copying, instead of one ``np.where`` per column and pandas stacking the columns.
3. Smaller model calls (``MAX_ROWS_PER_CALL``) so that a block of synthetic rows is still in cache
   when the model reads it (matters for cheap models).
4. (Pipeline) coalitions assembled after column-wise preprocessing: transform the rows and the
   background once, pick transformed columns by the coalition (which original column owns which
   transformed column is probed as ``linear_shap.column_owners`` does), and call only the final
   estimator. Same outputs, no per-synthetic-row OneHotEncoder.
5. (Logistic regression, probability) no synthetic rows at all: the logit of every (coalition,
   background row) is ``c + w.b + masks @ (w * (x - b))``, so the game values are one matrix product
   and a sigmoid.
6. (RandomForest) the model call split over two threads (scikit-learn's tree prediction releases
   the GIL; the machine has two cores).

    python bench/kernel_shap_ideas.py           # about a minute
    python bench/kernel_shap_ideas.py --quick
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent))  # at the end: bench/lime.py must not shadow lime

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from benchlib import (  # noqa: E402
    BenchModel,
    best_of,
    brute_force_shapley,
    build_model,
    fmt_ratio,
    logistic_reference,
    markdown_table,
    output_range,
    phi_matrix,
    warn_if_busy,
    write_results,
    xai_model_and_batch,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10, help="rows to explain (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="best of N (default 3)")
    parser.add_argument("--quick", action="store_true", help="3 rows, best of 2")
    parser.add_argument("--out", default="kernel_shap_ideas", help="results file stem under bench/results/")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.repeats = min(args.rows, 3), min(args.repeats, 2)
    return args


# --------------------------------------------------------------------------------------------------
# The ideas, as drop-in replacements of kernel_shap's functions


_ENUMERATED: dict[tuple[int, int], tuple] = {}


def vectorized_sampled_coalitions(n_features: int, budget: int, rng: np.random.Generator):
    """Same contract and distribution as ``kernel_shap.sampled_coalitions``, without Python loops per coalition."""
    m = n_features
    key = (m, budget)
    if key not in _ENUMERATED:
        n_sizes, n_paired = math.ceil((m - 1) / 2), math.floor((m - 1) / 2)
        sizes = np.arange(1, n_sizes + 1)
        size_weights = (m - 1) / (sizes * (m - sizes))
        size_weights[:n_paired] *= 2
        size_weights /= size_weights.sum()
        blocks, weights, left, remaining, n_full = [], [], budget, size_weights.copy(), 0
        for index, size in enumerate(sizes):
            paired = index < n_paired
            count = math.comb(m, int(size)) * (2 if paired else 1)
            if left * remaining[index] / count < 1.0 - 1e-8:
                break
            n_full += 1
            left -= count
            if remaining[index] < 1.0:
                remaining /= 1.0 - remaining[index]
            members = np.array(list(itertools.combinations(range(m), int(size))))
            block = np.zeros((len(members), m), dtype=bool)
            np.put_along_axis(block, members, True, axis=1)
            if paired:
                block = np.stack([block, ~block], axis=1).reshape(-1, m)
            blocks.append(block)
            weights.append(np.full(len(block), size_weights[index] / math.comb(m, int(size)) / (2 if paired else 1)))
        enumerated = np.concatenate(blocks) if blocks else np.zeros((0, m), dtype=bool)
        enumerated_weights = np.concatenate(weights) if weights else np.zeros(0)
        _ENUMERATED[key] = (enumerated, enumerated_weights, n_full, left, size_weights, sizes)
    enumerated, enumerated_weights, n_full, left, size_weights, sizes = _ENUMERATED[key]
    if n_full == len(sizes) or left <= 0:
        return enumerated, enumerated_weights, len(enumerated)
    # Every draw adds a coalition and its complement, so sizes are drawn in proportion to their weight.
    draw_weights = size_weights[n_full:] / size_weights[n_full:].sum()
    n_draws = (left + 1) // 2
    drawn_sizes = sizes[n_full + rng.choice(len(draw_weights), size=n_draws, p=draw_weights)]
    ranks = rng.random((n_draws, m)).argsort(axis=1).argsort(axis=1)
    drawn = ranks < drawn_sizes[:, None]
    sampled = np.stack([drawn, ~drawn], axis=1).reshape(-1, m)[:left]
    weight_left = size_weights[n_full:].sum()
    masks = np.concatenate([enumerated, sampled])
    weights = np.concatenate([enumerated_weights, np.full(len(sampled), weight_left / len(sampled))])
    return masks, weights, len(enumerated)


def block_synthetic_rows(original):
    """``synthetic_rows`` building all-numeric frames as one float block; other frames as before."""

    def synthetic_rows(rows: pd.DataFrame, background: pd.DataFrame, masks: np.ndarray) -> pd.DataFrame:
        numeric = all(pd.api.types.is_float_dtype(dtype) for dtype in rows.dtypes) and all(
            pd.api.types.is_float_dtype(dtype) for dtype in background.dtypes
        )
        if not numeric:
            return original(rows, background, masks)
        masks = masks if masks.ndim == 3 else masks[None, :, :]
        own, other = rows.to_numpy(dtype=float), background.to_numpy(dtype=float)
        out = np.empty((len(own), masks.shape[1], len(other), own.shape[1]))
        out[:] = other
        np.copyto(out, np.broadcast_to(own[:, None, None, :], out.shape), where=masks[:, :, None, :])
        return pd.DataFrame(out.reshape(-1, own.shape[1]), columns=rows.columns, copy=False)

    return synthetic_rows


@contextmanager
def patched(**replacements):
    """Swap kernel_shap's module attributes for the block, restore them after."""
    from xai_cli.methods import kernel_shap

    saved = {name: getattr(kernel_shap, name) for name in replacements}
    try:
        for name, value in replacements.items():
            setattr(kernel_shap, name, value)
        yield
    finally:
        for name, value in saved.items():
            setattr(kernel_shap, name, value)


# --------------------------------------------------------------------------------------------------
# Measurements


def explain_once(model: BenchModel) -> tuple[float, np.ndarray]:
    """xai's kernel_shap.explain with default settings: seconds and (rows, M) attributions."""
    from xai_cli.methods import kernel_shap
    from xai_cli.methods.base import Settings

    loaded, batch = xai_model_and_batch(model)
    start = time.perf_counter()
    explanations = kernel_shap.explain(loaded, batch, model.background, settings=Settings(output=model.output))
    return time.perf_counter() - start, phi_matrix(explanations, list(model.background.columns))


def timed_variants(model: BenchModel, variants: dict, repeats: int) -> dict:
    """Best-of-``repeats`` time of every variant, interleaved round by round; attributions of each."""
    best = {name: math.inf for name in variants}
    phis = {}
    explain_once(model)  # warm-up
    for _ in range(repeats):
        for name, replacements in variants.items():
            with patched(**replacements):
                seconds, phi = explain_once(model)
            best[name] = min(best[name], seconds)
            phis[name] = phi
    return {"seconds": best, "phi": phis}


def reference(model: BenchModel) -> np.ndarray:
    """Exact Shapley values of the rows (brute force), or the 20 000-permutation structural reference."""
    background, rows = model.array(model.background), model.array(model.rows)
    if model.n_features <= 12:
        return np.stack([brute_force_shapley(model, x, background) for x in rows])
    return np.stack([logistic_reference(model, x, background, permutations=20000, seed=0)[0] for x in rows])


def end_to_end(model: BenchModel, repeats: int) -> list[list]:
    """Ideas 1-3 through the real explain: time ratio against the current code, and error."""
    from xai_cli.methods import kernel_shap

    fast_rows = block_synthetic_rows(kernel_shap.synthetic_rows)
    variants = {
        "current": {},
        "1 vectorized sampling": {"sampled_coalitions": vectorized_sampled_coalitions},
        "2 block synthetic rows": {"synthetic_rows": fast_rows},
        "1+2": {"sampled_coalitions": vectorized_sampled_coalitions, "synthetic_rows": fast_rows},
    }
    for rows_per_call in (1 << 13, 1 << 15):
        variants[f"1+2+3 calls of {rows_per_call} rows"] = {
            "sampled_coalitions": vectorized_sampled_coalitions,
            "synthetic_rows": fast_rows,
            "MAX_ROWS_PER_CALL": rows_per_call,
        }
    result = timed_variants(model, variants, repeats)
    exact = reference(model)
    value_range = output_range(model)
    current = result["seconds"]["current"]
    lines = []
    for name, seconds in result["seconds"].items():
        error = float(np.max(np.abs(result["phi"][name] - exact)) / value_range * 100)
        lines.append(
            [model.title, name, f"{seconds / len(model.rows) * 1000:.1f}", fmt_ratio(current / seconds), f"{error:.3g}"]
        )
    return lines


def pipeline_transformed_space(model: BenchModel, repeats: int) -> dict:
    """Idea 4: coalition values of every row through the Pipeline vs after its column-wise preprocessing."""
    from xai_cli.methods import kernel_shap
    from xai_cli.methods.linear_shap import column_owners

    loaded, batch = xai_model_and_batch(model)
    output = loaded.output(model.output)
    masks = kernel_shap.all_coalitions(model.n_features)
    prep, final = model.estimator[:-1], model.estimator[-1]
    owners = column_owners(loaded, pd.concat([batch.features, model.background], ignore_index=True))

    def dense(values):
        return values.toarray() if hasattr(values, "toarray") else np.asarray(values, dtype=float)

    def current():
        return kernel_shap.coalition_values(output.predict, batch.features, model.background, masks)

    def transformed():
        rows_t, background_t = dense(prep.transform(batch.features)), dense(prep.transform(model.background))
        take = masks[:, owners]  # (coalitions, transformed columns)
        out = np.empty((len(rows_t), len(masks), len(background_t), rows_t.shape[1]))
        out[:] = background_t
        np.copyto(out, np.broadcast_to(rows_t[:, None, None, :], out.shape), where=take[None, :, None, :])
        outputs = final.predict_proba(out.reshape(-1, rows_t.shape[1]))
        return outputs.reshape(len(rows_t), len(masks), len(background_t), -1).mean(axis=2)

    same = float(np.max(np.abs(current() - transformed())))
    before, after = best_of(current, repeats), best_of(transformed, repeats)
    return {"before": before, "after": after, "max_difference": same}


def logistic_without_rows(model: BenchModel, repeats: int) -> dict:
    """Idea 5: the logistic regression's game values for 2048 coalitions, with and without synthetic rows."""
    from xai_cli.methods import kernel_shap

    loaded, batch = xai_model_and_batch(model, 1)
    output = loaded.output(model.output)
    masks, _, _ = kernel_shap.sampled_coalitions(model.n_features, 2048, np.random.default_rng(0))
    w = np.asarray(model.estimator.coef_, dtype=float).ravel()
    c = float(np.ravel(model.estimator.intercept_)[0])
    x, b = batch.features.to_numpy(dtype=float)[0], model.background.to_numpy(dtype=float)

    def current():
        return kernel_shap.coalition_values(output.predict, batch.features, model.background, masks)[0, :, 1]

    def structural():
        logits = (c + b @ w)[None, :] + masks.astype(float) @ (w[:, None] * (x[:, None] - b.T))
        return (1.0 / (1.0 + np.exp(-logits))).mean(axis=1)

    same = float(np.max(np.abs(current() - structural())))
    return {"before": best_of(current, repeats), "after": best_of(structural, repeats), "max_difference": same}


def forest_two_threads(model: BenchModel, repeats: int) -> dict:
    """Idea 6: RandomForest predict_proba on 204 800 synthetic rows, one call vs two threads on halves."""
    rows = np.tile(model.array(model.background), (2048, 1))
    predict = model.estimator.predict_proba
    with ThreadPoolExecutor(2) as pool:

        def two_threads():
            half = len(rows) // 2
            return np.concatenate(list(pool.map(predict, [rows[:half], rows[half:]])))

        same = float(np.max(np.abs(predict(rows) - two_threads())))
        return {
            "before": best_of(lambda: predict(rows), repeats),
            "after": best_of(two_threads, repeats),
            "max_difference": same,
        }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warn_if_busy()
    models = {name: build_model(name, n_rows=args.rows) for name in ("logreg", "xgboost", "pipeline", "random_forest")}
    print("ideas 1-3 end to end...", file=sys.stderr)
    lines = end_to_end(models["logreg"], args.repeats) + end_to_end(models["xgboost"], args.repeats)
    print("ideas 4-6...", file=sys.stderr)
    micro = {
        f"4 Pipeline: coalitions after the column-wise preprocessing ({args.rows} rows x 256 coalitions)": pipeline_transformed_space(
            models["pipeline"], args.repeats
        ),
        "5 LogisticRegression: game values without synthetic rows (1 row x 2048 coalitions)": logistic_without_rows(
            models["logreg"], args.repeats
        ),
        "6 RandomForest: model call on two threads (204 800 rows; needs a quiet machine to judge)": forest_two_threads(
            models["random_forest"], args.repeats
        ),
    }
    markdown = "\n".join(
        [
            "# Kernel SHAP: what the suggested changes would buy",
            "",
            f"One run, {args.rows} rows, default settings, best of {args.repeats} (variants interleaved). "
            "Ideas are swapped into xai_cli.methods.kernel_shap in memory; the file is not modified. "
            "Speedup is against the current code in this run; error is the largest |phi - exact| in % of the "
            "output range (the same seed, so differences come from the sampler).",
            "",
            "## Ideas 1-3 through kernel_shap.explain",
            "",
            markdown_table(["model", "variant", "ms/row", "speedup vs current", "max err %"], lines),
            "",
            "## Ideas 4-6 on the step they change",
            "",
            markdown_table(
                ["idea", "current ms", "idea ms", "speedup", "max |difference| of outputs"],
                [
                    [
                        name,
                        f"{r['before'] * 1000:.1f}",
                        f"{r['after'] * 1000:.1f}",
                        fmt_ratio(r["before"] / r["after"]),
                        f"{r['max_difference']:.2g}",
                    ]
                    for name, r in micro.items()
                ],
            ),
        ]
    )
    print(markdown)
    write_results(args.out, markdown, {"end_to_end": lines, "micro": micro})
    return 0


if __name__ == "__main__":
    sys.exit(main())
