"""Global importance of a model's features, three ways, and how far the three agree.

- ``permutation``: how much the model's score on DATA drops when one original CSV column is
  shuffled, through the whole model (Pipeline included), by ``sklearn.inspection.permutation_importance``.
- ``builtin``: what the model itself reports (``feature_importances_``, ``|coef_|``, XGBoost
  ``get_score``, LightGBM ``feature_importance``, CatBoost ``PredictionValuesChange``). Inside a
  Pipeline the model reports on its transformed inputs; those of one original column (its one-hot
  columns, say) are summed back to that column.
- ``shap``: mean |SHAP value| per original column, from the same methods as ``xai explain --method
  auto`` (exact Tree / linear SHAP where they apply, Kernel SHAP otherwise), over a seeded sample of
  DATA with DATA itself as background.

The three answer different questions (what the score needs, how the model was built, what moves
its output), so they can disagree; :func:`agreement` measures how much. Correlated columns are one
known reason: shuffling one of two correlated columns leaves the other to carry the signal, so
permutation importance splits and understates both; :func:`correlated_pairs` names such pairs.

The module computes and writes files; it never prints. :func:`importance_figure` and
:func:`importance_report_html` draw with the project's plot and report building blocks.
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
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from xai_cli import __version__
from xai_cli.backends import usable_workers
from xai_cli.data import ModelRows, Table, display_value, sample_background
from xai_cli.errors import BadInput
from xai_cli.explanation import SCHEMA_VERSION, json_value
from xai_cli.methods.base import Settings
from xai_cli.model import LoadedModel, is_columnwise

if TYPE_CHECKING:
    from matplotlib.figure import Figure

METHODS = ("permutation", "builtin", "shap")
METHOD_CHOICES = (*METHODS, "all")
METHOD_TITLES = {"permutation": "Permutation", "builtin": "Built-in", "shap": "Mean |SHAP|"}
DEFAULT_REPEATS = 5
SHAP_MAX_ROWS = 200
# Rows used to find which transformed input comes from which column; enough to meet every category
# that matters, few enough that transforming them once per column stays instant.
PROBE_ROWS = 1000
CORRELATION_THRESHOLD = 0.8
TOP_K = 5
SCORER_EXAMPLES = {
    "classification": ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "neg_log_loss"),
    "regression": ("r2", "neg_mean_absolute_error", "neg_root_mean_squared_error"),
}
CSV_HEADER = ("method", "feature", "importance", "std")
# What to do when a method asked for by name does not apply.
HINTS = {
    "permutation": "pass --target COL, the label column of DATA",
    "builtin": "use --method permutation or shap",
    "shap": "pass DATA with more rows",
}
# Seeds the sample of rows explained by SHAP apart from the background sample drawn with the same seed.
SHAP_ROWS_STREAM = 0x5EED


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
    the share of their top-5 sets they have in common."""

    a: str
    b: str
    spearman: float | None
    top5_overlap: float

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "spearman": json_value(self.spearman), "top5_overlap": self.top5_overlap}


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
        "builtin": (lambda: builtin_reason(model), lambda: builtin_importance(model, rows, seed=seed)),
        "shap": (lambda: shap_reason(model, rows), lambda: mean_abs_shap(model, rows, seed=seed, n_jobs=n_jobs)),
    }
    skipped: list[str] = []
    computed: dict[str, MethodImportance] = {}
    for name in METHODS if method == "all" else (method,):
        reason_not_to_run, run = methods[name]
        reason = reason_not_to_run()
        if reason is None:
            computed[name] = run()
        elif method == "all":
            skipped.append(f"{name} skipped: {reason}")
        else:
            raise BadInput(f"--method {name} does not apply: {reason}", hint=HINTS[name])
    if not computed:
        raise BadInput(f"no importance method applies: {'; '.join(skipped)}", hint=HINTS["permutation"])
    pairs = correlated_pairs(rows.features)
    run_warnings = [
        *rows.warnings,
        *skipped,
        *(warning for method in computed.values() for warning in method.warnings),
        *(pair.warning() for pair in pairs),
    ]
    params = {
        "method": method,
        "methods": list(computed),
        "scoring": scoring,
        "repeats": repeats,
        "seed": seed,
        "n_jobs": n_jobs,
        "shap_max_rows": SHAP_MAX_ROWS,
        "correlation_threshold": CORRELATION_THRESHOLD,
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
    from sklearn.metrics import get_scorer

    labels, labelled = target_labels(model, rows.target)
    features = rows.features.iloc[labelled]
    _check_model_predicts(model, features)
    inputs = model.model_input(features)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            baseline = float(get_scorer(scoring)(model.estimator, inputs, labels))
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
            scoring=scoring,
            n_repeats=repeats,
            random_state=seed,
            n_jobs=usable_workers(n_jobs),
        )
    dropped = int((~labelled).sum())
    notes = [f"permutation: {dropped} rows with an empty --target cell were left out"] if dropped else []
    return MethodImportance(
        name="permutation",
        kind="permutation",
        what=f"mean drop in {scoring} when the column is shuffled ({repeats} shuffles; std over them)",
        features=[
            FeatureImportance(name, float(mean), float(std))
            for name, mean, std in zip(features.columns, result.importances_mean, result.importances_std)
        ],
        details={
            "scoring": scoring,
            "baseline_score": baseline,
            "repeats": repeats,
            "seed": seed,
            "rows": len(features),
        },
        warnings=notes,
    )


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
    """``None`` when the model reports an importance xai can map to the CSV columns, else why not."""
    if _reporter(model.final_estimator) is None:
        return f"{model.final_type_name} reports no importance of its own (no feature_importances_ or coef_)"
    if model.preprocessor is not None and not is_columnwise(model.preprocessor):
        return "the Pipeline's preprocessing mixes columns, so the model's inputs cannot be traced to CSV columns"
    return None


