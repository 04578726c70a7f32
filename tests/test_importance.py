"""``xai importance`` from the outside: real models, the real command, numbers against independent truth."""

from __future__ import annotations

import copy
import csv
import subprocess
import sys

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import FEATURES, NUMERIC_FEATURES, run_cli, run_xai_process


def app_with_new_commands():
    """The shared ``xai`` app plus ``importance`` and ``inspect``, registered as cli.py registers ``explain``.

    A copy, so the tests run the real entry point whether or not cli.py registers them yet.
    """
    from xai_cli import cli
    from xai_cli.commands import importance, inspect

    app = copy.copy(cli.app)
    app.registered_commands = list(cli.app.registered_commands)
    registered = {command.callback for command in app.registered_commands}
    for function, epilog in (
        (importance.importance, importance.IMPORTANCE_EPILOG),
        (inspect.inspect, inspect.INSPECT_EPILOG),
    ):
        if function not in registered:
            app.command(epilog=epilog)(function)
    return app


@pytest.fixture
def xai(monkeypatch):
    """``xai([...]) -> CliResult`` through ``xai_cli.cli.main``, with the new commands registered."""
    monkeypatch.setattr("xai_cli.cli.app", app_with_new_commands())
    return run_cli


def importances(document: dict, method: str) -> dict[str, float]:
    return {entry["feature"]: entry["importance"] for entry in document["methods"][method]["features"]}


def run_json(xai, args: list) -> dict:
    result = xai(["importance", *args, "--json"])
    assert result.code == 0, result.stderr
    return result.json()


# --------------------------------------------------------------------------------------------
# Built-in importance
# --------------------------------------------------------------------------------------------


def test_builtin_of_a_pipeline_sums_one_hot_columns_back_to_their_column(
    xai, tmp_path, pipeline_classifier, mixed_data
):
    document = run_json(
        xai, [pipeline_classifier, mixed_data["train"], "--target", "label", "--method", "builtin", "--out", tmp_path]
    )
    builtin = document["methods"]["builtin"]
    assert builtin["kind"] == "feature_importances_"
    assert builtin["summed_over_inputs"] is True
    assert "summed" in builtin["note"]

    model = joblib.load(pipeline_classifier)
    names = model.named_steps["preprocess"].get_feature_names_out()  # e.g. "categories__color_red"
    reported = model.named_steps["model"].feature_importances_
    expected = {feature: 0.0 for feature in FEATURES}
    for name, value in zip(names, reported):
        column = name.split("__", 1)[1]
        owner = column if column in FEATURES else next(f for f in FEATURES if column.startswith(f + "_"))
        expected[owner] += value
    got = importances(document, "builtin")
    assert got == pytest.approx(expected, abs=1e-12)
    assert [entry["std"] for entry in builtin["features"]] == [None] * len(FEATURES)
    assert list(got.values()) == sorted(got.values(), reverse=True)


def test_builtin_of_a_bare_forest_is_its_feature_importances(xai, tmp_path, forest_classifier, numeric_data):
    document = run_json(xai, [forest_classifier, numeric_data["train"], "--method", "builtin", "--out", tmp_path])
    model = joblib.load(forest_classifier)
    expected = dict(zip(NUMERIC_FEATURES, model.feature_importances_))
    assert importances(document, "builtin") == pytest.approx(expected, abs=1e-12)
    assert "summed_over_inputs" not in document["methods"]["builtin"]


