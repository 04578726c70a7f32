"""Load a model file (safety scan first) and describe what xai sees in it.

:class:`LoadedModel` is the one view of a model that every method and command uses: its task,
classes, the features it expects and how each is typed, which family it belongs to (tree, linear,
other), and :meth:`LoadedModel.output` — a function from a DataFrame of original CSV columns to the
model's outputs in a chosen space, with the model's own exceptions turned into exit code 4.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xai_cli.errors import BadInput, ModelFailed

SKLEARN_TREE_MODELS = {
    "DecisionTreeClassifier",
    "DecisionTreeRegressor",
    "ExtraTreeClassifier",
    "ExtraTreeRegressor",
    "RandomForestClassifier",
    "RandomForestRegressor",
    "ExtraTreesClassifier",
    "ExtraTreesRegressor",
    "GradientBoostingClassifier",
    "GradientBoostingRegressor",
    "HistGradientBoostingClassifier",
    "HistGradientBoostingRegressor",
}
# Boosted trees add margins: their exact Tree SHAP exists only in raw (log-odds) space.
BOOSTED_MODELS = {
    "GradientBoostingClassifier",
    "GradientBoostingRegressor",
    "HistGradientBoostingClassifier",
    "HistGradientBoostingRegressor",
}
GBM_PACKAGES = ("xgboost", "lightgbm", "catboost")
# More columns than any CSV a model is explained on holds; a larger n_features_in_ is damage.
MAX_FEATURES = 100_000
ENCODER_NAMES = {"OneHotEncoder", "OrdinalEncoder", "TargetEncoder"}
# Transformers whose every output column is computed from one input column alone. A Pipeline of
# these before an additive model keeps the model additive in the original columns, which is what
# makes linear SHAP exact there.
COLUMNWISE_TRANSFORMERS = {
    "SimpleImputer",
    "StandardScaler",
    "MinMaxScaler",
    "MaxAbsScaler",
    "RobustScaler",
    "OneHotEncoder",
    "OrdinalEncoder",
    "KBinsDiscretizer",
    "QuantileTransformer",
    "PowerTransformer",
    "MissingIndicator",
    "Binarizer",
}


@dataclass(frozen=True)
class ColumnKind:
    """How the model takes one column: ``numeric``, ``categorical`` (strings), or ``category``.

    ``category`` means a pandas ``category`` column (LightGBM / XGBoost native categoricals);
    ``categories`` then holds the training categories, in the order the model learned them.
    """

    kind: str
    categories: tuple | None = None
    # For ``categorical`` columns behind an encoder: what the encoder does with a value it never saw
    # (scikit-learn's ``handle_unknown``), so DATA can be checked before the model is called.
    unknown: str | None = None


@dataclass(frozen=True)
class ModelOutput:
    """The model as a function of original columns, in one output space.

    ``predict(frame)`` returns an ``(n_rows, len(labels))`` float array: one column per class for
    classifiers (the binary raw margin becomes ``[-margin, margin]``), one column for regressors.
    """

    space: str
    labels: list[str | None]
    predict: Callable[[Any], np.ndarray]


@dataclass
class LoadedModel:
    """A loaded estimator and everything xai knows about it."""

    estimator: Any
    path: str
    sha256: str
    type_name: str
    final_type_name: str
    task: str
    classes: list[str] | None
    raw_classes: list[Any] | None
    feature_names: list[str]
    has_feature_names: bool
    column_kinds: dict[str, ColumnKind]
    family: str
    boosted: bool
    saved_sklearn_version: str | None = None  # set by load_model: the version that pickled the file
    notes: list[str] = field(default_factory=list)

    @property
    def final_estimator(self) -> Any:
        return self.estimator.steps[-1][1] if _is_pipeline(self.estimator) else self.estimator

    @property
    def preprocessor(self) -> Any | None:
        """The Pipeline's steps before the final estimator, or ``None`` for a bare estimator."""
        return self.estimator[:-1] if _is_pipeline(self.estimator) and len(self.estimator.steps) > 1 else None

    @property
    def is_classifier(self) -> bool:
        return self.task == "classification"

    def call_columns(self, names: list[str]) -> None:
        """Name the columns of a model fitted without names after DATA's header.

        Such a model takes DATA's columns in order; its attributions, plots and audits should say
        ``income``, not ``x3``. Only the labels change: the model is still given a bare array.
        """
        if self.has_feature_names or len(names) != len(self.feature_names) or len(set(names)) != len(names):
            return
        renamed = dict(zip(self.feature_names, names))
        self.column_kinds = {renamed[name]: kind for name, kind in self.column_kinds.items()}
        self.feature_names = list(names)

    def has_raw_margin(self) -> bool:
        """Whether the model has a raw output (margin) apart from its probabilities."""
        if not self.is_classifier:
            return True
        final = self.final_estimator
        return _package(final) in GBM_PACKAGES or hasattr(final, "decision_function")

    def sklearn_version_warning(self) -> str | None:
        """A warning when the file was pickled by another scikit-learn than the installed one."""
        from importlib.metadata import version

        installed = version("scikit-learn")
        saved = self.saved_sklearn_version
        if saved is None or saved == installed:
            return None
        return (
            f"the model was saved with scikit-learn {saved} and {installed} is installed: its predictions "
            f"may differ or fail (install scikit-learn=={saved}, or retrain and save it again)"
        )

    def default_output(self, method: str) -> str:
        """The output space explained when ``--output`` is not given (see the contract).

        A boosted classifier is explained in its raw margin only where exact Tree SHAP will explain
        it: ``auto`` that ends in Kernel SHAP (trees inside a Pipeline, native categoricals) explains
        probabilities, as for every other model.
        """
        if not self.is_classifier:
            return "raw"
        if self.family == "tree" and self.boosted:
            if method == "tree":
                return "raw"
            if method == "auto":
                from xai_cli.methods import tree_shap
                from xai_cli.methods.base import Settings

                return "raw" if tree_shap.applies(self, Settings(output="raw")) is None else "probability"
        return "probability"

    def output(self, space: str) -> ModelOutput:
        """The model's output function in ``space`` (``probability`` or ``raw``)."""
        if not self.is_classifier:
            return ModelOutput("raw", [None], self._guarded(lambda X: self.estimator.predict(X)))
        labels = list(self.classes or [])
        if space == "probability":
            if not hasattr(self.estimator, "predict_proba"):
                raise BadInput(
                    f"{self.final_type_name} gives no probabilities",
                    hint="pass --output raw to explain its decision function",
                )
            return ModelOutput("probability", labels, self._guarded(self.estimator.predict_proba))
        if not self.has_raw_margin():
            raise BadInput(
                f"{self.final_type_name} has no raw margin: its output is a probability",
                hint="use --output probability (the default)",
            )
        return ModelOutput("raw", labels, self._guarded(self._raw_margin))

    def _raw_margin(self, X: Any) -> np.ndarray:
        final = self.final_estimator
        inputs = self.preprocessor.transform(X) if self.preprocessor is not None else X
        package = _package(final)
        if package == "xgboost":
            margin = final.predict(inputs, output_margin=True)
        elif package == "lightgbm":
            margin = final.predict(inputs, raw_score=True)
        elif package == "catboost":
            margin = final.predict(inputs, prediction_type="RawFormulaVal")
        else:
            margin = final.decision_function(inputs)
        margin = np.asarray(margin, dtype=float)
        if margin.ndim == 1:
            return np.column_stack([-margin, margin])
        return margin

    def _guarded(self, function: Callable[[Any], Any]) -> Callable[[Any], np.ndarray]:
        """Wrap a model call: 2-D float output, the model's own exceptions become exit 4."""

        def call(frame: Any) -> np.ndarray:
            X = self.model_input(frame)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = np.asarray(function(X), dtype=float)
            except (KeyboardInterrupt, MemoryError):
                raise
            except Exception as exc:
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise ModelFailed(
                    f"the model raised {type(exc).__name__} while predicting: {message}"[:500],
                    hint="check that DATA has the values the model was trained on (XAI_DEBUG=1 shows the traceback)",
                ) from exc
            expected_rows = len(frame)
            if result.ndim == 0 or len(result) != expected_rows:
                raise ModelFailed(
                    f"the model returned {result.size if result.ndim == 0 else len(result)} outputs for "
                    f"{expected_rows} rows",
                    hint="the model's predict does not answer one output per row; is it a tabular model?",
                )
            result = result.reshape(expected_rows, -1)
            if not np.isfinite(result).all():
                bad = int((~np.isfinite(result)).any(axis=1).sum())
                raise ModelFailed(
                    f"the model returned NaN or infinite outputs for {bad} of {expected_rows} rows",
                    hint="check those rows for values the model cannot handle (XAI_DEBUG=1 shows more)",
                )
            return result

        return call

    def model_input(self, frame: Any) -> Any:
        """What the estimator is called with: the frame itself, or its array for nameless models."""
        return frame if self.has_feature_names else frame.to_numpy()


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_model(path: str, *, trust: bool = False, allow: Sequence[str] = ()) -> LoadedModel:
    """Scan (unless trusted), load and describe the model at ``path``."""
    from xai_cli.safety import load_model_file
    from xai_cli.structures import check_structures

    location = Path(path)
    if not location.exists():
        raise BadInput(f"model file not found: {path}", hint="check the path")
    if location.is_dir():
        raise BadInput(f"{path} is a folder, not a model file", hint="pass the .pkl/.joblib/.skops file")
    # scikit-learn removes the version stamp of a pickled estimator while loading it and says, by
    # a warning, only when it differs from the installed one: that warning is the saved version.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator = load_model_file(location, allow=allow, trust=trust)
    # Compiled code (trees, neighbor indexes, sparse kernels, XGBoost) trusts the loaded arrays:
    # check them all before anything predicts, so a damaged file exits 2 instead of crashing.
    check_structures(estimator, path=str(path))
    model = describe_model(estimator, path=str(path), sha256=file_sha256(location))
    stamped = [getattr(record.message, "original_sklearn_version", None) for record in caught]
    model.saved_sklearn_version = next((version for version in stamped if version), None)
    if model.saved_sklearn_version is None and _holds_sklearn_object(estimator):
        # Every scikit-learn object is pickled with its version stamp; no warning means it matched.
        from importlib.metadata import version

        model.saved_sklearn_version = version("scikit-learn")
    return model


