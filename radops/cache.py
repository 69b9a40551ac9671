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
from collections.abc import Iterator, Sequence
from pathlib import Path
from stat import S_ISREG

import attrs

from radops import writers
from radops.errors import LocalStorageError, RadopsError
from radops.private import create_private_file, make_private_dir
from radops.uids import safe_path, validate_uid

__all__ = [
    "LOCAL_WRITE_ERRNOS",
    "LocalEntry",
    "LocalStorage",
    "local_storage_error",
    "sqlite_storage_error",
]

# Errors that can only mean "this machine cannot write here": never a problem of the lake.
LOCAL_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS local_files (
    uid TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    etag TEXT
);
CREATE TABLE IF NOT EXISTS lake (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    url TEXT NOT NULL
)
"""

Fingerprint = tuple[int, int, int]
# SQLite's primary result codes (sqlite3 has them from Python 3.11, its stubs do not).
_SQLITE_IOERR, _SQLITE_READONLY, _SQLITE_FULL, _SQLITE_CANTOPEN = 10, 8, 13, 14
_BUSY_TIMEOUT_S = 30.0  # how long a writer waits for another process's transaction (WAL)


def open_wal_database(path: Path, schema: str) -> sqlite3.Connection:
    """Open one of radops' SQLite files for several processes at once, with ``schema``.

    WAL lets readers and one writer work together and keeps committed transactions through a
    killed process; writers wait for each other up to the busy timeout. ``synchronous=NORMAL``
    may lose the last transactions only on power loss, which caches rebuilt from the lake and
    from local storage can afford.
    """
    db = sqlite3.connect(
        path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    try:
        # Switching a new file to WAL needs a moment alone with it; SQLite answers "locked" at
        # once, without its busy handler, when other processes open it at the same time.
        for attempt in range(50):
            try:
                db.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 49:
                    raise
                time.sleep(0.02 * (attempt + 1))
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(schema)
    except BaseException:
        db.close()
        raise
    return db


_MTIME_BACKDATE_NS = 2_000_000_000
_BATCH_ROWS = 500  # records of placed files written in one transaction (bulk transfers)


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


def local_storage_error(exc: OSError, doing: str, where: Path) -> LocalStorageError:
    """One clear :class:`LocalStorageError` for an OS error while writing local state.

    The message says what happened in words (no space left, read-only), what radops was doing
    and where; ``errno`` is kept, so ``except OSError`` code testing it still works.
    """
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        reason = "disk quota exceeded" if code == errno.EDQUOT else "no space left on device"
        message = (
            f"{reason}: cannot {doing} in local storage {where} "
            "(free some space there, or point RADOPS_HOME to a larger disk)"
        )
    elif code == errno.EROFS:
        message = (
            f"read-only file system: cannot {doing} in local storage {where} "
            "(point RADOPS_HOME to a writable directory)"
        )
    elif code in (errno.EACCES, errno.EPERM):
        message = f"permission denied: cannot {doing} in local storage {where}"
    else:
        message = f"cannot {doing} in local storage {where}: {exc.strerror or exc}"
    error = LocalStorageError(message)
    error.errno = code  # str(error) stays the message: no strerror, no filename
    return error


def sqlite_storage_error(exc: sqlite3.Error, doing: str, where: Path) -> LocalStorageError:
    """A :class:`LocalStorageError` for SQLite's own report of a full or read-only disk."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code == _SQLITE_FULL:
        number = errno.ENOSPC
    elif code is not None and code & 0xFF == _SQLITE_READONLY:
        number = errno.EROFS
    elif code is not None and code & 0xFF in (_SQLITE_CANTOPEN, _SQLITE_IOERR):
        # SQLite does not say why; an unwritable directory is the usual reason.
        number = errno.EROFS if not os.access(where, os.W_OK) else errno.EIO
    else:
        number = errno.EIO
    return local_storage_error(OSError(number, str(exc)), doing, where)


