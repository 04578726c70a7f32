"""LIME through the ``lime`` package, on the original CSV columns.

String columns are given to LIME as categorical features (integer codes that are decoded back to
the real categories before the model sees them), so perturbations draw real categories from the
background. Each class is explained by its own LIME run in regression mode on that class's output,
because LIME scores only the last label when asked for several; the runs share one neighbourhood
(the same seed) and one set of model calls, so the classes stay comparable and cost one call.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from xai_cli.explanation import Attribution, Explanation
from xai_cli.methods.base import Batch, Settings, row_rng
from xai_cli.model import LoadedModel

NAME = "lime"
MISSING = "<missing>"


def applies(model: LoadedModel, settings: Settings) -> str | None:
    """LIME applies to every model; it needs background rows, which the caller provides."""
    return None


def explain(model: LoadedModel, batch: Batch, background: pd.DataFrame, *, settings: Settings) -> list[Explanation]:
    """LIME explanations of every row in ``batch`` for its target classes."""
    from lime.lime_tabular import LimeTabularExplainer

    output = model.output(settings.output)
    codec = ColumnCodec(background, batch.features)
    explainer = LimeTabularExplainer(
        codec.encode(background),
        mode="regression",
        feature_names=codec.names,
        categorical_features=codec.categorical_indices,
        categorical_names=codec.categorical_names,
        discretize_continuous=True,
        random_state=0,
    )
    predictions = output.predict(batch.features)
    explanations = []
    for position, (row_number, identifier) in enumerate(zip(batch.row_numbers, batch.ids)):
        row = batch.features.iloc[[position]]
        encoded_row = codec.encode(row)[0]
        replaced = [name for name in codec.numeric_names if pd.isna(row[name].iloc[0])]
        shown = batch.display_values(position)
        outputs_of = _cached_outputs(lambda samples: output.predict(codec.decode(samples)))
        for column in batch.targets[position]:
            _reseed(explainer, row_rng(settings.seed, row_number, NAME).integers(2**31 - 1))
            result = explainer.explain_instance(
                encoded_row,
                lambda samples, column=column, outputs_of=outputs_of: outputs_of(samples)[:, column],
                num_features=len(codec.names),
                num_samples=settings.lime_samples,
            )
            weights = dict(result.local_exp[1])
            rules = dict(
                zip((index for index, _ in result.local_exp[1]), (rule for rule, _ in result.as_list(label=1)))
            )
            attributions = [
                Attribution(
                    feature=name, value=shown[index], attribution=float(weights.get(index, 0.0)), rule=rules.get(index)
                )
                for index, name in enumerate(codec.names)
            ]
            quality: dict[str, Any] = {
                "r2": float(result.score),
                "local_prediction": float(np.ravel(result.local_pred)[0]),
            }
            if replaced:
                quality["missing_replaced_by_median"] = replaced
            explanations.append(
                Explanation(
                    row=row_number,
                    id=identifier,
                    method=NAME,
                    class_label=output.labels[column],
                    prediction=float(predictions[position, column]),
                    base_value=float(result.intercept[1]),
                    attributions=attributions,
                    quality=quality,
                )
            )
    return explanations


def _reseed(explainer: Any, seed: int) -> None:
    """Give LIME's sampler, discretizer and local model one fresh random stream for this row."""
    state = np.random.RandomState(seed)
    explainer.random_state = state
    explainer.base.random_state = state
    if explainer.discretizer is not None:
        explainer.discretizer.random_state = state


def _cached_outputs(predict):
    """Model outputs for LIME's samples, computed once per neighbourhood and shared by all classes."""
    cache: dict[bytes, np.ndarray] = {}

    def outputs(samples: np.ndarray) -> np.ndarray:
        key = samples.tobytes()
        if key not in cache:
            cache.clear()
            cache[key] = predict(samples)
        return cache[key]

    return outputs


class ColumnCodec:
    """Numbers LIME can perturb, and back: categories as integer codes, numbers as they are.

    Missing numbers take the background median (LIME's statistics cannot hold NaN); a missing
    category is a category of its own and decodes back to missing.
    """

    def __init__(self, background: pd.DataFrame, rows: pd.DataFrame):
        self.names = [str(c) for c in background.columns]
        self.dtypes = {name: background[name].dtype for name in background.columns}
        self.categorical_indices: list[int] = []
        self.categorical_names: dict[int, list[str]] = {}
        self.categories: dict[str, list[Any]] = {}
        self.medians: dict[str, float] = {}
        for index, name in enumerate(background.columns):
            if pd.api.types.is_numeric_dtype(self.dtypes[name]) and not isinstance(
                self.dtypes[name], pd.CategoricalDtype
            ):
                median = np.nanmedian(background[name].to_numpy(dtype=float)) if background[name].notna().any() else 0.0
                self.medians[name] = float(median)
                continue
            seen = pd.concat([background[name], rows[name]]).astype(object)
            values = sorted({v for v in seen if not _missing(v)}, key=str)
            if seen.map(_missing).any():
                values.append(MISSING)
            self.categories[name] = values
            self.categorical_indices.append(index)
            self.categorical_names[index] = [str(v) for v in values]

    @property
    def numeric_names(self) -> list[str]:
        return list(self.medians)

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        columns = []
        for name in frame.columns:
            if name in self.medians:
                columns.append(frame[name].to_numpy(dtype=float, na_value=np.nan))
                columns[-1] = np.where(np.isnan(columns[-1]), self.medians[name], columns[-1])
            else:
                lookup = {str(v): code for code, v in enumerate(self.categories[name])}
                columns.append(
                    np.array(
                        [lookup[MISSING if _missing(v) else str(v)] for v in frame[name].astype(object)], dtype=float
                    )
                )
        return np.column_stack(columns)

    def decode(self, samples: np.ndarray) -> pd.DataFrame:
        columns = {}
        for index, name in enumerate(self.names):
            if name in self.medians:
                columns[name] = samples[:, index]
                continue
            table = np.array([np.nan if v == MISSING else v for v in self.categories[name]], dtype=object)
            values = table[np.rint(samples[:, index]).astype(int)]
            dtype = self.dtypes[name]
            columns[name] = pd.Categorical(values, dtype=dtype) if isinstance(dtype, pd.CategoricalDtype) else values
        return pd.DataFrame(columns)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA
