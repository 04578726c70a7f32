"""``xai audit``: importance, score and drift against the previous run; exit 1 when a check fails."""

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
    check_range,
)
from xai_cli.errors import ExitCode

AUDIT_EPILOG = """
Example (every night, from cron):

  xai audit model.pkl today.csv --target y --history audits/

writes audits/<UTC time>/ (audit.json, report.html, plots/), compares it
with the newest earlier run there, and exits 1 naming what moved, e.g.

  audit FAILED: score_drop 0.21 > 0.05 (accuracy); drift:age psi 1.3 > 0.25

Against a given earlier run, audit.json to stdout:

  xai audit model.pkl today.csv --target y --baseline old/audit.json --json
"""
THRESHOLD_PANEL = "Thresholds (also under [audit] in xai.toml)"


def audit(
    model_path: Annotated[str, typer.Argument(metavar="MODEL", help="Model file: .pkl, .joblib or .skops.")],
    data_path: Annotated[str, typer.Argument(metavar="DATA", help="Today's CSV, or - for stdin.")],
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            metavar="COL",
            help="Label column: enables the score and permutation importance (else mean |SHAP|).",
            rich_help_panel=INPUT_PANEL,
        ),
    ] = None,
    id_col: IdColOption = None,
    history: Annotated[
        Path | None,
        typer.Option(
            "--history",
            metavar="DIR",
            help="Keep each run in DIR/<UTC time>/ and compare with the newest earlier run there.",
            rich_help_panel=INPUT_PANEL,
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            metavar="FILE",
            help="Compare with this audit.json (or run folder) instead of the newest run in --history.",
            rich_help_panel=INPUT_PANEL,
        ),
    ] = None,
    scoring: Annotated[
        str | None,
        typer.Option(
            "--scoring",
            metavar="NAME",
            help="scikit-learn scorer (default: accuracy, or r2 for regressors).",
            rich_help_panel=METHOD_PANEL,
        ),
    ] = None,
    repeats: Annotated[
        int, typer.Option("--repeats", help="Shuffles per column (permutation).", rich_help_panel=METHOD_PANEL)
    ] = 5,
    seed: Annotated[
        int,
        typer.Option("--seed", help="Random seed: same data and seed, same importance.", rich_help_panel=METHOD_PANEL),
    ] = 0,
    n_jobs: Annotated[
        int, typer.Option("--n-jobs", help="Processes for permutation importance.", rich_help_panel=METHOD_PANEL)
    ] = 1,
    max_rank_change: Annotated[
        int,
        typer.Option(
            "--max-rank-change",
            metavar="N",
            help="Fail when a top-5 feature of the baseline falls more than N ranks.",
            rich_help_panel=THRESHOLD_PANEL,
        ),
    ] = 3,
    min_rank_correlation: Annotated[
        float,
        typer.Option(
            "--min-rank-correlation",
            metavar="RHO",
            help="Fail when the Spearman correlation of the two importance rankings is below RHO.",
            rich_help_panel=THRESHOLD_PANEL,
        ),
    ] = 0.7,
    max_importance_shift: Annotated[
        float,
        typer.Option(
            "--max-importance-shift",
            metavar="SHARE",
            help="Fail when a feature's share of the total importance moves by more than SHARE.",
            rich_help_panel=THRESHOLD_PANEL,
        ),
    ] = 0.25,
    max_score_drop: Annotated[
        float,
        typer.Option(
            "--max-score-drop",
            metavar="X",
            help="Fail when the score drops by more than X (absolute).",
            rich_help_panel=THRESHOLD_PANEL,
        ),
    ] = 0.05,
    max_drift: Annotated[
        float,
        typer.Option(
            "--max-drift",
            metavar="PSI",
            help="Fail when a feature's or the predictions' population stability index exceeds PSI.",
            rich_help_panel=THRESHOLD_PANEL,
        ),
    ] = 0.25,
    config: ConfigOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Output folder when there is no --history (default xai-output).",
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print audit.json to stdout, nothing else.", rich_help_panel=OUTPUT_PANEL),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="Print nothing but errors, a failed verdict, and a line when unusable history runs were skipped.",
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = False,
    trust: TrustOption = False,
    allow: AllowOption = None,
) -> None:
    """Audit a model on today's data against its previous run: importance, score, drift; exit 1 on a failed check."""
    from xai_cli.audit import Thresholds, baseline_file, check_baseline_kept, load_baseline, run_audit, verdict
    from xai_cli.data import columns_read_as_text, match_rows, read_table
    from xai_cli.model import load_model

    thresholds = Thresholds(
        max_rank_change=max_rank_change,
        min_rank_correlation=min_rank_correlation,
        max_importance_shift=max_importance_shift,
        max_score_drop=max_score_drop,
        max_drift=max_drift,
    )
    check_range("--repeats", repeats, 1, 1000)
    check_range("--n-jobs", n_jobs, 1)

    baseline_path = baseline_file(baseline) if baseline is not None else None
    if baseline_path is not None:
        check_baseline_kept(baseline_path, history=history, out=out)

    model = load_model(model_path, trust=trust, allow=allow or ())
    table = read_table(data_path, text_columns=columns_read_as_text(model, id_col=id_col))
    # DATA first: a model fitted without names takes its column names from DATA's header, and the
    # baseline is checked against those names.
    rows = match_rows(table, model, target=target, id_col=id_col, require_target=target is not None)
    chosen = load_baseline(baseline_path, model) if baseline_path is not None else None
    run = run_audit(
        model,
        table,
        rows,
        thresholds=thresholds,
        baseline=chosen,
        history=history,
        out=out,
        scoring=scoring,
        repeats=repeats,
        seed=seed,
        n_jobs=n_jobs,
    )
    document, out_dir = run.document, run.out_dir

    if as_json:
        sys.stdout.write(json.dumps(document, indent=2, allow_nan=False) + "\n")
    elif not quiet:
        print_audit(document, out_dir)
    if run.skipped_note and (quiet or as_json):
        # A corrupt newest run passed over in silence would hide itself every night: one line, even quiet.
        sys.stderr.write(f"warning: {run.skipped_note}\n")
    failed = document["status"] == "fail"
    if failed or not quiet:
        sys.stderr.write(verdict(document, out_dir) + "\n")
    if failed:
        raise typer.Exit(int(ExitCode.AUDIT_FAILED))


