"""Plots and the HTML report: files that decode, labels a person can read, a page that is safe offline.

Explanations are built by hand (no model is trained), so these tests pin the drawing and the page,
not the methods.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from xai_cli import plots, report
from xai_cli.explanation import Attribution, AttributionSummary, Explanation, ExplanationDocument

PROJECT_ROOT = Path(__file__).resolve().parents[1]
XSS = "<script>alert(1)</script>"
LONG_NAME = "customer_lifetime_value_in_euros_over_the_last_twelve_months_rolling_average"
NETWORK_URL = re.compile(r"""(?:src|href|action|poster|srcset)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def make_explanation(
    *,
    n_features: int = 30,
    method: str = "kernel_shap",
    class_label: str | None = "yes",
    row: int = 0,
    row_id: str | None = None,
    base_value: float = 0.41,
    first_value: object = 42,
) -> Explanation:
    """An explanation with a long name, a string value, a missing value and geometric attributions."""
    attributions = []
    for index in range(n_features):
        name = {0: "age", 1: "color", 2: "notes", 3: LONG_NAME, 4: "price $"}.get(index, f"feature_{index}")
        value = {0: first_value, 1: "red", 2: None, 3: float("nan"), 4: 1250.5}.get(index, round(index * 0.37, 2))
        attribution = (-1 if index % 3 == 1 else 1) * 0.3 * 0.72**index
        rule = f"{name} > {index * 0.5:.2f}" if method == "lime" else None
        std_error = 0.003 if method == "kernel_shap" else None
        attributions.append(Attribution(name, value, attribution, rule=rule, std_error=std_error))
    total = math.fsum(a.attribution for a in attributions)
    if method == "lime":
        quality = {"r2": 0.42, "local_prediction": base_value + total}
        prediction = base_value + total + 0.04
    else:
        quality = {"additivity_gap": 0.0, "exact": method != "kernel_shap"}
        prediction = base_value + total
    return Explanation(
        row,
        str(row) if row_id is None else row_id,
        method,
        class_label,
        prediction,
        base_value,
        attributions,
        quality,
    )


CASES = {
    "binary": lambda: make_explanation(),
    "regression": lambda: make_explanation(method="tree_shap", class_label=None, base_value=120.0, n_features=6),
    "lime": lambda: make_explanation(method="lime"),
    "one_feature": lambda: make_explanation(method="linear_shap", n_features=1),
}


def read_png(path_or_bytes):
    """The image as an array (height, width, channels); fails when it is not a valid PNG."""
    import io

    import matplotlib.image

    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    return matplotlib.image.imread(source, format="png")


def assert_sensible_png(path_or_bytes, *, min_width=500, min_height=150):
    pixels = read_png(path_or_bytes)
    height, width = pixels.shape[:2]
    assert min_width <= width <= 6000 and min_height <= height <= 6000, (width, height)
    assert pixels.std() > 0.01, "the image is blank"


