"""Shared fixtures: small real models trained here, saved as users save them, and a CLI runner.

Every model is trained in the test session (never a stored binary: pickles are tied to library
versions) on a few hundred synthetic rows, so the whole suite stays fast.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


def run_cli(args: list[str], *, stdin: bytes | None = None, cwd: Path | None = None) -> CliResult:
    """Run ``xai ARGS`` in this process through the real entry point (exit code, stdout, stderr)."""
    from xai_cli.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    fake_stdin = io.TextIOWrapper(io.BytesIO(stdin or b""), encoding="utf-8")
    old_argv, old_stdin, old_cwd = sys.argv, sys.stdin, os.getcwd()
    sys.argv, sys.stdin = ["xai", *map(str, args)], fake_stdin
    code = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                main()
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        sys.argv, sys.stdin = old_argv, old_stdin
        os.chdir(old_cwd)
    return CliResult(code, stdout.getvalue(), stderr.getvalue())


def run_xai_process(args: list[str], *, stdin: bytes | None = None, env: dict | None = None, cwd=None):
    """Run the installed command as a separate process, as a shell would."""
    return subprocess.run(
        [sys.executable, "-m", "xai_cli", *map(str, args)],
        input=stdin,
        capture_output=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=300,
    )


@pytest.fixture
def xai():
    """The CLI runner: ``xai(["explain", model, data, ...]) -> CliResult``."""
    return run_cli


def mixed_frame(n_rows: int, seed: int = 0) -> pd.DataFrame:
    """Rows like a real CSV: numbers, string categories, empty cells, a column the label ignores."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 12, n_rows).round(1),
            "income": rng.lognormal(10, 0.5, n_rows).round(0),
            "color": rng.choice(["red", "green", "blue"], n_rows),
            "city": rng.choice(["Paris", "Lima", "Oslo", "Pune"], n_rows),
            "noise": rng.normal(0, 1, n_rows).round(3),
        }
    )
    frame.loc[rng.random(n_rows) < 0.08, "age"] = np.nan
    frame.loc[rng.random(n_rows) < 0.08, "color"] = np.nan
    logit = 0.08 * (frame["age"].fillna(40) - 40) + (frame["color"] == "red") * 1.5 - (frame["city"] == "Oslo") * 1.0
    frame["label"] = np.where(logit + rng.normal(0, 0.5, n_rows) > 0, "yes", "no")
    frame["amount"] = 3.0 * frame["age"].fillna(40) + 20.0 * (frame["color"] == "red") + rng.normal(0, 5, n_rows)
    return frame