def _holds_sklearn_object(value: Any, depth: int = 0) -> bool:
    """Whether a scikit-learn object is in the model (a Pipeline, or LightGBM's label encoder).

    Only such objects carry scikit-learn's version stamp; a bare XGBoost model holds none, and then
    the version it was saved with is unknown rather than "the installed one".
    """
    if type(value).__module__.startswith("sklearn."):
        return True
    if depth >= 4:
        return False
    if isinstance(value, dict):
        children = list(value.values())
    elif isinstance(value, (list, tuple)):
        children = list(value)
    else:
        children = list(getattr(value, "__dict__", {}).values())
    return any(_holds_sklearn_object(child, depth + 1) for child in children[:1000])


def describe_model(estimator: Any, *, path: str = "", sha256: str = "") -> LoadedModel:
    """Describe an estimator already in memory (raises BadInput if it is not a fitted model)."""
    if not hasattr(estimator, "predict"):
        raise BadInput(
            f"{path or 'the file'} holds a {type(estimator).__name__}, not a model with predict()",
            hint="save the fitted estimator or Pipeline itself (joblib.dump(model, 'model.pkl'))",
        )
    final = estimator.steps[-1][1] if _is_pipeline(estimator) else estimator
    final_name = type(final).__name__
    classes = getattr(estimator, "classes_", None)
    task = "classification" if classes is not None or _estimator_type(final) == "classifier" else "regression"
    if task == "classification" and classes is None:
        raise BadInput(f"{final_name} looks like a classifier but has no classes_", hint="is the model fitted?")
    names, has_names = _feature_names(estimator, final)
    family = (
        "tree"
        if (final_name in SKLEARN_TREE_MODELS or _package(final) in GBM_PACKAGES)
        else ("linear" if _is_linear(final) else "other")
    )
    boosted = final_name in BOOSTED_MODELS or _package(final) in GBM_PACKAGES
    return LoadedModel(
        estimator=estimator,
        path=path,
        sha256=sha256,
        type_name=f"{type(estimator).__module__.split('._')[0]}.{type(estimator).__name__}",
        final_type_name=final_name,
        task=task,
        classes=[str(c) for c in classes] if classes is not None else None,
        raw_classes=list(classes) if classes is not None else None,
        feature_names=names,
        has_feature_names=has_names,
        column_kinds=_column_kinds(estimator, final, names),
        family=family,
        boosted=boosted,
    )