@pytest.mark.parametrize("case", sorted(CASES))
def test_force_and_waterfall_pngs_decode_with_a_sensible_size(case, tmp_path):
    explanation = CASES[case]()
    plots.force_plot_png(explanation, tmp_path / "force.png")
    plots.waterfall_png(explanation, tmp_path / "waterfall.png")
    assert_sensible_png(tmp_path / "force.png")
    assert_sensible_png(tmp_path / "waterfall.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["force.png", "waterfall.png"], "temporary files left"


def test_waterfall_shows_top_features_and_sums_the_rest_into_one_bar():
    figure = plots.waterfall_figure(make_explanation(n_features=30), max_features=10)
    labels = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    assert len(labels) == 11
    assert labels[0] == "20 other features"  # the bottom bar
    assert labels[-1] == "age = 42"  # the largest attribution, at the top
    assert "color = red" in labels and "notes = missing" in labels
    texts = " ".join(text.get_text() for text in figure.axes[0].texts)
    assert "base value = 0.41" in texts and "prediction f(x) =" in texts


def test_lime_bars_are_labelled_with_their_rules():
    figure = plots.waterfall_figure(make_explanation(method="lime"), max_features=5)
    labels = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    assert "age > 0.00" in labels and "color > 0.50" in labels
    texts = " ".join(text.get_text() for text in figure.axes[0].texts)
    assert "intercept" in texts and "model prediction" in texts  # LIME's local model is not the model


def test_force_plot_labels_name_value_pairs_and_marks_base_and_prediction():
    figure = plots.force_plot_figure(make_explanation(row=7, row_id="cust-7"), max_labels=8)
    texts = [text.get_text() for text in figure.axes[0].texts]
    assert any(text.startswith("age = 42") for text in texts)
    assert any(text.startswith("color = red") for text in texts)
    assert any(text.startswith("notes = missing") for text in texts)
    assert any(text.startswith("base value = 0.41") for text in texts)
    assert any(text.startswith("prediction f(x) = ") for text in texts)
    assert figure.get_suptitle() == "Kernel SHAP · row 7 (id cust-7) · class yes"


def test_long_names_and_values_are_shortened_in_the_middle_not_cut_off():
    label = plots.attribution_label(Attribution(LONG_NAME, "x" * 100, 0.1), "kernel_shap")
    assert label.startswith("customer_lifetime_value") and "…" in label
    assert label.split(" = ")[0].endswith("rolling_average")
    assert len(label) < 90


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "missing"),
        (float("nan"), "missing"),
        ("red", "red"),
        (42, "42"),
        (0.1234567, "0.123457"),
        (52000.5, "52000.5"),
        (True, "True"),
    ],
)
def test_values_read_as_a_person_expects(value, shown):
    assert plots.format_value(value) == shown


def test_summary_bar_lists_at_most_20_features_plus_one_other_bar():
    explanations = [make_explanation(row=row) for row in range(4)]
    figure = plots.summary_bar_figure(explanations, max_features=20)
    ax = figure.axes[0]
    labels = [label.get_text() for label in ax.get_yticklabels()]
    assert len(labels) == 21 and labels[-1] == "10 other features"
    assert len(ax.patches) == 21
    assert labels[0] == "age"


def test_summary_bar_has_one_panel_per_method_and_one_bar_segment_per_class():
    explanations = [
        make_explanation(row=row, method=method, class_label=label)
        for row in range(3)
        for method in ("kernel_shap", "lime")
        for label in ("no", "yes")
    ]
    figure = plots.summary_bar_figure(explanations, max_features=20)
    assert [ax.get_title(loc="left") for ax in figure.axes] == ["Kernel SHAP", "LIME"]
    for ax in figure.axes:
        assert len(ax.get_yticks()) == 21
        assert len(ax.patches) == 21 * 2
    assert [text.get_text() for text in figure.legends[0].get_texts()] == ["class no", "class yes"]


def test_summary_bar_png_decodes(tmp_path):
    plots.summary_bar_png([make_explanation(row=r) for r in range(3)], tmp_path / "summary_bar.png")
    assert_sensible_png(tmp_path / "summary_bar.png", min_height=500)


def test_interactive_force_plot_is_offline_and_keeps_markup_as_data(tmp_path):
    explanation = make_explanation(first_value="</script>" + XSS, row_id=XSS)
    plots.force_plot_html(explanation, tmp_path / "force.html")
    page = (tmp_path / "force.html").read_text(encoding="utf-8")
    assert "SHAP.AdditiveForceVisualizer" in page and len(page) > 100_000  # shap's bundle is inlined
    assert not NETWORK_URL.search(page)
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.IGNORECASE)
    assert XSS not in page and "</script><script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the title
    data = json.loads(re.search(r"AdditiveForceVisualizer, (\{.*\})\),\n", page).group(1))
    assert "</script>" + XSS in [feature["value"] for feature in data["features"].values()]


def test_plot_file_stems_follow_the_contract():
    explanations = [
        make_explanation(row=0, row_id="a/b c", n_features=2),
        make_explanation(row=1, row_id="a:b?c", n_features=2),
        make_explanation(row=2, row_id="../x", n_features=2),
    ]
    stems = plots.plot_stems(explanations)
    assert stems[(0, "kernel_shap", "yes")] == "a_b_c_0"
    assert stems[(1, "kernel_shap", "yes")] == "a_b_c_1"
    assert stems[(2, "kernel_shap", "yes")] == ".._x"
    both = [make_explanation(row=0, row_id="r0", method=m, n_features=2) for m in ("tree_shap", "lime")]
    assert sorted(plots.plot_stems(both).values()) == ["r0", "r0_lime"]  # the first method keeps the plain name


