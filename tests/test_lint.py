"""The code stays as ruff's rules in pyproject.toml want it: a lint failure fails the tests, so it
cannot rot between reviews."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_finds_nothing_in_the_package_tests_and_benches():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "xai_cli", "tests", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
