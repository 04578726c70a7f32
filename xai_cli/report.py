"""Self-contained HTML reports: one file, images as data URIs, no request to any network address.

The building blocks (:func:`html_page`, :func:`section`, :func:`table`, :func:`image`,
:func:`metadata_section`, :func:`warnings_section`, ...) are shared by every report; each report is
then a short function that arranges them. Everything that comes from the data (feature names,
category values, ids, class labels, paths, warnings) is escaped: a piece of markup is an
:class:`Html`, and any other string put into a page is treated as text.
"""

from __future__ import annotations

import base64
import html
import math
import os
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .plots import (
    PNG_DPI,
    PlotKey,
    force_plot_data,
    force_plot_script,
    format_number,
    format_value,
    method_name,
    plot_key,
    row_plot_files,
    shap_bundle_script,
)

MISSING_CELL = "—"
MAX_INLINE_ITEMS = 12
MAX_TABLE_ROWS = 10_000
SHORT_CELL = 24
"""Text cells up to this many characters break only at spaces (an id such as ``cust-0001`` is never broken)."""
CSS_PIXELS_PER_INCH = 100
"""Plots show at 100 CSS px per inch: 11 pt text reads at about 15 px, as the plots were drawn for."""

SUMMARY_PLOT = "summary_bar.png"
LIME_MIN_R2 = 0.5
"""As :data:`xai_cli.explain.LIME_MIN_R2` (not imported: that module loads the heavy libraries)."""
ADDITIVITY_TOLERANCE = 1e-6
"""As :data:`xai_cli.explain.ADDITIVITY_TOLERANCE`."""


class Html(str):
    """A string that is already HTML, put into a page as it is; every other string is escaped."""

    __slots__ = ()


def escape(value: Any) -> Html:
    """``value`` as HTML text (``<`` becomes ``&lt;`` ...); an :class:`Html` passes unchanged."""
    if isinstance(value, Html):
        return value
    return Html(html.escape(str(value), quote=True))


def join(parts: Iterable[Any], separator: str = "") -> Html:
    """The parts (escaped unless :class:`Html`) joined into one piece of HTML."""
    return Html(escape(separator).join(escape(part) for part in parts))


def tag(name: str, *content: Any, **attributes: Any) -> Html:
    """``<name attributes>content</name>``; attribute ``class_`` becomes ``class``, ``data_x`` ``data-x``.

    An attribute that is ``None`` or ``False`` is left out, ``True`` is written bare.
    """
    rendered = []
    for key, value in attributes.items():
        if value is None or value is False:
            continue
        key = key.rstrip("_").replace("_", "-")
        rendered.append(f" {key}" if value is True else f' {key}="{escape(value)}"')
    return Html(f"<{name}{''.join(rendered)}>{join(content)}</{name}>")


_BREAK_AFTER = re.compile(r"(?<=[_.-])(?=.)")


def breakable(text: str, *, longer_than: int = SHORT_CELL) -> Html:
    """``text`` as HTML that a narrow column may break after ``_``, ``.`` or ``-``, not only mid-word.

    Long feature names (``customer_account_average_monthly_amount``) have no space to wrap at; the
    ``<wbr>`` hints keep a broken name readable, and copy or search as the same text. Text up to
    ``longer_than`` characters gets none.
    """
    if len(text) <= longer_than:
        return escape(text)
    return Html("<wbr>".join(escape(part) for part in _BREAK_AFTER.split(text)))


def minus(text: str) -> str:
    """``text`` with a leading hyphen-minus as the true minus sign ``−``, as the plots write it."""
    return "\u2212" + text[1:] if text.startswith("-") and text[1:2].isdigit() else text


def number_text(value: float, digits: int = 4, *, signed: bool = False) -> str:
    """:func:`format_number` with the true minus sign."""
    return minus(format_number(value, digits, signed=signed))


def cell_text(value: Any) -> Html:
    """A value as a table cell shows it: numbers shortened, ``—`` for nothing."""
    if isinstance(value, Html):
        return value
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return tag("span", MISSING_CELL, class_="muted")
    if isinstance(value, bool):
        return escape("yes" if value else "no")
    if isinstance(value, float):
        return escape(number_text(value))
    if isinstance(value, int):
        return escape(minus(str(value)))
    if isinstance(value, (list, tuple)):
        return inline_list(value)
    if isinstance(value, Mapping):
        return definition_list(value)
    return breakable(str(value))


def inline_list(items: Sequence[Any]) -> Html:
    """A short list on one line; a long one folded into ``<details>`` saying how many items it holds."""
    if len(items) <= MAX_INLINE_ITEMS:
        return join((cell_text(item) for item in items), ", ")
    return details(f"{len(items)} items", tag("p", join((cell_text(item) for item in items), ", ")))


