"""Plots of explanations, written as PNG (and shap's interactive force plot as HTML).

Every PNG is drawn on an explicit :class:`matplotlib.figure.Figure` (never pyplot's global state),
saved atomically and released. matplotlib and shap are imported inside the functions, so importing
this module stays cheap (``xai --help`` must not pay for them).

Colours are the Okabe-Ito palette, safe for colour-blind readers: blue raises the prediction,
vermillion lowers it, and the lowering bars are also hatched so the two read apart in grey.

The force plot is drawn here rather than with ``shap.force_plot(..., matplotlib=True)``: shap's
matplotlib layout puts every label on one line, so with more than a handful of features, long names or
string values the labels run over each other (and over the base value), and its red/blue is fixed.
This one keeps shap's layout (the features that raise the output push from the left, those that lower
it from the right, meeting at the prediction) and gives each label its own line.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .explanation import Attribution, AttributionSummary, Explanation
from .output import save_figure, write_text

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

POSITIVE = "#0072B2"
NEGATIVE = "#D55E00"
POSITIVE_TEXT = "#005282"
NEGATIVE_TEXT = "#A04400"
NEGATIVE_HATCH = "///"
INK = "#222222"
MUTED = "#666666"
GRID = "#DDDDDD"
# Okabe-Ito, then a hatch per group, so groups stay apart in grey and for colour-blind readers.
GROUP_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
GROUP_HATCHES = ("", "///", "...", "xxx", "\\\\\\", "ooo", "---", "+++")

PNG_DPI = 150
FONT_SIZE = 11
SMALL_FONT_SIZE = 9.5
TITLE_FONT_SIZE = 12.5
MAX_NAME_CHARS = 48
MAX_VALUE_CHARS = 32
MAX_TITLE_ID_CHARS = 40
FORCE_NAME_CHARS = 30
FORCE_VALUE_CHARS = 20
FORCE_MAX_LABELS = 6
"""Labelled features on each side of a force plot; the waterfall beside it shows more."""
FORCE_WIDTH_INCHES = 12.0
FORCE_MIN_BAR_INCHES = 6.5
FORCE_MIN_LABEL_SHARE = 0.005
"""A force plot leaves unlabelled an effect under this share of its span: its segment is a sliver."""

METHOD_NAMES = {
    "tree_shap": "Tree SHAP",
    "linear_shap": "Linear SHAP",
    "kernel_shap": "Kernel SHAP",
    "lime": "LIME",
}

PlotKey = tuple[int, str, "str | None"]
"""Names one explanation among a run's: (row, method, class label)."""

PLOT_KINDS = ("force", "waterfall", "force_html")
_PLOT_SUFFIXES = {"force": ".png", "waterfall": ".png", "force_html": ".html"}
_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]")
MAX_STEM_CHARS = 80


# --------------------------------------------------------------------------------------------
# Text: how values, numbers and labels read on a plot (and in the report)
# --------------------------------------------------------------------------------------------


def method_name(method: str) -> str:
    """The display name of a method (``"kernel_shap"`` -> ``"Kernel SHAP"``)."""
    return METHOD_NAMES.get(method, method)


def is_missing(value: Any) -> bool:
    """Whether a feature value is missing: ``None``, NaN or pandas' ``NA``."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return True
    if isinstance(value, float) or hasattr(value, "dtype"):
        try:
            return math.isnan(value)
        except (TypeError, ValueError):
            return False
    return False


def format_number(number: float, digits: int = 4, *, signed: bool = False) -> str:
    """``number`` with about ``digits`` significant digits, without exponent where that stays short."""
    number = float(number)
    if not math.isfinite(number):
        return str(number)
    sign = "+" if signed and number > 0 else ""
    if number == 0:
        return "0"
    magnitude = abs(number)
    if 1e-4 <= magnitude < 1e7:
        if number.is_integer():
            return f"{sign}{int(number)}"
        decimals = max(0, digits - 1 - math.floor(math.log10(magnitude)))
        text = f"{number:.{decimals}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return sign + text
    return f"{sign}{number:.{digits}g}"


def format_value(value: Any, max_chars: int = MAX_VALUE_CHARS) -> str:
    """A feature value as shown to a person: numbers shortened, ``missing`` for an empty cell."""
    if is_missing(value):
        return "missing"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_number(value, 6)
    if hasattr(value, "item"):
        return format_value(value.item(), max_chars)
    return shorten(str(value), max_chars)


def shorten(text: str, max_chars: int) -> str:
    """``text`` cut in the middle with an ellipsis when longer than ``max_chars``.

    The middle goes rather than the end: long feature names often differ only in their suffix
    (``..._last_6_months`` and ``..._last_12_months``).
    """
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    head = (max_chars - 1) * 2 // 3
    tail = max_chars - 1 - head
    return f"{text[:head]}…{text[-tail:]}"


def attribution_label(attribution: Attribution, method: str) -> str:
    """How a bar is named: LIME's rule (``age > 40.50``), else ``feature = value``."""
    if method == "lime" and attribution.rule:
        return shorten(attribution.rule, MAX_NAME_CHARS + MAX_VALUE_CHARS)
    name = shorten(attribution.feature, MAX_NAME_CHARS)
    return f"{name} = {format_value(attribution.value)}"


