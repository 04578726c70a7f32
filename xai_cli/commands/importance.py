"""``xai importance``: global importance (permutation, built-in, mean |SHAP|) and how far they agree."""

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from xai_cli.commands.options import (
    INPUT_PANEL,
    METHOD_PANEL,
    OUTPUT_PANEL,
    AllowOption,
    ConfigOption,
    IdColOption,
    TrustOption,
    check_choice,
    check_out_dir,
    check_range,
)

IMPORTANCE_EPILOG = """
Example (penguins shipped in sample_data/):

  python sample_data/train_model.py
  xai importance sample_data/model.joblib sample_data/penguins.csv \\
      --target species

writes importance.json, importance.csv, plots/importance_<method>.png,
plots/agreement.png and report.html into xai-output/. One method and another
scorer, JSON to stdout:

  xai importance model.pkl data.csv --target y --method permutation \\
      --scoring f1_macro --json | jq .agreement
"""
MAX_TABLE_FEATURES = 30
# The feature column never shrinks below this, whatever the terminal width.
MIN_FEATURE_CHARS = 12


def importance(
    model_path: Annotated[str, typer.Argument(metavar="MODEL", help="Model file: .pkl, .joblib or .skops.")],
    data_path: Annotated[str, typer.Argument(metavar="DATA", help="CSV to measure importance on, or - for stdin.")],
    method: Annotated[
        str,
        typer.Option(
            "--method",
            metavar="permutation|builtin|shap|all",
            help="Which importance to compute (default: all that apply).",
            rich_help_panel=METHOD_PANEL,
        ),
    ] = "all",
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            metavar="COL",
            help="Label column (dropped from the features; permutation importance needs it).",
            rich_help_panel=INPUT_PANEL,
        ),
    ] = None,
    id_col: IdColOption = None,
    scoring: Annotated[
        str | None,
        typer.Option(
            "--scoring",
            metavar="NAME",
            help="scikit-learn scorer for permutation importance (default: accuracy, or r2 for regressors).",
            rich_help_panel=METHOD_PANEL,
        ),
    ] = None,
    repeats: Annotated[
        int, typer.Option("--repeats", help="Shuffles per column (permutation).", rich_help_panel=METHOD_PANEL)
    ] = 5,
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed: same seed, same numbers.", rich_help_panel=METHOD_PANEL)
    ] = 0,
    n_jobs: Annotated[
        int, typer.Option("--n-jobs", help="Processes for permutation importance.", rich_help_panel=METHOD_PANEL)
    ] = 1,
    config: ConfigOption = None,
    out: Annotated[
        Path, typer.Option("--out", metavar="DIR", help="Output folder.", rich_help_panel=OUTPUT_PANEL)
    ] = Path("xai-output"),
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print importance.json to stdout, nothing else.", rich_help_panel=OUTPUT_PANEL),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print nothing but errors.", rich_help_panel=OUTPUT_PANEL)
    ] = False,
    trust: TrustOption = False,
    allow: AllowOption = None,
) -> None:
    """Global feature importance: permutation, built-in and mean |SHAP|, and their agreement."""
    from xai_cli.data import columns_read_as_text, match_rows, read_table
    from xai_cli.importance import METHOD_CHOICES, build_document, compute_importance, write_importance_outputs
    from xai_cli.model import load_model

    check_choice("--method", method, METHOD_CHOICES)
    check_range("--seed", seed, 0, 2**32 - 1)  # scikit-learn's random_state range
    check_range("--repeats", repeats, 1, 1000)
    check_range("--n-jobs", n_jobs, 1)

    model = load_model(model_path, trust=trust, allow=allow or ())
    check_out_dir(out)
    table = read_table(data_path, text_columns=columns_read_as_text(model, id_col=id_col))
    rows = match_rows(table, model, target=target, id_col=id_col, require_target=target is not None)
    result = compute_importance(model, rows, method=method, scoring=scoring, repeats=repeats, seed=seed, n_jobs=n_jobs)
    document = build_document(result, model=model, data=table, rows=rows)
    write_importance_outputs(document, out)

    if as_json:
        sys.stdout.write(json.dumps(document, indent=2, allow_nan=False) + "\n")
    elif not quiet:
        print_importance(document, out)