def mixed_pipeline(final_estimator):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    preprocess = ColumnTransformer(
        [
            ("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["age", "income", "noise"]),
            (
                "categories",
                make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
                ["color", "city"],
            ),
        ]
    )
    return Pipeline([("preprocess", preprocess), ("model", final_estimator)])


FEATURES = ["age", "income", "color", "city", "noise"]


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def mixed_data(workdir) -> dict[str, Path]:
    """CSV files: 200 training rows (background), their first 40, and 6 rows to explain, with ids."""
    train = mixed_frame(200, seed=1)
    rows = mixed_frame(6, seed=2)
    rows.insert(0, "name", [f"person-{i}" for i in range(len(rows))])
    paths = {"train": workdir / "train.csv", "rows": workdir / "rows.csv", "few": workdir / "few.csv"}
    train.to_csv(paths["train"], index=False)
    train.iloc[:40].to_csv(paths["few"], index=False)  # enough to be its own background, quick to explain
    rows.to_csv(paths["rows"], index=False)
    return paths


@pytest.fixture(scope="session")
def pipeline_classifier(workdir, mixed_data) -> Path:
    """A Pipeline (imputers, scaler, one-hot) + random forest classifier, saved with joblib."""
    from sklearn.ensemble import RandomForestClassifier

    train = pd.read_csv(mixed_data["train"])
    model = mixed_pipeline(RandomForestClassifier(n_estimators=20, max_depth=4, random_state=0))
    model.fit(train[FEATURES], train["label"])
    path = workdir / "pipeline_forest.joblib"
    joblib.dump(model, path)
    return path


@pytest.fixture(scope="session")
def pipeline_regressor(workdir, mixed_data) -> Path:
    """A Pipeline + linear regression: additive in the original columns."""
    from sklearn.linear_model import Ridge

    train = pd.read_csv(mixed_data["train"])
    model = mixed_pipeline(Ridge(alpha=1.0))
    model.fit(train[FEATURES], train["amount"])
    path = workdir / "pipeline_ridge.pkl"
    joblib.dump(model, path)
    return path


@pytest.fixture(scope="session")
def pipeline_logistic(workdir, mixed_data) -> Path:
    from sklearn.linear_model import LogisticRegression

    train = pd.read_csv(mixed_data["train"])
    model = mixed_pipeline(LogisticRegression(max_iter=500))
    model.fit(train[FEATURES], train["label"])
    path = workdir / "pipeline_logistic.pkl"
    joblib.dump(model, path)
    return path


@pytest.fixture(scope="session")
def numeric_data(workdir) -> dict[str, Path]:
    """Numeric-only data for bare tree / boosted models: 4 informative features and 1 ignored."""
    rng = np.random.default_rng(3)
    n_rows = 300
    frame = pd.DataFrame(rng.normal(size=(n_rows, 5)), columns=["a", "b", "c", "d", "ignored"]).round(4)
    score = frame["a"] + 0.5 * frame["b"] * frame["c"] - 0.7 * frame["d"]
    frame["target"] = (score + rng.normal(0, 0.3, n_rows) > 0).astype(int)
    frame["value"] = score + rng.normal(0, 0.1, n_rows)
    frame["klass"] = np.digitize(score, [-0.5, 0.5])
    paths = {"train": workdir / "numeric_train.csv", "rows": workdir / "numeric_rows.csv"}
    frame.to_csv(paths["train"], index=False)
    frame.iloc[:5].to_csv(paths["rows"], index=False)
    return paths


NUMERIC_FEATURES = ["a", "b", "c", "d", "ignored"]


def _fit_numeric(workdir, numeric_data, estimator, target: str, name: str, features=None) -> Path:
    train = pd.read_csv(numeric_data["train"])
    # The planted "ignored" column is left out of the model's training signal: it only adds noise.
    estimator.fit(train[features or NUMERIC_FEATURES], train[target])
    path = workdir / name
    joblib.dump(estimator, path)
    return path


@pytest.fixture(scope="session")
def forest_classifier(workdir, numeric_data) -> Path:
    from sklearn.ensemble import RandomForestClassifier

    return _fit_numeric(
        workdir, numeric_data, RandomForestClassifier(n_estimators=15, max_depth=5, random_state=0), "target", "rf.pkl"
    )


@pytest.fixture(scope="session")
def boosted_classifier(workdir, numeric_data) -> Path:
    from sklearn.ensemble import GradientBoostingClassifier

    return _fit_numeric(
        workdir,
        numeric_data,
        GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0),
        "target",
        "gb.pkl",
    )


@pytest.fixture(scope="session")
def xgb_multiclass(workdir, numeric_data) -> Path:
    import xgboost

    return _fit_numeric(
        workdir,
        numeric_data,
        xgboost.XGBClassifier(n_estimators=15, max_depth=3, learning_rate=0.3, random_state=0),
        "klass",
        "xgb.joblib",
    )


@pytest.fixture(scope="session")
def lgbm_regressor(workdir, numeric_data) -> Path:
    import lightgbm

    return _fit_numeric(
        workdir,
        numeric_data,
        lightgbm.LGBMRegressor(n_estimators=20, num_leaves=8, random_state=0, verbose=-1),
        "value",
        "lgbm.joblib",
    )
