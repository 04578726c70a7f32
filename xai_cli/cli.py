"""The ``xai`` command line: parse options, call the library, print, map errors to exit codes.

Heavy libraries (pandas, scikit-learn, shap, matplotlib) are imported inside the commands, so
``xai --help`` answers at once.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from xai_cli import __version__
from xai_cli.errors import BadInput, ExitCode, XaiError

app = typer.Typer(
    name="xai",
    help="Explain tabular machine-learning models from the shell: SHAP, LIME, importance, audits.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

INPUT_PANEL = "Inputs"
METHOD_PANEL = "Method"
OUTPUT_PANEL = "Output"
SAFETY_PANEL = "Safety"


def _version(value: bool) -> None:
    if value:
        print(f"xai {__version__}")
        raise typer.Exit()


def _apply_config(ctx: typer.Context, param: typer.CallbackParam, value: Optional[str]) -> Optional[str]:
    """Load ``[command]`` from the config file into the command's defaults (an eager option)."""
    from xai_cli.config import command_defaults, read_config

    options = {
        opt[2:].replace("-", "_"): p.name
        for p in ctx.command.params
        for opt in p.opts
        if opt.startswith("--") and p.name not in ("config", "help")
    }
    defaults = command_defaults(read_config(value), ctx.info_name or "", options)
    if defaults:
        ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Explain tabular machine-learning models from the shell."""


ConfigOption = Annotated[
    Optional[str],
    typer.Option(
        "--config",
        is_eager=True,
        callback=_apply_config,
        metavar="FILE",
        help="TOML file with option defaults under a table named after the command (default ./xai.toml).",
        rich_help_panel=INPUT_PANEL,
    ),
]
TrustOption = Annotated[
    bool,
    typer.Option(
        "--trust",
        envvar="XAI_TRUST",
        help="Load the model without the safety scan (only for files you trust).",
        rich_help_panel=SAFETY_PANEL,
    ),
]
AllowOption = Annotated[
    Optional[list[str]],
    typer.Option(
        "--allow",
        metavar="MODULE",
        help="Also allow imports from MODULE (e.g. your own transformers). Repeatable.",
        rich_help_panel=SAFETY_PANEL,
    ),
]

EXPLAIN_EPILOG = """
[bold]Example[/bold] (penguins shipped in sample_data/):

  python sample_data/train_model.py
  xai explain sample_data/model.joblib sample_data/rows.csv --id-col name --background sample_data/penguins.csv

  writes xai-output/attributions.json, attributions.csv, plots/ and report.html.
  cat rows.csv | xai explain model.pkl - --background train.csv --json | jq '.explanations[0]'
"""


@app.command(epilog=EXPLAIN_EPILOG)
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
        Optional[str],
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
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same numbers.", rich_help_panel=METHOD_PANEL)] = 0,
    n_jobs: Annotated[int, typer.Option("--n-jobs", help="Processes to explain rows in parallel.", rich_help_panel=METHOD_PANEL)] = 1,
    target: Annotated[
        Optional[str], typer.Option("--target", metavar="COL", help="Label column (dropped from the features).", rich_help_panel=INPUT_PANEL)
    ] = None,
    id_col: Annotated[
        Optional[str], typer.Option("--id-col", metavar="COL", help="Column naming the rows in every output.", rich_help_panel=INPUT_PANEL)
    ] = None,
    background: Annotated[
        Optional[str],
        typer.Option("--background", metavar="CSV", help="Reference rows (default: DATA when it has 20+ rows).", rich_help_panel=INPUT_PANEL),
    ] = None,
    config: ConfigOption = None,
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="Output folder.", rich_help_panel=OUTPUT_PANEL)] = Path("xai-output"),
    max_plots: Annotated[int, typer.Option("--max-plots", help="Rows that get their own plots.", rich_help_panel=OUTPUT_PANEL)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print attributions.json to stdout, nothing else.", rich_help_panel=OUTPUT_PANEL)] = False,
    as_jsonl: Annotated[bool, typer.Option("--jsonl", help="Print one explanation per line as rows finish.", rich_help_panel=OUTPUT_PANEL)] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.", rich_help_panel=OUTPUT_PANEL)] = False,
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

    _check_choice("--method", method, CHOICES)
    if output is not None:
        _check_choice("--output", output, ("probability", "raw"))
    for name, value, low in (("--nsamples", nsamples, 16), ("--lime-samples", lime_samples, 50), ("--n-jobs", n_jobs, 1), ("--max-plots", max_plots, 0)):
        _check_range(name, value, low)
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
    warnings = list(rows.warnings) + explain_plan.warnings
    if background_rows is not None:
        warnings.extend(background_rows.warnings)

    out.mkdir(parents=True, exist_ok=True)
    streamed_csv = StreamedCsv(out / "attributions.csv")
    explanations = []
    try:
        with _progress(len(rows), enabled=not (quiet or as_json or as_jsonl)) as advance:
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


def _check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise BadInput(f"{option} {value!r} is not one of: {', '.join(choices)}", hint=f"e.g. {option} {choices[0]}")


def _check_range(option: str, value: int, low: int, high: int = 10**8) -> None:
    if not low <= value <= high:
        raise BadInput(f"{option} must be between {low} and {high}, not {value}", hint=f"e.g. {option} {max(low, 1)}")


class _progress:
    """A rich progress bar on stderr, only when stderr is a terminal; yields ``advance(n)``."""

    def __init__(self, total: int, *, enabled: bool):
        self.total = total
        self.enabled = enabled and sys.stderr.isatty() and total > 1
        self._progress = None

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("explaining"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), transient=True,
        )
        self._progress.__enter__()
        task = self._progress.add_task("rows", total=self.total)
        return lambda n: self._progress.advance(task, n)

    def __exit__(self, *exc_info):
        if self._progress is not None:
            self._progress.__exit__(*exc_info)
        return False


def main() -> None:
    """Entry point: run the app, print errors as one or two lines, exit with the contract's code."""
    debug = os.environ.get("XAI_DEBUG", "") not in ("", "0")
    try:
        code = app(standalone_mode=False)
    except XaiError as error:
        if debug:
            raise
        _print_error(error.message, error.hint)
        sys.exit(int(error.exit_code))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(int(ExitCode.INTERRUPTED))
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
    except Exception as error:
        if type(error).__name__ == "Abort":  # click's (or typer's vendored click's) Ctrl-C
            sys.stderr.write("interrupted\n")
            sys.exit(int(ExitCode.INTERRUPTED))
        if hasattr(error, "show") and isinstance(getattr(error, "exit_code", None), int):
            error.show()  # a usage error: unknown option, missing argument...
            sys.exit(int(ExitCode.BAD_INPUT))
        if debug:
            raise
        _print_error(f"unexpected {type(error).__name__}: {error}"[:400], "rerun with XAI_DEBUG=1 for the traceback and report it")
        sys.exit(int(ExitCode.BAD_INPUT))
    sys.exit(code if isinstance(code, int) else 0)


def _print_error(message: str, hint: str | None) -> None:
    sys.stderr.write(f"error: {message}\n")
    if hint:
        sys.stderr.write(f"hint: {hint}\n")
