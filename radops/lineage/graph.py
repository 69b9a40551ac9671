"""The lineage graph around a file, built from COMPLETE events (pure: no I/O of its own).

Nodes are files and runs (one creation each: a job, its parameters, who ran it, where its code
is); edges go from each input file to the run that read it and from each run to the files it
made (:mod:`radops.lineage.nodes`). Where the events come from is the caller's business:
:func:`build_graph` takes the two lookups it needs as callables (the embedded index today,
another lineage backend tomorrow).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from radops.lineage.nodes import Edge, FileNode, Node, RunNode

__all__ = [
    "CreationOf",
    "LineageGraph",
    "RunsUsing",
    "build_graph",
    "external_key",
    "file_key",
    "run_key",
]

Event = Mapping[str, Any]
CreationOf = Callable[[str], Event | None]
"""``creation_of(uid)``: the COMPLETE event that created ``uid``, or None."""
RunsUsing = Callable[[str], Sequence[Event]]
"""``runs_using(uid)``: the COMPLETE events of the runs that read ``uid``."""


@attrs.frozen
class LineageGraph:
    """Files and runs around ``root``, with every node placed in a column and a row.

    Columns follow the arrows (every edge goes from a lower column to a higher one); rows order
    the nodes of a column so that arrows cross little.
    """

    root: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    columns: Mapping[str, int]
    rows: Mapping[str, int]

    def _repr_html_(self) -> str:
        """Jupyter's display: a table of the runs and the HTML lineage picture."""
        from radops.notebook import graph_html

        return graph_html(self)

    @property
    def root_file(self) -> FileNode:
        """The node of the file the graph was drawn around."""
        node = self.node(self.root)
        if not isinstance(node, FileNode):
            raise TypeError(f"the root {self.root!r} is not a file")
        return node

    def node(self, key: str) -> Node:
        """The node with this key."""
        for node in self.nodes:
            if node.key == key:
                return node
        raise KeyError(key)

    @property
    def files(self) -> list[FileNode]:
        """The file nodes, in the order they were found."""
        return [node for node in self.nodes if isinstance(node, FileNode)]

    @property
    def runs(self) -> list[RunNode]:
        """The run nodes, in the order they were found."""
        return [node for node in self.nodes if isinstance(node, RunNode)]


def file_key(uid: str) -> str:
    """The node key of the lake file ``uid``."""
    return f"file:{uid}"


def external_key(name: str) -> str:
    """The node key of an input from outside the lake."""
    return f"external:{name}"


def run_key(run_id: str) -> str:
    """The node key of the run ``run_id``."""
    return f"run:{run_id}"


class _Builder:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.edges: dict[Edge, None] = {}  # ordered set

    def file(self, uid: str) -> str:
        key = file_key(uid)
        self.nodes.setdefault(key, FileNode(key=key, name=uid))
        return key

    def run(self, event: Event) -> tuple[bool, list[str], list[str]]:
        """Add the run of ``event``: (whether it is new, its input uids, its output uids)."""
        from radops.lineage.summary import summarize

        made = summarize(event)
        key = run_key(made.run_id)
        if key in self.nodes:
            return False, made.inputs, made.outputs
        code_text, code_note = made.code_description()
        self.nodes[key] = RunNode(
            key=key,
            run_id=made.run_id,
            job=made.job,
            event_time=made.event_time,
            originator=made.originator,
            parameters=made.parameters,
            code_url=made.code_url,
            code_warning=made.code_warning,
            radops_version=made.radops_version,
            deleted=made.deleted,
            code_text=code_text,
            code_note=code_note,
        )
        for uid in made.inputs:
            self.edges[Edge(self.file(uid), key)] = None
        for name in made.external_inputs:
            source = external_key(name)
            self.nodes.setdefault(source, FileNode(key=source, name=name, external=True))
            self.edges[Edge(source, key)] = None
        for uid in made.outputs:
            self.edges[Edge(key, self.file(uid))] = None
        return True, made.inputs, made.outputs


def _complete(event: Event | None) -> bool:
    return event is not None and event.get("eventType", "COMPLETE") == "COMPLETE"


