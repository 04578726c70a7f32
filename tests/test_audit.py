"""``xai audit`` from the outside: real models, the real entry point, planted drift, a messy history."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import FEATURES, mixed_frame, mixed_pipeline, run_cli, run_xai_process

from xai_cli import audit as audit_library

NIGHT_1 = datetime(2026, 1, 1, 2, 15, 30, tzinfo=timezone.utc)
NIGHT_2 = datetime(2026, 2, 1, 2, 15, 30, tzinfo=timezone.utc)


def app_with_audit():
    """The shared ``xai`` app plus ``audit``, registered as cli.py registers the other commands.

    A copy, so the tests run the real entry point whether or not cli.py registers it yet.
    """
    from xai_cli import cli
    from xai_cli.commands import audit

    app = copy.copy(cli.app)
    app.registered_commands = list(cli.app.registered_commands)
    if audit.audit not in {command.callback for command in app.registered_commands}:
        app.command(epilog=audit.AUDIT_EPILOG)(audit.audit)
    return app


@pytest.fixture
def xai(monkeypatch):
    """``xai([...]) -> CliResult`` through ``xai_cli.cli.main``, with ``audit`` registered."""
    monkeypatch.setattr("xai_cli.cli.app", app_with_audit())
    return run_cli


def fixed_clock(monkeypatch, when: datetime) -> None:
    monkeypatch.setattr(audit_library, "utc_now", lambda: when)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A model, last night's data, and today's data in five versions: same, fresh, shifted, relabelled, re-targeted.

    ``other_model`` has the same features as ``model`` but learned a label that depends on ``noise``
    and ``income`` only, so its importance ranking differs; ``retargeted`` is DATA labelled that way.
    ``regressor`` (of ``amount``) and ``three_class`` (of ``band``, in ``banded``) also share the
    features: other kinds of model.
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, Ridge

    folder = tmp_path_factory.mktemp("audit")
    train = mixed_frame(400, seed=1)
    model = mixed_pipeline(RandomForestClassifier(n_estimators=30, max_depth=5, random_state=0))
    joblib.dump(model.fit(train[FEATURES], train["label"]), folder / "model.pkl")

    def noise_label(frame: pd.DataFrame) -> np.ndarray:
        income = np.log(frame["income"]) - 10
        return np.where(frame["noise"] + income > 0, "yes", "no")

    other = mixed_pipeline(RandomForestClassifier(n_estimators=30, max_depth=5, random_state=0))
    joblib.dump(other.fit(train[FEATURES], noise_label(train)), folder / "other_model.pkl")

    joblib.dump(mixed_pipeline(Ridge()).fit(train[FEATURES], train["amount"]), folder / "regressor.pkl")
    band = pd.qcut(train["amount"], 3, labels=["low", "mid", "high"]).astype(str)
    joblib.dump(mixed_pipeline(LogisticRegression()).fit(train[FEATURES], band), folder / "three_class.pkl")

    paths = {name: folder / f"{name}.pkl" for name in ("model", "other_model", "regressor", "three_class")}
    day = mixed_frame(400, seed=5)
    versions = {
        "day": day,
        "banded": day.assign(band=pd.qcut(day["amount"], 3, labels=["low", "mid", "high"]).astype(str)),
        "fresh": mixed_frame(400, seed=6),
        "shifted": day.assign(age=day["age"] + 5 * day["age"].std()),
        "shuffled": day.assign(label=np.random.default_rng(0).permutation(day["label"].to_numpy())),
        "retargeted": day.assign(label=noise_label(day)),
    }
    for name, frame in versions.items():
        paths[name] = folder / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    return paths


@pytest.fixture(scope="module")
def baseline(files, tmp_path_factory) -> Path:
    """The audit.json of a first run of the model on last night's data, in a history folder of its own."""
    history = tmp_path_factory.mktemp("baseline_history")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("xai_cli.cli.app", app_with_audit())
        result = run_cli(["audit", files["model"], files["day"], "--target", "label", "--history", history])
    assert result.code == 0, result.stderr
    (run,) = history.iterdir()
    return run / "audit.json"


def audit_against(xai, files, baseline, data: str, out: Path, *extra, model: str = "model"):
    return xai(["audit", files[model], files[data], "--target", "label", "--baseline", baseline, "--out", out, *extra])


def failed_checks(document: dict) -> dict[str, dict]:
    return {check["name"]: check for check in document["checks"] if not check["passed"]}


def verdict_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("audit")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def read(path: Path) -> dict:
    return json.loads(path.read_text())


# --------------------------------------------------------------------------------------------
# A history of runs
# --------------------------------------------------------------------------------------------


