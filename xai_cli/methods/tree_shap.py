"""Exact Tree SHAP through ``shap.TreeExplainer`` for tree models fed numeric columns directly.

With background rows the game is the interventional one (the same game Kernel SHAP estimates),
computed in float64 by :mod:`xai_cli.interventional_trees` from shap's parse of the trees (shap's
own routine works in float32, about 1e-8 off); without them, the trees' own path statistics
(path-dependent Tree SHAP, shap's float64 routine). Two traps are handled:
scikit-learn and XGBoost trees compare float32 inputs with their thresholds, so rows are cast to
float32 first (float64 values can take the other branch); and boosted trees are exact only in their
raw margin space, so they are never explained as probabilities here.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
import weakref

import numpy as np
import pandas as pd

from xai_cli import interventional_trees
from xai_cli.explanation import Explanation
from xai_cli.methods.base import Batch, Settings, attributions_for
from xai_cli.model import LoadedModel

NAME = "tree_shap"


def applies(model: LoadedModel, settings: Settings) -> str | None:
    """``None`` when exact Tree SHAP applies to ``model``, else why not."""
    if model.family != "tree":
        return f"{model.final_type_name} is not a tree model"
    if model.preprocessor is not None:
        return "the trees sit inside a Pipeline, so their inputs are not the CSV columns"
    if any(kind.kind != "numeric" for kind in model.column_kinds.values()):
        return "the model takes categorical columns natively"
    if model.is_classifier and model.boosted and settings.output == "probability":
        return (
            f"exact Tree SHAP for a boosted model ({model.final_type_name}) exists only for its raw margin "
            "(log-odds), not for probabilities"
        )
    if model.is_classifier and not model.boosted and settings.output == "raw":
        return f"{model.final_type_name} has no raw margin: its output is a probability"
    return _unreadable(model.final_estimator, len(model.feature_names))


def _once_per_model(compute):
    """Decorate ``compute(estimator, ...)`` so that it runs once per model object: the answer is kept
    as long as the model lives (weakly, since an id can be reused by the next model loaded)."""
    answers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @functools.wraps(compute)
    def cached(estimator, *args):
        try:
            return answers[estimator]
        except (KeyError, TypeError):
            pass
        answer = compute(estimator, *args)
        with contextlib.suppress(TypeError):  # not weakly referenceable: computed again next time
            answers[estimator] = answer
        return answer

    return cached


@_once_per_model
def _unreadable(estimator, n_features: int) -> str | None:
    """Why shap cannot read these trees (multi-class GradientBoosting, XGBRF, a custom ``init``...),
    or ``None``: asked once per model, so that ``auto`` can fall back to Kernel SHAP."""
    import shap

    try:
        shap.TreeExplainer(estimator, feature_perturbation="tree_path_dependent")
        probe = np.zeros((1, n_features))  # with a background, shap also replays the trees
        shap.TreeExplainer(estimator, data=probe, feature_perturbation="interventional", model_output="raw")
    except MemoryError:
        raise
    except Exception as error:
        detail = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
        return f"shap's TreeExplainer cannot read this {type(estimator).__name__} ({detail})"
    return None


def explain(
    model: LoadedModel, batch: Batch, background: pd.DataFrame | None, *, settings: Settings
) -> list[Explanation]:
    """Tree SHAP explanations of every row in ``batch`` for its target classes."""
    import shap

    output = model.output(settings.output)
    final = model.final_estimator
    inputs = _tree_inputs(model, batch.features)
    exact = True
    replayed = None
    if background is not None:
        background_inputs = _tree_inputs(model, background)
        explainer = shap.TreeExplainer(
            final, data=background_inputs, feature_perturbation="interventional", model_output="raw"
        )
        try:  # shap parses the trees; the arithmetic is ours, in float64 (see interventional_trees)
            ensemble = interventional_trees.flatten(explainer.model)
            raw_values = interventional_trees.shap_values(ensemble, inputs, background_inputs)
            replayed = interventional_trees.predict(ensemble, background_inputs)
            expected = replayed.mean(axis=0)
        except interventional_trees.UnsupportedTrees:
            # shap's own routine: the same game, but in float32 arithmetic, so not exact to 1e-9
            raw_values = np.asarray(explainer.shap_values(inputs, check_additivity=False))
            expected = np.atleast_1d(explainer.expected_value)
            exact = False
    else:
        explainer = shap.TreeExplainer(final, feature_perturbation="tree_path_dependent")
        raw_values = np.asarray(explainer.shap_values(inputs, check_additivity=False))
        expected = np.atleast_1d(explainer.expected_value)
    values, base_values = _per_output(raw_values, expected, len(output.labels))
    predictions = output.predict(batch.features)
    if replayed is not None:
        # The base value is v(empty set): the model's own mean over the background. shap may read a
        # base offset wrongly (it gives every class of a multi-class XGBoost model the first class's
        # base_score); an offset changes no Shapley value, so only the base is taken from the model.
        background_outputs = output.predict(background)
        base_values = background_outputs.mean(axis=0)
        exact = exact and _reproduces(final, background_outputs, replayed)
    native_gap = _native_difference(model, inputs, raw_values) if background is None else None

    names = list(batch.features.columns)
    explanations = []
    for position, (row_number, identifier) in enumerate(zip(batch.row_numbers, batch.ids)):
        shown = batch.display_values(position)
        for column in batch.targets[position]:
            phi = values[position, :, column]
            base = float(base_values[column])
            prediction = float(predictions[position, column])
            gap = abs(base + float(phi.sum()) - prediction)
            # The trees as parsed must reproduce the model's own output, or the values explain
            # some other model: then they are not called exact (and the gap is in warnings).
            reproduces = gap <= _reproduction_tolerance(final) * max(1.0, abs(prediction))
            quality = {"exact": exact and reproduces, "additivity_gap": gap}
            if native_gap is not None:
                quality["native_max_difference"] = native_gap
            explanations.append(
                Explanation(
                    row=row_number,
                    id=identifier,
                    method=NAME,
                    class_label=output.labels[column],
                    prediction=prediction,
                    base_value=base,
                    attributions=attributions_for(names, shown, phi),
                    quality=quality,
                )
            )
    return explanations


def _reproduces(estimator, model_output: np.ndarray, replayed: np.ndarray) -> bool:
    """Whether the parsed trees reproduce the model's output on the background, up to a constant.

    Any other difference means the trees as parsed are not the model (a float32 cast where the model
    compares in float64, a missing-value sentinel...): the values are then not exact.
    """
    replayed, _ = _per_output(replayed[:, None, :], np.zeros(replayed.shape[1]), model_output.shape[1])
    difference = model_output - replayed[:, 0, :]
    tolerance = _reproduction_tolerance(estimator) * max(1.0, float(np.max(np.abs(model_output))))
    return bool(np.all(np.abs(difference - difference.mean(axis=0)) <= tolerance))


def _tree_inputs(model: LoadedModel, frame: pd.DataFrame) -> np.ndarray:
    """The numbers the trees compare: float32 for scikit-learn's trees and XGBoost, as they do.

    shap sends every missing value down a split's default branch. LightGBM does that only for
    features trained with missing values; elsewhere it reads a missing value as 0 (missing type
    "None"), and with ``zero_as_missing`` it reads 0 as missing ("Zero"). The values are rewritten
    here so that shap's rule gives LightGBM's answer.
    """
    values = frame.to_numpy(dtype=np.float64, copy=True)
    estimator = model.final_estimator
    package = type(estimator).__module__.split(".")[0]
    if package == "xgboost":
        sentinel = getattr(estimator, "missing", np.nan)
        if sentinel is not None and not np.isnan(sentinel):  # XGBRegressor(missing=-999): -999 is missing
            values[values == sentinel] = np.nan
        return values.astype(np.float32).astype(np.float64)
    if package != "lightgbm":
        # scikit-learn's tree_-based models compare float32; HistGradientBoosting compares float64.
        if type(estimator).__name__.startswith("HistGradientBoosting"):
            return values
        return values.astype(np.float32).astype(np.float64)
    for feature, missing_type in _lightgbm_missing_types(model.final_estimator).items():
        column = values[:, feature]
        if missing_type == "None":
            column[np.isnan(column)] = 0.0
        elif missing_type == "Zero":
            column[np.abs(column) <= LIGHTGBM_ZERO] = np.nan
    return values


def _reproduction_tolerance(estimator) -> float:
    """How closely the parsed trees must reproduce the model: XGBoost itself sums in float32."""
    return 1e-5 if type(estimator).__module__.split(".")[0] == "xgboost" else 1e-9


LIGHTGBM_ZERO = 1e-35  # LightGBM's kZeroThreshold: smaller magnitudes count as zero


@_once_per_model
def _lightgbm_missing_types(estimator) -> dict[int, str]:
    """Each split feature's missing-value rule in a LightGBM model ("None", "Zero" or "NaN"): read
    from the model's dump once, not for every batch of rows."""
    booster = getattr(estimator, "booster_", estimator)
    found: dict[int, str] = {}
    stack = [tree["tree_structure"] for tree in booster.dump_model()["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_feature" in node:
            found.setdefault(int(node["split_feature"]), str(node.get("missing_type", "NaN")))
            stack.extend((node["left_child"], node["right_child"]))
    return found


def _per_output(values: np.ndarray, expected: np.ndarray, n_outputs: int) -> tuple[np.ndarray, np.ndarray]:
    """shap's shapes made ``(rows, features, outputs)`` matching the model's output columns.

    A binary margin model has one output; it becomes ``[-margin, margin]`` like the model output.
    """
    if values.ndim == 2:
        values = values[:, :, None]
    if values.shape[2] == 1 and n_outputs == 2:
        values = np.concatenate([-values, values], axis=2)
        expected = np.array([-expected[0], expected[0]])
    return values, expected


def _native_difference(model: LoadedModel, inputs: np.ndarray, shap_values: np.ndarray) -> float | None:
    """Largest difference between shap's path-dependent values and the library's own contributions."""
    final = model.final_estimator
    package = type(final).__module__.split(".")[0]
    try:
        if package == "xgboost":
            import xgboost

            native = final.get_booster().predict(xgboost.DMatrix(inputs), pred_contribs=True)
        elif package == "lightgbm":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # numpy input to a model fitted on a DataFrame: same columns
                native = np.asarray(final.predict(inputs, pred_contrib=True))
            n_features = inputs.shape[1]
            if native.shape[1] > n_features + 1:
                native = native.reshape(len(inputs), -1, n_features + 1).transpose(0, 2, 1)
        else:
            return None
    except Exception:
        return None
    native = np.asarray(native)
    if native.ndim == 3 and native.shape[1] != inputs.shape[1] + 1:
        native = native.transpose(0, 2, 1)
    native = native[:, :-1, ...]
    ours = shap_values if shap_values.ndim == native.ndim else shap_values[..., None]
    if ours.shape != native.shape:
        return None
    return float(np.max(np.abs(ours - native)))
