"""``xai explain`` from the outside: real models, the real command, numbers against independent truth."""

from __future__ import annotations

import csv
import json
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import FEATURES, NUMERIC_FEATURES, mixed_frame, run_xai_process
from shapley_truth import brute_force_shapley


def attributions_of(explanation: dict) -> dict[str, float]:
    return {a["feature"]: a["attribution"] for a in explanation["attributions"]}


def assert_matches_truth(document: dict, truth_by_row: dict[int, np.ndarray], labels, features, tolerance):
    """Every explanation equals the brute-force Shapley values of its row and class."""
    checked = 0
    for explanation in document["explanations"]:
        column = labels.index(explanation["class"]) if explanation["class"] is not None else 0
        expected = truth_by_row[explanation["row"]][:, column]
        got = attributions_of(explanation)
        for feature, value in zip(features, expected):
            assert got[feature] == pytest.approx(value, abs=tolerance), (explanation["row"], feature)
        checked += 1
    assert checked == len(document["explanations"]) > 0


@pytest.fixture(scope="module")
def small_background(workdir, mixed_data):
    """60 rows: fewer than xai's sampling cap, so the game's background is known exactly."""
    path = workdir / "background60.csv"
    pd.read_csv(mixed_data["train"]).iloc[:60].to_csv(path, index=False)
    return path


def test_pipeline_kernel_shap_is_exact_shapley_of_original_columns(
    xai, tmp_path, pipeline_classifier, mixed_data, small_background
):
    result = xai(
        [
            "explain",
            pipeline_classifier,
            mixed_data["rows"],
            "--background",
            small_background,
            "--id-col",
            "name",
            "--target",
            "label",
            "--class",
            "all",
            "--out",
            tmp_path,
            "--json",
        ]
    )
    assert result.code == 0, result.stderr
    document = result.json()
    model = joblib.load(pipeline_classifier)
    rows = pd.read_csv(mixed_data["rows"])[FEATURES]
    background = pd.read_csv(small_background)[FEATURES]
    truth = {r: brute_force_shapley(model.predict_proba, rows.iloc[[r]], background) for r in range(len(rows))}
    assert document["model"]["output"] == "probability"
    assert {e["method"] for e in document["explanations"]} == {"kernel_shap"}
    assert all(e["quality"]["exact"] for e in document["explanations"])
    assert len(document["explanations"]) == len(rows) * 2
    assert_matches_truth(document, truth, ["no", "yes"], FEATURES, 1e-9)
    first = document["explanations"][0]
    assert first["id"] == "person-0"
    assert first["base_value"] + sum(attributions_of(first).values()) == pytest.approx(first["prediction"], abs=1e-9)


def test_forest_tree_shap_is_exact_in_probability_space(xai, tmp_path, forest_classifier, numeric_data, workdir):
    background_path = workdir / "numeric_bg40.csv"
    pd.read_csv(numeric_data["train"]).iloc[50:90].to_csv(background_path, index=False)
    result = xai(
        [
            "explain",
            forest_classifier,
            numeric_data["rows"],
            "--background",
            background_path,
            "--target",
            "target",
            "--out",
            tmp_path,
            "--json",
        ]
    )
    assert result.code == 0, result.stderr
    document = result.json()
    assert {e["method"] for e in document["explanations"]} == {"tree_shap"}
    assert document["model"]["output"] == "probability"
    assert document["params"]["game"] == {"kind": "interventional", "background_rows": 40, "background": "all rows"}
    assert document["params"]["receipts"] == {"tree_shap": {"explanations": 5, "exact": 5, "budget_exhausted": 0}}
    model = joblib.load(forest_classifier)
    rows = pd.read_csv(numeric_data["rows"])[NUMERIC_FEATURES]
    background = pd.read_csv(background_path)[NUMERIC_FEATURES]
    truth = {r: brute_force_shapley(model.predict_proba, rows.iloc[[r]], background) for r in range(len(rows))}
    assert_matches_truth(document, truth, ["0", "1"], NUMERIC_FEATURES, 1e-9)


def test_boosted_tree_defaults_to_exact_raw_margin(xai, tmp_path, boosted_classifier, numeric_data, workdir):
    background_path = workdir / "numeric_bg30.csv"
    pd.read_csv(numeric_data["train"]).iloc[100:130].to_csv(background_path, index=False)
    result = xai(
        [
            "explain",
            boosted_classifier,
            numeric_data["rows"],
            "--background",
            background_path,
            "--out",
            tmp_path,
            "--json",
            "--target",
            "target",
        ]
    )
    assert result.code == 0, result.stderr
    document = result.json()
    assert document["model"]["output"] == "raw"
    assert {e["method"] for e in document["explanations"]} == {"tree_shap"}
    model = joblib.load(boosted_classifier)
    rows = pd.read_csv(numeric_data["rows"])[NUMERIC_FEATURES]
    background = pd.read_csv(background_path)[NUMERIC_FEATURES]
    margin = lambda frame: model.decision_function(frame)  # noqa: E731
    truth = {r: brute_force_shapley(margin, rows.iloc[[r]], background) for r in range(len(rows))}
    spread = np.ptp(model.decision_function(background))
    assert_matches_truth(document, truth, ["1"], NUMERIC_FEATURES, 1e-9 * max(1.0, spread))


def test_boosted_tree_asked_for_probability_uses_kernel_shap_or_refuses_tree(
    xai, tmp_path, boosted_classifier, numeric_data
):
    auto = xai(
        [
            "explain",
            boosted_classifier,
            numeric_data["train"],
            "--target",
            "target",
            "--output",
            "probability",
            "--out",
            tmp_path,
            "--json",
            "--max-plots",
            "0",
        ]
    )
    assert auto.code == 0, auto.stderr
    assert {e["method"] for e in auto.json()["explanations"]} == {"kernel_shap"}
    tree = xai(
        [
            "explain",
            boosted_classifier,
            numeric_data["rows"],
            "--target",
            "target",
            "--output",
            "probability",
            "--method",
            "tree",
            "--out",
            tmp_path,
        ]
    )
    assert tree.code == 2
    assert "raw margin" in tree.stderr and "Traceback" not in tree.stderr