def details(summary: str | Html, *content: Any, open_: bool = False) -> Html:
    """A folded ``<details>`` block."""
    return tag("details", tag("summary", summary), *content, open=open_)


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``{"a": {"b": 1}}`` as ``[("a.b", 1)]``: nested settings as one list of dotted keys."""
    items: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            items.extend(flatten(value, f"{name}."))
        else:
            items.append((name, value))
    return items


def _field_value(key: str, value: Any) -> Html:
    last = key.rsplit(".", 1)[-1]
    if isinstance(value, str) and (last in {"sha256", "path", "hash"} or last.endswith("_path")):
        return tag("code", value, class_="hash" if last in {"sha256", "hash"} else None)
    return cell_text(value)


def definition_list(mapping: Mapping[str, Any]) -> Html:
    """A ``<dl>`` of a mapping, nested mappings flattened to dotted keys; sha256 and paths as code."""
    if not mapping:
        return tag("p", "none", class_="muted")
    return tag(
        "dl",
        *(
            Html(tag("dt", breakable(key, longer_than=0)) + tag("dd", _field_value(key, value)))
            for key, value in flatten(mapping)
        ),
    )


def table(
    headers: Sequence[Any],
    rows: Iterable[Sequence[Any]],
    *,
    sortable: bool = False,
    numeric: Iterable[int] = (),
    caption: str | Html | None = None,
    class_: str | None = None,
) -> Html:
    """An HTML table; cells go through :func:`cell_text`.

    ``numeric`` names the columns aligned right and sorted as numbers; with ``sortable`` a click on
    a heading sorts the rows (the page's one small script).
    """
    numeric_columns = set(numeric)
    head = tag(
        "thead",
        tag(
            "tr",
            *(tag("th", h, class_="num" if i in numeric_columns else None, scope="col") for i, h in enumerate(headers)),
        ),
    )
    body_rows = []
    for row in rows:
        cells = []
        for index, value in enumerate(row):
            sort_key = None
            if index in numeric_columns and isinstance(value, (int, float)) and not isinstance(value, bool):
                sort_key = repr(float(value)) if math.isfinite(float(value)) else None
            css = "num" if index in numeric_columns else None
            if css is None and isinstance(value, str) and not isinstance(value, Html) and len(value) <= SHORT_CELL:
                css = "short"
            cells.append(tag("td", cell_text(value), class_=css, data_sort=sort_key))
        body_rows.append(tag("tr", *cells))
    classes = " ".join(c for c in ("data", "sortable" if sortable else "", class_ or "") if c)
    return tag(
        "div",
        tag(
            "table",
            tag("caption", caption) if caption else "",
            head,
            tag("tbody", *body_rows),
            class_=classes,
        ),
        class_="table-wrap",
    )


def _png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) in pixels from a PNG's header, or None when ``data`` is not a PNG."""
    if len(data) >= 24 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    return None


def image(
    source: str | os.PathLike | bytes, alt: str, *, caption: str | Html | None = None, dpi: int = PNG_DPI
) -> Html:
    """A PNG embedded as a ``data:image/png;base64,`` URI inside a ``<figure>``.

    It shows at the size it was drawn for (``dpi`` pixels per inch of the figure), shrinking to fit
    a narrow window.
    """
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    size = _png_size(data)
    width = round(size[0] * CSS_PIXELS_PER_INCH / dpi) if size else None
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    picture = Html(
        f'<img src="{uri}" alt="{escape(alt)}"' + (f' width="{width}"' if width else "") + ' loading="lazy">'
    )
    return tag("figure", picture, tag("figcaption", caption) if caption else "")


def section(title: str | Html, *content: Any, id_: str | None = None, class_: str | None = None) -> Html:
    """A ``<section>`` with an ``<h2>`` heading."""
    return tag("section", tag("h2", title), *content, id=id_, class_=class_)


def callout(kind: str, *content: Any) -> Html:
    """A highlighted box: ``kind`` is ``warning``, ``ok`` or ``note``."""
    return tag("div", *content, class_=f"callout {kind}")


def stat(label: str, value: Any, *, kind: str | None = None) -> Html:
    """One figure of the page's at-a-glance strip."""
    return tag(
        "div",
        tag("div", cell_text(value), class_="stat-value"),
        tag("div", label, class_="stat-label"),
        class_=f"stat {kind}" if kind else "stat",
    )


WARNINGS_LISTED = 8
"""Up to this many warnings are listed one by one; more are grouped by kind."""
_SUBJECT = re.compile(r"^(?:row .*?\)|column [^:]*): ")
_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:e[+-]?\d+)?")
_KIND_END = re.compile(r":| \(| of | for ")


def warning_kind(warning: str) -> str:
    """What a warning is about without its particulars: ``row 7 (lime): LIME's local model fits poorly
    (R² 0.31 < 0.5)`` and the same for row 9 are both ``LIME's local model fits poorly``; the row
    or column it names, numbers and what follows a colon or bracket go."""
    general = _NUMBER.sub("#", _SUBJECT.sub("", warning))
    return _KIND_END.split(general, maxsplit=1)[0].strip()


def warnings_section(warnings: Sequence[str], *, title: str = "Warnings") -> Html:
    """The run's warnings, prominent; a quiet line saying so when there are none.

    Up to WARNINGS_LISTED are listed; more are grouped by :func:`warning_kind`, each kind shown by
    its first warning and a count, the others of the kind folded under it, and kinds past the first
    WARNINGS_LISTED folded too.
    """
    if not warnings:
        return section(title, callout("ok", tag("p", "No warnings.")), id_="warnings")
    if len(warnings) <= WARNINGS_LISTED:
        return section(
            f"{title} ({len(warnings)})",
            callout("warning", tag("ul", *(tag("li", w) for w in warnings))),
            id_="warnings",
        )
    kinds: dict[str, list[str]] = {}
    for warning in warnings:
        kinds.setdefault(warning_kind(warning), []).append(warning)
    items = []
    for members in kinds.values():
        first, others = members[0], members[1:]
        if not others:
            items.append(tag("li", first))
            continue
        items.append(
            tag(
                "li",
                tag("strong", f"{len(members)}\u00d7 "),
                first,
                details(f"{len(others)} more like it", tag("ul", *(tag("li", w) for w in others))),
            )
        )
    shown, folded = items[:WARNINGS_LISTED], items[WARNINGS_LISTED:]
    rest = details(f"{len(folded)} more kinds of warning", tag("ul", *folded)) if folded else ""
    return section(
        f"{title} ({len(warnings)}, {len(kinds)} kinds)",
        callout("warning", tag("ul", *shown, class_="grouped"), rest),
        id_="warnings",
    )


