"""The ``xai`` command line: parse options, call the library, print, map errors to exit codes.

``xai --help`` answers within 1.5x of ``import typer`` (issue 7) because it does nothing more:
help is plain text (``rich_markup_mode=None``: rich and its markdown and syntax modules stay
unimported until a command prints a table), a command's module is imported and its options built
only when that command is chosen, and the heavy libraries (pandas, scikit-learn, shap, matplotlib)
are imported inside the command functions.
"""

import importlib
import os
import sys
import warnings
from typing import Annotated

import typer
from typer.core import TyperCommand, TyperGroup

from xai_cli import __version__, interrupts
from xai_cli.errors import ExitCode, XaiError

# The commands and their line in `xai --help`. xai_cli/commands/<name>.py defines the command
# function <name>() (its docstring is the command's own help) and its worked example <NAME>_EPILOG.
COMMANDS = {
    "explain": "Local attributions for every row of DATA: Tree SHAP, linear SHAP, Kernel SHAP, LIME.",
    "importance": "Global feature importance: permutation, built-in and mean |SHAP|, and their agreement.",
    "audit": "Importance, score and drift against the previous run; exit 1 on a failed check.",
    "inspect": "Model type, task, classes, features, applicable methods, safety verdict; with DATA, its columns.",
}


def load_command(name: str) -> TyperCommand:
    """Import ``xai_cli.commands.<name>`` and build its click command (help included)."""
    from typer.main import get_command

    from xai_cli.commands.help import PlainHelpCommand

    module = importlib.import_module(f"xai_cli.commands.{name}")
    single = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
    single.command(
        name=name, short_help=COMMANDS[name], epilog=getattr(module, f"{name.upper()}_EPILOG"), cls=PlainHelpCommand
    )(getattr(module, name))
    return get_command(single)


class LazyCommand(TyperCommand):
    """Stands for a command in ``xai --help``; the real one is loaded once it is chosen."""

    def __init__(self, name: str):
        super().__init__(name=name, short_help=COMMANDS[name], rich_markup_mode=None)

    def make_context(self, info_name, args, parent=None, **extra):
        # The group calls this once it has resolved the command's name; the context it gets back
        # names the real command, which then parses the arguments, shows --help or runs.
        return load_command(self.name).make_context(info_name, args, parent=parent, **extra)


class XaiGroup(TyperGroup):
    """The ``xai`` group: every command of COMMANDS that the app did not register itself loads lazily."""

    def __init__(self, *, commands=None, **attrs):
        super().__init__(commands=commands, **attrs)
        for name in COMMANDS:
            self.commands.setdefault(name, LazyCommand(name))

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None and option.default is None:
            # typer 0.29 builds a pydantic validator to coerce an absent flag's None, and in
            # `xai CMD --help` the group's own -h is absent: 60 ms of imports. Absent means False.
            option.default = False
        return option


app = typer.Typer(
    name="xai",
    cls=XaiGroup,
    help="Explain tabular machine-learning models from the shell: SHAP, LIME, importance, audits.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
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
        if interrupts.received():  # a library turned Ctrl-C into its own error (the model "failed")
            _exit_interrupted()
        if debug:
            raise
        _print_error(error.message, error.hint)
        sys.exit(int(error.exit_code))
    except KeyboardInterrupt:
        _exit_interrupted()
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
    except OSError as error:
        # The file system said no (unreadable, disk full, not a folder...): the user's to fix.
        if interrupts.received():
            _exit_interrupted()
        if debug:
            raise
        where = f": {error.filename}" if error.filename else ""
        _print_error(f"{error.strerror or error}{where}", "check the path, its permissions and the free disk space")
        sys.exit(int(ExitCode.BAD_INPUT))
    except Exception as error:
        if type(error).__name__ == "Abort" or interrupts.received():  # click's Ctrl-C, or a library's
            _exit_interrupted()
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


def _exit_interrupted() -> None:
    sys.stderr.write("interrupted\n")
    sys.exit(int(ExitCode.INTERRUPTED))


def _print_error(message: str, hint: str | None) -> None:
    sys.stderr.write(f"error: {_printable(message)}\n")
    if hint:
        sys.stderr.write(f"hint: {_printable(hint)}\n")


def _printable(text: str) -> str:
    """One line: control characters (from CSV headers, file names, model files) are shown escaped,
    so they can neither break the error/hint lines nor send escape sequences to the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
