"""How ``xai CMD --help`` looks: plain text, options under their panel headings, the example as written.

typer draws help with rich only if asked (``rich_markup_mode``); plain click help answers about 70 ms
sooner, because rich, markdown-it and pygments are never imported (issue 7). What rich help gave and
plain click help lacks is kept here: the options grouped under their ``rich_help_panel`` headings, and
the worked example printed line for line (click would rewrap it into one paragraph).
"""

import inspect

from typer.core import TyperCommand

ARGUMENTS_HEADING = "Arguments"
OPTIONS_HEADING = "Options"
NO_BREAK = "\xa0"  # click wraps help text at ASCII whitespace only


class PlainHelpCommand(TyperCommand):
    """A typer command whose ``--help`` is plain text, with its options in panels."""

    def format_options(self, ctx, formatter) -> None:
        """Arguments, then each panel in the order its first option appears, then the panel-less options."""
        sections: dict[str, list[tuple[str, str]]] = {ARGUMENTS_HEADING: []}
        loose: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                sections[ARGUMENTS_HEADING].append(record)
            elif getattr(param, "rich_help_panel", None):
                sections.setdefault(param.rich_help_panel, []).append(record)
            else:
                loose.append(record)
        sections[OPTIONS_HEADING] = loose
        for heading, records in sections.items():
            if records:
                start = len(formatter.buffer)
                with formatter.section(heading):
                    formatter.write_dl([(names, _unbreakable_brackets(text)) for names, text in records])
                formatter.buffer[start:] = [chunk.replace(NO_BREAK, " ") for chunk in formatter.buffer[start:]]

    def format_epilog(self, ctx, formatter) -> None:
        """The epilog line for line, indented like the rest of the help: it holds commands to copy."""
        if not self.epilog:
            return
        formatter.write_paragraph()
        with formatter.indentation():
            for line in inspect.cleandoc(self.epilog).splitlines():
                formatter.write(f"{' ' * formatter.current_indent}{line}\n" if line.strip() else "\n")


def _unbreakable_brackets(text: str) -> str:
    """An option's help with its closing ``[default: 5000]`` kept on one line (not "[default:" / "5000]")."""
    words, separator, brackets = text.rpartition("  [")
    return f"{words}{separator}{brackets.replace(' ', NO_BREAK)}" if separator else text
