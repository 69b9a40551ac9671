"""Pictures of lineage: the graph, Mermaid, DOT and the HTML page, drawn by a real Chromium.

A three-step pipeline runs on a directory lake (``raw.txt`` -> step1 -> ``a.txt`` -> step2 ->
``b.txt`` -> step3 -> ``c.txt``); the graph is built from its recorded events and drawn in every
format. The HTML page is loaded in headless Chromium driven over the DevTools protocol, which
sees every request the page makes (see :class:`Chromium`).
"""

from __future__ import annotations

import base64
import contextlib
import html.parser
import itertools
import json
import os
import re
import select
import shutil
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from typer.testing import CliRunner, Result

from radops.cli.app import app
from radops.cli.render import summarize
from radops.data_lake import File, file_creator
from radops.lake import DataLake
from radops.lineage.events import radops_facet
from radops.lineage.graph import LineageGraph, build_graph, file_key
from radops.lineage.nodes import FileNode, RunNode
from radops.lineage.pictures import dot, html_page, mermaid, safe_link
from tests.conftest import TEST_EMAIL

MODULE = __name__
DIRECTORY = pytest.mark.parametrize("remote", ["directory"], indirect=True)
EVIL = "evil \"q\" 'a' <b>&amp;</b> </script><img src=x onerror=alert(1)>.txt"
EVIL_NOTE = '</script><script>document.title="pwned"</script> & "quotes" <!--'


def _rewrite(f: File, output_uid: str, suffix: str) -> File:
    with f.open() as handle:
        text = handle.read()
    out = File(output_uid)
    with out.open("w") as handle:
        handle.write(text + suffix)
    return out


@file_creator
def step1(f: File, output_uid: str) -> File:
    return _rewrite(f, output_uid, "1")


@file_creator
def step2(f: File, output_uid: str, factor: int = 2) -> File:
    return _rewrite(f, output_uid, "2" * factor)


@file_creator
def step3(f: File, output_uid: str, note: str = "") -> File:
    return _rewrite(f, output_uid, "3")


def _pipeline(lake: DataLake, last: str = "c.txt", note: str = "") -> None:
    """raw.txt (written directly) -> a.txt -> b.txt -> ``last``."""
    with File("raw.txt", lake=lake).open("w") as handle:
        handle.write("raw")
    step1(File("raw.txt", lake=lake), output_uid="a.txt")
    step2(File("a.txt", lake=lake), output_uid="b.txt", factor=3)
    step3(File("b.txt", lake=lake), output_uid=last, note=note)


@pytest.fixture
def three(lake: DataLake) -> DataLake:
    """Machine A after the three-step pipeline ran."""
    _pipeline(lake)
    return lake


@pytest.fixture
def evil(lake: DataLake) -> DataLake:
    """The pipeline, its last output named by a hostile uid and step3 given a hostile note."""
    _pipeline(lake, last=EVIL, note=EVIL_NOTE)
    return lake


def _graph(lake: DataLake, uid: str, depth: int, downstream: bool = False) -> LineageGraph:
    return build_graph(
        uid,
        lambda each: lake.lineage.creation_of(each, sync=False),
        lake.lineage.runs_using,
        depth=depth,
        downstream=downstream,
    )


def _names(graph: LineageGraph) -> set[str]:
    """Files by name, runs by job name."""
    return {node.name if isinstance(node, FileNode) else node.job for node in graph.nodes}


def _edges(graph: LineageGraph) -> set[tuple[str, str]]:
    """Edges as (name, name) pairs, runs named by their job."""

    def name(key: str) -> str:
        node = graph.node(key)
        return node.name if isinstance(node, FileNode) else node.job

    return {(name(edge.source), name(edge.target)) for edge in graph.edges}


def _chain(*names: str) -> set[tuple[str, str]]:
    return set(itertools.pairwise(names))


S1, S2, S3 = f"{MODULE}.step1", f"{MODULE}.step2", f"{MODULE}.step3"
WRITE = "radops.File.write"
FULL = _chain(WRITE, "raw.txt", S1, "a.txt", S2, "b.txt", S3, "c.txt")


# -- the graph ----------------------------------------------------------------------------------