def test_first_run_has_no_baseline_and_the_same_data_then_passes_with_nothing_moved(xai, tmp_path, files):
    history = tmp_path / "audits"
    args = ["audit", files["model"], files["day"], "--target", "label", "--history", history]
    first = xai(args)
    assert first.code == 0, first.stderr
    (first_run,) = history.iterdir()
    assert audit_library.RUN_NAME.fullmatch(first_run.name)
    assert verdict_line(first) == f"audit: no baseline yet, wrote {first_run}"
    first_document = read(first_run / "audit.json")
    assert first_document["status"] == "no-baseline"
    assert first_document["baseline"] is None and first_document["checks"] == []
    # No baseline, no drift to plot: only the importance chart (the README says so).
    assert sorted(path.name for path in (first_run / "plots").iterdir()) == ["importance_vs_baseline.png"]

    second = xai(args)
    assert second.code == 0, second.stderr
    second_run = max(history.iterdir(), key=lambda entry: audit_library.run_key(entry.name))
    document = read(second_run / "audit.json")
    assert document["status"] == "pass"
    assert document["baseline"]["path"] == str(first_run / "audit.json")
    assert document["baseline"]["created_at"] == first_document["created_at"]
    assert document["baseline"]["model_sha256"] == first_document["model"]["sha256"]
    assert document["baseline"]["model_changed"] is False
    # The same data and seed give the very same importance and score: nothing moved at all.
    assert document["importance"] == first_document["importance"]
    values = {check["name"]: check["value"] for check in document["checks"]}
    assert values.pop("rank_correlation") == 1.0
    assert set(values.values()) == {0}
    assert {"score_drop", "rank_change", "importance_shift", "prediction_drift"} <= set(values)
    assert {f"drift:{name}" for name in FEATURES} <= set(values)
    assert verdict_line(second) == f"audit passed ({len(document['checks'])} checks), wrote {second_run}"


def test_audit_json_holds_the_verdict_and_everything_a_later_run_compares_with(files, baseline):
    document = read(baseline)
    assert document["schema_version"] == 1 and document["kind"] == "audit"
    assert document["tool"]["name"] == "xai-cli" and document["created_at"].endswith("Z")
    assert {"path", "sha256", "type", "task"} <= set(document["model"])
    assert document["data"]["rows"] == 400 and len(document["data"]["sha256"]) == 64
    assert document["importance"]["method"] == "permutation"
    ranks = [entry["rank"] for entry in document["importance"]["features"]]
    assert ranks == [1, 2, 3, 4, 5]
    assert sum(entry["share"] for entry in document["importance"]["features"]) == pytest.approx(1.0)
    assert document["score"]["scorer"] == "accuracy" and 0.7 < document["score"]["value"] <= 1.0
    age = document["data_summary"]["age"]
    assert age["kind"] == "numeric" and len(age["bins"]) == 9 and len(age["shares"]) == 10
    assert sum(age["shares"]) + age["missing_share"] == pytest.approx(1.0)
    assert age["missing_share"] > 0  # the planted empty cells
    color = document["data_summary"]["color"]
    assert color["kind"] == "categorical" and set(color["shares"]) == {"red", "green", "blue"}
    outputs = document["prediction_summary"]["outputs"]
    assert set(outputs) == {"no", "yes"} and 0 < outputs["yes"]["mean"] < 1
    assert set(document["prediction_summary"]["predicted_class"]["shares"]) <= {"no", "yes"}
    assert {"thresholds", "importance"} <= set(document["params"])
    assert {"python", "scikit-learn"} <= set(document["versions"])
    # Summaries, never the rows themselves.
    assert "400" not in json.dumps(document["data_summary"]["noise"]["bins"])
    assert len(json.dumps(document)) < 60_000


def test_two_runs_in_the_same_second_get_two_folders(xai, tmp_path, files, monkeypatch):
    fixed_clock(monkeypatch, NIGHT_1)
    history = tmp_path / "audits"
    args = ["audit", files["model"], files["day"], "--target", "label", "--history", history, "--quiet"]
    assert xai(args).code == 0
    assert xai(args).code == 0
    assert sorted(entry.name for entry in history.iterdir()) == ["20260101T021530Z", "20260101T021530Z-2"]
    assert read(history / "20260101T021530Z-2" / "audit.json")["baseline"]["path"] == str(
        history / "20260101T021530Z" / "audit.json"
    )


def test_concurrent_runs_never_share_a_folder(tmp_path):
    folders: list[Path] = []
    threads = [
        threading.Thread(target=lambda: folders.append(audit_library.create_run_folder(tmp_path, NIGHT_1)))
        for _ in range(12)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(folders)) == 12
    assert {folder.name for folder in folders} == {"20260101T021530Z", *(f"20260101T021530Z-{n}" for n in range(2, 13))}
    # -10 comes after -9: folders sort by time, then by number.
    newest_first = sorted(folders, key=lambda folder: audit_library.run_key(folder.name), reverse=True)
    assert [folder.name for folder in newest_first[:3]] == [
        "20260101T021530Z-12",
        "20260101T021530Z-11",
        "20260101T021530Z-10",
    ]


