"""radops/ imports one way: no import cycle, and no module imports a layer above its own.

The layers, from the bottom up, are those of docs/development.md ("Layers"); a test checks that
the page and :data:`LAYERS` agree. Imports inside functions count (see :mod:`tests.layering`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

import radops
from tests.layering import Import, cycles, import_graph, layer_of, layer_problems, modules

RADOPS = Path(radops.__file__).parent
DEVELOPMENT = Path(__file__).parents[1] / "docs" / "development.md"

#: Each layer may import its own modules and those of the layers before it. Entries are paths
#: under radops/: ``x.py`` a module, ``x/`` a package and all it holds; the most specific entry
#: naming a module decides (``lineage/naming.py`` is ground, the rest of ``lineage/`` is not).
LAYERS: dict[str, tuple[str, ...]] = {
    # Helpers everything may use. The names of lineage (pure) are here because the stores name
    # their datasets by them; the call context is not: the lake has no business with steps.
    "ground": (
        "_version.py",
        "canonical.py",
        "durable.py",
        "errors.py",
        "escape.py",
        "integrity.py",
        "lineage/naming.py",
        "logs.py",
        "objects.py",
        "private.py",
        "redact.py",
        "settings.py",
        "uids.py",
        "version.py",
        "writers.py",
    ),
    "stores and local storage": ("cache.py", "stores/"),
    "lineage": ("lineage/", "notebook.py"),
    "lake": ("bulk.py", "lake.py", "repair.py", "sources.py", "urls.py", "verify.py"),
    "File and steps": ("call_context.py", "creator.py", "file.py", "skipping.py"),
    "CLI and public API": ("__init__.py", "__main__.py", "cli/", "data_lake/"),
}
GROUND = "ground"


def check_no_cycle(graph: Mapping[str, Sequence[Import]]) -> None:
    """Fail naming each import cycle of ``graph`` in one line: ``a -> b -> a``."""
    found = cycles(graph)
    if found:
        pytest.fail("import cycles:\n" + "\n".join(" -> ".join(loop) for loop in found), False)


def check_layers(
    graph: Mapping[str, Sequence[Import]],
    layers: Mapping[str, Sequence[str]],
    top: str,
    importers: str | None = None,
) -> None:
    """Fail naming each import of a higher layer (made by a module of ``importers``, or by
    any), one line each with where it is written."""
    problems = layer_problems(graph, layers, top, importers)
    if problems:
        pytest.fail("imports against the layers:\n" + "\n".join(problems), False)


def test_radops_has_no_import_cycle() -> None:
    """No module of radops imports itself through others, imports inside functions included."""
    check_no_cycle(import_graph(RADOPS))


def test_the_ground_imports_nothing_above_it() -> None:
    """settings, uids, errors, the hashing helpers and the other ground modules import only
    each other."""
    check_layers(import_graph(RADOPS), LAYERS, "radops", importers=GROUND)


def test_no_module_imports_a_layer_above_its_own() -> None:
    """Stores import the ground; lineage, stores; the lake, lineage; File and steps, the lake;
    the CLI and the public API, everything."""
    check_layers(import_graph(RADOPS), LAYERS, "radops")


def test_every_module_is_in_a_layer() -> None:
    """A new module of radops is placed in a layer (in this test and in the docs) when it is
    added."""
    names = set(modules(RADOPS)) | {"radops._version"}  # written by the build, if at all
    assert [name for name in sorted(names) if layer_of(name, LAYERS, "radops") is None] == []


def test_the_docs_show_the_layers_of_this_test() -> None:
    """docs/development.md's table of layers lists the layers of :data:`LAYERS`, top down,
    with the same modules."""
    text = DEVELOPMENT.read_text(encoding="utf-8")
    section = text.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]  # no header
    shown = {}
    for row in rows:
        layer, names = (cell.strip() for cell in row.strip("|").split("|")[:2])
        shown[layer] = tuple(sorted(re.findall(r"`([^`]+)`", names)))
    assert list(shown) == list(reversed(LAYERS))
    assert shown == {layer: tuple(sorted(entries)) for layer, entries in LAYERS.items()}


# -- the checker itself, on packages written for the purpose ---------------------------------


def _package(root: Path, files: Mapping[str, str]) -> Path:
    """The package ``pkg`` under ``root``, with these files (path under pkg/: source)."""
    package = root / "pkg"
    for name, source in {"__init__.py": "", **files}.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return package


def test_a_planted_cycle_fails_naming_its_modules_in_one_line(tmp_path: Path) -> None:
    """A cycle closed by an import inside a function fails the check, named a -> b -> c -> a."""
    package = _package(
        tmp_path,
        {
            "a.py": "from pkg.b import thing\n",
            "b.py": "def late():\n    from pkg import c\n",
            "c.py": "import pkg.a\n",
            "d.py": "from pkg.a import x\n",  # reaches the cycle, is not in it
        },
    )
    with pytest.raises(pytest.fail.Exception, match=r"\npkg\.a -> pkg\.b -> pkg\.c -> pkg\.a$"):
        check_no_cycle(import_graph(package))


def test_a_ground_module_importing_upward_fails_naming_the_import(tmp_path: Path) -> None:
    """settings importing the lake, even inside a function, fails the ground's check, with
    the file and line of the import."""
    package = _package(
        tmp_path,
        {
            "settings.py": "import os\n\ndef load():\n    from .lake import Lake\n",
            "lake.py": "from pkg.settings import load\n",
        },
    )
    layers = {"ground": ("settings.py",), "lake": ("lake.py",)}
    expected = "pkg/settings.py:4: pkg.settings (ground) imports pkg.lake (lake)"
    with pytest.raises(pytest.fail.Exception, match=re.escape(expected)):
        check_layers(import_graph(package), layers, "pkg", importers="ground")


def test_type_checking_imports_do_not_count_and_the_others_resolve(tmp_path: Path) -> None:
    """Imports under ``if TYPE_CHECKING:`` are left out (not those of its ``else``); relative
    imports, submodules named in ``from ... import`` and package ``__init__`` resolve."""
    package = _package(
        tmp_path,
        {
            "sub/__init__.py": "from .inner import x\n",
            "sub/inner.py": "from .. import name_in_init\nfrom . import sibling\n",
            "sub/sibling.py": "",
            "top.py": (
                "from typing import TYPE_CHECKING\n"
                "import typing\n"
                "if TYPE_CHECKING:\n    from pkg import hidden\n"
                "if typing.TYPE_CHECKING:\n    import pkg.hidden\n"
                "else:\n    from pkg.sub import inner\n"
                "class Lazy:\n    def load(self):\n        from pkg import sub, json\n"
            ),
            "hidden.py": "",
        },
    )
    graph = import_graph(package)
    targets = {name: sorted({each.target for each in found}) for name, found in graph.items()}
    assert targets == {
        "pkg": [],
        "pkg.hidden": [],
        "pkg.sub": ["pkg.sub.inner"],
        "pkg.sub.inner": ["pkg", "pkg.sub.sibling"],
        "pkg.sub.sibling": [],
        "pkg.top": ["pkg", "pkg.sub", "pkg.sub.inner"],
    }


def test_the_most_specific_entry_decides_a_layer() -> None:
    """``lineage/naming.py`` in one layer wins over ``lineage/`` in another; ``__init__.py`` is
    the package itself."""
    layers = {"low": ("lineage/naming.py", "a.py"), "high": ("lineage/", "__init__.py")}
    assert layer_of("pkg.lineage.naming", layers, "pkg") == "low"
    assert layer_of("pkg.lineage.graph", layers, "pkg") == "high"
    assert layer_of("pkg.lineage", layers, "pkg") == "high"
    assert layer_of("pkg", layers, "pkg") == "high"
    assert layer_of("pkg.a", layers, "pkg") == "low"
    assert layer_of("pkg.b", layers, "pkg") is None
