"""Owner-only local state: directories 0700 and files 0600, whatever the umask says.

Local state holds the lineage index, queued events and cached data; other users of the machine
have no business reading it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["create_private_file", "make_private_dir"]


def make_private_dir(directory: Path) -> None:
    """Create ``directory`` and its missing parents owner-only (0700); existing ones are kept."""
    missing: list[Path] = []
    current = directory
    while not current.is_dir() and current != current.parent:
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty and owner-only (0600) unless it exists.

    Done before ``sqlite3.connect``, SQLite then creates its -wal and -shm files with the same
    mode instead of 0644.
    """
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
