"""``xai explain``: local attributions for every row of DATA."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from xai_cli.commands.options import (
    INPUT_PANEL,
    METHOD_PANEL,
    OUTPUT_PANEL,
    AllowOption,
    ConfigOption,
    TrustOption,
    check_choice,
    check_range,
    progress,
)
from xai_cli.errors import BadInput

EXPLAIN_EPILOG = """
[bold]Example[/bold] (penguins shipped in sample_data/):

  python sample_data/train_model.py
  xai explain sample_data/model.joblib sample_data/rows.csv --id-col name --background sample_data/penguins.csv

  writes xai-output/attributions.json, attributions.csv, plots/ and report.html.
  cat rows.csv | xai explain model.pkl - --background train.csv --json | jq '.explanations[0]'
"""


def explain(
    model_path: Annotated[str, typer.Argument(metavar="MODEL", help="Model file: .pkl, .joblib or .skops.")],
    data_path: Annotated[str, typer.Argument(metavar="DATA", help="CSV with the rows to explain, or - for stdin.")],
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="auto (exact Tree/linear SHAP where possible, else Kernel SHAP), kernel, tree, linear, lime or all.",
            rich_help_panel=METHOD_PANEL,
        ),
    ] = "auto",
    class_choice: Annotated[
        str,
        typer.Option(
            "--class",
            metavar="predicted|all|LABEL",
            help="Class to explain (default: the positive class for binary, the predicted class otherwise).",
            rich_help_panel=METHOD_PANEL,
        ),
    ] = "default",
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            metavar="probability|raw",
            help="Explain probabilities or the raw margin (default: probability, raw for boosted trees).",
            rich_help_panel=METHOD_PANEL,
        ),
    ] = None,
    nsamples: Annotated[
        int, typer.Option("--nsamples", help="Kernel SHAP coalition budget per row.", rich_help_panel=METHOD_PANEL)
    ] = 2048,
    lime_samples: Annotated[
        int, typer.Option("--lime-samples", help="LIME neighbourhood size per row.", rich_help_panel=METHOD_PANEL)
    ] = 5000,
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed: same seed, same numbers.", rich_help_panel=METHOD_PANEL)
    ] = 0,
    n_jobs: Annotated[
        int, typer.Option("--n-jobs", help="Processes to explain rows in parallel.", rich_help_panel=METHOD_PANEL)
    ] = 1,
    target: Annotated[
        str | None,
        typer.Option(
            "--target", metavar="COL", help="Label column (dropped from the features).", rich_help_panel=INPUT_PANEL
        ),
    ] = None,
    id_col: Annotated[
        str | None,
        typer.Option(
            "--id-col", metavar="COL", help="Column naming the rows in every output.", rich_help_panel=INPUT_PANEL
        ),
    ] = None,
    background: Annotated[
        str | None,
        typer.Option(
            "--background",
            metavar="CSV",
            help="Reference rows (default: DATA when it has 20+ rows).",
            rich_help_panel=INPUT_PANEL,
        ),
    ] = None,
    config: ConfigOption = None,
    out: Annotated[
        Path, typer.Option("--out", metavar="DIR", help="Output folder.", rich_help_panel=OUTPUT_PANEL)
    ] = Path("xai-output"),
    max_plots: Annotated[
        int, typer.Option("--max-plots", help="Rows that get their own plots.", rich_help_panel=OUTPUT_PANEL)
    ] = 20,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print attributions.json to stdout, nothing else.", rich_help_panel=OUTPUT_PANEL),
    ] = False,
    as_jsonl: Annotated[
        bool,
        typer.Option("--jsonl", help="Print one explanation per line as rows finish.", rich_help_panel=OUTPUT_PANEL),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print nothing but errors.", rich_help_panel=OUTPUT_PANEL)
    ] = False,
    trust: TrustOption = False,
    allow: AllowOption = None,
) -> None:
    """Local attributions for every row of DATA: Tree SHAP, linear SHAP, Kernel SHAP, LIME."""
    from xai_cli.artifacts import StreamedCsv, write_explain_outputs
    from xai_cli.data import match_rows, read_table
    from xai_cli.explain import build_document, explain_chunks, prepare, quality_warnings
    from xai_cli.methods import CHOICES
    from xai_cli.methods.base import Settings
    from xai_cli.model import load_model

    check_choice("--method", method, CHOICES)
    if output is not None:
        check_choice("--output", output, ("probability", "raw"))
    for name, value, low in (
        ("--nsamples", nsamples, 16),
        ("--lime-samples", lime_samples, 50),
        ("--n-jobs", n_jobs, 1),
        ("--max-plots", max_plots, 0),
    ):
        check_range(name, value, low)
    if as_json and as_jsonl:
        raise BadInput("--json and --jsonl cannot be used together", hint="choose one")

    model = load_model(model_path, trust=trust, allow=allow or ())
    table = read_table(data_path)
    rows = match_rows(table, model, target=target, id_col=id_col)
    background_rows = None
    if background is not None:
        background_table = read_table(background, what="--background")
        background_rows = match_rows(background_table, model, target=target, what="--background")
    settings = Settings(
        output=output or "probability",
        class_choice=class_choice,
        nsamples=nsamples,
        lime_samples=lime_samples,
        seed=seed,
        n_jobs=n_jobs,
    )
    explain_plan = prepare(
        model,
        rows,
        method=method,
        settings=settings,
        output_given=output is not None,
        background_rows=background_rows,
        background_path=background if background is not None else (table.path if len(rows) >= 20 else None),
    )
    warnings = [w for w in [model.sklearn_version_warning()] if w] + list(rows.warnings) + explain_plan.warnings
    if background_rows is not None:
        warnings.extend(background_rows.warnings)

    out.mkdir(parents=True, exist_ok=True)
    streamed_csv = StreamedCsv(out / "attributions.csv")
    explanations = []
    try:
        with progress(len(rows), enabled=not (quiet or as_json or as_jsonl)) as advance:
            for chunk in explain_chunks(explain_plan):
                streamed_csv.add(chunk)
                explanations.extend(chunk)
                if as_jsonl:
                    for explanation in chunk:
                        sys.stdout.write(json.dumps(explanation.to_dict(), allow_nan=False) + "\n")
                    sys.stdout.flush()
                advance(len({e.row for e in chunk}))
    except BaseException as error:
        streamed_csv.abandon(error)
        raise
    streamed_csv.finish()
    for explanation in explanations:
        warnings.extend(quality_warnings(explanation))
    document = build_document(explain_plan, explanations, data=table, method=method, warnings=warnings)
    write_explain_outputs(document, out, max_plots=max_plots)

    if as_json:
        sys.stdout.write(json.dumps(document.to_dict(), indent=2, allow_nan=False) + "\n")
    elif not quiet and not as_jsonl:
        from xai_cli.terminal import print_explanations

        print_explanations(document, out)
