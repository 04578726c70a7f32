"""CSV cells reach the model as written: a text category is never parsed as a number or as missing.

The truth in every test is the model's own ``predict_proba`` (or ``predict``) on the rows as they
were built in memory, with the dtypes the model was trained on: never a CSV read back by pandas.
"""

from __future__ import annotations

import csv

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import FEATURES, mixed_frame, mixed_pipeline, run_cli

# The cities of ``mixed_frame`` as zip codes: leading zeros, and one code that pandas reads as missing.
ZIPS = {"Paris": "00501", "Lima": "02134", "Oslo": "NA", "Pune": "10001"}
FAST = ["--max-plots", "0", "--quiet"]


@pytest.fixture(scope="module")
def zip_model(tmp_path_factory):
    """A Pipeline (imputers, one-hot) + logistic regression whose ``city`` holds zip codes as strings."""
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path_factory.mktemp("zip")
    train = mixed_frame(200, seed=1)
    train["city"] = train["city"].map(ZIPS)
    model = mixed_pipeline(LogisticRegression(max_iter=500)).fit(train[FEATURES], train["label"])
    path = folder / "zip.joblib"
    joblib.dump(model, path)
    background = folder / "train.csv"
    train.to_csv(background, index=False)
    return model, path, background


def rows_with(cities: list[str], **columns) -> pd.DataFrame:
    rows = mixed_frame(len(cities), seed=2).assign(city=cities, **columns)
    rows.insert(0, "name", [f"person-{i}" for i in range(len(rows))])
    return rows


def explain(model_path, rows: pd.DataFrame | str, background, tmp_path, *options) -> dict:
    """``xai explain ... --json`` on ``rows`` (a frame written as a CSV, or the CSV's text)."""
    data = tmp_path / "rows.csv"
    if isinstance(rows, str):
        data.write_text(rows)
    else:
        rows.to_csv(data, index=False)
    result = run_cli(
        ["explain", model_path, data, "--background", background, "--out", tmp_path / "out", "--json", *options]
    )
    assert result.code == 0, result.stderr
    return result.json()


def shown(document: dict, feature: str) -> list:
    """The ``value`` of ``feature`` in each explanation, in row order."""
    return [next(a["value"] for a in e["attributions"] if a["feature"] == feature) for e in document["explanations"]]


def predictions(document: dict) -> list[float]:
    return [e["prediction"] for e in document["explanations"]]


def test_zip_codes_keep_their_leading_zeros_and_the_models_prediction(zip_model, tmp_path):
    model, path, background = zip_model
    rows = rows_with(["00501", "02134", "10001", "00501"])
    document = explain(path, rows, background, tmp_path, "--output", "probability", *FAST)
    assert shown(document, "city") == ["00501", "02134", "10001", "00501"]
    assert predictions(document) == pytest.approx(model.predict_proba(rows[FEATURES])[:, 1], abs=1e-9)
    assert not any("never saw" in w for w in document["warnings"]), document["warnings"]


def test_category_named_NA_that_the_encoder_knows_stays_NA(zip_model, tmp_path):
    model, path, background = zip_model
    rows = rows_with(["NA", "00501", "NA"])
    document = explain(path, rows, background, tmp_path, "--output", "probability", *FAST)
    assert shown(document, "city") == ["NA", "00501", "NA"]
    assert predictions(document) == pytest.approx(model.predict_proba(rows[FEATURES])[:, 1], abs=1e-9)
    # "NA" is not an empty cell: the imputer would have made it the most frequent city.
    as_missing = model.predict_proba(rows[FEATURES].assign(city=[np.nan, "00501", np.nan]))[:, 1]
    assert predictions(document)[0] != pytest.approx(as_missing[0], abs=1e-3)


def test_empty_cell_and_unknown_NA_text_in_a_text_column_are_missing(zip_model, tmp_path):
    model, path, background = zip_model
    header = ",".join(["name", *FEATURES])
    text = f"{header}\nempty,41.5,22000,,00501,0.3\ntext NA,41.5,22000,NA,00501,0.3\nred,41.5,22000,red,00501,0.3\n"
    document = explain(path, text, background, tmp_path, "--output", "probability", *FAST)
    # The encoder of ``color`` never saw "NA": it is pandas' missing value, as it always was.
    assert shown(document, "color") == [None, None, "red"]
    truth = pd.DataFrame(
        {"age": 41.5, "income": 22000.0, "color": [np.nan, np.nan, "red"], "city": "00501", "noise": 0.3}
    )
    assert predictions(document) == pytest.approx(model.predict_proba(truth[FEATURES])[:, 1], abs=1e-9)
    assert not any("never saw" in w for w in document["warnings"]), document["warnings"]


def test_NA_text_in_a_numeric_column_is_still_missing(zip_model, tmp_path):
    model, path, background = zip_model
    header = ",".join(["name", *FEATURES])
    text = f"{header}\na,NA,22000,red,00501,0.3\nb,35,null,blue,02134,NaN\nc,35,22000,blue,02134,\n"
    document = explain(path, text, background, tmp_path, "--output", "probability", *FAST)
    assert shown(document, "age") == [None, 35, 35]
    assert shown(document, "income") == [22000, None, 22000]
    assert shown(document, "noise") == [0.3, None, None]
    truth = pd.DataFrame(
        {
            "age": [np.nan, 35.0, 35.0],
            "income": [22000.0, np.nan, 22000.0],
            "color": ["red", "blue", "blue"],
            "city": ["00501", "02134", "02134"],
            "noise": [0.3, np.nan, np.nan],
        }
    )
    assert predictions(document) == pytest.approx(model.predict_proba(truth[FEATURES])[:, 1], abs=1e-9)