def snapshot(folder: Path) -> dict[str, bytes | None]:
    return {str(path.relative_to(folder)): path.read_bytes() if path.is_file() else None for path in folder.rglob("*")}


def test_unusable_history_entries_are_skipped_with_a_warning_and_nothing_is_deleted(
    xai, tmp_path, files, monkeypatch, foreign_baseline
):
    history = tmp_path / "audits"
    args = ["audit", files["model"], files["day"], "--target", "label", "--history", history, "--quiet"]
    fixed_clock(monkeypatch, NIGHT_1)
    assert xai(args).code == 0
    good = history / "20260101T021530Z"
    # Newer than the good run, so walked before it: each must be skipped and named.
    (history / "20260102T000000Z").mkdir()
    (history / "20260102T000000Z" / "audit.json").write_text('{"kind": "audit", "schema_version": 1, "model": ')
    (history / "20260103T000000Z").mkdir()
    (history / "20260104T000000Z").mkdir()
    (history / "20260104T000000Z" / "audit.json").write_text('{"schema_version": 1, "kind": "importance"}')
    (history / "20260105T000000Z").write_bytes(b"\x00\x01 garbage")
    (history / "20260106T000000Z").mkdir()
    (history / "20260106T000000Z" / "audit.json").write_bytes(foreign_baseline.read_bytes())
    (history / "notes.txt").write_text("the model was retrained on 2026-01-03")
    before = snapshot(history)

    fixed_clock(monkeypatch, NIGHT_2)
    result = xai(args)
    assert result.code == 0, result.stderr
    assert snapshot(history).items() >= before.items()  # every earlier file is still there, unchanged
    document = read(history / "20260201T021530Z" / "audit.json")
    assert document["status"] == "pass"
    assert document["baseline"]["path"] == str(good / "audit.json")
    warnings = "\n".join(document["warnings"])
    for name, reason in (
        ("20260102T000000Z", "is not valid JSON"),
        ("20260103T000000Z", "audit.json is missing"),
        ("20260104T000000Z", "'importance' document, not an audit"),
        ("20260105T000000Z", "a file, not a run folder"),
        ("20260106T000000Z", "other features"),
        ("notes.txt", "not a run folder"),
    ):
        assert f"{history / name}: " in warnings and reason in warnings, name
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def regressor_baseline(files, tmp_path_factory) -> Path:
    """The audit.json of a regressor of ``amount`` with the same five features as ``model``."""
    out = tmp_path_factory.mktemp("regressor")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("xai_cli.cli.app", app_with_audit())
        result = run_cli(["audit", files["regressor"], files["day"], "--target", "amount", "--out", out, "--quiet"])
    assert result.code == 0, result.stderr
    return out / "audit.json"


@pytest.mark.parametrize("newest", ["truncated", "regressor", "other features"])
def test_a_history_of_only_unusable_runs_exits_2_naming_the_newest_and_writes_nothing(
    xai, tmp_path, files, baseline, regressor_baseline, foreign_baseline, newest
):
    history = tmp_path / "audits"
    (history / "20250101T000000Z").mkdir(parents=True)
    (history / "20250101T000000Z" / "audit.json").write_text("[1, 2, 3]")
    content, reason = {
        "truncated": (baseline.read_bytes()[:500], "its audit.json is not valid JSON"),
        "regressor": (regressor_baseline.read_bytes(), "its audit.json audited a regression model"),
        "other features": (foreign_baseline.read_bytes(), "its audit.json audited a model with other features"),
    }[newest]
    (history / "20250102T000000Z").mkdir()
    (history / "20250102T000000Z" / "audit.json").write_bytes(content)
    before = snapshot(history)
    result = xai(["audit", files["model"], files["day"], "--target", "label", "--history", history, "--quiet"])
    assert result.code == 2, result.stderr
    assert result.stdout == ""
    error, hint = result.stderr.splitlines()
    assert error.startswith(f"error: no usable earlier run in --history {history}: {history / '20250102T000000Z'}: ")
    assert reason in error and error.endswith("(and 1 older unusable run)")
    assert hint.startswith("hint: move unusable runs out of") and "--baseline FILE" in hint
    assert snapshot(history) == before  # no run folder, nothing changed or deleted


def test_an_empty_or_missing_history_or_one_of_other_files_means_no_baseline(xai, tmp_path, files):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.txt").write_text("nightly audits of model.pkl")
    for name in ("missing", "empty", "notes"):
        history = tmp_path / name
        result = xai(["audit", files["model"], files["day"], "--target", "label", "--history", history, "--quiet"])
        assert (result.code, result.stdout, result.stderr) == (0, "", ""), name
        (run,) = [entry for entry in history.iterdir() if audit_library.run_key(entry.name)]
        assert read(run / "audit.json")["status"] == "no-baseline"
    assert (tmp_path / "notes" / "README.txt").is_file()