def test_row_plot_files_stay_inside_the_plots_folder(tmp_path):
    explanations = [make_explanation(row=r, row_id=f"../../{r}", n_features=2) for r in range(30)]
    files = plots.row_plot_files(explanations, tmp_path, max_plots=20)
    assert sorted(key[0] for key in files) == list(range(20))
    for kinds in files.values():
        assert set(kinds) == {"force", "waterfall", "force_html"}
        for path in kinds.values():
            assert path.parent == tmp_path and path.name.startswith(("force_", "waterfall_"))


def make_document(explanations: list[Explanation], warnings: list[str]) -> dict:
    return ExplanationDocument(
        created_at="2026-11-22T10:00:00Z",
        tool_version="0.1.0",
        model={
            "path": f"models/{XSS}.pkl",
            "sha256": "ab" * 32,
            "type": "sklearn.pipeline.Pipeline",
            "task": "classification",
            "output": "probability",
            "classes": ["no", XSS],
        },
        data={"path": "rows.csv", "sha256": "cd" * 32, "rows": 4, "features": ["age", "color", XSS]},
        background={"path": "train.csv", "rows": 100},
        versions={"python": "3.11.7", "shap": "0.51.0"},
        params={"method": "all", "seed": 0, "nsamples": 2048, "game": {"kind": "interventional"}},
        explanations=explanations,
        warnings=warnings,
    ).to_dict()


@pytest.fixture(scope="module")
def explain_report(tmp_path_factory):
    """A report of 4 rows x (Kernel SHAP, LIME) with markup in ids, values and labels; plots for 2 rows."""
    out = tmp_path_factory.mktemp("out")
    explanations = []
    for row in range(4):
        row_id = XSS if row == 1 else f"cust-{row}"
        explanations.append(make_explanation(row=row, row_id=row_id, class_label=XSS, first_value=XSS))
        explanations.append(make_explanation(row=row, row_id=row_id, class_label=XSS, method="lime", n_features=8))
    written = plots.write_row_plots(explanations, out / "plots", max_plots=2, interactive=True)
    plots.summary_bar_png(explanations, out / "plots" / "summary_bar.png")
    document = make_document(explanations, ["column 'extra' was ignored", f"bad value {XSS}"])
    page = report.explain_report_html(document, out / "plots", plot_files=written, max_plots=2)
    return page, written, out


def test_report_fetches_nothing_from_the_network(explain_report):
    page, _, _ = explain_report
    assert not NETWORK_URL.search(page)
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.IGNORECASE)
    assert not re.search(r"<link\b|@import|url\(\s*['\"]?(?:https?:)?//", page, re.IGNORECASE)
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_report_embeds_the_summary_and_the_plots_of_the_first_rows_as_data_uris(explain_report):
    page, written, _ = explain_report
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(uris) == 1 + 2 * len(written) == 9  # summary + (force, waterfall) x 2 rows x 2 methods
    for uri in uris:
        assert_sensible_png(base64.b64decode(uri), min_width=300, min_height=100)
    assert "Plots of the first 2 of 4 rows" in page
    assert page.count('href="plots/force_') == len(written)


def test_report_escapes_everything_that_comes_from_the_data(explain_report):
    page, _, _ = explain_report
    assert XSS not in page
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert page.count(escaped) > 10  # id, value, class label, model path, classes, features, warning
    assert f"bad value {escaped}" in page
    # shap's bundle once, then the table sorter and one force plot per plotted explanation, nothing else.
    bundle = plots.shap_bundle_script()
    assert page.count(bundle) == 1
    assert page.replace(bundle, "").count("<script") == 1 + 4


def test_report_draws_shaps_force_plot_inline_for_the_plotted_rows_with_the_data_escaped(explain_report):
    page, written, _ = explain_report
    head, body = page.split("<body>", 1)
    assert plots.shap_bundle_script() in head and len(head) > 300_000, "shap's bundle is inlined in the head"
    plotted = re.findall(
        r'<div id="(xai-force-\d+)" class="xai-force"></div>\n<script>\n.*?AdditiveForceVisualizer, (\{.*?\})\),\n'
        r'  document.getElementById\("(xai-force-\d+)"\)\);\n</script>',
        body,
        re.DOTALL,
    )
    assert len(plotted) == len(written) == 4  # (Kernel SHAP, LIME) x the first 2 rows
    assert len({element for element, _, _ in plotted}) == 4 and all(a == b for a, _, b in plotted)
    values = []
    for _, data, _ in plotted:
        assert "<" not in data  # no tag can open or close inside the script
        values += [feature["value"] for feature in json.loads(data)["features"].values()]
    assert XSS in values and "\\u003cscript\\u003ealert(1)" in body
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.IGNORECASE)