def test_builtin_of_a_multiclass_linear_model_is_mean_abs_coef_and_per_class(xai, tmp_path, workdir, numeric_data):
    from sklearn.linear_model import LogisticRegression

    train = pd.read_csv(numeric_data["train"])
    model = LogisticRegression(max_iter=500).fit(train[NUMERIC_FEATURES], train["klass"])
    path = workdir / "multiclass_logistic.pkl"
    joblib.dump(model, path)
    document = run_json(xai, [path, numeric_data["train"], "--method", "builtin", "--out", tmp_path])
    builtin = document["methods"]["builtin"]
    assert builtin["kind"] == "abs_coef"
    assert importances(document, "builtin") == pytest.approx(
        dict(zip(NUMERIC_FEATURES, np.abs(model.coef_).mean(axis=0))), abs=1e-12
    )
    assert set(builtin["per_class"]) == {"0", "1", "2"}
    for label, row in zip(("0", "1", "2"), np.abs(model.coef_)):
        assert builtin["per_class"][label] == pytest.approx(dict(zip(NUMERIC_FEATURES, row)), abs=1e-12)


def test_xgboost_builtin_reports_gain_and_also_weight_and_cover(xai, tmp_path, xgb_multiclass, numeric_data):
    document = run_json(xai, [xgb_multiclass, numeric_data["train"], "--method", "builtin", "--out", tmp_path])
    builtin = document["methods"]["builtin"]
    booster = joblib.load(xgb_multiclass).get_booster()

    def score(kind: str) -> dict[str, float]:
        by_name = booster.get_score(importance_type=kind)
        return {feature: by_name.get(feature, 0.0) for feature in NUMERIC_FEATURES}

    assert builtin["kind"] == "xgboost_gain"
    assert importances(document, "builtin") == pytest.approx(score("gain"), rel=1e-9)
    assert builtin["other_kinds"]["xgboost_weight"] == pytest.approx(score("weight"), rel=1e-9)
    assert builtin["other_kinds"]["xgboost_cover"] == pytest.approx(score("cover"), rel=1e-9)


def test_lightgbm_builtin_reports_split_and_also_gain(xai, tmp_path, lgbm_regressor, numeric_data):
    document = run_json(xai, [lgbm_regressor, numeric_data["train"], "--method", "builtin", "--out", tmp_path])
    builtin = document["methods"]["builtin"]
    booster = joblib.load(lgbm_regressor).booster_
    assert builtin["kind"] == "lightgbm_split"
    expected_split = dict(zip(NUMERIC_FEATURES, booster.feature_importance(importance_type="split")))
    expected_gain = dict(zip(NUMERIC_FEATURES, booster.feature_importance(importance_type="gain")))
    assert importances(document, "builtin") == pytest.approx(expected_split)
    assert builtin["other_kinds"]["lightgbm_gain"] == pytest.approx(expected_gain)


def test_builtin_asked_of_a_model_without_one_exits_2_saying_why(xai, tmp_path, workdir, numeric_data):
    from sklearn.neighbors import KNeighborsRegressor

    train = pd.read_csv(numeric_data["train"])
    path = workdir / "knn.pkl"
    joblib.dump(KNeighborsRegressor().fit(train[NUMERIC_FEATURES], train["value"]), path)
    result = xai(["importance", path, numeric_data["train"], "--method", "builtin", "--out", tmp_path])
    assert result.code == 2
    assert "KNeighborsRegressor reports no importance" in result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------------------------
# Permutation importance
# --------------------------------------------------------------------------------------------


def test_permutation_matches_sklearn_permutation_importance(xai, tmp_path, pipeline_classifier, mixed_data):
    from sklearn.inspection import permutation_importance

    args = ["--scoring", "balanced_accuracy", "--repeats", "3", "--seed", "7", "--method", "permutation"]
    document = run_json(xai, [pipeline_classifier, mixed_data["train"], "--target", "label", *args, "--out", tmp_path])
    train = pd.read_csv(mixed_data["train"])
    expected = permutation_importance(
        joblib.load(pipeline_classifier),
        train[FEATURES],
        train["label"],
        scoring="balanced_accuracy",
        n_repeats=3,
        random_state=7,
    )
    permutation = document["methods"]["permutation"]
    assert permutation["scoring"] == "balanced_accuracy"
    assert permutation["repeats"] == 3
    by_feature = {entry["feature"]: entry for entry in permutation["features"]}
    for feature, mean, std in zip(FEATURES, expected.importances_mean, expected.importances_std):
        assert by_feature[feature]["importance"] == pytest.approx(mean, abs=1e-12)
        assert by_feature[feature]["std"] == pytest.approx(std, abs=1e-12)


