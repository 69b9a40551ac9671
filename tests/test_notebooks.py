"""radops in Jupyter: files and lineage graphs display as HTML (escaped, self-contained), and a
cell that reruns a step says it was skipped, also where the kernel's root logger writes
elsewhere. The notebook tests run a real IPython kernel with nbclient."""

from __future__ import annotations

import html
import html.parser
import re
import textwrap
from pathlib import Path
from typing import Any

import nbclient
import nbformat
import pytest

from radops.data_lake import File, file_creator
from radops.lake import DataLake
from radops.lineage.pictures import html_page
from tests.conftest import TEST_EMAIL

HOSTILE = '</script><img src="https://evil.example/x.png" onerror="alert(1)">&amp;'


@file_creator
def annotate(src: File, note: str) -> File:
    with src.open() as handle:
        text = handle.read()
    out = File(suffix=".txt")
    with out.open("w") as handle:
        handle.write(text + note)
    return out


class Tags(html.parser.HTMLParser):
    """Every start tag of an HTML fragment, with its attributes."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def made(lake: DataLake) -> File:
    src = File("notes/in.txt", lake=lake)
    with src.open("w") as handle:
        handle.write("text")
    return annotate(src, HOSTILE)


def test_a_file_shows_as_a_table_of_what_made_it(lake: DataLake) -> None:
    """uid, size, sha256, the function and run that made it and their parameters, escaped."""
    out = made(lake)

    shown = out._repr_html_()

    cells = dict(re.findall(r"<th[^>]*>([^<]*)</th><td[^>]*>([^<]*)</td>", shown))
    assert cells["uid"] == html.escape(out.uid)
    assert cells["size"] == f"{len(('text' + HOSTILE).encode())} bytes"
    assert re.fullmatch("[0-9a-f]{64}", cells["sha256"])
    assert cells["made by"] == f"{__name__}.annotate"
    assert cells["inputs"] == "notes/in.txt"
    assert cells["originator"] == TEST_EMAIL
    assert html.unescape(cells["parameters"]) == '{"note": ' + _json(HOSTILE) + "}"
    assert {tag for tag, _ in Tags(shown).tags} <= {"table", "caption", "tr", "th", "td"}
    assert "<img" not in shown
    assert "evil.example" not in re.sub(r"<td[^>]*>[^<]*</td>", "", shown)  # only as text


def _json(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)


def test_a_file_not_in_the_lake_shows_why_instead_of_failing(lake: DataLake) -> None:
    """A display never raises: the table names the uid and the reason."""
    shown = File("nowhere.txt", lake=lake)._repr_html_()
    assert "nowhere.txt" in shown
    assert "FileNotInLakeError" in shown


def test_a_lineage_graph_shows_its_runs_and_the_offline_picture(lake: DataLake) -> None:
    """`File.lineage()`: a table of the runs, then the HTML lineage picture in a sandboxed
    frame whose document is inline; nothing outside the frame loads anything or runs a script,
    and user data is escaped at both levels."""
    out = made(lake)
    graph = out.lineage(depth=2)

    shown = graph._repr_html_()

    tags = Tags(shown).tags
    assert {tag for tag, _ in tags} == {"div", "table", "caption", "tr", "th", "td", "iframe"}
    [frame] = [attributes for tag, attributes in tags if tag == "iframe"]
    assert "src" not in frame  # the document is inline: nothing is fetched
    assert frame["sandbox"] is not None
    assert "allow-same-origin" not in frame["sandbox"]  # it cannot touch the notebook
    assert frame["srcdoc"] == html_page(graph)  # the picture of `--format html`, unchanged
    assert "default-src 'none'" in html.unescape(frame["srcdoc"])  # it forbids all requests
    assert "<script" not in shown  # the page's script is only in the escaped srcdoc
    assert HOSTILE not in frame["srcdoc"]  # the picture escapes the parameter (in its data)
    rows = re.findall(r"<tr><td[^>]*>([^<]*)</td><td[^>]*>[^<]*</td><td[^>]*>([^<]*)</td>", shown)
    assert (f"{__name__}.annotate", "notes/in.txt") in rows
    assert ("radops.File.write", "") in rows  # depth 2: the run that wrote the input


# -- a real notebook ----------------------------------------------------------------------------

STEPS = """
from radops.data_lake import File, file_creator


@file_creator
def shout(f: File) -> File:
    with f.open() as handle:
        text = handle.read()
    out = File(suffix=".txt")
    with out.open("w") as handle:
        handle.write(text.upper())
    return out
"""

CELLS = [
    # 0: an input and a first run
    """
    from radops.data_lake import File
    from steps import shout
    with File("in.txt").open("w") as handle:
        handle.write("hello")
    out = shout(File("in.txt"))
    """,
    # 1: the rerun, as a user reruns a cell
    "out = shout(File('in.txt'))",
    # 2: a root handler on the kernel's terminal (older ipykernel, some hosted notebooks)
    """
    import logging, sys
    terminal = logging.StreamHandler(sys.__stderr__)
    logging.getLogger().addHandler(terminal)
    out = shout(File("in.txt"))
    """,
    # 3: the user's own logging in the notebook takes over: one message, theirs
    """
    logging.getLogger().removeHandler(terminal)
    logging.basicConfig(format="app: %(name)s: %(message)s")
    out = shout(File("in.txt"))
    """,
    # 4, 5: displays
    "out",
    "out.lineage()",
]


def run_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[list[dict[str, Any]]]:
    """Each cell's outputs, run by a real IPython kernel in ``tmp_path``."""
    (tmp_path / "steps.py").write_text(STEPS, encoding="utf-8")
    monkeypatch.setenv("RADOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RADOPS_REMOTE", str(tmp_path / "remote"))
    monkeypatch.setenv("RADOPS_EMAIL", TEST_EMAIL)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(textwrap.dedent(cell)) for cell in CELLS]
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=120,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    return [list(cell.outputs) for cell in notebook.cells]


def stderr(outputs: list[dict[str, Any]]) -> str:
    return "".join(o["text"] for o in outputs if o.get("name") == "stderr")


def test_a_notebook_says_skipped_and_displays_files_and_lineage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In Jupyter, a rerun cell says the step was skipped: by default, with a root handler
    that writes to the kernel's terminal, and once (the user's way) when the user configured
    logging; a File and its lineage display as HTML."""
    first, rerun, terminal, configured, shown_file, shown_graph = run_notebook(
        tmp_path, monkeypatch
    )
    skipped = "steps.shout skipped: its outputs are already in the data lake"

    assert skipped not in stderr(first)
    assert re.search(
        rf"^radops: {skipped} \(steps\.shout/[0-9a-f]{{32}}-0\.txt\)$", stderr(rerun), re.M
    )
    assert f"radops: {skipped}" in stderr(terminal)
    lines = [line for line in stderr(configured).splitlines() if "skipped" in line]
    assert len(lines) == 1
    assert lines[0].startswith(f"app: radops: {skipped}")

    [result] = [o for o in shown_file if o["output_type"] == "execute_result"]
    assert "<table" in result["data"]["text/html"]
    assert "steps.shout" in result["data"]["text/html"]
    assert result["data"]["text/plain"].startswith("File('steps.shout/")
    [graph] = [o for o in shown_graph if o["output_type"] == "execute_result"]
    assert "<iframe srcdoc=" in graph["data"]["text/html"]