def explanation_title(explanation: Explanation) -> str:
    """A plot title naming the method, the row (and its id) and the class.

    ``Kernel SHAP · row 7 (id cust-7) · class yes``; an id with brackets of its own is not put in
    brackets again: ``Kernel SHAP · Adelie-4 (no measurements) · row 1 · class Adelie``.
    """
    parts = [method_name(explanation.method), f"row {explanation.row}"]
    if explanation.id != str(explanation.row):
        row_id = shorten(explanation.id, MAX_TITLE_ID_CHARS)
        if any(bracket in row_id for bracket in "()[]"):
            parts[-1] = f"{row_id} · row {explanation.row}"
        else:
            parts[-1] += f" (id {row_id})"
    if explanation.class_label is not None:
        parts.append(f"class {shorten(explanation.class_label, MAX_TITLE_ID_CHARS)}")
    return " · ".join(parts)


def _mpl(text: str) -> str:
    """``text`` safe for matplotlib: a ``$`` in a name or value must not start mathtext."""
    return text.replace("$", r"\$")


def _minus(text: str) -> str:
    return text.replace("-", "\u2212") if text.startswith("-") else text


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def _new_figure(width: float, height: float, *, layout: str | None = "constrained") -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout=layout, facecolor="white")


def _width_for_labels(labels: Iterable[str], plot_inches: float) -> float:
    """A figure width that leaves the plot ``plot_inches`` wide beside the longest of ``labels``."""
    longest = max((len(label) for label in labels), default=0)
    return plot_inches + 0.5 + 0.085 * longest


def _style_axis(ax: Axes, *, grid_axis: str = "x") -> None:
    ax.tick_params(labelsize=FONT_SIZE, colors=INK, length=3)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.spines["bottom"].set_color(MUTED)
    ax.grid(axis=grid_axis, color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)


def figure_to_png_bytes(figure: Figure, *, dpi: int = PNG_DPI) -> bytes:
    """The PNG bytes of ``figure``, cropped to its contents so no label is cut off."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.15, facecolor="white")
    return buffer.getvalue()


def save_png(figure: Figure, path: str | os.PathLike) -> None:
    """Write ``figure`` to ``path`` as a PNG (atomically), cropped to its contents."""
    save_figure(figure, path, dpi=PNG_DPI, bbox_inches="tight", pad_inches=0.15, facecolor="white")


def _end_value(explanation: Explanation) -> float:
    """Where the bars end: base value plus every attribution (LIME: the local model's prediction)."""
    return float(explanation.base_value) + math.fsum(float(a.attribution) for a in explanation.attributions)


def _prediction_name(explanation: Explanation) -> str:
    return "local model" if explanation.method == "lime" else "prediction f(x)"


def _shows_model_prediction_apart(explanation: Explanation, end: float, span: float) -> bool:
    """Whether the model's prediction sits visibly apart from where the bars end.

    True for LIME (its local model is not the model) and for a SHAP explanation whose additivity gap
    is large enough to see.
    """
    return abs(float(explanation.prediction) - end) > 1e-3 * max(span, abs(end), 1e-12)


def _signed_colour(value: float) -> tuple[str, str]:
    """(bar colour, hatch) of an attribution."""
    return (POSITIVE, "") if value >= 0 else (NEGATIVE, NEGATIVE_HATCH)


def _bar_kwargs(value: float) -> dict[str, Any]:
    colour, hatch = _signed_colour(value)
    return {"color": colour, "hatch": hatch, "edgecolor": "white", "linewidth": 0.6}


def _direction_legend(figure: Figure, *, loc: str = "outside lower right") -> None:
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor=POSITIVE, edgecolor="white", label="raises the output"),
        Patch(
            facecolor=NEGATIVE,
            hatch=NEGATIVE_HATCH,
            edgecolor="white",
            label="lowers the output",
        ),
    ]
    figure.legend(handles=handles, loc=loc, ncols=2, fontsize=SMALL_FONT_SIZE, frameon=False)


def _plain_axis(ax: Axes) -> None:
    """Tick labels as plain numbers: no ``+1.2e2`` offset that a reader would have to add back."""
    ax.ticklabel_format(axis="x", style="plain", useOffset=False)
    ax.locator_params(axis="x", nbins=7)


def _digits_for(span: float, *values: float) -> int:
    """Significant digits that show a difference of ``span`` between numbers as large as ``values``."""
    largest = max((abs(v) for v in values), default=0.0)
    if span <= 0 or largest <= 0:
        return 4
    return int(min(10, max(4, math.ceil(math.log10(largest / span)) + 3)))


def _mark_number(value: float, digits: int, span: float) -> str:
    """A marked value (base value, prediction) as text; rounding noise next to ``span`` reads as 0."""
    return format_number(0.0 if abs(value) < 1e-9 * span else value, digits)