def test_permutation_of_a_regressor_scores_r2_by_default(xai, tmp_path, pipeline_regressor, mixed_data):
    from sklearn.inspection import permutation_importance

    document = run_json(
        xai,
        [pipeline_regressor, mixed_data["train"], "--target", "amount", "--method", "permutation", "--out", tmp_path],
    )
    train = pd.read_csv(mixed_data["train"])
    expected = permutation_importance(
        joblib.load(pipeline_regressor), train[FEATURES], train["amount"], scoring="r2", n_repeats=5, random_state=0
    )
    assert document["methods"]["permutation"]["scoring"] == "r2"
    assert importances(document, "permutation") == pytest.approx(dict(zip(FEATURES, expected.importances_mean)))


def test_permutation_without_target_exits_2_naming_the_option(xai, tmp_path, pipeline_classifier, mixed_data):
    result = xai(["importance", pipeline_classifier, mixed_data["train"], "--method", "permutation", "--out", tmp_path])
    assert result.code == 2
    assert "--target" in result.stderr
    assert "Traceback" not in result.stderr


def test_all_methods_without_target_skip_permutation_and_say_so(xai, tmp_path, forest_classifier, numeric_data):
    document = run_json(xai, [forest_classifier, numeric_data["train"], "--out", tmp_path])
    assert set(document["methods"]) == {"builtin", "shap"}
    assert any("permutation skipped" in warning and "--target" in warning for warning in document["warnings"])


def test_unknown_scorer_exits_2_listing_valid_ones(xai, tmp_path, pipeline_classifier, mixed_data):
    result = xai(
        [
            "importance",
            pipeline_classifier,
            mixed_data["train"],
            "--target",
            "label",
            "--scoring",
            "acuracy",
            "--out",
            tmp_path,
        ]
    )
    assert result.code == 2
    assert "acuracy" in result.stderr
    assert "accuracy" in result.stderr.replace("acuracy", "")
    assert "balanced_accuracy" in result.stderr


def test_target_column_absent_from_data_exits_2_naming_it(xai, tmp_path, pipeline_classifier, mixed_data):
    result = xai(["importance", pipeline_classifier, mixed_data["train"], "--target", "outcome", "--out", tmp_path])
    assert result.code == 2
    assert "outcome" in result.stderr


# --------------------------------------------------------------------------------------------
# Mean |SHAP|
# --------------------------------------------------------------------------------------------


def test_mean_abs_shap_of_a_linear_regression_matches_its_closed_form(xai, tmp_path, workdir):
    """For a linear model and independent features, phi_j = coef_j (x_j - mean x_j) exactly."""
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(11)
    frame = pd.DataFrame(rng.normal(size=(80, 3)), columns=["u", "v", "w"])
    frame = ((frame - frame.mean()) / frame.std()).round(6)
    frame["y"] = 3.0 * frame["u"] - 1.5 * frame["v"] + 0.2 * frame["w"] + rng.normal(0, 0.1, 80)
    data_path, model_path = workdir / "standardized.csv", workdir / "linear.pkl"
    frame.to_csv(data_path, index=False)
    model = LinearRegression().fit(frame[["u", "v", "w"]], frame["y"])
    joblib.dump(model, model_path)

    document = run_json(xai, [model_path, data_path, "--target", "y", "--method", "shap", "--out", tmp_path])
    shap = document["methods"]["shap"]
    assert shap["kind"] == "mean_abs_linear_shap"
    assert shap["rows"] == 80
    features = frame[["u", "v", "w"]]
    closed_form = np.abs(model.coef_) * (features - features.mean()).abs().mean().to_numpy()
    assert importances(document, "shap") == pytest.approx(dict(zip(["u", "v", "w"], closed_form)), rel=1e-9)
    assert [entry["feature"] for entry in shap["features"]] == ["u", "v", "w"]


