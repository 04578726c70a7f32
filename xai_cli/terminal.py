"""What the commands show on a terminal: rich tables of results, warnings, where files went.

Part of the CLI layer (it prints); the library never imports it. Colours follow rich's rules:
none when stdout is not a terminal or ``NO_COLOR`` is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from xai_cli.explanation import Attribution, Explanation, ExplanationDocument
from xai_cli.plots import format_number, format_value, method_name, shorten

TOP_FEATURES = 3
MAX_TABLE_ROWS = 50
MAX_ID_CHARS = 14
MAX_WIDE_ID_CHARS = 32
MAX_VALUE_CHARS = 14
MIN_NAME_CHARS = 8
MIN_FEATURES_WIDTH = 30
MAX_FEATURES_WIDTH = 72
POSITIVE_STYLE = "blue"
NEGATIVE_STYLE = "dark_orange3"
ATTRIBUTION_GAP = 2
"""Spaces at least between ``feature=value`` and its attribution."""


def make_console(*, stderr: bool = False):
    """A rich Console; with ``NO_COLOR`` set, no escape codes at all (rich alone keeps bold)."""
    import os

    from rich.console import Console

    return Console(stderr=stderr, color_system=None if os.environ.get("NO_COLOR") else "auto")


def print_warning(console, warning: str) -> None:
    """One ``warning:`` line. On a terminal rich wraps it at word boundaries to the window; piped
    into a cron mail or a log it is never wrapped, since a warning broken at 80 columns there reads
    as several."""
    from rich.text import Text

    console.print(Text.assemble(("warning:", "yellow"), " ", warning), soft_wrap=not console.is_terminal)


@dataclass(frozen=True)
class _Column:
    header: str
    cells: list[list[str]]
    """Each table row's lines in this column."""
    justify: str = "left"

    @property
    def width(self) -> int:
        from rich.cells import cell_len

        lines = [line for cell in self.cells for line in cell] + self.header.split("\n")
        return max(cell_len(line) for line in lines)


def print_explanations(document: ExplanationDocument, out_dir: Path, *, total: int | None = None) -> None:
    """A table of the top features per row and method, then warnings and the output folder.

    The table is laid out for the terminal's width: the top-features column takes what the others
    leave, and each of its entries (``feature=value`` with its attribution at the right) stays on
    one line, the name shortened in the middle where it must, numbers as the plots write them.
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    console = make_console()
    explanations = document.explanations[:MAX_TABLE_ROWS]
    methods = list(dict.fromkeys(e.method for e in explanations))
    with_class = any(e.class_label is not None for e in explanations)
    columns = [
        _row_column(explanations, with_class, MAX_ID_CHARS),
        _Column(
            "method\nquality" if len(methods) > 1 else "quality",
            [([_short_method(e.method)] if len(methods) > 1 else []) + [_quality(e)] for e in explanations],
        ),
        _Column("pred", [[format_number(e.prediction, 3)] for e in explanations], justify="right"),
    ]
    # Box and padding of these columns and the features': a border before each column and after the
    # last, a space each side of every cell.
    frame = (len(columns) + 2) + 2 * (len(columns) + 1)
    room = console.width - frame - sum(column.width for column in columns)
    widest = max((len(_entry(a, MAX_FEATURES_WIDTH, fit=False)) for e in explanations for a in _top(e)), default=0)
    features_width = max(MIN_FEATURES_WIDTH, min(room, widest, MAX_FEATURES_WIDTH))
    if room > features_width:  # room to spare: ids and classes are cut less
        spare = min(room - features_width, MAX_WIDE_ID_CHARS - MAX_ID_CHARS)
        columns[0] = _row_column(explanations, with_class, MAX_ID_CHARS + spare)

    title = "Top features per row"
    details = ([method_name(methods[0])] if len(methods) == 1 else []) + [str(document.model.get("output"))]
    table = Table(title=f"{title} ({', '.join(details)})", title_justify="left", box=box.SQUARE, header_style="bold")
    for column in columns:
        table.add_column(column.header, justify=column.justify, no_wrap=True, overflow="ellipsis")
    table.add_column(
        "top features\n" + "feature=value".ljust(features_width - len("attribution")) + "attribution",
        width=features_width,
        no_wrap=True,
        overflow="ellipsis",
    )
    for index, explanation in enumerate(explanations):
        cells = [Text("\n".join(column.cells[index])) for column in columns]
        if _quality_is_poor(explanation):
            cells[1].stylize("yellow")
        entries = [_entry_text(a, features_width) for a in _top(explanation)]
        table.add_row(*cells, Text("\n").join(entries) if entries else Text("no attributions", style="dim"))
    console.print(table)
    hidden = (total if total is not None else len(document.explanations)) - len(explanations)
    if hidden > 0:
        console.print(f"... and {hidden} more explanations in {out_dir / 'attributions.json'}", highlight=False)
    for warning in document.warnings:
        print_warning(console, warning)
    console.print(f"wrote {out_dir}/attributions.json, attributions.csv, plots/, report.html", highlight=False)


def _row_column(explanations: list[Explanation], with_class: bool, max_chars: int) -> _Column:
    """The row's id, and under it the class explained."""
    return _Column(
        "row\nclass" if with_class else "row",
        [
            [shorten(e.id, max_chars)] + ([shorten(e.class_label or "", max_chars)] if with_class else [])
            for e in explanations
        ],
    )


def _top(explanation: Explanation) -> list[Attribution]:
    return explanation.attributions[:TOP_FEATURES]


def _entry(attribution: Attribution, width: int, *, fit: bool = True) -> str:
    """``feature=value`` and the signed attribution at the right, in ``width`` characters.

    Long names are cut in the middle (names often differ only at their end), long values too.
    """
    number = format_number(attribution.attribution, 3, signed=True)
    value = format_value(attribution.value, MAX_VALUE_CHARS)
    name = " ".join(attribution.feature.split())
    if fit:
        room_for_name = width - len(number) - ATTRIBUTION_GAP - len("=") - len(value)
        if room_for_name < MIN_NAME_CHARS:
            value = shorten(value, max(1, len(value) - (MIN_NAME_CHARS - room_for_name)))
            room_for_name = width - len(number) - ATTRIBUTION_GAP - len("=") - len(value)
        name = shorten(name, max(1, room_for_name))
    label = f"{name}={value}"
    gap = max(ATTRIBUTION_GAP, width - len(label) - len(number)) if fit else ATTRIBUTION_GAP
    return f"{label}{' ' * gap}{number}"


def _entry_text(attribution: Attribution, width: int):
    """:func:`_entry` with the attribution coloured: blue raises the output, orange lowers it."""
    from rich.text import Text

    entry = _entry(attribution, width)
    number = len(format_number(attribution.attribution, 3, signed=True))
    text = Text(entry)
    text.stylize(POSITIVE_STYLE if attribution.attribution >= 0 else NEGATIVE_STYLE, len(entry) - number)
    return text


def _short_method(method: str) -> str:
    return method.removesuffix("_shap")


def _quality_is_poor(explanation: Explanation) -> bool:
    r2 = explanation.quality.get("r2")
    return r2 is not None and r2 < 0.5


def _quality(explanation: Explanation) -> str:
    quality = explanation.quality
    if "r2" in quality:
        return f"R² {quality['r2']:.2f}" + (" ⚠" if _quality_is_poor(explanation) else "")
    if quality.get("exact"):
        return "exact"
    if "max_std_error" in quality:
        return f"± {format_number(quality['max_std_error'], 2)}"
    return ""