def builtin_importance(model: LoadedModel, rows: ModelRows, *, seed: int = 0) -> MethodImportance:
    """The model's own importance, summed per original column when it sits behind preprocessing."""
    reported = reported_importance(model)
    names = list(model.feature_names)
    details: dict[str, Any] = {}
    notes = []
    if model.preprocessor is not None:
        probe = sample_background(rows, max_rows=PROBE_ROWS, seed=seed)
        owners = input_owners(model, probe)
        if len(owners) != len(reported.values):
            raise BadInput(
                f"{model.final_type_name} reports {len(reported.values)} importances, but the Pipeline "
                f"gives it {len(owners)} inputs",
                hint=HINTS["builtin"],
            )
        untraced = float(np.abs(reported.values[owners < 0]).sum())
        if untraced > 0:
            notes.append(
                f"builtin: {int((owners < 0).sum())} model inputs are constant in DATA, so their importance "
                f"({untraced:.3g} in all) could not be traced to a column and is left out"
            )
        reported = reported.mapped(lambda values: _sum_by_owner(values, owners, len(names)))
        details["summed_over_inputs"] = True
        details["note"] = (
            f"the model reports on the {len(owners)} inputs its Pipeline makes; the importances of the inputs "
            "made from one column (its one-hot columns, for instance) are summed into that column"
        )
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
        warnings=notes,
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
    """XGBoost's ``get_score`` per kind; the kind its ``feature_importances_`` uses comes first."""
    final = model.final_estimator
    booster = final.get_booster()
    count = int(final.n_features_in_)
    names = booster.feature_names or [f"f{i}" for i in range(count)]
    primary = final.importance_type or ("weight" if getattr(final, "booster", None) == "gblinear" else "gain")
    scores = {}
    for kind in dict.fromkeys((primary, "weight", "gain", "cover")):
        try:
            by_name = booster.get_score(importance_type=kind)
        except Exception:
            continue  # a linear booster knows only "weight"
        scores[kind] = np.array([float(np.sum(by_name.get(name, 0.0))) for name in names])
    return ReportedImportance(
        kind=f"xgboost_{primary}",
        what=f"XGBoost get_score(importance_type={primary!r}); features never used in a split count 0",
        values=scores.pop(primary),
        other_kinds={f"xgboost_{kind}": values for kind, values in scores.items()},
    )


def _lightgbm_importance(model: LoadedModel) -> ReportedImportance:
    """LightGBM's ``feature_importance`` per kind; the model's own ``importance_type`` comes first."""
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
    labels = model.classes if model.classes and len(model.classes) == len(magnitudes) else None
    per_class = dict(zip(labels, magnitudes)) if labels and len(magnitudes) > 1 else {}
    return ReportedImportance(
        kind="abs_coef",
        what=(
            f"|coef_| of {model.final_type_name}"
            + (", the mean over classes (per class in per_class)" if per_class else "")
            + ": in units of the model's inputs, so comparable across columns only when they share a scale"
        ),
        values=magnitudes.mean(axis=0),
        per_class=per_class,
    )


