"""``xai explain``: local attributions for every row of DATA."""

import itertools
import json
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from xai_cli.commands.options import (
    INPUT_PANEL,
    METHOD_PANEL,
    OUTPUT_PANEL,
    SCALE_PANEL,
    AllowOption,
    ConfigOption,
    TrustOption,
    check_choice,
    check_out_dir,
    check_range,
    progress,
)
from xai_cli.errors import BadInput

EXPLAIN_EPILOG = """
Example (penguins shipped in sample_data/):

  python sample_data/train_model.py
  xai explain sample_data/model.joblib sample_data/rows.csv \\
      --id-col name --background sample_data/penguins.csv

writes attributions.json, attributions.csv, plots/ and report.html into
xai-output/. Rows from stdin, the document to stdout:

  cat rows.csv | xai explain model.pkl - --background train.csv --json \\
      | jq '.explanations[0]'
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
            show_default=False,  # "default" stands for the rule the help states
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
        int, typer.Option("--n-jobs", help="Processes to explain rows in parallel.", rich_help_panel=SCALE_PANEL)
    ] = 1,
    backend_name: Annotated[
        str,
        typer.Option(
            "--backend",
            metavar="local|dask",
            help="Where rows are explained: this machine, or a Dask cluster (pip install 'xai-cli[dask]').",
            rich_help_panel=SCALE_PANEL,
        ),
    ] = "local",
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            metavar="ADDRESS",
            help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (default: a local cluster).",
            rich_help_panel=SCALE_PANEL,
        ),
    ] = None,
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
    from xai_cli.artifacts import ExplainWriter
    from xai_cli.backends import make_backend
    from xai_cli.data import columns_read_as_text, match_rows, open_table, read_table
    from xai_cli.explain import (
        MIN_DATA_AS_BACKGROUND,
        WarningLog,
        build_document,
        explain_rows,
        prepare,
        quality_warnings,
    )
    from xai_cli.methods import CHOICES
    from xai_cli.methods.base import Settings
    from xai_cli.model import load_model

    check_choice("--method", method, CHOICES)
    check_range("--seed", seed, 0, 2**32 - 1)  # what numpy and scikit-learn take as a seed
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
    check_out_dir(out)

    model = load_model(model_path, trust=trust, allow=allow or ())
    text_columns = columns_read_as_text(model, id_col=id_col)
    stream = open_table(data_path, text_columns=text_columns)
    chunks = _matched_chunks(stream, model, target=target, id_col=id_col)
    first_rows = next(chunks, None)
    if first_rows is None:
        raise BadInput(f"DATA {data_path} has a header but no rows", hint="add at least one data row")
    background_rows = None
    if background is not None:
        background_table = read_table(background, what="--background", text_columns=text_columns)
        background_rows = match_rows(
            background_table, model, target=target, what="--background", ignored=(id_col,) if id_col else ()
        )
    settings = Settings(
        output=output or "probability",
        class_choice=class_choice,
        nsamples=nsamples,
        lime_samples=lime_samples,
        seed=seed,
        n_jobs=n_jobs,
    )
    data_as_background = background is None and len(first_rows) >= MIN_DATA_AS_BACKGROUND
    explain_plan = prepare(
        model,
        first_rows,
        method=method,
        settings=settings,
        output_given=output is not None,
        background_rows=background_rows,
        background_path=background if background is not None else (data_path if data_as_background else None),
    )
    warnings = WarningLog([w for w in [model.sklearn_version_warning()] if w] + explain_plan.warnings)
    if background_rows is not None:
        warnings.extend(background_rows.warnings)

    runner = make_backend(backend_name, n_jobs=n_jobs, scheduler=scheduler)
    writer = ExplainWriter(out)
    rows_done = 0
    try:
        with progress(None, enabled=not (quiet or as_json or as_jsonl)) as advance:
            for batch in explain_rows(
                explain_plan, _noting_warnings(itertools.chain([first_rows], chunks), warnings), backend=runner
            ):
                writer.add(batch)
                for explanation in batch:
                    for kind, message in quality_warnings(explanation):
                        warnings.add(kind, message)
                if as_jsonl:
                    for explanation in batch:
                        sys.stdout.write(json.dumps(explanation.to_dict(), allow_nan=False) + "\n")
                    sys.stdout.flush()
                done = len({e.row for e in batch})
                rows_done += done
                advance(done)
        data = {"path": data_path, "sha256": stream.sha256, "rows": rows_done}
        document = build_document(
            explain_plan,
            writer.kept,
            data=data,
            method=method,
            warnings=warnings.lines(),
            receipts=writer.summary.receipts,
        )
        writer.finish(document, max_plots=max_plots)
    except BaseException as error:
        writer.abandon(error)
        raise
    finally:
        runner.close()

    if as_json:
        with open(writer.json_path, encoding="utf-8") as handle:
            shutil.copyfileobj(handle, sys.stdout)
    elif not quiet and not as_jsonl:
        from xai_cli.terminal import print_explanations

        print_explanations(document, out, total=writer.count)


def _matched_chunks(stream, model, *, target, id_col):
    """DATA's chunks matched to the model, numbered by their row in the file."""
    from xai_cli.data import match_frame

    first_row = 0
    for frame in stream.chunks:
        rows = match_frame(frame, model, path=stream.path, target=target, id_col=id_col, first_row=first_row)
        first_row += len(frame)
        yield rows


def _noting_warnings(chunks, warnings):
    for rows in chunks:
        warnings.extend(rows.warnings)
        yield rows