class LocalStorage:
    """The local cache of one ``RADOPS_HOME``.

    Thread-safe within a process; several processes may share it (SQLite in WAL mode, atomic
    renames, and a lock file around eviction).
    """

    def __init__(
        self,
        root: Path,
        state_dir: Path,
        tmp_dir: Path,
        max_bytes: int | None = None,
        lake: str | None = None,
    ) -> None:
        self.root = root
        self.state_dir = state_dir
        self.tmp_dir = tmp_dir
        self.max_bytes = max_bytes
        self.lake = lake  # the lake whose files these are (None: not checked)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._verified: dict[str, Fingerprint] = {}
        # Records of placed files not yet written, while a bulk transfer batches them.
        self._batching = 0
        self._pending: dict[str, tuple[str, str, int, int, int, str | None]] = {}
        self._safe_folders: set[str] = set()  # resolved inside the root during the batch
        self._made_folders: set[Path] = set()  # created (or found) during the batch
        self._reading: Counter[str] = Counter()
        self._real_root: str | None = None
        self._root_dev: int | None = None  # st_dev of the resolved root

    # -- paths and temp files -------------------------------------------------------------

    def path(self, uid: str) -> Path:
        """Where ``uid`` lives in local storage (it may not be there)."""
        if self._real_root is None and os.path.isdir(self.root):
            # Resolved once: a realpath costs an lstat per segment, and this runs on every
            # read. If the root were later swapped for a symlink elsewhere, its paths would
            # then be refused (they leave the resolved root), never followed.
            self._real_root = os.path.realpath(self.root)
        folder = uid.rpartition("/")[0]
        if self._batching and folder in self._safe_folders:
            # A bulk transfer's files share a few folders, each resolved inside the root once
            # in this batch: only the file itself is left to check (one lstat, not one per
            # segment); a symlink there gets the full check.
            path = self.root / validate_uid(uid)
            if not os.path.islink(path):
                return path
        path = safe_path(self.root, uid, self._real_root)
        if self._batching:
            self._safe_folders.add(folder)
        return path

    def open_trusted(self, uid: str) -> tuple[int, str] | None:
        """An open file descriptor and the path of ``uid``, if the cached file is exactly the
        one radops placed (device and fingerprint of the open file); otherwise None.

        The fast path of a cached read: the identity is checked on the open file itself, so a
        symlink anywhere on the way (which ``safe_path`` refuses) can only lead to another
        file, which fails the check; the caller then takes the checked slow path. It also
        leaves no moment between the check and the open (the slow path stats, then opens).
        """
        validate_uid(uid)  # before the uid becomes a path: "../../fifo" must never be opened
        self._check_owner()
        if self._root_dev is None:
            try:
                real_root = os.path.realpath(self.root)
                self._root_dev = os.stat(real_root).st_dev
            except OSError:
                return None
            self._real_root = real_root
        path = os.path.join(self._real_root or "", uid)
        try:
            # O_NONBLOCK: opening a FIFO (or a device) put in place of a file must not wait
            # for a writer; it then fails the check below. On the regular file that passes
            # it, the flag changes nothing (reads of regular files never wait), so it stays:
            # clearing it would cost two system calls on every cached read.
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            stat = os.fstat(fd)
            if (
                S_ISREG(stat.st_mode)
                and stat.st_dev == self._root_dev
                and self.is_trusted(uid, stat)
            ):
                return fd, path
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        return None

    def _ensure_dirs(self) -> None:
        for directory in (self.root, self.state_dir, self.tmp_dir):
            try:
                make_private_dir(directory)
            except OSError as exc:
                raise local_storage_error(exc, f"create {directory}", directory.parent) from exc

    @contextlib.contextmanager
    def writing(self, doing: str, where: Path | None = None) -> Iterator[None]:
        """Turn a full or read-only disk under the block into one :class:`LocalStorageError`.

        Only errors that can be this machine's (ENOSPC, EDQUOT, EROFS) are translated, so a
        failing read of a source or of the lake keeps its own error.
        """
        try:
            yield
        except OSError as exc:
            if isinstance(exc, RadopsError) or exc.errno not in LOCAL_WRITE_ERRNOS:
                raise
            raise local_storage_error(exc, doing, where or self.tmp_dir) from exc

    def temp_path(self, hint: str = "") -> Path:
        """A fresh path in the temp directory, on the same file system as local storage."""
        return self.temp_paths([hint])[0]

    def temp_paths(self, hints: Sequence[str]) -> list[Path]:
        """:meth:`temp_path` for each of ``hints``; the directories are checked once."""
        self._ensure_dirs()
        # The tag names the writer, so `datalake repair` can remove what a killed one left.
        tag = writers.file_tag()
        paths = []
        for hint in hints:
            # The uid's suffix, for tools that look at names; only plain characters of it.
            suffix = "".join(c for c in Path(hint).suffix[:16] if c.isalnum() or c in "._-")
            paths.append(self.tmp_dir / f"{tag}_{uuid.uuid4().hex}{suffix}.part")
        return paths

    @staticmethod
    def discard(tmp: Path) -> None:
        """Remove the temp file ``tmp`` if it exists.

        On a read-only file system even unlinking a missing file fails (EROFS); there is
        nothing to remove then, and the error being handled is the one to report.
        """
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            if os.path.lexists(tmp):
                raise

    # -- the index of placed files -------------------------------------------------------

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        with self._lock:  # opened once, whichever threads ask first (bulk transfers)
            return self._open_db()

    def _open_db(self) -> sqlite3.Connection:
        if self._db is None:
            self._ensure_dirs()
            path = self.state_dir / "cache.sqlite"
            with self._sql("open the index of local storage"):
                try:
                    create_private_file(path)
                except OSError as exc:
                    raise local_storage_error(exc, f"create {path}", self.state_dir) from exc
                db = open_wal_database(path, _SCHEMA)
            try:
                self._check_lake(db)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def _check_lake(self, db: sqlite3.Connection) -> None:
        """Refuse to serve another lake's files: two lakes can each have a file ``x``, and a
        cached ``x`` of one would pass for the other's (the fingerprint is the file's own)."""
        if self.lake is None:
            return
        with self._sql("check which lake local storage belongs to"):
            db.execute("INSERT OR IGNORE INTO lake VALUES (1, ?)", (self.lake,))
            owner = db.execute("SELECT url FROM lake").fetchone()[0]
        if owner != self.lake:
            raise LocalStorageError(
                f"local storage {self.root} holds files of the data lake {owner}, not of "
                f"{self.lake}: use one RADOPS_HOME per lake (set RADOPS_HOME, or home= in "
                "Python)"
            )

    @contextlib.contextmanager
    def _sql(self, doing: str) -> Iterator[None]:
        """SQLite's errors on a full or read-only disk, as :class:`LocalStorageError`."""
        try:
            yield
        except sqlite3.Error as exc:
            raise sqlite_storage_error(exc, doing, self.state_dir) from exc

    def entry(self, uid: str) -> LocalEntry | None:
        """The record of ``uid``, or None."""
        with self._lock, self._sql(f"look up {uid!r}"):
            pending = self._pending.get(uid)
            row = (
                pending[1:]
                if pending is not None
                else self.db.execute(
                    "SELECT sha256, size, mtime_ns, ino, etag FROM local_files WHERE uid = ?",
                    (uid,),
                ).fetchone()
            )
        if row is None:
            return None
        return LocalEntry(uid, row[0], row[1], (row[1], row[2], row[3]), row[4])

    def _record(self, uid: str, sha256: str, stat: os.stat_result, etag: str | None) -> None:
        row = (uid, sha256, stat.st_size, stat.st_mtime_ns, stat.st_ino, etag)
        with self._lock, self._sql(f"record {uid!r}"):
            if self._batching:
                self._pending[uid] = row
                if len(self._pending) >= _BATCH_ROWS:
                    self._write_pending()
            else:
                self.db.execute("INSERT OR REPLACE INTO local_files VALUES (?, ?, ?, ?, ?, ?)", row)
            self._verified[uid] = _fingerprint(stat)

    @contextlib.contextmanager
    def batched(self) -> Iterator[None]:
        """Write the records of files placed while the block runs a few hundred at a time.

        For bulk transfers: one SQLite transaction per file was a fifth of the time of
        downloading thousands of small files. A record written late costs nothing but time: a
        placed file without its record (a killed process) is rehashed before it is trusted.
        """
        with self._lock:
            self._batching += 1
        try:
            yield
        finally:
            with self._lock:
                self._batching -= 1
                if not self._batching:
                    self._safe_folders.clear()
                    self._made_folders.clear()
                    with self._sql("record placed files"):
                        self._write_pending()

    def _write_pending(self) -> None:
        """Write the pending records in one transaction (the caller holds the lock)."""
        if not self._pending:
            return
        # Only records still true of the file in place: another process may have placed a
        # new copy meanwhile (and recorded it), which a late record must not overwrite.
        rows = [row for row in self._pending.values() if self._fingerprint_now(row[0]) == row[2:5]]
        self._pending.clear()
        if not rows:
            return
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR REPLACE INTO local_files VALUES (?, ?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _fingerprint_now(self, uid: str) -> Fingerprint | None:
        # Only compared with what was placed: a path a symlink diverts can match it only by
        # leading to that very file, so the checked path (a realpath per file) is not needed.
        try:
            return _fingerprint(os.stat(os.path.join(self.root, uid)))
        except OSError:
            return None

    def _forget(self, uid: str) -> None:
        with self._lock, self._sql(f"forget {uid!r}"):
            self._pending.pop(uid, None)
            self.db.execute("DELETE FROM local_files WHERE uid = ?", (uid,))
            self._verified.pop(uid, None)

    # -- state of one file -----------------------------------------------------------------

    def stat(self, uid: str) -> os.stat_result | None:
        """``os.stat`` of the cached file, or None if it is not in local storage."""
        return self.stat_path(self.path(uid))

    def held(self, uids: Sequence[str]) -> list[str]:
        """Those of ``uids`` that local storage has a file for (see :meth:`stat`), in order.

        A folder that does not exist holds none of its uids: it is looked up once, not once
        per uid (a bulk add checks thousands of new uids, mostly in new folders).
        """
        absent: set[str] = set()
        found: list[str] = []
        for uid in uids:
            folder = uid.rpartition("/")[0]
            if folder in absent:
                continue
            path = self.path(uid)
            if self.stat_path(path) is not None:
                found.append(uid)
            elif folder and not path.parent.is_dir():
                absent.add(folder)
        return found

    def stat_path(self, path: Path) -> os.stat_result | None:
        """``os.stat`` of ``path`` (from :meth:`path`), or None if there is no such file.

        Only a regular file counts: a folder (of longer uids), or a FIFO or device put there
        by hand, is not a file of local storage, and reading a FIFO would wait forever.
        """
        self._check_owner()
        try:
            stat = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return stat if S_ISREG(stat.st_mode) else None

    def _check_owner(self) -> None:
        """Before anything is looked up in local storage that exists: is it this lake's?"""
        if self._db is None and self.lake is not None and os.path.isdir(self.root):
            self.db  # noqa: B018 - opening the index checks which lake it belongs to

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
        with self._lock:  # not between another thread's placing of it and its record
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
            known = final.parent in self._made_folders
            if not known:
                make_private_dir(final.parent)
                if self._batching:  # a bulk transfer places many files in each folder
                    self._made_folders.add(final.parent)
        except OSError as exc:
            self.discard(tmp)
            raise self._placing_error(exc, uid) from exc
        # The rename and its record together: of two threads placing the same file (two reads
        # downloading it at once), the one recorded is the one in place. Only these under the
        # lock: threads placing many files at once (bulk transfers) waited for each other.
        with self._lock:
            try:
                try:
                    os.replace(tmp, final)
                except FileNotFoundError:
                    if not known:
                        raise
                    # The folder was removed since (its last file deleted): made again.
                    self._made_folders.discard(final.parent)
                    make_private_dir(final.parent)
                    os.replace(tmp, final)
                stat = final.stat()
            except OSError as exc:
                self.discard(tmp)
                raise self._placing_error(exc, uid) from exc
            self._record(uid, sha256, stat, etag)
        self.enforce_limit(protect={uid})
        return final

    def _placing_error(self, exc: OSError, uid: str) -> LocalStorageError:
        if exc.errno in (errno.ENOTDIR, errno.EISDIR, errno.EEXIST):
            return LocalStorageError(
                f"cannot store {uid!r} locally: a file or folder of the same name is in the "
                f"way under {self.root}"
            )
        return local_storage_error(exc, f"store {uid!r}", self.root)

    def remove(self, uid: str) -> bool:
        """Delete the local copy of ``uid``; True if there was one. The lake is untouched."""
        path = self.path(uid)
        existed = True
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            existed = False
        except OSError as exc:
            raise local_storage_error(exc, f"remove {uid!r}", self.root) from exc
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
        self._check_owner()
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel = os.path.relpath(dirpath, self.root)
            prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
            found.extend(prefix + name for name in filenames)
        yield from sorted(found)

    # -- readers and the size limit ------------------------------------------------------------

    def begin_reading(self, uid: str) -> None:
        """Mark ``uid`` as being read: eviction leaves it alone until :meth:`end_reading`."""
        with self._lock:
            self._reading[uid] += 1
        if self.max_bytes is not None:
            # Only the LRU order needs access times; set atime without touching mtime.
            with contextlib.suppress(OSError):
                stat = self.path(uid).stat()
                os.utime(self.path(uid), ns=(time.time_ns(), stat.st_mtime_ns))

    def end_reading(self, uid: str) -> None:
        """The read of ``uid`` begun by :meth:`begin_reading` is over."""
        with self._lock:
            self._reading[uid] -= 1
            if self._reading[uid] <= 0:
                del self._reading[uid]

    @contextlib.contextmanager
    def reading(self, uid: str) -> Iterator[None]:
        """Mark ``uid`` as being read while the block runs (eviction leaves it alone)."""
        self.begin_reading(uid)
        try:
            yield
        finally:
            self.end_reading(uid)

    def total_bytes(self) -> int:
        """Bytes of every file radops placed in local storage."""
        with self._lock, self._sql("sum the sizes of local files"):
            self._write_pending()
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
            with self._lock, self._sql("list local files"):
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
            with self._lock, self._sql("record placed files"):
                self._write_pending()
            self._db.close()
            self._db = None
