"""The ``xai`` command line: parse options, call the library, print, map errors to exit codes.

Heavy libraries (pandas, scikit-learn, shap, matplotlib) are imported inside the commands, so
``xai --help`` answers at once.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Annotated

import typer

from xai_cli import __version__, interrupts
from xai_cli.commands import audit as audit_command
from xai_cli.commands import explain as explain_command
from xai_cli.commands import importance as importance_command
from xai_cli.commands import inspect as inspect_command
from xai_cli.errors import ExitCode, XaiError

app = typer.Typer(
    name="xai",
    help="Explain tabular machine-learning models from the shell: SHAP, LIME, importance, audits.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"xai {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Explain tabular machine-learning models from the shell."""


app.command(epilog=explain_command.EXPLAIN_EPILOG)(explain_command.explain)
app.command(epilog=importance_command.IMPORTANCE_EPILOG)(importance_command.importance)
app.command(epilog=audit_command.AUDIT_EPILOG)(audit_command.audit)
app.command(epilog=inspect_command.INSPECT_EPILOG)(inspect_command.inspect)


def main() -> None:
    """Entry point: run the app, print errors as one or two lines, exit with the contract's code."""
    debug = os.environ.get("XAI_DEBUG", "") not in ("", "0")
    interrupts.install()
    try:
        with warnings.catch_warnings():
            if not debug:  # library warnings are noise for a command (--quiet means errors only)
                warnings.simplefilter("ignore")
            code = app(standalone_mode=False)
        interrupts.check()  # a Ctrl-C a library swallowed ("Exception ignored in ...") still counts
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
    except OSError as error:
        # The file system said no (unreadable, disk full, not a folder...): the user's to fix.
        if debug:
            raise
        where = f": {error.filename}" if error.filename else ""
        _print_error(f"{error.strerror or error}{where}", "check the path, its permissions and the free disk space")
        sys.exit(int(ExitCode.BAD_INPUT))
    except Exception as error:
        if type(error).__name__ == "Abort":  # click's (or typer's vendored click's) Ctrl-C
            sys.stderr.write("interrupted\n")
            sys.exit(int(ExitCode.INTERRUPTED))
        if hasattr(error, "show") and isinstance(getattr(error, "exit_code", None), int):
            if type(error).__name__ == "NoArgsIsHelpError":
                error.show()  # bare `xai`: the help itself
            else:  # a usage error: unknown option, missing argument, a value that is not a number...
                context = getattr(error, "ctx", None)
                command = context.command_path if context is not None else "xai"
                _print_error(error.format_message(), f"see '{command} --help' for the options and an example")
            sys.exit(int(ExitCode.BAD_INPUT))
        if debug:
            raise
        _print_error(
            f"unexpected {type(error).__name__}: {error}"[:400],
            "rerun with XAI_DEBUG=1 for the traceback and report it",
        )
        sys.exit(int(ExitCode.BAD_INPUT))
    sys.exit(code if isinstance(code, int) else 0)


def _print_error(message: str, hint: str | None) -> None:
    sys.stderr.write(f"error: {_printable(message)}\n")
    if hint:
        sys.stderr.write(f"hint: {_printable(hint)}\n")


def _printable(text: str) -> str:
    """One line: control characters (from CSV headers, file names, model files) are shown escaped,
    so they can neither break the error/hint lines nor send escape sequences to the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
