"""Damaged native structures inside a loaded model are refused (exit 2), wherever they sit.

Each crafted file below copies a red-team recipe: it passes the safety scan (only allowed classes)
but holds an index that scikit-learn's, scipy's or XGBoost's compiled code would follow without a
check, crashing the interpreter (segfault) or looping forever. ``xai inspect`` and ``xai explain``
must stop at load with "... holds a damaged <thing>: <problem>". Real models of each kind must
still pass the same walk.
"""

from __future__ import annotations

import struct
import subprocess
import sys

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from xai_cli.errors import BadInput
from xai_cli.structures import check_structures

FAR = 10**8


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    """Two numeric columns, saved as the rows to explain and as background."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.random((40, 2)), columns=["a", "b"])
    path = tmp_path_factory.mktemp("structures") / "rows.csv"
    X.to_csv(path, index=False)
    return X, X.a * 2 + X.b, path


def _damage_tree(estimator, child: int) -> None:
    tree = estimator.tree_
    state = tree.__getstate__()
    state["nodes"]["left_child"][0] = child
    state["nodes"]["right_child"][0] = child
    tree.__setstate__(state)


def _ttr_tree(X, y, child):
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.tree import DecisionTreeRegressor

    model = TransformedTargetRegressor(regressor=DecisionTreeRegressor(max_depth=3)).fit(X, y)
    _damage_tree(model.regressor_, child)
    return model


def _stack_tree(X, y):
    from sklearn.ensemble import StackingRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.tree import DecisionTreeRegressor

    model = StackingRegressor([("lr", LinearRegression())], final_estimator=DecisionTreeRegressor(max_depth=3))
    model.fit(X, y)
    _damage_tree(model.final_estimator_, FAR)
    return model


def _hgb(X, y, **edits):
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(max_iter=3).fit(X, y)
    nodes = model._predictors[0][0].nodes
    for field, value in edits.items():
        nodes[field][0] = value
    return model


def _kdtree(X, y):
    from sklearn.neighbors import KNeighborsRegressor

    model = KNeighborsRegressor(n_neighbors=3, algorithm="kd_tree").fit(X.values, y)
    state = list(model._tree.__getstate__())
    state[1] = state[1].copy()
    state[1][:] = FAR  # idx_array
    model._tree.__setstate__(tuple(state))
    return model


def _sparse_coef(X, y):
    import scipy.sparse as sp
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(X, y)
    coef = sp.csr_matrix(model.coef_.reshape(1, -1))
    coef.indices = np.array([FAR, FAR + 1], dtype=np.int32)
    model.coef_ = coef
    return model


def _xgb(X, y, key: str, value: int):
    """Patch the first int32 of the first tree's ``key`` array inside the pickled UBJSON model."""
    import xgboost as xgb

    model = xgb.XGBRegressor(n_estimators=3, max_depth=3).fit(X, y)
    state = model.get_booster().__getstate__()
    handle = bytearray(state["handle"])
    at = handle.find(key.encode()) + len(key)
    assert handle[at : at + 4] == b"[$l#"
    start = at + 4 + 1 + 8  # '[$l#', 'L', int64 count
    handle[start : start + 4] = struct.pack(">i", value)
    state["handle"] = handle
    booster = xgb.Booster()
    booster.__setstate__(state)  # what unpickling does with the crafted bytes
    model._Booster = booster
    return model


def _lgb(X, y, key: str, edit, *, last: bool = False):
    """Edit the first (or ``last``) tree's ``key`` array in the model text the pickled Booster carries."""
    import lightgbm as lgb

    model = lgb.LGBMRegressor(n_estimators=3, min_child_samples=2, verbose=-1).fit(X, y)
    lines = model.booster_.model_to_string().splitlines()
    found = [i for i, line in enumerate(lines) if line.startswith(key + "=")]
    at = found[-1] if last else found[0]
    values = lines[at].split("=", 1)[1].split(" ")
    lines[at] = key + "=" + " ".join(edit(values))
    booster = lgb.Booster(model_str="\n".join(lines) + "\n")  # what unpickling does with the crafted text
    model._Booster = booster
    return model


def _frame_placed_outside(X, y):
    """A DataFrame kept on the model whose block claims a column position past its columns."""
    from pandas._libs.internals import BlockPlacement
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(X, y)
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    frame._mgr.blocks[0]._mgr_locs = BlockPlacement(np.array([0, FAR]))
    model.coef_ = frame
    return model


def _lying_feature_count(X, y):
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(X.to_numpy(), y)
    model.n_features_in_ = 10**10  # xai would name ten billion columns
    return model


