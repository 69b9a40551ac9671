"""What ``radops datalake add`` adds: the uid of each source file, under an optional prefix,
and whether a source it moves may become the lake's file by a hard link (:func:`can_link`).

A directory source adds every regular file under it, named by its path relative to the
directory. Symlinks are never followed (a link inside the directory may lead anywhere on the
machine), and every uid is validated before anything is added, so a bad name adds nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from stat import S_ISREG
from urllib.parse import unquote, urlsplit

import attrs

from radops.errors import InvalidUidError
from radops.uids import validate_uid

__all__ = ["Planned", "can_link", "join_prefix", "plan_directory", "url_name"]


@attrs.frozen
class Planned:
    """One file to add, or one that is skipped and why."""

    path: Path
    uid: str | None
    skipped: str | None = None


def join_prefix(prefix: str, name: str) -> str:
    """``prefix`` + ``name`` as a validated uid; ``prefix`` is a folder (a '/' is added)."""
    return validate_uid(_as_folder(prefix) + name)


def _as_folder(prefix: str) -> str:
    """``prefix`` validated as a folder of uids, ending in '/'; '' for no prefix."""
    if not prefix:
        return ""
    try:
        validate_uid(prefix.removesuffix("/"))
    except InvalidUidError as exc:
        raise InvalidUidError(f"invalid --prefix: {exc}") from exc
    return prefix.removesuffix("/") + "/"


def url_name(url: str) -> str:
    """The last path segment of ``url``, the default name of what it downloads."""
    name = unquote(urlsplit(url).path).rstrip("/").rsplit("/", 1)[-1]
    if not name:
        raise InvalidUidError(f"{url} names no file: give the uid to add it as")
    return name


def plan_directory(source: Path, prefix: str = "") -> list[Planned]:
    """Every file under ``source`` with its uid, in path order; symlinks skipped.

    Raises:
        InvalidUidError: a file's relative path (with the prefix) is not a valid uid.
        OSError: a folder under ``source`` cannot be listed (nothing is skipped unsaid).
    """
    base = _as_folder(prefix)
    planned: list[Planned] = []
    # Each folder is read once; its entries' types come with the listing (no stat per file,
    # which was most of planning thousands of files). A stack, not recursion: no depth limit.
    folders: list[tuple[Path, str]] = [(source, "")]
    while folders:
        folder, rel = folders.pop()
        with os.scandir(folder) as listing:
            entries = list(listing)
        for entry in entries:
            path = folder / entry.name
            if entry.is_symlink():
                planned.append(Planned(path, None, "a symlink (never followed)"))
            elif entry.is_dir(follow_symlinks=False):
                folders.append((path, f"{rel}{entry.name}/"))
            elif entry.is_file(follow_symlinks=False):
                planned.append(Planned(path, validate_uid(f"{base}{rel}{entry.name}")))
            else:
                planned.append(Planned(path, None, "not a regular file"))
    return sorted(planned, key=lambda each: each.path.as_posix())


def can_link(source: Path, directory: Path) -> bool:
    """True if a moved ``source`` may become the temp file by a hard link, without a copy.

    Only a regular file with no other name, on the same file system: local storage makes its
    files read-only and back-dates their mtime, which would change a symlink's target or the
    file's other hard links, both outside local storage (and that file could later change the
    cached bytes through them).
    """
    try:
        status = os.lstat(source)
        return (
            S_ISREG(status.st_mode)
            and status.st_nlink == 1
            and status.st_dev == directory.stat().st_dev
        )
    except OSError:
        return False
