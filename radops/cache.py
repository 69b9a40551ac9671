"""Local storage: verified, read-only copies of lake files under ``$RADOPS_HOME/storage``.

A file becomes visible in local storage only by an atomic rename of a complete, verified temp
file, so a reader never sees partial bytes. A small SQLite table remembers each file's sha256 and
a stat fingerprint (size, mtime, inode) taken when it was placed: a cached file whose fingerprint
still matches is served without rehashing it; one whose fingerprint changed is rehashed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import attrs

from radops.errors import LocalStorageError
from radops.private import create_private_file, make_private_dir
from radops.uids import safe_path

__all__ = ["LocalEntry", "LocalStorage"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS local_files (
    uid TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    etag TEXT
)
"""

Fingerprint = tuple[int, int, int]
_MTIME_BACKDATE_NS = 2_000_000_000


@attrs.frozen
class LocalEntry:
    """What local storage recorded about a file when it placed it."""

    uid: str
    sha256: str
    size: int
    fingerprint: Fingerprint
    etag: str | None


def _fingerprint(stat: os.stat_result) -> Fingerprint:
    return (stat.st_size, stat.st_mtime_ns, stat.st_ino)


class LocalStorage:
    """The local cache of one ``RADOPS_HOME``.

    Thread-safe within a process; several processes may share it (SQLite in WAL mode, atomic
    renames, and a lock file around eviction).
    """

    def __init__(
        self, root: Path, state_dir: Path, tmp_dir: Path, max_bytes: int | None = None
    ) -> None:
        self.root = root
        self.state_dir = state_dir
        self.tmp_dir = tmp_dir
        self.max_bytes = max_bytes
        self._db: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._verified: dict[str, Fingerprint] = {}
        self._reading: Counter[str] = Counter()

    # -- paths and temp files -------------------------------------------------------------

    def path(self, uid: str) -> Path:
        """Where ``uid`` lives in local storage (it may not be there)."""
        return safe_path(self.root, uid)

    def _ensure_dirs(self) -> None:
        for directory in (self.root, self.state_dir, self.tmp_dir):
            try:
                make_private_dir(directory)
            except OSError as exc:
                raise LocalStorageError(f"cannot create {directory}: {exc}") from exc

    def temp_path(self, hint: str = "") -> Path:
        """A fresh path in the temp directory, on the same file system as local storage."""
        self._ensure_dirs()
        suffix = Path(hint).suffix[:16] if hint else ""
        # The pid names the writer, so `datalake repair` can remove what a killed one left.
        return self.tmp_dir / f"{os.getpid()}-{uuid.uuid4().hex}{suffix}.part"

    # -- the index of placed files -------------------------------------------------------

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self._ensure_dirs()
            path = self.state_dir / "cache.sqlite"
            create_private_file(path)
            db = sqlite3.connect(
                path,
                timeout=30,
                isolation_level=None,
                check_same_thread=False,
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
            self._db = db
        return self._db

    def entry(self, uid: str) -> LocalEntry | None:
        """The record of ``uid``, or None."""
        with self._lock:
            row = self.db.execute(
                "SELECT sha256, size, mtime_ns, ino, etag FROM local_files WHERE uid = ?", (uid,)
            ).fetchone()
        if row is None:
            return None
        return LocalEntry(uid, row[0], row[1], (row[1], row[2], row[3]), row[4])

    def _record(self, uid: str, sha256: str, stat: os.stat_result, etag: str | None) -> None:
        with self._lock:
            self.db.execute(
                "INSERT OR REPLACE INTO local_files VALUES (?, ?, ?, ?, ?, ?)",
                (uid, sha256, stat.st_size, stat.st_mtime_ns, stat.st_ino, etag),
            )
            self._verified[uid] = _fingerprint(stat)

    def _forget(self, uid: str) -> None:
        with self._lock:
            self.db.execute("DELETE FROM local_files WHERE uid = ?", (uid,))
            self._verified.pop(uid, None)

    # -- state of one file -----------------------------------------------------------------

    def stat(self, uid: str) -> os.stat_result | None:
        """``os.stat`` of the cached file, or None if it is not in local storage."""
        try:
            return self.path(uid).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def is_trusted(self, uid: str, stat: os.stat_result) -> bool:
        """True if the file is exactly as radops placed it (fingerprint unchanged)."""
        fingerprint = _fingerprint(stat)
        if self._verified.get(uid) == fingerprint:
            return True
        entry = self.entry(uid)
        if entry is not None and entry.fingerprint == fingerprint:
            self._verified[uid] = fingerprint
            return True
        return False

    def accept(self, uid: str, sha256: str, etag: str | None) -> None:
        """Record the file now in local storage as verified to have ``sha256``."""
        stat = self.stat(uid)
        if stat is not None:
            self._record(uid, sha256, stat, etag)

    # -- placing and removing ----------------------------------------------------------------

    def place(self, tmp: Path, uid: str, sha256: str, etag: str | None) -> Path:
        """Make the complete, verified file ``tmp`` visible as ``uid``: read-only, atomically.

        Raises:
            LocalStorageError: the file cannot be placed (disk full, read-only, name conflict).
        """
        final = self.path(uid)
        try:
            tmp.chmod(0o444)
            # Back-date mtime: an edit made later, even within the same timestamp tick on a
            # file system with coarse timestamps, then always changes the fingerprint.
            now = time.time_ns()
            os.utime(tmp, ns=(now, now - _MTIME_BACKDATE_NS))
            make_private_dir(final.parent)
            os.replace(tmp, final)
            stat = final.stat()
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in (errno.ENOTDIR, errno.EISDIR, errno.EEXIST):
                raise LocalStorageError(
                    f"cannot store {uid!r} locally: a file or folder of the same name is in "
                    f"the way under {self.root}"
                ) from exc
            raise LocalStorageError(f"cannot store {uid!r} in {self.root}: {exc}") from exc
        self._record(uid, sha256, stat, etag)
        self.enforce_limit(protect={uid})
        return final

    def remove(self, uid: str) -> bool:
        """Delete the local copy of ``uid``; True if there was one. The lake is untouched."""
        path = self.path(uid)
        existed = True
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            existed = False
        except OSError as exc:
            raise LocalStorageError(f"cannot remove {path}: {exc}") from exc
        self._forget(uid)
        self._prune_dirs(path.parent)
        return existed

    def _prune_dirs(self, directory: Path) -> None:
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    def uids(self) -> Iterator[str]:
        """Every file present in local storage, radops-placed or not, in key order."""
        if not self.root.is_dir():
            return
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel = os.path.relpath(dirpath, self.root)
            prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
            found.extend(prefix + name for name in filenames)
        yield from sorted(found)

    # -- readers and the size limit ------------------------------------------------------------

    @contextlib.contextmanager
    def reading(self, uid: str) -> Iterator[None]:
        """Mark ``uid`` as being read: eviction leaves it alone until the block ends."""
        with self._lock:
            self._reading[uid] += 1
        if self.max_bytes is not None:
            # Only the LRU order needs access times; set atime without touching mtime.
            with contextlib.suppress(OSError):
                stat = self.path(uid).stat()
                os.utime(self.path(uid), ns=(time.time_ns(), stat.st_mtime_ns))
        try:
            yield
        finally:
            with self._lock:
                self._reading[uid] -= 1
                if self._reading[uid] <= 0:
                    del self._reading[uid]

    def total_bytes(self) -> int:
        """Bytes of every file radops placed in local storage."""
        with self._lock:
            return int(
                self.db.execute("SELECT COALESCE(SUM(size), 0) FROM local_files").fetchone()[0]
            )

    def fits(self, size: int) -> bool:
        """True if a file of ``size`` bytes may be kept under ``RADOPS_CACHE_MAX_BYTES``."""
        return self.max_bytes is None or size <= self.max_bytes

    def check_fits(self, uid: str, size: int) -> None:
        """Refuse a file that can never fit under ``RADOPS_CACHE_MAX_BYTES``.

        Raises:
            LocalStorageError: ``size`` exceeds the limit by itself.
        """
        if self.max_bytes is not None and size > self.max_bytes:
            raise LocalStorageError(
                f"{uid!r} ({size} bytes) is larger than RADOPS_CACHE_MAX_BYTES "
                f"({self.max_bytes} bytes): raise the limit to use it locally"
            )

    def enforce_limit(self, protect: set[str] | None = None) -> list[str]:
        """Evict least recently used files until local storage is under the limit.

        Every recorded file is safely in the lake (radops uploads before it places), so
        eviction never loses data; files being read and ``protect`` are kept.
        Returns the evicted uids.
        """
        if self.max_bytes is None:
            return []
        evicted: list[str] = []
        with self._process_lock():
            total = self.total_bytes()
            if total <= self.max_bytes:
                return evicted
            with self._lock:
                rows = self.db.execute("SELECT uid, size FROM local_files").fetchall()
                keep = set(self._reading) | (protect or set())
            candidates = []
            for uid, size in rows:
                if uid in keep:
                    continue
                stat = self.stat(uid)
                candidates.append((stat.st_atime_ns if stat else 0, uid, size))
            for _, uid, size in sorted(candidates):
                if total <= self.max_bytes:
                    break
                self.remove(uid)
                total -= size
                evicted.append(uid)
        return evicted

    @contextlib.contextmanager
    def _process_lock(self) -> Iterator[None]:
        self._ensure_dirs()
        fd = os.open(self.state_dir / "cache.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def close(self) -> None:
        """Close the index connection."""
        if self._db is not None:
            self._db.close()
            self._db = None
