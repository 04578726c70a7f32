"""Memory: peak RSS of ``xai explain`` with a tree model as the number of rows grows.

Two stages, each in its own subprocess whose peak RSS comes from ``os.wait4`` (the kernel's own
high-water mark), with RSS also sampled from /proc every 0.1 s to show whether it stays flat:

* ``read``: the reader alone on 10k / 100k / 1M rows (``--rows``), whole (``read_table`` +
  ``match_rows``, as ``--background`` is read) and, where xai_cli has it, streamed (``open_table`` +
  ``match_frame`` chunk by chunk, as ``xai explain`` reads DATA).
* ``explain``: the whole CLI, ``xai explain model.joblib rows.csv --method tree --background bg.csv
  --quiet --max-plots 0``, on ``--explain-rows`` rows (default 2k, 10k, 100k, 1M). Sizes run in
  increasing order; before each, its time and peak RSS are estimated from the runs so far (linear in
  rows), and it is skipped when the time would exceed ``--timeout`` or the memory half of what the
  machine has free (the machine is shared). The per-row slope of peak RSS is fitted and extrapolated
  to every size not run.

The contract promises flat memory however many rows there are; a positive slope means it is not.
The script measures whatever xai_cli does at the time (it was written before DATA was streamed).

    python bench/memory.py                                   # about 3 minutes
    python bench/memory.py --rows 10000 100000 --explain-rows 1000 10000 --timeout 600
    python bench/memory.py --quick                           # 10k read, 2000 and 10000 explained
    python bench/memory.py --profile                         # where the CLI's time per row goes
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent))  # at the end: bench/lime.py must not shadow lime

from benchlib import markdown_table, warn_if_busy, write_results  # noqa: E402

N_FEATURES = 12
BACKGROUND_ROWS = 100


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows",
        type=int,
        nargs="+",
        default=[10_000, 100_000, 1_000_000],
        help="row counts for the read stage (default 10k 100k 1M)",
    )
    parser.add_argument(
        "--explain-rows",
        type=int,
        nargs="+",
        default=[2000, 10_000, 100_000, 1_000_000],
        help="row counts for the full CLI run (default 2k 10k 100k 1M; a size whose estimated time exceeds "
        "--timeout, or whose estimated memory exceeds half the free memory, is skipped)",
    )
    parser.add_argument(
        "--trees",
        type=int,
        default=20,
        help="XGBoost trees (default 20, depth 4: memory is about rows, and a small model keeps the run short)",
    )
    parser.add_argument("--depth", type=int, default=4, help="XGBoost max_depth (default 4)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also cProfile the smallest CLI run and list xai's most expensive functions",
    )
    parser.add_argument("--timeout", type=float, default=300, help="seconds before a CLI run is stopped (300)")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--workdir", default=None, help="where the CSVs go (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="memory", help="results file stem under bench/results/")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.explain_rows = [10_000], [2000, 10_000]
    return args


# --------------------------------------------------------------------------------------------------
# Inputs


def write_inputs(folder: Path, rows: list[int], trees: int, depth: int) -> dict:
    """The model (XGBoost regressor on 12 numeric columns), a 100-row background CSV, and one CSV per size."""
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_regression
    from xgboost import XGBRegressor

    columns = [f"f{i}" for i in range(N_FEATURES)]
    X, y = make_regression(n_samples=5000, n_features=N_FEATURES, n_informative=8, noise=5.0, random_state=0)
    model = XGBRegressor(n_estimators=trees, max_depth=depth, random_state=0).fit(pd.DataFrame(X, columns=columns), y)
    joblib.dump(model, folder / "model.joblib")
    pd.DataFrame(X[:BACKGROUND_ROWS], columns=columns).to_csv(folder / "background.csv", index=False)
    rng = np.random.default_rng(0)
    files = {}
    for n in sorted(set(rows)):
        path = folder / f"rows_{n}.csv"
        if not path.exists():
            block = 200_000
            with path.open("w") as handle:
                handle.write(",".join(columns) + "\n")
                for start in range(0, n, block):
                    values = rng.normal(size=(min(block, n - start), N_FEATURES))
                    np.savetxt(handle, values, fmt="%.6g", delimiter=",")
        files[n] = path
    files[BACKGROUND_ROWS] = folder / "background.csv"
    return files


# --------------------------------------------------------------------------------------------------
# Measuring a subprocess


def run_measured(cmd: list[str], *, timeout: float, cwd: Path) -> dict:
    """Run ``cmd``; its peak RSS (from wait4), wall time, and RSS sampled every 0.1 s."""
    stderr_file = tempfile.TemporaryFile()
    start = time.perf_counter()
    process = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=stderr_file)
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        status = Path(f"/proc/{process.pid}/status")
        while not stop.is_set():
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        samples.append((round(time.perf_counter() - start, 2), int(line.split()[1]) * 1024))
            except (OSError, ValueError, IndexError):
                pass
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    timed_out = False
    while True:
        # wait4 (not Popen.poll) reaps the child, so that its rusage is ours to read.
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - start > timeout:
            timed_out = True
            process.kill()
            pid, status, usage = os.wait4(process.pid, 0)
            break
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    stop.set()
    sampler.join()
    stderr_file.seek(0)
    stderr = stderr_file.read().decode(errors="replace")
    stderr_file.close()
    return {
        "seconds": seconds,
        "peak_rss": usage.ru_maxrss * 1024,
        "returncode": process.returncode,
        "timed_out": timed_out,
        "stderr_tail": stderr[-400:],
        "rss_timeline": samples[:: max(1, len(samples) // 50)],
    }


def read_stage(python: str, path: Path, timeout: float, cwd: Path, *, streamed: bool) -> dict:
    """Peak RSS of the reader alone on ``path``.

    ``streamed``: ``open_table`` + ``match_frame`` chunk by chunk, as ``xai explain`` reads DATA
    (each chunk dropped after use); otherwise ``read_table`` + ``match_rows``, the whole file at once
    (as ``--background`` is read).
    """
    if streamed:
        body = (
            "from xai_cli.data import open_table, match_frame\n"
            f"stream = open_table({str(path)!r})\n"
            "n = 0\n"
            "for frame in stream.chunks:\n"
            "    n += len(match_frame(frame, model, path=stream.path, first_row=n).features)\n"
        )
    else:
        body = (
            f"from xai_cli.data import read_table, match_rows\nn = len(match_rows(read_table({str(path)!r}), model))\n"
        )
    code = (
        "import joblib\n"
        "from xai_cli.model import describe_model\n"
        "model = describe_model(joblib.load('model.joblib'))\n" + body + "print(n)\n"
    )
    return run_measured([python, "-c", code], timeout=timeout, cwd=cwd)


def has_streaming_reader(python: str) -> bool:
    """Whether this xai_cli has ``open_table`` (chunked reading of DATA)."""
    probe = "import xai_cli.data as d; raise SystemExit(0 if hasattr(d, 'open_table') else 1)"
    return subprocess.run([python, "-c", probe]).returncode == 0


def baseline_stage(python: str, timeout: float, cwd: Path) -> dict:
    """Peak RSS of importing what an explain run imports, with no data: the floor of every run."""
    code = "import joblib, pandas, shap, sklearn, xgboost, xai_cli.explain, xai_cli.data\njoblib.load('model.joblib')\n"
    return run_measured([python, "-c", code], timeout=timeout, cwd=cwd)


def explain_stage(python: str, path: Path, timeout: float, cwd: Path, profile: Path | None = None) -> dict:
    """Peak RSS and wall time of the whole CLI on ``path`` (under cProfile when ``profile`` is given)."""
    xai = Path(python).parent / "xai"
    command = [str(xai)] if xai.exists() and profile is None else [python, "-m", "xai_cli"]
    if profile is not None:
        command = [python, "-m", "cProfile", "-o", str(profile), "-m", "xai_cli"]
    out = cwd / f"out_{path.stem}"
    cmd = command + [
        "explain",
        "model.joblib",
        str(path),
        "--method",
        "tree",
        "--background",
        "background.csv",
        "--quiet",
        "--max-plots",
        "0",
        "--out",
        str(out),
    ]
    result = run_measured(cmd, timeout=timeout, cwd=cwd)
    result["output_bytes"] = {p.name: p.stat().st_size for p in out.glob("*") if p.is_file()} if out.exists() else {}
    return result


# --------------------------------------------------------------------------------------------------
# Report


def profile_summary(path: Path, top: int = 15) -> list[dict]:
    """The most expensive functions of a cProfile run by cumulative time, xai's own and the libraries'."""
    import pstats

    stats = pstats.Stats(str(path)).stats
    total = max(entry[3] for entry in stats.values())
    rows = []
    for (filename, line, function), (_, calls, own, cumulative, _) in stats.items():
        if ("/xai_cli/" in filename or "site-packages" in filename) and "typer/" not in filename:
            short = filename.split("/xai_cli/")[-1] if "/xai_cli/" in filename else filename.split("site-packages/")[-1]
            rows.append(
                {
                    "function": f"{short}:{line}({function})",
                    "calls": calls,
                    "cumulative_s": cumulative,
                    "own_s": own,
                    "share": cumulative / total,
                }
            )
    rows.sort(key=lambda r: -r["cumulative_s"])
    interesting = [r for r in rows if r["share"] < 0.97][:top]
    return interesting


def mb(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.0f} MB"


def slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of y against x."""
    if len(points) < 2:
        return float("nan")
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _ in points)


