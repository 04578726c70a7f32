"""Speed and scale from the outside: the same numbers on every backend, streaming in flat memory."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import threading

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

MEASURE_PEAK_MEMORY = """
import resource, sys
from xai_cli.cli import main
sys.argv = ["xai", *sys.argv[1:]]
try:
    main()
except SystemExit as done:
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sys.stderr.write(f"PEAK_KB={peak_kb}\\n")
    raise
"""


def explanations_of(result) -> list[dict]:
    assert result.code == 0, result.stderr
    return result.json()["explanations"]


def test_same_numbers_for_any_n_jobs_and_backend(tmp_path, pipeline_classifier, mixed_data):
    data = tmp_path / "seventy.csv"  # three batches of rows, so the workers share them out
    pd.read_csv(mixed_data["train"]).iloc[:70].to_csv(data, index=False)
    args = ["explain", pipeline_classifier, data, "--target", "label", "--method", "all", "--nsamples", "24",
            "--lime-samples", "100", "--max-plots", "0", "--seed", "3", "--json"]
    one_process = explanations_of(run_cli([*args, "--out", tmp_path / "one"]))
    two_processes = explanations_of(run_cli([*args, "--out", tmp_path / "two", "--n-jobs", "2"]))
    dask_cluster = explanations_of(run_cli([*args, "--out", tmp_path / "dask", "--backend", "dask", "--n-jobs", "2"]))
    assert len(one_process) == 70 * 2
    assert one_process == two_processes == dask_cluster


def test_unknown_backend_and_stray_scheduler_exit_2(tmp_path, pipeline_classifier, mixed_data):
    base = ["explain", pipeline_classifier, mixed_data["train"], "--target", "label", "--out", tmp_path]
    assert run_cli([*base, "--backend", "spark"]).code == 2
    stray = run_cli([*base, "--scheduler", "tcp://127.0.0.1:1"])
    assert stray.code == 2 and "--backend dask" in stray.stderr


@pytest.fixture(scope="module")
def streaming_files(tmp_path_factory):
    """A tree model and CSVs of 2,000 and 30,000 rows of the same data."""
    from sklearn.tree import DecisionTreeRegressor

    folder = tmp_path_factory.mktemp("stream")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(30_000, 6)).round(4), columns=list("abcdef"))
    frame["y"] = 2 * frame["a"] + frame["b"] * frame["c"]
    joblib.dump(DecisionTreeRegressor(max_depth=6, random_state=0).fit(frame[list("abcdef")], frame["y"]), folder / "tree.pkl")
    frame.iloc[:2_000].to_csv(folder / "small.csv", index=False)
    frame.to_csv(folder / "large.csv", index=False)
    return folder


def peak_memory_kb(args: list[str]) -> int:
    done = subprocess.run([sys.executable, "-c", MEASURE_PEAK_MEMORY, *map(str, args)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return int(done.stderr.strip().splitlines()[-1].removeprefix("PEAK_KB="))


def test_twenty_times_the_rows_in_about_the_same_memory(tmp_path, streaming_files):
    common = ["--target", "y", "--max-plots", "0", "--quiet"]
    small = peak_memory_kb(["explain", streaming_files / "tree.pkl", streaming_files / "small.csv", *common, "--out", tmp_path / "s"])
    large = peak_memory_kb(["explain", streaming_files / "tree.pkl", streaming_files / "large.csv", *common, "--out", tmp_path / "l"])
    assert large < 1.3 * small, (small, large)
    with open(tmp_path / "l" / "attributions.csv") as handle:
        assert sum(1 for _ in handle) == 1 + 30_000 * 6


def test_jsonl_lines_come_out_before_the_input_ends(tmp_path, streaming_files):
    """The first explanations are printed while standard input is still open."""
    lines = (streaming_files / "large.csv").read_text().splitlines(keepends=True)[:14_001]
    process = subprocess.Popen(
        [sys.executable, "-m", "xai_cli", "explain", streaming_files / "tree.pkl", "-", "--target", "y", "--jsonl",
         "--max-plots", "0", "--out", tmp_path],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    first_line_read = threading.Event()

    def feed() -> None:
        # A thread writes while this one reads: with both pipes full, neither side could move.
        process.stdin.write("".join(lines[:12_001]).encode())  # the header, the first read chunk, and more
        process.stdin.flush()
        first_line_read.wait(timeout=240)
        process.stdin.write("".join(lines[12_001:]).encode())
        process.stdin.close()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        ready, _, _ = select.select([process.stdout], [], [], 240)
        assert ready, "no explanation came out while standard input was still open"
        first = json.loads(process.stdout.readline())
        assert not process.stdin.closed  # the rest of DATA has not been sent yet
        first_line_read.set()
        rest = process.stdout.read().decode().splitlines()
        assert process.wait(timeout=300) == 0
    finally:
        first_line_read.set()
        if process.poll() is None:
            process.kill()
    assert first["row"] == 0 and first["method"] == "tree_shap"
    assert len(rest) + 1 == 14_000
    assert json.loads(rest[-1])["row"] == 13_999