def test_a_skipped_corrupt_run_is_named_on_stderr_even_with_quiet(xai, tmp_path, files, monkeypatch):
    history = tmp_path / "audits"
    args = ["audit", files["model"], files["day"], "--target", "label", "--history", history, "--quiet"]
    fixed_clock(monkeypatch, NIGHT_1)
    assert xai(args).code == 0
    corrupt = history / "20260102T000000Z"
    corrupt.mkdir()
    (corrupt / "audit.json").write_text('{"kind": "audit", "schema_version": 1, "model": ')
    fixed_clock(monkeypatch, NIGHT_2)
    result = xai(args)
    assert result.code == 0 and result.stdout == ""
    assert result.stderr.startswith(
        f"warning: compared with {history / '20260101T021530Z'}, skipping unusable newer runs: {corrupt}: "
        "its audit.json is not valid JSON"
    )
    assert len(result.stderr.splitlines()) == 1
    assert read(history / "20260201T021530Z" / "audit.json")["status"] == "pass"


def test_a_baseline_the_run_would_overwrite_exits_2_before_measuring(xai, tmp_path, files, monkeypatch):
    first = xai(["audit", files["model"], files["day"], "--target", "label", "--quiet"], cwd=tmp_path)
    assert first.code == 0, first.stderr
    written = tmp_path / "xai-output" / "audit.json"
    kept = written.read_bytes()

    def measure_nothing(*args, **kwargs):
        raise AssertionError("measured although the run was refused")

    monkeypatch.setattr(audit_library, "measure", measure_nothing)
    for baseline_option, extra in (
        ("xai-output/audit.json", []),
        ("xai-output", []),
        (str(written), ["--out", "./xai-output/../xai-output"]),
    ):
        result = xai(
            ["audit", files["model"], files["fresh"], "--target", "label", "--baseline", baseline_option, *extra],
            cwd=tmp_path,
        )
        assert result.code == 2, result.stderr
        error, hint = result.stderr.splitlines()
        assert "the run would overwrite the baseline it compares with" in error
        assert hint == "hint: pass --out with another folder, or keep every run with --history DIR"
    assert written.read_bytes() == kept


# --------------------------------------------------------------------------------------------
# Planted changes fail the right check
# --------------------------------------------------------------------------------------------


def test_fresh_data_from_the_same_population_passes_and_the_run_goes_to_out(xai, tmp_path, files, baseline):
    out = tmp_path / "out"
    result = audit_against(xai, files, baseline, "fresh", out)
    assert result.code == 0, result.stderr
    document = read(out / "audit.json")
    assert document["status"] == "pass"
    assert document["baseline"]["path"] == str(baseline)
    assert max(check["value"] for check in document["checks"] if check["name"].startswith("drift:")) > 0
    assert (out / "report.html").is_file()
    for plot in ("importance_vs_baseline.png", "drift.png"):
        assert (out / "plots" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.rglob("*.tmp"))
    assert "audit passed" in verdict_line(result)


def test_a_feature_shifted_by_several_standard_deviations_fails_its_drift_check(xai, tmp_path, files, baseline):
    out = tmp_path / "out"
    result = audit_against(xai, files, baseline, "shifted", out)
    assert result.code == 1, result.stderr
    document = read(out / "audit.json")
    assert document["status"] == "fail"
    failed = failed_checks(document)
    assert failed["drift:age"]["value"] > 1.0 and failed["drift:age"]["subject"] == "age"
    assert "mean" in failed["drift:age"]["detail"] and "KS" in failed["drift:age"]["detail"]
    assert not {"drift:income", "drift:color", "drift:city", "drift:noise"} & set(failed)
    assert document["comparison"]["drift"][0]["feature"] == "age"  # largest PSI first
    line = verdict_line(result)
    assert line.startswith("audit FAILED: ")
    assert "drift:age psi " in line and "> 0.25" in line
    assert "drift:income" not in line
    assert str(out / "report.html") in line
    report = (out / "report.html").read_text()
    assert "FAILED" in report and "drift:age" in report
    assert report.count("data:image/png;base64,") == 2 and 'src="http' not in report
    assert "Traceback" not in result.stderr


def test_shuffled_labels_fail_the_score_drop(xai, tmp_path, files, baseline):
    result = audit_against(xai, files, baseline, "shuffled", tmp_path / "out")
    assert result.code == 1, result.stderr
    document = read(tmp_path / "out" / "audit.json")
    score_drop = failed_checks(document)["score_drop"]
    assert score_drop["value"] > 0.2 and score_drop["threshold"] == 0.05
    assert score_drop["detail"].startswith("accuracy ")
    assert "drift:age" not in failed_checks(document)  # the features did not move
    assert "score_drop " in verdict_line(result) and "> 0.05 (accuracy)" in verdict_line(result)