def test_non_numeric_cell_still_exits_2_when_text_columns_are_read_as_written(zip_model, tmp_path):
    _, path, background = zip_model
    data = tmp_path / "rows.csv"
    data.write_text(",".join(FEATURES) + "\nforty,22000,red,00501,0.3\n")
    result = run_cli(["explain", path, data, "--background", background, "--out", tmp_path / "out", *FAST])
    assert result.code == 2 and "column age" in result.stderr and "'forty'" in result.stderr


def test_inspect_and_importance_read_zip_codes_as_written(zip_model, tmp_path):
    _, path, background = zip_model
    inspected = run_cli(["inspect", path, background, "--json"])
    assert inspected.code == 0, inspected.stderr
    assert not any("never saw" in w for w in inspected.json()["warnings"]), inspected.json()["warnings"]
    importance = run_cli(
        ["importance", path, background, "--target", "label", "--method", "permutation", "--repeats", "2"]
        + ["--out", tmp_path / "out", "--json"]
    )
    assert importance.code == 0, importance.stderr
    assert not any("never saw" in w for w in importance.json()["warnings"]), importance.json()["warnings"]


def test_ids_are_the_cells_as_written_and_an_empty_id_is_empty(zip_model, tmp_path):
    _, path, background = zip_model
    rows = rows_with(["00501", "02134", "10001", "00501"])
    rows["name"] = ["007", "", "1.50", ""]
    data = tmp_path / "rows.csv"
    rows.to_csv(data, index=False)
    out = tmp_path / "out"
    result = run_cli(
        ["explain", path, data, "--background", background, "--id-col", "name", "--out", out, "--json", "--quiet"]
    )
    assert result.code == 0, result.stderr
    assert [e["id"] for e in result.json()["explanations"]] == ["007", "", "1.50", ""]
    pngs = sorted(p.name for p in (out / "plots").glob("force_*.png"))
    assert len(pngs) == 4 and not any("nan" in name for name in pngs), pngs


def test_unseen_lightgbm_category_keeps_its_value_in_json_and_csv(tmp_path):
    import lightgbm

    rng = np.random.default_rng(9)
    frame = pd.DataFrame({"size": rng.normal(size=300).round(3), "shade": rng.choice(["dark", "light", "mid"], 300)})
    frame["y"] = frame["size"] + (frame["shade"] == "dark") * 2.0
    shades = pd.CategoricalDtype(["dark", "light", "mid"])
    model = lightgbm.LGBMRegressor(n_estimators=20, num_leaves=6, random_state=0, verbose=-1)
    model.fit(frame[["size", "shade"]].astype({"shade": shades}), frame["y"])
    path = tmp_path / "lgbm_cat.joblib"
    joblib.dump(model, path)
    background = tmp_path / "background.csv"
    frame.iloc[:40].to_csv(background, index=False)
    rows = pd.DataFrame({"size": [0.1, 0.2, 0.3], "shade": ["mid", "purple", ""]})

    document = explain(path, rows, background, tmp_path, *FAST)

    assert shown(document, "shade") == ["mid", "purple", None]
    assert any("purple" in w for w in document["warnings"])
    # The model itself is given a missing value for "purple".
    truth = model.predict(rows.assign(shade=pd.Categorical(["mid", None, None], dtype=shades)))
    assert predictions(document) == pytest.approx(list(truth), abs=1e-9)
    with open(tmp_path / "out" / "attributions.csv", newline="", encoding="utf-8") as handle:
        lines = [line for line in csv.DictReader(handle) if line["feature"] == "shade"]
    assert [line["value"] for line in lines] == ["mid", "purple", ""]


def test_chunked_reading_keeps_text_columns_as_written_in_every_chunk(tmp_path):
    from xai_cli.data import open_table

    data = tmp_path / "rows.csv"
    # The second chunk of two rows has only empty cells in the text columns.
    data.write_text("zip,x,name\n00501,1.5,007\n02134,null,x\n,NA,\n,,\nNA,2,NA\n")
    chunks = list(open_table(str(data), chunk_rows=2, text_columns=["zip", "name"]).chunks)
    assert [len(chunk) for chunk in chunks] == [2, 2, 1]
    frame = pd.concat(chunks, ignore_index=True)
    assert [None if pd.isna(v) else v for v in frame["zip"]] == ["00501", "02134", None, None, "NA"]
    assert [None if pd.isna(v) else v for v in frame["name"]] == ["007", "x", None, None, "NA"]
    # The other columns are read as pandas reads them: "NA", "null" and empty cells are missing.
    plain = pd.concat(open_table(str(data), chunk_rows=2).chunks, ignore_index=True)
    assert frame["x"].dtype == plain["x"].dtype == np.float64
    assert frame["x"].tolist()[0] == 1.5 and frame["x"].isna().tolist() == [False, True, True, True, False]