def test_linear_pipeline_linear_shap_matches_closed_form_and_brute_force(
    xai, tmp_path, pipeline_regressor, mixed_data, small_background
):
    result = xai(
        [
            "explain",
            pipeline_regressor,
            mixed_data["rows"],
            "--background",
            small_background,
            "--target",
            "amount",
            "--id-col",
            "name",
            "--out",
            tmp_path,
            "--json",
        ]
    )
    assert result.code == 0, result.stderr
    document = result.json()
    assert {e["method"] for e in document["explanations"]} == {"linear_shap"}
    assert all(e["class"] is None for e in document["explanations"])
    model = joblib.load(pipeline_regressor)
    rows = pd.read_csv(mixed_data["rows"])[FEATURES]
    background = pd.read_csv(small_background)[FEATURES]
    truth = {r: brute_force_shapley(model.predict, rows.iloc[[r]], background) for r in range(len(rows))}
    assert_matches_truth(document, truth, [None], FEATURES, 1e-9 * max(1.0, np.ptp(model.predict(background))))
    # Closed form for a numeric column: coef * (scaled(x) - mean(scaled(background))).
    scaled = model[:-1].transform(rows)
    scaled_background = model[:-1].transform(background)
    age_index = list(model[:-1].get_feature_names_out()).index("numbers__age")
    expected_age = model[-1].coef_[age_index] * (scaled[0, age_index] - scaled_background[:, age_index].mean())
    assert attributions_of(document["explanations"][0])["age"] == pytest.approx(expected_age, abs=1e-9)


def test_pipeline_with_passthrough_columns_gets_exact_linear_shap(xai, tmp_path, workdir):
    """A fitted ColumnTransformer stores "passthrough" as an identity FunctionTransformer: still
    column by column, so auto picks the closed form: phi_j = coef_j * (x_j - mean background x_j)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(120, 3)), columns=["a", "b", "c"])
    model = make_pipeline(
        ColumnTransformer([("scaled", StandardScaler(), ["a"])], remainder="passthrough"), LinearRegression()
    ).fit(frame, 2 * frame.a - frame.b + 0.5 * frame.c)
    model_path, rows_path, background_path = (
        workdir / "passthrough.joblib",
        workdir / "pt_rows.csv",
        workdir / "pt_bg.csv",
    )
    joblib.dump(model, model_path)
    frame.iloc[:3].to_csv(rows_path, index=False)
    frame.iloc[20:60].to_csv(background_path, index=False)
    result = xai(["explain", model_path, rows_path, "--background", background_path, "--out", tmp_path, "--json"])
    assert result.code == 0, result.stderr
    document = result.json()
    assert {e["method"] for e in document["explanations"]} == {"linear_shap"}
    background = frame.iloc[20:60]
    slopes = {"a": 2.0, "b": -1.0, "c": 0.5}
    for explanation in document["explanations"]:
        row = frame.iloc[explanation["row"]]
        for feature, slope in slopes.items():
            expected = slope * (row[feature] - background[feature].mean())
            assert attributions_of(explanation)[feature] == pytest.approx(expected, abs=1e-9)


def test_linear_classifier_raw_margin_is_linear_shap(xai, tmp_path, pipeline_logistic, mixed_data, small_background):
    result = xai(
        [
            "explain",
            pipeline_logistic,
            mixed_data["rows"],
            "--background",
            small_background,
            "--output",
            "raw",
            "--out",
            tmp_path,
            "--json",
            "--target",
            "label",
            "--id-col",
            "name",
        ]
    )
    assert result.code == 0, result.stderr
    document = result.json()
    assert {e["method"] for e in document["explanations"]} == {"linear_shap"}
    model = joblib.load(pipeline_logistic)
    rows = pd.read_csv(mixed_data["rows"])[FEATURES]
    background = pd.read_csv(small_background)[FEATURES]
    truth = {r: brute_force_shapley(model.decision_function, rows.iloc[[r]], background) for r in range(len(rows))}
    assert_matches_truth(document, truth, ["yes"], FEATURES, 1e-9)


def test_xgboost_multiclass_tree_shap_matches_brute_force_margin(xai, tmp_path, xgb_multiclass, numeric_data, workdir):
    background_path = workdir / "numeric_bg25.csv"
    pd.read_csv(numeric_data["train"]).iloc[200:225].to_csv(background_path, index=False)
    result = xai(
        [
            "explain",
            xgb_multiclass,
            numeric_data["rows"],
            "--background",
            background_path,
            "--class",
            "all",
            "--out",
            tmp_path,
            "--json",
        ]
    )
    assert result.code == 0, result.stderr
    document = result.json()
    assert document["model"]["output"] == "raw"
    assert any("columns not used" in w for w in document["warnings"])  # target, value, klass are extra
    model = joblib.load(xgb_multiclass)
    rows = pd.read_csv(numeric_data["rows"])[NUMERIC_FEATURES]
    background = pd.read_csv(background_path)[NUMERIC_FEATURES]
    margin = lambda frame: model.predict(frame, output_margin=True)  # noqa: E731
    truth = {r: brute_force_shapley(margin, rows.iloc[[r]], background) for r in range(len(rows))}
    assert_matches_truth(document, truth, ["0", "1", "2"], NUMERIC_FEATURES, 1e-5)


def test_interventional_tree_shap_is_exact_to_1e9_with_missing_values(
    xai, tmp_path, lgbm_regressor, numeric_data, workdir
):
    """shap's interventional routine works in float32 (about 1e-8 off); xai's must be exact in
    float64, and send a missing value down the tree's default branch as the model does."""
    rows = pd.read_csv(numeric_data["rows"])
    rows.loc[1, NUMERIC_FEATURES[0]] = np.nan
    rows_path = workdir / "rows_with_gap.csv"
    rows.to_csv(rows_path, index=False)
    background = pd.read_csv(numeric_data["train"]).iloc[-30:].copy()
    background.loc[background.index[:4], NUMERIC_FEATURES[1]] = np.nan
    background_path = workdir / "numeric_bg30_gaps.csv"
    background.to_csv(background_path, index=False)
    result = xai(["explain", lgbm_regressor, rows_path, "--background", background_path, "--out", tmp_path, "--json"])
    assert result.code == 0, result.stderr
    document = result.json()
    assert document["params"]["game"] == {"kind": "interventional", "background_rows": 30, "background": "all rows"}
    assert all(e["method"] == "tree_shap" and e["quality"]["exact"] for e in document["explanations"])
    model = joblib.load(lgbm_regressor)
    features, background = rows[NUMERIC_FEATURES], background[NUMERIC_FEATURES]
    truth = {r: brute_force_shapley(model.predict, features.iloc[[r]], background) for r in range(len(features))}
    spread = np.ptp(model.predict(background))
    assert_matches_truth(document, truth, [None], NUMERIC_FEATURES, 1e-9 * max(1.0, spread))


