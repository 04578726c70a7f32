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


def summed_by_column(pipeline, values) -> dict[str, float]:
    """``values``, one per input of the final estimator, added up per CSV column by the input names
    scikit-learn itself gives (``categories__color_red`` belongs to ``color``)."""
    names = pipeline[:-1].get_feature_names_out()
    totals = {feature: 0.0 for feature in FEATURES}
    for name, value in zip(names, values):
        column = name.split("__", 1)[1]
        owner = column if column in FEATURES else next(f for f in FEATURES if column.startswith(f + "_"))
        totals[owner] += float(value)
    return totals


def test_builtin_of_a_pipeline_does_not_depend_on_how_data_varies(xai, tmp_path, pipeline_classifier, mixed_data):
    """One row, a constant column, a category DATA lacks: the model's importances stay the same."""
    train = pd.read_csv(mixed_data["train"])
    variants = {
        "one_row": train.iloc[:1],
        "constant_noise": train.assign(noise=0.5),
        "no_oslo": train[train["city"] != "Oslo"],
    }
    model = joblib.load(pipeline_classifier)
    expected = summed_by_column(model, model.named_steps["model"].feature_importances_)
    for name, frame in variants.items():
        path = tmp_path / f"{name}.csv"
        frame.to_csv(path, index=False)
        document = run_json(xai, [pipeline_classifier, path, "--method", "builtin", "--out", tmp_path / name])
        got = importances(document, "builtin")
        assert got == pytest.approx(expected, abs=1e-12), name
        # Nothing the model reports is lost on the way to the columns.
        assert sum(got.values()) == pytest.approx(model.named_steps["model"].feature_importances_.sum(), abs=1e-12)
        assert not any("builtin" in warning for warning in document["warnings"]), name


def test_builtin_traces_feature_selection_and_target_encoding(xai, tmp_path, mixed_data):
    from conftest import mixed_pipeline
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.feature_selection import SelectKBest
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import TargetEncoder

    train = pd.read_csv(mixed_data["train"])
    forest = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0)
    selected = mixed_pipeline(forest)
    selected.steps.insert(1, ("select", SelectKBest(k=6)))
    encoded = Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        ("numbers", SimpleImputer(strategy="median"), ["age", "income", "noise"]),
                        ("categories", TargetEncoder(), ["color", "city"]),
                    ]
                ),
            ),
            ("model", forest),
        ]
    )
    for name, pipeline in (("selected", selected), ("encoded", encoded)):
        pipeline.fit(train[FEATURES], train["label"])
        path = tmp_path / f"{name}.joblib"
        joblib.dump(pipeline, path)
        document = run_json(xai, [path, mixed_data["train"], "--method", "builtin", "--out", tmp_path / name])
        reported = pipeline[-1].feature_importances_
        if name == "selected":
            # SelectKBest keeps some of the ColumnTransformer's outputs: its support names them.
            inputs = pipeline[0].get_feature_names_out()[pipeline.named_steps["select"].get_support()]
            expected = {feature: 0.0 for feature in FEATURES}
            for input_name, value in zip(inputs, reported):
                column = input_name.split("__", 1)[1]
                owner = column if column in FEATURES else next(f for f in FEATURES if column.startswith(f + "_"))
                expected[owner] += value
        else:
            expected = summed_by_column(pipeline, reported)
        assert importances(document, "builtin") == pytest.approx(expected, abs=1e-12), name


def test_builtin_of_a_pipeline_that_mixes_columns_exits_2_saying_so(xai, tmp_path, numeric_data):
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train = pd.read_csv(numeric_data["train"])
    path = tmp_path / "pca.joblib"
    model = make_pipeline(StandardScaler(), PCA(n_components=3), LogisticRegression())
    joblib.dump(model.fit(train[NUMERIC_FEATURES], train["target"]), path)
    result = xai(["importance", path, numeric_data["train"], "--method", "builtin", "--out", tmp_path])
    assert result.code == 2
    assert "from several CSV columns" in result.stderr
    assert "Traceback" not in result.stderr
    document = run_json(xai, [path, numeric_data["train"], "--out", tmp_path])
    assert "builtin" not in document["methods"]
    assert any(w.startswith("builtin skipped:") and "several CSV columns" in w for w in document["warnings"])