def test_a_retrained_model_that_ranks_other_features_fails_a_rank_check(xai, tmp_path, files, baseline):
    result = audit_against(xai, files, baseline, "retargeted", tmp_path / "out", model="other_model")
    assert result.code == 1, result.stderr
    document = read(tmp_path / "out" / "audit.json")
    failed = failed_checks(document)
    # Five features: a fall of more than 3 ranks is barely possible, the rank correlation catches it.
    assert failed["rank_correlation"]["value"] < 0
    assert failed["importance_shift"]["subject"] == "noise"
    ranks = {row["feature"]: (row["rank_before"], row["rank_now"]) for row in document["comparison"]["importance"]}
    assert ranks["age"][0] == 1 and ranks["age"][1] > 1 and ranks["noise"][1] == 1
    assert document["baseline"]["model_changed"] is True
    assert any("another model file" in warning for warning in document["warnings"])
    assert "rank_" in verdict_line(result)


def test_thresholds_under_audit_in_xai_toml_are_honoured(xai, tmp_path, files, baseline):
    (tmp_path / "xai.toml").write_text("[audit]\nmax-drift = 0.001\nmax_score_drop = 0.2\n")
    out = tmp_path / "out"
    result = xai(
        ["audit", files["model"], files["fresh"], "--target", "label", "--baseline", baseline, "--out", out],
        cwd=tmp_path,
    )
    assert result.code == 1, result.stderr
    document = read(out / "audit.json")
    assert document["params"]["thresholds"]["max_drift"] == 0.001
    assert document["params"]["thresholds"]["max_score_drop"] == 0.2
    assert any(name.startswith("drift:") for name in failed_checks(document))
    # The command line still wins over the file.
    again = xai(
        ["audit", files["model"], files["fresh"], "--target", "label", "--baseline", baseline, "--out", out]
        + ["--max-drift", "0.25"],
        cwd=tmp_path,
    )
    assert again.code == 0, again.stderr


def test_json_prints_only_the_document_and_quiet_only_a_failure(xai, tmp_path, files, baseline):
    failing = audit_against(xai, files, baseline, "shifted", tmp_path / "a", "--json")
    assert failing.code == 1
    assert failing.stdout.lstrip().startswith("{")
    assert json.loads(failing.stdout)["status"] == "fail"
    assert verdict_line(failing).startswith("audit FAILED")

    passing = audit_against(xai, files, baseline, "day", tmp_path / "b", "--quiet")
    assert (passing.code, passing.stdout, passing.stderr) == (0, "", "")
    quiet_failure = audit_against(xai, files, baseline, "shifted", tmp_path / "c", "--quiet")
    assert quiet_failure.code == 1 and quiet_failure.stdout == ""
    assert verdict_line(quiet_failure).startswith("audit FAILED")


# --------------------------------------------------------------------------------------------
# Baselines that cannot be used
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def foreign_baseline(forest_classifier, numeric_data, tmp_path_factory) -> Path:
    """The audit.json of a model with other features, run without --target (mean |SHAP| importance)."""
    out = tmp_path_factory.mktemp("foreign")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("xai_cli.cli.app", app_with_audit())
        result = run_cli(["audit", forest_classifier, numeric_data["train"], "--out", out, "--quiet"])
    assert result.code == 0, result.stderr
    document = read(out / "audit.json")
    assert document["importance"]["method"] == "shap" and document["score"] is None
    return out / "audit.json"


def test_a_baseline_of_a_model_with_other_features_exits_2_naming_them(xai, tmp_path, files, foreign_baseline):
    out = tmp_path / "out"
    result = audit_against(xai, files, foreign_baseline, "day", out)
    assert result.code == 2
    assert "other features" in result.stderr and "age" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("model", "baseline_of", "says"),
    [
        ("model", "regressor", "audited a regression model with the same features; this one is a classification model"),
        ("regressor", "model", "audited a classification model with the same features; this one is a regression model"),
        ("model", "three_class", "audited a classifier of the classes high, low, mid; this one predicts no, yes"),
    ],
)
def test_a_baseline_of_another_kind_of_model_with_the_same_features_exits_2(
    xai, tmp_path, files, baseline, regressor_baseline, model, baseline_of, says
):
    if baseline_of == "three_class":
        made = xai(["audit", files["three_class"], files["banded"], "--target", "band", "--out", tmp_path / "b", "-q"])
        assert made.code == 0, made.stderr
        other = tmp_path / "b" / "audit.json"
    else:
        other = {"model": baseline, "regressor": regressor_baseline}[baseline_of]
    target = "amount" if model == "regressor" else "label"
    out = tmp_path / "out"
    result = xai(["audit", files[model], files["day"], "--target", target, "--baseline", other, "--out", out])
    assert result.code == 2, result.stderr
    assert f"--baseline {other} cannot be used: it {says}" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "is missing"),
        (b"{not json", "is not valid JSON"),
        (b'{"schema_version": 1, "kind": "explanation"}', "'explanation' document, not an audit"),
        (b'{"schema_version": 7, "kind": "audit"}', "schema_version 7"),
        (b'{"schema_version": 1, "kind": "audit", "created_at": "x"}', "lacks model.sha256"),
    ],
)
def test_an_unusable_baseline_file_exits_2_saying_why(xai, tmp_path, files, content, reason):
    path = tmp_path / "audit.json"
    if content is not None:
        path.write_bytes(content)
    result = audit_against(xai, files, path, "day", tmp_path / "out")
    assert result.code == 2
    assert f"--baseline {path} cannot be used" in result.stderr and reason in result.stderr
    assert "hint:" in result.stderr and "Traceback" not in result.stderr


