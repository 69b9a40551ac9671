"""Drawing lineage in the terminal: the three-box picture of a creation."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

__all__ = ["CreationSummary", "render_creation", "summarize"]

# Re-exported: reading events belongs to radops.lineage, drawing them to the CLI.
from radops.lineage.summary import CreationSummary, summarize


def _box(title: str, lines: Sequence[RenderableType]) -> RenderableType:
    from rich import box
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    body: list[RenderableType] = [Text(title, style="bold"), Text("")]
    body.extend(lines)
    return Panel(Group(*body), box=box.ROUNDED, expand=False, padding=(0, 1))


def render_creation(console: Console, summary: CreationSummary, uid: str | None = None) -> None:
    """Print the picture: input files -> creation method -> output, then code and version."""
    from rich.table import Table
    from rich.text import Text

    row: list[RenderableType] = []
    inputs = summary.inputs + summary.external_inputs
    if inputs:
        row += [_box("input files", [Text(name) for name in inputs]), Text("\n\n->")]
    method: list[RenderableType] = [Text(f"function {summary.job}")]
    if summary.parameters:
        method.append(Text(""))
        method.append(Text("parameters", style="italic"))
        for name, value in summary.parameters.items():
            method.append(Text(f"{name} = {json.dumps(value, ensure_ascii=False)}"))
    row += [_box("creation method", method), Text("\n\n->")]
    outputs = [Text(f"uid {name}", style="bold" if name == uid else "") for name in summary.outputs]
    outputs.append(Text(f"originator {summary.originator or 'unknown'}"))
    row.append(_box("output", outputs))

    grid = Table.grid(padding=(0, 1))
    for _ in row:
        grid.add_column(vertical="top", no_wrap=True)
    grid.add_row(*row)
    needed = console.measure(grid, options=console.options.update(width=10_000)).maximum
    if needed > console.width and not console.is_terminal:
        # Piped output has no terminal width to respect: draw the boxes whole.
        from rich.console import Console

        console = Console(
            file=console.file,
            width=needed,
            highlight=False,
            # Fix: keep soft wrapping, or the code URL line below is hard-wrapped at the
            # boxes' width and a piped link breaks across lines.
            soft_wrap=True,
            color_system="standard" if console.color_system else None,
        )
    console.print(grid)
    console.print(
        f"creation method code: {summary.code_url or 'not recorded'}", markup=False, highlight=False
    )
    if summary.code_warning:
        console.print(f"  note: {summary.code_warning}", markup=False, style="yellow")
    console.print(
        f"radops version: {summary.radops_version or 'unknown'}", markup=False, highlight=False
    )