@DIRECTORY
def test_graph_upstream_by_depth(three: DataLake) -> None:
    """Each level of --depth adds one creation upstream, up to the direct write of raw.txt."""
    one = _graph(three, "c.txt", 1)
    assert _names(one) == {"b.txt", S3, "c.txt"}
    assert _edges(one) == _chain("b.txt", S3, "c.txt")
    assert one.root == file_key("c.txt")
    three_levels = _graph(three, "c.txt", 3)
    assert _edges(three_levels) == FULL - {(WRITE, "raw.txt")}
    full = _graph(three, "c.txt", 4)
    assert _edges(full) == FULL
    assert len(full.files) == 4
    assert len(full.runs) == 4
    assert _graph(three, "c.txt", 9) == full


@DIRECTORY
def test_graph_downstream(three: DataLake) -> None:
    """--downstream adds the runs that read the file and what they made, --depth levels deep."""
    graph = _graph(three, "a.txt", 1, downstream=True)
    assert _edges(graph) == _chain("raw.txt", S1, "a.txt", S2, "b.txt")
    deeper = _graph(three, "a.txt", 2, downstream=True)
    assert _edges(deeper) == FULL
    leaf = _graph(three, "c.txt", 1, downstream=True)
    assert _edges(leaf) == _chain("b.txt", S3, "c.txt")


@DIRECTORY
def test_run_nodes_carry_the_creation(three: DataLake) -> None:
    """A run node has the job, run id, originator, parameters, code link, version and time."""
    event = three.lineage.creation_of("b.txt")
    made = summarize(event)
    [run] = _graph(three, "b.txt", 1).runs
    assert run == RunNode(
        key=f"run:{made.run_id}",
        run_id=made.run_id,
        job=S2,
        event_time=event["eventTime"],
        originator=TEST_EMAIL,
        parameters={"factor": 3},
        code_url=made.code_url,
        code_warning=made.code_warning,
        radops_version=made.radops_version,
        code_text=made.code_description()[0],
        code_note=made.code_description()[1],
    )
    assert run.radops_version
    assert run.code_text not in ("", "not recorded")


@DIRECTORY
def test_external_inputs_are_file_nodes(lake: DataLake, tmp_path: Path) -> None:
    """The local source file of `datalake add` is a file node marked external."""
    source = tmp_path / "measurements.csv"
    source.write_text("a,b\n")
    lake.add_file(source, "measurements.csv")
    step1(File("measurements.csv", lake=lake), output_uid="clean.csv")
    graph = _graph(lake, "clean.csv", 2)
    [external] = [node for node in graph.files if node.external]
    assert external.name == f"file:{source.resolve()}"
    assert external.kind == "external"
    assert _edges(graph) == _chain(
        f"file:{source.resolve()}", "radops.datalake.add", "measurements.csv", S1, "clean.csv"
    )


@DIRECTORY
def test_layout_follows_the_arrows(three: DataLake) -> None:
    """Columns grow along every edge; the chain takes one column per node and one row."""
    graph = _graph(three, "c.txt", 4, downstream=True)
    for edge in graph.edges:
        assert graph.columns[edge.source] < graph.columns[edge.target]
    by_column = sorted(graph.nodes, key=lambda node: graph.columns[node.key])
    assert [graph.columns[node.key] for node in by_column] == list(range(8))
    assert set(graph.rows.values()) == {0}


def _event(run_id: str, inputs: list[str], outputs: list[str]) -> dict[str, Any]:
    """A minimal COMPLETE event of radops, as another lineage backend could return it."""
    return {
        "eventType": "COMPLETE",
        "eventTime": "2025-01-31T12:00:00+00:00",
        "run": {"runId": run_id, "facets": {"radops": {"inputs": inputs, "outputs": outputs}}},
        "job": {"name": f"job_{run_id}"},
        "inputs": [],
    }


def _lookups(*events: dict[str, Any]) -> tuple[Any, Any]:
    """creation_of and runs_using over a list of events."""
    made = {uid: event for event in events for uid in radops_facet(event)["outputs"]}
    return made.get, lambda uid: [event for event in events if uid in radops_facet(event)["inputs"]]


