"""The nodes and edges of a lineage graph: plain data.

Apart from :class:`~radops.lineage.graph.LineageGraph`, which holds them: a graph displays
itself in Jupyter as its pictures (:mod:`radops.lineage.pictures`), and the pictures tell its
files from its runs by these classes. Beside the graph, graph and pictures would import each
other.
"""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["Edge", "FileNode", "Node", "RunNode"]


@attrs.frozen
class FileNode:
    """A file: a uid of the lake, or an input from outside it (a URL, a local file)."""

    key: str
    name: str
    external: bool = False

    @property
    def kind(self) -> str:
        """``"file"``, or ``"external"`` for inputs from outside the lake."""
        return "external" if self.external else "file"


@attrs.frozen
class RunNode:
    """One run of a creation method: what ran, with which parameters, by whom, when."""

    key: str
    run_id: str
    job: str
    event_time: str
    originator: str | None
    parameters: dict[str, Any]
    code_url: str | None  # a web link to the code, or None
    code_warning: str | None
    radops_version: str | None
    deleted: bool = False  # the run is a deletion (``radops datalake rm``)
    code_text: str = "not recorded"  # the code in one line (CreationSummary.code_description)
    code_note: str | None = None  # a note beside a link: it may not show the code that ran

    @property
    def kind(self) -> str:
        """Always ``"run"``."""
        return "run"


Node = FileNode | RunNode


@attrs.frozen
class Edge:
    """An arrow: input file -> run, or run -> output file (node keys)."""

    source: str
    target: str