def input_owners(model: LoadedModel, probe: pd.DataFrame) -> np.ndarray:
    """For every input the Pipeline gives its final estimator, the index of its original column (-1: none).

    Found by :func:`xai_cli.methods.linear_shap.column_owners`, which rotates each column among the
    probe rows and sees which inputs change.
    """
    from xai_cli.methods.linear_shap import column_owners

    try:
        return column_owners(model, probe)
    except BadInput as exc:
        raise BadInput(
            "the model's built-in importance cannot be traced to CSV columns: a model input depends on "
            "several columns, or on none that DATA varies",
            hint=HINTS["builtin"],
        ) from exc


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
    """Mean |SHAP value| per column over at most ``SHAP_MAX_ROWS`` rows of DATA, averaged over classes.

    The plan (method, output space, background of at most ``MAX_BACKGROUND_ROWS`` rows of DATA) is
    :func:`xai_cli.explain.prepare`'s for ``xai explain --method auto --class all``, and the values
    are that method's, computed by :func:`xai_cli.explain.explain_rows` without the per-row receipts.
    """
    from xai_cli.explain import MIN_DATA_AS_BACKGROUND, explain_rows, game_description, prepare
    from xai_cli.plots import mean_abs_attributions

    explained = sample_rows(rows, max_rows=SHAP_MAX_ROWS, seed=seed)
    explain_plan = prepare(
        model,
        explained,
        method="auto",
        settings=shap_settings(model, seed=seed, n_jobs=n_jobs),
        output_given=True,
        background_rows=rows if len(rows) >= MIN_DATA_AS_BACKGROUND else None,
        background_path=None,
    )
    explanations = [e for batch in explain_rows(explain_plan, [explained], receipts=False) for e in batch]
    means = mean_abs_attributions(explanations)
    names = list(model.feature_names)
    per_class = {label: np.array([group.get(name, 0.0) for name in names]) for (_, label), group in means.items()}
    averaged = np.mean(list(per_class.values()), axis=0)
    method_name = explain_plan.methods[0].NAME
    space = explain_plan.output.space
    over_classes = " averaged over the classes" if model.is_classifier else ""
    return MethodImportance(
        name="shap",
        kind=f"mean_abs_{method_name}",
        what=f"mean |{method_name} value| over {len(explained)} rows of DATA, in the {space} output{over_classes}",
        features=[FeatureImportance(name, float(value)) for name, value in zip(names, averaged)],
        details={
            "method": method_name,
            "output": space,
            "rows": len(explained),
            "seed": seed,
            "game": game_description(explain_plan),
            **(
                {"per_class": {label: dict(zip(names, v.tolist())) for label, v in per_class.items()}}
                if model.is_classifier
                else {}
            ),
        },
    )


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


def agreement(methods: list[MethodImportance], *, top_k: int = TOP_K) -> list[Agreement]:
    """Spearman rank correlation and top-``top_k`` overlap for every pair of methods."""
    from scipy.stats import spearmanr

    pairs = []
    for first, second in itertools.combinations(methods, 2):
        features = [f.feature for f in first.features]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a constant ranking: rho is undefined, reported as None
            rho = spearmanr(
                [first.importance_of(name) for name in features], [second.importance_of(name) for name in features]
            ).statistic
        k = min(top_k, len(features))
        overlap = len(first.top(k) & second.top(k)) / k if k else 0.0
        pairs.append(Agreement(first.name, second.name, None if np.isnan(rho) else float(rho), overlap))
    return pairs