def test_report_shows_metadata_quality_and_top_features(explain_report):
    page, _, _ = explain_report
    for text in (
        "ab" * 32,
        "cd" * 32,
        "sklearn.pipeline.Pipeline",
        "game.kind",
        "interventional",
        "0.51.0",
        "additivity_gap",
        "exact",
        "r2",
        "local_prediction",
        "Warnings (2)",
        "Top 5 features",
    ):
        assert text in page, text
    assert page.count('<ol class="attrs">') == 8  # every explanation is in the table, plotted or not
    assert "rule: age &gt; 0.00" in page


def test_report_finds_plots_by_their_default_names_and_takes_ids_as_keys(tmp_path):
    explanations = [make_explanation(row=0, row_id="r0", n_features=3)]
    written = plots.write_row_plots(explanations, tmp_path / "plots", interactive=False)
    document = make_document(explanations, [])
    by_default = report.explain_report_html(document, tmp_path / "plots")
    assert by_default.count("data:image/png;base64,") == 2 and "No warnings." in by_default
    files = written[(0, "kernel_shap", "yes")]
    by_id = {"r0": {"force_png": files["force"], "waterfall_png": files["waterfall"]}}
    assert report.explain_report_html(document, tmp_path / "plots", plot_files=by_id).count("data:image/png") == 2


def test_report_without_any_plot_file_still_renders(tmp_path):
    page = report.explain_report_html(make_document([make_explanation(n_features=3)], []), tmp_path / "none")
    assert "data:image" not in page and "Top 5 features" in page


def test_building_blocks_escape_text_and_keep_markup():
    cells = report.table(
        ["name", report.Html("<em>value</em>")],
        [[XSS, report.Html("<b>1</b>")], ["x", 2.5]],
        sortable=True,
        numeric=[1],
    )
    assert XSS not in cells and "<b>1</b>" in cells and "<em>value</em>" in cells
    assert 'data-sort="2.5"' in cells and 'class="data sortable"' in cells
    png = plots.figure_to_png_bytes(plots.waterfall_figure(make_explanation(n_features=2)))
    figure = report.image(png, alt=XSS, caption=XSS)
    assert figure.count("&lt;script&gt;") == 2 and "data:image/png;base64," in figure
    page = report.html_page(XSS, [report.warnings_section([XSS]), report.metadata_section({"model": {"path": XSS}})])
    assert XSS not in page and page.startswith("<!DOCTYPE html>")


def test_importing_plots_and_report_loads_no_heavy_library_and_drawing_uses_no_pyplot(tmp_path):
    script = f"""
import sys
import xai_cli.plots, xai_cli.report
heavy = [name for name in ("shap", "matplotlib", "pandas", "sklearn") if name in sys.modules]
assert not heavy, heavy
from xai_cli.explanation import Attribution, Explanation
attributions = [Attribution("a", 1, 0.7), Attribution("b", "x", -0.2)]
explanation = Explanation(0, "0", "tree_shap", None, 1.5, 1.0, attributions)
xai_cli.plots.force_plot_png(explanation, {str(tmp_path / "f.png")!r})
xai_cli.plots.waterfall_png(explanation, {str(tmp_path / "w.png")!r})
xai_cli.plots.summary_bar_png([explanation], {str(tmp_path / "s.png")!r})
assert "matplotlib.pyplot" not in sys.modules, "a plot used pyplot's global state"
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    assert result.returncode == 0, result.stderr


def bars_by_class(ax) -> dict[str, dict[str, tuple[float, float]]]:
    """{class legend label: {feature label: (left, width)}} of a summary panel's bars."""
    features = [label.get_text() for label in ax.get_yticklabels()]
    return {
        container.get_label(): {
            feature: (patch.get_x(), patch.get_width())
            for feature, patch in zip(features, container.patches, strict=True)
        }
        for container in ax.containers
    }


