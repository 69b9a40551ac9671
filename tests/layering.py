"""The import graph of a package, read from its source, and what breaks its layering.

Every ``import`` and ``from ... import`` of the package counts, at module level and inside
functions and classes alike: an import deferred for start-up time is still a dependency. Only
those under ``if TYPE_CHECKING:`` do not (they never run). Nothing is imported: the files are
parsed with :mod:`ast`.

An import names one module of the package:

- ``import pkg.a.b`` and ``from pkg.a.b import name``: ``pkg.a.b`` (Python runs the parent
  packages' ``__init__`` first, but that is the packages' business, not a choice of the
  importer: it is not counted);
- ``from pkg.a import b`` where ``pkg/a/b.py`` (or ``pkg/a/b/``) exists: ``pkg.a.b``;
- ``from pkg import name`` where ``name`` is no submodule: ``pkg``, its ``__init__``;
- relative imports are resolved against the importing module's package.

A module with layers assigned (:func:`layer_problems`) may import its own layer and those below.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import attrs

__all__ = ["Import", "cycles", "import_graph", "layer_of", "layer_problems", "modules"]


@attrs.frozen
class Import:
    """One import of a module of the package, where it is written."""

    target: str  # the module imported
    path: Path  # the importing file, relative to the package's parent directory
    line: int

    def where(self) -> str:
        return f"{self.path.as_posix()}:{self.line}"


def modules(root: Path) -> dict[str, Path]:
    """The modules of the package in the directory ``root``, by dotted name."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def import_graph(root: Path) -> dict[str, list[Import]]:
    """Each module of the package in ``root`` with the imports of the package it makes."""
    known = modules(root)
    graph = {}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found = dict.fromkeys(_imports(tree.body, package, root.name, known))  # once each
        graph[name] = [
            Import(target, path.relative_to(root.parent), line)
            for target, line in found
            if target != name
        ]
    return graph


def _imports(
    body: Sequence[ast.stmt], package: str, top: str, known: Mapping[str, Path]
) -> Iterator[tuple[str, int]]:
    for node in _run_statements(body):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _in_package(alias.name, top):
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            if not _in_package(base, top):
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield (submodule if submodule in known else base), node.lineno


def _run_statements(body: Sequence[ast.stmt]) -> Iterator[ast.AST]:
    """Every node under ``body``, but the bodies of ``if TYPE_CHECKING:`` (their ``else``
    runs, and counts)."""
    for statement in body:
        yield from _walk(statement)


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    yield node
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        for child in node.orelse:
            yield from _walk(child)
        return
    for child in ast.iter_child_nodes(node):
        yield from _walk(child)


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _in_package(name: str, top: str) -> bool:
    return name == top or name.startswith(top + ".")


def cycles(graph: Mapping[str, Sequence[Import]]) -> list[list[str]]:
    """The import cycles of ``graph``, each as a list of modules whose first and last are the
    same: in every group of modules that reach each other, the shortest loop through each
    member (a loop found from several of its members once), sorted."""
    found = set()
    for group in _strongly_connected(graph):
        if len(group) == 1:
            continue
        for member in group:
            loop = _shortest_loop(graph, member, group)[:-1]
            first = loop.index(min(loop))
            found.add(tuple(loop[first:] + loop[:first]))
    return sorted([*loop, loop[0]] for loop in found)


def _strongly_connected(graph: Mapping[str, Sequence[Import]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (a deep package must not hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(_targets(graph, start)))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(_targets(graph, target))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.add(member)
                        if member == node:
                            break
                    groups.append(group)
    return groups


def _targets(graph: Mapping[str, Sequence[Import]], name: str) -> list[str]:
    return sorted({each.target for each in graph.get(name, ())})


def _shortest_loop(graph: Mapping[str, Sequence[Import]], start: str, group: set[str]) -> list[str]:
    """Breadth first from ``start`` back to it, inside ``group``."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in _targets(graph, node):
                if target not in group:
                    continue
                if target == start:
                    loop = [start, node]
                    while loop[-1] != start:
                        loop.append(came_from[loop[-1]])
                    return loop[::-1]
                if target not in came_from:
                    came_from[target] = node
                    following.append(target)
        frontier = following
    raise AssertionError(f"{start} is in a cycle that does not come back to it")


def layer_of(module: str, layers: Mapping[str, Sequence[str]], top: str) -> str | None:
    """The layer of ``module``: that of the most specific entry naming it, or None.

    An entry is a path relative to the package directory: ``x.py`` is the module ``top.x``,
    ``x/`` the package ``top.x`` and everything in it, ``__init__.py`` the package ``top``.
    """
    best: tuple[int, str] | None = None
    for layer, entries in layers.items():
        for entry in entries:
            length = _match(module, entry, top)
            if length is not None and (best is None or length > best[0]):
                best = (length, layer)
    return best[1] if best else None


def _match(module: str, entry: str, top: str) -> int | None:
    """How specific ``entry`` is if it names ``module`` (longer: more), else None."""
    if entry.endswith("/"):
        package = ".".join([top, *entry.rstrip("/").split("/")])
        named = module == package or module.startswith(package + ".")
        return len(package) if named else None
    parts = entry.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts.pop()
    name = ".".join([top, *parts])
    return len(name) + 1 if module == name else None  # a file beats its folder


def layer_problems(
    graph: Mapping[str, Sequence[Import]],
    layers: Mapping[str, Sequence[str]],
    top: str,
    importers: str | None = None,
) -> list[str]:
    """Imports of a higher layer than the importer's, and modules without a layer, one line
    each; only those of the modules of the layer ``importers``, if given. ``layers`` lists the
    layers from the bottom up."""
    rank = {layer: n for n, layer in enumerate(layers)}
    problems = []
    for name in sorted(graph):
        own = layer_of(name, layers, top)
        if importers is not None and own != importers:
            continue
        if own is None:
            problems.append(f"{name} is in no layer: add it to one")
            continue
        for each in graph[name]:
            theirs = layer_of(each.target, layers, top)
            if theirs is None:
                problems.append(f"{each.where()}: {name} imports {each.target}, in no layer")
            elif rank[theirs] > rank[own]:
                problems.append(
                    f"{each.where()}: {name} ({own}) imports {each.target} ({theirs}), "
                    "a higher layer"
                )
    return problems