def test_build_graph_takes_any_event_source() -> None:
    """Lookups are plain callables; events other than COMPLETE are ignored."""
    event = _event("1", ["x"], ["y"])
    started = {**_event("0", ["x"], ["z"]), "eventType": "START"}
    graph = build_graph("x", lambda uid: None, lambda uid: [started, event], downstream=True)
    assert _edges(graph) == {("x", "job_1"), ("job_1", "y")}
    with pytest.raises(ValueError, match="depth"):
        build_graph("x", lambda uid: None, lambda uid: [], depth=0)


def test_layout_puts_a_late_input_beside_its_run() -> None:
    """An input used only by the last step sits in the column before it, in another row."""
    creation_of, runs_using = _lookups(_event("1", ["x"], ["y"]), _event("2", ["y", "z"], ["w"]))
    graph = build_graph("w", creation_of, runs_using, depth=2)
    columns = {
        graph.node(key).kind + ":" + key.split(":", 1)[1]: c for key, c in graph.columns.items()
    }
    assert columns == {"file:x": 0, "run:1": 1, "file:y": 2, "file:z": 2, "run:2": 3, "file:w": 4}
    assert graph.rows[file_key("y")] != graph.rows[file_key("z")]


def test_layout_survives_loops_and_long_chains() -> None:
    """A loop (a uid deleted and made again) and a 3000-level chain are laid out all the same."""
    creation_of, runs_using = _lookups(_event("1", ["b"], ["a"]), _event("2", ["a"], ["b"]))
    loop = build_graph("a", creation_of, runs_using, depth=5, downstream=True)
    assert len(loop.nodes) == 4
    backwards = [e for e in loop.edges if loop.columns[e.source] >= loop.columns[e.target]]
    assert len(backwards) == 1

    chain = [_event(str(i), [f"f{i}"], [f"f{i + 1}"]) for i in range(3000)]
    creation_of, runs_using = _lookups(*chain)
    long = build_graph("f3000", creation_of, runs_using, depth=3000)
    assert long.columns[file_key("f0")] == 0
    assert long.columns[file_key("f3000")] == 6000


# -- Mermaid and DOT ----------------------------------------------------------------------------


def _mermaid_decode(text: str) -> str:
    return re.sub(r"#(quot|\d+);", lambda m: '"' if m[1] == "quot" else chr(int(m[1])), text)


def _parse_mermaid(text: str) -> tuple[dict[str, tuple[str, list[str]]], set[tuple[str, str]]]:
    """Nodes (id -> shape, label lines) and edges of our Mermaid output; every line accounted."""
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    nodes: dict[str, tuple[str, list[str]]] = {}
    edges: set[tuple[str, str]] = set()
    for line in lines[1:]:
        if match := re.fullmatch(
            r'    ([a-z]\d+)(\(|\[\[)"([^"<>]*(?:<br/>[^"<>]*)*)"(\)|\]\])', line
        ):
            ident, opening, label, closing = match.groups()
            assert {"(": ")", "[[": "]]"}[opening] == closing
            assert ident not in nodes
            shape = "rounded" if opening == "(" else "subroutine"
            nodes[ident] = (shape, [_mermaid_decode(part) for part in label.split("<br/>")])
        elif match := re.fullmatch(r"    ([a-z]\d+) --> ([a-z]\d+)", line):
            edges.add((match[1], match[2]))
        elif match := re.fullmatch(
            r'    click (r\d+) href "([^"\s<>]+)" "open the code" _blank', line
        ):
            assert nodes[match[1]][0] == "subroutine"
        elif re.fullmatch(r"    classDef (file|external|run|root) [\w:#,. -]+", line):
            pass
        else:
            match = re.fullmatch(
                r"    class ([a-z]\d+(?:,[a-z]\d+)*) (file|external|run|root)", line
            )
            assert match, f"unexpected Mermaid line {line!r}"
            assert all(ident in nodes for ident in match[1].split(","))
    assert all(a in nodes and b in nodes for a, b in edges)
    return nodes, edges


_DOT_STRING = r'"((?:[^"\\]|\\.)*)"'


def _dot_unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], text)


