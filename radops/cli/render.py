"""Drawing lineage in the terminal: the three-box picture of a creation."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

__all__ = ["CreationSummary", "render_creation", "summarize"]

from radops.escape import escape

# Re-exported: reading events belongs to radops.lineage, drawing them to the CLI.
from radops.lineage.summary import CreationSummary, summarize

# A line of a picture: its text, and (start, end, style) spans over it. Plain strings and one
# rich Text per picture: building rich Text objects line by line took most of the time.
_Line = tuple[str, list[tuple[int, int, str]]]


def _styled(text: str, style: str = "") -> _Line:
    """A line of a picture. Its text names what the lake's events say (uids, job names,
    parameters, e-mails): escaped, so that nothing in it acts on the terminal."""
    text = escape(text)
    return text, [(0, len(text), style)] if style else []


def _box(title: str, lines: Sequence[_Line]) -> list[_Line]:
    """A rounded box around a bold ``title``, a blank line and ``lines``."""
    from rich.cells import cell_len

    body = [_styled(title, "bold"), _styled(""), *lines]
    width = max(cell_len(text) for text, _ in body)
    edge = "─" * (width + 2)
    drawn = [_styled(f"╭{edge}╮")]
    for text, spans in body:
        padded = f"│ {text}{' ' * (width - cell_len(text))} │"
        drawn.append((padded, [(a + 2, b + 2, style) for a, b, style in spans]))
    drawn.append(_styled(f"╰{edge}╯"))
    return drawn


def _side_by_side(columns: Sequence[list[_Line]]) -> Text:
    """``columns`` of lines next to each other, top-aligned, one space apart."""
    from rich.cells import cell_len
    from rich.text import Span, Text

    widths = [max((cell_len(text) for text, _ in column), default=0) for column in columns]
    plain: list[str] = []
    spans: list[Span] = []
    offset = 0
    for i in range(max(len(column) for column in columns)):
        row = ""
        for column, width in zip(columns, widths, strict=True):
            text, styles = column[i] if i < len(column) else ("", [])
            start = offset + len(row)
            spans += [Span(start + a, start + b, style) for a, b, style in styles]
            row += text + " " * (width - cell_len(text) + 1)
        row = row.rstrip()
        plain.append(row)
        offset += len(row) + 1  # and the newline
    return Text("\n".join(plain), spans=spans)


def render_creation(console: Console, summary: CreationSummary, uid: str | None = None) -> None:
    """Print the picture: input files -> creation method -> output, then code and version.

    The boxes are drawn whole, never shortened: a line wider than the terminal wraps. (Drawn
    by hand rather than with rich's panels and grid: that took most of the time of
    ``datalake lineage --depth 10``, benchmark case 7, and shortened uids with "…" to fit.)
    """
    arrow = [_styled(""), _styled(""), _styled("->")]  # level with the line under the titles
    columns: list[list[_Line]] = []
    inputs = summary.inputs + summary.external_inputs
    if inputs:
        columns += [_box("input files", [_styled(name) for name in inputs]), arrow]
    method = [_styled(f"function {summary.job}")]
    if summary.parameters:
        method.append(_styled(""))
        method.append(_styled("parameters", "italic"))
        for name, value in summary.parameters.items():
            method.append(_styled(f"{name} = {json.dumps(value, ensure_ascii=False)}"))
    columns += [_box("creation method", method), arrow]
    outputs = [_styled(f"uid {name}", "bold" if name == uid else "") for name in summary.outputs]
    outputs.append(_styled(f"originator {summary.originator or 'unknown'}"))
    columns.append(_box("output", outputs))
    # soft_wrap: lines are never cut to the terminal's width (a piped link stays whole).
    console.print(_side_by_side(columns), soft_wrap=True)
    # Where the run sat: the call (or the orchestrator's run) that started it, and its root.
    for label, value in (("called from", summary.called_from), ("root run", summary.root)):
        if value:
            console.print(
                f"{label}: {escape(value)}", markup=False, highlight=False, soft_wrap=True
            )
    code, note = summary.code_description()
    console.print(
        f"creation method code: {escape(code)}", markup=False, highlight=False, soft_wrap=True
    )
    if note:
        console.print(f"  note: {escape(note)}", markup=False, style="yellow", soft_wrap=True)
    console.print(
        f"radops version: {escape(summary.radops_version or 'unknown')}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
