"""``xai inspect``: what xai sees in a model file, its safety verdict, and DATA's columns against it."""

import json
import sys
from typing import Annotated, Any

import typer

from xai_cli.commands.options import OUTPUT_PANEL, AllowOption, TrustOption

INSPECT_EPILOG = """
Example (penguins shipped in sample_data/):

  python sample_data/train_model.py
  xai inspect sample_data/model.joblib sample_data/rows.csv

prints the model's type, task, classes and features, the methods that apply,
the safety verdict and which columns of rows.csv match. Exit 3: the scan
refused the file (it was not loaded); exit 2: DATA lacks columns the model
needs.

  xai inspect model.pkl --json | jq .safety
"""
MAX_CATEGORIES_SHOWN = 6


def inspect(
    model_path: Annotated[str, typer.Argument(metavar="MODEL", help="Model file: .pkl, .joblib or .skops.")],
    data_path: Annotated[
        str | None,
        typer.Argument(metavar="DATA", help="CSV to check against the model's features, or - for stdin."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON, nothing else.", rich_help_panel=OUTPUT_PANEL)
    ] = False,
    trust: TrustOption = False,
    allow: AllowOption = None,
) -> None:
    """Model type, task, classes, features, applicable methods, safety verdict; with DATA, its columns."""
    from xai_cli.inspection import inspect_model

    inspection = inspect_model(model_path, data_path, trust=trust, allow=allow or ())
    document = inspection.to_dict()
    if as_json:
        sys.stdout.write(json.dumps(document, indent=2, allow_nan=False) + "\n")
    else:
        print_inspection(document)
    error = inspection.blocking_error()
    if error is not None:
        raise error


def print_inspection(document: dict[str, Any]) -> None:
    """The report as rich tables: safety verdict, model, features, methods, DATA's columns, warnings."""

    from xai_cli.terminal import make_console, print_warning

    console = make_console()
    console.print(_safety_line(document["safety"]), highlight=False)
    model = document["model"]
    if model["loaded"]:
        console.print(_facts_table(document))
        console.print(_features_table(model["features"]))
        console.print(_methods_table(document["methods"], document["auto"]))
    if document["data"] is not None:
        console.print(_data_table(document["data"]))
    for warning in document["warnings"]:
        print_warning(console, warning)


def _safety_line(safety: dict[str, Any]) -> str:
    from rich.markup import escape

    container = f" ({escape(str(safety['container']))})" if safety.get("container") else ""
    if safety["safe"]:
        return f"[green]safety scan: safe[/green]{container}: imports only allowed modules"
    refused = ", ".join(safety["refused"]) or safety["problem"] or "unreadable"
    state = "loaded anyway (--trust)" if safety["trusted"] else "not loaded"
    return f"[bold red]safety scan: refused[/bold red]{container}: {escape(refused)} — {state}"


def _facts_table(document: dict[str, Any]) -> Any:
    from rich.markup import escape
    from rich.table import Table

    model, sklearn = document["model"], document["sklearn"]
    table = Table(title="Model", title_justify="left", show_header=False)
    table.add_column("fact", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("file", escape(f"{model['path']}  sha256 {model['sha256'][:16]}…"))
    wrapped = not model["type"].endswith(model["final_type"])
    table.add_row("type", escape(f"{model['type']} → {model['final_type']}" if wrapped else model["type"]))
    table.add_row("task", model["task"])
    if model["classes"] is not None:
        table.add_row("classes", escape(", ".join(model["classes"])))
    table.add_row(
        "features", f"{len(model['features'])}" + ("" if model["feature_names_known"] else " (unnamed: taken in order)")
    )
    version = f"saved with {sklearn['saved_with'] or 'unknown'}, installed {sklearn['installed'] or 'none'}"
    if sklearn["matches"] is None:
        version += " (the file holds no scikit-learn object to say which)"
    table.add_row("scikit-learn", f"[yellow]{version} (mismatch)[/yellow]" if sklearn["matches"] is False else version)
    return table


def _features_table(features: list[dict[str, Any]]) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="Expected features", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("name", overflow="fold")
    table.add_column("kind")
    table.add_column("dtype")
    table.add_column("categories", overflow="fold")
    for position, feature in enumerate(features):
        categories = feature["categories"] or []
        shown = ", ".join(map(str, categories[:MAX_CATEGORIES_SHOWN]))
        if len(categories) > MAX_CATEGORIES_SHOWN:
            shown += f", … ({len(categories)} in all)"
        table.add_row(str(position), escape(feature["name"]), feature["kind"], feature["dtype"], escape(shown))
    return table


def _methods_table(methods: list[dict[str, Any]], auto: dict[str, Any]) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        title=f"Explanation methods (auto picks {auto['method']}, {auto['output']} output)", title_justify="left"
    )
    table.add_column("--method")
    table.add_column("method")
    table.add_column("applies")
    table.add_column("output")
    table.add_column("why not", overflow="fold")
    for method in methods:
        applies = "[green]yes[/green]" if method["applies"] else "[red]no[/red]"
        table.add_row(method["option"], method["name"], applies, method["output"], escape(method["reason"] or ""))
    return table


def _data_table(data: dict[str, Any]) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"DATA {escape(data['path'])} ({data['rows']} rows)", title_justify="left", show_header=False)
    table.add_column("columns", style="bold")
    table.add_column("names", overflow="fold")
    table.add_row("matched", escape(", ".join(data["matched"])) or "none")
    missing = escape(", ".join(data["missing"]))
    table.add_row("missing", f"[red]{missing}[/red]" if missing else "none")
    table.add_row("extra (ignored)", escape(", ".join(data["extra"])) or "none")
    if data["problem"]:
        table.add_row("problem", f"[red]{escape(data['problem'])}[/red]")
    return table
