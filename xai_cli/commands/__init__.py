"""One module per command: it parses options and prints; the library does the work.

cli.py imports a command's module only once that command is chosen. The modules do without
``from __future__ import annotations``: with it, typer would evaluate every option's annotation
string (its ``typer.Option(...)`` call included) twice each time it builds the command.
"""
