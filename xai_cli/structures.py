"""Refuse loaded models whose compiled data structures are damaged, before anything runs them.

The safety scan (``safety.py``) only allows known classes; it cannot see inside the arrays those
classes rebuild. scikit-learn trees, histogram-boosting predictors, KD/ball trees, scipy sparse
matrices and XGBoost boosters are all followed by compiled code that trusts their indices, so one
flipped (or crafted) number crashes the interpreter or loops forever instead of raising. This
module walks the whole loaded object graph once and checks every such structure it meets, wherever
it sits (a pipeline step, ``regressor_``, ``final_estimator_``, ``transformers_``...).
"""

from __future__ import annotations

import functools
import json
import numbers
import types
from typing import Any

import numpy as np

from xai_cli.errors import BadInput, UnsafeModel

# The walk is linear in the loaded graph (ids are tracked), so these bounds only stop a crafted
# file from nesting or fanning out without end; a real model stays far below both. Each estimator
# level costs about two hops (an attribute holding a list, the list holding the estimator).
MAX_DEPTH = 24
MAX_OBJECTS = 1_000_000
_HINT = "the file is corrupt or crafted; save the model again from the training code"
_ATOMS = (str, bytes, bytearray, int, float, complex, bool, type(None), np.generic)
_OPAQUE = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType)
# Classes a model keeps as plain values: dtypes (``OneHotEncoder(dtype=np.float64)``) and the type
# checks of parameter constraints. Any other class kept as a value is a callable the file chose:
# ``FunctionTransformer(func=lightgbm.Booster, kw_args={"model_file": ...})`` would construct it at
# predict time with the file's arguments, which the scan's "classes are built through __new__"
# rule cannot see.
_VALUE_CLASSES = (int, float, bool, str, bytes, complex, object, numbers.Number)


def check_structures(estimator: Any, *, path: str = "") -> None:
    """Raise BadInput (exit 2) if any native structure in ``estimator`` is damaged.

    Every instance attribute, list, tuple, dict and object array is followed, so a structure is
    checked wherever the model keeps it. Feature counts come from the nearest enclosing estimator
    that knows its ``n_features_in_``.
    """
    where = path or "the model file"
    seen: set[int] = set()
    stack: list[tuple[Any, Any, int]] = [(estimator, None, 0)]
    while stack:
        value, owner, depth = stack.pop()
        if isinstance(value, type) and not _is_value_class(value):
            name = f"{value.__module__}.{value.__qualname__}"
            raise UnsafeModel(
                f"{where} keeps the class {name} as a value, which the model's code could call with "
                "arguments from the file",
                hint="if you trust this file, pass --trust (or set XAI_TRUST=1)",
                refused=[name],
            )
        if isinstance(value, _ATOMS) or isinstance(value, _OPAQUE) or id(value) in seen:
            continue
        seen.add(id(value))
        if len(seen) > MAX_OBJECTS or depth > MAX_DEPTH:
            raise BadInput(
                f"{where} nests more objects than xai checks ({'depth' if depth > MAX_DEPTH else 'count'})",
                hint=_HINT,
            )
        found = _problem(value, owner)
        if found is not None:
            thing, problem = found
            raise BadInput(f"{where} holds a damaged {thing}: {problem}", hint=_HINT)
        for child, child_owner in _children(value, owner):
            stack.append((child, child_owner, depth + 1))


def _is_value_class(value: type) -> bool:
    """Whether a class kept as a value is one models keep as data (see ``_VALUE_CLASSES``)."""
    if value in _VALUE_CLASSES or issubclass(value, (np.generic, np.dtype)):
        return True
    return value.__module__ == "numbers"


def _children(value: Any, owner: Any) -> list[tuple[Any, Any]]:
    """What the walk follows from ``value``, each with the estimator that owns it."""
    if isinstance(value, functools.partial):
        return [(item, owner) for item in (value.func, *value.args, *(value.keywords or {}).values())]
    if isinstance(value, np.ndarray):
        items = value.ravel().tolist() if value.dtype == object else []
    elif isinstance(value, dict):
        items = list(value.values())
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
    elif _leaf_type(value):
        items = []
    else:
        attributes = getattr(value, "__dict__", None)
        items = list(attributes.values()) if isinstance(attributes, dict) else []
        if getattr(value, "n_features_in_", None) is not None:
            owner = value
    return [(item, owner) for item in items if not isinstance(item, _ATOMS)]