def test_lightgbm_path_dependent_tree_shap_agrees_with_native_contributions(
    xai, tmp_path, lgbm_regressor, numeric_data
):
    # Five rows and no --background: Tree SHAP uses the trees' own statistics (path-dependent).
    result = xai(["explain", lgbm_regressor, numeric_data["rows"], "--out", tmp_path, "--json"])
    assert result.code == 0, result.stderr
    document = result.json()
    assert document["params"]["game"]["kind"] == "path_dependent"
    model = joblib.load(lgbm_regressor)
    rows = pd.read_csv(numeric_data["rows"])[NUMERIC_FEATURES]
    native = model.predict(rows, pred_contrib=True)
    for explanation in document["explanations"]:
        got = attributions_of(explanation)
        expected = dict(zip(NUMERIC_FEATURES, native[explanation["row"], :-1]))
        for feature in NUMERIC_FEATURES:
            assert got[feature] == pytest.approx(expected[feature], abs=1e-9)
        assert explanation["quality"]["native_max_difference"] < 1e-6


def test_feature_the_model_ignores_gets_zero(xai, tmp_path, workdir, numeric_data):
    from sklearn.linear_model import LinearRegression

    train = pd.read_csv(numeric_data["train"])
    linear = LinearRegression().fit(train[NUMERIC_FEATURES], train["value"])
    linear.coef_[NUMERIC_FEATURES.index("ignored")] = 0.0
    path = workdir / "ignores.pkl"
    with open(path, "wb") as handle:
        pickle.dump(linear, handle, protocol=5)
    result = xai(
        [
            "explain",
            path,
            numeric_data["train"],
            "--method",
            "kernel",
            "--max-plots",
            "0",
            "--out",
            tmp_path,
            "--json",
            "--target",
            "value",
        ]
    )
    assert result.code == 0, result.stderr
    for explanation in result.json()["explanations"][:20]:
        assert abs(attributions_of(explanation)["ignored"]) < 1e-9
        assert abs(attributions_of(explanation)["a"]) > 1e-3


def test_sampled_kernel_shap_reports_standard_errors_and_stays_close(xai, tmp_path, workdir):
    from sklearn.ensemble import GradientBoostingRegressor

    rng = np.random.default_rng(5)
    columns = [f"f{i}" for i in range(9)]
    frame = pd.DataFrame(rng.normal(size=(120, 9)), columns=columns).round(4)
    frame["y"] = frame["f0"] * 2 + frame["f1"] * frame["f2"] + np.sin(frame["f3"])
    model = GradientBoostingRegressor(n_estimators=30, max_depth=3, random_state=0).fit(frame[columns], frame["y"])
    model_path, data_path, background_path = workdir / "gbr9.pkl", workdir / "nine.csv", workdir / "nine_bg.csv"
    joblib.dump(model, model_path)
    frame.iloc[:3].to_csv(data_path, index=False)
    frame.iloc[40:70].to_csv(background_path, index=False)
    result = xai(
        [
            "explain",
            model_path,
            data_path,
            "--method",
            "kernel",
            "--nsamples",
            "200",
            "--background",
            background_path,
            "--target",
            "y",
            "--out",
            tmp_path,
            "--json",
        ]
    )
    assert result.code == 0, result.stderr
    document = result.json()
    background = frame.iloc[40:70][columns].reset_index(drop=True)
    spread = np.ptp(model.predict(frame[columns]))
    for explanation in document["explanations"]:
        assert explanation["quality"]["exact"] is False
        assert all("std_error" in a for a in explanation["attributions"])
        truth = brute_force_shapley(model.predict, frame.iloc[[explanation["row"]]][columns], background)[:, 0]
        got = attributions_of(explanation)
        errors = [abs(got[c] - t) for c, t in zip(columns, truth)]
        assert max(errors) < 0.05 * spread
        assert abs(explanation["base_value"] + sum(got.values()) - explanation["prediction"]) < 1e-9


