"""``xai explain`` in a real terminal: a pseudo-terminal of 80 columns, as a person's shell gives it.

The command runs as its own process with stdout and stderr each on a pseudo-terminal (or a pipe),
so rich sees what it would see in a shell: ``isatty()``, the window size, ``TERM`` and ``NO_COLOR``.
What a person would notice is pinned: the table fits 80 columns with its box intact, a progress bar
shows on stderr when it is a terminal, ``--json`` prints JSON and nothing else, and no colour
codes reach stdout with ``NO_COLOR`` set or when stdout is a pipe.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import mixed_frame

COLUMNS, LINES = 80, 24
TIMEOUT = 240.0
ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
SGR = re.compile(r"\x1b\[([0-9;:]*)m")
TERMINAL_ENV = ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "CLICOLOR_FORCE", "TTY_COMPATIBLE", "TTY_INTERACTIVE")
LONG_ID = "customer-with-a-rather-long-identifier-0001"
LONG_CITY = "Saint-Remy-en-Bouzemont-Saint-Genest-et-Isson"


@dataclass
class TerminalRun:
    code: int
    stdout: str
    stderr: str


def _pty(columns: int, lines: int) -> tuple[int, int]:
    parent, child = os.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    return parent, child


def run_in_terminal(
    args: list, *, stdout_tty: bool = True, stderr_tty: bool = True, env: dict | None = None
) -> TerminalRun:
    """Run ``xai ARGS`` with stdout and/or stderr on an 80x24 pseudo-terminal (else a pipe).

    The environment is the test's, less anything that overrides what rich detects, with
    ``TERM=xterm-256color`` as a desktop terminal sets it. Output is returned as the terminal got it
    (``\\r\\n`` line ends, escape codes and all).
    """
    environment = {key: value for key, value in os.environ.items() if key not in TERMINAL_ENV}
    environment.update({"TERM": "xterm-256color", **(env or {})})
    stdout_ends = _pty(COLUMNS, LINES) if stdout_tty else os.pipe()
    stderr_ends = _pty(COLUMNS, LINES) if stderr_tty else os.pipe()
    process = subprocess.Popen(
        [sys.executable, "-m", "xai_cli", *map(str, args)],
        stdin=subprocess.DEVNULL,
        stdout=stdout_ends[1],
        stderr=stderr_ends[1],
        env=environment,
        start_new_session=True,
    )
    os.close(stdout_ends[1])
    os.close(stderr_ends[1])
    received = {stdout_ends[0]: bytearray(), stderr_ends[0]: bytearray()}
    open_ends = set(received)
    deadline = time.monotonic() + TIMEOUT
    try:
        while open_ends:
            left = deadline - time.monotonic()
            if left <= 0:
                process.kill()
                pytest.fail(f"xai {' '.join(map(str, args))} did not finish within {TIMEOUT:.0f} s")
            for fd in select.select(list(open_ends), [], [], left)[0]:
                try:
                    chunk = os.read(fd, 1 << 16)
                except OSError:  # EIO: the pseudo-terminal's other end is closed
                    chunk = b""
                if chunk:
                    received[fd] += chunk
                else:
                    open_ends.discard(fd)
        code = process.wait(timeout=30)
    finally:
        for fd in received:
            os.close(fd)
    return TerminalRun(code, received[stdout_ends[0]].decode(), received[stderr_ends[0]].decode())


def plain_lines(output: str) -> list[str]:
    """The lines a person reads: escape codes removed, ``\\r\\n`` as line ends."""
    return ESCAPE.sub("", output).replace("\r\n", "\n").split("\n")


def display_width(text: str) -> int:
    """Columns ``text`` takes on a terminal: wide East Asian characters two, combining marks none."""
    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def colour_codes(output: str) -> list[str]:
    """The SGR sequences of ``output`` that set a colour (foreground, background, 256 or true colour)."""
    found = []
    for match in SGR.finditer(output):
        numbers = [int(part) for part in re.split("[;:]", match.group(1)) if part.isdigit()]
        if any(
            n in (38, 39, 48, 49) or 30 <= n <= 37 or 40 <= n <= 47 or 90 <= n <= 97 or 100 <= n <= 107 for n in numbers
        ):
            found.append(match.group(0))
    return found


def table_lines(lines: list[str]) -> list[str]:
    """The lines of the first box-drawn table, top border to bottom border."""
    top = next(i for i, line in enumerate(lines) if line.startswith(("┏", "┌")))
    bottom = next(i for i in range(top, len(lines)) if lines[i].startswith(("└", "┗")))
    return lines[top : bottom + 1]


@pytest.fixture(scope="module")
def many_rows(tmp_path_factory, mixed_data) -> Path:
    """200 rows to explain, named by an id column, one with a long id and a long category value."""
    rows = mixed_frame(200, seed=5)
    rows.insert(0, "name", [f"cust-{i:04d}" for i in range(len(rows))])
    rows.loc[3, ["name", "city"]] = [LONG_ID, LONG_CITY]
    path = tmp_path_factory.mktemp("terminal") / "rows.csv"
    rows.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def long_run_in_terminal(many_rows, pipeline_classifier, mixed_data, tmp_path_factory) -> TerminalRun:
    """``xai explain`` of 200 rows with LIME, stdout and stderr both on the terminal."""
    out = tmp_path_factory.mktemp("terminal_out")
    return run_in_terminal(
        [
            "explain",
            pipeline_classifier,
            many_rows,
            "--id-col",
            "name",
            "--target",
            "label",
            "--background",
            mixed_data["train"],
            "--method",
            "lime",
            "--lime-samples",
            "100",
            "--max-plots",
            "1",
            "--out",
            out,
        ]
    )


def test_table_fits_80_columns_with_its_box_intact(long_run_in_terminal):
    run = long_run_in_terminal
    assert run.code == 0, run.stderr
    lines = plain_lines(run.stdout)
    too_long = [line for line in lines if display_width(line) > COLUMNS]
    assert not too_long, "\n".join(too_long)

    table = table_lines(lines)
    assert len(table) > 50, "the table has a row per explanation, up to 50"
    top = table[0]
    separators = [column for column, char in enumerate(top) if char in "┏┳┓┌┬┐"]
    assert len(separators) >= 3 and separators[0] == 0 and separators[-1] == len(top) - 1
    vertical = set("┃│┡╇┩├┼┤┗┻┛└┴┘┣╋┫")
    for line in table:
        assert display_width(line) == len(line) == len(top), f"ragged table line:\n{line}\n{top}"
        if line is not top:
            assert all(line[column] in vertical for column in separators), f"broken box:\n{top}\n{line}"
    body = "\n".join(table)
    assert "cust-0000" in body and "…" in body, "a long id is cut with an ellipsis, not wrapped out of the box"
    assert re.search(r"^[│┃] row\s+[│┃]\s+[│┃]\s+[│┃] top features\s+[│┃]$", table[1]), table[1]
    assert re.search(r"^[│┃] class\s+[│┃] quality\s+[│┃]\s+pred [│┃] feature=value\s+attribution [│┃]$", table[2])


def test_progress_bar_shows_on_stderr_when_it_is_a_terminal(long_run_in_terminal):
    run = long_run_in_terminal
    assert run.code == 0, run.stderr
    assert "explaining" in run.stderr, run.stderr[:500]
    assert "Traceback" not in run.stderr
    assert "explaining" not in run.stdout
    # rich hides the cursor while the bar runs: it must show it again when the bar is done.
    assert run.stderr.rfind("\x1b[?25h") > run.stderr.rfind("\x1b[?25l") >= 0


def test_terminal_output_is_coloured_when_nothing_says_otherwise(long_run_in_terminal):
    """The control for the tests below: on a terminal, rich does colour the output."""
    assert colour_codes(long_run_in_terminal.stdout), long_run_in_terminal.stdout[:300]


def explain_args(pipeline_classifier, mixed_data, out: Path) -> list:
    return [
        "explain",
        pipeline_classifier,
        mixed_data["rows"],
        "--id-col",
        "name",
        "--target",
        "label",
        "--background",
        mixed_data["train"],
        "--out",
        out,
    ]


def test_json_on_a_terminal_prints_nothing_but_the_document(pipeline_classifier, mixed_data, tmp_path):
    run = run_in_terminal([*explain_args(pipeline_classifier, mixed_data, tmp_path), "--json"])
    assert run.code == 0, run.stderr
    document = json.loads(run.stdout.replace("\r\n", "\n"))
    assert document["kind"] == "explanation" and len(document["explanations"]) == 6
    assert "\x1b" not in run.stdout
    assert "explaining" not in run.stderr and "Traceback" not in run.stderr


def test_no_colour_codes_on_stdout_with_no_color_set(pipeline_classifier, mixed_data, tmp_path):
    run = run_in_terminal(explain_args(pipeline_classifier, mixed_data, tmp_path), env={"NO_COLOR": "1"})
    assert run.code == 0, run.stderr
    assert "Top features per row" in run.stdout
    assert colour_codes(run.stdout) == []
    assert "\x1b[" not in run.stdout  # no bold or italic either: NO_COLOR means plain text here
    assert colour_codes(run.stderr) == []


def test_no_escape_codes_and_no_progress_bar_when_output_is_piped(pipeline_classifier, mixed_data, tmp_path):
    """As cron or ``xai explain ... > out.txt 2> err.txt`` runs it: plain text, no bar."""
    run = run_in_terminal(explain_args(pipeline_classifier, mixed_data, tmp_path), stdout_tty=False, stderr_tty=False)
    assert run.code == 0, run.stderr
    assert "Top features per row" in run.stdout
    assert "\x1b" not in run.stdout and "\x1b" not in run.stderr
    assert "explaining" not in run.stderr
    assert max(display_width(line) for line in run.stdout.splitlines()) <= COLUMNS


LONG_NAMES = {
    "age": "customer_age_in_years_at_the_time_of_the_application_v2",
    "income": "household_income_in_euros_over_the_last_twelve_months",
    "noise": "noise_level_measured_by_the_sensor_in_the_north_wing",
    "color": "[red]colour",  # rich markup, to be shown as text
}
ENTRY = re.compile(r"^(?P<label>\S.*?=\S.*?)\s{2,}(?P<attribution>[+-]\d[\d.]*(?:e[+-]?\d+)?)$")


@pytest.fixture(scope="module")
def long_names_run(tmp_path_factory) -> TerminalRun:
    """``xai explain`` in the terminal of a model whose columns have long names and long values."""
    import joblib
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    work = tmp_path_factory.mktemp("long_names")
    frame = mixed_frame(200, seed=4).drop(columns=["amount"])
    frame["income"] = np.random.default_rng(4).lognormal(10, 0.5, len(frame))  # 17 significant digits
    frame.loc[frame.index[:60], "city"] = LONG_CITY
    frame = frame.rename(columns=LONG_NAMES)
    numbers = [LONG_NAMES[name] for name in ("age", "income", "noise")]
    model = Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        ("numbers", SimpleImputer(strategy="median"), numbers),
                        (
                            "categories",
                            make_pipeline(
                                SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")
                            ),
                            [LONG_NAMES["color"], "city"],
                        ),
                    ]
                ),
            ),
            ("model", RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0)),
        ]
    )
    model.fit(frame.drop(columns=["label"]), frame["label"])
    joblib.dump(model, work / "model.joblib")
    frame.to_csv(work / "train.csv", index=False)
    rows = frame.iloc[:8].copy()
    rows.insert(0, "name", [f"customer-{i}" for i in range(len(rows))])
    rows.to_csv(work / "rows.csv", index=False)
    args = ["explain", work / "model.joblib", work / "rows.csv", "--id-col", "name", "--target", "label"]
    return run_in_terminal([*args, "--background", work / "train.csv", "--out", work / "out"])


def feature_cells(table: list[str]) -> list[str]:
    """The top-features column of the table's body, one string per terminal line."""
    body = table[table.index(next(line for line in table if line.startswith(("├", "┡")))) + 1 : -1]
    return [line.rstrip("│┃").rsplit("│", 1)[-1].strip() for line in body]