def _leaf_type(value: Any) -> bool:
    """Objects checked whole (or not at all) rather than walked: data frames, boosters, sparse."""
    module = type(value).__module__
    if module.startswith(("xgboost.", "lightgbm.")):
        return type(value).__name__ == "Booster"
    return module.startswith(("pandas.", "scipy.sparse"))


def _is_sparse(value: Any) -> bool:
    module = type(value).__module__
    if not module.startswith("scipy.sparse"):
        return False
    import scipy.sparse

    return scipy.sparse.issparse(value)


def _problem(value: Any, owner: Any) -> tuple[str, str] | None:
    """(what it is, what is wrong) for a damaged native structure, else None."""
    kind, module = type(value).__name__, type(value).__module__
    n_features = getattr(owner, "n_features_in_", None)
    if module.startswith("sklearn.tree") and kind == "Tree":
        problem = _tree_problem(value, n_features)
        return None if problem is None else ("decision tree", problem)
    if module.startswith("sklearn.ensemble._hist_gradient_boosting") and kind == "TreePredictor":
        # The bin mapper's flags are in the predictor's column order (pandas categoricals go first).
        marked = getattr(getattr(owner, "_bin_mapper", None), "is_categorical", None)
        problem = _hist_tree_problem(value, n_features, marked)
        return None if problem is None else ("histogram gradient boosting tree", problem)
    if module.startswith("sklearn.neighbors") and hasattr(value, "get_arrays"):
        problem = _binary_tree_problem(value)
        return None if problem is None else (f"neighbors index ({kind})", problem)
    if _is_sparse(value):
        problem = _sparse_problem(value)
        return None if problem is None else ("sparse matrix", problem)
    if module.startswith("xgboost") and kind == "Booster":
        problem = _xgboost_problem(value)
        return None if problem is None else ("XGBoost tree", problem)
    if module.startswith("pandas") and kind == "DataFrame":
        problem = _frame_problem(value)
        return None if problem is None else ("pandas DataFrame", problem)
    if module.startswith("lightgbm") and kind == "Booster":
        problem = _lightgbm_problem(value)
        return None if problem is None else ("LightGBM tree", problem)
    return None


def _tree_problem(tree: Any, n_features: int | None) -> str | None:
    """What is wrong with a scikit-learn ``Tree``'s node arrays, if anything.

    Trees are built parents first: every child index is larger than its parent's and below the node
    count (which also rules out loops), and every split names one of the model's features.
    """
    try:
        count = int(tree.node_count)
        left, right = np.asarray(tree.children_left), np.asarray(tree.children_right)
        feature = np.asarray(tree.feature)
        limit = int(tree.n_features) if n_features is None else min(int(tree.n_features), int(n_features))
    except Exception as exc:  # a tree too damaged to describe itself
        return f"its nodes cannot be read ({type(exc).__name__})"
    if count < 1 or not len(left) == len(right) == len(feature) == count:
        return "its node arrays disagree about the number of nodes"
    leaf = left == -1
    if (leaf != (right == -1)).any():
        return "a node with only one child"
    problem = _parents_first(np.arange(count)[~leaf], left[~leaf], right[~leaf], count)
    if problem is not None:
        return problem
    if _outside(feature[~leaf], limit):
        return "a split on a feature the model does not have"
    return None


def _parents_first(nodes: np.ndarray, left: np.ndarray, right: np.ndarray, count: int) -> str | None:
    """The rule every tree here is built by: children after their parent, inside the node array."""
    left, right = left.astype(np.int64), right.astype(np.int64)
    if ((left <= nodes) | (right <= nodes) | (left >= count) | (right >= count)).any():
        return "a child index outside the tree"
    return None


def _outside(indices: np.ndarray, limit: int) -> bool:
    indices = indices.astype(np.int64)
    return bool(((indices < 0) | (indices >= limit)).any())