def test_lime_gives_rules_fit_and_categorical_rules(xai, tmp_path, pipeline_classifier, mixed_data):
    result = xai(
        [
            "explain",
            pipeline_classifier,
            mixed_data["rows"],
            "--background",
            mixed_data["train"],
            "--method",
            "lime",
            "--lime-samples",
            "500",
            "--class",
            "all",
            "--out",
            tmp_path,
            "--json",
            "--id-col",
            "name",
            "--target",
            "label",
        ]
    )
    assert result.code == 0, result.stderr
    document = result.json()
    assert len(document["explanations"]) == 12
    for explanation in document["explanations"]:
        assert explanation["method"] == "lime"
        assert 0.0 <= explanation["quality"]["r2"] <= 1.0
        assert isinstance(explanation["quality"]["local_prediction"], float)
        assert all(a["rule"] for a in explanation["attributions"])
        color = next(a for a in explanation["attributions"] if a["feature"] == "city")
        assert color["rule"] == f"city={color['value']}"


def test_same_seed_same_numbers_and_another_seed_other_numbers(xai, tmp_path, pipeline_classifier, mixed_data):
    # Across --n-jobs and backends: tests/test_scale.py.
    args = [
        "explain",
        pipeline_classifier,
        mixed_data["few"],
        "--method",
        "all",
        "--nsamples",
        "24",
        "--lime-samples",
        "300",
        "--max-plots",
        "0",
        "--json",
        "--target",
        "label",
        "--seed",
        "7",
    ]
    one = xai([*args, "--out", tmp_path / "one"])
    again = xai([*args, "--out", tmp_path / "again"])
    assert one.code == again.code == 0, one.stderr
    assert one.json()["explanations"] == again.json()["explanations"]
    other_seed = xai([*args[:-1], "8", "--out", tmp_path / "other"])
    assert other_seed.json()["explanations"] != one.json()["explanations"]


def test_outputs_follow_the_contract(xai, tmp_path, pipeline_classifier, mixed_data):
    result = xai(
        [
            "explain",
            pipeline_classifier,
            mixed_data["rows"],
            "--background",
            mixed_data["train"],
            "--method",
            "all",
            "--lime-samples",
            "300",
            "--id-col",
            "name",
            "--target",
            "label",
            "--out",
            tmp_path,
            "--max-plots",
            "2",
            "--quiet",
        ]
    )
    assert result.code == 0, result.stderr
    assert result.stdout == ""
    document = json.loads((tmp_path / "attributions.json").read_text())
    for key in (
        "schema_version",
        "kind",
        "tool",
        "created_at",
        "model",
        "data",
        "background",
        "versions",
        "params",
        "explanations",
        "warnings",
    ):
        assert key in document
    assert document["schema_version"] == 1 and document["kind"] == "explanation"
    assert document["model"]["classes"] == ["no", "yes"]
    assert document["data"]["features"] == FEATURES and document["data"]["rows"] == 6
    assert len(document["model"]["sha256"]) == 64
    assert document["background"]["rows"] == 100 and document["background"]["rows_available"] == 200
    methods = {e["method"] for e in document["explanations"]}
    assert methods == {"kernel_shap", "lime"}
    assert any("tree_shap skipped" in w for w in document["warnings"])
    for explanation in document["explanations"]:
        magnitudes = [abs(a["attribution"]) for a in explanation["attributions"]]
        assert magnitudes == sorted(magnitudes, reverse=True)
        assert [a["feature"] for a in explanation["attributions"]].count("age") == 1
    with open(tmp_path / "attributions.csv", newline="") as handle:
        lines = list(csv.reader(handle))
    assert lines[0] == ["row", "id", "method", "class", "feature", "value", "attribution"]
    assert len(lines) - 1 == 6 * 2 * len(FEATURES)  # rows x methods x features, class "yes" only
    rows = pd.read_csv(mixed_data["rows"])
    missing_row = (
        int(rows.index[rows["age"].isna() | rows["color"].isna()][0])
        if (rows["age"].isna() | rows["color"].isna()).any()
        else None
    )
    if missing_row is not None:
        cells = [line for line in lines[1:] if line[0] == str(missing_row) and line[4] in ("age", "color")]
        assert any(cell[5] == "" for cell in cells)
    assert (tmp_path / "plots" / "summary_bar.png").stat().st_size > 1000
    force_plots = sorted(p.name for p in (tmp_path / "plots").glob("force_*.png"))
    # The first method keeps the contract's name; the other method's plots add its name.
    assert force_plots == [
        "force_person-0.png",
        "force_person-0_lime.png",
        "force_person-1.png",
        "force_person-1_lime.png",
    ]
    assert (tmp_path / "plots" / "force_person-0.html").exists()
    report = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in report and "person-5" in report


def test_document_validates_against_the_shipped_schema_with_quality_receipts(
    xai, tmp_path, pipeline_classifier, mixed_data
):
    import importlib.resources

    import jsonschema

    result = xai(
        [
            "explain",
            pipeline_classifier,
            mixed_data["rows"],
            "--background",
            mixed_data["train"],
            "--method",
            "all",
            "--nsamples",
            "16",
            "--lime-samples",
            "300",
            "--id-col",
            "name",
            "--out",
            tmp_path,
            "--json",
            "--max-plots",
            "0",
        ]
    )
    assert result.code == 0, result.stderr
    document = result.json()
    schema = json.loads(importlib.resources.files("xai_cli").joinpath("schemas/attributions.schema.json").read_text())
    jsonschema.validate(document, schema)
    for explanation in document["explanations"]:
        deletion = explanation["quality"]["deletion"]
        assert set(deletion) == {"top_1", "random_1", "top_3", "random_3", "faithful"}
        (agreement,) = explanation["quality"]["agreement"]
        assert agreement["with"] == ({"kernel_shap", "lime"} - {explanation["method"]}).pop()
    sampled = [e for e in document["explanations"] if e["method"] == "kernel_shap"]
    assert all(e["quality"]["exact"] is False and e["quality"]["max_std_error"] >= 0 for e in sampled)