def read_slope_text(read_slopes: dict) -> str:
    """One sentence on the reader's RSS per row (empty when fewer than two sizes were read)."""
    parts = [
        f"{mode} {value / 1024:.2f} KB ({value / (N_FEATURES * 8):.1f}x the row's float64 size)"
        for mode, value in read_slopes.items()
        if value == value
    ]
    return ("Slope of peak RSS per row read: " + ", ".join(parts) + ".") if parts else ""


def too_big(n: int, explains: dict, timeout: float) -> str | None:
    """Why a CLI run on ``n`` rows should not be started, from the runs so far (None: go ahead)."""
    done = sorted((m, r["seconds"], r["peak_rss"]) for m, r in explains.items() if r["returncode"] == 0)
    if not done:
        return None
    if len(done) >= 2:
        seconds = done[-1][1] + slope([(m, t) for m, t, _ in done]) * (n - done[-1][0])
        rss = done[-1][2] + slope([(m, p) for m, _, p in done]) * (n - done[-1][0])
    else:
        seconds = done[0][1] * n / done[0][0]
        rss = done[0][2]
    available = memory_available()
    if rss > 0.5 * available:
        return f"estimated peak {rss / 2**30:.1f} GB > half of the {available / 2**30:.1f} GB available"
    if seconds > timeout:
        return f"estimated {seconds / 60:.0f} min > --timeout {timeout / 60:.0f} min"
    return None