def test_a_threshold_out_of_range_exits_2(xai, tmp_path, files, baseline):
    result = audit_against(xai, files, baseline, "day", tmp_path / "out", "--min-rank-correlation", "2")
    assert result.code == 2
    assert "--min-rank-correlation must be" in result.stderr


def test_without_target_importance_is_mean_abs_shap_and_the_same_data_passes(
    xai, tmp_path, forest_classifier, numeric_data, foreign_baseline
):
    result = xai(
        ["audit", forest_classifier, numeric_data["train"], "--baseline", foreign_baseline, "--out", tmp_path, "--json"]
    )
    assert result.code == 0, result.stderr
    document = result.json()
    assert document["status"] == "pass" and document["importance"]["method"] == "shap"
    assert "score_drop" not in {check["name"] for check in document["checks"]}


def test_an_undefined_rank_correlation_fails_unless_switched_off_with_minus_one(xai, tmp_path, files, baseline):
    # 400 copies of one row: shuffling a column changes nothing, so every importance is 0.
    same_row = tmp_path / "same_row.csv"
    pd.read_csv(files["day"]).iloc[[0] * 400].to_csv(same_row, index=False)
    args = ["audit", files["model"], same_row, "--target", "label", "--baseline", baseline]
    for threshold, passed in ((None, False), ("-0.99", False), ("-1", True)):
        out = tmp_path / f"out{threshold}"
        result = xai([*args, "--out", out, *(["--min-rank-correlation", threshold] if threshold else [])])
        assert result.code == 1, result.stderr  # the score and the data moved in any case
        check = {check["name"]: check for check in read(out / "audit.json")["checks"]}["rank_correlation"]
        assert check["value"] is None and check["passed"] is passed, threshold
        assert check["detail"].startswith("undefined: this run's importance ranking is constant")
        assert ("rank_correlation undefined: " in verdict_line(result)) is not passed


def test_importance_measured_another_way_is_reported_as_not_compared(
    xai, tmp_path, forest_classifier, numeric_data, foreign_baseline
):
    args = ["audit", forest_classifier, numeric_data["train"], "--target", "target", "--baseline", foreign_baseline]
    result = xai([*args, "--out", tmp_path])
    assert result.code == 0, result.stderr
    comparison = read(tmp_path / "audit.json")["comparison"]
    assert comparison["importance"] == []
    assert comparison["importance_not_compared"].startswith("the baseline measured shap importance and this run")
    report = (tmp_path / "report.html").read_text()
    assert "Importance against the baseline" not in report
    assert "Not compared with the baseline: the baseline measured shap importance and this run permutation" in report
    figure = audit_library.importance_vs_baseline_figure(read(tmp_path / "audit.json"))
    assert figure.axes[0].get_title(loc="left").startswith("Importance (not compared")


