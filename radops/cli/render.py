"""Drawing lineage in the terminal: the three-box picture of a creation."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

__all__ = ["CreationSummary", "render_creation", "summarize"]


@attrs.frozen
class CreationSummary:
    """What a creation's COMPLETE event says, in the terms users think in."""

    run_id: str
    job: str
    event_time: str
    originator: str | None
    radops_version: str | None
    inputs: list[str]
    external_inputs: list[str]  # datasets outside the lake (URLs, local files)
    outputs: list[str]
    parameters: dict[str, Any]
    code_url: str | None
    code_warning: str | None
    deleted: bool


def summarize(event: Mapping[str, Any]) -> CreationSummary:
    """Read a COMPLETE event into a :class:`CreationSummary`."""
    facets = event.get("run", {}).get("facets", {})
    radops = facets.get("radops", {})
    job_facets = event.get("job", {}).get("facets", {})
    location = job_facets.get("sourceCodeLocation", {})
    lake_inputs = set(radops.get("inputs", []))
    external = [
        f"{item['namespace']}{item['name']}"
        if item["namespace"].startswith("http")
        else f"{item['namespace']}:{item['name']}"
        for item in event.get("inputs", [])
        if not _is_lake_dataset(item, lake_inputs)
    ]
    deleted = any(
        output.get("facets", {}).get("lifecycleStateChange", {}).get("lifecycleStateChange")
        == "DROP"
        for output in event.get("outputs", [])
    )
    return CreationSummary(
        run_id=event["run"]["runId"],
        job=event["job"]["name"],
        event_time=event["eventTime"],
        originator=radops.get("email"),
        radops_version=radops.get("radopsVersion"),
        inputs=list(radops.get("inputs", [])),
        external_inputs=external,
        outputs=list(radops.get("outputs", [])),
        parameters=dict(radops.get("parameters", {})),
        code_url=location.get("url"),
        code_warning=radops.get("codeWarning"),
        deleted=deleted,
    )


def _is_lake_dataset(item: Mapping[str, Any], lake_inputs: set[str]) -> bool:
    name = str(item.get("name", ""))
    return any(name == uid or name.endswith("/" + uid) for uid in lake_inputs)


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
