"""Write a run's files into ``--out``: JSON, long CSV, plots and the report, each atomically.

The CSV is streamed (rows are appended as chunks finish, into a temporary file renamed at the end),
so a long run never holds its CSV in memory and an interrupted one leaves the previous file intact.
"""

from __future__ import annotations

import csv
from contextlib import ExitStack
from pathlib import Path

from xai_cli.explanation import CSV_HEADER, Explanation, ExplanationDocument
from xai_cli.output import atomic_path, write_json, write_text


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


def write_explain_outputs(document: ExplanationDocument, out_dir: Path, *, max_plots: int) -> None:
    """Write ``attributions.json``, the plots and ``report.html`` into ``out_dir``."""
    from xai_cli import plots, report

    plots_dir = out_dir / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    plot_files = plots.write_row_plots(document.explanations, plots_dir, max_plots=max_plots)
    if document.explanations:
        plots.summary_bar_png(document.explanations, plots_dir / "summary_bar.png")
    as_dict = document.to_dict()
    write_json(out_dir / "attributions.json", as_dict)
    page = report.explain_report_html(as_dict, plots_dir, plot_files=plot_files, max_plots=max_plots)
    write_text(out_dir / "report.html", page)
