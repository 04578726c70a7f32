"""Shared pieces of the benchmarks: the five reference models, a timed predict, exact Shapley values
by brute force, and result writers.

Nothing here imports xai_cli's method internals: the reference values are computed independently, so
a bug in ``xai_cli.methods.kernel_shap`` cannot hide itself in its own benchmark.

Every benchmark script puts this folder at the END of ``sys.path`` (see :func:`bench_path`), because
``bench/lime.py`` would otherwise shadow the ``lime`` package.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
BACKGROUND_ROWS = 100


# --------------------------------------------------------------------------------------------------
# Timing


class PredictTimer:
    """Wraps a predict function and sums the wall time spent inside it (and rows and calls)."""

    def __init__(self, function: Callable[[Any], Any]):
        self.function = function
        self.seconds = 0.0
        self.calls = 0
        self.rows = 0

    def __call__(self, X: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.function(X)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1
            self.rows += len(X)


class installed_timer:
    """Context manager: replace ``obj.<attribute>`` by a :class:`PredictTimer` of it, restore after.

    Used to time the estimator call itself when xai calls it through ``LoadedModel.output``.
    """

    def __init__(self, obj: Any, attribute: str):
        self.obj, self.attribute = obj, attribute

    def __enter__(self) -> PredictTimer:
        self.had_own = self.attribute in vars(self.obj)
        self.timer = PredictTimer(getattr(self.obj, self.attribute))
        setattr(self.obj, self.attribute, self.timer)
        return self.timer

    def __exit__(self, *exc: Any) -> None:
        if self.had_own:
            setattr(self.obj, self.attribute, self.timer.function)
        else:
            delattr(self.obj, self.attribute)


def best_of(function: Callable[[], Any], repeats: int) -> float:
    """Smallest wall time of ``repeats`` calls of ``function``."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def repeated(
    function: Callable[[], dict], *, min_repeats: int = 2, max_repeats: int = 3, cheap_seconds: float = 1.5
) -> dict:
    """Run a measurement returning ``{"seconds": ...}`` several times and keep the fastest run.

    At least ``min_repeats`` runs; up to ``max_repeats`` while one run takes under ``cheap_seconds``.
    The minimum is robust to other processes stealing a core now and then (this machine is shared).
    """
    best = function()
    runs = 1
    while runs < min_repeats or (runs < max_repeats and best["seconds"] < cheap_seconds):
        again = function()
        runs += 1
        if again["seconds"] < best["seconds"]:
            best = again
    best["runs"] = runs
    return best


def predict_floor(predict: Callable[[Any], Any], frame_or_array: Any, repeats: int = 5) -> float:
    """Rows per second of one large predict call (best of a few): the model's own speed limit."""
    predict(frame_or_array)
    return len(frame_or_array) / best_of(lambda: predict(frame_or_array), repeats)


# --------------------------------------------------------------------------------------------------
# Models