def test_top_features_read_one_entry_per_line_at_80_columns_with_long_names(long_names_run):
    run = long_names_run
    assert run.code == 0, run.stderr
    lines = plain_lines(run.stdout)
    assert not [line for line in lines if display_width(line) > COLUMNS]
    table = table_lines(lines)
    cells = feature_cells(table)
    assert len(cells) == 8 * 3, "three features per row, each on a line of its own:\n" + "\n".join(table)
    entries = [ENTRY.match(cell) for cell in cells]
    assert all(entries), "an entry is wrapped or cut:\n" + "\n".join(c for c, e in zip(cells, entries) if not e)
    labels = [entry["label"] for entry in entries]
    # A long name keeps its start and its end, the middle goes.
    shortened = [label for label in labels if "…" in label.split("=")[0]]
    assert shortened, labels
    for label in shortened:
        name = label.split("=")[0]
        assert any(
            full.startswith(name.split("…")[0]) and full.endswith(name.split("…")[1]) for full in LONG_NAMES.values()
        ), name
    # Numbers as the plots write them: no float printed to its last digit.
    for label in labels:
        value = label.split("=", 1)[1]
        digits = re.sub(r"[^0-9]", "", value.lstrip("-0.")) if re.fullmatch(r"-?[\d.]+", value) else ""
        assert len(digits) <= 6, label
    assert any(label.startswith("[red]colour=") for label in labels), labels
    # The column had the room: the entries fill it, they are not squeezed into a sliver.
    assert min(display_width(cell) for cell in cells) >= 30, cells


def test_piped_warnings_stay_one_line_each(tmp_path):
    """A cron mail or a log gets each warning on one line: rich must not break it at 80 columns."""
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    first = rng.normal(size=200)
    frame = pd.DataFrame(
        {
            "monthly_spend_in_the_customers_home_currency": first,
            "monthly_spend_converted_to_euros_at_the_daily_rate": first * 1.1 + rng.normal(0, 0.01, 200),
            "noise": rng.normal(size=200),
        }
    )
    frame["y"] = frame.iloc[:, 0] + rng.normal(0, 0.1, 200)
    model = LinearRegression().fit(frame.iloc[:, :3], frame["y"])
    joblib.dump(model, tmp_path / "model.joblib")
    frame.to_csv(tmp_path / "data.csv", index=False)
    result = subprocess.run(
        [sys.executable, "-m", "xai_cli", "importance", "model.joblib", "data.csv", "--target", "y", "--method",
         "permutation", "--out", "out"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "80"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    warnings = [line for line in output.splitlines() if "strongly correlated" in line]
    assert len(warnings) == 1, output
    line = warnings[0]
    assert line.startswith("warning: ") and len(line) > 80 and line.rstrip().endswith("understates both"), line
