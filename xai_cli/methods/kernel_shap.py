"""Kernel SHAP on the original CSV columns, through the whole model (Pipeline included).

The game is the interventional one: the value of a coalition S of columns is the mean model output
over the background rows with the columns in S set to the explained row's values. A column is
"removed" by taking real background values, so a string category is never perturbed by noise.

Why not ``shap.KernelExplainer``: it works on numeric arrays (string columns do not survive), spends
most of its time outside the model on small models, and samples even when the exact answer is cheap.
Here, when every coalition fits in the budget (2^M <= nsamples + 2) the Shapley values are computed
exactly from all coalitions; otherwise coalitions are drawn as shap does (whole subset sizes
enumerated from the outside in while the budget allows, the rest sampled from the Shapley kernel in
complementary pairs), solved by the same constrained weighted least squares, and each value gets a
standard error from independent batches of the sampled coalitions. Synthetic rows for many
coalitions (and many rows) are built column by column with numpy and sent to the model in large
calls, so nearly all the time is spent inside the model.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from xai_cli.explanation import Explanation
from xai_cli.methods.base import Batch, Settings, attributions_for, row_rng
from xai_cli.model import LoadedModel

NAME = "kernel_shap"
# Synthetic rows sent to the model in one call: large enough that per-call overhead vanishes,
# small enough to bound memory (a few hundred MB at most for wide frames of strings).
MAX_ROWS_PER_CALL = 1 << 18
STANDARD_ERROR_BATCHES = 4


def applies(model: LoadedModel, settings: Settings) -> str | None:
    """Kernel SHAP applies to every model; it needs background rows, which the caller provides."""
    return None


def is_exact(n_features: int, nsamples: int) -> bool:
    """Whether the budget covers every coalition, so the values are exact."""
    return n_features <= 30 and 2**n_features <= nsamples + 2


def explain(model: LoadedModel, batch: Batch, background: pd.DataFrame, *, settings: Settings) -> list[Explanation]:
    """Kernel SHAP explanations of every row in ``batch`` for its target classes."""
    output = model.output(settings.output)
    names = list(batch.features.columns)
    n_features = len(names)
    predictions = output.predict(batch.features)
    base_values = output.predict(background).mean(axis=0)
    exact = is_exact(n_features, settings.nsamples)
    if exact:
        masks = all_coalitions(n_features)
        values = coalition_values(output.predict, batch.features, background, masks)
        contributions = exact_shapley(values, n_features)
        errors = [None] * len(batch.row_numbers)
        used = [len(masks)] * len(batch.row_numbers)
    else:
        contributions, errors, used = [], [], []
        for position, row_number in enumerate(batch.row_numbers):
            rng = row_rng(settings.seed, row_number, NAME)
            masks, weights, n_enumerated = sampled_coalitions(n_features, settings.nsamples, rng)
            row = batch.features.iloc[[position]]
            values = coalition_values(output.predict, row, background, masks)[0]
            phi, std_error = solve_weighted(masks, weights, values, base_values, predictions[position], n_enumerated)
            contributions.append(phi)
            errors.append(std_error)
            used.append(len(masks) + 2)
        contributions = np.stack(contributions)
    explanations = []
    for position, (row_number, identifier) in enumerate(zip(batch.row_numbers, batch.ids)):
        values_shown = batch.display_values(position)
        for column in batch.targets[position]:
            phi = contributions[position][:, column]
            std_error = None if errors[position] is None else errors[position][:, column]
            prediction = float(predictions[position, column])
            base = float(base_values[column])
            quality = {
                "exact": exact,
                "additivity_gap": abs(base + float(phi.sum()) - prediction),
                "coalitions": int(used[position]),
            }
            if std_error is not None:
                quality["max_std_error"] = float(std_error.max())
            explanations.append(
                Explanation(
                    row=row_number,
                    id=identifier,
                    method=NAME,
                    class_label=output.labels[column],
                    prediction=prediction,
                    base_value=base,
                    attributions=attributions_for(names, values_shown, phi, std_error),
                    quality=quality,
                )
            )
    return explanations


def all_coalitions(n_features: int) -> np.ndarray:
    """Every coalition as a boolean mask; row ``s`` holds the bits of the integer ``s``."""
    codes = np.arange(2**n_features)[:, None]
    return ((codes >> np.arange(n_features)[None, :]) & 1).astype(bool)


def exact_shapley(values: np.ndarray, n_features: int) -> np.ndarray:
    """Shapley values from the values of all coalitions.

    ``values`` is ``(rows, 2**M, outputs)`` indexed by coalition bits; returns ``(rows, M, outputs)``:
    ``phi_j = sum over S without j of |S|!(M-|S|-1)!/M! * (v(S + j) - v(S))``.
    """
    codes = np.arange(2**n_features)
    sizes = np.array([bin(c).count("1") for c in codes])
    weight_by_size = np.array(
        [math.factorial(s) * math.factorial(n_features - s - 1) / math.factorial(n_features) for s in range(n_features)]
    )
    phi = np.empty((values.shape[0], n_features, values.shape[2]))
    for j in range(n_features):
        without = codes[(codes >> j) & 1 == 0]
        weights = weight_by_size[sizes[without]]
        gains = values[:, without | (1 << j), :] - values[:, without, :]
        phi[:, j, :] = np.einsum("c,rck->rk", weights, gains)
    return phi


def sampled_coalitions(n_features: int, budget: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """Coalitions and kernel weights for a budget smaller than 2^M (empty and full excluded).

    Whole subset sizes are enumerated from the outside in (1 and M-1, then 2 and M-2...) while the
    budget covers them; the rest of the budget is drawn from the Shapley kernel over the remaining
    sizes, each draw with its complement. Returns ``(masks, weights, n_enumerated)``; the first
    ``n_enumerated`` masks are the enumerated ones.
    """
    m = n_features
    n_sizes = math.ceil((m - 1) / 2)
    n_paired = math.floor((m - 1) / 2)
    sizes = np.arange(1, n_sizes + 1)
    size_weights = (m - 1) / (sizes * (m - sizes))
    size_weights[:n_paired] *= 2
    size_weights /= size_weights.sum()

    masks: list[np.ndarray] = []
    weights: list[float] = []
    left = budget
    remaining = size_weights.copy()
    n_full_sizes = 0
    for index, size in enumerate(sizes):
        count = math.comb(m, int(size)) * (2 if index < n_paired else 1)
        if left * remaining[index] / count < 1.0 - 1e-8:
            break
        n_full_sizes += 1
        left -= count
        if remaining[index] < 1.0:
            remaining /= 1.0 - remaining[index]
        weight = size_weights[index] / math.comb(m, int(size)) / (2 if index < n_paired else 1)
        for members in itertools.combinations(range(m), int(size)):
            mask = np.zeros(m, dtype=bool)
            mask[list(members)] = True
            masks.append(mask)
            weights.append(weight)
            if index < n_paired:
                masks.append(~mask)
                weights.append(weight)
    n_enumerated = len(masks)

    if n_full_sizes < n_sizes and left > 0:
        left_weights = size_weights.copy()
        left_weights[:n_paired] /= 2
        left_weights = left_weights[n_full_sizes:]
        left_weights /= left_weights.sum()
        drawn: list[np.ndarray] = []
        while len(drawn) < left:
            index = n_full_sizes + int(rng.choice(len(left_weights), p=left_weights))
            mask = np.zeros(m, dtype=bool)
            mask[rng.permutation(m)[: sizes[index]]] = True
            drawn.append(mask)
            if index < n_paired and len(drawn) < left:
                drawn.append(~mask)
        weight_left = size_weights[n_full_sizes:].sum()
        masks.extend(drawn)
        weights.extend([weight_left / len(drawn)] * len(drawn))
    return np.array(masks, dtype=bool).reshape(-1, m), np.array(weights), n_enumerated


def solve_weighted(
    masks: np.ndarray,
    weights: np.ndarray,
    values: np.ndarray,
    base_values: np.ndarray,
    prediction: np.ndarray,
    n_enumerated: int,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Shapley estimates ``(M, outputs)`` and their standard errors (``None`` when nothing was sampled).

    The standard error comes from re-solving with the sampled coalitions split into independent
    batches (complementary pairs kept together), each batch carrying the whole sampled weight.
    """
    phi = _constrained_least_squares(masks, weights, values, base_values, prediction)
    n_sampled = len(masks) - n_enumerated
    if n_sampled < 2 * STANDARD_ERROR_BATCHES:
        return phi, None
    pair_ids = np.arange(n_sampled) // 2
    batch_of = pair_ids % STANDARD_ERROR_BATCHES
    estimates = []
    for batch in range(STANDARD_ERROR_BATCHES):
        keep = np.concatenate([np.ones(n_enumerated, dtype=bool), batch_of == batch])
        batch_weights = weights.copy()
        batch_weights[n_enumerated:] *= STANDARD_ERROR_BATCHES
        estimates.append(
            _constrained_least_squares(masks[keep], batch_weights[keep], values[keep], base_values, prediction)
        )
    spread = np.std(np.stack(estimates), axis=0, ddof=1)
    return phi, spread / math.sqrt(STANDARD_ERROR_BATCHES)


