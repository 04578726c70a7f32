"""``xai inspect`` from the outside: what it reports, and that it never loads a file the scan refuses."""

from __future__ import annotations

import colorsys
import copy
import os
import pickle

import joblib
import pandas as pd
import pytest
from conftest import FEATURES, run_cli, run_xai_process


@pytest.fixture
def xai(monkeypatch):
    """``xai([...]) -> CliResult`` through ``xai_cli.cli.main``, with ``inspect`` registered as cli.py
    registers ``explain`` (on a copy of the app, so this runs whether or not cli.py has it yet)."""
    from xai_cli import cli
    from xai_cli.commands import inspect

    app = copy.copy(cli.app)
    app.registered_commands = list(cli.app.registered_commands)
    if inspect.inspect not in {command.callback for command in app.registered_commands}:
        app.command(epilog=inspect.INSPECT_EPILOG)(inspect.inspect)
    monkeypatch.setattr("xai_cli.cli.app", app)
    return run_cli


class RunsACommand:
    """Unpickling this calls ``os.system``: the pickle names ``posix.system`` (``nt.system`` on Windows)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.fixture
def hostile_pickle(tmp_path):
    marker = tmp_path / "MARKER"
    path = tmp_path / "model.pkl"
    with open(path, "wb") as handle:
        pickle.dump(RunsACommand(f"touch {marker}"), handle)
    return path, marker


def test_json_reports_model_features_methods_safety_and_columns(xai, pipeline_classifier, mixed_data):
    result = xai(["inspect", pipeline_classifier, mixed_data["rows"], "--json"])
    assert result.code == 0, result.stderr
    document = result.json()
    assert document["kind"] == "inspection" and document["schema_version"] == 1
    model = document["model"]
    assert model["loaded"] is True
    assert model["type"] == "sklearn.pipeline.Pipeline"
    assert model["final_type"] == "RandomForestClassifier"
    assert model["task"] == "classification"
    assert model["classes"] == ["no", "yes"]
    assert len(model["sha256"]) == 64
    kinds = {feature["name"]: feature["kind"] for feature in model["features"]}
    assert kinds == {
        "age": "numeric",
        "income": "numeric",
        "color": "categorical",
        "city": "categorical",
        "noise": "numeric",
    }

    import sklearn

    assert document["sklearn"] == {"saved_with": sklearn.__version__, "installed": sklearn.__version__, "matches": True}
    methods = {method["option"]: method for method in document["methods"]}
    assert set(methods) == {"tree", "linear", "kernel", "lime"}
    assert methods["kernel"]["applies"] and methods["lime"]["applies"]
    assert not methods["tree"]["applies"] and "Pipeline" in methods["tree"]["reason"]
    assert not methods["linear"]["applies"] and "not a linear model" in methods["linear"]["reason"]
    assert document["auto"] == {"method": "kernel_shap", "output": "probability"}

    safety = document["safety"]
    assert safety["safe"] is True and safety["refused"] == [] and safety["trusted"] is False
    assert safety["container"].startswith("joblib")
    assert any(name.startswith("sklearn.") for name in safety["imports"])

    data = document["data"]
    assert data["matched"] == FEATURES
    assert data["missing"] == []
    assert set(data["extra"]) == {"name", "label", "amount"}
    assert data["rows"] == 6


def test_terminal_report_names_what_matters(xai, boosted_classifier, numeric_data):
    result = xai(["inspect", boosted_classifier, numeric_data["rows"]])
    assert result.code == 0, result.stderr
    for expected in ("GradientBoostingClassifier", "safety scan: safe", "auto picks tree_shap, raw output", "matched"):
        assert expected in result.stdout
    assert result.stderr == ""


def test_sklearn_version_mismatch_is_a_warning_in_yellow_and_in_json(xai, tmp_path, monkeypatch, mixed_data):
    """scikit-learn stamps its own version over ``_sklearn_version`` when pickling (setting the attribute
    before dumping changes nothing), so the file is written as an old scikit-learn would write it."""
    import sklearn.base
    from sklearn.linear_model import LogisticRegression

    train = pd.read_csv(mixed_data["train"])
    model = LogisticRegression(max_iter=500).fit(train[["age", "noise"]].fillna(0), train["label"])
    path = tmp_path / "old.joblib"
    with monkeypatch.context() as patch:
        patch.setattr(sklearn.base, "__version__", "0.0.1")
        joblib.dump(model, path)

    document = xai(["inspect", path, "--json"]).json()
    assert document["sklearn"]["saved_with"] == "0.0.1"
    assert document["sklearn"]["matches"] is False
    assert any("0.0.1" in warning and sklearn.__version__ in warning for warning in document["warnings"])

    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    result = xai(["inspect", path])
    assert result.code == 0
    warning_line = next(line for line in result.stdout.splitlines() if "warning" in line and "0.0.1" in line)
    assert "\x1b[33m" in warning_line  # yellow


def test_hostile_pickle_exits_3_without_being_loaded(xai, hostile_pickle):
    path, marker = hostile_pickle
    result = xai(["inspect", path])
    assert result.code == 3
    assert "refused" in result.stdout and "posix.system" in result.stdout
    assert "posix.system" in result.stderr
    assert "Traceback" not in result.stderr

    as_json = xai(["inspect", path, "--json"])
    assert as_json.code == 3
    document = as_json.json()
    assert document["safety"]["safe"] is False
    assert "posix.system" in document["safety"]["refused"]
    assert document["model"]["loaded"] is False
    assert "methods" not in document
    assert not marker.exists()


def test_hostile_pickle_in_a_real_process_never_runs(hostile_pickle, mixed_data):
    """Needs ``inspect`` registered in xai_cli/cli.py."""
    path, marker = hostile_pickle
    result = run_xai_process(["inspect", path, mixed_data["rows"]])
    assert result.returncode == 3
    assert b"posix.system" in result.stderr
    assert b"Traceback" not in result.stderr
    assert not marker.exists()


@pytest.fixture
def model_with_unlisted_import(tmp_path, mixed_data):
    """A working model whose pickle also names a harmless module outside the allowlist (colorsys)."""
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    train = pd.read_csv(mixed_data["train"])
    model = make_pipeline(
        FunctionTransformer(inverse_func=colorsys.rgb_to_hsv, check_inverse=False), LinearRegression()
    ).fit(train[["noise"]], train["amount"])
    path = tmp_path / "unlisted.pkl"
    joblib.dump(model, path)
    return path


def test_trust_loads_a_refused_file_and_still_shows_the_verdict(xai, model_with_unlisted_import):
    refused = xai(["inspect", model_with_unlisted_import, "--json"])
    assert refused.code == 3
    assert refused.json()["safety"]["refused"] == ["colorsys.rgb_to_hsv"]

    trusted = xai(["inspect", model_with_unlisted_import, "--json", "--trust"])
    assert trusted.code == 0, trusted.stderr
    document = trusted.json()
    assert document["safety"]["safe"] is False and document["safety"]["trusted"] is True
    assert document["model"]["loaded"] is True
    assert any("loaded anyway" in warning for warning in document["warnings"])

    allowed = xai(["inspect", model_with_unlisted_import, "--json", "--allow", "colorsys"])
    assert allowed.code == 0, allowed.stderr
    assert allowed.json()["safety"]["safe"] is True


def test_data_missing_a_column_exits_2_naming_it_after_the_report(xai, tmp_path, pipeline_classifier, mixed_data):
    data = tmp_path / "no_city.csv"
    pd.read_csv(mixed_data["rows"]).drop(columns="city").to_csv(data, index=False)
    result = xai(["inspect", pipeline_classifier, data])
    assert result.code == 2
    assert "city" in result.stderr
    assert "RandomForestClassifier" in result.stdout and "missing" in result.stdout

    as_json = xai(["inspect", pipeline_classifier, data, "--json"])
    assert as_json.code == 2
    assert as_json.json()["data"]["missing"] == ["city"]


def test_data_with_a_word_in_a_numeric_column_exits_2_naming_the_column(xai, tmp_path, pipeline_classifier, mixed_data):
    data = tmp_path / "bad_age.csv"
    frame = pd.read_csv(mixed_data["rows"])
    frame["age"] = frame["age"].astype(object)
    frame.loc[2, "age"] = "forty"
    frame.to_csv(data, index=False)
    result = xai(["inspect", pipeline_classifier, data, "--json"])
    assert result.code == 2
    assert "age" in result.json()["data"]["problem"]
    assert "age" in result.stderr


def test_missing_model_file_exits_2(xai, tmp_path):
    result = xai(["inspect", tmp_path / "nowhere.pkl"])
    assert result.code == 2
    assert "nowhere.pkl" in result.stderr


def test_features_carry_the_dtype_they_reach_the_model_with_and_the_encoders_categories(xai, pipeline_classifier):
    result = xai(["inspect", pipeline_classifier, "--json"])
    assert result.code == 0, result.stderr
    features = {feature["name"]: feature for feature in result.json()["model"]["features"]}
    assert features["age"]["dtype"] == "float64" and features["age"]["categories"] is None
    assert features["color"]["dtype"] == "object"
    fitted = joblib.load(pipeline_classifier)
    encoder = fitted.named_steps["preprocess"].named_transformers_["categories"][-1]
    assert features["color"]["categories"] == [str(c) for c in encoder.categories_[0]]
    assert features["city"]["categories"] == [str(c) for c in encoder.categories_[1]]


def test_saved_version_is_unknown_not_a_match_when_no_sklearn_object_carries_a_stamp(xai, xgb_multiclass):
    """A bare XGBoost model holds no scikit-learn object, so nothing in the file says which
    scikit-learn wrote it: "unknown", never "matches"."""
    result = xai(["inspect", xgb_multiclass, "--json"])
    assert result.code == 0, result.stderr
    assert result.json()["sklearn"]["saved_with"] is None
    assert result.json()["sklearn"]["matches"] is None
    shown = xai(["inspect", xgb_multiclass])
    assert "unknown" in shown.stdout and "mismatch" not in shown.stdout


def test_saved_version_of_a_lightgbm_classifier_comes_from_its_label_encoder(xai, tmp_path, numeric_data):
    """LGBMClassifier keeps a scikit-learn LabelEncoder, which carries the version stamp."""
    import lightgbm
    import sklearn

    frame = pd.read_csv(numeric_data["train"])
    features = [c for c in frame.columns if c not in ("target", "klass", "value")]
    model = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(frame[features], frame["target"])
    path = tmp_path / "lgbm.joblib"
    joblib.dump(model, path)
    result = xai(["inspect", path, "--json"])
    assert result.code == 0, result.stderr
    assert result.json()["sklearn"] == {"saved_with": sklearn.__version__, "installed": sklearn.__version__, "matches": True}


def test_a_truncated_model_file_is_refused_as_damaged_without_suggesting_trust(xai, tmp_path, pipeline_classifier):
    """A cut-short download is not a file to trust: the hint says to get a complete copy."""
    whole = open(pipeline_classifier, "rb").read()
    path = tmp_path / "cut.pkl"
    path.write_bytes(whole[: len(whole) // 3])
    result = xai(["inspect", path])
    assert result.code == 3, result.stderr
    assert "damaged" in result.stderr and "--trust" not in result.stderr, result.stderr
    as_json = xai(["inspect", path, "--json"])
    assert as_json.json()["safety"]["damaged"] is True
