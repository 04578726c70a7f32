"""Write an explain run's files into ``--out`` as explanations arrive, each file atomically.

Explanations stream: the CSV lines and the JSON explanations go to temporary files as batches
finish, the summary is accumulated, and only the first explanations (for the report, the plots and
the terminal) stay in memory. So a million rows take the memory of a few thousand, and an
interrupted or failed run leaves every earlier output untouched.
"""

from __future__ import annotations

import csv
import json
import shutil
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from xai_cli.explanation import CSV_HEADER, AttributionSummary, Explanation, ExplanationDocument
from xai_cli.output import atomic_path, replaced_directory, write_text

# Explanations kept in memory for the report's table and the terminal; the JSON and CSV hold all.
KEPT_EXPLANATIONS = 2000
_SPLICE = "\x00explanations\x00"


class ExplainWriter:
    """``attributions.csv`` and ``attributions.json`` written as explanations arrive.

    ``finish`` renames every file into place; ``abandon`` removes the temporary files, so readers
    see the old outputs or the new ones, never a mix.
    """

    def __init__(self, out_dir: Path, *, keep: int = KEPT_EXPLANATIONS):
        self.out_dir = out_dir
        self.keep = keep
        self.kept: list[Explanation] = []
        self.summary = AttributionSummary()
        self.count = 0
        self._stack = ExitStack()
        out_dir.mkdir(parents=True, exist_ok=True)
        csv_path = self._stack.enter_context(atomic_path(out_dir / "attributions.csv"))
        self._csv_handle = self._stack.enter_context(open(csv_path, "w", newline="", encoding="utf-8"))
        self._csv = csv.writer(self._csv_handle)
        self._csv.writerow(CSV_HEADER)
        self._json_path = self._stack.enter_context(atomic_path(out_dir / "attributions.json"))
        self._spool: IO[str] = self._stack.enter_context(
            open(self._json_path.with_suffix(".explanations"), "w+", encoding="utf-8")
        )

    def add(self, explanations: list[Explanation]) -> None:
        for explanation in explanations:
            self._csv.writerows(explanation.csv_rows())
            self._spool.write(
                (",\n" if self.count else "") + "    " + json.dumps(explanation.to_dict(), allow_nan=False)
            )
            self.summary.add(explanation)
            if len(self.kept) < self.keep:
                self.kept.append(explanation)
            self.count += 1

    def finish(self, document: ExplanationDocument, *, max_plots: int) -> None:
        """Write the JSON (the document around every spooled explanation), plots and report."""
        from xai_cli import plots, report

        head, tail = json.dumps({**document.to_dict(), "explanations": _SPLICE}, indent=2, allow_nan=False).split(
            json.dumps(_SPLICE)
        )
        self._spool.flush()
        self._spool.seek(0)
        with open(self._json_path, "w", encoding="utf-8") as handle:
            handle.write(head + "[\n")
            shutil.copyfileobj(self._spool, handle)
            handle.write("\n  ]" + tail + "\n")
        Path(self._spool.name).unlink()

        # plots/ holds this run's plots only: the old ones come back if the run fails or is interrupted.
        with replaced_directory(self.out_dir / "plots") as plots_dir:
            plot_files = plots.write_row_plots(self.kept, plots_dir, max_plots=max_plots)
            if self.count:
                plots.summary_bar_png(self.summary, plots_dir / "summary_bar.png")
            shown = {**document.to_dict(), "explanations": [e.to_dict() for e in self.kept]}
            page = report.explain_report_html(shown, plots_dir, plot_files=plot_files, max_plots=max_plots)
        self._stack.close()
        write_text(self.out_dir / "report.html", page)

    def abandon(self, error: BaseException) -> None:
        spool = Path(self._spool.name)
        self._stack.__exit__(type(error), error, error.__traceback__)
        spool.unlink(missing_ok=True)

    @property
    def json_path(self) -> Path:
        return self.out_dir / "attributions.json"