def test_xgboost_in_a_pipeline_sums_total_gain_not_average_gain(xai, tmp_path, mixed_data):
    """gain and cover are averages per split: a column's one-hot inputs add up only as totals."""
    import xgboost
    from conftest import mixed_pipeline

    train = pd.read_csv(mixed_data["train"])
    pipeline = mixed_pipeline(xgboost.XGBClassifier(n_estimators=20, max_depth=3, random_state=0))
    pipeline.fit(train[FEATURES], (train["label"] == "yes").astype(int))
    path = tmp_path / "xgb_pipeline.joblib"
    joblib.dump(pipeline, path)
    document = run_json(xai, [path, mixed_data["train"], "--method", "builtin", "--out", tmp_path])
    builtin = document["methods"]["builtin"]
    booster = pipeline[-1].get_booster()
    n_inputs = len(pipeline[:-1].get_feature_names_out())

    def by_column(kind: str) -> dict[str, float]:
        scores = booster.get_score(importance_type=kind)  # keyed f0, f1... : the Pipeline passes arrays
        return summed_by_column(pipeline, [scores.get(f"f{i}", 0.0) for i in range(n_inputs)])

    assert builtin["kind"] == "xgboost_total_gain"
    assert importances(document, "builtin") == pytest.approx(by_column("total_gain"), rel=1e-9)
    assert builtin["other_kinds"]["xgboost_total_cover"] == pytest.approx(by_column("total_cover"), rel=1e-9)
    assert builtin["other_kinds"]["xgboost_weight"] == pytest.approx(by_column("weight"), rel=1e-9)
    assert "xgboost_gain" not in builtin["other_kinds"] and "xgboost_cover" not in builtin["other_kinds"]


def test_xgboost_gblinear_builtin_is_abs_coefficients_per_class(xai, tmp_path, numeric_data):
    import json

    import xgboost

    train = pd.read_csv(numeric_data["train"])
    for target, n_classes in (("klass", 3), ("target", 1)):
        model = xgboost.XGBClassifier(booster="gblinear", n_estimators=20, random_state=0)
        model.fit(train[NUMERIC_FEATURES], train[target])
        path = tmp_path / f"gblinear_{target}.joblib"
        joblib.dump(model, path)
        document = run_json(xai, [path, numeric_data["train"], "--method", "builtin", "--out", tmp_path / target])
        builtin = document["methods"]["builtin"]
        # The booster's own weights, feature-major, one per class, the biases last.
        raw = json.loads(model.get_booster().save_raw("json"))["learner"]["gradient_booster"]["model"]["weights"]
        weights = np.abs(np.array(raw[: len(NUMERIC_FEATURES) * n_classes]).reshape(len(NUMERIC_FEATURES), n_classes))
        assert builtin["kind"] == "abs_coef"
        assert importances(document, "builtin") == pytest.approx(
            dict(zip(NUMERIC_FEATURES, weights.mean(axis=1))), rel=1e-6
        )
        assert all(entry["importance"] >= 0 for entry in builtin["features"])
        if n_classes > 1:
            assert set(builtin["per_class"]) == {"0", "1", "2"}
            for column, label in enumerate(("0", "1", "2")):
                expected = dict(zip(NUMERIC_FEATURES, weights[:, column]))
                assert builtin["per_class"][label] == pytest.approx(expected, rel=1e-6)
        else:
            assert "per_class" not in builtin


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


@pytest.mark.parametrize("scoring", ["f1", "average_precision", "neg_brier_score"])
def test_binary_scorers_score_the_positive_class_of_text_labels(
    xai, tmp_path, pipeline_classifier, mixed_data, scoring
):
    """scikit-learn's default pos_label=1 is no class of a yes/no model: the positive class is classes_[1]."""
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import average_precision_score, brier_score_loss, f1_score, make_scorer

    scorers = {
        "f1": make_scorer(f1_score, pos_label="yes"),
        "average_precision": make_scorer(
            average_precision_score, response_method=("decision_function", "predict_proba"), pos_label="yes"
        ),
        "neg_brier_score": make_scorer(
            brier_score_loss, response_method="predict_proba", greater_is_better=False, pos_label="yes"
        ),
    }
    args = ["--method", "permutation", "--scoring", scoring, "--repeats", "2", "--seed", "4", "--out", tmp_path]
    document = run_json(xai, [pipeline_classifier, mixed_data["train"], "--target", "label", *args])
    model = joblib.load(pipeline_classifier)
    assert list(model.classes_) == ["no", "yes"]
    train = pd.read_csv(mixed_data["train"])
    expected = permutation_importance(
        model, train[FEATURES], train["label"], scoring=scorers[scoring], n_repeats=2, random_state=4
    )
    permutation = document["methods"]["permutation"]
    assert permutation["pos_label"] == "yes"
    assert permutation["baseline_score"] == pytest.approx(scorers[scoring](model, train[FEATURES], train["label"]))
    by_feature = {entry["feature"]: entry for entry in permutation["features"]}
    for feature, mean, std in zip(FEATURES, expected.importances_mean, expected.importances_std):
        assert by_feature[feature]["importance"] == pytest.approx(mean, abs=1e-12)
        assert by_feature[feature]["std"] == pytest.approx(std, abs=1e-12)


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


