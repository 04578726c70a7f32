"""Startup: ``xai --help`` against ``python -c "import typer"``, as subprocesses, in one run.

Each command runs ``--runs`` times (default 10), interleaved so that a busy moment hurts both alike;
the ratio uses the best run of each (and the median is shown). Uses hyperfine when it is installed
(``--hyperfine`` forces it, ``--no-hyperfine`` avoids it). Also lists which heavy modules
(shap, sklearn, pandas, matplotlib, numpy, scipy, rich, lime, pydantic) ``xai --help`` and each
``xai CMD --help`` import, and the slowest imports from ``python -X importtime``: the contract says
--help imports none of shap, sklearn, pandas or matplotlib and answers in well under half a second.

Goal: xai --help within 1.5x of python -c "import typer".

    python bench/startup.py            # a few seconds
    python bench/startup.py --runs 30
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent))  # at the end: bench/lime.py must not shadow lime

from benchlib import fmt_ratio, markdown_table, warn_if_busy, write_results  # noqa: E402

GOAL = 1.5
HEAVY = ("shap", "sklearn", "pandas", "matplotlib", "numpy", "scipy", "rich", "lime", "pydantic")
COMMANDS = ("explain", "importance", "audit", "inspect")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each command (default 10)")
    parser.add_argument("--quick", action="store_true", help="5 runs")
    parser.add_argument("--python", default=sys.executable, help="the venv's python (default: this one)")
    parser.add_argument("--hyperfine", dest="hyperfine", action="store_true", default=None)
    parser.add_argument("--no-hyperfine", dest="hyperfine", action="store_false")
    parser.add_argument("--out", default="startup", help="results file stem under bench/results/")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = min(args.runs, 5)
    return args


def commands(python: str) -> dict[str, list[str]]:
    """The commands timed; ``xai`` is the console script installed next to ``python``."""
    xai = str(Path(python).parent / "xai")
    if not Path(xai).exists():
        xai_command = [python, "-m", "xai_cli"]
    else:
        xai_command = [xai]
    return {
        "python -c pass": [python, "-c", "pass"],
        'python -c "import typer"': [python, "-c", "import typer"],
        'python -c "import typer.rich_utils"': [python, "-c", "import typer.rich_utils"],
        "xai --help": xai_command + ["--help"],
        "xai explain --help": xai_command + ["explain", "--help"],
        "xai --version": xai_command + ["--version"],
    }


def time_with_perf_counter(cmds: dict[str, list[str]], runs: int) -> dict[str, list[float]]:
    """Wall times of every command, ``runs`` rounds, interleaved; one untimed warm-up round first."""
    times: dict[str, list[float]] = {name: [] for name in cmds}
    env = {**os.environ, "COLUMNS": "100", "TERM": "dumb"}
    for round_number in range(runs + 1):
        for name, cmd in cmds.items():
            start = time.perf_counter()
            done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
            elapsed = time.perf_counter() - start
            if done.returncode != 0:
                raise SystemExit(f"{name} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
            if round_number:
                times[name].append(elapsed)
    return times


def time_with_hyperfine(cmds: dict[str, list[str]], runs: int) -> dict[str, list[float]]:
    """Wall times from hyperfine (with its own warm-up)."""
    import shlex

    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "hyperfine.json"
        subprocess.run(
            ["hyperfine", "--warmup", "2", "--runs", str(runs), "-N", "--export-json", str(export)]
            + [shlex.join(cmd) for cmd in cmds.values()],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        data = json.loads(export.read_text())
    return {name: result["times"] for name, result in zip(cmds, data["results"])}


def imported_modules(python: str, arguments: list[str]) -> dict:
    """Which heavy top-level packages ``xai ARGUMENTS`` imports, and its slowest imports (-X importtime).

    The packages come from ``sys.modules`` at exit: -X importtime does not report a module imported
    with ``importlib.import_module`` (as cli.py imports the chosen command's module).
    """
    code = (
        f"import sys; sys.argv = ['xai'] + {arguments!r}\n"
        "from xai_cli.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('modules:', ' '.join(sorted({name.split('.')[0] for name in sys.modules})), file=sys.stderr)"
    )
    done = subprocess.run(
        [python, "-X", "importtime", "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    rows = []
    top_level: set[str] = set()
    for line in done.stderr.splitlines():
        if line.startswith("modules: "):
            top_level = set(line.split()[1:])
        if not line.startswith("import time:") or "imported package" in line:
            continue
        first, cumulative_us, name = line.split("|", 2)
        self_us = first.removeprefix("import time:")
        rows.append((int(cumulative_us), int(self_us), name[1:].rstrip()))  # nested imports are indented
    roots = [r for r in rows if not r[2].startswith(" ")]
    slowest = sorted(roots, reverse=True)[:12]
    return {
        "heavy_imported": sorted(top_level & set(HEAVY)),
        "forbidden_by_contract": sorted(top_level & {"shap", "sklearn", "pandas", "matplotlib"}),
        "slowest_top_level_imports_ms": [{"module": n, "cumulative_ms": c / 1000} for c, _, n in slowest],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warn_if_busy()
    cmds = commands(args.python)
    use_hyperfine = args.hyperfine if args.hyperfine is not None else shutil.which("hyperfine") is not None
    times = (time_with_hyperfine if use_hyperfine else time_with_perf_counter)(cmds, args.runs)
    best = {name: min(values) for name, values in times.items()}
    median = {name: statistics.median(values) for name, values in times.items()}
    typer_key = 'python -c "import typer"'
    ratio = best["xai --help"] / best[typer_key]
    imports = imported_modules(args.python, ["--help"])
    command_imports = {name: imported_modules(args.python, [name, "--help"]) for name in COMMANDS}

    lines = [
        [name, f"{best[name] * 1000:.0f}", f"{median[name] * 1000:.0f}", fmt_ratio(best[name] / best[typer_key])]
        for name in cmds
    ]
    verdict = "**met**" if ratio <= GOAL else f"NOT met ({ratio:.2f}x > {GOAL}x)"
    markdown = "\n".join(
        [
            '# Startup: xai --help vs python -c "import typer"',
            "",
            f"One run, {args.runs} interleaved runs per command after a warm-up, timed with "
            f"{'hyperfine' if use_hyperfine else 'time.perf_counter around subprocess.run'}; ratios use the best run. "
            "`import typer.rich_utils` is what typer would import to draw rich help (rich, markdown_it, pygments, "
            "rich.traceback); xai draws its help as plain text and builds only the chosen command.",
            "",
            markdown_table(["command", "best ms", "median ms", "best / import typer"], lines),
            "",
            f"**Goal** xai --help <= {GOAL}x import typer: {fmt_ratio(ratio)} -> {verdict}",
            "",
            f"Heavy packages imported by `xai --help`: {', '.join(imports['heavy_imported']) or 'none'}"
            f" (of {', '.join(HEAVY)}); forbidden by the contract and imported: "
            f"{', '.join(imports['forbidden_by_contract']) or 'none'}. "
            + " ".join(
                f"`xai {name} --help` imports: {', '.join(found['heavy_imported']) or 'none'}."
                for name, found in command_imports.items()
            ),
            "",
            "Slowest top-level imports of `xai --help` (python -X importtime, cumulative):",
            "",
            markdown_table(
                ["module", "cumulative ms"],
                [[m["module"], f"{m['cumulative_ms']:.1f}"] for m in imports["slowest_top_level_imports_ms"]],
            ),
        ]
    )
    print(markdown)
    write_results(
        args.out,
        markdown,
        {
            "runs": args.runs,
            "tool": "hyperfine" if use_hyperfine else "perf_counter",
            "times_s": times,
            "best_s": best,
            "median_s": median,
            "ratio_help_vs_typer": ratio,
            "imports": imports,
            "command_help_imports": command_imports,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