@dataclass
class BenchModel:
    """One benchmark model with its data.

    ``estimator`` is fitted on ``train``; ``background`` (100 rows) and ``rows`` (rows to explain)
    are held out. ``frames`` are pandas DataFrames with the model's column names and dtypes (what
    xai passes); ``arrays`` are what shap and lime get (numeric float arrays, or object arrays for
    the Pipeline). ``method`` names the estimator method that computes the explained output, and
    ``column`` the explained output column (the positive class for classifiers).
    """

    name: str
    title: str
    estimator: Any
    output: str  # "probability" or "raw", xai's name of the explained output space
    method: str  # estimator attribute that computes it: predict_proba, predict, decision_function
    column: int | None  # output column explained (None: the output is 1-D)
    background: Any  # DataFrame
    rows: Any  # DataFrame
    named: bool  # whether the estimator was fitted on a DataFrame with column names
    dtypes: dict = field(default_factory=dict)
    is_classifier: bool = True

    @property
    def n_features(self) -> int:
        return self.background.shape[1]

    def to_model_input(self, array: np.ndarray) -> Any:
        """What the estimator is called with for an array of rows (a DataFrame for named models)."""
        if not self.named:
            return array
        import pandas as pd

        frame = pd.DataFrame(array, columns=list(self.background.columns))
        return frame.astype(self.dtypes) if self.dtypes else frame

    def synthetic_input(self, x: np.ndarray, background: np.ndarray, masks: np.ndarray) -> Any:
        """The model input for every (coalition, background row), built the fastest plain way:
        one ``np.where`` for numeric arrays, one per column (with its dtype) for named frames."""
        if not self.named:
            out = np.empty((len(masks), len(background), x.shape[0]))
            out[:] = background
            np.copyto(out, np.broadcast_to(x, out.shape), where=masks[:, None, :])
            return out.reshape(-1, x.shape[0])
        import pandas as pd

        columns = {}
        for j, name in enumerate(self.background.columns):
            column = np.where(masks[:, j, None], x[j], background[None, :, j]).reshape(-1)
            columns[name] = column.astype(self.dtypes.get(name, float))
        return pd.DataFrame(columns)

    def array(self, frame: Any) -> np.ndarray:
        """A frame as the numpy array that shap / lime work on."""
        return frame.to_numpy()

    def raw_predict(self) -> Callable[[Any], np.ndarray]:
        """The estimator's own method for the explained output (no wrapper)."""
        return getattr(self.estimator, self.method)

    def array_predict(self, predict: Callable[[Any], Any] | None = None) -> Callable[[np.ndarray], np.ndarray]:
        """A function of an array, as shap and lime call it: converts to a frame only where needed."""
        predict = predict or self.raw_predict()
        if not self.named:
            return predict
        return lambda array: predict(self.to_model_input(array))

    def explained(self, outputs: np.ndarray) -> np.ndarray:
        """The explained column of a model output array."""
        outputs = np.asarray(outputs, dtype=float)
        if outputs.ndim == 1 or self.column is None:
            return outputs.reshape(len(outputs))
        return outputs[:, self.column]


MODEL_NAMES = ("logreg", "random_forest", "xgboost", "hist_gb", "pipeline")


def build_model(
    name: str, *, n_rows: int = 10, named: bool = False, seed: int = 0, output: str | None = None
) -> BenchModel:
    """One of the five models of the issue's table, fitted on synthetic data.

    ``named=True`` fits the numeric models on DataFrames with column names (the Pipeline always is);
    ``output`` overrides the explained space (``raw`` for boosted classifiers in the Tree SHAP bench).
    """
    builders = {
        "logreg": _logreg,
        "random_forest": _random_forest,
        "xgboost": _xgboost,
        "hist_gb": _hist_gb,
        "pipeline": _pipeline,
    }
    return builders[name](n_rows=n_rows, named=named, seed=seed, output=output)


