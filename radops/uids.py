"""UIDs: the names of data-lake files, and the one place that turns them into paths.

A uid is a relative key such as ``raw/2024/data.csv``: ``/`` makes folders, and every other rule
exists so that a uid can never address anything outside local storage or the lake prefix, and
names the same file on S3, on a directory remote and in local storage.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from radops.errors import InvalidUidError, LocalStorageError

__all__ = [
    "MAX_UID_BYTES",
    "RESERVED_PREFIX",
    "safe_path",
    "shorten",
    "uid_problem",
    "validate_uid",
]

MAX_UID_BYTES = 1024
MAX_SEGMENT_BYTES = 255  # the longest file name ext4, xfs and most other file systems accept
RESERVED_PREFIX = ".radops"  # the lake's own records live under this first segment

# C0 and C1 control characters and DEL: invisible in listings, and some terminals act on them.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def validate_uid(uid: object) -> str:
    """Return ``uid`` if it is a valid uid, else raise :class:`InvalidUidError` saying why.

    Raises:
        InvalidUidError: not a string, empty, absolute, ``.``/``..``/empty segments,
            backslashes, control characters, ``#``, over 1024 bytes in UTF-8, a segment over
            255 bytes, or the reserved first segment ``.radops``.
    """
    if not isinstance(uid, str):
        raise InvalidUidError(f"a uid must be a string, not {type(uid).__name__}")
    if type(uid) is str and uid in _seen_valid:  # a str subclass could compare equal to one
        return uid
    problem = uid_problem(uid)
    if problem:
        raise InvalidUidError(f"invalid uid {shorten(uid)}: {problem}")
    if type(uid) is str and len(_seen_valid) < _SEEN_VALID_MAX:
        _seen_valid.add(uid)
    return uid


# uids already found valid: every read checks its uid before it becomes a path, and a cached
# read takes a few microseconds (benchmark case 4), of which the checks were a sixth.
_SEEN_VALID_MAX = 4096
_seen_valid: set[str] = set()


SHOWN_CHARACTERS = 60


def shorten(text: str) -> str:
    """``text`` quoted for a message, cut to its first 60 characters and its length if longer.

    A pasted or generated uid of thousands of characters would otherwise fill the terminal and
    hide what the message says about it.
    """
    if len(text) <= SHOWN_CHARACTERS:
        return repr(text)
    quoted = repr(text[:SHOWN_CHARACTERS])
    return f"{quoted[:-1]}…{quoted[-1]} ({len(text)} characters)"


def uid_problem(uid: str) -> str | None:
    """Why ``uid`` is not a valid uid (a few words), or None if it is one.

    For keys read from the lake, which anyone with write access to it may have made: a
    lake-wide command skips (and names) the keys this rejects instead of stopping at them.
    It runs on every key a listing returns, so the common checks come first and are cheap.
    """
    if not uid:
        return "it is empty"
    try:
        encoded = uid.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not valid Unicode (lone surrogate)"
    if len(encoded) > MAX_UID_BYTES:
        return f"it is {len(encoded)} bytes long in UTF-8, the limit is {MAX_UID_BYTES}"
    if uid[0] == "/":
        return "it starts with '/' (uids are relative keys such as 'folder/name.txt')"
    if "\\" in uid:
        return "it contains a backslash (use '/' to make folders)"
    if "#" in uid:
        return "it contains '#' (reserved as a version delimiter in lineage node ids)"
    if _CONTROL.search(uid):
        return "it contains a control character"
    segments = uid.split("/")
    if "" in segments:
        return "it has an empty segment ('//' or a trailing '/')"
    if "." in segments or ".." in segments:
        return "it has a '.' or '..' segment"
    if len(encoded) > MAX_SEGMENT_BYTES and any(
        len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES for segment in segments
    ):
        return f"a segment is over {MAX_SEGMENT_BYTES} bytes, too long for a file name"
    if segments[0] == RESERVED_PREFIX:
        return f"the first segment {RESERVED_PREFIX!r} is reserved for radops' own records"
    return None


def safe_path(root: Path, uid: str, real_root: str | None = None) -> Path:
    """The path of ``uid`` under ``root``, guaranteed to stay inside ``root``.

    Besides validating the uid, this refuses a path that a symlink inside ``root`` would
    lead out of it. ``real_root``: ``os.path.realpath(root)`` if the caller knows it (a
    stale value can only refuse more paths, never let one out).

    Raises:
        InvalidUidError: the uid is invalid.
        LocalStorageError: a symlink under ``root`` points outside it.
    """
    validate_uid(uid)
    path = root / uid
    if real_root is None:
        real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise LocalStorageError(
            f"refusing {uid!r}: a symlink under {root} leads outside it (to {real})"
        )
    return path