def is_columnwise(transformer: Any) -> bool:
    """Whether every output column of ``transformer`` depends on one input column only."""
    if transformer is None or transformer in ("passthrough", "drop"):
        return True
    name = type(transformer).__name__
    if name == "Pipeline":
        return all(is_columnwise(step) for _, step in transformer.steps)
    if name == "ColumnTransformer":
        return all(is_columnwise(t) for _, t, _ in transformer.transformers_)
    if name == "FunctionTransformer":
        # A fitted ColumnTransformer stores "passthrough" as an identity FunctionTransformer; a numpy
        # ufunc (np.log1p...) is elementwise too. Any other function may mix columns.
        function = getattr(transformer, "func", None)
        return function is None or type(function).__name__ == "ufunc"
    return name in COLUMNWISE_TRANSFORMERS


def _is_pipeline(estimator: Any) -> bool:
    return type(estimator).__name__ == "Pipeline" and hasattr(estimator, "steps")


def _package(estimator: Any) -> str:
    return type(estimator).__module__.split(".")[0]


def _estimator_type(estimator: Any) -> str | None:
    kind = getattr(estimator, "_estimator_type", None)
    if kind is None:
        try:
            kind = estimator.__sklearn_tags__().estimator_type
        except Exception:
            kind = None
    return kind


def _is_linear(final: Any) -> bool:
    module = type(final).__module__
    linear_module = module.startswith("sklearn.linear_model") or type(final).__name__ in ("LinearSVC", "LinearSVR")
    return linear_module and hasattr(final, "coef_") and hasattr(final, "intercept_")