def print_importance(document: dict[str, Any], out_dir: Path) -> None:
    """A feature x method table, what each method measured, the agreement between methods,
    warnings, and where the files went.

    Readable at 80 columns: short headers (the method; what it measured goes in a line under the
    table), numbers never wrapped or cut, long feature names cut in the middle with an ellipsis.
    """
    from rich.markup import escape
    from rich.table import Table

    from xai_cli.importance import METHOD_TITLES, feature_table
    from xai_cli.plots import shorten
    from xai_cli.terminal import make_console, print_warning

    console = make_console()
    methods = document["methods"]
    names = list(methods)
    by_feature = feature_table(document)
    rows = [[feature, *(_cell(entry) for entry in entries)] for feature, entries in by_feature[:MAX_TABLE_FEATURES]]
    # Each number column as wide as its widest number; the feature names give way (cut in the
    # middle: long names often differ only at their ends) to what is left of the terminal, the
    # numbers never do. A column takes 3 more characters of border and padding, the table one.
    widths = [max([len(METHOD_TITLES[name]), *(len(row[i]) for row in rows)]) for i, name in enumerate(names, 1)]
    feature_width = max(MIN_FEATURE_CHARS, console.width - sum(widths) - 3 * (len(names) + 1) - 1)
    table = Table(title="Feature importance", title_justify="left")
    table.add_column("feature", overflow="ellipsis", no_wrap=True, max_width=feature_width)
    for name, width in zip(names, widths):
        table.add_column(METHOD_TITLES[name], justify="right", no_wrap=True, min_width=width)
    for feature, *cells in rows:
        table.add_row(escape(shorten(feature, feature_width)), *cells)
    console.print(table)
    if len(by_feature) > MAX_TABLE_FEATURES:
        console.print(f"... and {len(by_feature) - MAX_TABLE_FEATURES} more features in {out_dir / 'importance.csv'}")
    for name in names:
        console.print(
            f"[dim]{escape(METHOD_TITLES[name])}: {escape(_measured(name, methods[name]))}[/dim]",
            highlight=False,
        )
    if document["agreement"]:
        top_k = document["agreement"][0].get("top_k", 5)
        agreement = Table(title="Agreement", title_justify="left")
        agreement.add_column("method", no_wrap=True)
        agreement.add_column("method", no_wrap=True)
        agreement.add_column("Spearman rho", justify="right", no_wrap=True)
        agreement.add_column(f"top-{top_k} overlap", justify="right", no_wrap=True)
        for pair in document["agreement"]:
            rho = "n/a" if pair["spearman"] is None else f"{pair['spearman']:+.2f}"
            overlap = "n/a" if pair["top5_overlap"] is None else f"{pair['top5_overlap']:.0%}"
            agreement.add_row(METHOD_TITLES[pair["a"]], METHOD_TITLES[pair["b"]], rho, overlap)
        console.print(agreement)
    for warning in document["warnings"]:
        print_warning(console, warning)
    console.print(f"wrote {out_dir}/importance.json, importance.csv, plots/, report.html", highlight=False)


def _measured(name: str, method: dict[str, Any]) -> str:
    """What one method's column holds, in a few words."""
    from xai_cli.importance import kind_title, rows_used

    if name == "permutation":
        positive = f", positive class {method['pos_label']}" if method.get("pos_label") is not None else ""
        return f"drop in {method['scoring']}{positive} when the column is shuffled (± std over {method['repeats']})"
    if name == "shap":
        return f"{kind_title(method['kind'])} over {rows_used(method)}, {method.get('output')} output"
    summed = ", summed over each column's model inputs" if method.get("summed_over_inputs") else ""
    return f"{kind_title(method['kind'])}{summed}"


def _cell(entry: dict[str, Any]) -> str:
    text = f"{entry['importance']:.4g}"
    return text if entry["std"] is None else f"{text} ± {entry['std']:.2g}"
