"""Charts of ``xai importance``: one bar chart per method, and the agreement between methods as a heat map.

Drawn on explicit matplotlib Figures with the explain plots' palette and text helpers
(:mod:`xai_cli.plots`); matplotlib is imported inside the functions, so importing this module
stays cheap. The functions take the ``importance.json`` document (or one method's part of it), so
a chart can be redrawn from a saved run.
"""

from __future__ import annotations

import math
import textwrap
from typing import TYPE_CHECKING, Any

from xai_cli.importance import AVERAGED_KINDS, METHOD_TITLES, kind_title, rows_used
from xai_cli.plots import (
    FONT_SIZE,
    INK,
    MAX_NAME_CHARS,
    MUTED,
    NEGATIVE,
    NEGATIVE_HATCH,
    POSITIVE,
    SMALL_FONT_SIZE,
    TITLE_FONT_SIZE,
    _minus,
    _mpl,
    _new_figure,
    _style_axis,
    _width_for_labels,
    format_number,
    shorten,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_BARS = 20
# Feature labels are cut in the middle beyond this many characters (longer where that is what
# keeps two labels apart).
MAX_LABEL_CHARS = MAX_NAME_CHARS + 12
# Width of the plotting area beside the labels, in inches: room for five x ticks of up to eight
# characters and a value label after the longest bar.
BAR_PANEL_INCHES = 6.0
# ColorBrewer's red-blue diverging map reads for the common colour-vision deficiencies; blue is
# agreement (as the explain plots' blue is a positive effect), red is opposite rankings.
AGREEMENT_COLOURS = "RdBu"
CELL_INCHES = 0.85


def importance_figure(name: str, method: dict[str, Any], *, max_bars: int = MAX_BARS) -> Figure:
    """One method's importances as horizontal bars, largest on top; error bars where it has a std.

    The top ``max_bars`` features get a bar each and the rest one ``N other features`` bar with
    their sum, so the chart stays legible with hundreds of columns and still shows how much they
    carry. A negative importance (a column whose shuffling happened to help the score) is vermillion
    and hatched, so it reads apart from the blue bars in grey and for colour-blind readers.
    """
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    entries = method["features"]
    shown, rest = entries[:max_bars], entries[max_bars:]
    values = [entry["importance"] or 0.0 for entry in shown]
    errors = [entry["std"] or 0.0 for entry in shown]
    labels = distinct_labels([entry["feature"] for entry in shown])
    others = f"{len(rest)} other {'feature' if len(rest) == 1 else 'features'}"
    if rest and method["kind"] in AVERAGED_KINDS:
        # An average per split cannot be summed over features: say how small the rest are instead.
        largest = max(entry["importance"] or 0.0 for entry in rest)
        values.append(0.0)
        labels.append(f"{others}, each ≤ {short_number(largest)}")
    elif rest:
        values.append(math.fsum(entry["importance"] or 0.0 for entry in rest))
        labels.append(f"{others} (their sum)")
    errors += [0.0] * (len(values) - len(errors))
    n_bars = len(values)
    rows_y = [n_bars - 1 - row for row in range(n_bars)]
    figure = _new_figure(_width_for_labels(labels, BAR_PANEL_INCHES), 1.9 + 0.3 * max(n_bars, 1))
    ax = figure.add_subplot()
    _style_axis(ax)
    ax.barh(
        rows_y,
        values,
        height=0.7,
        xerr=errors if any(errors) else None,
        color=[POSITIVE if value >= 0 else NEGATIVE for value in values],
        hatch=[NEGATIVE_HATCH if value < 0 else "" for value in values],
        edgecolor="white",
        linewidth=0.4,
        error_kw={"ecolor": INK, "capsize": 3, "elinewidth": 1},
    )
    for position, (y, value, error) in enumerate(zip(rows_y, values, errors)):
        if position == len(shown) and method["kind"] in AVERAGED_KINDS:
            continue
        end = value + error if value >= 0 else value - error
        ax.text(
            end,
            y,
            f"  {short_number(value)}  ",
            va="center",
            ha="left" if value >= 0 else "right",
            fontsize=SMALL_FONT_SIZE,
            color=MUTED,
        )
    ax.axvline(0, color=INK, linewidth=0.8)
    # Room for the value printed past each bar's end (on the left of a negative bar).
    ax.margins(x=0.24 if min(values, default=0.0) < 0 else 0.14)
    ax.set_yticks(rows_y, labels)
    ax.tick_params(axis="y", length=0, pad=6)
    ax.set_ylim(-0.6, n_bars - 0.4)
    if rest:
        ax.get_yticklabels()[-1].set_color(MUTED)
        ax.get_yticklabels()[-1].set_fontstyle("italic")
    # Few ticks, and the scale (x 10^n) apart from them: long tick labels (12000000, 0.000125)
    # would run into each other.
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ticks = ScalarFormatter(useMathText=True)
    ticks.set_powerlimits((-3, 5))
    ax.xaxis.set_major_formatter(ticks)
    ax.set_xlabel(_mpl(axis_label(name, method)), fontsize=FONT_SIZE, color=INK)
    count = len(entries)
    scope = f"top {len(shown)} of {count} features" if rest else f"{count} {'feature' if count == 1 else 'features'}"
    figure.suptitle(f"{METHOD_TITLES[name]} importance", fontsize=TITLE_FONT_SIZE, color=INK, x=0.0, ha="left")
    ax.set_title(_mpl(f"{subtitle(name, method)} · {scope}"), fontsize=SMALL_FONT_SIZE, color=MUTED, loc="left")
    return figure


def short_number(value: float) -> str:
    """``value`` in about 3 significant digits: plain from 0.001 to 100,000, else as ``1.27e7``."""
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return _minus(format_number(value, 3))
    mantissa, exponent = f"{value:.2e}".split("e")
    return _minus(f"{float(mantissa):g}e{int(exponent)}")


def distinct_labels(names: list[str]) -> list[str]:
    """Feature names shortened for the y axis (middle cut out), as long as it takes to keep them apart.

    Long names often differ only in the middle (``amount_last_3_months_mean`` and
    ``amount_last_6_months_mean``), so the shortest cut that leaves every label distinct is used,
    from :data:`MAX_LABEL_CHARS` up to the full names.
    """
    longest = max((len(name) for name in names), default=0)
    for max_chars in range(MAX_LABEL_CHARS, max(longest, MAX_LABEL_CHARS) + 1):
        labels = [shorten(name, max_chars) for name in names]
        if len(set(labels)) == len(set(names)):
            break
    return [_mpl(label) for label in labels]


def subtitle(name: str, method: dict[str, Any]) -> str:
    """How one method was run, in a line: scorer, rows, background."""
    if name == "permutation":
        positive = f" (positive class {method['pos_label']})" if method.get("pos_label") is not None else ""
        return f"scoring {method.get('scoring')}{positive} on {method.get('rows')} rows"
    if name == "shap":
        background = method.get("background_rows")
        against = f", {background} background rows" if background else ""
        shown = kind_title(method["kind"]).removeprefix("mean |").removesuffix(" value|")
        return f"{shown} on {rows_used(method)}{against}"
    return "as the model reports it" + (
        ", summed over each column's model inputs" if method.get("summed_over_inputs") else ""
    )


def axis_label(name: str, method: dict[str, Any]) -> str:
    """What the bars of one method measure, in a few words."""
    width = 80
    if name == "permutation":
        text = f"drop in {method.get('scoring', 'score')} when the column is shuffled"
        if method.get("repeats"):
            text += f" (mean ± std over {method['repeats']} shuffles)"
    elif name == "shap":
        text = f"mean |SHAP value|, {method.get('output', 'model')} output"
    else:
        text = kind_title(method["kind"])
    return textwrap.fill(text, width)


def agreement_figure(document: dict[str, Any]) -> Figure:
    """Spearman rho between every two methods' rankings as an annotated heat map.

    Each cell shows rho and, below it, the top-k overlap; blue where two methods rank the features
    alike, red where they rank them in opposite orders, grey with ``n/a`` where rho is undefined (a
    method gave every feature the same importance). The diagonal (a method against itself) is left blank.
    """
    import matplotlib
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    names = list(document["methods"])
    size = len(names)
    cells: dict[tuple[int, int], dict[str, Any]] = {}
    for pair in document["agreement"]:
        i, j = names.index(pair["a"]), names.index(pair["b"])
        cells[(i, j)] = cells[(j, i)] = pair
    labels = [METHOD_TITLES[name] for name in names]
    norm = Normalize(vmin=-1.0, vmax=1.0)
    label_inches = 0.1 * max(len(label) for label in labels) + 0.4
    figure = _new_figure(label_inches + CELL_INCHES * size + 1.3, 1.2 + CELL_INCHES * size)
    ax = figure.add_subplot()
    colour_map = matplotlib.colormaps[AGREEMENT_COLOURS]
    for i in range(size):
        for j in range(size):
            pair = cells.get((i, j))
            rho = None if pair is None else pair["spearman"]
            colour = "white" if i == j else "#E4E4E4" if rho is None else colour_map(norm(rho))
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=colour, edgecolor="white"))
            if i == j:
                continue
            dark = rho is not None and abs(rho) > 0.55
            ink = "white" if dark else INK
            ax.text(
                j,
                i - 0.1,
                "n/a" if rho is None else _minus(f"{rho:+.2f}"),
                ha="center",
                va="center",
                fontsize=FONT_SIZE + 2,
                fontweight="bold",
                color=ink,
            )
            overlap = pair["top5_overlap"] if pair else None
            if overlap is not None:
                ax.text(
                    j,
                    i + 0.22,
                    f"top-{pair.get('top_k', 5)}: {overlap:.0%}",
                    ha="center",
                    va="center",
                    fontsize=SMALL_FONT_SIZE,
                    color=ink,
                )
    ax.set_xlim(-0.5, size - 0.5)
    ax.set_ylim(size - 0.5, -0.5)
    ax.set_aspect("equal")
    ax.set_xticks(range(size), labels, fontsize=FONT_SIZE, color=INK)
    ax.set_yticks(range(size), labels, fontsize=FONT_SIZE, color=INK)
    ax.tick_params(length=0)
    ax.xaxis.tick_top()
    for spine in ax.spines.values():
        spine.set_visible(False)
    colour_bar = figure.colorbar(
        matplotlib.cm.ScalarMappable(norm=norm, cmap=colour_map), ax=ax, fraction=0.08, pad=0.04, ticks=[-1, 0, 1]
    )
    colour_bar.ax.set_yticklabels(["\u22121 opposite", "0", "+1 same order"], fontsize=SMALL_FONT_SIZE, color=INK)
    colour_bar.outline.set_visible(False)
    figure.suptitle("Agreement between methods (Spearman rho)", fontsize=TITLE_FONT_SIZE, color=INK, x=0.0, ha="left")
    return figure