def _parse_dot(text: str) -> tuple[dict[str, dict[str, str]], set[tuple[str, str]]]:
    """Nodes (id -> attributes, strings unescaped) and edges of our DOT; every line accounted."""
    lines = text.splitlines()
    assert lines[0] == "digraph lineage {"
    assert lines[-1] == "}"
    assert "    rankdir=LR;" in lines
    nodes: dict[str, dict[str, str]] = {}
    edges: set[tuple[str, str]] = set()
    attribute = re.compile(rf"(\w+)=({_DOT_STRING}|[\w.]+)(?:, |$)")
    for line in lines[2:-1]:
        if match := re.fullmatch(r"    (\w+) -> (\w+);", line):
            edges.add((match[1], match[2]))
            continue
        match = re.fullmatch(r"    (\w+) \[(.*)\];", line)
        assert match, f"unexpected DOT line {line!r}"
        ident, body = match.groups()
        attributes: dict[str, str] = {}
        position = 0
        while position < len(body):
            found = attribute.match(body, position)
            assert found, f"bad attribute list at {body[position:]!r}"
            value = found[3] if found[3] is not None else found[2]
            attributes[found[1]] = _dot_unescape(value) if found[3] is not None else value
            position = found.end()
        if ident not in ("node", "edge"):
            assert ident not in nodes
            nodes[ident] = attributes
    assert all(a in nodes and b in nodes for a, b in edges)
    return nodes, edges


def _expected_labels(graph: LineageGraph) -> dict[str, str]:
    """First label line -> kind, for every node."""
    return {
        (node.name if isinstance(node, FileNode) else node.job): node.kind for node in graph.nodes
    }


@DIRECTORY
def test_mermaid_has_every_node_and_edge(three: DataLake) -> None:
    """Files are rounded, runs subroutines, code links `click` lines; edges match the graph."""
    graph = _graph(three, "c.txt", 4)
    text = mermaid(graph)
    nodes, edges = _parse_mermaid(text)
    labels = {lines[0]: shape for shape, lines in nodes.values()}
    assert labels == {
        name: "subroutine" if kind == "run" else "rounded"
        for name, kind in _expected_labels(graph).items()
    }
    named = {ident: lines[0] for ident, (_, lines) in nodes.items()}
    assert {(named[a], named[b]) for a, b in edges} == FULL
    for run in graph.runs:
        if run.code_url:
            assert f'href "{safe_link(run.code_url)}"' in text
    assert sum(1 for run in graph.runs if run.code_url) == text.count("\n    click ")


@DIRECTORY
def test_dot_has_every_node_and_edge(three: DataLake) -> None:
    """A digraph with rankdir=LR: files as notes, runs as boxes with href, edges as in the graph."""
    graph = _graph(three, "c.txt", 4)
    nodes, edges = _parse_dot(dot(graph))
    named = {ident: attributes["label"].split("\n")[0] for ident, attributes in nodes.items()}
    assert {(named[a], named[b]) for a, b in edges} == FULL
    for ident, attributes in nodes.items():
        kind = _expected_labels(graph)[named[ident]]
        assert attributes["shape"] == ("box" if kind == "run" else "note")
    runs = {attributes["label"].split("\n")[0]: attributes for attributes in nodes.values()}
    for run in graph.runs:
        attributes = runs[run.job]
        assert run.run_id in attributes["tooltip"]
        assert attributes.get("href") == safe_link(run.code_url)
    [root] = [attributes for attributes in nodes.values() if attributes.get("penwidth")]
    assert root["label"] == "c.txt"


@DIRECTORY
def test_hostile_uid_is_escaped_everywhere(evil: DataLake) -> None:
    """Quotes, angle brackets and </script> in a uid or parameter stay data in every format."""
    graph = _graph(evil, EVIL, 2)
    assert EVIL in _names(graph)

    text = mermaid(graph)
    assert EVIL not in text
    assert "</script>" not in text
    nodes, _ = _parse_mermaid(text)
    assert [EVIL] in [lines for _, lines in nodes.values()]

    dot_nodes, _ = _parse_dot(dot(graph))
    assert EVIL in [attributes["label"] for attributes in dot_nodes.values()]
    [run] = [
        attributes
        for attributes in dot_nodes.values()
        if attributes["shape"] == "box" and "step3" in attributes["label"]
    ]
    assert json.dumps(EVIL_NOTE) in run["tooltip"]

    page = html_page(graph)
    assert EVIL not in page
    assert EVIL_NOTE not in page
    parsed = _parse_page(page)
    assert parsed.scripts == 2, "a uid closed a script element"
    assert parsed.title == f"Lineage of {EVIL}"
    data = json.loads(parsed.data)
    assert data["root"] == EVIL
    [node] = [node for node in data["nodes"] if node["lines"] == [EVIL]]
    assert node["root"] is True
    assert any(json.dumps({"note": EVIL_NOTE}) in node["tooltip"] for node in data["nodes"])


