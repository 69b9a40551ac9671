"""Pictures of a lineage graph: Mermaid, Graphviz DOT and a self-contained HTML page.

``radops datalake lineage --format`` prints them; a graph's display in Jupyter frames the HTML
page (:mod:`radops.notebook`).

Every uid, job name and parameter is user data, read from the lake: characters that are not
printable are first written as escapes (:func:`radops.escape.escape`), so that nothing in them
acts on a terminal the picture is printed on, or reorders what a browser shows; then each
format escapes the text its own way. Links are only ever made to ``http``, ``https`` and
``file`` URLs.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from urllib.parse import quote

from radops.escape import escape
from radops.lineage.nodes import FileNode, Node, RunNode

if TYPE_CHECKING:
    from radops.lineage.graph import LineageGraph

__all__ = ["FORMATS", "dot", "html_page", "mermaid", "render", "safe_link"]

FORMATS = ("text", "mermaid", "dot", "html")
_LINK_SCHEMES = ("http", "https", "file")


def safe_link(url: str | None) -> str | None:
    """``url`` fit to be a link (http, https or file; quotes, spaces and brackets encoded)."""
    if not url or ":" not in url:
        return None
    if url.split(":", 1)[0].lower() not in _LINK_SCHEMES:
        return None  # javascript:, data: and the like are never linked
    return quote(url, safe=":/?#[]@!$&'()*+,;=%~")


def _time(text: str) -> str:
    """An ISO event time as ``YYYY-MM-DD HH:MM:SS UTC`` (as given if it is not ISO)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _lines(node: Node) -> list[str]:
    """The label of a node, line by line (escaped)."""
    if isinstance(node, RunNode):
        return [escape(node.job), escape(_time(node.event_time))]
    return [escape(node.name)]


def _details(node: Node) -> list[tuple[str, str]]:
    """What the details panel and tooltips say about a node (values escaped)."""
    return [(name, escape(value)) for name, value in _raw_details(node)]


def _raw_details(node: Node) -> list[tuple[str, str]]:
    if isinstance(node, FileNode):
        if node.external:
            return [("input from outside the lake", node.name)]
        return [("uid", node.name)]
    rows = [
        ("creation method", node.job),
        ("run id", node.run_id),
        ("originator", node.originator or "unknown"),
        ("time", _time(node.event_time)),
        ("parameters", json.dumps(node.parameters, sort_keys=True, ensure_ascii=False)),
        ("code", node.code_text),
    ]
    if node.code_note:
        rows.append(("code note", node.code_note))
    rows.append(("radops version", node.radops_version or "unknown"))
    if node.deleted:
        rows.append(("deletion", "this run deleted its outputs"))
    return rows


def _ids(graph: LineageGraph) -> dict[str, str]:
    """Short identifiers for the nodes, safe in every format: f0, x1, r2..."""
    prefix = {"file": "f", "external": "x", "run": "r"}
    return {node.key: f"{prefix[node.kind]}{i}" for i, node in enumerate(graph.nodes)}


# -- Mermaid ------------------------------------------------------------------------------------


def _mermaid_text(text: str, *, colons: bool = True) -> str:
    """``text`` for a quoted Mermaid label: anything but letters, digits and ``._-/,=+@():``
    becomes an entity code (``#quot;``, ``#60;``) that Mermaid draws as the character.

    ``colons=False`` encodes ``:`` too: Mermaid rewrites lines that look like a ``style`` or
    ``classDef`` statement (``style...:...#...;``) before it reads the labels.
    """
    keep = " ._-/,=+@():" if colons else " ._-/,=+@()"
    out = []
    for char in text:
        if char.isalnum() or char in keep:
            out.append(char)
        elif char == '"':
            out.append("#quot;")
        else:
            out.append(f"#{ord(char)};")
    return "".join(out)


def mermaid(graph: LineageGraph) -> str:
    """A Mermaid ``flowchart LR``: files rounded, creation methods as subroutines."""
    ids = _ids(graph)
    lines = ["flowchart LR"]
    for node in graph.nodes:
        lines_of = _lines(node)
        colons = not any("style" in line.lower() or "classdef" in line.lower() for line in lines_of)
        label = "<br/>".join(_mermaid_text(line, colons=colons) for line in lines_of)
        if isinstance(node, RunNode):
            lines.append(f'    {ids[node.key]}[["{label}"]]')
        else:
            lines.append(f'    {ids[node.key]}("{label}")')
    for edge in graph.edges:
        lines.append(f"    {ids[edge.source]} --> {ids[edge.target]}")
    for run in graph.runs:
        link = safe_link(run.code_url)
        if link:
            lines.append(f'    click {ids[run.key]} href "{link}" "open the code" _blank')
    lines += [
        "    classDef file fill:#e8f1fb,stroke:#2f6db3,color:#10243d",
        "    classDef external fill:#f4f4f4,stroke:#777777,stroke-dasharray:5 3,color:#333333",
        "    classDef run fill:#fff3dc,stroke:#b7791f,color:#3d2a05",
        "    classDef root stroke-width:3px",
    ]
    for kind in ("file", "external", "run"):
        members = [ids[node.key] for node in graph.nodes if node.kind == kind]
        if members:
            lines.append(f"    class {','.join(members)} {kind}")
    lines.append(f"    class {ids[graph.root]} root")
    return "\n".join(lines) + "\n"


