"""Exact linear SHAP: ``coef * (x - mean(background))``, summed back to the original columns.

A linear model behind column-wise preprocessing (imputers, scalers, one-hot encoders inside a
ColumnTransformer) is additive in the original CSV columns, and for an additive model the Shapley
value of a column is its own term minus that term's background mean. So here, unlike in general,
summing the one-hot parts of a column gives its exact Shapley value. Which output columns belong to
which original column is found by probing the fitted preprocessing, and a probe that finds an
output depending on two columns stops the method rather than give a wrong answer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xai_cli.errors import BadInput
from xai_cli.explanation import Explanation
from xai_cli.methods.base import Batch, Settings, attributions_for
from xai_cli.model import LoadedModel, is_columnwise

NAME = "linear_shap"


def applies(model: LoadedModel, settings: Settings) -> str | None:
    """``None`` when exact linear SHAP applies to ``model``, else why not."""
    if model.family != "linear":
        return f"{model.final_type_name} is not a linear model"
    if model.preprocessor is not None and not is_columnwise(model.preprocessor):
        return "the Pipeline's preprocessing mixes columns, so the model is not additive in them"
    if model.is_classifier and settings.output != "raw":
        return "a linear classifier is linear in its margin, not its probabilities (pass --output raw)"
    return None


def explain(model: LoadedModel, batch: Batch, background: pd.DataFrame, *, settings: Settings) -> list[Explanation]:
    """Linear SHAP explanations of every row in ``batch`` for its target classes."""
    output = model.output(settings.output)
    final = model.final_estimator
    coefficients = np.atleast_2d(np.asarray(final.coef_, dtype=float))
    row_inputs = _transformed(model, batch.features)
    background_inputs = _transformed(model, background)
    owners = column_owners(model, pd.concat([batch.features, background], ignore_index=True))
    centred = row_inputs - background_inputs.mean(axis=0)
    per_input = centred[:, :, None] * coefficients.T[None, :, :]
    n_features = len(batch.features.columns)
    values = np.zeros((len(row_inputs), n_features, coefficients.shape[0]))
    for feature in range(n_features):
        values[:, feature, :] = per_input[:, owners == feature, :].sum(axis=1)
    if values.shape[2] == 1 and len(output.labels) == 2:
        values = np.concatenate([-values, values], axis=2)

    predictions = output.predict(batch.features)
    base_values = output.predict(background).mean(axis=0)
    names = list(batch.features.columns)
    explanations = []
    for position, (row_number, identifier) in enumerate(zip(batch.row_numbers, batch.ids)):
        shown = batch.display_values(position)
        for column in batch.targets[position]:
            phi = values[position, :, column]
            base = float(base_values[column])
            prediction = float(predictions[position, column])
            explanations.append(
                Explanation(
                    row=row_number,
                    id=identifier,
                    method=NAME,
                    class_label=output.labels[column],
                    prediction=prediction,
                    base_value=base,
                    attributions=attributions_for(names, shown, phi),
                    quality={"exact": True, "additivity_gap": abs(base + float(phi.sum()) - prediction)},
                )
            )
    return explanations


def _transformed(model: LoadedModel, frame: pd.DataFrame) -> np.ndarray:
    """The linear model's inputs for ``frame``, as a dense float array."""
    inputs = model.model_input(frame)
    if model.preprocessor is not None:
        inputs = model.preprocessor.transform(inputs)
    if hasattr(inputs, "toarray"):
        inputs = inputs.toarray()
    return np.asarray(inputs, dtype=float)


def column_owners(model: LoadedModel, probe: pd.DataFrame) -> np.ndarray:
    """For every model input, the index of the one original column it depends on.

    Each column in turn is rotated among the probe rows; the inputs that change belong to it.
    """
    reference = _transformed(model, probe)
    owners = np.full(reference.shape[1], -1)
    for index, name in enumerate(probe.columns):
        shifted = probe.copy()
        shifted[name] = np.roll(probe[name].to_numpy(), 1)
        changed = ~_same(_transformed(model, shifted), reference).all(axis=0)
        if np.any(changed & (owners >= 0)):
            raise BadInput(
                "linear SHAP cannot be exact here: a model input depends on several columns",
                hint="use --method kernel",
            )
        owners[changed] = index
    varying = ~_same(reference, reference[:1]).all(axis=0)
    if np.any(varying & (owners < 0)):
        raise BadInput("linear SHAP could not match every model input to a column", hint="use --method kernel")
    return owners


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a == b) | (np.isnan(a) & np.isnan(b))