def memory_available() -> float:
    """MemAvailable from /proc/meminfo, in bytes."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return float("inf")


def report(
    baseline: dict, reads: dict, explains: dict, skipped: dict, files: dict, args: argparse.Namespace
) -> tuple[str, dict]:
    modes = sorted({mode for _, mode in reads}, key=["whole", "streamed"].index)
    read_rows = []
    for n in sorted({n for n, _ in reads}):
        line = [f"{n:,}", mb(files[n].stat().st_size)]
        for mode in modes:
            r = reads.get((n, mode))
            status = "" if r["returncode"] == 0 else (" (timeout)" if r["timed_out"] else " (failed)")
            line += [mb(r["peak_rss"]) + status, f"{r['seconds']:.1f}"]
        read_rows.append(line)
    read_headers = ["rows", "CSV size"]
    for mode in modes:
        read_headers += [f"peak RSS, {mode}", f"seconds, {mode}"]
    explain_rows = []
    for n, r in sorted(explains.items()):
        status = "timeout" if r["timed_out"] else ("ok" if r["returncode"] == 0 else f"failed ({r['returncode']})")
        explain_rows.append(
            [
                f"{n:,}",
                mb(r["peak_rss"]),
                f"{r['seconds']:.1f}",
                f"{r['seconds'] / n * 1000:.2f}",
                mb(sum(r.get("output_bytes", {}).values())),
                status,
            ]
        )
    ok_explains = [(n, r["peak_rss"]) for n, r in explains.items() if r["returncode"] == 0]
    read_slopes = {
        mode: slope(
            [
                (n, r["peak_rss"])
                for (n, m), r in reads.items()
                if m == mode and r["returncode"] == 0 and n > BACKGROUND_ROWS
            ]
        )
        for mode in modes
    }
    # From the two largest runs only: small runs are still growing to their steady state (first chunks,
    # caches), which a fit over them would read as a per-row cost.
    explain_slope = slope(sorted(ok_explains)[-2:])
    # Marginal seconds per row (from the two largest runs) excludes the fixed start-up cost.
    done = sorted((n, r["seconds"]) for n, r in explains.items() if r["returncode"] == 0)
    per_row_seconds = [slope(done[-2:])] if len(done) >= 2 else [s / n for n, s in done]
    largest = max(ok_explains, default=(0, 0))
    extrapolated = []
    for n in (10_000, 100_000, 1_000_000):
        if ok_explains and explain_slope == explain_slope:
            rss = largest[1] + explain_slope * (n - largest[0])
            hours = (min(per_row_seconds) * n) / 3600 if per_row_seconds else float("nan")
            measured = explains.get(n)
            extrapolated.append(
                [
                    f"{n:,}",
                    mb(rss),
                    f"{hours:.2f} h",
                    mb(measured["peak_rss"]) if measured and measured["returncode"] == 0 else "not run",
                ]
            )
    text = [
        "# Memory: peak RSS of xai explain with a tree model",
        "",
        f"XGBoost regressor ({args.trees} trees of depth {args.depth}, {N_FEATURES} numeric columns), interventional Tree SHAP with a "
        f"{BACKGROUND_ROWS}-row --background. Peak RSS from wait4 (kernel high-water mark). "
        f"Imports of an explain run (joblib, pandas, shap, sklearn, xgboost, xai) + the model, no data: "
        f"{mb(baseline['peak_rss'])}. The {BACKGROUND_ROWS}-row line is the reader's own floor.",
        "",
        "## Reader alone",
        "",
        "whole = read_table + match_rows (the whole file in memory, as --background is read); "
        "streamed = open_table + match_frame chunk by chunk (as xai explain reads DATA).",
        "",
        markdown_table(read_headers, read_rows),
        "",
        read_slope_text(read_slopes),
        "",
        "## Whole CLI (xai explain --method tree --quiet --max-plots 0)",
        "",
        markdown_table(["rows", "peak RSS", "seconds", "ms per row", "output files", "status"], explain_rows),
        "",
        (
            f"Slope: {explain_slope / 1024:.1f} KB of peak RSS per explained row: memory is not flat."
            if explain_slope == explain_slope and explain_slope > 1024
            else f"Slope: {explain_slope / 1024:.2f} KB per row."
            if explain_slope == explain_slope
            else ""
        ),
    ]
    if extrapolated:
        text += [
            "",
            "## Extrapolated from the whole-CLI runs (linear in rows; wall time at the marginal measured rate)",
            "",
            markdown_table(["rows", "peak RSS (extrapolated)", "wall time (extrapolated)", "measured"], extrapolated),
        ]
    data = {
        "baseline": baseline,
        "read": {f"{n} {mode}": r for (n, mode), r in reads.items()},
        "read_slope_bytes_per_row": read_slopes,
        "explain": {str(n): r for n, r in explains.items()},
        "explain_skipped": {str(n): reason for n, reason in skipped.items()},
        "explain_slope_bytes_per_row": explain_slope,
    }
    if "profile" in explains.get(min(explains), {}) if explains else False:
        rows = explains[min(explains)]["profile"]
        text += [
            "",
            f"## Where the CLI's time goes ({min(explains):,} rows, cProfile, cumulative)",
            "",
            markdown_table(
                ["function", "calls", "cumulative s", "share of run"],
                [[r["function"], r["calls"], f"{r['cumulative_s']:.2f}", f"{r['share']:.0%}"] for r in rows],
            ),
        ]
    return "\n".join(text), data


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warn_if_busy()
    with tempfile.TemporaryDirectory(prefix="xai_memory_") as tmp:
        folder = Path(args.workdir or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"writing inputs into {folder}", file=sys.stderr)
        files = write_inputs(folder, args.rows + args.explain_rows, args.trees, args.depth)
        baseline = baseline_stage(args.python, args.timeout, folder)
        reads, explains, skipped = {}, {}, {}
        modes = ["whole"] + (["streamed"] if has_streaming_reader(args.python) else [])
        for n in [BACKGROUND_ROWS] + sorted(set(args.rows)):
            for mode in modes:
                result = read_stage(args.python, files[n], args.timeout, folder, streamed=mode == "streamed")
                reads[(n, mode)] = result
                print(f"   read {n:,} ({mode}): {mb(result['peak_rss'])} in {result['seconds']:.1f}s", file=sys.stderr)
        for n in sorted(set(args.explain_rows)):
            reason = too_big(n, explains, args.timeout)
            if reason:
                skipped[n] = reason
                print(f"   explain {n:,}: skipped ({reason})", file=sys.stderr)
                continue
            explains[n] = explain_stage(args.python, files[n], args.timeout, folder)
            print(f"   explain {n:,}: {mb(explains[n]['peak_rss'])} in {explains[n]['seconds']:.1f}s", file=sys.stderr)
        if args.profile and explains:
            smallest = min(explains)
            profile_path = folder / "explain.prof"
            explain_stage(args.python, files[smallest], args.timeout, folder, profile=profile_path)
            explains[smallest]["profile"] = profile_summary(profile_path)
        markdown, data = report(baseline, reads, explains, skipped, files, args)
    print(markdown)
    write_results(args.out, markdown, {"trees": args.trees, "depth": args.depth, **data})
    return 0


if __name__ == "__main__":
    sys.exit(main())