_LABEL_BOX = {"boxstyle": "square,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}


def _text_inches(text: str, fontsize: float = FONT_SIZE) -> float:
    """How wide ``text`` is drawn in matplotlib's default font, in inches (as Agg lays it out)."""
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    width, _, _ = RendererAgg(1, 1, 72).get_text_width_height_descent(text, FontProperties(size=fontsize), ismath=False)
    return width / 72


def _force_label(attribution: Attribution, method: str) -> str:
    """``feature = value   +0.12`` (LIME: ``rule   +0.12``), shorter than on other plots: two columns
    of them flank the bar."""
    if method == "lime" and attribution.rule:
        text = shorten(attribution.rule, FORCE_NAME_CHARS + FORCE_VALUE_CHARS)
    else:
        text = (
            f"{shorten(attribution.feature, FORCE_NAME_CHARS)} = {format_value(attribution.value, FORCE_VALUE_CHARS)}"
        )
    return f"{text}   {_minus(format_number(attribution.attribution, 3, signed=True))}"


def _force_margins(
    labels: Sequence[tuple[float, float, int]], low: float, high: float, bar_inches: float
) -> tuple[float, float]:
    """(left, right) inches the labels need beyond a bar axis ``bar_inches`` wide from ``low`` to ``high``.

    Each label is (x where it hangs, its width in inches, direction: -1 runs leftwards, +1 rightwards).
    """
    scale = bar_inches / (high - low)
    left = max([width - (x - low) * scale for x, width, direction in labels if direction < 0], default=0.0)
    right = max([width - (high - x) * scale for x, width, direction in labels if direction > 0], default=0.0)
    return max(left, 0.0), max(right, 0.0)


def force_plot_figure(explanation: Explanation, *, max_labels: int = FORCE_MAX_LABELS) -> Figure:
    """An additive force plot of one explanation, as a matplotlib Figure.

    Features that raise the output are stacked from the left up to the prediction, those that lower
    it from the right; the ``max_labels`` largest on each side get a ``feature = value`` label (LIME:
    its rule) and their signed attribution on a line of their own, linked to their segment. Effects
    too small to see (under FORCE_MIN_LABEL_SHARE of the plot's span) are left unlabelled, and the
    bar keeps at least FORCE_MIN_BAR_INCHES however long the labels are: the figure widens instead.
    """
    attributions = [a for a in explanation.attributions if float(a.attribution) != 0.0]
    base = float(explanation.base_value)
    end = _end_value(explanation)
    raising = sorted((a for a in attributions if a.attribution > 0), key=lambda a: -a.attribution)
    lowering = sorted((a for a in attributions if a.attribution < 0), key=lambda a: a.attribution)
    left = end - math.fsum(a.attribution for a in raising)
    right = end - math.fsum(a.attribution for a in lowering)
    prediction = float(explanation.prediction)
    show_model_prediction = _shows_model_prediction_apart(explanation, end, right - left)
    marks = [left, right, base] + ([prediction] if show_model_prediction else [])
    span = max(max(marks) - min(marks), 1e-9 * max(abs(end), 1.0), 1e-12)
    digits = _digits_for(span, *marks)

    def visible(side: list[Attribution]) -> int:
        return sum(1 for a in side[:max_labels] if abs(a.attribution) >= FORCE_MIN_LABEL_SHARE * span)

    labelled_up, labelled_down = visible(raising), visible(lowering)

    def segments(side: list[Attribution], direction: int) -> list[tuple[float, float]]:
        # (start, width): raising segments grow leftwards from the prediction, lowering ones rightwards.
        edge, placed = end, []
        for attribution in side:
            width = abs(attribution.attribution)
            start = edge - width if direction < 0 else edge
            placed.append((start, width))
            edge = start if direction < 0 else start + width
        return placed

    sides = [
        (raising, -1, POSITIVE_TEXT, labelled_up, segments(raising, -1)),
        (lowering, +1, NEGATIVE_TEXT, labelled_down, segments(lowering, +1)),
    ]
    low, high = min(marks) - 0.03 * span, max(marks) + 0.03 * span
    labels = [
        (start + width / 2, _text_inches(_force_label(side[i], explanation.method)) + 0.1, direction)
        for side, direction, _, labelled, placed in sides
        for i, (start, width) in enumerate(placed[:labelled])
    ]
    # The bar gets at least FORCE_MIN_BAR_INCHES and the labels what they need beside it; a figure
    # narrower than FORCE_WIDTH_INCHES gives the bar the difference.
    bar_inches = FORCE_MIN_BAR_INCHES
    for _ in range(3):
        margin_left, margin_right = _force_margins(labels, low, high, bar_inches)
        bar_inches = max(FORCE_MIN_BAR_INCHES, FORCE_WIDTH_INCHES - margin_left - margin_right)
    margin_left, margin_right = _force_margins(labels, low, high, bar_inches)
    per_inch = (high - low) / bar_inches

    # Vertical layout in "label lines": the bar sits just under 0, its labels hang below it one per
    # line, and the marks of the prediction and base value stand above it.
    label_lines = max(labelled_up, labelled_down, 1)
    bar_top, bar_bottom = 0.0, -0.6
    top = 1.75 if show_model_prediction else 1.0
    bottom = -1.0 - label_lines
    line_inches = 0.3
    # Laid out by hand, not by matplotlib's layout engine: it would shrink the bar to make room for
    # labels that the margins above already hold. Inches: title and scale above, legend below.
    axes_inches = (margin_left + bar_inches + margin_right, line_inches * (top - bottom))
    above, below, side = 0.62, 0.45, 0.1
    width, height = axes_inches[0] + 2 * side, axes_inches[1] + above + below
    figure = _new_figure(width, height, layout=None)
    ax = figure.add_axes((side / width, below / height, axes_inches[0] / width, axes_inches[1] / height))
    ax.set_ylim(bottom, top)
    # The labels are drawn inside the axes, so the layout cannot squeeze the bar to make room for them.
    ax.set_xlim(low - margin_left * per_inch, high + margin_right * per_inch)

    def draw_side(
        side: list[Attribution], direction: int, text_colour: str, labelled: int, placed: list[tuple[float, float]]
    ) -> None:
        for attribution, (start, width) in zip(side, placed, strict=True):
            ax.barh(
                (bar_top + bar_bottom) / 2,
                width,
                left=start,
                height=bar_top - bar_bottom,
                **_bar_kwargs(attribution.attribution),
            )
        # The outermost labelled segment takes the first line, so no label crosses a leader line.
        for line, index in enumerate(reversed(range(labelled))):
            attribution, x = side[index], placed[index][0] + placed[index][1] / 2
            y = -1.0 - line
            ax.plot([x, x], [bar_bottom, y], color=text_colour, linewidth=0.8, alpha=0.7)
            ax.plot([x], [y], marker="o", markersize=3, color=text_colour)
            ax.text(
                x + 0.05 * per_inch * direction,
                y,
                _mpl(_force_label(attribution, explanation.method)),
                ha="left" if direction > 0 else "right",
                va="center",
                fontsize=FONT_SIZE,
                color=text_colour,
                clip_on=False,
            )

    for side in sides:
        draw_side(*side)

    # The prediction and the base value, marked above the bar; their labels lean away from each other.
    end_right = end >= base
    ax.plot([end, end], [bar_bottom - 0.15, 0.55], color=INK, linewidth=1.8)
    ax.text(
        end,
        0.3,
        _minus(f"{_prediction_name(explanation)} = {_mark_number(end, digits, span)}"),
        ha="left" if end_right else "right",
        va="bottom",
        fontsize=FONT_SIZE,
        fontweight="bold",
        color=INK,
        bbox=_LABEL_BOX,
    )
    ax.plot([base, base], [bar_bottom, 0.55], color=MUTED, linewidth=1.2, linestyle=(0, (3, 2)))
    base_name = "intercept" if explanation.method == "lime" else "base value"
    ax.text(
        base,
        0.3,
        _minus(f"{base_name} = {_mark_number(base, digits, span)}"),
        ha="right" if end_right else "left",
        va="bottom",
        fontsize=FONT_SIZE,
        color=MUTED,
        bbox=_LABEL_BOX,
    )
    if show_model_prediction:
        ax.plot([prediction, prediction], [bar_bottom, 1.2], color=INK, linewidth=1.2, linestyle=":")
        ax.text(
            prediction,
            1.05,
            _minus(f"model prediction = {_mark_number(prediction, digits, span)}"),
            ha="left" if prediction >= end else "right",
            va="bottom",
            fontsize=SMALL_FONT_SIZE,
            color=INK,
            bbox=_LABEL_BOX,
        )

    hidden = len(attributions) - labelled_up - labelled_down
    if hidden > 0:
        figure.text(
            0.0,
            0.0,
            f"{hidden} smaller {'effect' if hidden == 1 else 'effects'} not labelled",
            ha="left",
            va="bottom",
            fontsize=SMALL_FONT_SIZE,
            color=MUTED,
        )

    ax.set_yticks([])
    from matplotlib.ticker import MaxNLocator

    # The scale spans the bar only, not the room the labels take beside it.
    ax.set_xticks([tick for tick in MaxNLocator(nbins=7).tick_values(low, high) if low <= tick <= high])
    ax.ticklabel_format(axis="x", style="plain", useOffset=False)
    ax.spines["top"].set_bounds(low, high)
    ax.xaxis.set_ticks_position("top")
    ax.tick_params(axis="x", labelsize=SMALL_FONT_SIZE, colors=MUTED, length=3)
    for side in ("bottom", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.spines["top"].set_color(MUTED)
    _direction_legend(figure, loc="lower right")
    figure.suptitle(
        _mpl(explanation_title(explanation)), fontsize=TITLE_FONT_SIZE, color=INK, x=0.0, y=1.0, ha="left", va="top"
    )
    return figure


def force_plot_png(explanation: Explanation, path: str | os.PathLike, *, max_labels: int = FORCE_MAX_LABELS) -> None:
    """Write the force plot of one explanation (see :func:`force_plot_figure`) as a PNG."""
    save_png(force_plot_figure(explanation, max_labels=max_labels), path)


def waterfall_figure(explanation: Explanation, max_features: int = 10) -> Figure:
    """A waterfall of one explanation, as a matplotlib Figure.

    From the base value at the bottom, each bar adds one feature's attribution, the largest at the
    top ending at the prediction; features past ``max_features`` are summed into one
    ``N other features`` bar at the bottom. The signed attributions stand in a column on the right.
    """
    shown = list(explanation.attributions[:max_features])
    rest = explanation.attributions[max_features:]
    labels = [attribution_label(a, explanation.method) for a in shown]
    values = [float(a.attribution) for a in shown]
    errors = [a.std_error for a in shown]
    if rest:
        labels.append(f"{len(rest)} other {'feature' if len(rest) == 1 else 'features'}")
        values.append(math.fsum(float(a.attribution) for a in rest))
        errors.append(None)

    # Bars are drawn bottom-up: the "other" bar first from the base value, the largest feature last.
    base = float(explanation.base_value)
    n_bars = len(values)
    starts = [0.0] * n_bars
    running = base
    for index in reversed(range(n_bars)):
        starts[index] = running
        running += values[index]
    end = running
    prediction = float(explanation.prediction)
    low = min([base, end] + [start + min(v, 0) for start, v in zip(starts, values, strict=True)])
    high = max([base, end] + [start + max(v, 0) for start, v in zip(starts, values, strict=True)])
    show_model_prediction = _shows_model_prediction_apart(explanation, end, high - low)
    if show_model_prediction:
        low, high = min(low, prediction), max(high, prediction)
    span = max(high - low, 1e-9 * max(abs(high), 1.0), 1e-12)
    digits = _digits_for(span, low, high)

    figure = _new_figure(_width_for_labels(labels, 7.0), 1.9 + 0.36 * max(n_bars, 1))
    ax = figure.add_subplot()
    _style_axis(ax)
    column = ax.get_yaxis_transform()
    for index, value in enumerate(values):
        y = n_bars - 1 - index
        ax.barh(y, value, left=starts[index], height=0.66, **_bar_kwargs(value))
        if index > 0:
            # A thin step from this bar's end up to where the bar above starts.
            bar_end = starts[index] + value
            ax.plot([bar_end, bar_end], [y + 0.33, y + 0.67], color=MUTED, linewidth=0.7)
        text = _minus(format_number(value, 3, signed=True))
        if errors[index] is not None:
            text += f" ± {format_number(errors[index], 2)}"
        ax.text(
            1.02,
            y,
            text,
            transform=column,
            ha="left",
            va="center",
            fontsize=SMALL_FONT_SIZE,
            color=POSITIVE_TEXT if value >= 0 else NEGATIVE_TEXT,
        )

    top, bottom = n_bars - 0.5, -0.5
    base_name = "intercept" if explanation.method == "lime" else "base value"
    ax.plot([base, base], [bottom - 0.35, top], color=MUTED, linewidth=1.1, linestyle=(0, (3, 2)))
    ax.text(
        base,
        bottom - 0.4,
        _minus(f"{base_name} = {_mark_number(base, digits, span)}"),
        ha="center",
        va="top",
        fontsize=SMALL_FONT_SIZE,
        color=MUTED,
        bbox=_LABEL_BOX,
    )
    ax.plot([end, end], [bottom, top + 0.35], color=INK, linewidth=1.4)
    ax.text(
        end,
        top + 0.4,
        _minus(f"{_prediction_name(explanation)} = {_mark_number(end, digits, span)}"),
        ha="center",
        va="bottom",
        fontsize=FONT_SIZE,
        fontweight="bold",
        color=INK,
        bbox=_LABEL_BOX,
    )
    if show_model_prediction:
        ax.plot([prediction, prediction], [bottom, top + 1.05], color=INK, linewidth=1.1, linestyle=":")
        ax.text(
            prediction,
            top + 1.1,
            _minus(f"model prediction = {_mark_number(prediction, digits, span)}"),
            ha="center",
            va="bottom",
            fontsize=SMALL_FONT_SIZE,
            color=INK,
            bbox=_LABEL_BOX,
        )

    ax.set_yticks(range(n_bars), [_mpl(labels[n_bars - 1 - y]) for y in range(n_bars)])
    ax.tick_params(axis="y", length=0, pad=6)  # a tick mark after a label reads as a trailing minus
    if rest:
        ax.get_yticklabels()[0].set_color(MUTED)
        ax.get_yticklabels()[0].set_fontstyle("italic")
    ax.set_ylim(bottom - 1.1, top + (1.8 if show_model_prediction else 1.1))
    ax.set_xlim(low - 0.06 * span, high + 0.06 * span)
    _plain_axis(ax)
    ax.set_xlabel(
        "output of the " + ("local model" if explanation.method == "lime" else "model"),
        fontsize=SMALL_FONT_SIZE,
        color=MUTED,
    )
    _direction_legend(figure)
    figure.suptitle(_mpl(explanation_title(explanation)), fontsize=TITLE_FONT_SIZE, color=INK, x=0.0, ha="left")
    return figure


def waterfall_png(explanation: Explanation, path: str | os.PathLike, max_features: int = 10) -> None:
    """Write the waterfall of one explanation (see :func:`waterfall_figure`) as a PNG."""
    save_png(waterfall_figure(explanation, max_features), path)


def mean_abs_attributions(
    explanations: Iterable[Explanation],
) -> dict[tuple[str, str | None], dict[str, float]]:
    """Mean |attribution| per feature, for each (method, class label) among ``explanations``.

    Features keep their first-seen order; a feature absent from an explanation counts as 0 there.
    """
    return AttributionSummary(explanations).means()


def _class_style(number: int, several: bool) -> tuple[str, str]:
    """(colour, hatch) of the ``number``-th class: Okabe-Ito colours, hatched so they differ in grey."""
    if not several:
        return POSITIVE, ""
    colour = GROUP_COLOURS[number % len(GROUP_COLOURS)]
    # Colours and hatches both cycle through 8; shifting the hatch by the round keeps every pair unique.
    hatch = GROUP_HATCHES[(number + number // len(GROUP_COLOURS)) % len(GROUP_HATCHES)]
    return colour, hatch


def _natural_key(label: Any) -> tuple[Any, ...]:
    """Sorts ``None`` first, then ``2`` before ``10`` and ``a`` before ``B``."""
    if label is None:
        return (0,)
    parts = re.split(r"(\d+)", str(label))
    return (1, *((0, int(part), "") if part.isdigit() else (1, 0, part.casefold()) for part in parts))


@dataclass(frozen=True)
class MethodSummary:
    """What one method's panel of the summary bar chart shows.

    ``values[label][feature]`` is the length of the bar (or segment) of that class:

    - one class per row (``--class predicted``; binary; regression): the sum of |attribution| over the
      rows explained for that class, divided by **all** the rows the method explained, so a feature's
      segments add up to its mean |attribution| over every row (``stacked`` is True);
    - every class for every row (``--class all``): the mean |attribution| for that class over the rows,
      one bar per class side by side: stacking them would add a row's classes together
      (``stacked`` is False).
    """

    method: str
    rows: int
    classes: list[str | None]
    values: dict[str | None, dict[str, float]]
    stacked: bool

    def total(self, feature: str) -> float:
        """The stacked bar's length (``stacked``), else the mean of the class bars."""
        total = math.fsum(self.values[label].get(feature, 0.0) for label in self.classes)
        return total if self.stacked else total / len(self.classes)


def method_summaries(summary: AttributionSummary) -> list[MethodSummary]:
    """The summary bar chart's numbers, per method in the order the methods were met."""
    means = summary.means()
    counts = summary.counts()
    methods = list(dict.fromkeys(method for method, _ in means))
    summaries = []
    for method in methods:
        classes = sorted((label for m, label in means if m == method), key=_natural_key)
        explained = sum(counts[(method, label)] for label in classes)
        # Every row once (one class per row) or every row once per class.
        stacked = explained <= summary.rows or len(classes) == 1
        if stacked:
            values = {
                label: {f: mean * counts[(method, label)] / explained for f, mean in means[(method, label)].items()}
                for label in classes
            }
            rows = explained
        else:
            values = {label: dict(means[(method, label)]) for label in classes}
            rows = max(counts[(method, label)] for label in classes)
        summaries.append(MethodSummary(method, rows, classes, values, stacked))
    return summaries


def summary_bar_figure(explanations: Sequence[Explanation] | AttributionSummary, max_features: int = 20) -> Figure:
    """Mean |attribution| per feature as horizontal bars, as a matplotlib Figure.

    One panel per method (each on its own scale: LIME's and SHAP's values are not in the same
    units), the features in the same order in every panel. Where each row was explained for one of
    several classes, a bar stacks one segment per class and the segments add up to the mean over
    all rows (see :class:`MethodSummary`); where each row was explained for every class, the classes
    stand side by side. Features are sorted by the number printed at their bar (with several
    methods: by their average share of each method's total, so no method decides alone); the top
    ``max_features`` are shown and the rest summed into one ``N other features`` bar.
    """
    summary = explanations if isinstance(explanations, AttributionSummary) else AttributionSummary(explanations)
    panels = method_summaries(summary)
    if not panels:
        raise ValueError("there are no explanations to plot")
    classes = sorted({label for panel in panels for label in panel.classes}, key=_natural_key)
    several_classes = len(classes) > 1
    grouped = any(not panel.stacked for panel in panels)
    features = list(
        dict.fromkeys(feature for panel in panels for label in panel.classes for feature in panel.values[label])
    )

    def share(feature: str) -> float:
        return math.fsum(
            panel.total(feature) / (math.fsum(panel.total(f) for f in features) or 1.0) for panel in panels
        )

    ranked = sorted(features, key=lambda feature: -share(feature))
    shown, rest = ranked[:max_features], ranked[max_features:]
    labels = [_mpl(shorten(feature, MAX_NAME_CHARS + 12)) for feature in shown]
    if rest:
        labels.append(f"{len(rest)} other {'feature' if len(rest) == 1 else 'features'}")

    def bar_values(panel: MethodSummary, label: str | None) -> list[float]:
        values = [panel.values[label].get(feature, 0.0) for feature in shown]
        if rest:
            values.append(math.fsum(panel.values[label].get(feature, 0.0) for feature in rest))
        return values

    n_rows = len(labels)
    rows_y = [n_rows - 1 - row for row in range(n_rows)]
    slots = len(classes) if grouped else 1
    row_inches = 0.3 if slots == 1 else max(0.3, 0.2 * slots + 0.08)
    panel_inches = 7.0 if len(panels) == 1 else 4.5
    figure = _new_figure(_width_for_labels(labels, panel_inches * len(panels)), 2.3 + row_inches * n_rows)
    axes = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, panel in zip(axes, panels, strict=True):
        _style_axis(ax)
        lefts = [0.0] * n_rows
        for label in panel.classes:
            number = classes.index(label)
            values = bar_values(panel, label)
            colour, hatch = _class_style(number, several_classes)
            style = {
                "color": colour,
                "hatch": hatch,
                "edgecolor": "white",
                "linewidth": 0.4,
                "label": _mpl(f"class {shorten(str(label), MAX_TITLE_ID_CHARS)}"),
            }
            if panel.stacked:
                ax.barh(rows_y, values, left=lefts, height=0.7, **style)
                lefts = [left + value for left, value in zip(lefts, values, strict=True)]
                continue
            height = 0.8 / len(panel.classes)
            offset = 0.4 - height * (panel.classes.index(label) + 0.5)
            ys = [y + offset for y in rows_y]
            ax.barh(ys, values, height=height * 0.92, **style)
            for y, value in zip(ys, values, strict=True):
                ax.text(value, y, " " + format_number(value, 3), va="center", ha="left", fontsize=8, color=MUTED)
        if panel.stacked:
            for y, total in zip(rows_y, lefts, strict=True):
                ax.text(
                    total,
                    y,
                    "  " + format_number(total, 3),
                    va="center",
                    ha="left",
                    fontsize=SMALL_FONT_SIZE,
                    color=MUTED,
                )
        ax.margins(x=0.14)
        ax.set_xlabel(
            f"mean |attribution| over {_rows_text(panel.rows)}"
            if panel.stacked
            else f"mean |attribution| per class over {_rows_text(panel.rows)}",
            fontsize=FONT_SIZE,
            color=INK,
        )
        if len(panels) > 1:
            ax.set_title(method_name(panel.method), fontsize=FONT_SIZE, fontweight="bold", color=INK, loc="left")
    axes[0].set_yticks(rows_y, labels)
    axes[0].tick_params(axis="y", length=0, pad=6)
    axes[0].set_ylim(-0.6, n_rows - 0.4)
    for ax in axes[1:]:
        ax.tick_params(axis="y", labelleft=False, length=0)
    if rest:
        axes[0].get_yticklabels()[-1].set_color(MUTED)
        axes[0].get_yticklabels()[-1].set_fontstyle("italic")

    figure.suptitle(_summary_title(panels, classes), fontsize=TITLE_FONT_SIZE, color=INK, x=0.0, ha="left")
    # What a bar (and its segments) is and how the bars are sorted: under the title when there is one
    # panel, else over the legend of the classes (or, with no legend, under the panels).
    note = _mpl(_summary_note(panels, several_classes, grouped))
    if len(panels) == 1:
        axes[0].set_title(note, loc="left", fontsize=SMALL_FONT_SIZE, color=MUTED)
    elif not several_classes:
        figure.supxlabel(note, x=0.0, ha="left", fontsize=SMALL_FONT_SIZE, color=MUTED)
    if several_classes:
        handles = {}
        for ax in axes:
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                handles.setdefault(label, handle)
        legend = figure.legend(
            list(handles.values()),
            list(handles),
            loc="outside lower center",
            ncols=min(len(handles), 4),
            fontsize=SMALL_FONT_SIZE,
            frameon=False,
            title=note if len(panels) > 1 else None,
            title_fontsize=SMALL_FONT_SIZE,
        )
        legend.get_title().set_color(MUTED)
    return figure


def _rows_text(rows: int) -> str:
    return f"{rows} {'row' if rows == 1 else 'rows'}"


def _summary_title(panels: Sequence[MethodSummary], classes: Sequence[str | None]) -> str:
    rows = max(panel.rows for panel in panels)
    grouped = any(not panel.stacked for panel in panels)
    title = f"Mean |attribution| per {'feature and class' if grouped else 'feature'} over {_rows_text(rows)}"
    if len(classes) == 1 and classes[0] is not None:
        title += f", class {shorten(str(classes[0]), MAX_TITLE_ID_CHARS)}"
    if len(panels) == 1:
        title = f"{method_name(panels[0].method)}: {title[0].lower()}{title[1:]}"
    return _mpl(title)


def _summary_note(panels: Sequence[MethodSummary], several_classes: bool, grouped: bool) -> str:
    """What a bar is, when it is not plain, and what the bars are sorted by."""
    if len(panels) > 1:
        order = "features sorted by their average share of each method's total"
    elif grouped and several_classes:
        order = "sorted by the mean over the classes"
    else:
        order = "sorted by the number shown"
    if several_classes and grouped:
        return f"Every row explained for every class: one bar per class, each a mean over all rows; {order}"
    if several_classes:
        return f"Each row explained for one class: a bar's segments add up to the mean over all rows; {order}"
    return order[0].upper() + order[1:]


def summary_bar_png(
    explanations: Sequence[Explanation] | AttributionSummary, path: str | os.PathLike, max_features: int = 20
) -> None:
    """Write the summary bar chart (see :func:`summary_bar_figure`) as a PNG."""
    save_png(summary_bar_figure(explanations, max_features), path)


# --------------------------------------------------------------------------------------------
# shap's interactive force plot
# --------------------------------------------------------------------------------------------


def _script_json(data: Any) -> str:
    """JSON that cannot close or open a tag inside ``<script>`` (a CSV cell may hold ``</script>``)."""
    text = json.dumps(data, allow_nan=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


def explanation_from_dict(document: Mapping[str, Any]) -> Explanation:
    """An :class:`Explanation` back from its JSON form (one item of ``attributions.json``'s list)."""
    return Explanation(
        int(document["row"]),
        str(document["id"]),
        str(document["method"]),
        document.get("class"),
        float(document["prediction"]),
        float(document["base_value"]),
        [
            Attribution(
                a["feature"], a.get("value"), float(a["attribution"]), rule=a.get("rule"), std_error=a.get("std_error")
            )
            for a in document.get("attributions") or []
        ],
        dict(document.get("quality") or {}),
    )


def force_plot_data(explanation: Explanation | Mapping[str, Any]) -> dict[str, Any]:
    """The data of shap's interactive force plot for one explanation (its ``AdditiveForceVisualizer``).

    Takes the explanation or its JSON form.
    """
    import numpy as np
    import shap

    if not isinstance(explanation, Explanation):
        explanation = explanation_from_dict(explanation)
    lime = explanation.method == "lime"
    names = [a.rule if lime and a.rule else a.feature for a in explanation.attributions]
    # shap shows "name = value"; LIME's rule already says both, so it gets no value.
    values = np.array(
        [None if lime and a.rule else format_value(a.value, 200) for a in explanation.attributions],
        dtype=object,
    )
    out_name = "local model" if lime else "f(x)"
    visualizer = shap.force_plot(
        float(explanation.base_value),
        np.array([float(a.attribution) for a in explanation.attributions], dtype=float),
        values,
        feature_names=names,
        out_names=out_name,
        plot_cmap=[POSITIVE, NEGATIVE],
        matplotlib=False,
        show=False,
    )
    data = dict(visualizer.data)
    data["labelMargin"] = 20
    return data


def force_plot_script(data: Mapping[str, Any], element_id: str) -> str:
    """The ``<div>`` and inline ``<script>`` that draw one interactive force plot (needs shap's bundle)."""
    return (
        f'<div id="{element_id}" class="xai-force"></div>\n'
        "<script>\n"
        "if (window.SHAP) SHAP.ReactDom.render(\n"
        f"  SHAP.React.createElement(SHAP.AdditiveForceVisualizer, {_script_json(data)}),\n"
        f"  document.getElementById({_script_json(element_id)}));\n"
        "</script>\n"
    )


def shap_bundle_script() -> str:
    """shap's force-plot JavaScript as one inline ``<script>`` (no network request)."""
    from shap.plots._force import getjs

    return getjs()


def force_plot_html(explanation: Explanation, path: str | os.PathLike) -> None:
    """Write shap's interactive force plot of one explanation as a standalone HTML page.

    The JavaScript is inlined and the page fetches nothing, so it opens offline from ``file://``.
    Unlike ``shap.save_html``, the plot's data is escaped for its ``<script>``: a feature value such as
    ``</script><script>...`` stays data.
    """
    from html import escape

    title = escape(explanation_title(explanation))
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">\n"
        f"<title>{title}</title>\n"
        "<style>body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:1.5rem;"
        "color:#222}h1{font-size:1.15rem;font-weight:600}</style>\n"
        f"{shap_bundle_script()}\n</head>\n<body>\n<h1>{title}</h1>\n"
        f"{force_plot_script(force_plot_data(explanation), 'xai-force-plot')}"
        "<noscript>This plot needs JavaScript.</noscript>\n</body>\n</html>\n"
    )
    write_text(path, page)


# --------------------------------------------------------------------------------------------
# Per-row plot files: names and writing
# --------------------------------------------------------------------------------------------


def plot_key(explanation: Explanation | Mapping[str, Any]) -> PlotKey:
    """The key of one explanation's plots: (row, method, class label); takes an object or its dict."""
    if isinstance(explanation, Explanation):
        return (explanation.row, explanation.method, explanation.class_label)
    return (int(explanation["row"]), str(explanation["method"]), explanation.get("class"))


def safe_file_part(text: str) -> str:
    """``text`` with every character but letters, digits, ``.``, ``_`` and ``-`` made ``_``."""
    safe = _UNSAFE_FILE_CHARS.sub("_", text)[:MAX_STEM_CHARS]
    return safe if safe.strip(".") else safe.replace(".", "_") or "_"


def plot_stems(explanations: Sequence[Explanation | Mapping[str, Any]]) -> dict[PlotKey, str]:
    """A file stem per explanation, unique in the run, as the contract names plot files.

    The stem is the row's id made safe for a file name, so the first explanation of a row (the
    run's first method, the row's first class) is ``force_<id>.png`` as the contract says; the
    others add ``_<method>`` and ``_<class>`` where they differ from it. Where two rows would get one
    name, the row number is appended to each of them.
    """
    keys: list[PlotKey] = []
    ids: dict[int, str] = {}
    for explanation in explanations:
        keys.append(plot_key(explanation))
        row_id = explanation.id if isinstance(explanation, Explanation) else str(explanation["id"])
        ids.setdefault(keys[-1][0], row_id)
    first_method = keys[0][1] if keys else None
    first_class: dict[int, str | None] = {}
    for row, _, label in keys:
        first_class.setdefault(row, label)

    def stem(key: PlotKey, with_row: bool) -> str:
        row, method, label = key
        parts = [safe_file_part(ids[row])]
        if with_row:
            parts.append(str(row))
        if method != first_method:
            parts.append(method)
        if label != first_class[row]:
            parts.append(safe_file_part("none" if label is None else label))
        return "_".join(parts)

    stems = {key: stem(key, with_row=False) for key in keys}
    rows_by_stem: dict[str, set[int]] = {}
    for key, name in stems.items():
        rows_by_stem.setdefault(name, set()).add(key[0])
    stems = {key: stem(key, with_row=len(rows_by_stem[name]) > 1) for key, name in stems.items()}
    if len(set(stems.values())) < len(stems):
        # A pathological mix of ids ("a" in row 1, "a_1" elsewhere): the row number everywhere is unique.
        stems = {key: stem(key, with_row=True) for key in keys}
    return stems


def row_plot_files(
    explanations: Sequence[Explanation | Mapping[str, Any]],
    plots_dir: str | os.PathLike,
    *,
    max_plots: int = 20,
) -> dict[PlotKey, dict[str, Path]]:
    """The per-row plot files of the first ``max_plots`` rows: key -> {kind: path} (kinds: PLOT_KINDS).

    ``force`` is ``force_<stem>.png``, ``waterfall`` ``waterfall_<stem>.png`` and ``force_html``
    ``force_<stem>.html``, all directly inside ``plots_dir``.
    """
    plots_dir = Path(plots_dir)
    plotted_rows: list[int] = []
    for explanation in explanations:
        row = plot_key(explanation)[0]
        if row not in plotted_rows and len(plotted_rows) < max_plots:
            plotted_rows.append(row)
    files: dict[PlotKey, dict[str, Path]] = {}
    for key, stem in plot_stems(explanations).items():
        if key[0] in plotted_rows:
            files[key] = {
                kind: plots_dir / f"{kind.removesuffix('_html')}_{stem}{_PLOT_SUFFIXES[kind]}" for kind in PLOT_KINDS
            }
    return files


def write_row_plots(
    explanations: Sequence[Explanation],
    plots_dir: str | os.PathLike,
    *,
    max_plots: int = 20,
    max_features: int = 10,
    interactive: bool = True,
) -> dict[PlotKey, dict[str, Path]]:
    """Write the force plot (PNG; HTML when ``interactive``) and waterfall of the first ``max_plots`` rows.

    Returns the files written, as :func:`row_plot_files` names them (``force_html`` left out when
    not ``interactive``); pass it on to :func:`xai_cli.report.explain_report_html`.
    """
    files = row_plot_files(explanations, plots_dir, max_plots=max_plots)
    written: dict[PlotKey, dict[str, Path]] = {}
    for explanation in explanations:
        key = plot_key(explanation)
        if key not in files:
            continue
        paths = dict(files[key])
        force_plot_png(explanation, paths["force"])
        waterfall_png(explanation, paths["waterfall"], max_features)
        if interactive:
            force_plot_html(explanation, paths["force_html"])
        else:
            del paths["force_html"]
        written[key] = paths
    return written