def _hist_tree_problem(predictor: Any, n_features: int | None, is_categorical: Any) -> str | None:
    """What is wrong with a HistGradientBoosting ``TreePredictor``'s ``nodes`` record array.

    Its predict follows ``left``/``right`` of non-leaf nodes, reads column ``feature_idx`` and, for
    categorical splits, the bitset row ``bitset_idx`` of a feature the model marked categorical.
    """
    try:
        nodes = predictor.nodes
        count = len(nodes)
        leaf = nodes["is_leaf"].astype(bool)
        left, right, feature = nodes["left"], nodes["right"], nodes["feature_idx"]
        categorical = nodes["is_categorical"].astype(bool) & ~leaf
        bitset = nodes["bitset_idx"][categorical].astype(np.int64)
        n_bitsets = min(len(predictor.raw_left_cat_bitsets), len(predictor.binned_left_cat_bitsets))
    except Exception as exc:
        return f"its nodes cannot be read ({type(exc).__name__})"
    if count < 1:
        return "it has no nodes"
    problem = _parents_first(np.arange(count)[~leaf], left[~leaf], right[~leaf], count)
    if problem is not None:
        return problem
    if n_features is not None and _outside(feature[~leaf], int(n_features)):
        return "a split on a feature the model does not have"
    if _outside(bitset, n_bitsets):
        return "a categorical split without its category set"
    if categorical.any():
        marked = np.zeros(0, dtype=bool) if is_categorical is None else np.asarray(is_categorical, dtype=bool)
        split_on = feature[categorical].astype(np.int64)
        if _outside(split_on, len(marked)) or not marked[split_on].all():
            return "a categorical split on a feature the model does not treat as categorical"
    return None


def _binary_tree_problem(tree: Any) -> str | None:
    """What is wrong with a KDTree/BallTree's arrays (its queries index them without checks).

    ``idx_array`` must be a permutation of the training rows, every node's ``[idx_start, idx_end)``
    a range inside it, and a node that is not a leaf must have both children (2i+1, 2i+2).
    """
    try:
        data, idx_array, node_data, node_bounds = tree.get_arrays()
        n_samples = int(np.asarray(data).shape[0])
        idx_array = np.asarray(idx_array).astype(np.int64)
        start = node_data["idx_start"].astype(np.int64)
        end = node_data["idx_end"].astype(np.int64)
        leaf = node_data["is_leaf"].astype(bool)
        n_nodes = len(node_data)
        bounds_shape = np.asarray(node_bounds).shape
    except Exception as exc:
        return f"its arrays cannot be read ({type(exc).__name__})"
    if len(idx_array) != n_samples or _outside(idx_array, n_samples):
        return "a training-row index outside the data"
    if len(np.unique(idx_array)) != n_samples:
        return "its row index repeats rows"
    if n_nodes < 1 or ((start < 0) | (end > n_samples) | (start > end)).any():
        return "a node range outside the data"
    if len(bounds_shape) != 3 or bounds_shape[1] != n_nodes or bounds_shape[2] != np.asarray(data).shape[1]:
        return "its node bounds disagree with its nodes"
    if (2 * np.flatnonzero(~leaf) + 2 >= n_nodes).any():
        return "a node whose children are missing"
    return None


def _sparse_problem(matrix: Any) -> str | None:
    """What scipy's own full format check finds wrong (its compiled kernels trust the indices)."""
    try:
        if hasattr(matrix, "check_format"):
            matrix.check_format(full_check=True)
        elif getattr(matrix, "format", None) == "coo":
            for axis, coords in enumerate(matrix.coords):
                if _outside(np.asarray(coords), int(matrix.shape[axis])):
                    return "an index outside its shape"
    except Exception as exc:
        return str(exc) or type(exc).__name__
    return None


