"""MkDocs hook: write the CLI reference from radops' typer app, so it cannot drift.

mkdocs-typer2 was tried first: its native engine fails on typer 0.29's options and its legacy
engine shells out to a `typer` executable on PATH. Walking click's command tree is a few lines.
The page's marker comment is replaced by one section per command, groups before their commands,
each with the description, usage, arguments, options and examples that ``--help`` prints
(``radops.cli._help`` provides them).
"""

from __future__ import annotations

import html
import re
from typing import Any

import typer.main

MARKER = "<!-- cli-reference -->"
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]|])")


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Replace the marker of the CLI reference page with the generated reference."""
    if MARKER not in markdown:
        return markdown
    from radops.cli.app import app

    root = typer.main.get_command(app)
    sections = _sections(root, _context(root, "radops", None), level=2)
    return markdown.replace(MARKER, "\n\n".join(sections))


def _sections(command: Any, ctx: Any, level: int) -> list[str]:
    from radops.cli._help import description, example_lines, help_rows

    path = ctx.command_path
    usage = command.get_usage(ctx).removeprefix("Usage: ")
    first, rest = description(command)
    lines = [f"{'#' * level} `{path}`", ""]
    lines += [_text(paragraph) + "\n" for paragraph in (first, *rest) if paragraph]
    lines += ["```text", usage, "```", ""]
    arguments, options = help_rows(command, ctx)
    rows = [row for row in arguments + options if row[0] not in ("-h, --help", "--help")]
    if rows:
        lines += ["| argument or option | description |", "|---|---|"]
        lines += [f"| `{name}` | {_text(help_text)} |" for name, help_text in rows]
    pairs = example_lines(command)
    if pairs:
        lines += ["", "```bash", *(f"{line}  # {what}" for what, line in pairs), "```"]
    sections = ["\n".join(lines)]
    for name in command.list_commands(ctx) if hasattr(command, "list_commands") else []:
        sub = command.get_command(ctx, name)
        if sub is not None and not sub.hidden:
            sections += _sections(sub, _context(sub, name, ctx), level=min(level + 1, 3))
    return sections


def _context(command: Any, name: str, parent: Any) -> Any:
    # Through the command, not click.Context: typer 0.29 vendors its own click.
    return command.make_context(name, [], parent=parent, resilient_parsing=True)


def _text(text: str) -> str:
    """Help text as literal Markdown: no HTML, links or emphasis, whatever it contains."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", html.escape(" ".join(text.split()), quote=False))