def test_mean_abs_shap_of_a_linear_regression_matches_its_closed_form_over_every_row(xai, tmp_path):
    """For a linear model and independent features, phi_j = coef_j (x_j - mean x_j) exactly, so mean |phi_j|
    is |coef_j| * mean|x_j - mean x_j| over DATA: with 400 rows, more than a background sample holds,
    every row must be explained against every row."""
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(11)
    frame = pd.DataFrame(rng.normal(size=(400, 4)), columns=["u", "v", "w", "z"])
    frame = ((frame - frame.mean()) / frame.std()).round(6)
    frame["y"] = 3.0 * frame["u"] - 1.5 * frame["v"] + 0.2 * frame["w"] + rng.normal(0, 0.1, 400)
    data_path, model_path = tmp_path / "standardized.csv", tmp_path / "linear.pkl"
    frame.to_csv(data_path, index=False)
    features = frame.drop(columns="y")
    model = LinearRegression().fit(features, frame["y"])
    joblib.dump(model, model_path)

    document = run_json(xai, [model_path, data_path, "--target", "y", "--method", "shap", "--out", tmp_path])
    shap = document["methods"]["shap"]
    assert shap["kind"] == "mean_abs_linear_shap"
    assert (shap["rows"], shap["background_rows"], shap["sampled"]) == (400, 400, False)
    assert shap["game"]["background"] == "all rows"
    closed_form = np.abs(model.coef_) * (features - features.mean()).abs().mean().to_numpy()
    assert importances(document, "shap") == pytest.approx(dict(zip(features.columns, closed_form)), rel=1e-9)
    assert [entry["feature"] for entry in shap["features"]] == ["u", "v", "w", "z"]


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


def test_correlated_pairs_need_30_rows_before_a_warning(xai, tmp_path):
    """On 5 rows, two columns built independently reach rho 0.9: no warning names them, one says why."""
    from sklearn.linear_model import LinearRegression

    frame = pd.DataFrame({"first": [1.0, 2, 3, 4, 5], "second": [1.0, 3, 2, 4, 5], "y": [0.5, 1.9, 3.2, 3.8, 5.1]})
    data_path, model_path = tmp_path / "five.csv", tmp_path / "five.pkl"
    frame.to_csv(data_path, index=False)
    joblib.dump(LinearRegression().fit(frame[["first", "second"]], frame["y"]), model_path)
    assert frame["first"].corr(frame["second"], method="spearman") == pytest.approx(0.9)

    document = run_json(xai, [model_path, data_path, "--target", "y", "--method", "builtin", "--out", tmp_path])
    assert document["correlated_pairs"] == []
    assert not any("strongly correlated" in warning for warning in document["warnings"])
    assert any(
        warning.startswith("correlated columns not checked: DATA has 5 rows (fewer than 30")
        for warning in document["warnings"]
    )
    assert document["params"]["correlation_min_rows"] == 30