def _split(X: Any, y: Any, n_rows: int, seed: int) -> tuple:
    """train / background (100 rows) / rows to explain."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(X))
    take = (lambda idx: X.iloc[idx].reset_index(drop=True)) if hasattr(X, "iloc") else (lambda idx: X[idx])
    n_held = BACKGROUND_ROWS + n_rows
    train, held = order[n_held:], order[:n_held]
    return take(train), y[train], take(held[:BACKGROUND_ROWS]), take(held[BACKGROUND_ROWS:])


def _numeric_frames(X: np.ndarray, names: list[str] | None):
    import pandas as pd

    columns = names or [f"x{i}" for i in range(X.shape[1])]
    return pd.DataFrame(X, columns=columns)


def _numeric_model(name, title, estimator, X, y, *, n_rows, named, seed, output, classifier=True):
    """Fit ``estimator`` on numeric data and wrap it as a BenchModel."""
    names = [f"f{i}" for i in range(X.shape[1])] if named else None
    frame = _numeric_frames(X, names)
    train, y_train, background, rows = _split(frame, y, n_rows, seed)
    estimator.fit(train if named else train.to_numpy(), y_train)
    if not named:
        # xai names the columns of a nameless model x0, x1, ...: the frames carry those names.
        background.columns = rows.columns = [f"x{i}" for i in range(X.shape[1])]
    if output is None:
        output = "probability" if classifier else "raw"
    if not classifier:
        method, column = "predict", None
    elif output == "probability":
        method, column = "predict_proba", 1
    else:
        method = "decision_function" if hasattr(estimator, "decision_function") else "predict"
        column = None
        if type(estimator).__module__.startswith("xgboost"):
            raise ValueError("use an XGBoost regressor for raw margins in the bench")
    return BenchModel(name, title, estimator, output, method, column, background, rows, named, {}, classifier)


def _logreg(*, n_rows, named, seed, output):
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    X, y = make_classification(n_samples=3000, n_features=30, n_informative=12, random_state=seed)
    return _numeric_model(
        "logreg",
        "LogisticRegression, 30 features",
        LogisticRegression(max_iter=1000),
        X,
        y,
        n_rows=n_rows,
        named=named,
        seed=seed,
        output=output,
    )


def _random_forest(*, n_rows, named, seed, output):
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    X, y = make_classification(n_samples=3000, n_features=12, n_informative=6, random_state=seed)
    return _numeric_model(
        "random_forest",
        "RandomForest(100), 12 features",
        RandomForestClassifier(n_estimators=100, random_state=seed),
        X,
        y,
        n_rows=n_rows,
        named=named,
        seed=seed,
        output=output,
    )


def _xgboost(*, n_rows, named, seed, output):
    from sklearn.datasets import make_regression
    from xgboost import XGBRegressor

    X, y = make_regression(n_samples=3000, n_features=12, n_informative=8, noise=5.0, random_state=seed)
    return _numeric_model(
        "xgboost",
        "XGBoost(100) regressor, 12 features",
        XGBRegressor(n_estimators=100, random_state=seed),
        X,
        y,
        n_rows=n_rows,
        named=named,
        seed=seed,
        output=output,
        classifier=False,
    )


def _hist_gb(*, n_rows, named, seed, output):
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = make_classification(n_samples=3000, n_features=10, n_informative=6, random_state=seed)
    return _numeric_model(
        "hist_gb",
        "HistGradientBoosting, 10 features",
        HistGradientBoostingClassifier(random_state=seed),
        X,
        y,
        n_rows=n_rows,
        named=named,
        seed=seed,
        output=output,
    )


def _pipeline(*, n_rows, named, seed, output):
    """3 string categorical + 5 numeric columns -> one-hot + scaler -> LogisticRegression."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y = make_classification(n_samples=3000, n_features=8, n_informative=6, random_state=seed)
    frame = pd.DataFrame(X[:, :5], columns=[f"num{i}" for i in range(5)])
    levels = [list("abcd"), ["red", "green", "blue"], ["s", "m", "l", "xl", "xxl"]]
    for index, names in enumerate(levels):
        codes = np.digitize(X[:, 5 + index], np.quantile(X[:, 5 + index], np.linspace(0, 1, len(names) + 1)[1:-1]))
        frame[f"cat{index}"] = pd.Series(np.array(names, dtype=object)[codes], dtype=object)
    categorical = [f"cat{i}" for i in range(3)]
    numeric = [f"num{i}" for i in range(5)]
    pipe = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [("cat", OneHotEncoder(handle_unknown="ignore"), categorical), ("num", StandardScaler(), numeric)]
                ),
            ),
            ("model", LogisticRegression(max_iter=1000)),
        ]
    )
    train, y_train, background, rows = _split(frame, y, n_rows, seed)
    pipe.fit(train, y_train)
    dtypes = {c: (object if c in categorical else float) for c in frame.columns}
    return BenchModel(
        "pipeline",
        "Pipeline (one-hot + scaler + LR), 8 columns",
        pipe,
        output or "probability",
        "predict_proba",
        1,
        background,
        rows,
        True,
        dtypes,
    )


# --------------------------------------------------------------------------------------------------
# Exact Shapley values of the interventional game, by brute force (independent of xai_cli)


def coalition_masks(n_features: int) -> np.ndarray:
    """All 2^M coalitions as a (2^M, M) boolean array; coalition number c holds the bits of c."""
    return np.array([[(c >> j) & 1 for j in range(n_features)] for c in range(2**n_features)], dtype=bool)