def test_deletion_check_prefers_the_attributed_feature(xai, tmp_path, workdir, numeric_data):
    from sklearn.linear_model import LinearRegression

    train = pd.read_csv(numeric_data["train"])
    model = LinearRegression().fit(train[NUMERIC_FEATURES], train["value"])
    model.coef_[:] = [5.0, 0.0, 0.0, 0.0, 0.0]  # only "a" matters
    path = workdir / "only_a.pkl"
    joblib.dump(model, path)
    result = xai(
        ["explain", path, numeric_data["train"], "--target", "value", "--out", tmp_path, "--json", "--max-plots", "0"]
    )
    assert result.code == 0, result.stderr
    for explanation in result.json()["explanations"][:30]:
        deletion = explanation["quality"]["deletion"]
        assert explanation["attributions"][0]["feature"] == "a"
        assert deletion["faithful"] is True
        assert deletion["top_1"] >= deletion["random_1"]


def test_jsonl_prints_one_explanation_per_line(xai, tmp_path, pipeline_classifier, mixed_data):
    result = xai(
        [
            "explain",
            pipeline_classifier,
            mixed_data["train"],
            "--jsonl",
            "--target",
            "label",
            "--max-plots",
            "0",
            "--out",
            tmp_path,
        ]
    )
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 200
    assert [json.loads(line)["row"] for line in lines] == list(range(200))


def test_stdin_dash_reads_csv_with_bom_and_crlf(tmp_path, pipeline_classifier, mixed_data):
    text = mixed_data["train"].read_text().replace("\n", "\r\n")
    result = run_xai_process(
        ["explain", pipeline_classifier, "-", "--json", "--target", "label", "--max-plots", "1", "--out", tmp_path],
        stdin=b"\xef\xbb\xbf" + text.encode(),
    )
    assert result.returncode == 0, result.stderr.decode()
    document = json.loads(result.stdout)
    assert document["data"]["path"] == "-" and document["data"]["rows"] == 200


def test_model_without_feature_names_takes_columns_in_order(xai, tmp_path, workdir, numeric_data):
    from sklearn.tree import DecisionTreeRegressor

    train = pd.read_csv(numeric_data["train"])
    model = DecisionTreeRegressor(max_depth=3, random_state=0).fit(train[NUMERIC_FEATURES].to_numpy(), train["value"])
    path = workdir / "nameless.pkl"
    joblib.dump(model, path)
    data = workdir / "nameless_rows.csv"
    train[NUMERIC_FEATURES + ["value"]].iloc[:4].to_csv(data, index=False)
    result = xai(["explain", path, data, "--target", "value", "--out", tmp_path, "--json"])
    assert result.code == 0, result.stderr
    document = result.json()
    # Taken in order, and called by DATA's header in every output.
    assert document["data"]["features"] == NUMERIC_FEATURES
    assert {a["feature"] for a in document["explanations"][0]["attributions"]} == set(NUMERIC_FEATURES)
    expected = model.predict(train[NUMERIC_FEATURES].iloc[:4].to_numpy())
    assert [e["prediction"] for e in document["explanations"]] == pytest.approx(expected, abs=1e-12)
    too_many = xai(["explain", path, numeric_data["rows"], "--out", tmp_path])
    assert too_many.code == 2 and "unnamed columns" in too_many.stderr


def test_lightgbm_native_categories_get_training_categories_back(xai, tmp_path, workdir):
    import lightgbm

    rng = np.random.default_rng(9)
    frame = pd.DataFrame({"size": rng.normal(size=300).round(3), "shade": rng.choice(["dark", "light", "mid"], 300)})
    frame["y"] = frame["size"] + (frame["shade"] == "dark") * 2.0
    training = frame.assign(shade=frame["shade"].astype(pd.CategoricalDtype(["dark", "light", "mid"])))
    model = lightgbm.LGBMRegressor(n_estimators=20, num_leaves=6, random_state=0, verbose=-1)
    model.fit(training[["size", "shade"]], training["y"])
    path = workdir / "lgbm_cat.joblib"
    joblib.dump(model, path)
    rows = pd.DataFrame({"size": [0.1, 0.2, 0.3], "shade": ["mid", "dark", "purple"]})
    data = workdir / "lgbm_cat_rows.csv"
    rows.to_csv(data, index=False)
    background = workdir / "lgbm_cat_bg.csv"
    frame.iloc[:40].to_csv(background, index=False)
    result = xai(["explain", path, data, "--background", background, "--out", tmp_path, "--json"])
    assert result.code == 0, result.stderr
    document = result.json()
    assert any("purple" in w for w in document["warnings"])
    predicted = model.predict(
        rows.assign(shade=pd.Categorical(["mid", "dark", None], categories=["dark", "light", "mid"]))
    )
    got = [e["prediction"] for e in document["explanations"]]
    assert got == pytest.approx(list(predicted), abs=1e-9)


@pytest.mark.parametrize("save", ["pickle", "joblib", "joblib-zlib", "joblib-lzma", "skops"])
def test_every_file_format_loads(xai, tmp_path, workdir, numeric_data, save):
    from sklearn.linear_model import LinearRegression

    train = pd.read_csv(numeric_data["train"])
    model = LinearRegression().fit(train[NUMERIC_FEATURES], train["value"])
    path = workdir / f"format_{save}.{'skops' if save == 'skops' else 'pkl'}"
    if save == "pickle":
        with open(path, "wb") as handle:
            pickle.dump(model, handle)
    elif save == "skops":
        import skops.io

        skops.io.dump(model, path)
    else:
        joblib.dump(model, path, compress={"joblib": 0, "joblib-zlib": ("zlib", 3), "joblib-lzma": ("lzma", 3)}[save])
    result = xai(
        ["explain", path, numeric_data["train"], "--target", "value", "--max-plots", "0", "--out", tmp_path, "--json"]
    )
    assert result.code == 0, result.stderr
    document = result.json()
    assert document["explanations"][0]["method"] == "linear_shap"
    assert document["explanations"][0]["prediction"] == pytest.approx(
        model.predict(train[NUMERIC_FEATURES].iloc[:1])[0]
    )