@pytest.fixture(scope="module")
def multiclass_runs(tmp_path_factory, xgb_multiclass, numeric_data):
    """``xai explain`` of 40 rows of a 3-class model: each row for its predicted class, and for every class."""
    import pandas as pd
    from conftest import run_cli

    work = tmp_path_factory.mktemp("multiclass")
    pd.read_csv(numeric_data["train"]).iloc[:40].to_csv(work / "rows.csv", index=False)
    documents = {}
    for option in ("predicted", "all"):
        args = ["explain", xgb_multiclass, work / "rows.csv", "--target", "klass", "--class", option]
        result = run_cli(
            [*args, "--background", numeric_data["train"], "--out", work / option, "--quiet", "--max-plots", "0"]
        )
        assert result.code == 0, result.stderr
        documents[option] = json.loads((work / option / "attributions.json").read_text())
    return documents


def test_summary_bar_segments_of_predicted_classes_add_up_to_the_mean_over_all_rows(multiclass_runs):
    document = multiclass_runs["predicted"]
    explanations = document["explanations"]
    rows = len({e["row"] for e in explanations})
    assert rows == len(explanations) == 40
    # Worked out from the JSON alone: a class's segment is its rows' |attribution| summed, over all rows.
    expected: dict[str, dict[str, float]] = {}
    for e in explanations:
        for a in e["attributions"]:
            segment = expected.setdefault(f"class {e['class']}", {})
            segment[a["feature"]] = segment.get(a["feature"], 0.0) + abs(a["attribution"]) / rows
    assert len(expected) >= 2, "the rows should be predicted as different classes"
    features = document["data"]["features"]
    totals = {f: math.fsum(segment.get(f, 0.0) for segment in expected.values()) for f in features}
    true_means = {
        f: math.fsum(abs(a["attribution"]) for e in explanations for a in e["attributions"] if a["feature"] == f) / rows
        for f in features
    }
    assert totals == pytest.approx(true_means)

    summary = AttributionSummary(plots.explanation_from_dict(e) for e in explanations)
    figure = plots.summary_bar_figure(summary)
    ax = figure.axes[0]
    bars = bars_by_class(ax)
    assert set(bars) == set(expected)
    shown = [label.get_text() for label in ax.get_yticklabels()]
    assert shown == sorted(features, key=lambda f: -totals[f]), "sorted by the total each bar prints"
    for label, segments in bars.items():
        for feature in shown:
            assert segments[feature][1] == pytest.approx(expected[label].get(feature, 0.0), abs=1e-12), (label, feature)
    printed = [text.get_text().strip() for text in ax.texts]
    assert printed == [plots.format_number(totals[f], 3) for f in shown]
    assert "over 40 rows" in figure.get_suptitle() and ax.get_xlabel() == "mean |attribution| over 40 rows"
    assert "add up to the mean over all rows" in ax.get_title(loc="left")


def test_summary_bar_sets_classes_side_by_side_when_every_row_is_explained_for_every_class(multiclass_runs):
    document = multiclass_runs["all"]
    explanations = document["explanations"]
    rows = len({e["row"] for e in explanations})
    expected: dict[str, dict[str, float]] = {}
    for e in explanations:
        for a in e["attributions"]:
            bar = expected.setdefault(f"class {e['class']}", {})
            bar[a["feature"]] = bar.get(a["feature"], 0.0) + abs(a["attribution"]) / rows
    assert len(expected) == 3 and len(explanations) == 3 * rows

    figure = plots.summary_bar_figure(AttributionSummary(plots.explanation_from_dict(e) for e in explanations))
    ax = figure.axes[0]
    bars = bars_by_class(ax)
    assert set(bars) == set(expected)
    for label, by_feature in bars.items():
        for feature, (left, width) in by_feature.items():
            assert left == 0, "a class's bar must not stand on another class's: that would add them up"
            assert width == pytest.approx(expected[label][feature], abs=1e-12)
    shown = [label.get_text() for label in ax.get_yticklabels()]
    assert shown == sorted(shown, key=lambda f: -sum(expected[c][f] for c in expected))
    assert "per feature and class" in figure.get_suptitle()
    assert ax.get_xlabel() == f"mean |attribution| per class over {rows} rows"