METADATA_PARTS = (
    ("model", "Model"),
    ("data", "Data"),
    ("background", "Background"),
    ("params", "Parameters"),
    ("versions", "Versions"),
)


def metadata_section(
    document: Mapping[str, Any], parts: Sequence[tuple[str, str]] = METADATA_PARTS, *, title: str = "Run"
) -> Html:
    """The run's metadata (model, data, background, parameters, versions) as a grid of cards.

    Each of ``parts`` names a key of ``document`` and its heading; absent keys are skipped, a null
    one says ``none``. Hashes and paths show in full so they can be compared.
    """
    cards = []
    for key, heading in parts:
        if key not in document:
            continue
        value = document[key]
        body = definition_list(value) if isinstance(value, Mapping) else tag("p", cell_text(value))
        cards.append(tag("div", tag("h3", heading), body, class_="card"))
    return section(title, tag("div", *cards, class_="cards"), id_="run")


HASH_CHARS = 12
"""A hash in the brief shows this many hex digits; the full one is in its tooltip and the Run cards."""
BRIEF_VERSIONS = ("python", "xai-cli", "shap", "lime", "scikit-learn", "xgboost", "lightgbm", "catboost")
BRIEF_PARAMS = 8


def short_hash(digest: Any) -> Html:
    """A hash cut to HASH_CHARS digits, the whole of it in the tooltip."""
    if not isinstance(digest, str) or not digest:
        return tag("span", MISSING_CELL, class_="muted")
    return tag("code", digest[:HASH_CHARS] + ("…" if len(digest) > HASH_CHARS else ""), title=digest, class_="hash")


def _file_brief(part: Mapping[str, Any], *facts: Any) -> Html:
    """``model.pkl · <facts> · sha256 1a2b3c…``, the whole path in the file name's tooltip."""
    path = part.get("path")
    pieces = [tag("code", Path(str(path)).name or str(path), title=str(path))] if path else []
    pieces += [escape(fact) for fact in facts if fact]
    if part.get("sha256"):
        pieces.append(Html(escape("sha256 ") + short_hash(part["sha256"])))
    return join(pieces, Html(" \u00b7 "))


def _plain(value: Any) -> str:
    """A scalar as plain text, numbers as the tables write them."""
    if value is None:
        return MISSING_CELL
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return number_text(value)
    return str(value)


def run_brief(document: Mapping[str, Any], *, full_id: str = "run") -> Html:
    """The run's metadata at a glance, for the top of a page: model, data, background, hashes cut
    short, parameters and versions, with a link to the full cards (section ``full_id``)."""
    model = document.get("model") or {}
    data = document.get("data") or {}
    rows: list[tuple[str, Any]] = []
    if model:
        rows.append(("Model", _file_brief(model, model.get("type"), model.get("task"), model.get("output"))))
    if data:
        count = data.get("rows")
        rows.append(("Data", _file_brief(data, f"{count} rows" if isinstance(count, int) else None)))
    background = document.get("background")
    if isinstance(background, Mapping):
        count = background.get("rows")
        rows.append(("Background", _file_brief(background, f"{count} rows" if isinstance(count, int) else None)))
    params = [
        (key, value)
        for key, value in flatten(document.get("params") or {})
        if not isinstance(value, (Mapping, list, tuple)) and not key.startswith("receipts.")
    ]
    if params:
        shown = [f"{key} {_plain(value)}" for key, value in params[:BRIEF_PARAMS]]
        more = len(params) - BRIEF_PARAMS
        rows.append(("Parameters", join(shown + ([f"{more} more"] if more > 0 else []), " \u00b7 ")))
    versions = {**(document.get("versions") or {})}
    tool = document.get("tool") or {}
    if tool.get("version"):
        versions.setdefault(str(tool.get("name", "xai-cli")), tool["version"])
    if versions:
        ordered = [name for name in BRIEF_VERSIONS if name in versions] + [
            name for name in versions if name not in BRIEF_VERSIONS
        ]
        rows.append(("Versions", join((f"{name} {versions[name]}" for name in ordered), " \u00b7 ")))
    if document.get("created_at"):
        rows.append(("Created", document["created_at"]))
    if not rows:
        return Html("")
    return tag(
        "div",
        tag("dl", *(Html(tag("dt", key) + tag("dd", value)) for key, value in rows)),
        tag("p", tag("a", "Every detail of the run", href=f"#{full_id}"), class_="more"),
        class_="card run-brief",
        aria_label="Run metadata",
    )


def quality_section(explanations: Sequence[Mapping[str, Any]], *, title: str = "Quality") -> Html:
    """How far to trust the explanations: every ``quality`` key summarised per method and class.

    Numbers show their smallest, median and largest value; flags how many are true; any other
    value how many distinct values it took. Keys are taken as they come, so a new receipt shows up
    without changes here.
    """
    groups: dict[tuple[str, Any], list[Mapping[str, Any]]] = {}
    for explanation in explanations:
        groups.setdefault((explanation.get("method"), explanation.get("class")), []).append(explanation)
    with_class = len({label for _, label in groups}) > 1
    rows = []
    for (method, label), members in groups.items():
        values: dict[str, list[Any]] = {}
        for explanation in members:
            quality = dict(explanation.get("quality") or {})
            for entry in quality.pop("agreement", None) or []:
                values.setdefault(f"agreement.{entry.get('with')}.spearman", []).append(entry.get("spearman"))
                values.setdefault(f"agreement.{entry.get('with')}.top3_overlap", []).append(entry.get("top3_overlap"))
                values.setdefault(f"agreement.{entry.get('with')}.disagree", []).append(bool(entry.get("disagree")))
            for key, value in flatten(quality):
                values.setdefault(key, []).append(value)
        group = method_name(str(method)) + (f" · class {label}" if with_class and label is not None else "")
        if not values:
            rows.append((group, len(members), tag("span", "no quality receipts", class_="muted"), None))
        for key, seen in values.items():
            rows.append((group, len(members), key, _summarise(seen)))
    if not rows:
        return section(title, tag("p", "No explanations.", class_="muted"), id_="quality")
    poor = sum(1 for explanation in explanations if quality_problems(explanation))
    verdict = callout(
        "warning" if poor else "ok",
        tag("p", join((tag("span", line, class_="q-summary") for line in quality_summary(explanations)), Html("<br>"))),
    )
    receipts = details(
        f"Every receipt per method{' and class' if with_class else ''} ({len(rows)} lines)",
        table(["Method", "Explanations", "Receipt", "Summary"], rows, numeric=[1]),
    )
    return section(title, verdict, receipts, id_="quality")