def game_values(
    model: BenchModel, x: np.ndarray, background: np.ndarray, masks: np.ndarray, chunk: int = 200_000
) -> np.ndarray:
    """v(S) = mean over background rows b of f(x_S, b_notS), for every mask: (n_masks,) of the explained output."""
    predict = model.array_predict()
    n_background = len(background)
    per_call = max(1, chunk // n_background)
    values = np.empty(len(masks))
    for start in range(0, len(masks), per_call):
        block = masks[start : start + per_call]
        synthetic = np.where(block[:, None, :], x[None, None, :], background[None, :, :])
        outputs = model.explained(predict(synthetic.reshape(-1, x.shape[0])))
        values[start : start + len(block)] = outputs.reshape(len(block), n_background).mean(axis=1)
    return values


def brute_force_shapley(model: BenchModel, x: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Exact Shapley values (M,) of one row: phi_j = sum_{S not j} |S|!(M-|S|-1)!/M! (v(S+j) - v(S))."""
    m = x.shape[0]
    masks = coalition_masks(m)
    values = game_values(model, x, background, masks)
    sizes = masks.sum(axis=1)
    weight = np.array([1.0 / (m * math.comb(m - 1, s)) for s in range(m)])
    phi = np.zeros(m)
    for j in range(m):
        bit = 1 << j
        without = np.array([c for c in range(2**m) if not c & bit])
        phi[j] = np.sum(weight[sizes[without]] * (values[without + bit] - values[without]))
    return phi


def logistic_reference(model: BenchModel, x: np.ndarray, background: np.ndarray, *, permutations: int, seed: int):
    """Shapley values of a binary LogisticRegression's probability game, for M too large to enumerate.

    Uses the model's structure instead of calling it: with ``d_bj = w_j (x_j - b_j)``, the value of a
    coalition is ``mean_b sigmoid(w.b + c + sum_{j in S} d_bj)``, so a permutation's marginal
    contributions come from one cumulative sum. Antithetic permutation sampling (each permutation
    with its reverse). Returns ``(phi, standard_error)``, both (M,).
    """
    estimator = model.estimator
    w = np.asarray(estimator.coef_, dtype=float).ravel()
    c = float(np.ravel(estimator.intercept_)[0])
    d = (x[None, :] - background) * w[None, :]  # (B, M)
    start = background @ w + c  # (B,)
    rng = np.random.default_rng(seed)
    m = x.shape[0]
    half = permutations // 2
    pair_means = []
    for block_start in range(0, half, 1000):
        k = min(1000, half - block_start)
        order = np.argsort(rng.random((k, m)), axis=1)
        both = np.concatenate([order, order[:, ::-1]])  # antithetic pairs: rows i and i + k
        logits = start[:, None, None] + np.cumsum(d[:, both], axis=2)  # (B, 2k, M)
        v = (1.0 / (1.0 + np.exp(-logits))).mean(axis=0)  # (2k, M)
        v0 = (1.0 / (1.0 + np.exp(-start))).mean()
        gains = np.diff(np.concatenate([np.full((2 * k, 1), v0), v], axis=1), axis=1)
        phi = np.empty_like(gains)
        np.put_along_axis(phi, both, gains, axis=1)
        pair_means.append((phi[:k] + phi[k:]) / 2)
    pairs = np.concatenate(pair_means)
    sign = 1.0 if model.column in (None, 1) else -1.0
    return sign * pairs.mean(axis=0), pairs.std(axis=0, ddof=1) / math.sqrt(len(pairs))


def check_logistic_structure(model: BenchModel, x: np.ndarray, background: np.ndarray, seed: int = 0) -> float:
    """Largest difference between the structural game and the model's own predictions (sanity check)."""
    rng = np.random.default_rng(seed)
    masks = rng.random((20, x.shape[0])) < 0.5
    from_model = game_values(model, x, background, masks)
    w = np.asarray(model.estimator.coef_, dtype=float).ravel()
    c = float(np.ravel(model.estimator.intercept_)[0])
    synthetic = np.where(masks[:, None, :], x[None, None, :], background[None, :, :])
    structural = (1.0 / (1.0 + np.exp(-(synthetic @ w + c)))).mean(axis=1)
    return float(np.max(np.abs(from_model - structural)))


def output_range(model: BenchModel) -> float:
    """max - min of the explained output over background and explained rows (the error's yardstick)."""
    predict = model.array_predict()
    values = np.concatenate(
        [model.explained(predict(model.array(model.background))), model.explained(predict(model.array(model.rows)))]
    )
    return float(values.max() - values.min())


# --------------------------------------------------------------------------------------------------
# xai_cli glue


def xai_model_and_batch(model: BenchModel, n_rows: int | None = None):
    """xai's LoadedModel for the estimator and a Batch of the rows to explain (the explained class only)."""
    from xai_cli.methods.base import Batch
    from xai_cli.model import describe_model

    loaded = describe_model(model.estimator)
    rows = model.rows if n_rows is None else model.rows.iloc[:n_rows]
    column = model.column if model.column is not None else (1 if loaded.is_classifier else 0)
    batch = Batch(rows, list(range(len(rows))), [str(i) for i in range(len(rows))], [[column]] * len(rows))
    return loaded, batch


def timed_estimator_attribute(model: BenchModel) -> tuple[Any, str]:
    """Which object and attribute to wrap to time xai's calls into the model (the estimator's method)."""
    return model.estimator, model.method


def phi_matrix(explanations: list, feature_names: list[str]) -> np.ndarray:
    """(rows, M) attributions from xai Explanation records (one explained class per row)."""
    by_row: dict[int, dict[str, float]] = {}
    for explanation in explanations:
        by_row[explanation.row] = {a.feature: a.attribution for a in explanation.attributions}
    return np.array([[by_row[row][name] for name in feature_names] for row in sorted(by_row)])


def shap_phi(values: Any, model: BenchModel) -> np.ndarray:
    """shap's shap_values output reduced to (rows, M) of the explained column."""
    values = np.asarray(values)
    if values.ndim == 3:
        return values[:, :, model.column if model.column is not None else 0]
    return values


# --------------------------------------------------------------------------------------------------
# Results


def environment() -> dict[str, Any]:
    """Versions and machine facts recorded next to every result."""
    versions = {"python": platform.python_version()}
    for package in ("shap", "lime", "scikit-learn", "numpy", "pandas", "xgboost-cpu", "lightgbm", "typer"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return {
        "git": git_state(),
        "cpus": os.cpu_count(),
        "load_average_1_5_15": os.getloadavg(),
        "platform": platform.platform(),
        "versions": versions,
        "argv": sys.argv[1:],
    }


def warn_if_busy(limit: float = 0.7) -> None:
    """Say so when other processes load the machine: ratios survive some noise, absolute times do not."""
    load = os.getloadavg()[0]
    if load > limit:
        print(
            f"warning: 1-minute load average is {load:.2f} on {os.cpu_count()} cores; other processes will "
            "disturb the timings (the ratios less than the absolute numbers)",
            file=sys.stderr,
        )


def git_state() -> dict[str, Any]:
    """The commit benchmarked, and the SHA-256 of the method files (others edit them while we measure)."""
    import hashlib
    import subprocess

    root = BENCH_DIR.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "xai_cli"], cwd=root, capture_output=True, text=True
        ).stdout.split("\n")
    except OSError:
        head, dirty = "", []
    files = {}
    for path in sorted((root / "xai_cli" / "methods").glob("*.py")):
        files[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return {"head": head, "modified_in_xai_cli": [d for d in dirty if d], "method_files_sha256": files}


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(stem: str, markdown: str, data: dict[str, Any], *, results_dir: Path = RESULTS_DIR) -> None:
    """Write ``<stem>.md`` and ``<stem>.json`` under bench/results/ and say where."""
    results_dir.mkdir(parents=True, exist_ok=True)
    data = {"environment": environment(), "created": time.strftime("%Y-%m-%d %H:%M:%S"), **data}
    (results_dir / f"{stem}.md").write_text(markdown + "\n")
    (results_dir / f"{stem}.json").write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    print(f"\nwrote {results_dir / (stem + '.md')} and {stem}.json", file=sys.stderr)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def fmt_ms(seconds: float) -> str:
    """Seconds as a short millisecond string."""
    ms = seconds * 1000
    return f"{ms:.3g} ms" if ms < 100 else f"{ms:.0f} ms"


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}x" if value < 10 else f"{value:.0f}x"


def fmt_rate(rows_per_second: float) -> str:
    if rows_per_second >= 1e6:
        return f"{rows_per_second / 1e6:.2f} M"
    return f"{rows_per_second / 1e3:.0f} k"
