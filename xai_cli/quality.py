"""Receipts that say how far to trust an explanation, computed the same way for every method.

- The deletion check: replace the top-k attributed columns of a row by background values and see
  how far the prediction moves, against replacing k random columns. A faithful explanation names
  the columns whose removal moves the prediction most.
- Agreement between methods on the same row and class (``--method all``): Spearman correlation of
  the attributions, overlap of the top three, and a ``disagree`` flag when the methods name a
  different top feature or give a clearly important feature opposite signs.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
import pandas as pd

from xai_cli.explanation import Explanation
from xai_cli.methods.base import row_rng
from xai_cli.methods.kernel_shap import synthetic_rows
from xai_cli.model import ModelOutput

DELETION_SIZES = (1, 3)
RANDOM_DRAWS = 5
# Background rows the deleted columns are drawn from: enough for a stable mean, cheap next to SHAP.
DELETION_BACKGROUND_ROWS = 25
# A feature counts for the sign check when its attribution is at least this share of the largest.
SIGN_CHECK_SHARE = 0.2


def add_deletion_checks(
    explanations: list[Explanation],
    rows: pd.DataFrame,
    row_numbers: list[int],
    background: pd.DataFrame,
    output: ModelOutput,
    *,
    seed: int,
) -> None:
    """Add ``quality["deletion"]`` to each explanation (it needs background rows to delete towards).

    For k in (1, 3): ``top_k`` is |f(x) - f(x with its top-k columns taken from the background)|,
    averaged over the first ``DELETION_BACKGROUND_ROWS`` background rows (already a seeded random
    sample); ``random_k`` the same for k random columns (mean of a few draws); ``faithful`` says
    whether the top columns moved the prediction at least as much. All explanations of a chunk go
    to the model in one call, so the check costs a small fraction of the explanations themselves.
    """
    names = list(rows.columns)
    sizes = [k for k in DELETION_SIZES if k < len(names)]
    if not sizes or not explanations:
        return
    reference = background.iloc[:DELETION_BACKGROUND_ROWS]
    position_of = {row: position for position, row in enumerate(row_numbers)}
    plans = [_deletion_plan(explanation, names, sizes, seed) for explanation in explanations]
    kept = np.stack([mask for mask, _ in plans])
    positions = [position_of[e.row] for e in explanations]
    synthetic = synthetic_rows(rows.iloc[positions], reference, kept)
    means = output.predict(synthetic).reshape(len(explanations), kept.shape[1], len(reference), -1).mean(axis=2)
    predictions = output.predict(rows)
    for number, (explanation, (_, labels)) in enumerate(zip(explanations, plans)):
        column = output.labels.index(explanation.class_label)
        moved = np.abs(means[number, :, column] - predictions[positions[number], column])
        check: dict[str, float | bool] = {
            label: float(moved[[i for i, name in enumerate(labels) if name == label]].mean())
            for label in dict.fromkeys(labels)
        }
        check["faithful"] = all(check[f"top_{k}"] >= check[f"random_{k}"] - 1e-12 for k in sizes)
        explanation.quality["deletion"] = check


def _deletion_plan(explanation: Explanation, names: list[str], sizes: list[int], seed: int):
    """Masks of the columns kept (``False`` = taken from the background) and their labels."""
    rng = row_rng(seed, explanation.row, f"deletion:{explanation.method}")
    ranked = [names.index(a.feature) for a in explanation.attributions]
    deleted, labels = [], []
    for k in sizes:
        deleted.append(ranked[:k])
        labels.append(f"top_{k}")
        for _ in range(RANDOM_DRAWS):
            deleted.append(rng.choice(len(names), size=k, replace=False))
            labels.append(f"random_{k}")
    kept = np.ones((len(deleted), len(names)), dtype=bool)
    for index, columns in enumerate(deleted):
        kept[index, columns] = False
    return kept, labels


def add_method_agreement(explanations: list[Explanation]) -> None:
    """With several methods per row and class, add ``quality["agreement"]``: one entry per other method."""
    from scipy.stats import spearmanr

    groups: dict[tuple[int, str | None], list[Explanation]] = defaultdict(list)
    for explanation in explanations:
        groups[(explanation.row, explanation.class_label)].append(explanation)
    for group in groups.values():
        for first, second in itertools.combinations(group, 2):
            features = [a.feature for a in first.attributions]
            a = np.array([_by_feature(first)[f] for f in features])
            b = np.array([_by_feature(second)[f] for f in features])
            rho = float(spearmanr(a, b).statistic) if np.ptp(a) > 0 and np.ptp(b) > 0 else None
            top3 = len(set(_top(first, 3)) & set(_top(second, 3))) / min(3, len(features))
            reasons = []
            if _top(first, 1) != _top(second, 1):
                reasons.append(f"top feature {_top(first, 1)[0]} vs {_top(second, 1)[0]}")
            reasons.extend(f"opposite signs on {features[i]}" for i in _opposite_signs(a, b))
            for this, other in ((first, second), (second, first)):
                this.quality.setdefault("agreement", []).append(
                    {
                        "with": other.method,
                        "spearman": rho,
                        "top3_overlap": top3,
                        "disagree": bool(reasons),
                        "reasons": reasons,
                    }
                )


def _by_feature(explanation: Explanation) -> dict[str, float]:
    return {a.feature: a.attribution for a in explanation.attributions}


def _top(explanation: Explanation, k: int) -> list[str]:
    return [a.feature for a in explanation.attributions[:k]]


def _opposite_signs(a: np.ndarray, b: np.ndarray) -> list[int]:
    """Features important to both methods that they push in opposite directions."""
    important = (np.abs(a) >= SIGN_CHECK_SHARE * np.abs(a).max()) & (np.abs(b) >= SIGN_CHECK_SHARE * np.abs(b).max())
    return [int(i) for i in np.flatnonzero(important & (np.sign(a) * np.sign(b) < 0))]