def correlated_pairs(features: pd.DataFrame, *, threshold: float = CORRELATION_THRESHOLD) -> list[CorrelatedPair]:
    """Pairs of numeric columns with |Spearman rho| >= ``threshold`` in ``features``, strongest first.

    Only numeric columns are compared: a rank correlation needs ordered values, and string or
    ``category`` columns have none, so they are left out. Empty cells are skipped pair by pair.
    """
    numeric = [
        name
        for name in features.columns
        if pd.api.types.is_numeric_dtype(features[name]) and not pd.api.types.is_bool_dtype(features[name])
    ]
    if len(numeric) < 2:
        return []
    correlation = features[numeric].corr(method="spearman").to_numpy()
    pairs = [
        CorrelatedPair(numeric[i], numeric[j], float(correlation[i, j]))
        for i, j in itertools.combinations(range(len(numeric)), 2)
        if np.isfinite(correlation[i, j]) and abs(correlation[i, j]) >= threshold
    ]
    return sorted(pairs, key=lambda pair: -abs(pair.spearman))


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
    """Write ``importance.json``, ``importance.csv``, ``plots/importance_<method>.png`` and
    ``report.html`` into ``out_dir``, each atomically."""
    from xai_cli.output import write_json, write_text
    from xai_cli.plots import save_png

    plot_files = {name: out_dir / "plots" / f"importance_{name}.png" for name in document["methods"]}
    for name, path in plot_files.items():
        save_png(importance_figure(name, document["methods"][name]), path)
    write_json(out_dir / "importance.json", document)
    write_text(out_dir / "importance.csv", importance_csv(document))
    write_text(out_dir / "report.html", importance_report_html(document, plot_files))


def importance_figure(name: str, method: dict[str, Any], *, max_features: int = 30) -> Figure:
    """One method's importances as horizontal bars, largest on top; error bars where it has a std.

    A negative importance (a column whose shuffling happened to help the score) is vermillion and
    hatched, so it reads apart from the blue bars in grey and for colour-blind readers.
    """
    from matplotlib.figure import Figure

    from xai_cli.plots import GRID, INK, MAX_NAME_CHARS, NEGATIVE, NEGATIVE_HATCH, POSITIVE, shorten

    shown = method["features"][:max_features][::-1]
    values = [entry["importance"] or 0.0 for entry in shown]
    errors = [entry["std"] or 0.0 for entry in shown]
    labels = [shorten(entry["feature"], MAX_NAME_CHARS).replace("$", r"\$") for entry in shown]
    figure = Figure(figsize=(8, 1.4 + 0.32 * max(len(shown), 1)), dpi=100, layout="constrained", facecolor="white")
    ax = figure.add_subplot()
    positions = np.arange(len(shown))
    ax.barh(
        positions,
        values,
        xerr=errors if any(errors) else None,
        color=[POSITIVE if value >= 0 else NEGATIVE for value in values],
        hatch=[NEGATIVE_HATCH if value < 0 else "" for value in values],
        edgecolor="white",
        ecolor=INK,
        capsize=3,
    )
    ax.set_yticks(positions, labels)
    ax.axvline(0, color=INK, linewidth=0.8)
    ax.grid(axis="x", color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    kind = "" if method["kind"] == name else f" · {method['kind']}"
    count = len(method["features"])
    top = f" · top {len(shown)} of {count} features" if count > len(shown) else ""
    ax.set_title(f"{METHOD_TITLES[name]} importance{kind}{top}".replace("$", r"\$"), loc="left")
    ax.set_xlabel(shorten(method["what"], 110).replace("$", r"\$"))
    return figure


def importance_report_html(document: dict[str, Any], plot_files: dict[str, Path]) -> str:
    """The self-contained ``report.html`` of ``xai importance``: agreement, warnings, table, plots."""
    from xai_cli.report import html_page, image, join, metadata_section, section, stat, table, tag, warnings_section

    methods = document["methods"]
    names = list(methods)
    by_feature = feature_table(document)
    importance_rows = [[feature, *(entry["importance"] for entry in entries)] for feature, entries in by_feature]
    agreement_rows = [
        [
            METHOD_TITLES[pair["a"]],
            METHOD_TITLES[pair["b"]],
            pair["spearman"],
            pair["top5_overlap"],
        ]
        for pair in document["agreement"]
    ]
    agreement_body = (
        table(["Method", "Method", "Spearman rho", "Top-5 overlap"], agreement_rows, numeric=[2, 3])
        if agreement_rows
        else tag("p", "Agreement needs at least two methods.", class_="muted")
    )
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
            warnings_section(page_warnings),
            section("Agreement between methods", agreement_body, id_="agreement"),
            section(
                "Importance per feature",
                table(
                    ["Feature", *(METHOD_TITLES[name] for name in names)],
                    importance_rows,
                    sortable=True,
                    numeric=range(1, len(names) + 1),
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