def quality_summary(explanations: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per method of how its receipts read, e.g. ``Kernel SHAP: all 7 exact, max additivity
    gap 2e−15; 2 of 7 deletion checks not faithful``."""
    by_method: dict[str, list[Mapping[str, Any]]] = {}
    for explanation in explanations:
        by_method.setdefault(str(explanation.get("method")), []).append(explanation)
    lines = []
    for method, members in by_method.items():
        qualities = [e.get("quality") or {} for e in members]
        parts = []
        exact = [q["exact"] for q in qualities if isinstance(q.get("exact"), bool)]
        if exact:
            parts.append(f"all {len(exact)} exact" if all(exact) else f"{sum(exact)} of {len(exact)} exact")
        gaps = [g for g in (_number(q.get("additivity_gap")) for q in qualities) if g is not None]
        if gaps:
            parts.append(f"max additivity gap {_short_number(max(gaps))}")
        r2s = [r for r in (_number(q.get("r2")) for q in qualities) if r is not None]
        if r2s:
            low = sum(r < LIME_MIN_R2 for r in r2s)
            text = f"R² {number_text(min(r2s), 2)}" + (
                f" to {number_text(max(r2s), 2)}" if max(r2s) != min(r2s) else ""
            )
            parts.append(text + (f" ({low} of {len(r2s)} below {LIME_MIN_R2})" if low else ""))
        spreads = [v for v in (_number(q.get("max_std_error")) for q in qualities) if v is not None]
        if spreads:
            parts.append(f"sampling error up to ± {_short_number(max(spreads))}")
        checks = [q["deletion"] for q in qualities if isinstance(q.get("deletion"), Mapping)]
        unfaithful = sum(c.get("faithful") is False for c in checks)
        if checks:
            parts.append(
                f"{unfaithful} of {len(checks)} deletion checks not faithful"
                if unfaithful
                else f"all {len(checks)} deletion checks faithful"
            )
        disagree = sum(
            any(isinstance(a, Mapping) and a.get("disagree") for a in q.get("agreement") or []) for q in qualities
        )
        if disagree:
            parts.append(f"{disagree} of {len(members)} disagree with another method")
        poor = sum(1 for e in members if quality_problems(e))
        verdict = f"\u26a0 {poor} of {len(members)} to check" if poor else "all receipts good"
        lines.append(f"{method_name(method)}: {verdict}" + (f" — {', '.join(parts)}" if parts else ""))
    return lines


def _summarise(values: Sequence[Any]) -> Html:
    present = [v for v in values if v is not None]
    missing = len(values) - len(present)
    tail = f" ({missing} missing)" if missing else ""
    if present and all(isinstance(v, bool) for v in present):
        true = sum(present)
        return escape(
            f"{'all' if true == len(present) else true} of {len(present)} true{tail}"
            if true
            else f"none of {len(present)} true{tail}"
        )
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        ordered = sorted(float(v) for v in present)
        if len(ordered) == 1:
            return escape(number_text(ordered[0]) + tail)
        middle = len(ordered) // 2
        median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
        return escape(
            f"min {number_text(ordered[0])} · median {number_text(median)} · max {number_text(ordered[-1])}{tail}"
        )
    distinct = list(dict.fromkeys(str(v) for v in present))
    if len(distinct) == 1:
        return escape(distinct[0] + tail)
    return Html(escape(f"{len(distinct)} distinct values{tail}: ") + inline_list(distinct))


STYLE = """
:root { --ink:#1f2328; --muted:#5f6b76; --line:#d8dee4; --soft:#f6f8fa; --accent:#0072B2;
  --pos:#005a8c; --neg:#a04400; --warn-bg:#fff7e6; --warn-line:#e69f00; --ok-bg:#eef7f1; --ok-line:#009E73; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff; line-height: 1.5;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1280px; margin: 0 auto; padding: 1.5rem 2rem 4rem; }
header.page { border-bottom: 3px solid var(--accent); padding-bottom: .8rem; margin-bottom: 1.2rem; }
h1 { font-size: 1.6rem; margin: 0 0 .2rem; overflow-wrap: anywhere; }
h2 { font-size: 1.25rem; margin: 2.2rem 0 .8rem; padding-bottom: .3rem;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 1.02rem; margin: 0 0 .5rem; overflow-wrap: anywhere; }
.subtitle, .muted { color: var(--muted); }
code { font: .88em/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; overflow-wrap: anywhere; }
code.hash { word-break: break-all; }
nav.toc { display: flex; flex-wrap: wrap; gap: .3rem 1rem; font-size: .92rem; }
nav.toc a { color: var(--accent); text-decoration: none; }
nav.toc a:hover, a:hover { text-decoration: underline; }
a { color: var(--accent); }
.stats { display: flex; flex-wrap: wrap; gap: .8rem; margin: 1rem 0; }
.stat { border: 1px solid var(--line); border-radius: 8px; padding: .5rem .9rem; min-width: 8.5rem;
  background: var(--soft); }
.stat-value { font-size: 1.3rem; font-weight: 600; overflow-wrap: anywhere; }
.stat-label { font-size: .82rem; color: var(--muted); }
.stat.warning { background: var(--warn-bg); border-color: var(--warn-line); }
.callout { border-left: 5px solid; border-radius: 6px; padding: .6rem 1rem; }
.callout.warning { background: var(--warn-bg); border-color: var(--warn-line); }
.callout.ok { background: var(--ok-bg); border-color: var(--ok-line); }
.callout.note { background: var(--soft); border-color: var(--line); }
.callout p, .callout ul { margin: .2rem 0; }
.callout li { overflow-wrap: anywhere; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr)); gap: 1rem; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: .8rem 1rem; }
dl { display: grid; grid-template-columns: fit-content(45%) minmax(0, 1fr); gap: .15rem .9rem; margin: 0;
  font-size: .92rem; }