def test_config_file_sets_defaults_and_the_command_line_wins(xai, tmp_path, pipeline_classifier, mixed_data):
    config = tmp_path / "xai.toml"
    config.write_text('[explain]\nmethod = "lime"\nlime-samples = 200\nclass = "no"\ntarget = "label"\nmax_plots = 0\n')
    from_file = xai(
        ["explain", pipeline_classifier, mixed_data["few"], "--config", config, "--out", tmp_path, "--json"]
    )
    assert from_file.code == 0, from_file.stderr
    document = from_file.json()
    assert document["params"]["method"] == "lime" and document["params"]["lime_samples"] == 200
    assert {e["class"] for e in document["explanations"]} == {"no"}
    overridden = xai(
        [
            "explain",
            pipeline_classifier,
            mixed_data["few"],
            "--config",
            config,
            "--method",
            "kernel",
            "--out",
            tmp_path,
            "--json",
        ]
    )
    assert overridden.json()["params"]["method"] == "kernel"
    config.write_text("[explain]\nbogus = 1\n")
    bad = xai(["explain", pipeline_classifier, mixed_data["few"], "--config", config, "--out", tmp_path])
    assert bad.code == 2 and "bogus" in bad.stderr


def test_default_config_is_read_from_the_working_directory(xai, tmp_path, pipeline_classifier, mixed_data):
    (tmp_path / "xai.toml").write_text(
        '[explain]\nmethod = "lime"\nlime_samples = 100\ntarget = "label"\nmax_plots = 0\n'
    )
    result = xai(["explain", pipeline_classifier, mixed_data["few"], "--json"], cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert result.json()["params"]["method"] == "lime"
    assert (tmp_path / "xai-output" / "attributions.json").exists()


class _TouchesAMarker:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("key", ["trust = true", 'allow = ["posix"]'])
def test_a_config_found_in_the_folder_cannot_switch_off_the_scan(xai, tmp_path, pipeline_classifier, mixed_data, key):
    """A downloaded folder can ship model.pkl beside an xai.toml that trusts it: the ./xai.toml xai
    finds by itself may not set trust or allow (exit 2, nothing loaded); a config the user names may."""
    marker = tmp_path / "MARKER"
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(_TouchesAMarker(marker)))
    (tmp_path / "xai.toml").write_text(f"[explain]\n{key}\n")
    result = xai(["explain", "model.pkl", mixed_data["rows"]], cwd=tmp_path)
    assert result.code == 2, result.stderr
    assert "xai.toml" in result.stderr and "--config" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()
    if key.startswith("trust"):
        named = xai(
            ["explain", pipeline_classifier, mixed_data["rows"], "--background", mixed_data["train"],
             "--config", "xai.toml", "--max-plots", "0", "--json"],
            cwd=tmp_path,
        )  # fmt: skip
        assert named.code == 0, named.stderr


# ---------------------------------------------------------------- bad input: exit codes and messages


def test_missing_column_exits_2_and_names_it(xai, tmp_path, pipeline_classifier, mixed_data):
    data = tmp_path / "missing.csv"
    pd.read_csv(mixed_data["rows"]).drop(columns=["city", "income"]).to_csv(data, index=False)
    result = xai(["explain", pipeline_classifier, data, "--background", mixed_data["train"], "--out", tmp_path / "out"])
    assert result.code == 2
    assert "income" in result.stderr and "city" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "attributions.json").exists()


def test_few_rows_without_background_exits_2_naming_the_option(xai, tmp_path, pipeline_classifier, mixed_data):
    result = xai(["explain", pipeline_classifier, mixed_data["rows"], "--out", tmp_path])
    assert result.code == 2 and "--background" in result.stderr


def test_non_numeric_cell_exits_2_naming_the_column(xai, tmp_path, pipeline_classifier, mixed_data):
    data = tmp_path / "bad.csv"
    frame = pd.read_csv(mixed_data["rows"])
    frame["income"] = frame["income"].astype(object)
    frame.loc[2, "income"] = "lots"
    frame.to_csv(data, index=False)
    result = xai(["explain", pipeline_classifier, data, "--background", mixed_data["train"], "--out", tmp_path])
    assert result.code == 2 and "income" in result.stderr and "lots" in result.stderr


def test_unknown_class_exits_2_listing_the_classes(xai, tmp_path, pipeline_classifier, mixed_data):
    result = xai(["explain", pipeline_classifier, mixed_data["train"], "--class", "maybe", "--out", tmp_path])
    assert result.code == 2 and "maybe" in result.stderr and "yes" in result.stderr


class ExplodingRegressor:
    """A fitted-looking regressor whose predict raises, as a broken user model would."""

    def __init__(self):
        self.feature_names_in_ = np.array(NUMERIC_FEATURES, dtype=object)
        self.n_features_in_ = len(NUMERIC_FEATURES)

    def predict(self, X):
        raise ValueError("boom: this model cannot predict")


def test_model_that_raises_exits_4_with_its_message(xai, tmp_path, workdir, numeric_data):
    path = workdir / "raises.pkl"
    joblib.dump(ExplodingRegressor(), path)
    refused = xai(["explain", path, numeric_data["train"], "--target", "value", "--out", tmp_path])
    assert refused.code == 3 and "ExplodingRegressor" in refused.stderr
    result = xai(["explain", path, numeric_data["train"], "--target", "value", "--out", tmp_path, "--trust"])
    assert result.code == 4, result.stderr
    assert "boom: this model cannot predict" in result.stderr and "Traceback" not in result.stderr


