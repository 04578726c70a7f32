"""What every explanation method shares: its settings, the rows and classes to explain, seeds.

A method is a module with ``NAME``, ``applies(model, settings) -> str | None`` (``None`` when it
applies, else the reason it does not) and ``explain(model, rows, background, *, settings)``
returning :class:`~xai_cli.explanation.Explanation` records.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from xai_cli.data import display_value
from xai_cli.explanation import Attribution
from xai_cli.model import ModelOutput

DEFAULT_NSAMPLES = 2048
DEFAULT_LIME_SAMPLES = 5000
MAX_BACKGROUND_ROWS = 100


@dataclass(frozen=True)
class Settings:
    """Options shared by every method, already validated by the caller."""

    output: str
    class_choice: str = "default"
    nsamples: int = DEFAULT_NSAMPLES
    lime_samples: int = DEFAULT_LIME_SAMPLES
    seed: int = 0
    n_jobs: int = 1


@dataclass(frozen=True)
class Batch:
    """Rows to explain: model-ready features, their row numbers in DATA, ids, and which output
    columns (classes) to explain for each row."""

    features: Any
    row_numbers: list[int]
    ids: list[str]
    targets: list[list[int]]
    # The cells as read where the model's dtypes lose some (see ``ModelRows.values``).
    values: Any = None

    def display_values(self, position: int) -> list[Any]:
        shown = self.features if self.values is None else self.values
        return [display_value(v) for v in shown.iloc[position].tolist()]


def row_rng(seed: int, row_number: int, method: str) -> np.random.Generator:
    """The random stream of one row and one method: the same for any chunking or process count."""
    return np.random.default_rng([seed, row_number, zlib.crc32(method.encode())])


def attributions_for(
    feature_names: list[str], values: list[Any], contributions: np.ndarray, std_errors: np.ndarray | None = None
) -> list[Attribution]:
    """Attribution records for one row and class, in feature order (Explanation sorts them)."""
    return [
        Attribution(
            feature=name,
            value=value,
            attribution=float(contribution),
            std_error=None if std_errors is None else float(std_errors[index]),
        )
        for index, (name, value, contribution) in enumerate(zip(feature_names, values, contributions))
    ]


def class_label(output: ModelOutput, column: int) -> str | None:
    return output.labels[column]
