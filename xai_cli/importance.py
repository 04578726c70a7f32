"""Global importance of a model's features, three ways, and how far the three agree.

- ``permutation``: how much the model's score on DATA drops when one original CSV column is
  shuffled, through the whole model (Pipeline included), by ``sklearn.inspection.permutation_importance``.
- ``builtin``: what the model itself reports (``feature_importances_``, ``|coef_|``, XGBoost
  ``get_score``, LightGBM ``feature_importance``, CatBoost ``PredictionValuesChange``). Inside a
  Pipeline the model reports on its transformed inputs; those of one original column (its one-hot
  columns, say) are summed back to that column, found from the fitted Pipeline, not from DATA.
- ``shap``: mean |SHAP value| per original column, from the same methods as ``xai explain --method
  auto`` (exact Tree / linear SHAP where they apply, Kernel SHAP otherwise), with DATA as background:
  every row for exact linear SHAP, seeded samples where the cost grows with rows x background.

The three answer different questions (what the score needs, how the model was built, what moves
its output), so they can disagree; :func:`agreement` measures how much. Correlated columns are one
known reason: shuffling one of two correlated columns leaves the other to carry the signal, so
permutation importance splits and understates both; :func:`correlated_pairs` names such pairs.

The module computes and writes files; it never prints. The charts are drawn by
:mod:`xai_cli.importance_plots`; :func:`importance_report_html` builds the page from the report
building blocks.
"""

from __future__ import annotations

import csv
import difflib
import io
import itertools
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xai_cli import __version__
from xai_cli.backends import usable_workers
from xai_cli.data import ModelRows, Table, display_value, sample_background
from xai_cli.errors import BadInput
from xai_cli.explanation import SCHEMA_VERSION, json_value
from xai_cli.methods.base import MAX_BACKGROUND_ROWS, Settings
from xai_cli.model import LoadedModel
from xai_cli.plots import is_missing, shorten

METHODS = ("permutation", "builtin", "shap")
METHOD_CHOICES = (*METHODS, "all")
METHOD_TITLES = {"permutation": "Permutation", "builtin": "Built-in", "shap": "Mean |SHAP|"}
DEFAULT_REPEATS = 5
CORRELATION_THRESHOLD = 0.8
# Rows a Spearman rho needs before a pair of columns is called correlated: see correlated_pairs.
CORRELATION_MIN_ROWS = 30
TOP_K = 5
SCORER_EXAMPLES = {
    "classification": ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "neg_log_loss"),
    "regression": ("r2", "neg_mean_absolute_error", "neg_root_mean_squared_error"),
}
CSV_HEADER = ("method", "feature", "importance", "std")
# Kinds that are an average per split: they cannot be added up over features.
AVERAGED_KINDS = frozenset({"xgboost_gain", "xgboost_cover"})
# What each kind of importance measures, in words, for charts, tables and the report.
KIND_TITLES = {
    "permutation": "drop in score when the column is shuffled",
    "feature_importances_": "feature_importances_ (mean decrease in impurity)",
    "abs_coef": "|coefficient|",
    "xgboost_gain": "XGBoost gain (average per split)",
    "xgboost_cover": "XGBoost cover (average per split)",
    "xgboost_total_gain": "XGBoost total gain",
    "xgboost_total_cover": "XGBoost total cover",
    "xgboost_weight": "XGBoost split count (weight)",
    "lightgbm_split": "LightGBM split count",
    "lightgbm_gain": "LightGBM total gain",
    "catboost_PredictionValuesChange": "CatBoost PredictionValuesChange",
}
# What to do when a method asked for by name does not apply.
HINTS = {
    "permutation": "pass --target COL, the label column of DATA",
    "builtin": "use --method permutation or shap",
    "shap": "pass DATA with more rows",
}
# Seeds the sample of rows explained by SHAP apart from the background sample drawn with the same seed.
SHAP_ROWS_STREAM = 0x5EED
# Numbers every numeric column of the probe that traces model inputs to columns takes, whatever DATA
# holds: both signs and several scales, so that imputers, scalers, binarizers and bins meet values
# they tell apart.
PROBE_NUMBERS = (0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 0.1, 10.0, -10.0, 100.0, -100.0, 1e3, -1e3, 1e4, 1e6)
# DATA's own values at these quantiles join them (the median first: it is the value the other
# columns hold while one is tried), values the Pipeline certainly accepts where a step refuses some
# numbers (Box-Cox refuses negatives).
PROBE_QUANTILES = (0.5, 0.0, 0.1, 0.25, 0.75, 0.9, 1.0)
# Distinct values of a text column tried when no fitted encoder lists its categories.
MAX_PROBE_VALUES = 1000


@dataclass(frozen=True)
class ShapBudget:
    """How many rows of DATA mean |SHAP| explains with one method, against how many background rows.

    ``batch`` is the rows explained per call of the method (``None``: ``xai explain``'s own).
    """

    rows: int
    background: int
    batch: int | None = None


# Exact linear SHAP costs one matrix product over rows + background, so it explains every row
# against every row (up to 10,000, where the sampling error of a mean is far below anything a
# ranking shows), in one batch so the background is transformed once. Interventional Tree SHAP
# costs rows x background x trees, Kernel SHAP rows x background x coalitions: they sample. The
# error of a mean |SHAP| comes from the rows explained far more than from the background (measured
# on a linear model against its closed form, largest relative error of the 3 informative columns,
# median over 200 samples: 200 rows 6%, 1,000 rows 2.1%, 2,000 rows 0.8%, whether the background
# has 100 rows or 2,000), so Tree SHAP explains 1,000 rows against explain's 100 background rows.
SHAP_BUDGETS = {
    "linear_shap": ShapBudget(rows=10_000, background=10_000, batch=10_000),
    "tree_shap": ShapBudget(rows=1_000, background=MAX_BACKGROUND_ROWS),
    "kernel_shap": ShapBudget(rows=200, background=MAX_BACKGROUND_ROWS),
}


@dataclass(frozen=True)
class FeatureImportance:
    """One original column's importance under one method; ``std`` is ``None`` where the method has none."""

    feature: str
    importance: float
    std: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "importance": json_value(self.importance), "std": json_value(self.std)}


@dataclass
class MethodImportance:
    """One method's importance of every original column, largest first.

    ``kind`` names what was measured in a word (``permutation``, ``feature_importances_``,
    ``xgboost_gain``, ``mean_abs_tree_shap``...), ``what`` says it in a sentence, and ``details``
    holds the rest of the receipt (scoring, output space, per-class values, other kinds...);
    ``warnings`` are what the run should tell the user about this method.
    """

    name: str
    kind: str
    what: str
    features: list[FeatureImportance]
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.features = sorted(self.features, key=lambda f: -f.importance)

    def importance_of(self, feature: str) -> float:
        return next(f.importance for f in self.features if f.feature == feature)

    def top(self, k: int) -> set[str]:
        return {f.feature for f in self.features[:k]}

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "what": self.what,
            **json_value(self.details),
            "features": [f.to_dict() for f in self.features],
        }


@dataclass(frozen=True)
class Agreement:
    """How two methods rank the features: Spearman's rho (``None`` when a ranking is constant) and
    the share of their top-``top_k`` sets they have in common (``None`` when ``top_k`` is 0).

    ``top5_overlap`` keeps its name from when k was always 5; ``top_k`` says which k it is (see
    :func:`top_k_for`).
    """

    a: str
    b: str
    spearman: float | None
    top5_overlap: float | None
    top_k: int = TOP_K

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "spearman": json_value(self.spearman),
            "top5_overlap": self.top5_overlap,
            "top_k": self.top_k,
        }


@dataclass(frozen=True)
class CorrelatedPair:
    """Two numeric columns of DATA whose Spearman rank correlation reaches the threshold."""

    a: str
    b: str
    spearman: float

    def warning(self) -> str:
        return (
            f"{self.a} and {self.b} are strongly correlated in DATA (Spearman rho {self.spearman:+.2f}): "
            "permutation importance splits their importance between them and understates both"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "spearman": self.spearman}


@dataclass
class ImportanceResult:
    """Everything one ``xai importance`` run computed, before it becomes ``importance.json``."""

    methods: dict[str, MethodImportance]
    agreement: list[Agreement]
    correlated_pairs: list[CorrelatedPair]
    params: dict[str, Any]
    warnings: list[str]


class NotApplicable(BadInput):
    """A method cannot run on this model and DATA; ``message`` says why.

    Raised while the method runs, for reasons only the run can find (a Pipeline step that mixes
    columns): ``--method all`` then skips the method and says why, a method asked for by name exits 2.
    """


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def compute_importance(
    model: LoadedModel,
    rows: ModelRows,
    *,
    method: str = "all",
    scoring: str | None = None,
    repeats: int = DEFAULT_REPEATS,
    seed: int = 0,
    n_jobs: int = 1,
) -> ImportanceResult:
    """Every requested importance of ``model`` on ``rows``, their agreement and the run's warnings.

    ``method="all"`` runs the methods that apply and names the others in ``warnings``; a single
    method that does not apply raises :class:`BadInput` saying why.
    """
    if method not in METHOD_CHOICES:
        raise BadInput(f"unknown --method {method!r}", hint=f"choose one of: {', '.join(METHOD_CHOICES)}")
    scoring = scoring or default_scoring(model)
    check_scoring(scoring, model)
    # Per method: why it does not apply (None when it does), and how to compute it.
    methods = {
        "permutation": (
            lambda: permutation_reason(rows),
            lambda: permutation_importance(model, rows, scoring=scoring, repeats=repeats, seed=seed, n_jobs=n_jobs),
        ),
        "builtin": (lambda: builtin_reason(model), lambda: builtin_importance(model, rows)),
        "shap": (lambda: shap_reason(model, rows), lambda: mean_abs_shap(model, rows, seed=seed, n_jobs=n_jobs)),
    }
    skipped: list[str] = []
    computed: dict[str, MethodImportance] = {}
    for name in METHODS if method == "all" else (method,):
        reason_not_to_run, run = methods[name]
        reason = reason_not_to_run()
        if reason is None:
            try:
                computed[name] = run()
                continue
            except NotApplicable as exc:
                reason = exc.message
        if method == "all":
            skipped.append(f"{name} skipped: {reason}")
        else:
            raise BadInput(f"--method {name} does not apply: {reason}", hint=HINTS[name])
    if not computed:
        raise BadInput(f"no importance method applies: {'; '.join(skipped)}", hint=HINTS["permutation"])
    pairs, unchecked = correlated_pairs(rows.features)
    # A model pickled by another scikit-learn may compute differently here: the user must see it.
    version_warning = model.sklearn_version_warning()
    run_warnings = [
        *([version_warning] if version_warning else []),
        *rows.warnings,
        *skipped,
        *(warning for method in computed.values() for warning in method.warnings),
        *(pair.warning() for pair in pairs),
        *unchecked,
    ]
    # The most rows mean |SHAP| explains with the method it used (Kernel SHAP's when it did not run).
    shap_max_rows = computed["shap"].details["row_limit"] if "shap" in computed else SHAP_BUDGETS["kernel_shap"].rows
    params = {
        "method": method,
        "methods": list(computed),
        "scoring": scoring,
        "repeats": repeats,
        "seed": seed,
        "n_jobs": n_jobs,
        "shap_max_rows": shap_max_rows,
        "correlation_threshold": CORRELATION_THRESHOLD,
        "correlation_min_rows": CORRELATION_MIN_ROWS,
        "top_k": top_k_for(len(rows.features.columns)),
    }
    return ImportanceResult(computed, agreement(list(computed.values())), pairs, params, run_warnings)


# --------------------------------------------------------------------------------------------
# Permutation importance
# --------------------------------------------------------------------------------------------


def default_scoring(model: LoadedModel) -> str:
    """``accuracy`` for classifiers, ``r2`` for regressors (scikit-learn's own ``score``)."""
    return "accuracy" if model.is_classifier else "r2"


def check_scoring(scoring: str, model: LoadedModel) -> None:
    """Raise :class:`BadInput` unless ``scoring`` is a scikit-learn scorer name."""
    from sklearn.metrics import get_scorer_names

    names = get_scorer_names()
    if scoring in names:
        return
    close = difflib.get_close_matches(scoring, names, n=3)
    suggestion = f"did you mean {' or '.join(close)}? " if close else ""
    raise BadInput(
        f"unknown --scoring {scoring!r}",
        hint=f"{suggestion}scikit-learn scorers for a {model.task} model include "
        f"{', '.join(SCORER_EXAMPLES[model.task])} (sklearn.metrics.get_scorer_names() lists them all)",
    )


def permutation_reason(rows: ModelRows) -> str | None:
    """``None`` when permutation importance can run, else why not (it needs the labels)."""
    return None if rows.target is not None else "it needs --target, the label column"