def _constrained_least_squares(
    masks: np.ndarray, weights: np.ndarray, values: np.ndarray, base_values: np.ndarray, prediction: np.ndarray
) -> np.ndarray:
    """Weighted least squares with ``sum(phi) = prediction - base`` enforced by eliminating the last
    feature (as shap's KernelExplainer does)."""
    total = prediction - base_values
    z = masks.astype(float)
    adjusted = values - base_values[None, :] - z[:, [-1]] * total[None, :]
    design = z[:, :-1] - z[:, [-1]]
    weighted = design * weights[:, None]
    coefficients = np.linalg.lstsq(design.T @ weighted, weighted.T @ adjusted, rcond=None)[0]
    last = total - coefficients.sum(axis=0)
    return np.vstack([coefficients, last[None, :]])


def coalition_values(predict, rows: pd.DataFrame, background: pd.DataFrame, masks: np.ndarray) -> np.ndarray:
    """Mean model output over the background for every row and coalition: ``(rows, coalitions, outputs)``.

    Rows are grouped, and coalitions split, so that each model call holds at most
    ``MAX_ROWS_PER_CALL`` synthetic rows.
    """
    n_rows, n_masks, n_background = len(rows), len(masks), len(background)
    per_row = n_masks * n_background
    masks_per_call = max(1, min(n_masks, MAX_ROWS_PER_CALL // n_background))
    rows_per_call = max(1, MAX_ROWS_PER_CALL // per_row) if masks_per_call == n_masks else 1
    results = []
    for row_start in range(0, n_rows, rows_per_call):
        row_block = rows.iloc[row_start : row_start + rows_per_call]
        parts = []
        for mask_start in range(0, n_masks, masks_per_call):
            mask_block = masks[mask_start : mask_start + masks_per_call]
            synthetic = synthetic_rows(row_block, background, mask_block)
            outputs = predict(synthetic)
            parts.append(outputs.reshape(len(row_block), len(mask_block), n_background, -1).mean(axis=2))
        results.append(np.concatenate(parts, axis=1))
    return np.concatenate(results, axis=0)


def synthetic_rows(rows: pd.DataFrame, background: pd.DataFrame, masks: np.ndarray) -> pd.DataFrame:
    """Rows x coalitions x background rows: the row's value where the mask is set, else the
    background's, built one column at a time (categorical columns through their codes).

    ``masks`` is ``(coalitions, features)``, shared by every row, or ``(rows, coalitions, features)``.
    """
    masks = masks if masks.ndim == 3 else masks[None, :, :]
    n_rows, n_masks, n_background = len(rows), masks.shape[1], len(background)
    columns = {}
    for index, name in enumerate(rows.columns):
        own, other = rows[name], background[name]
        take_own = masks[:, :, index, None]
        if isinstance(own.dtype, pd.CategoricalDtype):
            codes = np.where(take_own, own.cat.codes.to_numpy()[:, None, None], other.cat.codes.to_numpy()[None, None, :])
            columns[name] = pd.Categorical.from_codes(codes.reshape(-1), dtype=own.dtype)
            continue
        mixed = np.where(take_own, own.to_numpy()[:, None, None], other.to_numpy()[None, None, :])
        columns[name] = mixed.reshape(n_rows * n_masks * n_background)
    return pd.DataFrame(columns)