def test_mean_abs_shap_of_a_classifier_averages_the_classes_of_its_probabilities(
    xai, tmp_path, pipeline_classifier, mixed_data
):
    document = run_json(xai, [pipeline_classifier, mixed_data["train"], "--method", "shap", "--out", tmp_path])
    shap = document["methods"]["shap"]
    assert shap["output"] == "probability"
    assert shap["method"] == "kernel_shap"
    assert set(shap["per_class"]) == {"no", "yes"}
    mean_of_classes = {
        feature: (shap["per_class"]["no"][feature] + shap["per_class"]["yes"][feature]) / 2 for feature in FEATURES
    }
    assert importances(document, "shap") == pytest.approx(mean_of_classes)
    assert shap["game"]["background_rows"] == 100


# --------------------------------------------------------------------------------------------
# Agreement and correlated columns
# --------------------------------------------------------------------------------------------


def test_correlated_pair_is_warned_about_and_an_independent_pair_is_not(xai, tmp_path, workdir):
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(5)
    base = rng.normal(size=150)
    frame = pd.DataFrame(
        {
            "twin_a": base,
            "twin_b": base + rng.normal(0, 0.1, 150),
            "alone_c": rng.normal(size=150),
            "alone_d": rng.normal(size=150),
        }
    ).round(5)
    frame["y"] = frame.sum(axis=1) + rng.normal(0, 0.1, 150)
    data_path, model_path = workdir / "twins.csv", workdir / "twins.pkl"
    frame.to_csv(data_path, index=False)
    joblib.dump(LinearRegression().fit(frame.drop(columns="y"), frame["y"]), model_path)

    document = run_json(xai, [model_path, data_path, "--target", "y", "--method", "builtin", "--out", tmp_path])
    assert [(pair["a"], pair["b"]) for pair in document["correlated_pairs"]] == [("twin_a", "twin_b")]
    assert document["correlated_pairs"][0]["spearman"] > 0.8
    correlated = [warning for warning in document["warnings"] if "correlated" in warning]
    assert len(correlated) == 1
    assert "twin_a and twin_b" in correlated[0]
    assert "permutation importance" in correlated[0]
    assert not any("alone_c" in warning or "alone_d" in warning for warning in document["warnings"])


def test_agreement_covers_every_pair_of_methods(xai, tmp_path, forest_classifier, numeric_data):
    from scipy.stats import spearmanr

    document = run_json(xai, [forest_classifier, numeric_data["train"], "--target", "target", "--out", tmp_path])
    assert list(document["methods"]) == ["permutation", "builtin", "shap"]
    pairs = {(pair["a"], pair["b"]): pair for pair in document["agreement"]}
    assert set(pairs) == {("permutation", "builtin"), ("permutation", "shap"), ("builtin", "shap")}
    for (a, b), pair in pairs.items():
        first, second = importances(document, a), importances(document, b)
        rho = spearmanr([first[f] for f in NUMERIC_FEATURES], [second[f] for f in NUMERIC_FEATURES]).statistic
        assert pair["spearman"] == pytest.approx(rho)
        top_a = {entry["feature"] for entry in document["methods"][a]["features"][:5]}
        top_b = {entry["feature"] for entry in document["methods"][b]["features"][:5]}
        assert pair["top5_overlap"] == len(top_a & top_b) / 5
    # The planted column the label ignores ranks last or close to it for every method.
    for method in document["methods"].values():
        assert [entry["feature"] for entry in method["features"]].index("ignored") >= 3


# --------------------------------------------------------------------------------------------
# Files, terminal, processes
# --------------------------------------------------------------------------------------------


