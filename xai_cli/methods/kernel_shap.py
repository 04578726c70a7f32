"""Kernel SHAP on the original CSV columns, through the whole model (Pipeline included).

The game is the interventional one: the value of a coalition S of columns is the mean model output
over the background rows with the columns in S set to the explained row's values. A column is
"removed" by taking real background values, so a string category is never perturbed by noise.

Why not ``shap.KernelExplainer``: it works on numeric arrays (string columns do not survive), spends
most of its time outside the model on small models, samples even when the exact answer is cheap, and
spends its whole budget whatever the accuracy. Here:

* When every coalition fits in the budget (2^M <= nsamples + 2), the Shapley values are computed
  exactly from all coalitions.
* Otherwise coalitions are sampled in complementary pairs (S and the columns not in S), stratified
  by size: the pairs of sizes s and M - s form one stratum, which gets pairs in proportion to its
  Shapley kernel weight, drawn without replacement, so a stratum the budget covers is enumerated
  whole (as shap enumerates the outer sizes). The values solve the Shapley kernel's weighted least
  squares with ``sum(values) = prediction - base``, and each gets a standard error from the spread of
  its sampled pairs' contributions (a sandwich estimate, corrected for sampling without
  replacement). Sampling goes in rounds and stops as soon as the values are accurate enough (see
  ``TARGET_STD_ERROR``) or the budget (``--nsamples``) is spent; ``quality["budget_exhausted"]``
  says which.
* The synthetic rows of many coalitions go to the model in large calls, one explained row per call
  (so that a row's numbers do not depend on the rows explained with it). All-float frames are built
  as one block of floats; a Pipeline whose preprocessing works column by column is transformed once,
  and its coalitions are assembled from the transformed rows for the final estimator: the very
  inputs the Pipeline would give it, without encoding every synthetic row again.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from xai_cli.explanation import Explanation
from xai_cli.methods.base import Batch, Settings, attributions_for, row_rng
from xai_cli.model import LoadedModel, ModelOutput, describe_model, is_columnwise

NAME = "kernel_shap"
# Synthetic rows sent to the model in one call: large enough that per-call overhead vanishes,
# small enough to bound memory (a few hundred MB at most for wide frames of strings).
MAX_ROWS_PER_CALL = 1 << 18
# Cells (synthetic rows x model inputs) of one block of floats: the same memory as 2^18 rows of 32
# columns, so that a Pipeline whose encoders make many columns still builds bounded blocks.
MAX_CELLS_PER_CALL = MAX_ROWS_PER_CALL * 32
# Sampling stops when every standard error is at most this share of the explained output's spread
# (its range over the background rows and the explained row): the values are then within about 1%
# of that spread, typically far closer than shap.KernelExplainer's default.
TARGET_STD_ERROR = 0.0025
# ... and when none of the largest attributions is smaller than its standard error (explain.py
# warns about those three, with the advice to raise --nsamples: that advice must hold).
TOP_ATTRIBUTIONS_CLEAR_OF_NOISE = 3
# Pairs of the first round (at least M, so that every stratum gets two pairs and a standard error).
FIRST_ROUND_PAIRS = 64
# Each later round aims at the pairs the standard errors say are needed (they shrink as 1/sqrt(n)),
# with a margin, growing the sample between these factors.
ROUND_MARGIN = 1.2
MIN_ROUND_GROWTH = 1.25
MAX_ROUND_GROWTH = 4.0
# A stratum with at most this many pairs per pair of the budget is drawn without replacement from
# the list of all its pairs; larger ones are drawn with replacement (a repeat is then unlikely).
LISTED_PAIRS_PER_BUDGET_PAIR = 4
MAX_LISTED_PAIRS = 1 << 17


def applies(model: LoadedModel, settings: Settings) -> str | None:
    """Kernel SHAP applies to every model; it needs background rows, which the caller provides."""
    return None


def is_exact(n_features: int, nsamples: int) -> bool:
    """Whether the budget covers every coalition, so the values are exact."""
    return n_features <= 30 and 2**n_features <= nsamples + 2


@dataclass
class RowEstimate:
    """Kernel SHAP's answer for one row: the model's prediction ``(outputs,)``, values ``(M, outputs)``,
    standard errors of the explained outputs (``None`` when exact, or when too few pairs were drawn
    to estimate them), coalitions evaluated (empty and full included), and whether sampling stopped
    at the budget."""

    prediction: np.ndarray
    phi: np.ndarray
    std_errors: dict[int, np.ndarray] | None
    coalitions: int
    exact: bool
    budget_exhausted: bool


def explain(model: LoadedModel, batch: Batch, background: pd.DataFrame, *, settings: Settings) -> list[Explanation]:
    """Kernel SHAP explanations of every row in ``batch`` for its target classes."""
    output = model.output(settings.output)
    names = list(batch.features.columns)
    game = coalition_game(model, output, batch.features, background)
    background_outputs = game.predict(game.background_inputs)
    base_values = background_outputs.mean(axis=0)
    if is_exact(len(names), settings.nsamples):
        estimates = [exact_estimate(game, position, len(names)) for position in range(len(batch.row_numbers))]
    else:
        estimates = [
            sampled_estimate(
                game,
                position,
                len(names),
                row_rng(settings.seed, row_number, NAME),
                settings.nsamples,
                batch.targets[position],
                background_outputs,
            )
            for position, row_number in enumerate(batch.row_numbers)
        ]
    explanations = []
    for position, (row_number, identifier) in enumerate(zip(batch.row_numbers, batch.ids)):
        estimate = estimates[position]
        values_shown = batch.display_values(position)
        for column in batch.targets[position]:
            phi = estimate.phi[:, column]
            std_error = None if estimate.std_errors is None else estimate.std_errors[column]
            prediction = float(estimate.prediction[column])
            base = float(base_values[column])
            quality = {
                "exact": estimate.exact,
                "additivity_gap": abs(base + float(phi.sum()) - prediction),
                "coalitions": estimate.coalitions,
                "budget_exhausted": estimate.budget_exhausted,
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


# --------------------------------------------------------------------------------------------------
# The game: v(S) for any row and coalition, in large model calls


@dataclass(frozen=True)
class CoalitionGame:
    """The values of coalitions of the explained rows.

    ``build(row_index, masks)`` gives the model input for coalition ``i`` of row ``row_index[i]``
    combined with every background row (coalition-major); ``predict`` is the guarded model output on
    such inputs, and on ``background_inputs`` (the background rows themselves); ``input_columns`` is
    the width of an input (to bound the memory of one call).

    Every model call holds one explained row only, split by that row's own coalitions: a model can
    round a row's output differently by where it sits in its call (BLAS kernels treat the last rows
    of a matrix apart), and a row's numbers must not depend on which rows share its batch.
    """

    predict: Callable[[Any], np.ndarray]
    build: Callable[[np.ndarray, np.ndarray], Any]
    background_inputs: Any
    input_columns: int

    def values(self, position: int, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean model output over the background for every coalition of row ``position``:
        ``(coalitions, outputs)``; and the outputs of the first synthetic row (the row itself when
        the first coalition takes every column from it)."""
        n_background = len(self.background_inputs)
        rows_per_call = min(MAX_ROWS_PER_CALL, MAX_CELLS_PER_CALL // max(1, self.input_columns))
        per_call = max(1, rows_per_call // n_background)
        means, first = [], None
        for start in range(0, len(masks), per_call):
            block = masks[start : start + per_call]
            inputs = self.build(np.full(len(block), position), block)
            outputs = self.predict(inputs).reshape(len(block), n_background, -1)
            first = outputs[0, 0] if first is None else first
            means.append(outputs.mean(axis=1))
        return np.concatenate(means), first


def coalition_game(
    model: LoadedModel, output: ModelOutput, rows: pd.DataFrame, background: pd.DataFrame
) -> CoalitionGame:
    """The fastest exact way to evaluate coalitions of ``rows`` for this model."""
    transformed = _transformed_game(model, output, rows, background)
    if transformed is not None:
        return transformed
    return CoalitionGame(output.predict, frame_builder(rows, background), background, rows.shape[1])


def frame_builder(rows: pd.DataFrame, background: pd.DataFrame) -> Callable[[np.ndarray, np.ndarray], pd.DataFrame]:
    """A builder of synthetic frames with the rows' columns and dtypes: one block of floats when
    every column is a float, else column by column (categorical columns through their codes)."""
    if all(dtype == np.float64 for dtype in [*rows.dtypes, *background.dtypes]):
        return _block_builder(rows.to_numpy(), background.to_numpy(), list(rows.columns))
    return _column_builder(rows, background)


def synthetic_rows(rows: pd.DataFrame, background: pd.DataFrame, masks: np.ndarray) -> pd.DataFrame:
    """Rows x coalitions x background rows: the row's value where the mask is set, else the background's.

    ``masks`` is ``(coalitions, features)``, shared by every row, or ``(rows, coalitions, features)``.
    """
    masks = np.broadcast_to(masks, (len(rows), *masks.shape[-2:]))
    row_index = np.repeat(np.arange(len(rows)), masks.shape[1])
    return frame_builder(rows, background)(row_index, masks.reshape(-1, masks.shape[2]))


def _block_builder(
    own: np.ndarray, other: np.ndarray, columns: list, owners: np.ndarray | None = None
) -> Callable[[np.ndarray, np.ndarray], pd.DataFrame]:
    """Synthetic rows as one C-ordered float block wrapped, without a copy, in a DataFrame.

    ``owners[k]`` is the coalition column that input column ``k`` follows (``None``: column ``k``).
    """
    own, other = np.ascontiguousarray(own), np.ascontiguousarray(other)  # so that np.where's result is too

    def build(row_index: np.ndarray, masks: np.ndarray) -> pd.DataFrame:
        take_own = masks if owners is None else masks[:, owners]
        block = np.where(take_own[:, None, :], own[row_index][:, None, :], other[None, :, :])
        return pd.DataFrame(block.reshape(-1, own.shape[1]), columns=columns, copy=False)

    return build


def _column_builder(rows: pd.DataFrame, background: pd.DataFrame) -> Callable[[np.ndarray, np.ndarray], pd.DataFrame]:
    """Synthetic rows built one column at a time, each with its own dtype (categoricals through codes)."""

    def build(row_index: np.ndarray, masks: np.ndarray) -> pd.DataFrame:
        columns = {}
        for index, name in enumerate(rows.columns):
            own, other = rows[name], background[name]
            take_own = masks[:, index, None]
            if isinstance(own.dtype, pd.CategoricalDtype):
                codes = np.where(
                    take_own, own.cat.codes.to_numpy()[row_index, None], other.cat.codes.to_numpy()[None, :]
                )
                columns[name] = pd.Categorical.from_codes(codes.reshape(-1), dtype=own.dtype)
                continue
            mixed = np.where(take_own, own.to_numpy()[row_index, None], other.to_numpy()[None, :])
            columns[name] = mixed.reshape(-1)
        return pd.DataFrame(columns)

    return build


def _transformed_game(
    model: LoadedModel, output: ModelOutput, rows: pd.DataFrame, background: pd.DataFrame
) -> CoalitionGame | None:
    """The game in the input space of a Pipeline's final estimator, or ``None`` where it does not apply.

    Applies when the preprocessing is column-wise (each of its outputs follows one original column),
    gives dense numbers, and the final estimator has the Pipeline's outputs. A synthetic row's
    transform is then the row's transformed values where the coalition takes the row, else the
    background's: the final estimator gets exactly what the Pipeline would give it. Anything
    unexpected keeps the plain path, which also reports the model's own errors.
    """
    preprocessor = model.preprocessor
    if preprocessor is None or not is_columnwise(preprocessor):
        return None
    probe = pd.concat([rows, background], ignore_index=True)
    try:
        transformed = _probed_transforms(preprocessor, model, probe)
        final = describe_model(model.final_estimator)
        final_output = final.output(output.space)
    except MemoryError:
        raise
    except Exception:  # the plain path calls the whole Pipeline, and reports its errors as the model's
        return None
    if transformed is None or final_output.labels != output.labels:
        return None
    inputs, owners = transformed
    names = final.feature_names if final.has_feature_names else list(range(inputs.shape[1]))
    if len(names) != inputs.shape[1]:
        return None
    own, other = inputs[: len(rows)], inputs[len(rows) :]
    background_inputs = pd.DataFrame(other, columns=names)
    # The final estimator on the transformed background must give what the whole Pipeline gives
    # (a category dtype the transform passed through would not survive the float block, say).
    try:
        shortcut, whole = final_output.predict(background_inputs), output.predict(background)
    except MemoryError:
        raise
    except Exception:
        return None
    if shortcut.shape != whole.shape or np.max(np.abs(shortcut - whole)) > 1e-9 * max(1.0, np.max(np.abs(whole))):
        return None
    return CoalitionGame(
        final_output.predict, _block_builder(own, other, names, owners), background_inputs, inputs.shape[1]
    )


def _probed_transforms(preprocessor: Any, model: LoadedModel, probe: pd.DataFrame) -> tuple | None:
    """The transformed ``probe`` rows, and the original column each transformed column follows.

    One transform call holds the probe and, for every column, the probe with that column's values
    rotated by one row: the transformed columns that change are the ones it owns. ``None`` when the
    output is sparse (the final estimator is fed sparse matrices: keep what it is used to) or a
    transformed column changes with two columns. A column constant over the probe has no owner and
    the same value from the row or the background: it is given column 0.
    """
    rotated = np.roll(np.arange(len(probe)), 1)
    shifted = []
    for name in probe.columns:
        variant = probe.copy()
        variant[name] = probe[name].iloc[rotated].reset_index(drop=True)
        shifted.append(variant)
    transformed = preprocessor.transform(model.model_input(pd.concat([probe, *shifted], ignore_index=True)))
    if hasattr(transformed, "toarray"):
        return None
    blocks = np.asarray(transformed, dtype=float).reshape(len(probe.columns) + 1, len(probe), -1)
    reference = blocks[0]
    changed = ~((blocks[1:] == reference) | (np.isnan(blocks[1:]) & np.isnan(reference))).all(axis=1)
    if (changed.sum(axis=0) > 1).any():
        return None
    return np.ascontiguousarray(reference), changed.argmax(axis=0)


# --------------------------------------------------------------------------------------------------
# Exact values


def exact_estimate(game: CoalitionGame, position: int, n_features: int) -> RowEstimate:
    """Exact Shapley values of one row from the values of all 2^M coalitions."""
    full_first = all_coalitions(n_features)[::-1]
    values, prediction = game.values(position, full_first)
    phi = exact_shapley(values[None, ::-1], n_features)[0]
    return RowEstimate(prediction, phi, None, len(full_first), exact=True, budget_exhausted=False)


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


# --------------------------------------------------------------------------------------------------
# Sampled values


@dataclass(frozen=True)
class SamplingPlan:
    """How pairs of coalitions are spread over the strata for one number of features and budget.

    Stratum ``s`` holds the pairs (S, complement of S) with ``|S| = sizes[s]``; ``population`` is its
    number of distinct pairs (a float: it outgrows integers on wide models) and ``mass`` its share of
    the Shapley kernel. ``seat_order[k]`` is the stratum of the k-th pair: the first T entries are the
    allocation of T pairs, so a larger sample only adds pairs to a smaller one. ``listed`` says which
    strata are drawn without replacement from the list of all their pairs.
    """

    n_features: int
    sizes: np.ndarray
    population: np.ndarray
    mass: np.ndarray
    seat_order: np.ndarray
    listed: np.ndarray


@functools.lru_cache(maxsize=32)
def sampling_plan(n_features: int, nsamples: int) -> SamplingPlan:
    """The strata of ``n_features`` and the order in which a budget of ``nsamples`` coalitions fills them.

    Every stratum first gets up to two pairs (outer strata first), so that each has a standard error;
    the rest go in proportion to the kernel mass (Sainte-Laguë's highest averages, which never takes
    a pair back as the total grows), each stratum capped at its population.
    """
    m = n_features
    sizes = np.arange(1, m // 2 + 1)
    halves = sizes * 2 == m
    kernel = (m - 1) / (sizes * (m - sizes))
    mass = np.where(halves, kernel, 2 * kernel)
    mass /= mass.sum()
    population = np.array([math.comb(m, int(s)) / (2 if half else 1) for s, half in zip(sizes, halves)])
    max_pairs = max(1, nsamples // 2)
    by_mass = np.argsort(-mass, kind="stable")
    first = [s for floor in (0, 1) for s in by_mass if population[s] > floor]
    held = np.minimum(population, 2).astype(int)
    strata, priorities = [], []
    for stratum in range(len(sizes)):
        seats = np.arange(held[stratum], int(min(population[stratum], max_pairs)))
        strata.append(np.full(len(seats), stratum))
        priorities.append(mass[stratum] / (2 * seats + 1))
    strata_flat, priorities_flat = np.concatenate(strata), np.concatenate(priorities)
    order = np.lexsort((strata_flat, -priorities_flat))
    seat_order = np.concatenate([np.array(first, dtype=int), strata_flat[order]])[:max_pairs]
    listed = population <= min(MAX_LISTED_PAIRS, LISTED_PAIRS_PER_BUDGET_PAIR * max_pairs)
    return SamplingPlan(m, sizes, population, mass, seat_order, listed)


@functools.lru_cache(maxsize=64)
def stratum_pairs(n_features: int, size: int) -> np.ndarray:
    """Every pair of a stratum, as the mask of one side: all sets of ``size`` columns, or when the
    two sides have the same size, those holding column 0 (so that each pair is listed once)."""
    if 2 * size == n_features:
        members = [(0, *rest) for rest in itertools.combinations(range(1, n_features), size - 1)]
    else:
        members = list(itertools.combinations(range(n_features), size))
    masks = np.zeros((len(members), n_features), dtype=bool)
    np.put_along_axis(masks, np.array(members, dtype=int).reshape(len(members), size), True, axis=1)
    masks.flags.writeable = False
    return masks


class PairSample:
    """The pairs drawn for one row so far, their values, and the Kernel SHAP estimate they give."""

    def __init__(self, plan: SamplingPlan, rng: np.random.Generator):
        self.plan = plan
        self.rng = rng
        self.orders: dict[int, np.ndarray] = {}
        self.counts = np.zeros(len(plan.sizes), dtype=int)
        self.masks = np.zeros((0, plan.n_features), dtype=bool)
        self.strata = np.zeros(0, dtype=int)
        self.values = np.zeros((0, 2, 0))

    def draw(self, total_pairs: int) -> np.ndarray:
        """New pairs up to ``total_pairs`` in all; returns their ``(pairs, M)`` masks (one side each)."""
        wanted = np.bincount(self.plan.seat_order[:total_pairs], minlength=len(self.counts))
        new_masks, new_strata = [], []
        for stratum in np.flatnonzero(wanted > self.counts):
            new = int(wanted[stratum] - self.counts[stratum])
            new_masks.append(self._draw_from(stratum, new))
            new_strata.append(np.full(new, stratum))
            self.counts[stratum] = wanted[stratum]
        drawn = np.concatenate(new_masks)
        self.masks = np.concatenate([self.masks, drawn])
        self.strata = np.concatenate([self.strata, *new_strata])
        return drawn

    def _draw_from(self, stratum: int, count: int) -> np.ndarray:
        size, m = int(self.plan.sizes[stratum]), self.plan.n_features
        if self.plan.listed[stratum]:
            if stratum not in self.orders:
                self.orders[stratum] = self.rng.permutation(int(self.plan.population[stratum]))
            done = int(self.counts[stratum])
            return stratum_pairs(m, size)[self.orders[stratum][done : done + count]]
        keys = self.rng.random((count, m))
        return keys <= np.partition(keys, size - 1, axis=1)[:, size - 1 : size]

    def add(self, values: np.ndarray) -> None:
        """Values ``(new pairs, 2, outputs)`` of the pairs drawn last: the side drawn, then its complement."""
        self.values = values if len(self.values) == 0 else np.concatenate([self.values, values])

    @property
    def n_pairs(self) -> int:
        return len(self.strata)

    def estimate(
        self, base_values: np.ndarray, prediction: np.ndarray, targets: list[int]
    ) -> tuple[np.ndarray, dict[int, np.ndarray] | None]:
        """Values ``(M, outputs)`` from the constrained weighted least squares, and the standard error
        of each value of the ``targets`` outputs (``None`` while a stratum has fewer than two pairs)."""
        z = np.concatenate([self.masks, ~self.masks]).astype(float)
        values = np.concatenate([self.values[:, 0], self.values[:, 1]])
        per_pair = self.plan.mass[self.strata] / (2 * self.counts[self.strata])
        weights = np.concatenate([per_pair, per_pair])
        total = prediction - base_values
        adjusted = values - base_values[None, :] - z[:, [-1]] * total[None, :]
        design = z[:, :-1] - z[:, [-1]]
        weighted = design * weights[:, None]
        inverse = np.linalg.pinv(design.T @ weighted)
        coefficients = inverse @ (weighted.T @ adjusted)
        phi = np.vstack([coefficients, (total - coefficients.sum(axis=0))[None, :]])
        if np.any(self.counts[self.counts < self.plan.population] < 2):
            return phi, None
        residuals = adjusted[:, targets] - design @ coefficients[:, targets]
        # Each residual as if its coalition had been left out of the fit (the jackknife's HC3): the
        # fitted residuals alone understate the errors when a few heavy coalitions pull the fit.
        leverage = weights * ((design @ inverse) * design).sum(axis=1)
        residuals /= np.maximum(1 - leverage, 1e-12)[:, None]
        contributions = design[:, :, None] * residuals[:, None, :]
        n = self.n_pairs
        influence = inverse @ (contributions[:n] + contributions[n:])
        influence = np.concatenate([influence, -influence.sum(axis=1, keepdims=True)], axis=1)
        variance = self._stratified_variance(influence)
        return phi, {target: np.sqrt(variance[:, index]) for index, target in enumerate(targets)}

    def _stratified_variance(self, influence: np.ndarray) -> np.ndarray:
        """Variance of the estimate from the pairs' influences ``(pairs, M, targets)``, stratum by stratum.

        A stratum's part of the weighted sums is ``mass / (2 n)`` times the sum of its ``n`` pairs'
        contributions, so its variance is ``(mass / 2)^2 * S^2 / n``, times ``1 - n / N`` when drawn
        without replacement from its ``N`` pairs (zero when enumerated whole).
        """
        order = np.argsort(self.strata, kind="stable")
        strata, influence = self.strata[order], influence[order]
        present = np.flatnonzero(self.counts)
        starts = np.searchsorted(strata, present)
        counts = self.counts[present]
        means = np.add.reduceat(influence, starts, axis=0) / counts[:, None, None]
        deviations = influence - np.repeat(means, counts, axis=0)
        spread = np.add.reduceat(deviations**2, starts, axis=0) / np.maximum(counts - 1, 1)[:, None, None]
        population = self.plan.population[present]
        shrink = np.where(self.plan.listed[present], 1 - counts / population, 1.0)
        scale = (self.plan.mass[present] / 2) ** 2 * shrink / counts
        return np.einsum("s,smk->mk", scale, spread)


def sampled_estimate(
    game: CoalitionGame,
    position: int,
    n_features: int,
    rng: np.random.Generator,
    nsamples: int,
    targets: list[int],
    background_outputs: np.ndarray,
) -> RowEstimate:
    """Sampled Kernel SHAP of one row, in rounds until it is accurate enough or out of budget.

    The first round also evaluates the full coalition, whose first synthetic row is the row itself:
    its output is the prediction the values add up to.
    """
    plan = sampling_plan(n_features, nsamples)
    budget_pairs = len(plan.seat_order)
    base_values = background_outputs.mean(axis=0)
    sample = PairSample(plan, rng)
    goal = min(budget_pairs, max(FIRST_ROUND_PAIRS, n_features))
    prediction = None
    while True:
        side = sample.draw(goal)
        masks = np.concatenate([side, ~side])
        if prediction is None:
            values, prediction = game.values(position, np.concatenate([np.ones((1, n_features), dtype=bool), masks]))
            values = values[1:]
        else:
            values, _ = game.values(position, masks)
        sample.add(np.stack([values[: len(side)], values[len(side) :]], axis=1))
        phi, std_errors = sample.estimate(base_values, prediction, targets)
        shortfall = _shortfall(phi, std_errors, targets, background_outputs, prediction)
        if shortfall <= 1.0 or sample.n_pairs >= budget_pairs:
            coalitions = 2 * sample.n_pairs + 2
            return RowEstimate(prediction, phi, std_errors, coalitions, False, budget_exhausted=shortfall > 1.0)
        growth = min(MAX_ROUND_GROWTH, max(MIN_ROUND_GROWTH, ROUND_MARGIN * shortfall**2))
        goal = min(budget_pairs, math.ceil(sample.n_pairs * growth))


def _shortfall(
    phi: np.ndarray,
    std_errors: dict[int, np.ndarray] | None,
    targets: list[int],
    background_outputs: np.ndarray,
    prediction: np.ndarray,
) -> float:
    """How far a row is from accurate enough: the largest ratio of a standard error to what it may be
    (``TARGET_STD_ERROR`` of the output's spread, and the value itself for the largest values).
    At most 1 means accurate enough; infinite when the errors are not known yet."""
    if std_errors is None:
        return math.inf
    worst = 0.0
    for target in targets:
        outputs = np.append(background_outputs[:, target], prediction[target])
        errors, sizes = std_errors[target], np.abs(phi[:, target])
        top = np.argsort(-sizes, kind="stable")[:TOP_ATTRIBUTIONS_CLEAR_OF_NOISE]
        allowed = TARGET_STD_ERROR * float(np.ptp(outputs))
        worst = max(worst, _largest_ratio(errors, allowed), _largest_ratio(errors[top], sizes[top]))
    return worst


def _largest_ratio(errors: np.ndarray, allowed: np.ndarray | float) -> float:
    """max(errors / allowed), where an error of zero is always within what is allowed."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.max(np.where(errors == 0, 0.0, errors / allowed)))