class NanRegressor(ExplodingRegressor):
    """Answers NaN for rows whose first feature is negative, as a broken model might."""

    def predict(self, X):
        values = np.asarray(X, dtype=float)[:, 0]
        return np.where(values < 0, np.nan, values)


class ShortRegressor(ExplodingRegressor):
    """Answers one output fewer than it was asked for."""

    def predict(self, X):
        return np.zeros(max(len(X) - 1, 0))


@pytest.mark.parametrize("model_class, message", [(NanRegressor, "NaN"), (ShortRegressor, "outputs for")])
def test_model_with_unusable_outputs_exits_4(xai, tmp_path, workdir, numeric_data, model_class, message):
    path = workdir / f"{model_class.__name__}.pkl"
    joblib.dump(model_class(), path)
    result = xai(["explain", path, numeric_data["train"], "--target", "value", "--out", tmp_path, "--trust"])
    assert result.code == 4, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_out_that_is_a_file_exits_2(xai, tmp_path, pipeline_classifier, mixed_data):
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    result = xai(["explain", pipeline_classifier, mixed_data["few"], "--target", "label", "--out", blocker / "sub"])
    assert result.code == 2
    assert result.stderr.startswith("error: ") and "unexpected" not in result.stderr


@pytest.mark.parametrize(
    "content, code",
    [(b"", 2), (b"this is not a pickle at all", 2), (b"\x80\x05\x95garbage", 2)],
)
def test_bad_model_files_exit_cleanly(xai, tmp_path, mixed_data, content, code):
    path = tmp_path / "model.pkl"
    path.write_bytes(content)
    result = xai(["explain", path, mixed_data["rows"], "--out", tmp_path])
    assert result.code in (2, 3)
    assert "Traceback" not in result.stderr and result.stderr.startswith("error:")


def test_missing_and_empty_data_files_exit_2(xai, tmp_path, pipeline_classifier):
    missing = xai(["explain", pipeline_classifier, tmp_path / "nope.csv", "--out", tmp_path])
    assert missing.code == 2 and "not found" in missing.stderr
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert xai(["explain", pipeline_classifier, empty, "--out", tmp_path]).code == 2
    semicolons = tmp_path / "semi.csv"
    mixed_frame(5).to_csv(semicolons, sep=";", index=False)
    result = xai(["explain", pipeline_classifier, semicolons, "--out", tmp_path])
    assert result.code == 2 and "comma-separated" in result.stderr


def test_failed_run_keeps_the_previous_good_output(xai, tmp_path, pipeline_classifier, mixed_data):
    good = xai(
        [
            "explain",
            pipeline_classifier,
            mixed_data["train"],
            "--target",
            "label",
            "--max-plots",
            "0",
            "--out",
            tmp_path,
            "--quiet",
        ]
    )
    assert good.code == 0, good.stderr
    before = (tmp_path / "attributions.json").read_bytes()
    csv_before = (tmp_path / "attributions.csv").read_bytes()
    bad = xai(["explain", pipeline_classifier, mixed_data["train"], "--class", "maybe", "--out", tmp_path])
    assert bad.code == 2
    assert (tmp_path / "attributions.json").read_bytes() == before
    assert (tmp_path / "attributions.csv").read_bytes() == csv_before
    assert not list(tmp_path.glob(".*.tmp"))


def test_usage_errors_exit_2(xai, tmp_path, pipeline_classifier, mixed_data):
    assert xai(["explain", pipeline_classifier]).code == 2
    assert xai(["explain", pipeline_classifier, mixed_data["rows"], "--bogus"]).code == 2
    assert xai(["explain", pipeline_classifier, mixed_data["rows"], "--method", "magic"]).code == 2
    assert xai(["explain", pipeline_classifier, mixed_data["rows"], "--nsamples", "-5"]).code == 2


def test_help_and_version_import_nothing_heavy():
    import subprocess
    import sys

    probe = "import xai_cli.cli, sys; print(sorted(m for m in ('shap','sklearn','pandas','matplotlib','lime') if m in sys.modules))"
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert imported == "[]"
    help_text = run_xai_process(["explain", "--help"])
    assert help_text.returncode == 0 and b"Example" in help_text.stdout
    version = run_xai_process(["--version"])
    assert version.returncode == 0 and version.stdout.decode().startswith("xai 0.1.0")


def test_no_traceback_from_a_real_process_on_bad_input(tmp_path, pipeline_classifier):
    result = run_xai_process(["explain", pipeline_classifier, tmp_path / "absent.csv"])
    assert result.returncode == 2
    assert b"Traceback" not in result.stderr and result.stderr.startswith(b"error:")


# ---------------------------------------------------------------- trees the review caught


def _explain_trees(xai, tmp_path, model, rows: pd.DataFrame, background: pd.DataFrame, *extra):
    paths = [tmp_path / name for name in ("model.joblib", "rows.csv", "background.csv")]
    joblib.dump(model, paths[0])
    rows.to_csv(paths[1], index=False)
    background.to_csv(paths[2], index=False)
    result = xai(["explain", *paths[:2], "--background", paths[2], "--out", tmp_path / "out", "--json", *extra])
    assert result.code == 0, result.stderr
    return result.json()


def _tree_frame(seed: int, n: int = 600) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    return frame, frame.a + frame.b * frame.c