def _column_past_the_end(X, y):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(ColumnTransformer([("scale", StandardScaler(), [0, 1])]), LinearRegression())
    model.fit(X.to_numpy(), y)
    name, transformer, _ = model[0].transformers_[0]
    model[0].transformers_[0] = (name, transformer, [0, FAR])
    return model


CRAFTED = {
    "frame_placed_outside": (_frame_placed_outside, "pandas DataFrame"),
    "lgb_child_cycle": (lambda X, y: _lgb(X, y, "left_child", lambda v: ["0", *v[1:]]), "LightGBM tree"),
    "lgb_last_tree_cycle": (
        lambda X, y: _lgb(X, y, "left_child", lambda v: ["0", *v[1:]], last=True),
        "LightGBM tree",
    ),
    "hgb_oob": (lambda X, y: _hgb(X, y, left=FAR, right=FAR), "histogram gradient boosting tree"),
    "hgb_cycle": (lambda X, y: _hgb(X, y, left=0, right=0), "histogram gradient boosting tree"),
    "hgb_feature": (lambda X, y: _hgb(X, y, feature_idx=FAR), "histogram gradient boosting tree"),
    "ttr_tree_oob": (lambda X, y: _ttr_tree(X, y, FAR), "decision tree"),
    "ttr_tree_cycle": (lambda X, y: _ttr_tree(X, y, 0), "decision tree"),
    "stack_tree_oob": (_stack_tree, "decision tree"),
    "kdtree_idx": (_kdtree, "neighbors index (KDTree)"),
    "lr_sparse_coef": (_sparse_coef, "sparse matrix"),
    "xgb_child_oob": (lambda X, y: _xgb(X, y, "left_children", FAR), "XGBoost tree"),
    "xgb_feature_oob": (lambda X, y: _xgb(X, y, "split_indices", FAR), "XGBoost tree"),
    "xgb_child_cycle": (lambda X, y: _xgb(X, y, "left_children", 0), "XGBoost tree"),
}


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_a_crafted_file_is_refused_by_inspect_and_explain(name, frame, tmp_path):
    X, y, rows = frame
    make, thing = CRAFTED[name]
    path = tmp_path / f"{name}.joblib"
    joblib.dump(make(X, y), path)
    for args in (["inspect", path], ["explain", path, rows, "--background", rows, "--out", tmp_path / "out"]):
        result = run_cli(args)
        assert result.code == 2, (args[0], result.stderr)
        assert f"{path} holds a damaged {thing}: " in result.stderr, result.stderr
        assert "corrupt or crafted" in result.stderr, result.stderr


def test_a_tree_that_loops_on_itself_does_not_hang_the_process(frame, tmp_path):
    """The loop is refused before predict runs: checked in a real process, under a timeout."""
    X, y, rows = frame
    path = tmp_path / "ttr_tree_cycle.joblib"
    joblib.dump(_ttr_tree(X, y, 0), path)
    args = ["explain", path, rows, "--background", rows, "--out", tmp_path / "out"]
    done = subprocess.run(
        [sys.executable, "-m", "xai_cli", *map(str, args)], capture_output=True, timeout=60, text=True
    )
    assert done.returncode == 2, done.stderr
    assert "holds a damaged decision tree: a child index outside the tree" in done.stderr


def test_a_damaged_structure_is_found_however_deep_it_is_kept(frame):
    """Nesting in lists, dicts, tuples and object arrays does not hide a damaged tree."""
    X, y, _ = frame
    hidden = {"models": [(np.array([_ttr_tree(X, y, FAR)], dtype=object),)]}
    with pytest.raises(BadInput, match="damaged decision tree"):
        check_structures(hidden)


def test_nesting_without_end_is_refused_not_followed():
    nested: list = []
    for _ in range(100):
        nested = [nested]
    with pytest.raises(BadInput, match="nests more objects"):
        check_structures(nested)
    loop: list = []
    loop.append(loop)
    check_structures(loop)  # a cycle of references is walked once


def test_a_categorical_split_on_a_numeric_feature_is_refused(frame):
    X, y, _ = frame
    model = _hgb(X, y)
    nodes = model._predictors[0][0].nodes
    split = int(np.flatnonzero(~nodes["is_leaf"].astype(bool))[0])
    nodes["is_categorical"][split] = 1
    with pytest.raises(BadInput, match="categorical split"):
        check_structures(model)


def test_a_ball_tree_with_a_bad_node_range_is_refused(frame):
    from sklearn.neighbors import KNeighborsRegressor

    X, y, _ = frame
    model = KNeighborsRegressor(algorithm="ball_tree", leaf_size=5).fit(X.values, y)
    state = list(model._tree.__getstate__())
    state[2] = state[2].copy()
    state[2]["idx_end"][0] = FAR  # node_data
    model._tree.__setstate__(tuple(state))
    with pytest.raises(BadInput, match=r"neighbors index \(BallTree\): a node range outside the data"):
        check_structures(model)