def test_agreement_covers_every_pair_of_methods(xai, tmp_path, forest_classifier, numeric_data):
    from scipy.stats import spearmanr

    document = run_json(xai, [forest_classifier, numeric_data["train"], "--target", "target", "--out", tmp_path])
    assert list(document["methods"]) == ["permutation", "builtin", "shap"]
    pairs = {(pair["a"], pair["b"]): pair for pair in document["agreement"]}
    assert set(pairs) == {("permutation", "builtin"), ("permutation", "shap"), ("builtin", "shap")}
    # 5 features: the top 5 would always overlap 100%, so k = 5 // 2 = 2.
    assert document["params"]["top_k"] == 2
    for (a, b), pair in pairs.items():
        first, second = importances(document, a), importances(document, b)
        rho = spearmanr([first[f] for f in NUMERIC_FEATURES], [second[f] for f in NUMERIC_FEATURES]).statistic
        assert pair["spearman"] == pytest.approx(rho)
        top_a = set(sorted(first, key=first.get, reverse=True)[:2])
        top_b = set(sorted(second, key=second.get, reverse=True)[:2])
        assert pair["top_k"] == 2
        assert pair["top5_overlap"] == len(top_a & top_b) / 2
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
    assert (out / "plots" / "agreement.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 4  # one chart per method and the agreement heat map
    assert "Agreement" in report and "Spearman" in report
    assert 'src="http' not in report
    assert not list(out.rglob("*.tmp"))


def test_sklearn_version_mismatch_is_a_warning(xai, tmp_path, monkeypatch, numeric_data):
    import sklearn.base
    from sklearn.linear_model import LinearRegression

    train = pd.read_csv(numeric_data["train"])
    path = tmp_path / "old.joblib"
    model = LinearRegression().fit(train[NUMERIC_FEATURES], train["value"])
    with monkeypatch.context() as patch:
        patch.setattr(sklearn.base, "__version__", "0.0.1")  # the file is written as an old scikit-learn would
        joblib.dump(model, path)
    args = [path, numeric_data["train"], "--method", "builtin", "--out", tmp_path]
    document = run_json(xai, args)
    assert any("0.0.1" in warning and sklearn.__version__ in warning for warning in document["warnings"])
    result = xai(["importance", *args])
    assert result.code == 0
    assert any(line.startswith("warning:") and "0.0.1" in line for line in result.stdout.splitlines())


def test_charts_show_the_top_20_and_the_rest_in_one_bar_with_human_titles():
    from matplotlib.patches import Rectangle

    from xai_cli.importance_plots import agreement_figure, importance_figure

    long_names = [f"customer_amount_last_{i}_months_rolling_mean_in_local_currency" for i in range(45)]
    values = np.linspace(2.0, 0.1, 45)
    method = {
        "kind": "mean_abs_kernel_shap",
        "what": "mean |kernel_shap value|",
        "features": [{"feature": n, "importance": float(v), "std": None} for n, v in zip(long_names, values)],
        "rows": 200,
        "rows_available": 400,
        "output": "probability",
    }
    figure = importance_figure("shap", method)
    ax = figure.axes[0]
    labels = [label.get_text() for label in ax.get_yticklabels()]
    assert len(labels) == 21 and labels[-1] == "25 other features (their sum)"
    assert len(set(labels)) == 21  # names that differ only in the middle stay apart
    bars = sorted((p for p in ax.patches if isinstance(p, Rectangle)), key=lambda bar: bar.get_y())
    assert bars[0].get_width() == pytest.approx(values[20:].sum())  # the lowest bar: the other 25, summed
    texts = [figure._suptitle.get_text(), ax.get_title(loc="left"), ax.get_xlabel()]
    assert texts[0] == "Mean |SHAP| importance"
    assert not any("mean_abs_" in text or "kernel_shap" in text for text in texts)
    short = dict(method, features=[dict(entry, feature=f"x{i}") for i, entry in enumerate(method["features"])])
    assert figure.get_figwidth() > importance_figure("shap", short).get_figwidth() + 2  # sized to the labels

    document = {
        "methods": {"permutation": {}, "builtin": {}, "shap": {}},
        "agreement": [
            {"a": "permutation", "b": "builtin", "spearman": 0.49, "top5_overlap": 0.6, "top_k": 5},
            {"a": "permutation", "b": "shap", "spearman": -0.31, "top5_overlap": 0.4, "top_k": 5},
            {"a": "builtin", "b": "shap", "spearman": None, "top5_overlap": 1.0, "top_k": 5},
        ],
    }
    cells = [text.get_text() for text in agreement_figure(document).axes[0].texts]
    assert cells.count("+0.49") == 2 and cells.count("\u22120.31") == 2 and cells.count("n/a") == 2
    assert cells.count("top-5: 60%") == 2


def test_terminal_table_reads_at_80_columns(xai, tmp_path, monkeypatch, numeric_data):
    from sklearn.linear_model import LinearRegression

    monkeypatch.setenv("COLUMNS", "80")
    long_name = "customer_transaction_amount_over_the_last_twelve_months_in_local_currency"
    train = pd.read_csv(numeric_data["train"]).rename(columns={"a": long_name})
    features = [long_name, *NUMERIC_FEATURES[1:]]
    data_path, model_path = tmp_path / "long.csv", tmp_path / "long.pkl"
    train.to_csv(data_path, index=False)
    joblib.dump(LinearRegression().fit(train[features], train["value"]), model_path)
    args = [model_path, data_path, "--target", "value", "--out", tmp_path]
    result = xai(["importance", *args])
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    header = next(line for line in lines if "Permutation" in line)
    assert "Built-in" in header and "Mean |SHAP|" in header
    document = run_json(xai, args)
    for entry in document["methods"]["permutation"]["features"]:
        assert f"{entry['importance']:.4g} ± {entry['std']:.2g}" in result.stdout  # never wrapped
    # The long name is cut in the middle, on one line, and the numbers in its row stay whole.
    row = next(line for line in lines if "customer_transact" in line)
    assert "…" in row and "currency" in row


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