# -- Graphviz DOT -------------------------------------------------------------------------------


def _dot_string(text: str) -> str:
    """``text`` as a double-quoted DOT string (backslashes doubled, so no ``\\N``-style
    escape of Graphviz applies to user data)."""
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif char == "\n":
            out.append("\\n")
        elif ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F:
            out.append(" ")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _dot_label(lines: list[str]) -> str:
    """Several lines as one DOT label, each line escaped, joined by DOT's ``\\n``."""
    return '"' + "\\n".join(_dot_string(line)[1:-1] for line in lines) + '"'


def dot(graph: LineageGraph) -> str:
    """A Graphviz digraph (``rankdir=LR``): files as notes, creation methods as boxes."""
    ids = _ids(graph)
    lines = [
        "digraph lineage {",
        "    rankdir=LR;",
        '    node [fontname="Helvetica,Arial,sans-serif", fontsize=11, style=filled];',
        '    edge [color="#555555"];',
    ]
    for node in graph.nodes:
        tooltip = "\n".join(f"{name}: {value}" for name, value in _details(node))
        attrs = {
            "label": _dot_label(_lines(node)),
            "tooltip": _dot_string(tooltip),
        }
        if isinstance(node, RunNode):
            attrs.update(shape="box", fillcolor='"#fff3dc"', color='"#b7791f"')
            link = safe_link(node.code_url)
            if link:
                attrs.update(href=_dot_string(link), target='"_blank"')
        elif node.external:
            attrs.update(shape="note", fillcolor='"#f4f4f4"', color='"#777777"')
            attrs["style"] = '"filled,dashed"'
        else:
            attrs.update(shape="note", fillcolor='"#e8f1fb"', color='"#2f6db3"')
        if node.key == graph.root:
            attrs["penwidth"] = "3"
        body = ", ".join(f"{name}={value}" for name, value in attrs.items())
        lines.append(f"    {ids[node.key]} [{body}];")
    for edge in graph.edges:
        lines.append(f"    {ids[edge.source]} -> {ids[edge.target]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- HTML ---------------------------------------------------------------------------------------


def _script_json(value: object) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&``.

    They can only occur inside JSON strings, where ``\\u003c`` means the same character, so
    no uid or parameter can close the script element (``</script>``) or open a comment.
    """
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    for char in "<>&\u2028\u2029":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def _page_data(graph: LineageGraph) -> dict[str, object]:
    ids = _ids(graph)
    nodes = []
    for node in graph.nodes:
        details = _details(node)
        nodes.append(
            {
                "id": ids[node.key],
                "kind": node.kind,
                "root": node.key == graph.root,
                "lines": _lines(node),
                "details": details,
                "tooltip": "\n".join(f"{name}: {value}" for name, value in details),
                "link": safe_link(node.code_url) if isinstance(node, RunNode) else None,
                "column": graph.columns[node.key],
                "row": graph.rows[node.key],
            }
        )
    edges = [[ids[edge.source], ids[edge.target]] for edge in graph.edges]
    return {"root": escape(graph.root_file.name), "nodes": nodes, "edges": edges}


_CSS = """
:root { color-scheme: light; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica,
  Arial, sans-serif; color: #1d2733; background: #ffffff; }
header { padding: 12px 20px; border-bottom: 1px solid #d9dee5; }
h1 { font-size: 18px; margin: 0 0 6px; }
h1 code { font-size: 17px; }
.legend { margin: 0; color: #4a5563; }
.key { display: inline-block; padding: 0 8px; margin-right: 6px; border: 1.5px solid; }
.key.file { background: #e8f1fb; border-color: #2f6db3; border-radius: 8px; }
.key.external { background: #f4f4f4; border-color: #777777; border-style: dashed;
  border-radius: 8px; }
.key.run { background: #fff3dc; border-color: #b7791f; border-radius: 2px; }
main { display: flex; flex-wrap: wrap; align-items: flex-start; gap: 16px; padding: 16px 20px; }
#canvas { flex: 0 1 auto; max-width: 100%; overflow: auto; }
#details { flex: 1 0 260px; max-width: 480px; border: 1px solid #d9dee5; border-radius: 6px;
  padding: 10px 14px; background: #fafbfc; overflow-wrap: anywhere; }
#details h2 { font-size: 15px; margin: 0 0 8px; }
#details dl { margin: 0; }
#details dt { font-weight: 600; color: #4a5563; margin-top: 6px; }
#details dd { margin: 0; font-family: ui-monospace, Menlo, Consolas, monospace;
  font-size: 12.5px; white-space: pre-wrap; }
.hint { color: #6b7685; margin: 0; }
svg text { font-size: 13px; fill: #1d2733; }
svg text.sub { font-size: 11px; fill: #5d4613; }
g.node { cursor: pointer; }
g.node:focus { outline: none; }
g.node .shape { stroke-width: 1.5; }
g.node.file .shape { fill: #e8f1fb; stroke: #2f6db3; }
g.node.external .shape { fill: #f4f4f4; stroke: #777777; stroke-dasharray: 5 3; }
g.node.run .shape { fill: #fff3dc; stroke: #b7791f; }
g.node.run .bar { stroke: #b7791f; stroke-width: 1.5; }
g.node.root .shape { stroke-width: 3.5; }
g.node.selected .shape, g.node:focus .shape { stroke: #c2185b; }
a.code-link text { fill: #1a5fb4; text-decoration: underline; font-size: 11px; }
path.edge { fill: none; stroke: #6b7685; stroke-width: 1.5; }
path.arrowhead { fill: #6b7685; }
""".strip()

_JS = r"""
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("lineage-data").textContent);
  var svg = document.getElementById("graph");
  var details = document.getElementById("details");
  var PAD = 12, LINE = 17, GAP_X = 60, GAP_Y = 24, MARGIN = 12, MIN_WIDTH = 90;

  function make(name, attributes, parent) {
    var element = document.createElementNS(NS, name);
    Object.keys(attributes).forEach(function (key) {
      element.setAttribute(key, String(attributes[key]));
    });
    if (parent) { parent.appendChild(element); }
    return element;
  }

  function safeLink(url) {
    return typeof url === "string" && /^(https?|file):/i.test(url) ? url : null;
  }

  var defs = make("defs", {}, svg);
  var marker = make("marker", {id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: "auto"}, defs);
  make("path", {d: "M0,0 L10,5 L0,10 z", "class": "arrowhead"}, marker);
  var edgeLayer = make("g", {"class": "edges"}, svg);
  var nodeLayer = make("g", {"class": "nodes"}, svg);

  var boxes = {};
  var selected = null;

  function show(box) {
    if (selected) { selected.g.classList.remove("selected"); }
    selected = box;
    box.g.classList.add("selected");
    var node = box.node;
    var heading = document.createElement("h2");
    heading.textContent = node.kind === "run" ? "Run of a creation method" :
      node.kind === "external" ? "Input from outside the lake" : "File in the lake";
    var list = document.createElement("dl");
    node.details.forEach(function (pair) {
      var term = document.createElement("dt");
      term.textContent = pair[0];
      var value = document.createElement("dd");
      value.textContent = pair[1];
      value.setAttribute("data-key", pair[0]);
      list.appendChild(term);
      list.appendChild(value);
    });
    details.replaceChildren(heading, list);
    var link = safeLink(node.link);
    if (link) {
      var anchor = document.createElement("a");
      anchor.href = link;
      anchor.target = "_blank";
      anchor.rel = "noopener noreferrer";
      anchor.textContent = "open the code";
      var paragraph = document.createElement("p");
      paragraph.appendChild(anchor);
      details.appendChild(paragraph);
    }
  }

  data.nodes.forEach(function (node) {
    var g = make("g", {"class": "node " + node.kind + (node.root ? " root" : ""),
      "data-id": node.id, tabindex: 0, role: "button"}, nodeLayer);
    make("title", {}, g).textContent = node.tooltip;
    var shape = make("rect", {"class": "shape"}, g);
    var texts = node.lines.map(function (line, i) {
      var text = make("text", {"class": i ? "sub" : "main", "text-anchor": "middle"}, g);
      text.textContent = line;
      return text;
    });
    var link = node.kind === "run" ? safeLink(node.link) : null;
    if (link) {
      var anchor = make("a", {href: link, target: "_blank", rel: "noopener noreferrer",
        "class": "code-link"}, g);
      var label = make("text", {"text-anchor": "middle"}, anchor);
      label.textContent = "code \u2197";
      texts.push(label);
    }
    var width = MIN_WIDTH;
    texts.forEach(function (text) {
      width = Math.max(width, text.getComputedTextLength() + 2 * PAD + (link ? 12 : 0));
    });
    var box = {node: node, g: g, shape: shape, texts: texts, width: Math.ceil(width),
      height: texts.length * LINE + 14};
    g.setAttribute("data-width", String(box.width));
    g.addEventListener("click", function () { show(box); });
    g.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); show(box); }
    });
    boxes[node.id] = box;
  });

  var columns = [];
  data.nodes.forEach(function (node) {
    (columns[node.column] = columns[node.column] || []).push(boxes[node.id]);
  });
  var x = MARGIN, tallest = 0;
  columns.forEach(function (column) {
    column.sort(function (a, b) { return a.node.row - b.node.row; });
    column.x = x;
    column.width = Math.max.apply(null, column.map(function (box) { return box.width; }));
    column.height = column.reduce(function (sum, box) { return sum + box.height; }, 0) +
      GAP_Y * (column.length - 1);
    tallest = Math.max(tallest, column.height);
    x += column.width + GAP_X;
  });
  columns.forEach(function (column) {
    var y = MARGIN + (tallest - column.height) / 2;
    column.forEach(function (box) {
      box.x = column.x + (column.width - box.width) / 2;
      box.y = y;
      y += box.height + GAP_Y;
      box.g.setAttribute("transform", "translate(" + box.x + "," + box.y + ")");
      box.shape.setAttribute("width", box.width);
      box.shape.setAttribute("height", box.height);
      var run = box.node.kind === "run";
      box.shape.setAttribute("rx", run ? 2 : 10);
      if (run) {
        [7, box.width - 7].forEach(function (at) {
          make("line", {"class": "bar", x1: at, x2: at, y1: 0, y2: box.height}, box.g);
        });
      }
      box.texts.forEach(function (text, i) {
        text.setAttribute("x", box.width / 2);
        text.setAttribute("y", 7 + LINE * (i + 1) - 4);
      });
    });
  });

  data.edges.forEach(function (edge) {
    var from = boxes[edge[0]], to = boxes[edge[1]];
    var x1 = from.x + from.width, y1 = from.y + from.height / 2;
    var x2 = to.x - 2, y2 = to.y + to.height / 2;
    var bend = Math.max(20, (x2 - x1) / 2);
    make("path", {"class": "edge", "data-from": edge[0], "data-to": edge[1],
      "marker-end": "url(#arrow)",
      d: "M" + x1 + "," + y1 + " C" + (x1 + bend) + "," + y1 + " " + (x2 - bend) + "," + y2 +
        " " + x2 + "," + y2}, edgeLayer);
  });

  svg.setAttribute("width", Math.max(x - GAP_X + MARGIN, 200));
  svg.setAttribute("height", tallest + 2 * MARGIN);
  svg.setAttribute("data-rendered", String(data.nodes.length));
}());
""".strip()


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def html_page(graph: LineageGraph) -> str:
    """One self-contained HTML page: inline CSS, JS and data; it loads nothing.

    Its Content-Security-Policy forbids every request and allows only its own style and
    script (by hash), so even a page edited afterwards cannot fetch anything.
    """
    root = html.escape(escape(graph.root_file.name))
    policy = (
        f"default-src 'none'; style-src {_csp_hash(_CSS)}; script-src {_csp_hash(_JS)}; "
        "base-uri 'none'; form-action 'none'"
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{html.escape(policy)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Lineage of {root}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>Lineage of <code>{root}</code></h1>
<p class="legend"><span class="key file">file</span><span class="key external">input from \
outside the lake</span><span class="key run">creation method (one run)</span> \
Hover for details, click for the panel; a run's &#8220;code&#8221; opens its code.</p>
</header>
<main>
<div id="canvas"><svg id="graph" xmlns="http://www.w3.org/2000/svg" role="img" \
aria-label="lineage graph"></svg></div>
<aside id="details"><p class="hint">Click a file or a creation method to see its \
details.</p></aside>
</main>
<noscript><p>This picture is drawn by JavaScript; \
<code>radops datalake lineage --format mermaid</code> gives it as text.</p></noscript>
<script type="application/json" id="lineage-data">{_script_json(_page_data(graph))}</script>
<script>{_JS}</script>
</body>
</html>
"""


_RENDERERS: dict[str, Callable[[LineageGraph], str]] = {
    "mermaid": mermaid,
    "dot": dot,
    "html": html_page,
}


def render(graph: LineageGraph, fmt: str) -> str:
    """The picture of ``graph`` in ``fmt`` (``mermaid``, ``dot`` or ``html``)."""
    try:
        renderer = _RENDERERS[fmt]
    except KeyError:
        raise ValueError(f"no picture format {fmt!r}; use one of {FORMATS}") from None
    return renderer(graph)
