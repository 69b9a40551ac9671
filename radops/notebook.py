"""How files and lineage graphs show in Jupyter: the HTML of their ``_repr_html_``.

A :class:`~radops.file.File` shows as a small table (uid, size, sha256, when and by which run
it was made, whether a copy is local); a :class:`~radops.lineage.graph.LineageGraph` (from
:meth:`File.lineage <radops.file.File.lineage>`) as a table of its runs followed by the HTML
lineage picture of ``radops datalake lineage --format html``, in a sandboxed ``iframe`` whose
document is inline (``srcdoc``). Nothing loads from the network: the picture's own
Content-Security-Policy forbids every request. Every uid, job name and value is escaped: it is
data read from the lake. A notebook that does not run scripts or frames (an untrusted one, a
static viewer) still shows the tables.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from radops.file import File
    from radops.lineage.graph import LineageGraph

__all__ = ["file_html", "graph_html"]

_STYLE = "border-collapse:collapse;font-family:monospace;font-size:12px"
_CELL = "text-align:left;padding:2px 8px;border-bottom:1px solid #ddd;vertical-align:top"


def _text(value: object) -> str:
    """``value`` as HTML text: non-printable characters written as escapes, then HTML-escaped."""
    from radops.escape import escape

    return html.escape(escape(str(value)), quote=True)


def _table(rows: Iterable[tuple[str, object]], caption: str) -> str:
    body = "".join(
        f'<tr><th style="{_CELL}">{_text(name)}</th><td style="{_CELL}">{_text(value)}</td></tr>'
        for name, value in rows
    )
    return (
        f'<table style="{_STYLE}"><caption style="text-align:left;font-weight:bold">'
        f"{_text(caption)}</caption>{body}</table>"
    )


def file_html(file: File) -> str:
    """A table of what is known about ``file`` (a HEAD of the lake and its creation record).

    Never raises: a file that is not in the lake, or a lake that cannot be reached, shows as
    its uid and the reason.
    """
    rows: list[tuple[str, object]] = [("uid", file.uid)]
    try:
        info = file.info
    except Exception as exc:  # noqa: BLE001 - a display never fails: it shows the reason
        rows.append(("lake", file.lake.store.url if _has_lake(file) else "?"))
        rows.append(("status", f"{type(exc).__name__}: {exc}"))
        return _table(rows, "radops File")
    rows.append(("lake", info.lake))
    rows.append(("size", f"{info.size:,} bytes"))
    if info.sha256:
        rows.append(("sha256", info.sha256))
    if info.created is not None:
        rows.append(("created", info.created.strftime("%Y-%m-%d %H:%M:%S %Z").strip()))
    creation = info.creation
    if creation:
        from radops.lineage.events import function_of, radops_facet

        facet = radops_facet(creation)
        rows.append(("made by", function_of(creation)))
        rows.append(("run", creation.get("run", {}).get("runId", "")))
        if facet.get("email"):
            rows.append(("originator", facet["email"]))
        if facet.get("parameters"):
            rows.append(("parameters", _short(facet["parameters"])))
        if facet.get("inputs"):
            rows.append(("inputs", ", ".join(map(str, facet["inputs"]))))
    local = "yes" if info.local else "no"
    rows.append(("local copy", local if info.remote else f"{local} (not in the lake)"))
    return _table(rows, "radops File")


def _has_lake(file: File) -> bool:
    try:
        file.lake  # noqa: B018 - the default lake may not be configurable
    except Exception:  # noqa: BLE001 - a display never fails
        return False
    return True


def _short(value: Any, limit: int = 200) -> str:
    import json

    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def graph_html(graph: LineageGraph) -> str:
    """The runs of ``graph`` as a table, then its lineage picture in a sandboxed frame."""
    from radops.lineage.nodes import RunNode
    from radops.lineage.pictures import html_page

    names = {node.key: node.name for node in graph.files}
    rows = []
    for run in graph.runs:
        inputs = [names[e.source] for e in graph.edges if e.target == run.key]
        outputs = [names[e.target] for e in graph.edges if e.source == run.key]
        rows.append((run, inputs, outputs))
    header = "".join(
        f'<th style="{_CELL}">{name}</th>' for name in ("run", "time", "inputs", "outputs")
    )
    body = "".join(
        f'<tr><td style="{_CELL}">{_text(run.job)}</td>'
        f'<td style="{_CELL}">{_text(run.event_time)}</td>'
        f'<td style="{_CELL}">{_text(", ".join(inputs))}</td>'
        f'<td style="{_CELL}">{_text(", ".join(outputs))}</td></tr>'
        for run, inputs, outputs in rows
        if isinstance(run, RunNode)
    )
    if not rows:
        body = f'<tr><td style="{_CELL}" colspan="4">no recorded creation</td></tr>'
    table = (
        f'<table style="{_STYLE}"><caption style="text-align:left;font-weight:bold">'
        f"Lineage of {_text(graph.root_file.name)}</caption><tr>{header}</tr>{body}</table>"
    )
    deepest = max(graph.rows.values(), default=0) + 1
    height = min(800, max(260, 110 * deepest + 150))
    # The page is a whole document: in a frame of its own, its style and script touch nothing
    # of the notebook, and without allow-same-origin it cannot reach the notebook's page.
    frame = (
        f'<iframe srcdoc="{html.escape(html_page(graph), quote=True)}" '
        f'sandbox="allow-scripts allow-popups allow-popups-to-escape-sandbox" '
        f'style="width:100%;height:{height}px;border:1px solid #ddd" '
        f'title="lineage of {_text(graph.root_file.name)}"></iframe>'
    )
    return f"<div>{table}{frame}</div>"
