"""``xai audit``: measure a model on today's data, compare it with an earlier run, pass or fail.

One run (:func:`measure`) takes the model's global importance from :mod:`xai_cli.importance`
(permutation with ``--target``, else mean |SHAP|), its score on DATA (the scorer of the permutation
importance), a summary of every feature's distribution (decile bins, a percentile grid, category
shares, the share of empty cells) and the same summary of the model's predictions. The summaries are
all a later run needs, so every ``audit.json`` can serve as a baseline by itself and none holds raw
data.

:func:`compare` checks the run against a baseline document, each check a value against a threshold
(:class:`Thresholds`): the score's drop, how far the baseline's top features fell in rank, the
Spearman correlation of the two importance rankings, the largest change of a feature's share of the
total importance, and the population stability index (PSI) of every feature and of the predictions.

``--history DIR`` keeps one folder per run, named by its UTC time (:func:`create_run_folder`), and
:func:`find_baseline` walks the earlier ones newest first, skipping with a warning anything it
cannot use, and refusing (exit 2) a history whose runs are all unusable. A baseline must come from
the same kind of model (features, task, classes) and must not be the file the run would write. The
module computes and writes files; it never prints and never deletes anything.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from xai_cli import __version__
from xai_cli.data import ModelRows, Table, display_value
from xai_cli.errors import BadInput
from xai_cli.explanation import SCHEMA_VERSION, json_value
from xai_cli.importance import DEFAULT_REPEATS, TOP_K, MethodImportance, compute_importance
from xai_cli.model import LoadedModel

if TYPE_CHECKING:
    from matplotlib.figure import Figure

KIND = "audit"
AUDIT_FILE = "audit.json"
REPORT_FILE = "report.html"
IMPORTANCE_PLOT = "importance_vs_baseline.png"
DRIFT_PLOT = "drift.png"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
RUN_NAME = re.compile(r"(\d{8}T\d{6}Z)(?:-(\d+))?")
MAX_RUNS_PER_SECOND = 10_000
DEFAULT_OUT = Path("xai-output")

DECILES = np.linspace(0.1, 0.9, 9)
PERCENTILES = np.linspace(0.0, 1.0, 101)
# A stored grid point per this many rows at most, so that a summary never lists the rows' values.
ROWS_PER_POINT = 5
SUMMARY_QUANTILES = {"p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95}
MAX_CATEGORIES = 50
# A share of 0 would make the PSI infinite; the usual practice is to floor every share.
PSI_FLOOR = 1e-4
# A feature holding less than this share of the total importance (or half an even share, when that
# is smaller) carries nothing: its rank among such features is noise (see noise_share).
MIN_TOP_SHARE = 0.05
# Below this many rows on either side, decile shares (hence PSI) move by chance.
FEW_ROWS = 100
# A change of the missing share worth naming in a check's detail.
MISSING_NOTE = 0.02
MAX_VERDICT_FAILURES = 8
MAX_PLOT_FEATURES = 30

# Checks that fail below their threshold; every other check fails above it.
MINIMUM_CHECKS = frozenset({"rank_correlation"})


def utc_now() -> datetime:
    """The current UTC time (one place, so tests can fix the clock)."""
    return datetime.now(timezone.utc)


# --------------------------------------------------------------------------------------------
# Thresholds and checks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    """When a run fails against its baseline; the defaults fail a gross change, not run-to-run noise.

    ``max_rank_change``: how many ranks a top-5 feature of the baseline may fall;
    ``min_rank_correlation``: the lowest Spearman rho between the two importance rankings;
    ``max_importance_shift``: the largest change of a feature's share of the total importance;
    ``max_score_drop``: the largest drop of the score (absolute, in the scorer's units);
    ``max_drift``: the largest PSI of any feature, and of the predictions.
    """

    max_rank_change: int = 3
    min_rank_correlation: float = 0.7
    max_importance_shift: float = 0.25
    max_score_drop: float = 0.05
    max_drift: float = 0.25

    def __post_init__(self) -> None:
        limits = {
            "max_rank_change": (0, 10**6),
            "min_rank_correlation": (-1.0, 1.0),
            "max_importance_shift": (0.0, 1.0),
            "max_score_drop": (0.0, math.inf),
            "max_drift": (0.0, math.inf),
        }
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                option = "--" + name.replace("_", "-")
                raise BadInput(
                    f"{option} must be a number between {low} and {high}, not {value!r}",
                    hint=f"e.g. {option} {getattr(Thresholds, name)}",
                )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Check:
    """One comparison with the baseline: ``value`` against ``threshold``; ``detail`` says what moved.

    ``subject`` names the feature (or model output, or scorer) the value is about, where there is
    one. A check named in :data:`MINIMUM_CHECKS` passes when ``value >= threshold``, any other when
    ``value <= threshold``; a value that cannot be computed (``None``) fails, save where the check
    that builds it says otherwise (an undefined ``rank_correlation`` under a threshold of -1).
    """

    name: str
    value: float | None
    threshold: float
    passed: bool
    detail: str
    subject: str | None = None

    @classmethod
    def of(cls, name: str, value: float | None, threshold: float, detail: str, subject: str | None = None) -> Check:
        if value is None:
            passed = False
        elif name in MINIMUM_CHECKS:
            passed = value >= threshold
        else:
            passed = value <= threshold
        return cls(name, value, threshold, passed, detail, subject)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": json_value(self.value),
            "threshold": json_value(self.threshold),
            "passed": self.passed,
            "detail": self.detail,
            "subject": self.subject,
        }


# --------------------------------------------------------------------------------------------
# Measuring one run
# --------------------------------------------------------------------------------------------


@dataclass
class Measurement:
    """What one run measured on DATA, before any comparison.

    ``outputs`` maps each model output (a class label, or ``prediction`` for a regressor) to its
    values in ``space``; ``predicted`` holds the predicted class of every row (classifiers only).
    ``features`` are kept so that a baseline's bins can be applied to today's values.
    """

    importance: MethodImportance
    score: dict[str, Any] | None
    features: pd.DataFrame
    space: str
    outputs: dict[str, np.ndarray]
    predicted: pd.Series | None
    data_summary: dict[str, dict[str, Any]]
    prediction_summary: dict[str, Any]
    importance_params: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def measure(
    model: LoadedModel,
    rows: ModelRows,
    *,
    scoring: str | None = None,
    repeats: int = DEFAULT_REPEATS,
    seed: int = 0,
    n_jobs: int = 1,
) -> Measurement:
    """Importance, score, data summary and prediction summary of ``model`` on ``rows``.

    Importance is permutation importance when ``rows`` has a target (seeded: the same data and seed
    give the same numbers), else mean |SHAP|; the score is the permutation's unshuffled score.
    """
    method = "permutation" if rows.target is not None else "shap"
    result = compute_importance(model, rows, method=method, scoring=scoring, repeats=repeats, seed=seed, n_jobs=n_jobs)
    importance = result.methods[method]
    run_warnings = list(result.warnings)
    if method == "shap" and scoring is not None:
        run_warnings.append("--scoring has no effect without --target: there is no score to compute")
    score = None
    if method == "permutation":
        details = importance.details
        score = {"scorer": details["scoring"], "value": details["baseline_score"], "rows": details["rows"]}
    space, outputs, predicted = model_outputs(model, rows.features)
    prediction_summary = {
        "task": model.task,
        "space": space,
        "outputs": {name: numeric_summary(values) for name, values in outputs.items()},
        "predicted_class": None if predicted is None else categorical_summary(predicted),
    }
    return Measurement(
        importance=importance,
        score=score,
        features=rows.features,
        space=space,
        outputs=outputs,
        predicted=predicted,
        data_summary={name: summarize_column(rows.features[name]) for name in rows.features.columns},
        prediction_summary=prediction_summary,
        importance_params=result.params,
        warnings=run_warnings,
    )


def model_outputs(model: LoadedModel, features: pd.DataFrame) -> tuple[str, dict[str, np.ndarray], pd.Series | None]:
    """The model's outputs on ``features``: (space, values per output, predicted class per row).

    Classifiers give their probability of each class (their raw margin when they have no
    probabilities) and the class of the largest output; regressors their prediction.
    """
    if not model.is_classifier:
        values = model.output("raw").predict(features)
        return "raw", {"prediction": values[:, 0]}, None
    space = "probability" if hasattr(model.estimator, "predict_proba") else "raw"
    output = model.output(space)
    values = output.predict(features)
    labels = [str(label) for label in output.labels]
    predicted = pd.Series(np.asarray(labels, dtype=object)[values.argmax(axis=1)], index=features.index)
    return space, {label: values[:, i] for i, label in enumerate(labels)}, predicted


def output_name(space: str, output: str, task: str) -> str:
    """How an output reads to a person: ``probability of yes``, ``prediction``."""
    return output if task != "classification" else f"{space} of {output}"


# --------------------------------------------------------------------------------------------
# Distribution summaries, PSI and the KS-like distance
# --------------------------------------------------------------------------------------------


def is_numeric_column(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def summarize_column(values: pd.Series) -> dict[str, Any]:
    """A feature's distribution as :func:`numeric_summary` or :func:`categorical_summary` gives it."""
    if is_numeric_column(values):
        return numeric_summary(values.to_numpy(dtype=float))
    return categorical_summary(values)


def numeric_summary(values: np.ndarray) -> dict[str, Any]:
    """The distribution of numbers (NaN = missing), enough to compare later data with it.

    ``bins`` are the interior edges of the deciles of the present values (see :func:`quantile_grid`:
    duplicates dropped, so a column of few distinct values gets fewer bins); ``shares`` the share of
    *all* rows in each bin ``(-inf, e0], (e0, e1], ..., (e_last, inf)``, which with ``missing_share``
    sums to 1. ``cdf_points`` are the distinct percentiles (with the minimum and maximum) and ``cdf``
    the share of present values at or below each, for a KS-like distance. Infinite values fall in the
    outer bins and count in no statistic.
    """
    values = np.asarray(values, dtype=float)
    present = values[~np.isnan(values)]
    finite = np.sort(present[np.isfinite(present)])
    rows = len(values)
    if len(finite):
        edges = quantile_grid(finite, DECILES)
        # The ends as well (the summary's min and max): today's values beyond them must show in the KS.
        points = np.unique(np.concatenate([finite[[0, -1]], quantile_grid(finite, PERCENTILES)]))
        cdf = np.searchsorted(finite, points, side="right") / len(finite)
        statistics = {
            "mean": float(finite.mean()),
            "std": float(finite.std()),
            "min": float(finite[0]),
            "max": float(finite[-1]),
            "quantiles": {name: float(np.quantile(finite, q)) for name, q in SUMMARY_QUANTILES.items()},
        }
    else:
        edges, points, cdf = np.array([]), np.array([]), np.array([])
        statistics = {"mean": None, "std": None, "min": None, "max": None, "quantiles": None}
    shares = bucket_shares(values, edges)
    return {
        "kind": "numeric",
        "rows": rows,
        "missing_share": float(shares[-1]),
        **statistics,
        "bins": edges.tolist(),
        "shares": shares[:-1].tolist(),
        "cdf_points": points.tolist(),
        "cdf": cdf.tolist(),
    }


def quantile_grid(finite: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Distinct points that cut the sorted numbers ``finite`` at ``probabilities``, never one point per row.

    With at least ``ROWS_PER_POINT`` rows per point, the points are quantiles the column holds (so a
    column of few values keeps them apart in their own bins). With fewer rows, a full grid would be
    the sorted column itself, the raw data an audit.json must not hold: the rows are cut instead into
    groups of about ``ROWS_PER_POINT`` and each point lies halfway between the last value of one
    group and the first of the next, a value no row holds unless the two are equal. Fewer than
    ``2 * ROWS_PER_POINT`` rows give no point at all.
    """
    rows = len(finite)
    if rows >= ROWS_PER_POINT * len(probabilities):
        return np.unique(np.quantile(finite, probabilities, method="inverted_cdf"))
    groups = rows // ROWS_PER_POINT
    cuts = np.unique(np.round(np.arange(1, groups) * rows / max(groups, 1)).astype(int))
    return np.unique((finite[cuts - 1] + finite[cuts]) / 2)


def bucket_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of ``values`` in each bin ``(-inf, e0], ..., (e_last, inf)``, then the share of NaN."""
    values = np.asarray(values, dtype=float)
    missing = np.isnan(values)
    bins = np.searchsorted(np.asarray(edges, dtype=float), values[~missing], side="left")
    counts = np.bincount(bins, minlength=len(edges) + 1).astype(float)
    return np.append(counts, missing.sum()) / max(len(values), 1)


def category_text(value: Any) -> str | None:
    """A category as text (``1`` for a cell read as ``1.0``), ``None`` for an empty cell."""
    shown = display_value(value)
    return None if shown is None else str(shown)


def categorical_summary(values: pd.Series) -> dict[str, Any]:
    """The shares of the (at most ``MAX_CATEGORIES``) most frequent categories among all rows.

    The rarer categories share ``other_share`` and empty cells ``missing_share``; the three sum to 1.
    """
    texts = pd.Series([category_text(value) for value in values], dtype=object)
    rows = max(len(texts), 1)
    counts = texts.dropna().value_counts()
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    kept = ordered[:MAX_CATEGORIES]
    return {
        "kind": "categorical",
        "rows": len(texts),
        "missing_share": float(texts.isna().sum() / rows),
        "shares": {category: count / rows for category, count in kept},
        "other_share": sum(count for _, count in ordered[MAX_CATEGORIES:]) / rows,
    }


def population_stability_index(expected: Any, actual: Any) -> float:
    """PSI = sum((actual - expected) * ln(actual / expected)) over the buckets, shares floored at ``PSI_FLOOR``.

    0 for the same distribution; by the usual rule of thumb below 0.1 is stable, 0.1-0.25 a
    moderate shift, above 0.25 a large one.
    """
    expected = np.clip(np.asarray(expected, dtype=float), PSI_FLOOR, None)
    actual = np.clip(np.asarray(actual, dtype=float), PSI_FLOOR, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def numeric_drift(before: dict[str, Any], values: np.ndarray) -> dict[str, Any]:
    """PSI of ``values`` over the baseline's decile bins (and missing bucket), and the KS-like distance.

    ``ks`` is the largest gap between the two empirical CDFs at the baseline's percentiles: the
    Kolmogorov-Smirnov statistic read on the baseline's percentile grid (``None`` when that grid or
    today's column holds no numbers).
    """
    values = np.asarray(values, dtype=float)
    now = bucket_shares(values, np.asarray(before["bins"], dtype=float))
    psi = population_stability_index([*before["shares"], before["missing_share"]], now)
    present = np.sort(values[~np.isnan(values)])
    ks = None
    if len(present) and before["cdf_points"]:
        cdf_now = np.searchsorted(present, np.asarray(before["cdf_points"], dtype=float), side="right") / len(present)
        ks = float(np.max(np.abs(cdf_now - np.asarray(before["cdf"], dtype=float))))
    return {"psi": psi, "ks": ks, "missing_before": before["missing_share"], "missing_now": float(now[-1])}


def categorical_drift(before: dict[str, Any], values: pd.Series) -> dict[str, Any]:
    """PSI over the baseline's categories, one ``other/unseen`` bucket and one missing bucket.

    ``unseen`` lists today's categories that the baseline did not name, most frequent first;
    ``largest_change`` is the category whose share moved most.
    """
    texts = [category_text(value) for value in values]
    rows = max(len(texts), 1)
    known = list(before["shares"])
    counts = pd.Series([text for text in texts if text is not None], dtype=object).value_counts()
    shares_now = {category: float(counts.get(category, 0)) / rows for category in known}
    missing_now = sum(text is None for text in texts) / rows
    other_now = 1.0 - missing_now - sum(shares_now.values())
    psi = population_stability_index(
        [*before["shares"].values(), before["other_share"], before["missing_share"]],
        [*shares_now.values(), max(other_now, 0.0), missing_now],
    )
    unseen = [(category, count / rows) for category, count in counts.items() if category not in before["shares"]]
    changes = {category: shares_now[category] - share for category, share in before["shares"].items()}
    largest = max(changes, key=lambda category: abs(changes[category]), default=None)
    return {
        "psi": psi,
        "ks": None,
        "missing_before": before["missing_share"],
        "missing_now": missing_now,
        "unseen": [{"category": category, "share": share} for category, share in unseen[:10]],
        "largest_change": None
        if largest is None
        else {"category": largest, "before": before["shares"][largest], "now": shares_now[largest]},
    }


# --------------------------------------------------------------------------------------------
# Comparing with a baseline
# --------------------------------------------------------------------------------------------


@dataclass
class Comparison:
    """The checks of one run against its baseline, and the tables behind them.

    ``importance_not_compared`` says why ``importance`` is empty (the two runs measured importance
    differently), so a report can say so instead of showing an empty comparison.
    """

    checks: list[Check]
    importance: list[dict[str, Any]]
    drift: list[dict[str, Any]]
    prediction_drift: list[dict[str, Any]]
    score: dict[str, Any] | None
    warnings: list[str]
    importance_not_compared: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return json_value(
            {
                "score": self.score,
                "importance": self.importance,
                "importance_not_compared": self.importance_not_compared,
                "drift": self.drift,
                "prediction_drift": self.prediction_drift,
            }
        )


def compare(measurement: Measurement, baseline: dict[str, Any], thresholds: Thresholds) -> Comparison:
    """Every check of ``measurement`` against the ``baseline`` document (validated by :func:`check_audit_document`).

    A check that the two runs cannot both answer (no score on one side, another importance method)
    is left out and named in ``warnings``.
    """
    checks: list[Check] = []
    notes: list[str] = []
    score = _score_check(measurement.score, baseline["score"], thresholds, checks, notes)
    importance_rows: list[dict[str, Any]] = []
    not_compared = None
    before_importance = baseline["importance"]
    if before_importance["method"] == measurement.importance.name:
        importance_rows = importance_table(_importance_entries(measurement.importance), before_importance["features"])
        checks.extend(importance_checks(importance_rows, thresholds))
    else:
        not_compared = (
            f"the baseline measured {before_importance['method']} importance and this run "
            f"{measurement.importance.name} (permutation needs --target on both runs)"
        )
        notes.append(f"importance not compared: {not_compared}")
    prediction_rows = prediction_drift(measurement, baseline["prediction_summary"], notes)
    if prediction_rows:
        worst = max(prediction_rows, key=lambda row: row["psi"])
        checks.append(Check.of("prediction_drift", worst["psi"], thresholds.max_drift, worst["note"], worst["output"]))
    drift_rows = feature_drift(measurement, baseline["data_summary"], notes)
    checks.extend(
        Check.of(f"drift:{row['feature']}", row["psi"], thresholds.max_drift, row["note"], row["feature"])
        for row in drift_rows
    )
    base_rows = _summary_rows(baseline["data_summary"])
    if min(len(measurement.features), base_rows) < FEW_ROWS:
        notes.append(
            f"drift is measured on {min(len(measurement.features), base_rows)} rows: with fewer than {FEW_ROWS} "
            "rows on a side, decile shares and PSI move by chance"
        )
    return Comparison(
        checks=checks,
        importance=importance_rows,
        drift=sorted(drift_rows, key=lambda row: -row["psi"]),
        prediction_drift=prediction_rows,
        score=score,
        warnings=notes,
        importance_not_compared=not_compared,
    )


def _summary_rows(summaries: dict[str, Any]) -> int:
    return min((int(summary.get("rows", 0)) for summary in summaries.values()), default=0)


def _score_check(
    now: dict[str, Any] | None,
    before: dict[str, Any] | None,
    thresholds: Thresholds,
    checks: list[Check],
    notes: list[str],
) -> dict[str, Any] | None:
    if before is None and now is None:
        return None
    if before is None or now is None:
        side = "the baseline" if before is None else "this run"
        notes.append(f"score_drop not checked: {side} has no score (it ran without --target)")
        return None
    if before["scorer"] != now["scorer"]:
        notes.append(f"score_drop not checked: the baseline scored {before['scorer']}, this run {now['scorer']}")
        return None
    drop = float(before["value"]) - float(now["value"])
    detail = f"{now['scorer']} {_number(before['value'])} -> {_number(now['value'])}"
    checks.append(Check.of("score_drop", drop, thresholds.max_score_drop, detail, now["scorer"]))
    return {"scorer": now["scorer"], "before": before["value"], "now": now["value"], "drop": drop}


def _importance_entries(importance: MethodImportance) -> list[dict[str, Any]]:
    return [entry.to_dict() for entry in importance.features]


def importance_shares(entries: list[dict[str, Any]]) -> dict[str, float]:
    """Each feature's share of the total importance; negative importances count as 0 (they carry nothing)."""
    positive = {entry["feature"]: max(float(entry["importance"] or 0.0), 0.0) for entry in entries}
    total = math.fsum(positive.values())
    return {name: (value / total if total > 0 else 0.0) for name, value in positive.items()}


def ranked(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``entries`` (feature, importance, std) with their 1-based ``rank`` and ``share``, largest first.

    Ties share the best rank of the tie ("1, 2, 2, 4"): when every importance is 0 (shuffled
    labels), no feature "fell" from #2 to #3 by the order a sort happened to leave them in.
    """
    shares = importance_shares(entries)
    ordered = sorted(entries, key=lambda entry: -float(entry["importance"] or 0.0))
    result, rank, previous = [], 0, None
    for position, entry in enumerate(ordered, 1):
        value = float(entry["importance"] or 0.0)
        if value != previous:
            rank, previous = position, value
        result.append({**entry, "rank": rank, "share": shares[entry["feature"]]})
    return result


def importance_table(now: list[dict[str, Any]], before: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per feature, in today's order: rank, share and importance now and in the baseline."""
    now_ranked = ranked(now)
    before_by_name = {entry["feature"]: entry for entry in ranked(before)}
    rows = []
    for entry in now_ranked:
        past = before_by_name.get(entry["feature"])
        if past is None:
            continue
        rows.append(
            {
                "feature": entry["feature"],
                "rank_before": past["rank"],
                "rank_now": entry["rank"],
                "rank_change": entry["rank"] - past["rank"],
                "share_before": past["share"],
                "share_now": entry["share"],
                "share_change": entry["share"] - past["share"],
                "importance_before": past["importance"],
                "importance_now": entry["importance"],
            }
        )
    return rows


def noise_share(n_features: int) -> float:
    """The share of the total importance below which a feature's rank is noise.

    ``MIN_TOP_SHARE`` (5%), or half of an even share when that is smaller, so that a model whose
    importance is spread over many features still has features that count.
    """
    return min(MIN_TOP_SHARE, 0.5 / max(n_features, 1))


def importance_checks(rows: list[dict[str, Any]], thresholds: Thresholds) -> list[Check]:
    """``rank_change``, ``rank_correlation`` and ``importance_shift`` from :func:`importance_table`'s rows.

    Features under :func:`noise_share` of the importance are left out of ``rank_change`` and tie at
    zero in the rank correlation: the order of features that carry nothing changes by chance.
    """
    from scipy.stats import spearmanr

    floor = noise_share(len(rows))
    top = [row for row in rows if row["rank_before"] <= TOP_K and row["share_before"] >= floor]
    worst = max(top, key=lambda row: (row["rank_change"], -row["rank_before"]), default=None)
    if worst is None:
        fall, fall_detail = 0, f"no baseline feature held {floor:.1%} of the importance"
    elif worst["rank_change"] > 0:
        fall = worst["rank_change"]
        fall_detail = f"{worst['feature']} fell from #{worst['rank_before']} to #{worst['rank_now']}"
    else:
        fall, fall_detail = 0, f"no top-{TOP_K} feature of the baseline fell in rank"

    now = np.array([row["share_now"] if row["share_now"] >= floor else 0.0 for row in rows])
    before = np.array([row["share_before"] if row["share_before"] >= floor else 0.0 for row in rows])
    if len(rows) < 2 or np.array_equal(now, before):
        rho: float | None = 1.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a constant ranking: rho is undefined
            statistic = float(spearmanr(now, before).statistic)
        rho = None if math.isnan(statistic) else statistic
    if rho is not None:
        correlation = Check.of(
            "rank_correlation",
            rho,
            thresholds.min_rank_correlation,
            f"Spearman rho over {len(rows)} features (those under {floor:.1%} of the importance tie at 0)",
        )
    else:
        # No ranking to correlate (e.g. shuffled labels: every permutation importance is 0 or below)
        # is a change worth failing, unless the user switched the check off with the lowest rho, -1.
        side = "this run's" if len(set(now.tolist())) == 1 else "the baseline's"
        correlation = Check(
            "rank_correlation",
            None,
            thresholds.min_rank_correlation,
            thresholds.min_rank_correlation <= -1,
            f"undefined: {side} importance ranking is constant (e.g. every importance is 0 or below)",
        )

    moved = max(rows, key=lambda row: abs(row["share_change"]), default=None)
    shift = abs(moved["share_change"]) if moved else 0.0
    shift_detail = (
        f"{moved['feature']}: {moved['share_before']:.0%} -> {moved['share_now']:.0%} of the total importance"
        if moved
        else "no feature in common"
    )
    return [
        Check.of("rank_change", fall, thresholds.max_rank_change, fall_detail, worst["feature"] if fall else None),
        correlation,
        Check.of("importance_shift", shift, thresholds.max_importance_shift, shift_detail, moved and moved["feature"]),
    ]


def feature_drift(measurement: Measurement, summaries: dict[str, Any], notes: list[str]) -> list[dict[str, Any]]:
    """PSI (and more) of every feature of today's data against the baseline's summary of it."""
    rows = []
    for name in measurement.features.columns:
        before = summaries.get(name)
        now = measurement.data_summary[name]
        if before is None:
            continue
        if before["kind"] != now["kind"]:
            notes.append(f"drift of {name} not checked: it was {before['kind']} in the baseline, {now['kind']} now")
            continue
        values = measurement.features[name]
        if now["kind"] == "numeric":
            drift = numeric_drift(before, values.to_numpy(dtype=float))
            note = f"mean {_number(before['mean'])} -> {_number(now['mean'])}"
            if drift["ks"] is not None:
                note += f"; KS {drift['ks']:.2f}"
        else:
            drift = categorical_drift(before, values)
            change = drift["largest_change"]
            note = f"{change['category']} {change['before']:.0%} -> {change['now']:.0%}" if change else "no category"
            if drift["unseen"]:
                note += "; unseen " + ", ".join(f"{u['category']} ({u['share']:.0%})" for u in drift["unseen"][:3])
        if abs(drift["missing_now"] - drift["missing_before"]) >= MISSING_NOTE:
            note += f"; missing {drift['missing_before']:.0%} -> {drift['missing_now']:.0%}"
        rows.append({"feature": name, "kind": now["kind"], **drift, "note": note})
    return rows


def prediction_drift(measurement: Measurement, before: dict[str, Any], notes: list[str]) -> list[dict[str, Any]]:
    """PSI of each model output (and of the predicted class) against the baseline's prediction summary."""
    rows = []
    now = measurement.prediction_summary
    if before["space"] == now["space"]:
        for output, values in measurement.outputs.items():
            past = before["outputs"].get(output)
            if past is None:
                continue
            drift = numeric_drift(past, values)
            name = output_name(now["space"], output, now["task"])
            note = f"{name}: mean {_number(past['mean'])} -> {_number(now['outputs'][output]['mean'])}"
            rows.append(
                {
                    "output": name,
                    **drift,
                    "mean_before": past["mean"],
                    "mean_now": now["outputs"][output]["mean"],
                    "note": note,
                }
            )
    else:
        notes.append(
            f"prediction outputs not compared: the baseline recorded {before['space']} outputs, this run {now['space']}"
        )
    if measurement.predicted is not None and before.get("predicted_class") is not None:
        drift = categorical_drift(before["predicted_class"], measurement.predicted)
        change = drift["largest_change"]
        note = "predicted class" + (
            f": {change['category']} {change['before']:.0%} -> {change['now']:.0%}" if change else ""
        )
        rows.append({"output": "predicted class", **drift, "mean_before": None, "mean_now": None, "note": note})
    if not rows:
        notes.append("prediction_drift not checked: the baseline's predictions have nothing in common with this run's")
    return rows


def _number(value: Any) -> str:
    from xai_cli.plots import format_number

    return "n/a" if value is None else format_number(float(value), 3)


# --------------------------------------------------------------------------------------------
# Baselines: reading, validating, finding in the history
# --------------------------------------------------------------------------------------------


class UnusableAudit(Exception):
    """An ``audit.json`` that cannot serve as a baseline; the message says why."""


@dataclass
class Baseline:
    """The audit document a run compares with, where it came from, and whether the model changed since."""

    document: dict[str, Any]
    path: Path
    model_changed: bool

    def reference(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "created_at": self.document["created_at"],
            "model_sha256": self.document["model"]["sha256"],
            "model_changed": self.model_changed,
            "data_sha256": self.document["data"].get("sha256"),
        }

    def warnings(self) -> list[str]:
        if not self.model_changed:
            return []
        return [
            f"the baseline {self.path} audited another model file (sha256 {self.document['model']['sha256'][:12]}…) "
            "with the same features: this run compares a changed (retrained?) model with it"
        ]


def read_audit(path: Path) -> dict[str, Any]:
    """The audit document in ``path``; :class:`UnusableAudit` when it is missing, unreadable or not an audit."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UnusableAudit("is missing") from None
    except IsADirectoryError:
        raise UnusableAudit("is a folder, not a file") from None
    except OSError as exc:
        raise UnusableAudit(f"cannot be read ({exc.strerror})") from None
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise UnusableAudit("is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise UnusableAudit(f"is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except (ValueError, RecursionError):
        raise UnusableAudit("is not valid JSON") from None
    check_audit_document(document)
    return document


def check_audit_document(document: Any) -> None:
    """Raise :class:`UnusableAudit` unless ``document`` holds every field a comparison reads, well typed."""
    if not isinstance(document, dict):
        raise UnusableAudit(f"holds a JSON {type(document).__name__}, not an audit document")
    kind = document.get("kind")
    if kind != KIND:
        raise UnusableAudit(f"is an {kind!r} document, not an audit" if kind else "is not an xai audit document")
    if document.get("schema_version") != SCHEMA_VERSION:
        raise UnusableAudit(
            f"has schema_version {document.get('schema_version')!r}; this xai reads version {SCHEMA_VERSION}"
        )
    _expect(isinstance(_field(document, "created_at"), str), "created_at")
    _expect(isinstance(_field(document, "model.sha256"), str), "model.sha256")
    _expect(_field(document, "model.task") in ("classification", "regression"), "model.task")
    classes = _field(document, "model.classes")
    _expect(
        classes is None or (isinstance(classes, list) and all(isinstance(c, str) for c in classes)), "model.classes"
    )
    features = _field(document, "data.features")
    _expect(isinstance(features, list) and all(isinstance(name, str) for name in features), "data.features")
    _expect(isinstance(_field(document, "importance.method"), str), "importance.method")
    entries = _field(document, "importance.features")
    _expect(
        isinstance(entries, list)
        and all(
            isinstance(entry, dict)
            and isinstance(entry.get("feature"), str)
            and (entry.get("importance") is None or _is_number(entry["importance"]))
            for entry in entries
        ),
        "importance.features",
    )
    score = _field(document, "score")
    _expect(
        score is None
        or (isinstance(score, dict) and isinstance(score.get("scorer"), str) and _is_number(score.get("value"))),
        "score",
    )
    summaries = _field(document, "data_summary")
    _expect(isinstance(summaries, dict) and all(name in summaries for name in features), "data_summary")
    for name in features:
        _check_summary(summaries[name], f"data_summary.{name}")
    prediction = _field(document, "prediction_summary")
    _expect(isinstance(prediction, dict) and isinstance(prediction.get("space"), str), "prediction_summary.space")
    outputs = prediction.get("outputs")
    _expect(isinstance(outputs, dict), "prediction_summary.outputs")
    for name, summary in outputs.items():
        _check_summary(summary, f"prediction_summary.outputs.{name}", kind="numeric")
    if prediction.get("predicted_class") is not None:
        _check_summary(prediction["predicted_class"], "prediction_summary.predicted_class", kind="categorical")


def _field(document: dict[str, Any], path: str) -> Any:
    value: Any = document
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise UnusableAudit(f"lacks {path}")
        value = value[key]
    return value


def _expect(condition: bool, path: str) -> None:
    if not condition:
        raise UnusableAudit(f"has a malformed {path}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(value: Any) -> bool:
    return isinstance(value, list) and all(_is_number(item) for item in value)


def _check_summary(summary: Any, where: str, *, kind: str | None = None) -> None:
    kinds = (kind,) if kind else ("numeric", "categorical")
    _expect(isinstance(summary, dict) and summary.get("kind") in kinds, where)
    _expect(_is_number(summary.get("missing_share")), f"{where}.missing_share")
    _expect(isinstance(summary.get("rows"), int), f"{where}.rows")
    if summary["kind"] == "numeric":
        bins = summary.get("bins")
        _expect(_numbers(bins) and bins == sorted(bins), f"{where}.bins")
        _expect(_numbers(summary.get("shares")) and len(summary["shares"]) == len(bins) + 1, f"{where}.shares")
        _expect(_numbers(summary.get("cdf_points")), f"{where}.cdf_points")
        _expect(_numbers(summary.get("cdf")) and len(summary["cdf"]) == len(summary["cdf_points"]), f"{where}.cdf")
        _expect(summary.get("mean") is None or _is_number(summary.get("mean")), f"{where}.mean")
    else:
        shares = summary.get("shares")
        _expect(isinstance(shares, dict) and all(_is_number(share) for share in shares.values()), f"{where}.shares")
        _expect(_is_number(summary.get("other_share")), f"{where}.other_share")


def usable_baseline(document: dict[str, Any], path: Path, model: LoadedModel) -> Baseline:
    """``document`` as the baseline of ``model``; :class:`UnusableAudit` when it audited another kind of model.

    Another model file with the same features, task and classes is allowed (comparing a retrained
    model is what an audit is for) and recorded as ``model_changed``. A regressor against a
    classifier, or a classifier of other classes, is another model: its score, importance and
    outputs answer other questions, so comparing them would only skip or fail checks by accident.
    """
    before = document["data"]["features"]
    if set(before) != set(model.feature_names):
        lost = [name for name in before if name not in model.feature_names]
        new = [name for name in model.feature_names if name not in before]
        parts = [
            f"features only the baseline had: {', '.join(lost)}" if lost else "",
            f"new features: {', '.join(new)}" if new else "",
        ]
        raise UnusableAudit(f"audited a model with other features ({'; '.join(p for p in parts if p)})")
    task = document["model"]["task"]
    if task != model.task:
        raise UnusableAudit(f"audited a {task} model with the same features; this one is a {model.task} model")
    classes = document["model"]["classes"]
    if model.task == "classification" and set(classes or []) != set(model.classes or []):
        raise UnusableAudit(
            f"audited a classifier of the classes {_listed(classes or [])}; "
            f"this one predicts {_listed(model.classes or [])}"
        )
    return Baseline(document, path, model_changed=document["model"]["sha256"] != model.sha256)


def _listed(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def baseline_file(path: str | os.PathLike) -> Path:
    """The ``audit.json`` that ``--baseline`` names: the file itself, or the one in a run folder."""
    location = Path(path)
    if location.is_dir():
        if not (location / AUDIT_FILE).exists():
            raise BadInput(
                f"--baseline {location} is a folder without {AUDIT_FILE}",
                hint="pass a run folder or its audit.json; to compare with the newest run of a history "
                "folder, pass it as --history",
            )
        location = location / AUDIT_FILE
    return location


def check_baseline_kept(baseline: Path, *, history: Path | None, out: Path | None) -> None:
    """Raise :class:`BadInput` when the run would write its ``audit.json`` over the ``--baseline`` file.

    ``--baseline xai-output/audit.json`` with the default ``--out xai-output`` would replace the
    reference the user chose with today's run, so the next comparison would be with itself. Called
    before anything is loaded or measured; a run with ``--history`` writes a new folder and is safe.
    """
    if history is not None:
        return
    out_dir = out or DEFAULT_OUT
    try:
        same = os.path.samefile(baseline, out_dir / AUDIT_FILE)
    except OSError:  # one of the two does not exist: they are not the same file
        return
    if same:
        raise BadInput(
            f"--baseline {baseline} is the {AUDIT_FILE} this run would write (--out {out_dir}): "
            "the run would overwrite the baseline it compares with",
            hint="pass --out with another folder, or keep every run with --history DIR",
        )


def load_baseline(path: str | os.PathLike, model: LoadedModel) -> Baseline:
    """The ``--baseline`` file (or the ``audit.json`` of a run folder) for ``model``; exit 2 when unusable."""
    location = baseline_file(path)
    try:
        return usable_baseline(read_audit(location), location, model)
    except UnusableAudit as exc:
        raise BadInput(
            f"--baseline {location} cannot be used: it {exc}",
            hint="pass the audit.json of an earlier `xai audit` run of a model with the same features, "
            "task and classes",
        ) from None


def run_key(name: str) -> tuple[str, int] | None:
    """How run folders sort: (UTC timestamp, suffix number); ``None`` for a name that is not a run's."""
    match = RUN_NAME.fullmatch(name)
    if match is None:
        return None
    return match.group(1), int(match.group(2) or 1)


def run_stamp(when: datetime) -> str:
    """The UTC timestamp that names a run folder: ``20261201T021530Z``."""
    return when.astimezone(timezone.utc).strftime(STAMP_FORMAT)


@dataclass
class HistorySearch:
    """What :func:`find_baseline` found: the baseline (or ``None``), warnings, and the runs it passed over.

    ``skipped_runs`` holds each run folder (or run-named file) that could not serve, newest first,
    with the reason; entries that are not named like a run are only in ``warnings``.
    """

    baseline: Baseline | None
    warnings: list[str]
    skipped_runs: list[tuple[Path, str]] = field(default_factory=list)

    def skipped_note(self) -> str | None:
        """One line on the runs skipped for an older one, worth showing even under ``--quiet``.

        A corrupt newest run that is silently passed over would hide itself every night; the line
        names it so that someone moves it away.
        """
        if self.baseline is None or not self.skipped_runs:
            return None
        newest, reason = self.skipped_runs[0]
        more = f" and {len(self.skipped_runs) - 1} more" if len(self.skipped_runs) > 1 else ""
        return f"compared with {self.baseline.path.parent}, skipping unusable newer runs: {newest}: {reason}{more}"


def find_baseline(history: Path, model: LoadedModel, *, until: str) -> HistorySearch:
    """The newest usable run in ``history`` whose timestamp is ``until`` or earlier.

    Entries are walked newest first (by folder name); every entry skipped on the way is named in a
    warning: a name that is not a run's, a file, a folder without ``audit.json``, an unreadable or
    foreign document, a run of another kind of model. Hidden entries (``.name``) are ignored, and a
    missing or empty folder means there is no baseline yet. When entries named like runs exist but
    none is usable, :class:`BadInput` names the newest and why: a cron job would otherwise pass as
    ``no-baseline`` every night, and its own run would become the next night's baseline. Nothing is
    changed or deleted.
    """
    if not history.exists():
        return HistorySearch(None, [])
    try:
        entries = [entry for entry in history.iterdir() if not entry.name.startswith(".")]
    except OSError as exc:
        raise BadInput(
            f"--history {history} cannot be listed: {exc.strerror}", hint="check the path and its permissions"
        ) from None
    notes: list[str] = []
    runs = []
    for entry in entries:
        key = run_key(entry.name)
        if key is None:
            notes.append(
                f"history: skipped {entry}: not a run folder (its name is not a UTC time like 20261201T021530Z)"
            )
        elif key[0] <= until:
            runs.append((key, entry))
    skipped: list[tuple[Path, str]] = []
    for _, entry in sorted(runs, reverse=True):
        if not entry.is_dir():
            reason = "a file, not a run folder"
        else:
            try:
                found = usable_baseline(read_audit(entry / AUDIT_FILE), entry / AUDIT_FILE, model)
            except UnusableAudit as exc:
                reason = f"its {AUDIT_FILE} {exc}"
            else:
                return HistorySearch(found, notes, skipped)
        skipped.append((entry, reason))
        notes.append(f"history: skipped {entry}: {reason}")
    if skipped:
        newest, reason = skipped[0]
        older = len(skipped) - 1
        more = f" (and {older} older unusable run{'s' if older > 1 else ''})" if older else ""
        raise BadInput(
            f"no usable earlier run in --history {history}: {newest}: {reason}{more}",
            hint=f"move unusable runs out of {history} (xai deletes nothing), or pass --baseline FILE "
            "to compare with a given audit.json",
        )
    return HistorySearch(None, notes)


def check_history_folder(history: Path) -> None:
    """Raise :class:`BadInput` when ``--history`` names something that cannot hold run folders."""
    if history.exists() and not history.is_dir():
        raise BadInput(f"--history {history} is a file, not a folder", hint="pass a folder (created when missing)")


def create_run_folder(history: Path, when: datetime) -> Path:
    """A new folder ``history/<UTC time>`` (``-2``, ``-3``... for a second run in the same second).

    ``os.mkdir`` either creates the folder or fails, so two runs started at once never share one.
    """
    check_history_folder(history)
    try:
        history.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(
            f"cannot create --history {history}: {exc.strerror}", hint="check the path and permissions"
        ) from None
    stamp = run_stamp(when)
    for number in range(1, MAX_RUNS_PER_SECOND):
        folder = history / (stamp if number == 1 else f"{stamp}-{number}")
        try:
            os.mkdir(folder)
        except FileExistsError:
            continue
        except OSError as exc:
            raise BadInput(
                f"cannot create {folder}: {exc.strerror}", hint="check the permissions of --history"
            ) from None
        return folder
    raise BadInput(f"{history} already holds {MAX_RUNS_PER_SECOND} runs for {stamp}", hint="pass another --history")


# --------------------------------------------------------------------------------------------
# The run, audit.json and the verdict
# --------------------------------------------------------------------------------------------


@dataclass
class AuditRun:
    """One finished run: its ``audit.json`` document, the folder it was written to, and a line for stderr.

    ``skipped_note`` is :meth:`HistorySearch.skipped_note`: set when newer unusable runs of the
    history were passed over for an older baseline.
    """

    document: dict[str, Any]
    out_dir: Path
    skipped_note: str | None = None


def run_audit(
    model: LoadedModel,
    table: Table,
    rows: ModelRows,
    *,
    thresholds: Thresholds,
    baseline: Baseline | None = None,
    history: Path | None = None,
    out: Path | None = None,
    scoring: str | None = None,
    repeats: int = DEFAULT_REPEATS,
    seed: int = 0,
    n_jobs: int = 1,
) -> AuditRun:
    """Find the baseline, measure, compare with it, write every file.

    The run goes to a new run folder in ``history``, else to ``out`` (default ``xai-output``). The
    baseline is ``baseline``, else the newest usable run of ``history``, looked up before anything
    is measured or written: a history of only unusable runs raises :class:`BadInput` and leaves the
    folder as it was.
    """
    now = utc_now()
    notes: list[str] = []
    search = None
    if history is not None:
        check_history_folder(history)
        if baseline is None:
            search = find_baseline(history, model, until=run_stamp(now))
            baseline, notes = search.baseline, list(search.warnings)
    elif baseline is None:
        notes.append("no --history or --baseline: nothing to compare with (pass --history DIR to keep runs)")
    measurement = measure(model, rows, scoring=scoring, repeats=repeats, seed=seed, n_jobs=n_jobs)
    if history is not None:
        out_dir = create_run_folder(history, now)
        if out is not None:
            notes.append(f"--out {out} is not used: with --history the run is written to {out_dir}")
    else:
        out_dir = out or DEFAULT_OUT
    comparison = compare(measurement, baseline.document, thresholds) if baseline is not None else None
    params = {
        "importance": measurement.importance_params,
        "thresholds": thresholds.to_dict(),
        "history": None if history is None else str(history),
        "baseline": None if baseline is None else str(baseline.path),
    }
    document = build_document(
        measurement,
        model=model,
        table=table,
        rows=rows,
        baseline=baseline,
        comparison=comparison,
        params=params,
        created_at=now,
        extra_warnings=notes,
    )
    write_audit_outputs(document, out_dir)
    return AuditRun(document, out_dir, search.skipped_note() if search is not None else None)


def build_document(
    measurement: Measurement,
    *,
    model: LoadedModel,
    table: Table,
    rows: ModelRows,
    baseline: Baseline | None,
    comparison: Comparison | None,
    params: dict[str, Any],
    created_at: datetime,
    extra_warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``audit.json`` document (schema_version 1, kind ``audit``): a verdict, and a baseline for later runs."""
    from xai_cli.explain import library_versions

    checks = comparison.checks if comparison is not None else []
    if baseline is None:
        status = "no-baseline"
    else:
        status = "pass" if all(check.passed for check in checks) else "fail"
    importance = measurement.importance
    run_warnings = [
        *measurement.warnings,
        *extra_warnings,
        *(baseline.warnings() if baseline is not None else []),
        *(comparison.warnings if comparison is not None else []),
    ]
    return json_value(
        {
            "schema_version": SCHEMA_VERSION,
            "kind": KIND,
            "tool": {"name": "xai-cli", "version": __version__},
            "created_at": created_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "status": status,
            "model": {
                "path": model.path,
                "sha256": model.sha256,
                "type": model.type_name,
                "task": model.task,
                "classes": model.classes,
            },
            "data": {
                "path": table.path,
                "sha256": table.sha256,
                "rows": len(rows),
                "features": list(model.feature_names),
                "target": None if rows.target is None else str(rows.target.name),
            },
            "checks": [check.to_dict() for check in checks],
            "baseline": None if baseline is None else baseline.reference(),
            "importance": {
                "method": importance.name,
                "kind": importance.kind,
                "what": importance.what,
                "scoring": importance.details.get("scoring"),
                "features": ranked(_importance_entries(importance)),
            },
            "score": measurement.score,
            "data_summary": measurement.data_summary,
            "prediction_summary": measurement.prediction_summary,
            "comparison": None if comparison is None else comparison.to_dict(),
            "params": params,
            "versions": library_versions(model),
            "warnings": list(dict.fromkeys(run_warnings)),
        }
    )


def check_text(check: dict[str, Any]) -> str:
    """A check in a few words: ``score_drop 0.21 > 0.05 (accuracy)``, ``drift:age psi 1.3 > 0.25``."""
    name, value, threshold = check["name"], check["value"], check["threshold"]
    if value is None:
        return f"{name} {check['detail']}"
    sign = "<" if name in MINIMUM_CHECKS else ">"
    if check["passed"]:
        sign = ">=" if name in MINIMUM_CHECKS else "<="
    measured = "psi " if name.startswith("drift:") or name == "prediction_drift" else ""
    text = f"{name} {measured}{_number(value)} {sign} {_number(threshold)}"
    subject = check.get("subject")
    return text if not subject or name.startswith("drift:") else f"{text} ({subject})"


def verdict(document: dict[str, Any], out_dir: Path) -> str:
    """The one line a cron mail shows: what failed, or that the audit passed or had no baseline."""
    if document["status"] == "no-baseline":
        return f"audit: no baseline yet, wrote {out_dir}"
    checks = document["checks"]
    failed = [check for check in checks if not check["passed"]]
    if not failed:
        return f"audit passed ({len(checks)} checks), wrote {out_dir}"
    shown = "; ".join(check_text(check) for check in failed[:MAX_VERDICT_FAILURES])
    more = f"; and {len(failed) - MAX_VERDICT_FAILURES} more" if len(failed) > MAX_VERDICT_FAILURES else ""
    return f"audit FAILED: {shown}{more} (report: {out_dir / REPORT_FILE})"


# --------------------------------------------------------------------------------------------
# Files: plots, report.html, audit.json
# --------------------------------------------------------------------------------------------


def write_audit_outputs(document: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write ``plots/``, ``report.html`` and, last, ``audit.json`` into ``out_dir``, each atomically.

    ``audit.json`` comes last, so a run folder that holds one is complete. Returns the plot files.
    """
    from xai_cli.output import write_json, write_text
    from xai_cli.plots import save_png

    plot_files = {"importance": out_dir / "plots" / IMPORTANCE_PLOT}
    save_png(importance_vs_baseline_figure(document), plot_files["importance"])
    if document["comparison"] is not None and (
        document["comparison"]["drift"] or document["comparison"]["prediction_drift"]
    ):
        plot_files["drift"] = out_dir / "plots" / DRIFT_PLOT
        save_png(drift_figure(document), plot_files["drift"])
    write_text(out_dir / REPORT_FILE, audit_report_html(document, plot_files))
    write_json(out_dir / AUDIT_FILE, document)
    return plot_files


def _plot_label(text: str) -> str:
    from xai_cli.plots import MAX_NAME_CHARS, shorten

    return shorten(text, MAX_NAME_CHARS).replace("$", r"\$")


def importance_vs_baseline_figure(document: dict[str, Any], *, max_features: int = MAX_PLOT_FEATURES) -> Figure:
    """Each feature's share of the total importance, this run against the baseline, as grouped bars.

    Features keep today's order (most important on top), the ``max_features`` largest of either run
    shown; a label says how the rank moved. A feature under :func:`noise_share` in both runs gets no
    rank arrow and a grey name: its rank moves by chance (``#45 → #15`` among features that carry
    nothing) and must not draw the eye. This run is solid blue, the baseline hatched orange, so the
    two read apart in grey too.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    from xai_cli.plots import FONT_SIZE, GRID, GROUP_COLOURS, GROUP_HATCHES, INK, MUTED, POSITIVE, SMALL_FONT_SIZE

    comparison = document["comparison"]
    rows = comparison["importance"] if comparison and comparison["importance"] else None
    if rows is None:
        rows = [
            {"feature": entry["feature"], "rank_now": entry["rank"], "share_now": entry["share"]}
            for entry in document["importance"]["features"]
        ]
    shown = sorted(rows, key=lambda row: -max(row["share_now"], row.get("share_before") or 0.0))[:max_features]
    shown = sorted(shown, key=lambda row: row["rank_now"])[::-1]
    with_baseline = "share_before" in rows[0] if rows else False
    floor = noise_share(len(rows))
    labels, noise = [], []
    for row in shown:
        carries_nothing = with_baseline and max(row["share_now"], row["share_before"]) < floor
        moved = with_baseline and row["rank_before"] != row["rank_now"] and not carries_nothing
        rank = f"#{row['rank_before']} → #{row['rank_now']}" if moved else f"#{row['rank_now']}"
        labels.append(f"{_plot_label(row['feature'])}  {rank}")
        noise.append(carries_nothing)
    height = 1.6 + (0.42 if with_baseline else 0.3) * max(len(shown), 1)
    figure = Figure(figsize=(8.5, height), dpi=100, layout="constrained", facecolor="white")
    ax = figure.add_subplot()
    positions = np.arange(len(shown), dtype=float)
    bar = 0.4 if with_baseline else 0.7
    ax.barh(
        positions + (bar / 2 if with_baseline else 0.0),
        [row["share_now"] for row in shown],
        height=bar,
        color=POSITIVE,
        edgecolor="white",
        label="this run",
    )
    if with_baseline:
        ax.barh(
            positions - bar / 2,
            [row["share_before"] for row in shown],
            height=bar,
            color=GROUP_COLOURS[1],
            hatch=GROUP_HATCHES[1],
            edgecolor="white",
            label=f"baseline ({document['baseline']['created_at']})",
        )
    ax.set_yticks(positions, labels, fontsize=FONT_SIZE)
    for tick, carries_nothing in zip(ax.get_yticklabels(), noise):
        tick.set_color(MUTED if carries_nothing else INK)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.grid(axis="x", color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.spines["left"].set_color(MUTED)
    importance = document["importance"]
    scoring = f", {importance['scoring']}" if importance.get("scoring") else ""
    xlabel = f"share of the total importance ({importance['method']}{scoring})"
    if any(noise):
        xlabel += f"\ngrey names: under {floor:.1%} of the importance in both runs, so their rank is noise"
    ax.set_xlabel(xlabel, color=INK)
    if with_baseline:
        title = "Importance: this run vs the baseline"
    elif document["baseline"] is not None:
        title = "Importance (not compared: the baseline measured it another way)"
    else:
        title = "Importance (no baseline yet)"
    if len(shown) < len(rows):
        title += f", top {len(shown)} of {len(rows)} features"
    ax.set_title(title, loc="left", color=INK)
    if with_baseline:
        figure.legend(loc="outside lower center", ncols=2, fontsize=SMALL_FONT_SIZE, frameon=False)
    return figure


def drift_figure(document: dict[str, Any], *, max_features: int = MAX_PLOT_FEATURES) -> Figure:
    """PSI of every feature (and of the predictions) against the baseline, with the ``--max-drift`` line.

    Bars over the threshold are hatched vermillion, the others blue; the largest PSI is on top. The
    title counts every feature and output, and says how many bars are shown when not all fit.
    """
    from matplotlib.figure import Figure

    from xai_cli.plots import FONT_SIZE, GRID, INK, MUTED, NEGATIVE, NEGATIVE_HATCH, POSITIVE, SMALL_FONT_SIZE

    comparison = document["comparison"]
    threshold = document["params"]["thresholds"]["max_drift"]
    entries = [(_plot_label(row["feature"]), row["psi"]) for row in comparison["drift"]]
    entries += [(_plot_label(f"prediction: {row['output']}"), row["psi"]) for row in comparison["prediction_drift"]]
    total = len(entries)
    failing = sum(psi > threshold for _, psi in entries)
    entries = sorted(entries, key=lambda entry: -entry[1])[:max_features][::-1]
    figure = Figure(figsize=(8.5, 1.6 + 0.3 * max(len(entries), 1)), dpi=100, layout="constrained", facecolor="white")
    ax = figure.add_subplot()
    positions = np.arange(len(entries))
    values = [psi for _, psi in entries]
    over = [psi > threshold for psi in values]
    ax.barh(
        positions,
        values,
        height=0.7,
        color=[NEGATIVE if flag else POSITIVE for flag in over],
        hatch=[NEGATIVE_HATCH if flag else "" for flag in over],
        edgecolor="white",
    )
    for y, psi in zip(positions, values):
        # Right of the bar, or of the threshold line when the bar is shorter, so the line never crosses it.
        ax.text(max(psi, threshold), y, f"  {psi:.3g}", va="center", ha="left", fontsize=SMALL_FONT_SIZE, color=MUTED)
    ax.axvline(threshold, color=INK, linestyle="--", linewidth=1.2)
    ax.text(
        threshold,
        1.0,
        f" --max-drift {threshold:g}",
        transform=ax.get_xaxis_transform(),
        va="bottom",
        ha="left",
        fontsize=SMALL_FONT_SIZE,
        color=INK,
    )
    ax.set_yticks(positions, [label for label, _ in entries], fontsize=FONT_SIZE)
    ax.set_xlim(0, max([*values, threshold]) * 1.2 or 1.0)
    ax.grid(axis="x", color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel("population stability index against the baseline (0: same distribution)", color=INK)
    title = f"Drift: {failing} of {total} over the threshold" if failing else f"Drift: all {total} under the threshold"
    if len(entries) < total:
        title += f" ({len(entries)} largest shown)"
    ax.set_title(title, loc="left", color=INK, pad=18)
    return figure


def _result_cell(passed: bool) -> Any:
    from xai_cli.report import tag

    if passed:
        return tag("span", "✓ pass", style="color:#005a8c")
    return tag("strong", "✗ FAIL", style="color:#a04400")


def _share(value: Any) -> str | None:
    return None if value is None else f"{float(value):.1%}"


def audit_report_html(document: dict[str, Any], plot_files: dict[str, Path]) -> str:
    """The self-contained ``report.html``: verdict, checks, importance and drift against the baseline."""
    from xai_cli.report import (
        callout,
        html_page,
        image,
        join,
        metadata_section,
        run_brief,
        section,
        stat,
        table,
        tag,
        warnings_section,
    )

    status = document["status"]
    checks = document["checks"]
    failed = [check for check in checks if not check["passed"]]
    comparison = document["comparison"]
    baseline = document["baseline"]
    if status == "fail":
        banner = callout(
            "warning",
            tag("p", tag("strong", f"FAILED: {len(failed)} of {len(checks)} checks")),
            tag("ul", *(tag("li", check_text(check)) for check in failed)),
        )
    elif status == "pass":
        banner = callout("ok", tag("p", tag("strong", f"Passed: all {len(checks)} checks")))
    else:
        banner = callout("note", tag("p", tag("strong", "No baseline yet: "), "this run is recorded for the next one."))
    check_rows = [
        [_result_cell(check["passed"]), check["name"], check["value"], check["threshold"], check["detail"]]
        for check in sorted(checks, key=lambda check: check["passed"])
    ]
    checks_body = (
        table(["Result", "Check", "Value", "Threshold", "What moved"], check_rows, sortable=True, numeric=[2, 3])
        if check_rows
        else tag("p", "No checks: there is no baseline to compare with.", class_="muted")
    )
    compared = bool(comparison and comparison["importance"])
    importance_parts: list[Any] = []
    if comparison and not compared:
        reason = comparison.get("importance_not_compared") or "the two runs have no feature in common"
        importance_parts.append(tag("p", f"Not compared with the baseline: {reason}."))
    importance_parts.append(
        image(plot_files["importance"], "Importance against the baseline" if compared else "Importance of this run")
    )
    if compared:
        importance_parts.append(
            table(
                ["Feature", "Rank before", "Rank now", "Change", "Share before", "Share now", "Share change"],
                [
                    [
                        row["feature"],
                        row["rank_before"],
                        row["rank_now"],
                        f"{row['rank_change']:+d}" if row["rank_change"] else "0",
                        _share(row["share_before"]),
                        _share(row["share_now"]),
                        f"{row['share_change']:+.1%}",
                    ]
                    for row in comparison["importance"]
                ],
                sortable=True,
                numeric=range(1, 7),
            )
        )
    threshold = document["params"]["thresholds"]["max_drift"]
    drift_parts: list[Any] = []
    if "drift" in plot_files:
        drift_parts.append(image(plot_files["drift"], "PSI per feature"))
    if comparison and comparison["drift"]:
        drift_parts.append(
            table(
                ["Feature", "Kind", "PSI", "KS", "Missing before", "Missing now", "What moved", "Result"],
                [
                    [
                        row["feature"],
                        row["kind"],
                        row["psi"],
                        row["ks"],
                        _share(row["missing_before"]),
                        _share(row["missing_now"]),
                        row["note"],
                        _result_cell(row["psi"] <= threshold),
                    ]
                    for row in comparison["drift"]
                ],
                sortable=True,
                numeric=[2, 3, 4, 5],
            )
        )
    if not drift_parts:
        drift_parts.append(tag("p", "No baseline data to compare with.", class_="muted"))
    prediction_rows = []
    before_outputs = (comparison or {}).get("prediction_drift") or []
    by_output = {row["output"]: row for row in before_outputs}
    summary = document["prediction_summary"]
    for output, stats in summary["outputs"].items():
        name = output_name(summary["space"], output, summary["task"])
        row = by_output.get(name, {})
        quantiles = stats["quantiles"] or {}
        prediction_rows.append(
            [
                name,
                row.get("mean_before"),
                stats["mean"],
                quantiles.get("p05"),
                quantiles.get("p50"),
                quantiles.get("p95"),
                row.get("psi"),
            ]
        )
    if summary.get("predicted_class"):
        row = by_output.get("predicted class", {})
        shares = ", ".join(f"{label} {share:.0%}" for label, share in summary["predicted_class"]["shares"].items())
        prediction_rows.append(["predicted class", None, shares, None, None, None, row.get("psi")])
    stats_strip = tag(
        "div",
        stat("status", status.upper(), kind="warning" if status == "fail" else None),
        stat("checks failed", f"{len(failed)} of {len(checks)}", kind="warning" if failed else None),
        stat("rows", document["data"]["rows"]),
        stat(
            "score",
            None
            if document["score"] is None
            else f"{document['score']['scorer']} {_number(document['score']['value'])}",
        ),
        stat("baseline", baseline["created_at"] if baseline else "none"),
        stat(
            "model changed",
            bool(baseline and baseline["model_changed"]),
            kind="warning" if baseline and baseline["model_changed"] else None,
        ),
        stat("warnings", len(document["warnings"]), kind="warning" if document["warnings"] else None),
        class_="stats",
    )
    model_name = Path(str(document["model"]["path"] or "model")).name
    data_name = Path(str(document["data"]["path"] or "data")).name
    verdict_word = {"pass": "passed", "fail": "FAILED", "no-baseline": "no baseline yet"}[status]
    return html_page(
        f"Audit of {model_name} on {data_name}: {verdict_word}",
        [
            stats_strip,
            run_brief(document),
            section("Verdict", banner, id_="verdict"),
            section("Checks", checks_body, id_="checks"),
            warnings_section(document["warnings"]),
            section(
                "Importance against the baseline" if compared else "Importance", *importance_parts, id_="importance"
            ),
            section(f"Data drift (PSI; threshold {threshold:g})", *drift_parts, id_="drift"),
            section(
                "Predictions",
                table(
                    ["Output", "Mean before", "Mean now", "p05 now", "Median now", "p95 now", "PSI"],
                    prediction_rows,
                    numeric=[1, 2, 3, 4, 5, 6],
                ),
                id_="predictions",
            ),
            metadata_section(
                document,
                (
                    ("model", "Model"),
                    ("data", "Data"),
                    ("baseline", "Baseline"),
                    ("params", "Parameters"),
                    ("versions", "Versions"),
                ),
            ),
        ],
        subtitle=join(
            [
                document["model"]["type"],
                f"created {document['created_at']}",
                f"baseline {baseline['path']}" if baseline else "no baseline",
            ],
            " · ",
        ),
        toc=[
            ("verdict", "Verdict"),
            ("checks", "Checks"),
            ("warnings", "Warnings"),
            ("importance", "Importance"),
            ("drift", "Drift"),
            ("predictions", "Predictions"),
            ("run", "Run"),
        ],
    )