def wide_explanation(n_features: int = 45) -> Explanation:
    """45 features with long names (differing only at their end), half raising, half lowering."""
    attributions = [
        Attribution(
            f"customer_account_average_monthly_transaction_amount_feature_{i:02d}",
            -0.3604401707908981 * (i + 1),
            (1 if i % 2 else -1) * 0.06 * 0.93**i,
        )
        for i in range(n_features)
    ]
    attributions[5] = Attribution(XSS, "a", 0.0105)
    base = 0.2067
    prediction = base + math.fsum(a.attribution for a in attributions)
    return Explanation(0, XSS, "kernel_shap", "medium", prediction, base, attributions, {"additivity_gap": 0.0})


def test_force_plot_keeps_a_wide_bar_and_few_labels_with_45_long_named_features(tmp_path):
    figure = plots.force_plot_figure(wide_explanation())
    figure.canvas.draw()
    ax = figure.axes[0]
    low, high = ax.spines["top"].get_bounds()
    bar_pixels = ax.transData.transform([(high, 0)])[0][0] - ax.transData.transform([(low, 0)])[0][0]
    assert bar_pixels / figure.dpi >= plots.FORCE_MIN_BAR_INCHES - 0.01, "the bar's axis is squeezed by its labels"
    marks = ("prediction", "base value", "model prediction")
    labels = [text for text in ax.texts if " = " in text.get_text() and not text.get_text().startswith(marks)]
    assert 2 <= len(labels) <= 2 * plots.FORCE_MAX_LABELS
    # Every label stays clear of the others: one per line on its side.
    boxes = [text.get_window_extent() for text in labels]
    for i, box in enumerate(boxes):
        assert not any(box.overlaps(other) for other in boxes[i + 1 :]), labels[i].get_text()
    hidden = [t.get_text() for t in figure.texts if "not labelled" in t.get_text()]
    assert hidden == [f"{45 - len(labels)} smaller effects not labelled"]
    plots.force_plot_png(wide_explanation(), tmp_path / "force.png")
    assert_sensible_png(tmp_path / "force.png", min_width=1500)


def test_run_metadata_is_summed_up_at_the_top_and_listed_in_full_below(explain_report):
    page, _, _ = explain_report
    brief = page.index('class="card run-brief"')
    assert brief < page.index('id="warnings"') < page.index('id="run"')
    top = page[brief : page.index('id="warnings"')]
    for digest in ("ab" * 32, "cd" * 32):  # the model's and the data's hash cut short, whole in the tooltip
        assert re.search(f'<code title="{digest}" class="hash">{digest[:12]}…</code>', top), digest
    for text in ("sklearn.pipeline.Pipeline", "4 rows", "train.csv", "shap 0.51.0", "python 3.11.7", "seed 0"):
        assert text in top, text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.pkl" in top and XSS not in top
    assert "ab" * 32 + "</code>" in page[page.index('id="run"') :], "the Run cards keep the whole hash"


def test_many_warnings_are_grouped_by_kind_with_the_rest_folded():
    lime = [f"row {row} (lime, class yes): LIME's local model fits poorly (R² 0.{row + 10} < 0.5)" for row in range(30)]
    columns = [f"column {name}: values the model never saw were treated as missing: {XSS}" for name in "abc"]
    options = "seed scoring nsamples lime-samples n-jobs repeats class output trust allow".split()
    others = [f"--{option} has no effect here" for option in options]
    warnings = ["DATA columns not used by the model (ignored): extra", *lime, *columns, *others]
    section = report.warnings_section(warnings)
    assert "Warnings (44, 13 kinds)" in section
    shown, folded = section.split("more kinds of warning")
    assert "5 more kinds of warning" in section  # 13 kinds: the first 8 shown
    assert shown.count("× </strong>") == 2 and "30× </strong>" + html.escape(lime[0]) in shown
    assert "29 more like it" in shown and "2 more like it" in shown
    assert all(html.escape(w) in section for w in warnings), "every warning is still on the page"
    assert all(html.escape(w) in folded for w in others[-5:])
    assert section.count("&lt;script&gt;") == 3 and XSS not in section
    few = report.warnings_section(warnings[:3])
    assert "<details>" not in few and few.count("<li>") == 3
