"""Write a run's files into ``--out``: JSON, long CSV, plots and the report, each atomically.

The CSV is streamed (rows are appended as chunks finish, into a temporary file renamed at the end),
so a long run never holds its CSV in memory and an interrupted one leaves the previous file intact.
"""

from __future__ import annotations

import csv
import re
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from xai_cli.explanation import CSV_HEADER, Explanation, ExplanationDocument
from xai_cli.output import atomic_path, write_json, write_text


def safe_file_stems(ids_in_order: list[tuple[int, str]]) -> dict[int, str]:
    """A file-name-safe stem per row: characters other than letters, digits, ``.``, ``_``, ``-``
    become ``_``, and the row number is appended where two ids would collide."""
    stems: dict[int, str] = {}
    taken: set[str] = set()
    for row, identifier in ids_in_order:
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", identifier)[:100] or "_"
        if stem in taken:
            stem = f"{stem}_{row}"
        taken.add(stem)
        stems[row] = stem
    return stems


class StreamedCsv:
    """``attributions.csv`` written as explanations arrive, renamed into place on success."""

    def __init__(self, path: Path):
        self._stack = ExitStack()
        temporary = self._stack.enter_context(atomic_path(path))
        self._handle = self._stack.enter_context(open(temporary, "w", newline="", encoding="utf-8"))
        self._writer = csv.writer(self._handle)
        self._writer.writerow(CSV_HEADER)

    def add(self, explanations: list[Explanation]) -> None:
        for explanation in explanations:
            self._writer.writerows(explanation.csv_rows())

    def finish(self) -> None:
        self._stack.close()

    def abandon(self, error: BaseException) -> None:
        self._stack.__exit__(type(error), error, error.__traceback__)


def write_explain_outputs(document: ExplanationDocument, out_dir: Path, *, max_plots: int) -> dict[str, Any]:
    """Write ``attributions.json``, the plots and ``report.html``; return the plot files per row."""
    from xai_cli import plots, report

    plots_dir = out_dir / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    first_of_row: dict[int, Explanation] = {}
    for explanation in document.explanations:
        first_of_row.setdefault(explanation.row, explanation)
    stems = safe_file_stems([(row, e.id) for row, e in first_of_row.items()])
    plot_files: dict[str, dict[str, Path]] = {}
    for row, explanation in list(first_of_row.items())[:max_plots]:
        stem = stems[row]
        files = {
            "force_png": plots_dir / f"force_{stem}.png",
            "force_html": plots_dir / f"force_{stem}.html",
            "waterfall_png": plots_dir / f"waterfall_{stem}.png",
        }
        plots.force_plot_png(explanation, files["force_png"])
        plots.force_plot_html(explanation, files["force_html"])
        plots.waterfall_png(explanation, files["waterfall_png"])
        plot_files[explanation.id] = files
    if document.explanations:
        plots.summary_bar_png(document.explanations, plots_dir / "summary_bar.png")
    as_dict = document.to_dict()
    write_json(out_dir / "attributions.json", as_dict)
    write_text(
        out_dir / "report.html",
        report.explain_report_html(as_dict, plots_dir, plot_files=plot_files, max_plots=max_plots),
    )
    return plot_files
