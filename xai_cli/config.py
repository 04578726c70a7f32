"""``xai.toml`` -> option defaults: one table per command, keys named like the long options.

Options given on the command line win over the file; the file wins over built-in defaults.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from xai_cli.errors import BadInput

DEFAULT_CONFIG = "xai.toml"


def read_config(path: str | None) -> dict[str, Any]:
    """The whole config file as a dict; ``{}`` when no path is given and ./xai.toml is absent."""
    if path is None:
        if not Path(DEFAULT_CONFIG).is_file():
            return {}
        path = DEFAULT_CONFIG
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise BadInput(f"config file not found: {path}", hint="check the --config path") from None
    except IsADirectoryError:
        raise BadInput(f"config {path} is a folder, not a TOML file", hint="check the --config path") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read config {path}: {exc}", hint="the file must be valid TOML") from None


# Options that loosen the safety scan. A folder from a stranger can ship model.pkl beside an
# xai.toml, so these are taken from a config file only when the user names it with --config.
SAFETY_OPTIONS = ("trust", "allow")


def command_defaults(
    config: dict[str, Any], command: str, options: dict[str, str], *, named: bool = True
) -> dict[str, Any]:
    """The ``[command]`` table keyed by parameter name.

    ``options`` maps each long option, without dashes and with ``-`` as ``_`` (``n_jobs``, ``class``),
    to the parameter it sets; a key that names no option is an error, not silently ignored.
    ``named`` is false for ./xai.toml found by itself, which may not set :data:`SAFETY_OPTIONS`.
    """
    table = config.get(command, {})
    if not isinstance(table, dict):
        raise BadInput(f"[{command}] in the config must be a table", hint=f"write [{command}] then key = value lines")
    defaults: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if isinstance(value, dict):
            continue
        if name in SAFETY_OPTIONS and not named:
            raise BadInput(
                f"./{DEFAULT_CONFIG} sets {key!r} under [{command}]: xai takes safety options only from a config "
                "file you name, since a downloaded folder can ship one beside its model",
                hint=f"pass --{name} on the command line, or --config {DEFAULT_CONFIG} if you wrote this file",
            )
        if name not in options:
            raise BadInput(
                f"unknown option {key!r} under [{command}] in the config",
                hint=f"known options: {', '.join(sorted(options))}",
            )
        defaults[options[name]] = value
    return defaults