def _feature_names(estimator: Any, final: Any) -> tuple[list[str], bool]:
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        names = [str(n) for n in names]
        # LightGBM names nameless training data Column_0, Column_1...: those are not real names.
        generic = all(n == f"Column_{i}" for i, n in enumerate(names))
        if not (generic and _package(final) == "lightgbm"):
            return names, True
    count = getattr(estimator, "n_features_in_", None)
    if count is None:
        raise BadInput(
            f"cannot tell how many features {type(final).__name__} expects",
            hint="is the model fitted? xai needs n_features_in_ or feature_names_in_",
        )
    if not isinstance(count, (int, np.integer)) or not 0 < int(count) <= MAX_FEATURES:
        # A crafted count would have xai name (and the methods allocate for) billions of columns.
        raise BadInput(
            f"{type(final).__name__} claims n_features_in_ = {count!r}, which no CSV holds "
            f"(xai takes 1 to {MAX_FEATURES:,} columns)",
            hint="the file is corrupt or crafted; save the model again from the training code",
        )
    return [f"x{i}" for i in range(int(count))], False


def _column_kinds(estimator: Any, final: Any, names: list[str]) -> dict[str, ColumnKind]:
    """How the model takes each original column (see :class:`ColumnKind`)."""
    kinds = {name: ColumnKind("numeric") for name in names}
    first = estimator.steps[0][1] if _is_pipeline(estimator) else None
    if first is not None and type(first).__name__ == "ColumnTransformer":
        for _, transformer, columns in getattr(first, "transformers_", []):
            if transformer == "drop":
                continue
            selected = _selected_columns(columns, names)
            categorical = _contains_encoder(transformer)
            encoder = _encoder(transformer)
            categories = getattr(encoder, "categories_", None)
            for position, column in enumerate(selected):
                if categorical:
                    string_categories = (
                        categories is not None
                        and position < len(categories)
                        and (categories[position].dtype.kind in "OUT")
                    )
                    if string_categories:
                        known = tuple(str(c) for c in categories[position] if not _is_missing_category(c))
                        unknown = getattr(encoder, "handle_unknown", None)
                        kinds[column] = ColumnKind("categorical", known, unknown if isinstance(unknown, str) else None)
                    else:
                        kinds[column] = ColumnKind("categorical" if categories is None else "numeric")
    elif first is not None and _contains_encoder(first):
        kinds = {name: ColumnKind("categorical") for name in names}
    if _package(final) == "lightgbm" and final is estimator:
        booster = final.booster_
        indices = booster.params.get("categorical_column") or []
        for index, categories in zip(sorted(indices), booster.pandas_categorical or []):
            kinds[names[index]] = ColumnKind("category", tuple(categories))
    if _package(final) == "xgboost" and final is estimator:
        types = final.get_booster().feature_types or []
        for name, kind in zip(names, types):
            if kind == "c":
                kinds[name] = ColumnKind("category", None)
    if _package(final) == "catboost" and final is estimator:
        for index in final.get_cat_feature_indices():
            kinds[names[index]] = ColumnKind("categorical")
    return kinds


def _selected_columns(columns: Any, names: list[str]) -> list[str]:
    if isinstance(columns, str):
        return [columns] if columns in names else []
    if callable(columns):
        return []
    selected = []
    for column in np.atleast_1d(columns):
        if isinstance(column, (bool, np.bool_)):
            continue
        if isinstance(column, (int, np.integer)):
            if not -len(names) <= int(column) < len(names):
                raise BadInput(
                    f"the model's ColumnTransformer selects column {int(column)} of {len(names)}",
                    hint="the file is corrupt or crafted; save the model again from the training code",
                )
            selected.append(names[int(column)])
        elif str(column) in names:
            selected.append(str(column))
    if np.asarray(columns).dtype == bool:
        selected = [n for n, keep in zip(names, np.asarray(columns)) if keep]
    return selected


def _contains_encoder(transformer: Any) -> bool:
    if type(transformer).__name__ in ENCODER_NAMES:
        return True
    steps = getattr(transformer, "steps", None)
    return bool(steps) and any(_contains_encoder(step) for _, step in steps)


def _encoder(transformer: Any) -> Any:
    """The fitted encoder a column-wise transformer (or a Pipeline of them) ends in, if any."""
    if type(transformer).__name__ in ENCODER_NAMES:
        return transformer
    for _, step in getattr(transformer, "steps", None) or []:
        found = _encoder(step)
        if found is not None:
            return found
    return None


def _is_missing_category(value: Any) -> bool:
    """An encoder learns NaN/None as a category when it saw empty cells; those are not values."""
    return value is None or (isinstance(value, float) and np.isnan(value))