@pytest.fixture(scope="module")
def wide_files(tmp_path_factory) -> dict[str, Path]:
    """A logistic regression on 45 features of which 5 matter, and a night on which 8 of the others shifted."""
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path_factory.mktemp("wide")

    def frame(seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        features = pd.DataFrame(rng.normal(size=(400, 45)), columns=[f"feature_{i:02d}" for i in range(45)])
        signal = features.iloc[:, :5].to_numpy() @ np.array([3, 2, 1.5, 1, 0.8])
        return features.assign(y=(signal + rng.normal(0, 1, 400) > 0).astype(int))

    train = frame(1)
    joblib.dump(LogisticRegression(max_iter=1000).fit(train.drop(columns="y"), train["y"]), folder / "wide.pkl")
    train.to_csv(folder / "night1.csv", index=False)
    night2 = frame(2)
    night2.iloc[:, 5:13] += 3
    night2.to_csv(folder / "night2.csv", index=False)
    return {"model": folder / "wide.pkl", "night1": folder / "night1.csv", "night2": folder / "night2.csv"}


def test_plots_of_45_features_count_every_check_and_mute_the_rank_jumps_of_noise(xai, tmp_path, wide_files):
    first = xai(["audit", wide_files["model"], wide_files["night1"], "--target", "y", "--out", tmp_path / "a", "-q"])
    assert first.code == 0, first.stderr
    args = ["audit", wide_files["model"], wide_files["night2"], "--target", "y", "--baseline", tmp_path / "a"]
    result = xai([*args, "--out", tmp_path / "b"])
    assert result.code == 1, result.stderr
    document = read(tmp_path / "b" / "audit.json")
    for plot in ("importance_vs_baseline.png", "drift.png"):
        assert (tmp_path / "b" / "plots" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    comparison = document["comparison"]
    psi = [row["psi"] for row in comparison["drift"] + comparison["prediction_drift"]]
    over = sum(value > 0.25 for value in psi)
    assert len(psi) > 45 and over >= 8
    drift = audit_library.drift_figure(document)
    assert drift.axes[0].get_title(loc="left") == f"Drift: {over} of {len(psi)} over the threshold (30 largest shown)"
    assert len(drift.axes[0].get_yticklabels()) == 30

    importance = audit_library.importance_vs_baseline_figure(document).axes[0]
    assert importance.get_title(loc="left") == "Importance: this run vs the baseline, top 30 of 45 features"
    rows = {row["feature"]: row for row in comparison["importance"]}
    floor = audit_library.noise_share(45)
    noise_moved = 0
    for tick in importance.get_yticklabels():
        row = rows[tick.get_text().split()[0]]
        if max(row["share_before"], row["share_now"]) < floor:
            assert "→" not in tick.get_text() and tick.get_color() != "#222222", tick.get_text()
            noise_moved += row["rank_before"] != row["rank_now"]
        elif row["rank_before"] != row["rank_now"]:
            assert f"#{row['rank_before']} → #{row['rank_now']}" in tick.get_text()
    assert noise_moved > 5  # the noise features did change rank: their labels just do not show it
    assert "grey names: under" in importance.get_xlabel()


def test_a_20_row_audit_stores_no_raw_values_and_still_sees_drift(xai, tmp_path, files):
    rows = pd.read_csv(files["day"]).head(20)
    few, shifted = tmp_path / "few.csv", tmp_path / "shifted.csv"
    rows.to_csv(few, index=False)
    rows.assign(age=rows["age"] + 50).to_csv(shifted, index=False)
    first = xai(["audit", files["model"], few, "--target", "label", "--out", tmp_path / "first", "--quiet"])
    assert first.code == 0, first.stderr
    document = read(tmp_path / "first" / "audit.json")
    for name in ("age", "income", "noise"):
        summary = document["data_summary"][name]
        column = sorted(rows[name].dropna())
        assert summary["cdf_points"] != column
        # Of the rows' values, only the minimum and maximum (stored as min and max anyway) are on the grid.
        assert set(summary["cdf_points"]) & set(column) == {summary["min"], summary["max"]}, name
        assert not set(summary["bins"]) & set(column), name
        assert len(summary["cdf_points"]) <= 2 + len(column) // 5
    for output in document["prediction_summary"]["outputs"].values():
        assert len(output["cdf_points"]) <= 2 + 20 // 5

    args = ["audit", files["model"], "--target", "label", "--baseline", tmp_path / "first"]
    same = xai([*args[:2], few, *args[2:], "--out", tmp_path / "same"])
    assert same.code == 0, same.stderr
    checks = {check["name"]: check for check in read(tmp_path / "same" / "audit.json")["checks"]}
    assert checks["drift:age"]["value"] == 0 and checks["drift:age"]["passed"]
    moved = xai([*args[:2], shifted, *args[2:], "--out", tmp_path / "moved"])
    assert moved.code == 1, moved.stderr
    failed = failed_checks(read(tmp_path / "moved" / "audit.json"))
    assert failed["drift:age"]["value"] > 1 and "KS 1.00" in failed["drift:age"]["detail"]
    assert "drift:income" not in failed


# --------------------------------------------------------------------------------------------
# The measures themselves
# --------------------------------------------------------------------------------------------


def test_psi_is_zero_for_the_same_shares_and_follows_its_formula():
    assert audit_library.population_stability_index([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0
    expected = (0.9 - 0.5) * np.log(0.9 / 0.5) + (0.1 - 0.5) * np.log(0.1 / 0.5)
    assert audit_library.population_stability_index([0.5, 0.5], [0.9, 0.1]) == pytest.approx(expected)
    # An empty bucket is floored, not infinite.
    assert np.isfinite(audit_library.population_stability_index([0.5, 0.5], [1.0, 0.0]))


def test_numeric_summary_bins_deciles_and_drift_sees_a_shift_and_new_missing_cells():
    values = np.arange(1000, dtype=float)
    summary = audit_library.numeric_summary(values)
    assert summary["shares"] == pytest.approx([0.1] * 10, abs=0.002)
    assert summary["missing_share"] == 0
    same = audit_library.numeric_drift(summary, values)
    assert same["psi"] == 0 and same["ks"] == 0
    shifted = audit_library.numeric_drift(summary, values + 500)
    assert shifted["psi"] > 1 and shifted["ks"] == pytest.approx(0.5, abs=0.02)
    with_gaps = values.copy()
    with_gaps[::2] = np.nan
    missing = audit_library.numeric_drift(summary, with_gaps)
    assert missing["missing_now"] == 0.5 and missing["psi"] > 1
    # A column of few values gets as many bins as it has, and still sums to one.
    binary = audit_library.numeric_summary(np.array([0.0, 1.0] * 50))
    assert binary["bins"] == [0.0, 1.0] and binary["shares"] == [0.5, 0.5, 0.0]


def test_categorical_drift_puts_unseen_categories_in_one_bucket_and_names_them():
    before = audit_library.categorical_summary(pd.Series(["a"] * 50 + ["b"] * 50))
    assert before["shares"] == {"a": 0.5, "b": 0.5}
    drift = audit_library.categorical_drift(before, pd.Series(["a"] * 50 + ["c"] * 40 + [None] * 10))
    assert drift["unseen"] == [{"category": "c", "share": 0.4}]
    assert drift["missing_now"] == 0.1 and drift["largest_change"]["category"] == "b"
    assert drift["psi"] > 1


def importance_entries(ranking: list[tuple[str, float]]) -> list[dict]:
    return [{"feature": name, "importance": value, "std": None} for name, value in ranking]


def test_rank_change_names_a_top_feature_that_fell_and_ignores_one_that_carried_nothing():
    before = [("a", 0.4), ("b", 0.3), ("c", 0.2), ("d", 0.09), ("e", 0.001)] + [(f"n{i}", 0.0) for i in range(5)]
    # "a" falls from #1 to #6; "e" (0.1% of the importance) falls from #5 to #10, which is noise.
    now = [("b", 0.4), ("c", 0.3), ("d", 0.2), ("n0", 0.05), ("n1", 0.04), ("a", 0.03)]
    now += [("n2", 0.02), ("n3", 0.01), ("n4", 0.005), ("e", 0.0)]
    rows = audit_library.importance_table(importance_entries(now), importance_entries(before))
    checks = {check.name: check for check in audit_library.importance_checks(rows, audit_library.Thresholds())}
    assert (checks["rank_change"].value, checks["rank_change"].subject) == (5, "a")
    assert checks["rank_change"].detail == "a fell from #1 to #6" and not checks["rank_change"].passed
    assert checks["importance_shift"].subject == "a" and not checks["importance_shift"].passed
    same = audit_library.importance_checks(
        audit_library.importance_table(importance_entries(before), importance_entries(before)),
        audit_library.Thresholds(),
    )
    assert all(check.passed for check in same)


# --------------------------------------------------------------------------------------------
# Imports and the installed command
# --------------------------------------------------------------------------------------------


def test_importing_the_cli_and_the_audit_command_loads_nothing_heavy():
    code = (
        "import sys, xai_cli.cli, xai_cli.commands.audit; "
        "print(sorted(m for m in ('shap', 'sklearn', 'pandas', 'matplotlib') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_installed_command_exits_1_with_the_verdict_on_stderr(tmp_path, files, baseline):
    """Needs ``audit`` registered in xai_cli/cli.py."""
    result = run_xai_process(
        ["audit", files["model"], files["shifted"], "--target", "label", "--baseline", baseline, "--out", tmp_path]
    )
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert stderr.strip().splitlines()[-1].startswith("audit FAILED: ")
    assert "drift:age psi" in stderr and "Traceback" not in stderr
    assert read(tmp_path / "audit.json")["status"] == "fail"


def test_tied_importances_share_their_best_rank_so_nothing_falls_by_sort_order():
    """Shuffled labels make every permutation importance 0: no feature may be named as having
    fallen in rank because of the order a sort left the tie in."""
    from xai_cli.audit import Thresholds, importance_checks, importance_table

    before = [{"feature": f, "importance": v, "std": 0.0} for f, v in [("a", 0.5), ("b", 0.3), ("c", 0.2)]]
    now = [{"feature": f, "importance": 0.0, "std": 0.0} for f in ("c", "b", "a")]
    rows = importance_table(now, before)
    assert {row["feature"]: row["rank_now"] for row in rows} == {"a": 1, "b": 1, "c": 1}
    checks = {check.name: check for check in importance_checks(rows, Thresholds())}
    assert checks["rank_change"].value == 0 and checks["rank_change"].passed
    assert not checks["rank_correlation"].passed  # the undefined ranking still fails, as documented