def test_hist_gradient_boosting_compares_float64_and_stays_exact(xai, tmp_path):
    """HistGradientBoosting's thresholds are training values compared in float64: casting the
    background (training rows) to float32 sent some down the other branch while claiming exact."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    frame, target = _tree_frame(1)
    model = HistGradientBoostingRegressor(max_iter=15, random_state=0).fit(frame, target)
    rows, background = frame.iloc[:3], frame.iloc[:60]
    document = _explain_trees(xai, tmp_path, model, rows, background)
    truth = {r: brute_force_shapley(model.predict, rows.iloc[[r]], background) for r in range(len(rows))}
    assert all(e["method"] == "tree_shap" and e["quality"]["exact"] for e in document["explanations"])
    spread = np.ptp(model.predict(background))
    assert_matches_truth(document, truth, [None], ["a", "b", "c"], 1e-9 * max(1.0, spread))
    assert document["explanations"][0]["base_value"] == pytest.approx(model.predict(background).mean(), abs=1e-12)


def test_xgboost_missing_sentinel_is_missing_for_tree_shap(xai, tmp_path):
    import xgboost

    frame, target = _tree_frame(2)
    holes = frame.where(np.random.default_rng(5).random(frame.shape) > 0.15, -999.0)
    model = xgboost.XGBRegressor(n_estimators=20, max_depth=3, missing=-999.0).fit(holes, target)
    rows, background = frame.iloc[:3], holes.iloc[:50]
    document = _explain_trees(xai, tmp_path, model, rows, background)
    truth = {r: brute_force_shapley(model.predict, rows.iloc[[r]], background) for r in range(len(rows))}
    spread = float(np.ptp(model.predict(background)))
    assert_matches_truth(document, truth, [None], ["a", "b", "c"], 1e-5 * max(1.0, spread))
    assert document["explanations"][0]["base_value"] == pytest.approx(float(model.predict(background).mean()), abs=1e-5)


def test_xgboost_multiclass_base_values_are_each_class_mean_margin(xai, tmp_path):
    """shap copies XGBoost's first per-class base_score to every class; the base values must still be
    each class's mean margin over the background, so that base + sum(attributions) = prediction."""
    import xgboost

    frame, target = _tree_frame(3)
    model = xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(frame, np.digitize(target, [-1, 1]))
    rows, background = frame.iloc[:2], frame.iloc[:50]
    document = _explain_trees(xai, tmp_path, model, rows, background, "--class", "all")
    mean_margin = model.predict(background, output_margin=True).mean(axis=0)
    for explanation in document["explanations"]:
        assert explanation["base_value"] == pytest.approx(mean_margin[int(explanation["class"])], abs=1e-5)
        assert explanation["quality"]["additivity_gap"] < 1e-5
        assert explanation["quality"]["exact"]


def test_trees_shap_cannot_read_fall_back_to_kernel_shap(xai, tmp_path):
    import xgboost

    frame, target = _tree_frame(4, n=300)
    model = xgboost.XGBRFRegressor(n_estimators=5, max_depth=3).fit(frame, target)
    document = _explain_trees(xai, tmp_path, model, frame.iloc[:2], frame.iloc[:30])
    assert document["params"]["methods"] == ["kernel_shap"]
    assert all(e["quality"]["exact"] for e in document["explanations"])  # 3 columns: every coalition


def test_background_holding_the_id_column_is_not_warned_about_it(xai, tmp_path, pipeline_classifier, mixed_data):
    """A background file exported like DATA carries the --id-col column too: that column is a name
    for rows, not a feature the model ignores, so only truly unused columns are named."""
    background = pd.read_csv(mixed_data["train"]).iloc[:40]
    background.insert(0, "name", [f"train-{i}" for i in range(len(background))])
    background["comment"] = "x"
    path = tmp_path / "background.csv"
    background.to_csv(path, index=False)
    result = xai(
        ["explain", pipeline_classifier, mixed_data["rows"], "--background", path, "--id-col", "name",
         "--target", "label", "--out", tmp_path / "out", "--max-plots", "0", "--json"]
    )  # fmt: skip
    assert result.code == 0, result.stderr
    unused = [w for w in result.json()["warnings"] if w.startswith("--background columns not used")]
    assert unused == ["--background columns not used by the model (ignored): amount, comment"], unused


def test_boosted_trees_inside_a_pipeline_are_explained_in_probability_by_kernel_shap(xai, tmp_path, mixed_data):
    """Raw margin is the default only where exact Tree SHAP explains a boosted model; trees behind
    a Pipeline go to Kernel SHAP, which explains probabilities like every other model."""
    from conftest import mixed_pipeline
    from sklearn.ensemble import HistGradientBoostingClassifier

    train = pd.read_csv(mixed_data["train"])
    model = mixed_pipeline(HistGradientBoostingClassifier(max_iter=20, random_state=0))
    model.fit(train[FEATURES], train["label"])
    path = tmp_path / "hgb_pipeline.joblib"
    joblib.dump(model, path)
    result = xai(["explain", path, mixed_data["rows"], "--background", mixed_data["few"], "--id-col", "name",
                  "--out", tmp_path / "out", "--max-plots", "0", "--json"])  # fmt: skip
    assert result.code == 0, result.stderr
    document = result.json()
    assert document["model"]["output"] == "probability"
    assert {e["method"] for e in document["explanations"]} == {"kernel_shap"}
    rows = pd.read_csv(mixed_data["rows"])
    expected = model.predict_proba(rows[FEATURES])[:, list(model.classes_).index("yes")]
    assert [e["prediction"] for e in document["explanations"]] == pytest.approx(expected, abs=1e-12)


def test_output_probability_for_a_regressor_is_named_as_ignored(xai, tmp_path, pipeline_regressor, mixed_data):
    result = xai(["explain", pipeline_regressor, mixed_data["rows"], "--background", mixed_data["few"],
                  "--output", "probability", "--out", tmp_path, "--max-plots", "0", "--json"])  # fmt: skip
    assert result.code == 0, result.stderr
    document = result.json()
    assert document["model"]["output"] == "raw"
    assert any(w.startswith("--output probability ignored") for w in document["warnings"]), document["warnings"]