class _Page(html.parser.HTMLParser):
    """The parts of our HTML page the tests read: script count, title, the JSON data."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts = 0
        self.title = ""
        self.data = ""
        self._in: str | None = None
        self._is_data = False

    def handle_starttag(self, tag: str, attributes: list[tuple[str, str | None]]) -> None:
        self._in = tag
        if tag == "script":
            self.scripts += 1
            self._is_data = ("type", "application/json") in attributes

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "title":
            self.title += data
        elif self._in == "script" and self._is_data:
            self.data += data


def _parse_page(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


# -- the CLI ------------------------------------------------------------------------------------


def _invoke(cli_env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={**cli_env, "COLUMNS": "200"})


def _ok(result: Result) -> Result:
    assert result.exit_code == 0, (
        f"exit {result.exit_code} ({result.exception!r})\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


@DIRECTORY
def test_cli_formats(three: DataLake, cli_env: dict[str, str]) -> None:
    """--format prints the picture of the graph --depth and --downstream describe."""
    args = ("datalake", "lineage", "b.txt", "--depth", "2", "--downstream")
    graph = _graph(three, "b.txt", 2, downstream=True)
    assert _ok(_invoke(cli_env, *args, "--format", "mermaid")).stdout == mermaid(graph)
    assert _ok(_invoke(cli_env, *args, "--format", "dot")).stdout == dot(graph)
    page = _ok(_invoke(cli_env, *args, "--format", "html")).stdout
    assert page == html_page(graph)
    assert page.startswith("<!DOCTYPE html>")

    text = _ok(_invoke(cli_env, "datalake", "lineage", "b.txt")).stdout
    assert "creation method" in text
    assert _ok(_invoke(cli_env, "datalake", "lineage", "b.txt", "--format", "text")).stdout == text

    both = _invoke(cli_env, "datalake", "lineage", "b.txt", "--json", "--format", "dot")
    assert both.exit_code == 2
    assert "--json and --format exclude each other" in both.stderr
    unknown = _invoke(cli_env, "datalake", "lineage", "b.txt", "--format", "png")
    assert unknown.exit_code == 2
    missing = _invoke(cli_env, "datalake", "lineage", "nope.txt", "--format", "html")
    assert missing.exit_code == 1
    assert missing.stdout == ""


# -- the HTML page in Chromium ------------------------------------------------------------------

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--force-color-profile=srgb",
    "--window-size=1280,800",
    "--remote-debugging-pipe",
)


# Runs Chromium with the pipe's ends on fds 3 (commands) and 4 (replies), as
# --remote-debugging-pipe expects them.
_ON_FDS_3_AND_4 = (
    "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
    "os.execv(sys.argv[3], sys.argv[3:])"
)


@attrs.frozen
class Loaded:
    """What happened while a page loaded: its requests, console and errors, and its DOM."""

    requests: list[dict[str, Any]]  # Network.requestWillBeSent of the page
    log: list[dict[str, Any]]  # Log.entryAdded (CSP violations land here)
    exceptions: list[dict[str, Any]]  # Runtime.exceptionThrown
    dom: str
    session: str


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4).

    Each page gets its own tab with the Network domain enabled before navigation, so every
    request the page issues is reported (``Network.requestWillBeSent``), including those its
    Content-Security-Policy then blocks. A proxy cannot tell the page's requests apart: even
    with --disable-background-networking and --disable-component-update, Debian's Chromium
    asks update.googleapis.com, clients2.google.com and accounts.google.com at startup. The
    browser's proxy is a closed loopback port, so nothing it sends leaves the machine.
    """

    def __init__(self, binary: str, profile: Path) -> None:
        self._closed_port = socket.socket()  # bound, never listening: connections are refused
        self._closed_port.bind(("127.0.0.1", 0))
        port = self._closed_port.getsockname()[1]
        to_browser, self._to_browser = os.pipe()
        self._from_browser, from_browser = os.pipe()
        self.stderr_path = profile.parent / "chromium.stderr"
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _ON_FDS_3_AND_4,
                    str(to_browser),
                    str(from_browser),
                    binary,
                    *CHROMIUM_FLAGS,
                    f"--user-data-dir={profile}",
                    f"--proxy-server=http://127.0.0.1:{port}",
                    "--proxy-bypass-list=<-loopback>",
                    "about:blank",
                ],
                pass_fds=(to_browser, from_browser),
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
            )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Call a DevTools method and return its result; events meanwhile are kept."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 20
        while True:
            for reply in self._read(deadline):
                if reply.get("id") == self._next_id:
                    assert "error" not in reply, f"{method}: {reply['error']}"
                    return dict(reply["result"])
                self.events.append(reply)

    def _read(self, deadline: float) -> list[dict[str, Any]]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_browser], [], [], max(left, 0))
            if not ready:
                raise TimeoutError(f"chromium did not answer; stderr:\n{self.stderr_tail()}")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise EOFError(f"chromium exited; stderr:\n{self.stderr_tail()}")
            self._buffer += chunk
        *messages, self._buffer = self._buffer.split(b"\0")
        return [json.loads(message) for message in messages]

    def pump(self, seconds: float) -> None:
        """Collect events for ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self.events.extend(self._read(deadline))
            except TimeoutError:
                return

    def stderr_tail(self) -> str:
        """The end of Chromium's own output, for failure messages."""
        return self.stderr_path.read_text(errors="replace")[-3000:]

    def load(self, path: Path) -> Loaded:
        """Open ``path`` in a new tab, wait for the page to load and settle, report on it."""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Network", "Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session)
        self.send("Page.navigate", session, url=path.as_uri())
        deadline = time.monotonic() + 20
        while not any(
            e.get("method") == "Page.loadEventFired" and e.get("sessionId") == session
            for e in self.events
        ):
            assert time.monotonic() < deadline, "the page did not load"
            self.pump(0.1)
        self.pump(0.3)  # late requests (timers, promises) would show up here
        dom = self.evaluate(session, "document.documentElement.outerHTML")
        mine = [e for e in self.events if e.get("sessionId") == session]
        return Loaded(
            requests=[e["params"] for e in mine if e["method"] == "Network.requestWillBeSent"],
            log=[e["params"]["entry"] for e in mine if e["method"] == "Log.entryAdded"],
            exceptions=[e["params"] for e in mine if e["method"] == "Runtime.exceptionThrown"],
            dom=dom,
            session=session,
        )

    def evaluate(self, session: str, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.send("Runtime.evaluate", session, expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def close(self) -> None:
        """Close the browser (killing it if it does not exit) and the pipes."""
        with contextlib.suppress(OSError, EOFError, TimeoutError):
            self.send("Browser.close")
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        os.close(self._to_browser)
        os.close(self._from_browser)
        self._closed_port.close()


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    """One headless Chromium for the module's page tests (Debian package `chromium`)."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is not installed: `apt-get install -y chromium` (Debian) is needed")
    browser = Chromium(binary, tmp_path_factory.mktemp("chromium") / "profile")
    try:
        yield browser
    finally:
        browser.close()


def _only_the_page_itself(loaded: Loaded, page: Path) -> None:
    urls = [request["request"]["url"] for request in loaded.requests]
    assert urls == [page.as_uri()], f"the page made requests: {urls}"
    assert loaded.exceptions == []
    problems = [entry for entry in loaded.log if entry["level"] in ("error", "warning")]
    assert problems == [], problems


def _colors(png: bytes) -> Counter[bytes]:
    """How many pixels of each RGB colour an 8-bit, non-interlaced RGB(A) PNG has."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    position, compressed = 8, b""
    while position < len(png):
        length, kind = struct.unpack(">I4s", png[position : position + 8])
        body = png[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            width, height, depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert (depth, interlace) == (8, 0) and color_type in (2, 6)
        elif kind == b"IDAT":
            compressed += body
    pixel = 3 if color_type == 2 else 4
    raw = zlib.decompress(compressed)
    stride = width * pixel
    previous = bytearray(stride)
    counts: Counter[bytes] = Counter()
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - pixel] if i >= pixel else 0
            up = previous[i]
            corner = previous[i - pixel] if i >= pixel else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                guess = left + up - corner
                near = min(
                    (abs(guess - left), 0, left),
                    (abs(guess - up), 1, up),
                    (abs(guess - corner), 2, corner),
                )
                line[i] = (line[i] + near[2]) & 0xFF
        counts.update(bytes(line[i : i + 3]) for i in range(0, stride, pixel))
        previous = line
    return counts


def _write_page(graph: LineageGraph, path: Path, text: str | None = None) -> dict[str, Any]:
    """Write the page of ``graph`` (or ``text``) to ``path``; return its embedded data."""
    page = html_page(graph)
    path.write_text(page if text is None else text, encoding="utf-8")
    data: dict[str, Any] = json.loads(_parse_page(page).data)
    return data


def _click(chromium: Chromium, session: str, node_id: str) -> None:
    """A real left click near the top of a drawn node."""
    box = chromium.evaluate(
        session,
        f"JSON.stringify(document.querySelector('g.node[data-id=\"{node_id}\"]')"
        ".getBoundingClientRect())",
    )
    rect = json.loads(box)
    x, y = rect["x"] + rect["width"] / 2, rect["y"] + 6
    for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
        chromium.send(
            "Input.dispatchMouseEvent", session, type=kind, x=x, y=y, button="left", clickCount=1
        )


def _panel(chromium: Chromium, session: str) -> dict[str, str]:
    rows = chromium.evaluate(
        session,
        "Array.from(document.querySelectorAll('#details dd'))"
        ".map(d => [d.dataset.key, d.textContent])",
    )
    return dict(rows)


@DIRECTORY
def test_page_draws_the_graph_offline(three: DataLake, chromium: Chromium, tmp_path: Path) -> None:
    """Chromium runs the page's script: a node per file and run, an arrow per edge, no request."""
    graph = _graph(three, "c.txt", 4)
    page = tmp_path / "lineage.html"
    data = _write_page(graph, page)
    loaded = chromium.load(page)
    _only_the_page_itself(loaded, page)

    assert '<svg id="graph"' in loaded.dom
    assert 'data-rendered="8"' in loaded.dom
    drawn = {
        ident: kinds
        for kinds, ident in re.findall(r'<g class="node ([a-z ]+)" data-id="(\w+)"', loaded.dom)
    }
    assert set(drawn) == {node["id"] for node in data["nodes"]}
    assert sorted(drawn.values()) == ["file", "file", "file", "file root"] + ["run"] * 4
    widths = re.findall(r'data-width="(\d+)"', loaded.dom)
    assert len(widths) == 8
    assert all(int(width) >= 90 for width in widths)
    named = {node["id"]: node["lines"][0] for node in data["nodes"]}
    arrows = re.findall(r'<path class="edge" data-from="(\w+)" data-to="(\w+)"', loaded.dom)
    assert {(named[a], named[b]) for a, b in arrows} == FULL
    assert len(arrows) == len(FULL)
    for run in graph.runs:
        if run.code_url:
            assert f'<a href="{safe_link(run.code_url)}" target="_blank"' in loaded.dom

    rect = json.loads(
        chromium.evaluate(
            loaded.session,
            "JSON.stringify(document.getElementById('graph').getBoundingClientRect())",
        )
    )
    shot = chromium.send(
        "Page.captureScreenshot",
        loaded.session,
        format="png",
        clip={
            "x": rect["x"],
            "y": rect["y"],
            "width": rect["width"],
            "height": rect["height"],
            "scale": 1,
        },
    )
    colors = _colors(base64.b64decode(shot["data"]))
    assert colors[bytes.fromhex("e8f1fb")] > 1000, "no file node is painted"
    assert colors[bytes.fromhex("fff3dc")] > 1000, "no creation method is painted"


@DIRECTORY
def test_page_shows_run_details(three: DataLake, chromium: Chromium, tmp_path: Path) -> None:
    """A run's tooltip and, after a real click, the details panel show the run; code is a link."""
    graph = _graph(three, "c.txt", 3)
    page = tmp_path / "lineage.html"
    data = _write_page(graph, page)
    loaded = chromium.load(page)
    [run] = [node for node in graph.runs if node.job == S2]
    [ident] = [node["id"] for node in data["nodes"] if node["lines"][0] == S2]
    tooltip = chromium.evaluate(
        loaded.session, f"document.querySelector('g.node[data-id=\"{ident}\"] > title').textContent"
    )
    for expected in (run.run_id, TEST_EMAIL, '{"factor": 3}', str(run.radops_version)):
        assert expected in tooltip

    assert _panel(chromium, loaded.session) == {}
    _click(chromium, loaded.session, ident)
    panel = _panel(chromium, loaded.session)
    assert panel["creation method"] == S2
    assert panel["run id"] == run.run_id
    assert panel["originator"] == TEST_EMAIL
    assert panel["parameters"] == '{"factor": 3}'
    assert panel["radops version"] == run.radops_version
    assert panel["time"].endswith(" UTC")
    assert panel["code"] == run.code_text
    if run.code_url:  # a web link (a checkout with an origin); else no link is drawn
        link = chromium.evaluate(loaded.session, "document.querySelector('#details a').href")
        assert link == safe_link(run.code_url)
    selected = chromium.evaluate(
        loaded.session, "Array.from(document.querySelectorAll('g.selected')).map(g => g.dataset.id)"
    )
    assert selected == [ident]


@DIRECTORY
def test_the_request_detector_can_fail(three: DataLake, chromium: Chromium, tmp_path: Path) -> None:
    """Control: the page with an injected image and fetch is caught, with or without its CSP."""
    graph = _graph(three, "c.txt", 1)
    page = html_page(graph)
    injection = (
        '<img src="http://example.invalid/pixel.png">'
        '<script>fetch("http://example.invalid/data").catch(() => null)</script></body>'
    )
    guarded = tmp_path / "guarded.html"
    guarded.write_text(page.replace("</body>", injection), encoding="utf-8")
    loaded = chromium.load(guarded)
    urls = [request["request"]["url"] for request in loaded.requests]
    assert "http://example.invalid/pixel.png" in urls  # reported, then blocked by the CSP
    assert any("Content Security Policy" in entry["text"] for entry in loaded.log)

    policy = re.search(r'<meta http-equiv="Content-Security-Policy"[^>]*>\n', page)
    assert policy
    open_page = tmp_path / "open.html"
    open_page.write_text(page.replace(policy[0], "").replace("</body>", injection), "utf-8")
    loaded = chromium.load(open_page)
    urls = [request["request"]["url"] for request in loaded.requests]
    assert "http://example.invalid/pixel.png" in urls
    assert "http://example.invalid/data" in urls
    with pytest.raises(AssertionError, match="the page made requests"):
        _only_the_page_itself(loaded, open_page)


@DIRECTORY
def test_page_with_a_hostile_uid(evil: DataLake, chromium: Chromium, tmp_path: Path) -> None:
    """A uid with </script> and an onerror image is drawn as text in Chromium, never run."""
    graph = _graph(evil, EVIL, 1)
    page = tmp_path / "lineage.html"
    data = _write_page(graph, page)
    loaded = chromium.load(page)
    _only_the_page_itself(loaded, page)  # an injected <img src=x> would request file:///.../x
    assert chromium.evaluate(loaded.session, "document.title") == f"Lineage of {EVIL}"
    assert chromium.evaluate(loaded.session, "document.querySelectorAll('img').length") == 0
    texts = chromium.evaluate(
        loaded.session,
        "Array.from(document.querySelectorAll('g.node text.main')).map(t => t.textContent)",
    )
    assert EVIL in texts
    [ident] = [node["id"] for node in data["nodes"] if node["lines"][0] == S3]
    _click(chromium, loaded.session, ident)
    assert _panel(chromium, loaded.session)["parameters"] == json.dumps(
        {"note": EVIL_NOTE}, ensure_ascii=False
    )
