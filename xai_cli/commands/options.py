"""Options, checks and the progress bar shared by every command (CLI layer: nothing here computes)."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from xai_cli.errors import BadInput

INPUT_PANEL = "Inputs"
METHOD_PANEL = "Method"
OUTPUT_PANEL = "Output"
SAFETY_PANEL = "Safety"
SCALE_PANEL = "Speed and scale"


def apply_config(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
    """Load ``[command]`` from the config file into the command's defaults (an eager option)."""
    from xai_cli.config import command_defaults, read_config

    options = {
        opt[2:].replace("-", "_"): p.name
        for p in ctx.command.params
        for opt in p.opts
        if opt.startswith("--") and p.name not in ("config", "help")
    }
    defaults = command_defaults(read_config(value), ctx.info_name or "", options, named=value is not None)
    if defaults:
        ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


ConfigOption = Annotated[
    str | None,
    typer.Option(
        "--config",
        is_eager=True,
        callback=apply_config,
        metavar="FILE",
        help="TOML file with option defaults under a table named after the command (default ./xai.toml).",
        rich_help_panel=INPUT_PANEL,
    ),
]
IdColOption = Annotated[
    str | None,
    typer.Option(
        "--id-col", metavar="COL", help="Column naming the rows (not a feature).", rich_help_panel=INPUT_PANEL
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
    list[str] | None,
    typer.Option(
        "--allow",
        metavar="MODULE",
        help="Also allow imports from MODULE (e.g. your own transformers). Repeatable.",
        rich_help_panel=SAFETY_PANEL,
    ),
]


def check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise BadInput(f"{option} {value!r} is not one of: {', '.join(choices)}", hint=f"e.g. {option} {choices[0]}")


def check_out_dir(out: Path) -> None:
    """``--out`` must be a folder, or a path where one can be made: say so before any work is done."""
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                raise BadInput(
                    f"--out {out} is not a folder: {folder} is a file",
                    hint="pass a folder for --out (it is created when missing)",
                )
            return


def check_range(option: str, value: int, low: int, high: int = 10**8) -> None:
    if not low <= value <= high:
        raise BadInput(f"{option} must be between {low} and {high}, not {value}", hint=f"e.g. {option} {max(low, 1)}")


class progress:
    """A rich progress bar on stderr for long runs, only when stderr is a terminal; yields ``advance(n)``.

    ``total`` may be ``None`` when rows stream in and their number is unknown: the bar then pulses
    and counts rows. The bar appears only once the run has taken a second, so quick runs stay quiet.
    """

    DELAY_SECONDS = 1.0

    def __init__(self, total: int | None, *, enabled: bool, label: str = "explaining"):
        self.total = total
        self.label = label
        self.enabled = enabled and sys.stderr.isatty()
        self._progress = None
        self._task = None
        self._done = 0

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        import time

        started = time.monotonic()

        def advance(n: int) -> None:
            self._done += n
            if self._progress is None and time.monotonic() - started >= self.DELAY_SECONDS:
                self._start()
            if self._progress is not None:
                self._progress.update(self._task, completed=self._done)

        return advance

    def _start(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from xai_cli.terminal import make_console

        counter = MofNCompleteColumn() if self.total else TextColumn("{task.completed} rows")
        self._progress = Progress(
            TextColumn(self.label),
            BarColumn(),
            counter,
            TimeElapsedColumn(),
            console=make_console(stderr=True),
            transient=True,
        )
        self._progress.__enter__()
        self._task = self._progress.add_task(self.label, total=self.total)

    def __exit__(self, *exc_info):
        if self._progress is not None:
            self._progress.__exit__(*exc_info)
        return False
