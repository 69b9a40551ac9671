"""The installed radops version, as objects and lineage events record it.

At the ground, so that the lake and ``file_creator`` read it without importing the package's
public API (``radops/__init__.py`` takes it from here).
"""

from __future__ import annotations

__all__ = ["__version__"]

try:
    from radops._version import __version__  # written by the build (hatch-vcs)
except ImportError:  # pragma: no cover - a source tree that was never installed
    __version__ = "0+unknown"
