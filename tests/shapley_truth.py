"""Exact Shapley values by brute force, written independently of xai's code, as test truth.

The game is the interventional one xai documents: the value of a coalition S is the mean model
output over the background rows with the columns in S taken from the explained row.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd


def brute_force_shapley(predict, row: pd.DataFrame, background: pd.DataFrame) -> np.ndarray:
    """Shapley values ``(features, outputs)`` of one row, over every coalition of columns."""
    columns = list(row.columns)
    n = len(columns)

    def value(coalition: tuple[str, ...]) -> np.ndarray:
        synthetic = background.copy()
        for column in coalition:
            synthetic[column] = [row[column].iloc[0]] * len(synthetic)
            if isinstance(background[column].dtype, pd.CategoricalDtype):
                synthetic[column] = pd.Categorical(synthetic[column], dtype=background[column].dtype)
        return np.asarray(predict(synthetic), dtype=float).reshape(len(synthetic), -1).mean(axis=0)

    cache = {}
    for size in range(n + 1):
        for coalition in itertools.combinations(columns, size):
            cache[frozenset(coalition)] = value(coalition)
    phi = []
    for column in columns:
        others = [c for c in columns if c != column]
        total = 0.0
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for coalition in itertools.combinations(others, size):
                total = total + weight * (cache[frozenset(coalition) | {column}] - cache[frozenset(coalition)])
        phi.append(total)
    return np.array(phi)