def permutation_importance(
    model: LoadedModel, rows: ModelRows, *, scoring: str, repeats: int, seed: int, n_jobs: int
) -> MethodImportance:
    """Mean and std, over ``repeats`` shuffles, of the drop in ``scoring`` when each column is shuffled."""
    from sklearn import inspection

    labels, labelled = target_labels(model, rows.target)
    features = rows.features.iloc[labelled]
    _check_model_predicts(model, features)
    inputs = model.model_input(features)
    scorer, pos_label = scorer_for(scoring, model)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            baseline = float(scorer(model.estimator, inputs, labels))
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:
        raise BadInput(
            f"--scoring {scoring} cannot score {model.final_type_name} on DATA: {_first_line(exc)}",
            hint=f"choose a scorer that suits a {model.task} model, e.g. {', '.join(SCORER_EXAMPLES[model.task])}",
        ) from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = inspection.permutation_importance(
            model.estimator,
            inputs,
            labels,
            scoring=scorer,
            n_repeats=repeats,
            random_state=seed,
            n_jobs=usable_workers(n_jobs),
        )
    dropped = int((~labelled).sum())
    notes = [f"permutation: {dropped} rows with an empty --target cell were left out"] if dropped else []
    return MethodImportance(
        name="permutation",
        kind="permutation",
        what=(
            f"mean drop in {scoring}{f' (positive class {pos_label})' if pos_label is not None else ''} "
            f"when the column is shuffled ({repeats} shuffles; std over them)"
        ),
        features=[
            FeatureImportance(name, float(mean), float(std))
            for name, mean, std in zip(features.columns, result.importances_mean, result.importances_std)
        ],
        details={
            "scoring": scoring,
            **({"pos_label": pos_label} if pos_label is not None else {}),
            "baseline_score": baseline,
            "repeats": repeats,
            "seed": seed,
            "rows": len(features),
        },
        warnings=notes,
    )


def scorer_for(scoring: str, model: LoadedModel) -> tuple[Any, str | None]:
    """The scikit-learn scorer named ``scoring``, and the positive class it was given (``None``: none).

    scikit-learn's binary scorers (``f1``, ``precision``, ``recall``, ``average_precision``,
    ``neg_brier_score``...) take ``pos_label=1`` (or none at all) by default: not a class of a model
    trained on text labels, and the wrong class of one trained on ``{1, 2}``. For a binary classifier
    they are rebuilt with ``pos_label`` set to the model's second class, ``classes_[1]``, the class
    ``xai explain`` treats as positive. Scorers without the parameter, or averaging over classes
    (``f1_macro``), are returned as they are.
    """
    import copy
    import inspect

    from sklearn.metrics import get_scorer

    scorer = get_scorer(scoring)
    score_function = getattr(scorer, "_score_func", None)
    options = getattr(scorer, "_kwargs", None)
    binary = model.is_classifier and len(model.raw_classes or []) == 2
    if (
        not binary
        or score_function is None
        or options is None
        or "pos_label" not in inspect.signature(score_function).parameters
        or options.get("average", "binary") != "binary"
    ):
        return scorer, None
    positive = model.raw_classes[1]
    # The scorer's own keyword arguments, which also pick the probability column it scores (every
    # scikit-learn since 1.2 keeps them there); make_scorer's signature changed across those versions.
    rebuilt = copy.deepcopy(scorer)
    rebuilt._kwargs = {**options, "pos_label": positive}
    return rebuilt, str(display_value(positive))


def target_labels(model: LoadedModel, target: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The label column as the model's own classes (or as numbers), and a mask of the rows that have one.

    CSV cells are matched to classes by their text, so a class ``1`` matches a cell read as ``1.0``.
    """
    labelled = target.notna().to_numpy()
    present = target[labelled]
    if not model.is_classifier:
        numbers = pd.to_numeric(present, errors="coerce")
        if numbers.isna().any():
            bad = present[numbers.isna()]
            raise BadInput(
                f"--target column {target.name} must be numeric for a regressor, but row {bad.index[0]} "
                f"holds {str(bad.iloc[0])!r}",
                hint="fix the cell, or leave it empty to leave the row out",
            )
        return numbers.to_numpy(dtype=float), labelled
    positions = {str(display_value(label)): index for index, label in enumerate(model.raw_classes or [])}
    texts = [str(display_value(value)) for value in present]
    unseen = sorted(set(texts) - set(positions))
    if unseen:
        raise BadInput(
            f"--target column {target.name} holds labels the model never learned: {', '.join(unseen[:8])}",
            hint=f"the model's classes are: {', '.join(model.classes or [])}",
        )
    classes = np.asarray(model.raw_classes)
    return classes[[positions[text] for text in texts]], labelled


def _check_model_predicts(model: LoadedModel, features: pd.DataFrame) -> None:
    """Call the model once on DATA, so that its own failure ends as exit 4, not blamed on ``--scoring``."""
    model.output("probability" if hasattr(model.estimator, "predict_proba") else "raw").predict(features)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------------------------
# Built-in importance
# --------------------------------------------------------------------------------------------


@dataclass
class ReportedImportance:
    """What a fitted estimator reports about its own inputs, one value per input it takes.

    ``per_class`` holds one array per class where the model keeps one per class (``coef_`` of a
    multi-class linear model; ``values`` is then their mean); ``other_kinds`` the kinds the library
    offers besides the one it reports by default (XGBoost ``weight``/``cover``...).
    """

    kind: str
    what: str
    values: np.ndarray
    per_class: dict[str, np.ndarray] = field(default_factory=dict)
    other_kinds: dict[str, np.ndarray] = field(default_factory=dict)

    def arrays(self) -> list[np.ndarray]:
        """Every array of the report: ``values``, then per class, then the other kinds."""
        return [self.values, *self.per_class.values(), *self.other_kinds.values()]

    def mapped(self, function: Callable[[np.ndarray], np.ndarray]) -> ReportedImportance:
        """The same report with ``function`` applied to every array (e.g. summed per column)."""
        return ReportedImportance(
            self.kind,
            self.what,
            function(self.values),
            {label: function(values) for label, values in self.per_class.items()},
            {kind: function(values) for kind, values in self.other_kinds.items()},
        )


def builtin_reason(model: LoadedModel) -> str | None:
    """``None`` when the model reports an importance of its own, else why not.

    Whether a Pipeline's inputs can be traced to CSV columns is found while the method runs
    (:func:`input_owners` raises :class:`NotApplicable`).
    """
    if _reporter(model.final_estimator) is None:
        return f"{model.final_type_name} reports no importance of its own (no feature_importances_ or coef_)"
    return None


def builtin_importance(model: LoadedModel, rows: ModelRows) -> MethodImportance:
    """The model's own importance, summed per original column when it sits behind preprocessing.

    The sum over columns always equals the sum of what the model reports: an input that cannot be
    traced to a column, yet carries importance, stops the method (:class:`NotApplicable`) rather
    than lose that importance.
    """
    reported = reported_importance(model)
    names = list(model.feature_names)
    details: dict[str, Any] = {}
    if model.preprocessor is not None:
        owners = input_owners(model, rows.features)
        if len(owners) != len(reported.values):
            raise NotApplicable(
                f"{model.final_type_name} reports {len(reported.values)} importances, but the Pipeline "
                f"gives it {len(owners)} inputs",
                hint=HINTS["builtin"],
            )
        _check_traced(model, reported, owners)
        reported = reported.mapped(lambda values: _sum_by_owner(values, owners, len(names)))
        details["summed_over_inputs"] = True
        details["note"] = (
            f"the model reports on the {len(owners)} inputs its Pipeline makes; the importances of the inputs "
            "made from one column (its one-hot columns, for instance) are summed into that column"
        )
        details["inputs_per_feature"] = {name: int((owners == index).sum()) for index, name in enumerate(names)}
    if reported.per_class:
        details["per_class"] = {label: dict(zip(names, v.tolist())) for label, v in reported.per_class.items()}
    if reported.other_kinds:
        details["other_kinds"] = {kind: dict(zip(names, v.tolist())) for kind, v in reported.other_kinds.items()}
    return MethodImportance(
        name="builtin",
        kind=reported.kind,
        what=reported.what,
        features=[FeatureImportance(name, float(value)) for name, value in zip(names, reported.values)],
        details=details,
    )


def reported_importance(model: LoadedModel) -> ReportedImportance:
    """What the final estimator reports about its inputs (see :class:`ReportedImportance`)."""
    reporter = _reporter(model.final_estimator)
    if reporter is None:
        raise BadInput(f"{model.final_type_name} reports no importance of its own", hint=HINTS["builtin"])
    return reporter(model)


def _reporter(final: Any) -> Any:
    package = type(final).__module__.split(".")[0]
    if package == "xgboost":
        return _xgboost_importance
    if package == "lightgbm":
        return _lightgbm_importance
    if package == "catboost":
        return _catboost_importance
    if hasattr(final, "feature_importances_"):
        return _sklearn_feature_importances
    if hasattr(final, "coef_"):
        return _absolute_coefficients
    return None


def _xgboost_importance(model: LoadedModel) -> ReportedImportance:
    """XGBoost's ``get_score`` per kind; the kind its ``feature_importances_`` uses comes first.

    ``gain`` and ``cover`` are averages per split. Behind a Pipeline, where the scores of a column's
    inputs (its one-hot columns) are added up, an average of one input's splits cannot be added to
    another's, so the totals ``total_gain`` / ``total_cover`` take their place there.
    """
    final = model.final_estimator
    booster = final.get_booster()
    names = booster.feature_names or [f"f{i}" for i in range(int(final.n_features_in_))]
    if _is_gblinear(booster):
        return _xgboost_linear_importance(model, booster, names)
    primary = final.importance_type or "gain"
    kinds: tuple[str, ...] = (primary, "weight", "gain", "cover", "total_gain", "total_cover")
    summed = model.preprocessor is not None
    if summed:
        primary = {"gain": "total_gain", "cover": "total_cover"}.get(primary, primary)
        kinds = (primary, "weight", "total_gain", "total_cover")
    scores = {}
    for kind in dict.fromkeys(kinds):
        by_name = booster.get_score(importance_type=kind)
        scores[kind] = np.array([float(by_name.get(name, 0.0)) for name in names])
    why = (
        " (the total over the splits, not the average per split, so that a column's inputs add up)"
        if summed and primary.startswith("total_")
        else ""
    )
    return ReportedImportance(
        kind=f"xgboost_{primary}",
        what=f"XGBoost get_score(importance_type={primary!r}){why}; features never used in a split count 0",
        values=scores.pop(primary),
        other_kinds={f"xgboost_{kind}": values for kind, values in scores.items()},
    )


def _is_gblinear(booster: Any) -> bool:
    import json

    config = json.loads(booster.save_config())
    return config["learner"]["gradient_booster"]["name"] == "gblinear"


def _xgboost_linear_importance(model: LoadedModel, booster: Any, names: list[str]) -> ReportedImportance:
    """|coefficient| of an XGBoost linear booster, whose ``get_score("weight")`` is its signed coefficients
    (a list of one per class for a multi-class model)."""
    by_name = booster.get_score(importance_type="weight")
    per_input = [np.atleast_1d(np.asarray(by_name.get(name, 0.0), dtype=float)) for name in names]
    margins = max(len(values) for values in per_input)
    coefficients = np.array([np.broadcast_to(values, (margins,)) for values in per_input])
    return _magnitudes_report(
        model,
        np.abs(coefficients.T),
        source="|coefficients| of XGBoost's linear booster (its get_score(importance_type='weight'), made absolute)",
    )


def _lightgbm_importance(model: LoadedModel) -> ReportedImportance:
    """LightGBM's ``feature_importance`` per kind; the model's own ``importance_type`` comes first.

    Both kinds are totals over the splits (a count, a sum of gains), so they add up over a column's inputs.
    """
    final = model.final_estimator
    primary = final.importance_type
    scores = {
        kind: np.asarray(final.booster_.feature_importance(importance_type=kind), dtype=float)
        for kind in dict.fromkeys((primary, "split", "gain"))
    }
    return ReportedImportance(
        kind=f"lightgbm_{primary}",
        what=f"LightGBM booster_.feature_importance(importance_type={primary!r})",
        values=scores.pop(primary),
        other_kinds={f"lightgbm_{kind}": values for kind, values in scores.items()},
    )


def _catboost_importance(model: LoadedModel) -> ReportedImportance:
    values = model.final_estimator.get_feature_importance(type="PredictionValuesChange")
    return ReportedImportance(
        kind="catboost_PredictionValuesChange",
        what="CatBoost get_feature_importance(type='PredictionValuesChange')",
        values=np.asarray(values, dtype=float),
    )


def _sklearn_feature_importances(model: LoadedModel) -> ReportedImportance:
    return ReportedImportance(
        kind="feature_importances_",
        what=f"{model.final_type_name}.feature_importances_ (for trees: mean decrease in impurity on the training data)",
        values=np.asarray(model.final_estimator.feature_importances_, dtype=float),
    )


def _absolute_coefficients(model: LoadedModel) -> ReportedImportance:
    """``|coef_|``; a multi-class model has a row per class, reported apart and averaged."""
    magnitudes = np.abs(np.atleast_2d(np.asarray(model.final_estimator.coef_, dtype=float)))
    return _magnitudes_report(model, magnitudes, source=f"|coef_| of {model.final_type_name}")


def _magnitudes_report(model: LoadedModel, magnitudes: np.ndarray, *, source: str) -> ReportedImportance:
    """``abs_coef`` from |coefficients| with one row per margin: several rows (one per class) are
    reported apart in ``per_class`` and averaged."""
    labels = model.classes if model.classes and len(model.classes) == len(magnitudes) else None
    per_class = dict(zip(labels, magnitudes)) if labels and len(magnitudes) > 1 else {}
    return ReportedImportance(
        kind="abs_coef",
        what=(
            source
            + (", the mean over classes (per class in per_class)" if per_class else "")
            + ": in units of the model's inputs, so comparable across columns only when they share a scale"
        ),
        values=magnitudes.mean(axis=0),
        per_class=per_class,
    )


def input_owners(model: LoadedModel, features: pd.DataFrame) -> np.ndarray:
    """For every input the Pipeline gives its final estimator, the index of the CSV column it is made
    from (-1: none).

    The Pipeline transforms a probe (:func:`probe_frame`) on which every column takes values the
    fitted Pipeline itself knows: its encoders' categories, its bins, numbers of several signs and
    scales. :func:`xai_cli.methods.linear_shap.column_owners` then rotates each column among the
    probe rows and sees which inputs change. The answer therefore does not depend on how DATA
    varies: a column constant in DATA, or a category DATA lacks, still finds its inputs.

    Raises :class:`NotApplicable` when an input changes with several columns (a step such as PCA
    mixes them).
    """
    from xai_cli.methods.linear_shap import column_owners

    probe = probe_frame(model, features)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return column_owners(model, probe)
    except BadInput as exc:
        raise NotApplicable(
            "the Pipeline makes some model inputs from several CSV columns (a step such as PCA or "
            "polynomial features mixes them), so their importance cannot be given to one column",
            hint=HINTS["builtin"],
        ) from exc
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:
        raise NotApplicable(
            f"the Pipeline's preprocessing failed on the rows xai built to trace its inputs to CSV columns: "
            f"{_first_line(exc)}",
            hint=HINTS["builtin"],
        ) from exc


def probe_frame(model: LoadedModel, features: pd.DataFrame) -> pd.DataFrame:
    """Rows on which every column varies over values the fitted Pipeline accepts (see :func:`input_owners`).

    Per column: the categories a fitted encoder learned for it; else, for numbers, DATA's quantiles,
    the centres of fitted bins and :data:`PROBE_NUMBERS`; else DATA's distinct values; and an empty
    cell. A value the Pipeline refuses (an unknown category for an encoder that errors, NaN for a
    step without an imputer) is left out. Shorter columns repeat, so every column changes from one
    row to the next through all its values.
    """
    names = list(features.columns)
    categories, numbers = fitted_values(model.preprocessor, names)
    candidates = {name: _candidates(features[name], categories.get(name), numbers.get(name, [])) for name in names}
    base = {name: values[0] for name, values in candidates.items()}
    accepted = {name: _accepted(model, features, base, name, values) for name, values in candidates.items()}
    length = max(len(values) for values in accepted.values())
    return pd.DataFrame(
        {
            name: _probe_column(list(itertools.islice(itertools.cycle(values), length)), features[name])
            for name, values in accepted.items()
        }
    )


def fitted_values(preprocessor: Any, names: list[str]) -> tuple[dict[str, list], dict[str, list]]:
    """Per CSV column, the categories a fitted encoder learned for it, and the centres of the bins a
    fitted discretizer cuts it into (plus a number below and above them).

    Walks ColumnTransformers (their fitted column lists) and Pipelines (step by step, as long as a step
    keeps one output per input); a column whose values no step lists is simply absent.
    """
    categories: dict[str, list] = {}
    numbers: dict[str, list] = {}

    def visit(step: Any, columns: list[str]) -> None:
        if step is None or isinstance(step, str) or not columns:
            return
        if type(step).__name__ == "ColumnTransformer":
            for _, inner, selection in step.transformers_:
                visit(inner, _selected_names(selection, columns))
            return
        if hasattr(step, "steps"):
            for _, inner in step.steps:
                visit(inner, columns)
                if not _keeps_columns(inner, len(columns)):
                    break
            return
        learned = getattr(step, "categories_", None)
        if learned is not None and len(learned) == len(columns):
            for column, values in zip(columns, learned):
                categories.setdefault(column, list(values))
        edges = getattr(step, "bin_edges_", None)
        if edges is not None and len(edges) == len(columns):
            for column, cuts in zip(columns, edges):
                cuts = np.asarray(cuts, dtype=float)
                numbers.setdefault(column, [*((cuts[:-1] + cuts[1:]) / 2), cuts[0] - 1, cuts[-1] + 1])

    visit(preprocessor, names)
    return categories, numbers


def _selected_names(selection: Any, columns: list[str]) -> list[str]:
    """The names among ``columns`` that a fitted ColumnTransformer's column selection picks."""
    if isinstance(selection, str):
        return [selection] if selection in columns else []
    if isinstance(selection, slice):
        return list(columns[selection]) if selection.start is None or isinstance(selection.start, int) else []
    if callable(selection):
        return []
    picked = np.atleast_1d(np.asarray(selection))
    if picked.dtype == bool:
        return [column for column, keep in zip(columns, picked) if keep]
    if picked.dtype.kind in "iu":
        return [columns[int(index)] for index in picked]
    return [str(name) for name in picked if str(name) in columns]


def _keeps_columns(step: Any, count: int) -> bool:
    """Whether ``step`` gives one output per input, so the next step sees the same columns."""
    try:
        return len(step.get_feature_names_out()) == count
    except Exception:
        return False


def _candidates(column: pd.Series, categories: list | None, numbers: list) -> list:
    """The values the probe tries for one column, the one the other columns hold first, NaN last."""
    present = column.dropna()
    if categories is not None:
        values = list(categories)
    elif pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        quantiles = present.quantile(PROBE_QUANTILES, interpolation="nearest").tolist() if len(present) else []
        values = [*quantiles, *numbers, *PROBE_NUMBERS]
    else:
        values = [
            *present.unique()[:MAX_PROBE_VALUES].tolist(),
            *([False, True] if pd.api.types.is_bool_dtype(column) else []),
        ]
    distinct = list(dict.fromkeys(value for value in values if not is_missing(value)))
    return [*distinct, np.nan]


def _accepted(model: LoadedModel, features: pd.DataFrame, base: dict[str, Any], name: str, values: list) -> list:
    """Those of ``values`` the Pipeline transforms in column ``name`` while the others hold ``base``."""

    def transforms(tried: list) -> bool:
        frame = pd.DataFrame(
            {column: _probe_column([value] * len(tried), features[column]) for column, value in base.items()}
        )
        frame[name] = _probe_column(tried, features[name])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.preprocessor.transform(model.model_input(frame))
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception:
            return False
        return True

    if transforms(values):
        return values
    kept = [value for value in values if transforms([value])]
    if not kept:
        raise NotApplicable(
            f"the Pipeline's preprocessing refuses every value xai tried for column {name}, so its inputs "
            "cannot be traced to CSV columns",
            hint=HINTS["builtin"],
        )
    return kept


def _probe_column(values: list, like: pd.Series) -> pd.Series:
    """``values`` as a column of DATA's dtype where they fit it (ints with NaN become floats)."""
    try:
        return pd.Series(values, dtype=like.dtype)
    except (TypeError, ValueError):
        return pd.Series(values, dtype=object if any(isinstance(value, str) for value in values) else float)


def _check_traced(model: LoadedModel, reported: ReportedImportance, owners: np.ndarray) -> None:
    """Raise :class:`NotApplicable` when an input no column changes carries importance."""
    untraced = owners < 0
    lost = max((float(np.abs(values[untraced]).sum()) for values in reported.arrays()), default=0.0)
    if lost == 0:
        return
    try:
        input_names = [str(name) for name in model.preprocessor.get_feature_names_out()]
    except Exception:
        input_names = [f"input {index}" for index in range(len(owners))]
    shown = ", ".join(name for name, missing in zip(input_names, untraced) if missing)
    raise NotApplicable(
        f"{int(untraced.sum())} model inputs ({shorten(shown, 160)}) change with no CSV column xai varied, "
        f"yet {model.final_type_name} gives them importance ({lost:.3g} in all), which cannot be given to a column",
        hint=HINTS["builtin"],
    )


def _sum_by_owner(values: np.ndarray, owners: np.ndarray, n_columns: int) -> np.ndarray:
    return np.array([values[owners == column].sum() for column in range(n_columns)], dtype=float)


# --------------------------------------------------------------------------------------------
# Mean |SHAP|
# --------------------------------------------------------------------------------------------


def shap_settings(model: LoadedModel, *, seed: int, n_jobs: int = 1) -> Settings:
    """The explain settings of ``--method auto`` with every class, in its default output space."""
    return Settings(output=model.default_output("auto"), class_choice="all", seed=seed, n_jobs=n_jobs)


def shap_reason(model: LoadedModel, rows: ModelRows) -> str | None:
    """``None`` when mean |SHAP| can run on DATA, else why not (too few rows for a background)."""
    from xai_cli.explain import MIN_DATA_AS_BACKGROUND
    from xai_cli.methods import NEEDS_BACKGROUND, auto_method

    module = auto_method(model, shap_settings(model, seed=0))
    if module.NAME in NEEDS_BACKGROUND and len(rows) < MIN_DATA_AS_BACKGROUND:
        return (
            f"{module.NAME} takes its background from DATA, which has {len(rows)} rows "
            f"(it needs at least {MIN_DATA_AS_BACKGROUND})"
        )
    return None


def mean_abs_shap(model: LoadedModel, rows: ModelRows, *, seed: int, n_jobs: int = 1) -> MethodImportance:
    """Mean |SHAP value| per column over the rows of DATA, averaged over classes.

    The method and output space are :func:`xai_cli.explain.prepare`'s for ``xai explain --method auto
    --class all``, and the values that method's, computed by :func:`xai_cli.explain.explain_rows`
    without the per-row receipts. How many rows are explained, against how many background rows
    drawn from DATA, is the method's :data:`SHAP_BUDGETS` entry: every row for exact linear SHAP
    (whose mean |value| is then the closed form ``|coef| * mean|x - mean(x)|`` over DATA), seeded
    samples for Tree and Kernel SHAP, whose cost grows with rows x background. ``details`` records
    what was used.
    """
    import dataclasses

    from xai_cli.explain import BATCH_ROWS, MIN_DATA_AS_BACKGROUND, explain_rows, game_description, prepare
    from xai_cli.plots import mean_abs_attributions
    from xai_cli.plots import method_name as readable_name

    settings = shap_settings(model, seed=seed, n_jobs=n_jobs)
    budget = SHAP_BUDGETS.get(auto_shap_method(model), SHAP_BUDGETS["kernel_shap"])
    explained = sample_rows(rows, max_rows=budget.rows, seed=seed)
    data_as_background = len(rows) >= MIN_DATA_AS_BACKGROUND
    explain_plan = prepare(
        model,
        explained,
        method="auto",
        settings=settings,
        output_given=True,
        background_rows=rows if data_as_background else None,
        background_path=None,
    )
    if data_as_background:
        background = sample_background(rows, max_rows=budget.background, seed=seed)
        explain_plan = dataclasses.replace(
            explain_plan,
            background=background,
            background_info={
                "path": None,
                "rows": len(background),
                "rows_available": len(rows),
                "sampled": len(background) < len(rows),
            },
        )
    batches = explain_rows(explain_plan, [explained], batch_rows=budget.batch or BATCH_ROWS, receipts=False)
    means = mean_abs_attributions(explanation for batch in batches for explanation in batch)
    names = list(model.feature_names)
    per_class = {label: np.array([group.get(name, 0.0) for name in names]) for (_, label), group in means.items()}
    averaged = np.mean(list(per_class.values()), axis=0)
    method_name = explain_plan.methods[0].NAME
    space = explain_plan.output.space
    over_classes = " averaged over the classes" if model.is_classifier else ""
    background_rows = 0 if explain_plan.background is None else len(explain_plan.background)
    against = f"against {background_rows} background rows of DATA" if background_rows else "path-dependent"
    every = " (every row)" if len(explained) == len(rows) else ""
    return MethodImportance(
        name="shap",
        kind=f"mean_abs_{method_name}",
        what=(
            f"mean |{readable_name(method_name)} value| over {len(explained)} rows of DATA{every}, {against}, "
            f"in the {space} output{over_classes}"
        ),
        features=[FeatureImportance(name, float(value)) for name, value in zip(names, averaged)],
        details={
            "method": method_name,
            "output": space,
            "rows": len(explained),
            "rows_available": len(rows),
            "row_limit": budget.rows,
            "background_rows": background_rows,
            "background_limit": budget.background,
            "sampled": len(explained) < len(rows) or 0 < background_rows < len(rows),
            "seed": seed,
            "game": game_description(explain_plan),
            **(
                {"per_class": {label: dict(zip(names, v.tolist())) for label, v in per_class.items()}}
                if model.is_classifier
                else {}
            ),
        },
    )


def auto_shap_method(model: LoadedModel) -> str:
    """The name of the method ``xai explain --method auto`` uses on ``model`` (``tree_shap``...)."""
    from xai_cli.methods import auto_method

    return auto_method(model, shap_settings(model, seed=0)).NAME


def sample_rows(rows: ModelRows, *, max_rows: int, seed: int) -> ModelRows:
    """At most ``max_rows`` of ``rows``, drawn without replacement in row order, the same for the same seed."""
    if len(rows) <= max_rows:
        return rows
    rng = np.random.default_rng([seed, SHAP_ROWS_STREAM])
    chosen = np.sort(rng.choice(len(rows), size=max_rows, replace=False))
    return ModelRows(
        features=rows.features.iloc[chosen],
        ids=[rows.ids[i] for i in chosen],
        row_numbers=[rows.row_numbers[i] for i in chosen],
        target=None if rows.target is None else rows.target.iloc[chosen],
    )


# --------------------------------------------------------------------------------------------
# Agreement and correlated columns
# --------------------------------------------------------------------------------------------


def top_k_for(n_features: int) -> int:
    """The k of the top-k overlap: ``min(5, n_features // 2)``.

    With k close to the number of features, two rankings share most of their top k whatever they
    say (with 5 features, the top 5 always overlap 100%; with 6, at least 4 of 5). Taking at most
    half the features keeps the overlap informative: two unrelated rankings are expected to share a
    fraction k / n_features of their top k, at most half. With a single feature k is 0 and the
    overlap is reported as ``None``.
    """
    return min(TOP_K, n_features // 2)


def agreement(methods: list[MethodImportance]) -> list[Agreement]:
    """Spearman rank correlation and top-k overlap (k from :func:`top_k_for`) for every pair of methods."""
    from scipy.stats import spearmanr

    pairs = []
    for first, second in itertools.combinations(methods, 2):
        features = [f.feature for f in first.features]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a constant ranking: rho is undefined, reported as None
            rho = spearmanr(
                [first.importance_of(name) for name in features], [second.importance_of(name) for name in features]
            ).statistic
        k = top_k_for(len(features))
        overlap = len(first.top(k) & second.top(k)) / k if k else None
        pairs.append(Agreement(first.name, second.name, None if np.isnan(rho) else float(rho), overlap, k))
    return pairs


def correlated_pairs(
    features: pd.DataFrame, *, threshold: float = CORRELATION_THRESHOLD, min_rows: int = CORRELATION_MIN_ROWS
) -> tuple[list[CorrelatedPair], list[str]]:
    """Pairs of numeric columns with |Spearman rho| >= ``threshold`` in ``features``, strongest first,
    and warnings naming what could not be checked.

    Only numeric columns are compared: a rank correlation needs ordered values, and string or
    ``category`` columns have none, so they are left out. Empty cells are skipped pair by pair.

    A pair is checked only where at least ``min_rows`` (30) rows have values in both columns. On
    few rows a large rho means nothing: with 5 rows, two independent columns reach |rho| >= 0.8 one
    time in 7.5 (16 of the 120 orderings), so among 15 pairs two are expected to. With 30 rows an
    independent pair reaches it with probability about 1e-7 (the t approximation of rho's null
    distribution), and an observed 0.8 still puts the true rho above 0.6 (95% Fisher-z interval,
    variance 1.06 / (n - 3)): the correlation is strong, not an accident of the sample. A test of
    rho = 0 alone would not do: at 10 rows it already passes for rho = 0.8, yet cannot tell a true
    0.8 from a true 0.4.
    """
    numeric = [
        name
        for name in features.columns
        if pd.api.types.is_numeric_dtype(features[name]) and not pd.api.types.is_bool_dtype(features[name])
    ]
    if len(numeric) < 2:
        return [], []
    present = features[numeric].notna().to_numpy(dtype=float)
    shared_rows = present.T @ present
    correlation = features[numeric].corr(method="spearman").to_numpy()
    pairs, unchecked = [], 0
    for i, j in itertools.combinations(range(len(numeric)), 2):
        if shared_rows[i, j] < min_rows:
            unchecked += 1
        elif np.isfinite(correlation[i, j]) and abs(correlation[i, j]) >= threshold:
            pairs.append(CorrelatedPair(numeric[i], numeric[j], float(correlation[i, j])))
    notes = []
    if unchecked:
        where = (
            f"DATA has {len(features)} rows"
            if len(features) < min_rows
            else f"{unchecked} pairs of numeric columns have values in both on fewer rows"
        )
        notes.append(
            f"correlated columns not checked: {where} (fewer than {min_rows}, too few for a Spearman rho to "
            "tell a correlated pair from chance)"
        )
    return sorted(pairs, key=lambda pair: -abs(pair.spearman)), notes


# --------------------------------------------------------------------------------------------
# importance.json, importance.csv, plots, report.html
# --------------------------------------------------------------------------------------------


def build_document(result: ImportanceResult, *, model: LoadedModel, data: Table, rows: ModelRows) -> dict[str, Any]:
    """The ``importance.json`` document (schema_version 1, kind ``importance``)."""
    from xai_cli.explain import library_versions

    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "importance",
        "tool": {"name": "xai-cli", "version": __version__},
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": {"path": model.path, "sha256": model.sha256, "type": model.type_name, "task": model.task},
        "data": {
            "path": data.path,
            "sha256": data.sha256,
            "rows": len(rows),
            "features": list(model.feature_names),
            "target": None if rows.target is None else str(rows.target.name),
        },
        "versions": library_versions(model),
        "params": json_value(result.params),
        "methods": {name: method.to_dict() for name, method in result.methods.items()},
        "agreement": [pair.to_dict() for pair in result.agreement],
        "correlated_pairs": [pair.to_dict() for pair in result.correlated_pairs],
        "warnings": list(result.warnings),
    }


def feature_table(document: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Each feature with its entry under every method of ``document``, in the first method's order."""
    methods = list(document["methods"].values())
    lookup = [{entry["feature"]: entry for entry in method["features"]} for method in methods]
    return [(entry["feature"], [by_name[entry["feature"]] for by_name in lookup]) for entry in methods[0]["features"]]


def importance_csv(document: dict[str, Any]) -> str:
    """``importance.csv``: ``method,feature,importance,std``, ``std`` empty where a method has none."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for name, method in document["methods"].items():
        for entry in method["features"]:
            writer.writerow((name, entry["feature"], _csv_number(entry["importance"]), _csv_number(entry["std"])))
    return buffer.getvalue()


def _csv_number(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def write_importance_outputs(document: dict[str, Any], out_dir: Path) -> None:
    """Write ``importance.json``, ``importance.csv``, ``plots/importance_<method>.png``,
    ``plots/agreement.png`` (with two methods or more) and ``report.html`` into ``out_dir``, each atomically."""
    from xai_cli.importance_plots import agreement_figure, importance_figure
    from xai_cli.output import write_json, write_text
    from xai_cli.plots import save_png

    plot_files = {name: out_dir / "plots" / f"importance_{name}.png" for name in document["methods"]}
    for name, path in plot_files.items():
        save_png(importance_figure(name, document["methods"][name]), path)
    agreement_file = out_dir / "plots" / "agreement.png" if document["agreement"] else None
    if agreement_file is not None:
        save_png(agreement_figure(document), agreement_file)
    write_json(out_dir / "importance.json", document)
    write_text(out_dir / "importance.csv", importance_csv(document))
    write_text(out_dir / "report.html", importance_report_html(document, plot_files, agreement_file))


def rows_used(method: dict[str, Any]) -> str:
    """How many of DATA's rows a method's entry was measured on: "200 rows" or "200 of 2000 rows"."""
    rows, available = method.get("rows"), method.get("rows_available", method.get("rows"))
    return f"{rows} rows" if rows == available else f"{rows} of {available} rows"


def kind_title(kind: str) -> str:
    """``kind`` (``xgboost_total_gain``, ``mean_abs_tree_shap``...) as a reader would name it."""
    from xai_cli.plots import method_name

    if kind.startswith("mean_abs_"):
        return f"mean |{method_name(kind.removeprefix('mean_abs_'))} value|"
    return KIND_TITLES.get(kind, kind.replace("_", " "))


def importance_report_html(
    document: dict[str, Any], plot_files: dict[str, Path], agreement_file: Path | None = None
) -> str:
    """The self-contained ``report.html`` of ``xai importance``: agreement (table and heat map),
    warnings, the importance table, one chart per method."""
    from xai_cli.report import (
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

    methods = document["methods"]
    names = list(methods)
    by_feature = feature_table(document)
    importance_rows = [[feature, *(entry["importance"] for entry in entries)] for feature, entries in by_feature]
    agreement_rows = [
        [
            METHOD_TITLES[pair["a"]],
            METHOD_TITLES[pair["b"]],
            pair["spearman"],
            "n/a" if pair["top5_overlap"] is None else f"{pair['top5_overlap']:.0%}",
        ]
        for pair in document["agreement"]
    ]
    top_k = document["agreement"][0].get("top_k", TOP_K) if document["agreement"] else TOP_K
    if agreement_rows:
        agreement_table = table(
            ["Method", "Method", "Spearman rho", f"Top-{top_k} overlap"], agreement_rows, numeric=[2, 3]
        )
        heat_map = (
            image(agreement_file, "Spearman rho between the methods' rankings, as a heat map")
            if agreement_file is not None
            else ""
        )
        # The table and its heat map side by side, the map below once the window is too narrow
        # (report.py's stylesheet has no class for this; the page's policy allows inline styles).
        agreement_body = tag(
            "div",
            tag("div", agreement_table, style="flex: 0 1 30rem; min-width: 0"),
            tag("div", heat_map, style="flex: 0 1 auto; min-width: 0"),
            style="display: flex; flex-wrap: wrap; gap: 0 2rem; align-items: flex-start",
        )
    else:
        agreement_body = tag("p", "Agreement needs at least two methods.", class_="muted")
    measured = "; ".join(f"{METHOD_TITLES[name]}: {methods[name]['what']}" for name in names)
    plots = [
        image(plot_files[name], f"{METHOD_TITLES[name]} importance", caption=methods[name]["what"]) for name in names
    ]
    model_name = Path(str(document["model"]["path"] or "model")).name
    data_name = Path(str(document["data"]["path"] or "data")).name
    page_warnings = document["warnings"]
    return html_page(
        f"Feature importance of {model_name} on {data_name}",
        [
            tag(
                "div",
                stat("rows", document["data"]["rows"]),
                stat("features", len(by_feature)),
                stat("methods", ", ".join(METHOD_TITLES[name] for name in names) or "none"),
                stat("warnings", len(page_warnings), kind="warning" if page_warnings else None),
                class_="stats",
            ),
            run_brief(document),
            warnings_section(page_warnings),
            section("Agreement between methods", agreement_body, id_="agreement"),
            section(
                "Importance per feature",
                table(
                    ["Feature", *(METHOD_TITLES[name] for name in names)],
                    importance_rows,
                    sortable=True,
                    numeric=range(1, len(names) + 1),
                    caption=measured,
                ),
                id_="importance",
            ),
            section("Plots", *plots, id_="plots"),
            metadata_section(
                document, (("model", "Model"), ("data", "Data"), ("params", "Parameters"), ("versions", "Versions"))
            ),
        ],
        subtitle=join([document["model"]["type"], f"created {document['created_at']}"], " · "),
        toc=[
            ("warnings", "Warnings"),
            ("agreement", "Agreement"),
            ("importance", "Importance"),
            ("plots", "Plots"),
            ("run", "Run"),
        ],
    )