def build_graph(
    uid: str,
    creation_of: CreationOf,
    runs_using: RunsUsing,
    *,
    depth: int = 1,
    downstream: bool = False,
) -> LineageGraph:
    """The lineage graph of ``uid``: ``depth`` creations upstream, and downstream if asked.

    A level is one creation: depth 1 is the run that made ``uid`` and its inputs, depth 2 adds
    the runs that made those inputs, and so on. With ``downstream``, the runs that read ``uid``
    and the files they made are added the same way, ``depth`` levels deep. Events other than
    COMPLETE are ignored.
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, not {depth}")
    builder = _Builder()
    root = builder.file(uid)

    expanded = {uid}
    frontier = [uid]
    for _ in range(depth):
        upstream: list[str] = []
        for each in frontier:
            event = creation_of(each)
            if event is None or not _complete(event):
                continue
            _, inputs, _ = builder.run(event)
            for parent in inputs:
                if parent not in expanded:
                    expanded.add(parent)
                    upstream.append(parent)
        frontier = upstream

    if downstream:
        expanded = {uid}
        frontier = [uid]
        for _ in range(depth):
            made: list[str] = []
            for each in frontier:
                for event in runs_using(each):
                    if not _complete(event):
                        continue
                    _, _, outputs = builder.run(event)
                    for child in outputs:
                        if child not in expanded:
                            expanded.add(child)
                            made.append(child)
            frontier = made

    nodes = tuple(builder.nodes.values())
    edges = tuple(builder.edges)
    columns = _columns(nodes, edges)
    return LineageGraph(
        root=root, nodes=nodes, edges=edges, columns=columns, rows=_rows(nodes, edges, columns)
    )


def _columns(nodes: Sequence[Node], edges: Sequence[Edge]) -> dict[str, int]:
    """Layering: a node's column is one more than its furthest predecessor's, at first.

    Lineage is acyclic, but a uid deleted and made again could close a loop: an edge that
    would do so is ignored for the layering.
    """
    parents: dict[str, list[str]] = {node.key: [] for node in nodes}
    for edge in edges:
        parents[edge.target].append(edge.source)
    columns: dict[str, int] = {}
    visiting: set[str] = set()  # the path being walked: a parent on it closes a loop
    for start in nodes:
        if start.key in columns:
            continue
        stack = [(start.key, iter(parents[start.key]))]
        visiting.add(start.key)
        while stack:  # depth first, without recursion: a chain may be thousands of levels
            key, pending = stack[-1]
            for parent in pending:
                if parent not in columns and parent not in visiting:
                    visiting.add(parent)
                    stack.append((parent, iter(parents[parent])))
                    break
            else:
                stack.pop()
                visiting.discard(key)
                columns[key] = max(
                    (columns[parent] + 1 for parent in parents[key] if parent in columns),
                    default=0,
                )
    # Then pull each node right, next to the first of its successors (rightmost first), so an
    # input used late (a second input of the last step, say) sits beside its run instead of
    # in the first column with a long arrow across the picture.
    children: dict[str, list[str]] = {node.key: [] for node in nodes}
    for edge in edges:
        if columns[edge.source] < columns[edge.target]:  # not an edge ignored above
            children[edge.source].append(edge.target)
    for key in sorted(columns, key=columns.__getitem__, reverse=True):
        if children[key]:
            columns[key] = max(columns[key], min(columns[c] for c in children[key]) - 1)
    return columns


def _rows(
    nodes: Sequence[Node], edges: Sequence[Edge], columns: Mapping[str, int]
) -> dict[str, int]:
    """Order each column by the mean row of its neighbours (two barycentre sweeps)."""
    by_column: dict[int, list[str]] = {}
    for node in nodes:
        by_column.setdefault(columns[node.key], []).append(node.key)
    neighbours: dict[str, list[str]] = {node.key: [] for node in nodes}
    for edge in edges:
        neighbours[edge.target].append(edge.source)
        neighbours[edge.source].append(edge.target)
    rows = {key: row for keys in by_column.values() for row, key in enumerate(keys)}
    order = sorted(by_column)
    for sweep in (order, list(reversed(order)), order):
        for index in sweep:
            keys = by_column[index]

            def centre(key: str, index: int = index) -> float:
                near = [rows[n] for n in neighbours[key] if columns[n] != index]
                return sum(near) / len(near) if near else float(rows[key])

            keys.sort(key=centre)  # stable: ties keep the order the nodes were found in
            for row, key in enumerate(keys):
                rows[key] = row
    return rows