def _real_models(X, y):
    import lightgbm as lgb
    import scipy.sparse as sp
    import xgboost as xgb
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier, StackingRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeRegressor

    labels = (y > y.median()).astype(int)
    categorical = X.assign(kind=(X.a * 4).astype(int).astype("category"))
    sparse_linear = LinearRegression().fit(sp.csr_matrix(X.values), y)
    sparse_linear.coef_ = sp.csr_matrix(sparse_linear.coef_.reshape(1, -1))  # valid, just sparse
    stack = StackingRegressor(
        [("lr", LinearRegression()), ("tree", DecisionTreeRegressor(max_depth=3))],
        final_estimator=DecisionTreeRegressor(max_depth=2),
    )
    return {
        "forest": RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, labels),
        "hgb_categorical": HistGradientBoostingClassifier(
            max_iter=5, min_samples_leaf=2, categorical_features="from_dtype"
        ).fit(categorical, categorical["kind"].isin([0, 2]).astype(int)),
        "knn_kd": KNeighborsRegressor(algorithm="kd_tree", leaf_size=4).fit(X.values, y),
        "knn_ball": KNeighborsRegressor(algorithm="ball_tree", leaf_size=4).fit(X.values, y),
        "knn_sparse": KNeighborsRegressor(algorithm="brute").fit(sp.csr_matrix(X.values), y),
        "linear_sparse": sparse_linear,
        "xgboost": xgb.XGBRegressor(n_estimators=5, max_depth=3, gamma=0.5).fit(X, y),
        "lightgbm": lgb.LGBMRegressor(n_estimators=5, num_leaves=7, min_child_samples=2, verbose=-1).fit(X, y),
        "pipeline_stack": make_pipeline(ColumnTransformer([("scale", StandardScaler(), ["a", "b"])]), stack).fit(X, y),
    }


def test_real_models_of_every_checked_kind_pass(frame, tmp_path):
    X, y, _ = frame
    models = _real_models(X, y)
    predictors = [p for row in models["hgb_categorical"]._predictors for p in row]
    assert any((p.nodes["is_categorical"] & ~p.nodes["is_leaf"]).any() for p in predictors)  # exercised
    for name, model in models.items():
        path = tmp_path / f"{name}.joblib"
        joblib.dump(model, path)
        check_structures(joblib.load(path), path=str(path))


def test_a_real_pipeline_with_stacking_still_loads_through_the_cli(frame, tmp_path):
    X, y, rows = frame
    path = tmp_path / "stack.joblib"
    joblib.dump(_real_models(X, y)["pipeline_stack"], path)
    result = run_cli(["inspect", path])
    assert result.code == 0, result.stderr


@pytest.mark.parametrize(
    ("make", "words"),
    [(_lying_feature_count, "n_features_in_ = 10000000000"), (_column_past_the_end, "selects column 100000000")],
)
def test_a_crafted_count_or_column_index_is_bad_input_not_a_hang(make, words, frame, tmp_path):
    X, y, rows = frame
    path = tmp_path / "crafted.joblib"
    joblib.dump(make(X, y), path)
    result = run_cli(["inspect", path])
    assert result.code == 2 and words in result.stderr and "corrupt or crafted" in result.stderr, result.stderr


@pytest.mark.parametrize("cls_path", ["lightgbm.Booster", "xgboost.Booster"])
def test_a_class_kept_as_a_callable_value_is_refused_before_model_code_calls_it(cls_path, frame, tmp_path):
    """FunctionTransformer calls ``func(X, **kw_args)`` at predict time: with a class there, the
    file would construct it with its own arguments (a booster reading any path, or joining a
    LightGBM network). Such a class is refused (exit 3) by name; dtypes kept as values still load."""
    import importlib

    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    X, y, rows = frame
    module, name = cls_path.split(".")
    booster = getattr(importlib.import_module(module), name)
    marker = tmp_path / "model_file_read_by_the_booster.txt"
    model = make_pipeline(FunctionTransformer(), LinearRegression()).fit(X, y)
    model[0].func, model[0].kw_args = booster, {"model_file": str(marker)}
    path = tmp_path / "class_as_func.joblib"
    joblib.dump(model, path)
    for args in (["inspect", path], ["explain", path, rows, "--background", rows, "--out", tmp_path / "out"]):
        result = run_cli(args)
        assert result.code == 3, (args[0], result.stderr)
        assert f"keeps the class {booster.__module__}.{booster.__qualname__} as a value" in result.stderr
    encoder = OneHotEncoder(dtype=np.float64).fit(pd.DataFrame({"c": ["x", "y"]}))
    check_structures(encoder)  # numpy.float64 kept as a value is data: no error
