"""The terminal picture of a creation: boxes drawn whole, aligned, never shortened."""

from __future__ import annotations

import io

import attrs
from rich.console import Console

from radops.cli.render import CreationSummary, render_creation, summarize

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


def _event(location: dict[str, str] | None, warning: str | None) -> dict[str, object]:
    """A COMPLETE event of ``__main__.process``, with this code location and code warning."""
    job_facets = {"sourceCodeLocation": location} if location is not None else {}
    return {
        "eventType": "COMPLETE",
        "eventTime": "2026-11-30T00:00:00+00:00",
        "run": {
            "runId": "019a0000-0000-7000-8000-000000000000",
            "facets": {
                "radops": {
                    "email": "you@example.com",
                    "radopsVersion": "0.1.dev1",
                    "inputs": [],
                    "outputs": ["out.txt"],
                    "codeWarning": warning,
                }
            },
        },
        "job": {"namespace": "radops", "name": "__main__.process", "facets": job_facets},
        "inputs": [],
        "outputs": [],
    }


def _code_lines(event: dict[str, object]) -> list[str]:
    text = _render(200, terminal=False, summary=summarize(event))
    return [line for line in text.splitlines() if not line.startswith(("╭", "│", "╰", " " * 4))][
        :-1
    ]


def test_a_file_url_is_shown_as_the_file_and_line_never_as_a_link() -> None:
    """An event of a step outside git (a ``file://`` location): one line with the path and the
    line and why there is no link; no ``file://`` "link" and no contradicting note."""
    warning = "/work/p/pipe.py is not in a git repository: no code link is recorded"
    location = {"type": "file", "url": "file:///work/p/pipe.py#L13", "path": "/work/p/pipe.py"}
    assert _code_lines(_event(location, warning)) == [
        "creation method code: /work/p/pipe.py line 13 (not in a git repository: no link)"
    ]


def test_a_repository_without_a_web_origin_is_shown_as_the_file_and_line() -> None:
    """A git checkout without an origin (a ``file://`` location of type git): the same."""
    warning = "the repository /work/p has no origin remote: no code link"
    location = {
        "type": "git",
        "url": "file:///work/p/steps/pipe.py",
        "path": "steps/pipe.py",
        "version": "4c1e0d7",
    }
    assert _code_lines(_event(location, warning)) == [
        "creation method code: /work/p/steps/pipe.py (the repository has no web origin: no link)"
    ]


def test_a_creation_without_a_code_location_says_why_in_one_line() -> None:
    """Events without ``sourceCodeLocation`` (no link to record) show the reason only."""
    warning = "/work/p/pipe.py is not in a git repository: no code link is recorded"
    assert _code_lines(_event(None, warning)) == [
        "creation method code: no link (/work/p/pipe.py is not in a git repository)"
    ]
    assert _code_lines(_event(None, None)) == ["creation method code: not recorded"]


def test_a_link_to_changed_code_keeps_its_note() -> None:
    """A web link to code with uncommitted changes: the link, and a note that it may differ."""
    warning = (
        "pipe.py has uncommitted changes: the recorded code link (commit 4c1e0d7) will not match"
    )
    location = {"type": "git", "url": "https://github.com/acme/pipes/blob/4c1e0d7/pipe.py#L5"}
    assert _code_lines(_event(location, warning)) == [
        "creation method code: https://github.com/acme/pipes/blob/4c1e0d7/pipe.py#L5",
        f"  note: {warning}",
    ]
