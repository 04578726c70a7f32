"""Remake ``docs/report.png``: the top of the report ``xai explain`` writes for the sample penguins.

Run from anywhere with the project installed and Debian's ``chromium`` on PATH::

    python docs/make_screenshot.py

It copies ``sample_data/`` to a temporary folder, trains the sample model there (the repository's
files are left alone), runs the README's ``xai explain`` command, and has headless Chromium (with no
network) take a 1200 px wide screenshot of the first screenful of ``report.html``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "report.png"
WIDTH, HEIGHT = 1200, 1370  # the run at a glance, warnings, quality receipts and the summary bar chart
TIMEOUT = 120


def main() -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("needs Debian's chromium on PATH (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="xai-screenshot-") as temporary:
        work = Path(temporary)
        shutil.copytree(ROOT / "sample_data", work / "sample_data", ignore=shutil.ignore_patterns("model.joblib"))
        subprocess.run([sys.executable, "sample_data/train_model.py"], cwd=work, check=True, timeout=TIMEOUT)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "xai_cli",
                "explain",
                "sample_data/model.joblib",
                "sample_data/rows.csv",
                "--id-col",
                "name",
                "--target",
                "species",
                "--background",
                "sample_data/penguins.csv",
                "--out",
                "xai-output",
                "--quiet",
            ],
            cwd=work,
            check=True,
            timeout=TIMEOUT,
        )
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
                "--host-resolver-rules=MAP * ~NOTFOUND",
                "--proxy-server=127.0.0.1:9",
                f"--user-data-dir={work / 'chromium-profile'}",
                f"--window-size={WIDTH},{HEIGHT}",
                f"--screenshot={OUTPUT}",
                (work / "xai-output" / "report.html").as_uri(),
            ],
            check=True,
            timeout=TIMEOUT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({OUTPUT.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