def test_outputs_follow_the_contract(xai, tmp_path, pipeline_classifier, mixed_data):
    out = tmp_path / "out"
    result = xai(["importance", pipeline_classifier, mixed_data["train"], "--target", "label", "--out", out])
    assert result.code == 0, result.stderr
    assert "Feature importance" in result.stdout and "Agreement" in result.stdout

    document = run_json(xai, [pipeline_classifier, mixed_data["train"], "--target", "label", "--out", out])
    assert document["schema_version"] == 1
    assert document["kind"] == "importance"
    assert document["tool"]["name"] == "xai-cli"
    assert document["created_at"].endswith("Z")
    assert {"path", "sha256", "type", "task"} <= set(document["model"])
    assert document["model"]["task"] == "classification"
    assert document["data"]["rows"] == 200 and len(document["data"]["sha256"]) == 64
    assert {"python", "scikit-learn", "shap"} <= set(document["versions"])
    assert document["params"]["scoring"] == "accuracy" and document["params"]["repeats"] == 5
    for method in document["methods"].values():
        assert method["kind"] and method["what"]
        values = [entry["importance"] for entry in method["features"]]
        assert values == sorted(values, reverse=True)
        assert {entry["feature"] for entry in method["features"]} == set(FEATURES)
    assert "DATA columns not used by the model (ignored): amount" in document["warnings"]

    import json

    assert json.loads((out / "importance.json").read_text())["methods"] == document["methods"]
    with open(out / "importance.csv", newline="") as handle:
        lines = list(csv.reader(handle))
    assert lines[0] == ["method", "feature", "importance", "std"]
    assert len(lines) == 1 + 3 * len(FEATURES)
    assert all(line[3] != "" for line in lines[1:] if line[0] == "permutation")
    assert all(line[3] == "" for line in lines[1:] if line[0] != "permutation")
    for method in ("permutation", "builtin", "shap"):
        assert (out / "plots" / f"importance_{method}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 3
    assert "Agreement" in report and "Spearman" in report
    assert 'src="http' not in report
    assert not list(out.rglob("*.tmp"))


def test_same_seed_gives_the_same_numbers(xai, tmp_path, pipeline_classifier, mixed_data):
    args = [pipeline_classifier, mixed_data["train"], "--target", "label", "--seed", "3", "--repeats", "2"]
    first = run_json(xai, [*args, "--out", tmp_path / "a"])
    second = run_json(xai, [*args, "--out", tmp_path / "b", "--n-jobs", "2"])
    assert first["methods"] == second["methods"]


def test_config_table_sets_importance_defaults(xai, tmp_path, pipeline_classifier, mixed_data):
    config = tmp_path / "xai.toml"
    config.write_text('[importance]\nmethod = "permutation"\ntarget = "label"\nrepeats = 2\n')
    document = run_json(xai, [pipeline_classifier, mixed_data["train"], "--config", config, "--out", tmp_path])
    assert list(document["methods"]) == ["permutation"]
    assert document["methods"]["permutation"]["repeats"] == 2


def test_command_modules_import_nothing_heavy():
    code = (
        "import sys, xai_cli.commands.importance, xai_cli.commands.inspect; "
        "print(sorted(m for m in ('shap', 'sklearn', 'pandas', 'matplotlib') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_installed_command_runs_as_a_process(tmp_path, pipeline_classifier, mixed_data):
    """Needs ``importance`` registered in xai_cli/cli.py."""
    result = run_xai_process(
        [
            "importance",
            pipeline_classifier,
            mixed_data["train"],
            "--target",
            "label",
            "--method",
            "builtin",
            "--out",
            tmp_path,
        ]
    )
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "importance.json").is_file()
    missing_target = run_xai_process(
        ["importance", pipeline_classifier, mixed_data["train"], "--method", "permutation", "--out", tmp_path]
    )
    assert missing_target.returncode == 2
    assert b"--target" in missing_target.stderr
    assert b"Traceback" not in missing_target.stderr