def print_audit(document: dict[str, Any], out_dir: Path) -> None:
    """The checks (failed first), the warnings, and where the files went."""
    from rich.markup import escape
    from rich.table import Table

    from xai_cli.audit import MINIMUM_CHECKS
    from xai_cli.terminal import make_console, print_warning

    console = make_console()
    checks = sorted(document["checks"], key=lambda check: check["passed"])
    baseline = document["baseline"]
    if checks:
        title = f"Audit against {baseline['path']} ({baseline['created_at']})"
        table = Table(title=escape(title), title_justify="left")
        for heading, justify in (("result", "left"), ("check", "left"), ("value", "right"), ("limit", "right")):
            table.add_column(heading, justify=justify, no_wrap=True)
        table.add_column("what moved", overflow="fold")
        for check in checks:
            result = "[green]pass[/green]" if check["passed"] else "[bold red]FAIL[/bold red]"
            sign = ">=" if check["name"] in MINIMUM_CHECKS else "<="
            table.add_row(
                result,
                escape(check["name"]),
                _value(check["value"]),
                f"{sign} {_value(check['threshold'])}",
                escape(check["detail"]),
            )
        console.print(table)
    for warning in document["warnings"]:
        print_warning(console, warning)
    console.print(f"wrote {escape(str(out_dir))}/audit.json, report.html, plots/", highlight=False)


def _value(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3g}" if isinstance(value, float) else str(value)
