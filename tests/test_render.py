"""The terminal picture of a creation: boxes drawn whole, aligned, never shortened."""

from __future__ import annotations

import io

import attrs
from rich.console import Console

from radops.cli.render import CreationSummary, render_creation

SUMMARY = CreationSummary(
    run_id="019a0000-0000-7000-8000-000000000000",
    job="__main__.process",
    event_time="2026-11-30T00:00:00Z",
    originator="you@example.com",
    radops_version="0.1.dev1",
    inputs=["a.txt", "measurements/2026/raw.csv"],
    external_inputs=[],
    outputs=["out.txt", "other.txt"],
    parameters={"n": 3, "label": "é 世界"},  # two cells per CJK character
    code_url="https://github.com/acme/pipes/blob/4c1e0d7/pipeline.py#L5",
    code_warning=None,
    deleted=False,
)

PICTURE = """\
╭───────────────────────────╮    ╭───────────────────────────╮    ╭────────────────────────────╮
│ input files               │    │ creation method           │    │ output                     │
│                           │ -> │                           │ -> │                            │
│ a.txt                     │    │ function __main__.process │    │ uid out.txt                │
│ measurements/2026/raw.csv │    │                           │    │ uid other.txt              │
╰───────────────────────────╯    │ parameters                │    │ originator you@example.com │
                                 │ n = 3                     │    ╰────────────────────────────╯
                                 │ label = "é 世界"          │
                                 ╰───────────────────────────╯
creation method code: https://github.com/acme/pipes/blob/4c1e0d7/pipeline.py#L5
radops version: 0.1.dev1
"""


def _render(width: int, *, terminal: bool, summary: CreationSummary = SUMMARY) -> str:
    out = io.StringIO()
    console = Console(
        file=out,
        width=width,
        force_terminal=terminal,
        color_system="standard" if terminal else None,
        highlight=False,
    )
    render_creation(console, summary, "out.txt")
    return out.getvalue()


def test_the_picture_is_three_aligned_boxes() -> None:
    assert _render(200, terminal=False) == PICTURE


def test_a_narrow_output_never_shortens_a_uid() -> None:
    """Wider than the terminal: lines are left to wrap, nothing is cut with an ellipsis."""
    text = _render(40, terminal=False)
    assert text == PICTURE
    assert "…" not in text


def test_on_a_terminal_the_titles_and_the_asked_uid_are_bold() -> None:
    text = _render(200, terminal=True)
    assert "\x1b[1minput files\x1b[0m" in text
    assert "\x1b[1muid out.txt\x1b[0m" in text
    assert "\x1b[1muid other.txt" not in text
    assert "\x1b[3mparameters\x1b[0m" in text


def test_without_inputs_there_is_no_input_box() -> None:
    summary = attrs.evolve(SUMMARY, inputs=[], parameters={})
    lines = _render(200, terminal=False, summary=summary).splitlines()
    assert lines[:3] == [
        "╭───────────────────────────╮    ╭────────────────────────────╮",
        "│ creation method           │    │ output                     │",
        "│                           │ -> │                            │",
    ]