def _xgboost_problem(booster: Any) -> str | None:
    """What is wrong with a Booster's trees, read from its own JSON dump.

    XGBoost loads the tree arrays unchecked, and shap's TreeExplainer (and predict) follow them.
    Dumping does not follow them, so it is safe on a damaged model. Trees are built parents first.
    """
    try:
        learner = json.loads(bytes(booster.save_raw(raw_format="json")))["learner"]
        n_features = int(learner["learner_model_param"]["num_feature"])
        gradient = learner["gradient_booster"]
        model = (gradient.get("gbtree") or gradient).get("model") or {}
        trees = model.get("trees", [])
    except Exception as exc:
        return f"its model cannot be read ({type(exc).__name__})"
    for number, tree in enumerate(trees):
        try:
            count = int(tree["tree_param"]["num_nodes"])
            left = np.asarray(tree["left_children"], dtype=np.int64)
            right = np.asarray(tree["right_children"], dtype=np.int64)
            feature = np.asarray(tree["split_indices"], dtype=np.int64)
        except Exception as exc:
            return f"tree {number} cannot be read ({type(exc).__name__})"
        if count < 1 or not len(left) == len(right) == len(feature) == count:
            return f"tree {number}'s node arrays disagree about the number of nodes"
        leaf = left == -1
        if (leaf != (right == -1)).any():
            return f"tree {number} has a node with only one child"
        problem = _parents_first(np.arange(count)[~leaf], left[~leaf], right[~leaf], count)
        if problem is not None:
            return f"tree {number} has {problem}"
        if _outside(feature[~leaf], n_features):
            return f"tree {number} splits on a feature the model does not have"
    return None


def _lightgbm_problem(booster: Any) -> str | None:
    """What is wrong with a LightGBM Booster's trees, read from its own model text.

    LightGBM parses the text while loading but never checks that child indices stay inside a tree:
    predict and shap's TreeExplainer follow them, so a self-loop hangs or crashes. Writing the text
    back out copies the arrays without following them. Internal nodes are numbered parents first
    (a split's new node takes the next number), and a child below zero is leaf ``~child``.
    """
    try:
        text = booster.model_to_string(num_iteration=-1)
    except Exception as exc:
        return f"its model cannot be read ({type(exc).__name__})"
    trees: list[dict[str, str]] = []
    n_features = None
    for line in text.splitlines():
        if line.startswith("end of trees"):
            break
        key, _, value = line.partition("=")
        if key == "max_feature_idx" and n_features is None:
            if not value.strip().isdigit():
                return "a feature count that cannot be read"
            n_features = int(value) + 1
        if key == "Tree":
            trees.append({"Tree": value})
        elif trees:
            trees[-1][key] = value
    for fields in trees:
        problem = _lightgbm_tree_problem(fields, n_features)
        if problem is not None:
            return f"tree {fields['Tree']} has {problem}"
    return None


def _lightgbm_tree_problem(fields: dict[str, str], n_features: int | None) -> str | None:
    try:
        leaves = int(fields["num_leaves"])
        if leaves < 2:
            return None  # a single leaf: nothing to follow
        left = np.array(fields["left_child"].split(), dtype=np.int64)
        right = np.array(fields["right_child"].split(), dtype=np.int64)
        feature = np.array(fields["split_feature"].split(), dtype=np.int64)
    except (KeyError, ValueError) as exc:
        return f"node arrays that cannot be read ({type(exc).__name__})"
    internal = leaves - 1
    if not len(left) == len(right) == len(feature) == internal:
        return "node arrays that disagree about the number of nodes"
    nodes = np.arange(internal)
    for child in (left, right):
        split = child >= 0
        if ((child[split] <= nodes[split]) | (child[split] >= internal)).any():
            return "a child index outside the tree"
        if (~child[~split] >= leaves).any():
            return "a leaf index outside the tree"
    if n_features is None or _outside(feature, n_features):
        return "a split on a feature the model does not have"
    return None


def _frame_problem(frame: Any) -> str | None:
    """What is wrong with a DataFrame's blocks: pandas rebuilds its column lookup from each block's
    column positions without bounds checks, so a position past the columns writes out of bounds."""
    try:
        manager = frame._mgr
        columns = len(manager.axes[0])
        placed = 0
        for block in manager.blocks:
            positions = np.asarray(block.mgr_locs.as_array, dtype=np.int64)
            if _outside(positions, columns):
                return "a block placed outside the columns"
            if np.ndim(block.values) == 2 and np.shape(block.values)[0] != len(positions):
                return "a block whose values disagree with its columns"
            placed += len(positions)
    except Exception as exc:
        return f"its blocks cannot be read ({type(exc).__name__})"
    if placed != columns:
        return "blocks that do not cover its columns once each"
    return None
