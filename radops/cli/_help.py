"""How ``radops ... --help`` reads: plain text in the manner of git, gh and uv.

typer's own rich panels showed a ``<bool>`` type beside every flag, wrote required arguments as
``{source}`` in the usage line, kept a docstring's line breaks in the middle of sentences and had
no place for examples. The command classes here print, in this order: the first paragraph of
the docstring (what the command does), the usage line, the rest of the docstring rewrapped to
the terminal, then Arguments, Options, Commands and Examples.

Examples are given with ``epilog=examples(...)`` on the command, so they stay next to the code
they describe; ``tests/test_help.py`` checks that each one names real commands and options.
The docs hook (``docs/hooks/cli_reference.py``) builds the CLI reference from the same parts.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from typer._click import Context, HelpFormatter, Parameter
from typer.core import TyperArgument, TyperCommand, TyperGroup

__all__ = ["CONTEXT_SETTINGS", "HelpCommand", "HelpGroup", "examples"]

# -h as well as --help, as in git, gh and uv; up to 100 columns on a wide terminal (click
# stops at 80, which broke most option descriptions over two lines).
CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["--help", "-h"], "max_content_width": 100}


def examples(*pairs: tuple[str, str]) -> str:
    """A command's ``epilog``: its examples, each a (what it does, command line) pair.

    Every epilog of radops' commands is such a list; it is printed under ``Examples:``.
    """
    return "\n".join(f"# {what}\n{line}" for what, line in pairs)


def example_lines(command: Any) -> list[tuple[str, str]]:
    """The (what it does, command line) examples of a click command, in order."""
    lines = (getattr(command, "epilog", None) or "").splitlines()
    return [
        (what.removeprefix("# "), line) for what, line in zip(lines[::2], lines[1::2], strict=True)
    ]


def description(command: Any) -> tuple[str, list[str]]:
    """The first paragraph of a command's help (one line) and the other paragraphs.

    Each paragraph is joined into one line: the terminal's width decides where lines break,
    not the docstring's layout.
    """
    text = inspect.cleandoc(getattr(command, "help", None) or "").partition("\f")[0]
    paragraphs = [" ".join(part.split()) for part in text.split("\n\n") if part.strip()]
    if not paragraphs:
        return "", []
    return paragraphs[0], paragraphs[1:]


def usage_pieces(command: Any, ctx: Context) -> list[str]:
    """``[OPTIONS]``, then each argument by its name in capitals, optional ones bracketed."""
    pieces = ["[OPTIONS]"]
    for param in command.get_params(ctx):
        if isinstance(param, TyperArgument) or param.param_type_name == "argument":
            name = _argument_name(param)
            pieces.append(name if param.required else f"[{name}]")
    return pieces


def _argument_name(param: Parameter) -> str:
    name = param.metavar or (param.name or "value").upper()
    return f"{name}..." if param.nargs != 1 else name


def help_rows(command: Any, ctx: Context) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The Arguments and Options rows of a command: (name as typed, description)."""
    arguments: list[tuple[str, str]] = []
    options: list[tuple[str, str]] = []
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        text = " ".join((getattr(param, "help", None) or "").split())
        if param.param_type_name == "argument":
            arguments.append((_argument_name(param), text))
            continue
        names = ", ".join(sorted(param.opts, key=lambda opt: (opt.startswith("--"), opt)))
        if not getattr(param, "is_flag", False) and not getattr(param, "count", False):
            names += f" {param.metavar or (param.name or 'value').upper()}"
        default = param.default
        shown = getattr(default, "value", default)  # an Enum default shows its value
        if not getattr(param, "is_flag", False) and shown not in (None, "", False):
            text = f"{text} [default: {shown}]".strip()
        options.append((names, text))
    return arguments, options


class _Plain:
    """``format_help`` and the usage line, shared by commands and groups."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in getattr(self, "params", []):
            if param.param_type_name == "argument" and param.metavar is None:
                # SOURCE, as the usage line, the guide and click's errors ("Missing argument
                # 'UID'") then all write it.
                param.metavar = (param.name or "value").upper()

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        pieces = usage_pieces(self, ctx)
        if isinstance(self, TyperGroup):
            pieces.append("COMMAND [ARGS]...")
        return pieces

    def get_short_help_str(self, limit: int = 45) -> str:
        # The whole first paragraph: click shortened it to 45 characters with "...".
        return description(self)[0]

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        first, rest = description(self)
        if first:
            formatter.write_text(first)
            formatter.write_paragraph()
        self.format_usage(ctx, formatter)  # type: ignore[attr-defined]
        for paragraph in rest:
            formatter.write_paragraph()
            formatter.write_text(paragraph)
        arguments, options = help_rows(self, ctx)
        _section(formatter, "Arguments", arguments)
        _section(formatter, "Options", options)
        if isinstance(self, TyperGroup):
            rows = []
            for name in self.list_commands(ctx):
                sub = self.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    rows.append((name, description(sub)[0]))
            _section(formatter, "Commands", rows)
        pairs = example_lines(self)
        if pairs:
            formatter.write_paragraph()
            formatter.write_heading("Examples")
            with formatter.indentation():
                for i, (what, line) in enumerate(pairs):
                    if i:
                        formatter.write("\n")
                    formatter.write_text(f"# {what}")
                    # Never rewrapped: an example is copied as it stands.
                    formatter.write(f"{' ' * formatter.current_indent}{line}\n")


def _section(formatter: HelpFormatter, title: str, rows: Sequence[tuple[str, str]]) -> None:
    if rows:
        with formatter.section(title):
            formatter.write_dl(rows)


class HelpCommand(_Plain, TyperCommand):
    """A typer command whose ``--help`` is plain text (see the module docstring)."""


class HelpGroup(_Plain, TyperGroup):
    """A typer group whose ``--help`` is plain text (see the module docstring)."""
