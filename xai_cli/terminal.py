"""What the commands show on a terminal: rich tables of results, warnings, where files went.

Part of the CLI layer (it prints); the library never imports it. Colours follow rich's rules:
none when stdout is not a terminal or ``NO_COLOR`` is set.
"""

from __future__ import annotations

from pathlib import Path

from xai_cli.explanation import Explanation, ExplanationDocument

TOP_FEATURES = 3


def make_console(*, stderr: bool = False):
    """A rich Console; with ``NO_COLOR`` set, no escape codes at all (rich alone keeps bold)."""
    import os

    from rich.console import Console

    return Console(stderr=stderr, color_system=None if os.environ.get("NO_COLOR") else "auto")


MAX_TABLE_ROWS = 50


def print_explanations(document: ExplanationDocument, out_dir: Path, *, total: int | None = None) -> None:
    """A table of the top features per row and method, then warnings and the output folder."""
    from rich.table import Table

    console = make_console()
    space = document.model.get("output")
    table = Table(title=f"Top features per row ({space})", title_justify="left", expand=True)
    table.add_column("row", overflow="ellipsis", max_width=16, no_wrap=True)
    table.add_column("method", no_wrap=True)
    table.add_column("class", overflow="ellipsis", max_width=10, no_wrap=True)
    table.add_column("pred", justify="right", no_wrap=True)
    table.add_column("top features", overflow="fold", ratio=1, min_width=26)
    table.add_column("quality", no_wrap=True)
    for explanation in document.explanations[:MAX_TABLE_ROWS]:
        table.add_row(
            _short_id(explanation.id),
            explanation.method.removesuffix("_shap"),
            "" if explanation.class_label is None else explanation.class_label,
            f"{explanation.prediction:.3g}",
            _top_features(explanation),
            _quality(explanation),
        )
    console.print(table)
    hidden = (total if total is not None else len(document.explanations)) - min(
        MAX_TABLE_ROWS, len(document.explanations)
    )
    if hidden > 0:
        console.print(f"... and {hidden} more explanations in {out_dir / 'attributions.json'}")
    for warning in document.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", markup=True, highlight=False)
    console.print(f"wrote {out_dir}/attributions.json, attributions.csv, plots/, report.html", highlight=False)


def _short_id(identifier: str, width: int = 16) -> str:
    """An id that fits the column, cut in the middle: ids often differ only at their end."""
    if len(identifier) <= width:
        return identifier
    head = (width - 1) // 2
    return f"{identifier[:head]}…{identifier[-(width - 1 - head) :]}"


def _top_features(explanation: Explanation) -> str:
    parts = []
    for attribution in explanation.attributions[:TOP_FEATURES]:
        value = "missing" if attribution.value is None else attribution.value
        label = f"{attribution.feature}={value}"
        parts.append(f"{attribution.attribution:+.3f} {label}")
    return "\n".join(parts)


def _quality(explanation: Explanation) -> str:
    quality = explanation.quality
    if "r2" in quality:
        return f"R² {quality['r2']:.2f}" if quality["r2"] >= 0.5 else f"[yellow]R² {quality['r2']:.2f}[/yellow]"
    if quality.get("exact"):
        return "exact"
    if "max_std_error" in quality:
        return f"± {quality['max_std_error']:.2g}"
    return ""
