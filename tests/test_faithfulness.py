"""Planted-truth faithfulness (bench/faithfulness.py) as tests: every method that applies passes every case.

Each case trains a small model with a known answer (a dummy column, symmetric columns, an additive
model, a planted interaction, a correlated but unused column, a string column in a Pipeline), runs
``xai explain`` with each method and checks the case's property and the distance from brute-force
Shapley values. The cases, checks and tolerances live in the bench script, so the benchmark table and
CI judge the same thing.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from shapley_truth import brute_force_shapley as reference_shapley

BENCH_SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "faithfulness.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("faithfulness", BENCH_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


faithfulness = _load_bench()

# The methods each case must run (not be n/a): Kernel SHAP and LIME apply to every model, Tree SHAP
# to bare trees, linear SHAP to linear models explained in their raw output.
MUST_APPLY = {
    "dummy": {"kernel_shap", "tree_shap", "lime"},
    "symmetric": {"kernel_shap", "lime"},
    "additive_linear": {"kernel_shap", "linear_shap", "lime"},
    "additive_stumps": {"kernel_shap", "tree_shap", "lime"},
    "interaction_tree": {"kernel_shap", "tree_shap", "lime"},
    "interaction_smooth": {"kernel_shap", "lime"},
    "correlated": {"kernel_shap", "linear_shap", "lime"},
    "categorical_logistic_probability": {"kernel_shap", "lime"},
    "categorical_logistic_raw": {"kernel_shap", "linear_shap", "lime"},
    "categorical_forest_probability": {"kernel_shap", "lime"},
}


def test_every_bench_case_has_its_expected_methods():
    assert set(MUST_APPLY) == set(faithfulness.CASES)


@pytest.mark.parametrize("key", list(faithfulness.CASES))
def test_every_applicable_method_passes_the_planted_truth_case(key, tmp_path):
    result = faithfulness.run_case(key, folder=tmp_path)
    cells = result["cells"]
    ran = {method for method, cell in cells.items() if cell["status"] != "n/a"}
    assert MUST_APPLY[key] <= ran, f"{result['title']}: n/a where the method applies: " + "; ".join(
        f"{m}: {cells[m].get('reason')}" for m in MUST_APPLY[key] - ran
    )
    failed = faithfulness.failures([result])
    assert not failed, "failed cells:\n" + "\n".join(failed)


def test_bench_truth_agrees_with_the_tests_brute_force():
    """The bench's vectorized enumeration equals tests/shapley_truth.py on a Pipeline with string columns."""
    case = faithfulness.CASES["categorical_forest_probability"](0)
    rows, background = case.rows.iloc[:2], case.background.iloc[:15]
    for r in range(len(rows)):
        row = rows.iloc[[r]]
        ours = faithfulness.brute_force_shapley(case.explained, row, background)
        reference = reference_shapley(case.explained, row, background)[:, 0]
        np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-12)
