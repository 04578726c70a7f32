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

writes importance.json, importance.csv, plots/importance_<method>.png and
report.html into xai-output/. One method and another scorer, JSON to stdout:

  xai importance model.pkl data.csv --target y --method permutation \\
      --scoring f1_macro --json | jq .agreement
"""
MAX_TABLE_FEATURES = 30


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
    from xai_cli.data import match_rows, read_table
    from xai_cli.importance import METHOD_CHOICES, build_document, compute_importance, write_importance_outputs
    from xai_cli.model import load_model

    check_choice("--method", method, METHOD_CHOICES)
    check_range("--seed", seed, 0, 2**32 - 1)  # scikit-learn's random_state range
    check_range("--repeats", repeats, 1, 1000)
    check_range("--n-jobs", n_jobs, 1)

    model = load_model(model_path, trust=trust, allow=allow or ())
    check_out_dir(out)
    table = read_table(data_path)
    rows = match_rows(table, model, target=target, id_col=id_col, require_target=target is not None)
    result = compute_importance(model, rows, method=method, scoring=scoring, repeats=repeats, seed=seed, n_jobs=n_jobs)
    document = build_document(result, model=model, data=table, rows=rows)
    write_importance_outputs(document, out)

    if as_json:
        sys.stdout.write(json.dumps(document, indent=2, allow_nan=False) + "\n")
    elif not quiet:
        print_importance(document, out)


def print_importance(document: dict[str, Any], out_dir: Path) -> None:
    """A feature x method table, the agreement between methods, warnings, and where the files went."""
    from rich.markup import escape
    from rich.table import Table

    from xai_cli.importance import METHOD_TITLES, feature_table
    from xai_cli.terminal import make_console

    console = make_console()
    methods = document["methods"]
    names = list(methods)
    table = Table(title="Feature importance", title_justify="left")
    table.add_column("feature", overflow="fold")
    for name in names:
        table.add_column(
            f"{METHOD_TITLES[name]}\n[dim]{escape(methods[name]['kind'])}[/dim]", justify="right", overflow="fold"
        )
    by_feature = feature_table(document)
    for feature, entries in by_feature[:MAX_TABLE_FEATURES]:
        table.add_row(escape(feature), *(_cell(entry) for entry in entries))
    console.print(table)
    if len(by_feature) > MAX_TABLE_FEATURES:
        console.print(f"... and {len(by_feature) - MAX_TABLE_FEATURES} more features in {out_dir / 'importance.csv'}")
    if document["agreement"]:
        agreement = Table(title="Agreement", title_justify="left")
        for heading in ("method", "method", "Spearman rho", "top-5 overlap"):
            agreement.add_column(heading, justify="right" if " " in heading else "left")
        for pair in document["agreement"]:
            rho = "n/a" if pair["spearman"] is None else f"{pair['spearman']:+.2f}"
            agreement.add_row(METHOD_TITLES[pair["a"]], METHOD_TITLES[pair["b"]], rho, f"{pair['top5_overlap']:.0%}")
        console.print(agreement)
    for warning in document["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
    console.print(f"wrote {out_dir}/importance.json, importance.csv, plots/, report.html", highlight=False)


def _cell(entry: dict[str, Any]) -> str:
    text = f"{entry['importance']:.4g}"
    return text if entry["std"] is None else f"{text} ± {entry['std']:.2g}"