dt { color: var(--muted); overflow-wrap: anywhere; min-width: 0; }
dd { margin: 0; overflow-wrap: anywhere; min-width: 0; }
.table-wrap { overflow-x: auto; }
table.data { border-collapse: collapse; width: 100%; font-size: .9rem; }
table.data caption { text-align: left; color: var(--muted); padding: .3rem 0; }
table.data th, table.data td { padding: .4rem .6rem; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; overflow-wrap: anywhere; }
table.data td:has(ol.attrs) { width: 50%; }
table.data.top-features th, table.data.top-features td { padding: .4rem .45rem; }
table.data.top-features td:has(ol.attrs) { width: auto; }
table.data.top-features th { white-space: normal; }
table.data.top-features th .muted { display: block; font-weight: normal; font-size: .8rem; }
table.data.top-features td:nth-child(2) { min-width: 8rem; max-width: 16rem; overflow-wrap: anywhere;
  white-space: normal; }
table.data.top-features td:last-child { min-width: 7.5rem; max-width: 13rem; }
table.data th { background: var(--soft); position: sticky; top: 0; font-weight: 600; }
table.data tbody tr:nth-child(even) { background: #fbfcfd; }
table.data td.short { overflow-wrap: normal; }
table.data .num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.data th.num { white-space: normal; overflow-wrap: normal; }
table.data td:not(.num):not(.short) { min-width: 9rem; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: "\\00a0\\2195"; color: #b0b8c0; font-size: .8em; }
table.sortable th[aria-sort="ascending"]::after { content: "\\00a0\\25B2"; color: var(--ink); }
table.sortable th[aria-sort="descending"]::after { content: "\\00a0\\25BC"; color: var(--ink); }
ol.attrs { list-style: none; margin: 0; padding: 0; min-width: 28rem; display: grid;
  grid-template-columns: 4rem max-content minmax(16rem, 1fr); gap: .2rem .6rem; align-items: baseline; }
ol.attrs li { display: contents; }
.meter-track { align-self: center; }
.meter { height: .65rem; border-radius: 2px; }
.meter.pos { background: #0072B2; }
.meter.neg { background: repeating-linear-gradient(135deg, #D55E00 0 3px, #f3c7a8 3px 5px); }
.attr-value { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.attr-value.pos { color: var(--pos); }
.attr-value.neg { color: var(--neg); }
.attr-name { overflow-wrap: anywhere; min-width: 0; }
.quality { display: inline-block; }
.q-line { white-space: nowrap; }
.q-line.poor { color: var(--neg); font-weight: 600; }
.q-why { display: block; color: var(--muted); font-size: .8rem; line-height: 1.3; }
.q-summary { display: inline-block; }
h3 .muted { font-weight: normal; }
.facts .quality { display: inline; }
.facts .q-why { display: inline; margin-left: .4rem; }
details > summary { cursor: pointer; color: var(--accent); margin: .6rem 0; }
.rule { color: var(--muted); font-size: .85em; }
.chip { display: inline-block; border: 1px solid var(--line); border-radius: 999px; padding: 0 .5rem;
  margin: 0 .25rem .2rem 0; font-size: .8rem; white-space: nowrap; background: #fff; }
figure { margin: .6rem 0 1rem; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: .85rem; }
.row-plots { border: 1px solid var(--line); border-radius: 8px; padding: 1rem; margin: 1rem 0; }
.row-plots .facts { margin: 0 0 .5rem; font-size: .92rem; }
.run-brief { margin: 1rem 0; background: var(--soft); }
.run-brief dl { grid-template-columns: max-content minmax(0, 1fr); gap: .2rem 1.2rem; }
.run-brief dt { font-weight: 600; color: var(--ink); }
.run-brief p.more { margin: .4rem 0 0; font-size: .85rem; }
.callout ul.grouped { padding-left: 1.2rem; }
.callout li details > summary { margin: .15rem 0; font-size: .88rem; }
.callout details ul { margin: .2rem 0 .4rem; }
figure.force-interactive { overflow-x: auto; }
footer { margin-top: 3rem; color: var(--muted); font-size: .85rem; }
@media print {
  body { font-size: 11pt; }
  main { max-width: none; padding: 0; }
  nav.toc, .no-print { display: none; }
  table.data th { position: static; }
  table.sortable th::after { content: ""; }
  .row-plots, figure, .card, tr { break-inside: avoid; }
  h2 { break-after: avoid; }
  a { color: inherit; text-decoration: none; }
}
"""

SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var headers = table.querySelectorAll("th");
  headers.forEach(function (th, column) {
    th.tabIndex = 0;
    function key(row) {
      var cell = row.cells[column];
      var value = cell.getAttribute("data-sort");
      return value === null ? cell.textContent.trim() : value;
    }
    function sort() {
      var body = table.tBodies[0];
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      headers.forEach(function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a), y = key(b), nx = Number(x), ny = Number(y);
        var order = (x !== "" && y !== "" && !isNaN(nx) && !isNaN(ny)) ? nx - ny
          : x.localeCompare(y, undefined, {numeric: true});
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sort(); }
    });
  });
});
"""

# The page may run its own inline script and show data: images, and may fetch nothing at all.
CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def html_page(
    title: str,
    sections: Iterable[Any],
    *,
    subtitle: str | Html | None = None,
    toc: Sequence[tuple[str, str]] = (),
    footer: str | Html | None = None,
    head_scripts: Sequence[Html] = (),
) -> str:
    """A complete, self-contained HTML page: inline CSS, the table sorter, and the given sections.

    ``toc`` is a list of (anchor id, label) for a small table of contents under the title;
    ``head_scripts`` are whole inline ``<script>`` elements the sections need (shap's bundle), put
    in the head so they run before any section uses them.
    """
    nav = tag("nav", *(tag("a", label, href=f"#{anchor}") for anchor, label in toc), class_="toc") if toc else ""
    head = tag(
        "header",
        tag("h1", title),
        tag("p", subtitle, class_="subtitle") if subtitle else "",
        nav,
        class_="page",
    )
    body = tag("main", head, *sections, tag("footer", footer) if footer else "")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n{''.join(head_scripts)}</head>\n<body>\n{body}\n"
        f"<script>{SORT_SCRIPT}</script>\n</body>\n</html>\n"
    )


# --------------------------------------------------------------------------------------------
# The explain report
# --------------------------------------------------------------------------------------------


def _attribution_list(explanation: Mapping[str, Any], top: int) -> Html:
    attributions = list(explanation.get("attributions") or [])[:top]
    if not attributions:
        return tag("span", "no attributions", class_="muted")
    largest = max(abs(float(a.get("attribution") or 0.0)) for a in attributions) or 1.0
    items = []
    for attribution in attributions:
        value = float(attribution.get("attribution") or 0.0)
        sign = "pos" if value >= 0 else "neg"
        number = number_text(value, 3, signed=True)
        if attribution.get("std_error") is not None:
            number += f" ± {number_text(attribution['std_error'], 2)}"
        name = Html(
            tag("strong", breakable(str(attribution.get("feature", "")), longer_than=0))
            + escape(" = ")
            + escape(format_value(attribution.get("value"), 80))
        )
        if attribution.get("rule"):
            name = Html(name + tag("div", "rule: ", attribution["rule"], class_="rule"))
        width = max(2.0, 100.0 * abs(value) / largest)
        meter = tag(
            "div",
            Html(f'<div class="meter {sign}" style="width:{width:.1f}%"></div>'),
            class_="meter-track",
            title=number,
        )
        items.append(
            tag(
                "li",
                meter,
                tag("span", number, class_=f"attr-value {sign}"),
                tag("span", name, class_="attr-name"),
            )
        )
    return tag("ol", *items, class_="attrs")


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value)):
        return float(value)
    return None


def _short_number(value: float) -> str:
    """A receipt's number in at most a few characters: ``0.62``, ``1e−3``, ``2e−15``."""
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return number_text(value, 2)
    mantissa, exponent = f"{value:.0e}".split("e")
    return minus(mantissa) + "e" + minus(str(int(exponent)))


def quality_problems(explanation: Mapping[str, Any]) -> list[str]:
    """The receipts of one explanation that say it is not to be trusted as it stands, in short words."""
    quality = explanation.get("quality") or {}
    problems = []
    gap = _number(quality.get("additivity_gap"))
    prediction = _number(explanation.get("prediction")) or 0.0
    if gap is not None and gap > ADDITIVITY_TOLERANCE * max(1.0, abs(prediction)):
        problems.append(f"additivity gap {_short_number(gap)}")
    r2 = _number(quality.get("r2"))
    if r2 is not None and r2 < LIME_MIN_R2:
        problems.append(f"poor local fit (R² {number_text(r2, 2)})")
    deletion = quality.get("deletion")
    if isinstance(deletion, Mapping) and deletion.get("faithful") is False:
        problems.append("deletion check not faithful")
    for entry in quality.get("agreement") or []:
        if isinstance(entry, Mapping) and entry.get("disagree"):
            problems.append(f"disagrees with {method_name(str(entry.get('with')))}")
    noisy = [
        a.get("feature")
        for a in list(explanation.get("attributions") or [])[:3]
        if _number(a.get("std_error")) is not None and a["std_error"] > abs(_number(a.get("attribution")) or 0.0)
    ]
    if noisy:
        problems.append("sampling error above attribution of " + ", ".join(str(f) for f in noisy))
    return problems


def _receipts_text(quality: Mapping[str, Any]) -> str:
    parts = []
    for key, value in flatten({k: v for k, v in quality.items() if k != "agreement"}):
        number = _number(value)
        parts.append(f"{key}: {number_text(number) if number is not None else value}")
    for entry in quality.get("agreement") or []:
        if isinstance(entry, Mapping):
            rho = _number(entry.get("spearman"))
            parts.append(
                f"agreement with {method_name(str(entry.get('with')))}: Spearman "
                f"{number_text(rho, 2) if rho is not None else 'n/a'}"
                + (f" ({'; '.join(str(r) for r in entry.get('reasons') or [])})" if entry.get("reasons") else "")
            )
    return "\n".join(parts)


def quality_brief(explanation: Mapping[str, Any]) -> Html:
    """One explanation's receipts on one short line (``exact``, ``R² 0.62``, ``± 0.01``), ``⚠`` when poor.

    The reasons for a ``⚠`` follow in small print; every receipt is in the tooltip.
    """
    quality = explanation.get("quality") or {}
    if not quality:
        return tag("span", MISSING_CELL, class_="muted")
    parts = []
    r2, gap, spread = (_number(quality.get(key)) for key in ("r2", "additivity_gap", "max_std_error"))
    if r2 is not None:
        parts.append(f"R² {number_text(r2, 2)}")
    elif quality.get("exact"):
        parts.append("exact")
    elif spread is not None:
        parts.append(f"± {_short_number(spread)}")
    if gap is not None and not quality.get("exact") and (gap > 0 or not parts):
        parts.append(f"gap {_short_number(gap)}")
    problems = quality_problems(explanation)
    line = " · ".join(parts) or "receipts"
    content = [tag("span", line, class_="q-line")]
    if problems:
        content = [
            tag("span", "\u26a0 ", line, class_="q-line poor"),
            tag("span", "; ".join(problems), class_="q-why"),
        ]
    return tag("span", *content, class_="quality", title=_receipts_text(quality))


def _row_identity(explanation: Mapping[str, Any]) -> str:
    """``Adelie-7 · row 1`` (just ``row 1`` when the id is the row number)."""
    row, row_id = explanation.get("row"), explanation.get("id")
    return f"row {row}" if str(row_id) == str(row) else f"{row_id} · row {row}"


def _row_heading(explanation: Mapping[str, Any]) -> str:
    parts = [_row_identity(explanation), method_name(str(explanation.get("method")))]
    if explanation.get("class") is not None:
        parts.append(f"class {explanation['class']}")
    return " · ".join(parts)


def top_features_section(
    explanations: Sequence[Mapping[str, Any]], *, top: int = 5, max_rows: int = MAX_TABLE_ROWS
) -> Html:
    """A sortable table of every explanation with its ``top`` features, value and signed attribution."""
    with_class = any(e.get("class") is not None for e in explanations)
    headers = (
        ["Row", "ID", "Method"]
        + (["Class"] if with_class else [])
        + [
            "Prediction",
            "Base value",
            Html(escape(f"Top {top} features") + tag("span", "attribution, feature = value", class_="muted")),
            "Quality",
        ]
    )
    first_number = 4 if with_class else 3
    rows = []
    for explanation in explanations[:max_rows]:
        row = [explanation.get("row"), explanation.get("id"), method_name(str(explanation.get("method")))]
        if with_class:
            row.append(explanation.get("class"))
        row += [
            explanation.get("prediction"),
            explanation.get("base_value"),
            _attribution_list(explanation, top),
            quality_brief(explanation),
        ]
        rows.append(row)
    note = ""
    if len(explanations) > max_rows:
        note = callout(
            "note",
            tag(
                "p",
                f"The table shows the first {max_rows} of {len(explanations)} "
                "explanations; attributions.json and attributions.csv hold them all.",
            ),
        )
    return section(
        f"Top features per row ({len(explanations)} explanations)",
        note,
        table(headers, rows, sortable=True, numeric=[0, first_number, first_number + 1], class_="top-features"),
        id_="top-features",
    )


def _relative_href(path: Path, link_base: Path) -> str:
    relative = os.path.relpath(path, link_base)
    return quote(Path(relative).as_posix())


PlotFiles = Mapping["PlotKey | str", Mapping[str, "str | os.PathLike"]]
"""Per-row plot files: (row, method, class) -> {kind: path}; kinds ``force``, ``waterfall``, ``force_html``.

A key may also be a row's id (then the files belong to the first explanation of that row), and the
kinds may be spelled ``force_png`` / ``waterfall_png``.
"""
_KIND_ALIASES = {"force_png": "force", "waterfall_png": "waterfall"}


def _files_of(explanation: Mapping[str, Any], plot_files: PlotFiles, *, first_of_row: bool) -> dict[str, Path]:
    files = plot_files.get(plot_key(explanation))
    if files is None and first_of_row:
        files = plot_files.get(str(explanation.get("id")))
    return {_KIND_ALIASES.get(kind, kind): Path(path) for kind, path in (files or {}).items()}


def row_plots_section(
    explanations: Sequence[Mapping[str, Any]],
    plot_files: PlotFiles,
    *,
    link_base: Path,
    max_plots: int,
    interactive: bool = True,
) -> Html:
    """The force plot and waterfall of each explanation that has them, in row order.

    With ``interactive``, each also gets shap's interactive force plot drawn in the page (its data
    inline; the page must carry shap's bundle, :func:`xai_cli.plots.shap_bundle_script`).
    """
    blocks = []
    plotted_rows: set[Any] = set()
    seen_rows: set[Any] = set()
    for explanation in explanations:
        first_of_row = explanation.get("row") not in seen_rows
        seen_rows.add(explanation.get("row"))
        files = _files_of(explanation, plot_files, first_of_row=first_of_row)
        pictures = [(kind, files[kind]) for kind in ("force", "waterfall") if kind in files and files[kind].is_file()]
        if not pictures:
            continue
        plotted_rows.add(explanation.get("row"))
        heading = _row_heading(explanation)
        facts = tag(
            "p",
            f"prediction {number_text(float(explanation.get('prediction') or 0.0))} · "
            f"base value {number_text(float(explanation.get('base_value') or 0.0))} · quality ",
            quality_brief(explanation),
            class_="facts",
        )
        figures = [
            image(path, f"{'Force plot' if kind == 'force' else 'Waterfall'} of {heading}") for kind, path in pictures
        ]
        if interactive:
            figures.insert(0, _interactive_force_plot(explanation, f"xai-force-{len(blocks)}"))
        link = ""
        page = files.get("force_html")
        if page is not None and page.is_file():
            link = tag(
                "p",
                tag("a", "Open the interactive force plot on its own", href=_relative_href(page, link_base)),
                class_="no-print",
            )
        title = tag(
            "h3",
            _row_identity(explanation),
            tag(
                "span",
                " · ",
                method_name(str(explanation.get("method"))),
                f" · class {explanation['class']}" if explanation.get("class") is not None else "",
                class_="muted",
            ),
        )
        blocks.append(tag("div", title, facts, *figures, link, class_="row-plots"))
    if not blocks:
        return Html("")
    rows_total = len({e.get("row") for e in explanations})
    note = ""
    if rows_total > len(plotted_rows):
        note = tag(
            "p",
            f"Plots of the first {len(plotted_rows)} of {rows_total} rows (--max-plots "
            f"{max_plots}); every row is in the table below.",
            class_="muted",
        )
    return section("Plots per row", note, *blocks, id_="row-plots")


def _interactive_force_plot(explanation: Mapping[str, Any], element_id: str) -> Html:
    """shap's interactive force plot of one explanation, drawn in place by the page's copy of shap's bundle."""
    return tag(
        "figure",
        Html(force_plot_script(force_plot_data(explanation), element_id)),
        tag("figcaption", "shap's interactive force plot: point at a feature for its value and effect."),
        class_="force-interactive",
    )


def _ordered_classes(seen: Sequence[str], model_classes: Any) -> list[str]:
    """The classes explained in the model's order (its ``classes``), any other after them as seen."""
    distinct = list(dict.fromkeys(seen))
    order = [str(c) for c in model_classes] if isinstance(model_classes, (list, tuple)) else []
    return [c for c in order if c in distinct] + [c for c in distinct if c not in order]


def explain_report_html(
    document: Mapping[str, Any],
    plots_dir: str | os.PathLike,
    *,
    plot_files: PlotFiles | None = None,
    max_plots: int = 20,
    top: int = 5,
    link_base: str | os.PathLike | None = None,
    interactive: bool = True,
) -> str:
    """The ``report.html`` of ``xai explain``: one self-contained page.

    Parameters
    ----------
    document : the ``attributions.json`` document (``ExplanationDocument.to_dict()``).
    plots_dir : the folder holding ``summary_bar.png`` and the per-row plots.
    plot_files : (row, method, class) -> {"force": png, "waterfall": png, "force_html": html}, as
        :func:`xai_cli.plots.write_row_plots` returns (see :data:`PlotFiles` for the other spellings
        it takes); by default the names of :func:`xai_cli.plots.row_plot_files` in ``plots_dir``.
        Files that do not exist are skipped.
    max_plots : rows whose plots are shown; the other rows are only in the table.
    top : features per explanation in the table.
    link_base : the folder the report will be written to, for the relative links to the interactive
        force plots (default: the parent of ``plots_dir``, where the contract puts ``report.html``).
    interactive : draw shap's interactive force plot of each plotted row in the page, with shap's
        JavaScript inlined once.

    Returns the page as a string; images are embedded as data URIs and nothing is fetched.
    """
    plots_dir = Path(plots_dir)
    link_base = Path(link_base) if link_base is not None else plots_dir.parent
    explanations = list(document.get("explanations") or [])
    if plot_files is None:
        plot_files = row_plot_files(explanations, plots_dir, max_plots=max_plots)
    warnings = list(document.get("warnings") or [])
    model = document.get("model") or {}
    data = document.get("data") or {}
    tool = document.get("tool") or {}

    rows = len({e.get("row") for e in explanations})
    methods = list(dict.fromkeys(method_name(str(e.get("method"))) for e in explanations))
    classes = _ordered_classes(
        [str(e["class"]) for e in explanations if e.get("class") is not None], model.get("classes")
    )
    stats = [
        stat("rows", rows),
        stat("explanations", len(explanations)),
        stat("methods", ", ".join(methods) or MISSING_CELL),
    ]
    if classes:
        stats.append(stat("classes explained", ", ".join(classes)))
    stats.append(stat("warnings", len(warnings), kind="warning" if warnings else None))

    summary_path = plots_dir / SUMMARY_PLOT
    summary = ""
    if summary_path.is_file():
        summary = section(
            "Mean |attribution| per feature",
            image(summary_path, "Mean absolute attribution per feature"),
            id_="summary",
        )

    model_name = Path(str(model.get("path") or "model")).name
    data_name = Path(str(data.get("path") or "data")).name
    subtitle = join(
        [
            f"{model.get('type') or 'model'} on {data.get('path') or 'data'}",
            f"created {document.get('created_at')}" if document.get("created_at") else "",
            f"{tool.get('name', 'xai-cli')} {tool.get('version', '')}".strip(),
        ],
        " · ",
    )
    toc = [("warnings", "Warnings"), ("quality", "Quality")]
    if summary:
        toc.append(("summary", "Summary plot"))
    row_plots = row_plots_section(
        explanations, plot_files, link_base=link_base, max_plots=max_plots, interactive=interactive
    )
    if row_plots:
        toc.append(("row-plots", "Plots per row"))
    toc += [("top-features", "Top features"), ("run", "Run")]
    return html_page(
        f"Explanations of {model_name} on {data_name}",
        [
            tag("div", *stats, class_="stats"),
            run_brief(document),
            warnings_section(warnings),
            quality_section(explanations),
            summary,
            row_plots,
            top_features_section(explanations, top=top),
            metadata_section(document),
        ],
        subtitle=subtitle,
        toc=toc,
        footer=f"Made by {tool.get('name', 'xai-cli')} {tool.get('version', '')}; schema version "
        f"{document.get('schema_version', '?')}. This page fetches nothing from the network.",
        head_scripts=[Html(shap_bundle_script())] if interactive and row_plots else (),
    )
