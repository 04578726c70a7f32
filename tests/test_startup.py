"""``xai --help`` and ``xai CMD --help``: complete, plain, and cheap to start (issue 7).

Each case runs the real entry point in a fresh interpreter and reports what ended up in
``sys.modules``, because this test process has long since imported everything. How fast the help
answers is measured by bench/startup.py, not asserted here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from xai_cli.cli import COMMANDS, load_command

HEAVY = ("shap", "sklearn", "pandas", "matplotlib", "numpy", "scipy", "lime", "rich", "pydantic")
PROBE = """
import contextlib, io, json, sys
sys.argv = ["xai", *sys.argv[1:]]
from xai_cli.cli import main
stdout = io.StringIO()
code = 0
with contextlib.redirect_stdout(stdout):
    try:
        main()
    except SystemExit as exit_:
        code = exit_.code
print(json.dumps({"code": code, "stdout": stdout.getvalue(), "modules": sorted(sys.modules)}))
"""


def run_help(*args: str) -> dict:
    """``xai ARGS`` in a new interpreter at 80 columns: exit code, stdout, modules imported."""
    env = {**os.environ, "COLUMNS": "80", "TERM": "xterm-256color"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, timeout=60, check=True
    )
    return json.loads(done.stdout)


def heavy_in(modules: list[str]) -> list[str]:
    return sorted({name.split(".")[0] for name in modules} & set(HEAVY))


def test_xai_help_lists_every_command_and_imports_no_command_module_nor_heavy_library():
    result = run_help("--help")
    assert result["code"] == 0
    for name, summary in COMMANDS.items():
        assert f"  {name}  " in result["stdout"]
        assert " ".join(result["stdout"].split()).count(summary) == 1, name
    assert heavy_in(result["modules"]) == []
    assert not [m for m in result["modules"] if m.startswith("xai_cli.commands.")]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_command_help_shows_every_option_and_the_example_as_plain_text(name):
    result = run_help(name, "--help")
    text = result["stdout"]
    assert result["code"] == 0
    options = [opt for param in load_command(name).params for opt in param.opts if opt.startswith("--")]
    options_part, example = text.split("Example", 1)
    listed = set(re.findall(r"^ +(?:-\w, )?(--[\w-]+)", options_part, flags=re.MULTILINE))
    assert options and set(options) | {"--help"} == listed
    assert f"xai {name} " in example
    assert "[bold]" not in text and "[/" not in text and "\\[" not in text  # no rich markup left raw
    assert max(len(line) for line in text.splitlines()) <= 80


@pytest.mark.parametrize("name", list(COMMANDS))
def test_command_help_imports_only_its_own_command_module_and_nothing_heavy(name):
    modules = run_help(name, "--help")["modules"]
    assert heavy_in(modules) == []
    others = {f"xai_cli.commands.{other}" for other in COMMANDS if other != name}
    assert f"xai_cli.commands.{name}" in modules and not others & set(modules)


def test_version_imports_no_command_module():
    result = run_help("--version")
    assert result["code"] == 0 and result["stdout"].startswith("xai ")
    assert not [m for m in result["modules"] if m.startswith("xai_cli.commands.")]
    assert heavy_in(result["modules"]) == []


def test_a_mistyped_command_is_still_suggested(xai):
    result = xai(["expalin", "model.pkl", "rows.csv"])
    assert result.code == 2
    assert "Did you mean 'explain'?" in result.stderr
