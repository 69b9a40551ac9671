"""A lake in a directory: the embedded default, and a lake on a shared file system.

Layout under the root::

    <uid>                        the object's bytes, read-only
    .radops/meta/<uid>           its metadata as JSON (sha256, size, creation time, metadata)
    .radops/tmp/                 files being written

Creating an object first claims its metadata file exclusively (``O_EXCL`` through a hard link),
then links the fully written, fsynced data into place. Metadata therefore always exists before
the data is visible, and two writers racing for a key cannot both win. A claim whose data never
appeared (its writer was killed in the microseconds between the two links) is broken under a
lock once its writer is known to be dead or it is older than :data:`STALE_CLAIM_SECONDS`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from stat import S_ISREG
from typing import Any

from radops import writers
from radops.durable import Pending, fsync_together, start_fsync
from radops.errors import (
    FileExistsInLakeError,
    FileNotInLakeError,
    IntegrityError,
    InvalidRecordError,
    StoreError,
    UidConflictError,
)
from radops.integrity import CHUNK_SIZE, HashingSink
from radops.private import make_private_dir
from radops.stores.base import SHA256_KEY, ObjectMeta, Progress
from radops.uids import RESERVED_PREFIX, safe_path, uid_problem, validate_uid

__all__ = ["STALE_CLAIM_SECONDS", "DirectoryStore"]

STALE_CLAIM_SECONDS = 60.0


class DirectoryStore:
    """An :class:`~radops.stores.base.ObjectStore` in a local or shared directory."""

    def __init__(self, root: Path, state_dir: Path | None = None) -> None:
        self.root = Path(root)
        # Where this machine remembers the lakes it has used (see _ensure_dirs); None: nowhere.
        self._seen = (
            state_dir / "directory-lakes" / hashlib.sha256(str(self.root).encode()).hexdigest()[:32]
            if state_dir is not None
            else None
        )
        self._known = False
        self._reserved = self.root / RESERVED_PREFIX
        self._meta_root = self._reserved / "meta"
        self._tmp = self._reserved / "tmp"
        self._real_root: str | None = None  # realpath of root, once it exists
        self._real_meta_root: str | None = None
        # fsyncs of new objects' folders still running (see put_new and put_record)
        self._flushing: list[Pending] = []
        self._flushing_lock = threading.Lock()

    @property
    def url(self) -> str:
        return str(self.root)

    def __repr__(self) -> str:
        return f"DirectoryStore({str(self.root)!r})"

    def _data_path(self, key: str) -> Path:
        # safe_path: a symlink inside the lake never leads a read or write out of it. The root
        # is resolved once (a realpath is an lstat per segment, on every HEAD): a root swapped
        # later for a symlink elsewhere makes paths be refused, never followed.
        if self._real_root is None and os.path.isdir(self.root):
            self._real_root = os.path.realpath(self.root)
        return safe_path(self.root, key, self._real_root)

    def _meta_path(self, key: str) -> Path:
        # The metadata tree mirrors the data tree name for name, without a suffix: a suffix would
        # make a 255-byte segment (a valid uid) too long a file name, and make uids such as 'a'
        # and 'a.json/b' collide in the metadata tree although they coexist everywhere else.
        if self._real_meta_root is None and os.path.isdir(self._meta_root):
            self._real_meta_root = os.path.realpath(self._meta_root)
        return safe_path(self._meta_root, key, self._real_meta_root)

    def _ensure_dirs(self) -> None:
        """Create the lake's folders on first use, but never a second lake on a bare mount point.

        When a shared file system is unmounted, the lake's directory is still there, empty.
        Creating ``.radops/`` again would start a new lake on the local disk, and everything
        written there would vanish when the share comes back. So a machine that has used this
        lake before refuses to write once ``.radops/`` is gone.
        """
        if self._reserved.is_dir():
            if self._known:
                return
        elif self._seen is not None and self._seen.exists():
            raise StoreError(
                f"the data lake {self.root} has lost its {RESERVED_PREFIX}/ folder although this "
                "machine used it before: is the share mounted? Nothing is written until it is "
                f"back (if the lake was deleted on purpose, remove {self._seen})"
            )
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
            self._meta_root.mkdir(parents=True, exist_ok=True)
            if self._seen is not None and not self._seen.exists():
                make_private_dir(self._seen.parent)
                self._seen.write_text(str(self.root) + "\n", encoding="utf-8")
        except OSError as exc:
            raise StoreError(f"cannot create the lake directory {self.root}: {exc}") from exc
        self._known = True

    def head(self, key: str) -> ObjectMeta | None:
        try:
            stat = self._data_path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not S_ISREG(stat.st_mode):
            return None  # a folder of longer keys, or a FIFO or device put there: no object
        return self._meta_from_stat(key, stat)

    def _meta_from_stat(
        self, key: str, stat: os.stat_result, *, with_record: bool = True
    ) -> ObjectMeta:
        record = _read_record(self._meta_path(key)) if with_record else {}
        sha256 = record.get(SHA256_KEY)
        metadata = record.get("metadata")
        return ObjectMeta(
            key=key,
            size=stat.st_size,
            sha256=sha256 if isinstance(sha256, str) else None,
            etag=f"{stat.st_ino}-{stat.st_mtime_ns}-{stat.st_size}",
            # The data file's mtime, set to the creation time when it was written: a listing
            # reads no sidecar, so head must say the same as a listing (one time per file).
            created=_from_ns(stat.st_mtime_ns),
            # Only text, as S3 user metadata is: anything else in a sidecar is not radops'.
            metadata={
                name: value
                for name, value in (metadata.items() if isinstance(metadata, dict) else ())
                if isinstance(name, str) and isinstance(value, str)
            },
        )

    def put_new(
        self,
        src: Path,
        key: str,
        *,
        sha256: str,
        metadata: Mapping[str, str] | None = None,
        progress: Progress | None = None,
    ) -> ObjectMeta:
        data_path, meta_path = self._data_path(key), self._meta_path(key)
        self._ensure_dirs()
        token = uuid.uuid4().hex
        tmp_data = self._tmp / f"{token}.data"
        tmp_meta = self._tmp / f"{token}.json"
        created = datetime.now(timezone.utc)
        try:
            _copy(src, tmp_data, progress)
            size = tmp_data.stat().st_size
            stamp = _to_ns(created)
            os.utime(tmp_data, ns=(stamp, stamp))  # the object's creation time (see head)
            tmp_data.chmod(0o444)
            record = {
                SHA256_KEY: sha256,
                "size": size,
                "created": created.isoformat(),
                "metadata": dict(metadata or {}),
            }
            tmp_meta.write_text(json.dumps(record, sort_keys=True), encoding="utf-8")
            # Both on disk before either name appears (a power loss must never leave a
            # visible object with holes, or a claim without its sha256); flushed together,
            # so that they share one journal commit instead of waiting for two.
            fsync_together(tmp_data, tmp_meta)
            self._claim(key, tmp_meta, meta_path, data_path)
            try:
                data_path.parent.mkdir(parents=True, exist_ok=True)
                os.link(tmp_data, data_path)
            except FileExistsError as exc:
                meta_path.unlink(missing_ok=True)
                if os.path.lexists(data_path):  # data without a claim: not created by radops
                    raise FileExistsInLakeError(f"{key!r} already exists in the data lake") from exc
                raise UidConflictError(  # mkdir met a file where a folder is needed
                    f"{key!r} conflicts with an existing file or folder of the same name "
                    f"in {self.root}"
                ) from exc
            except (NotADirectoryError, IsADirectoryError) as exc:
                meta_path.unlink(missing_ok=True)
                raise UidConflictError(
                    f"{key!r} conflicts with an existing file or folder of the same name "
                    f"in {self.root}"
                ) from exc
        except OSError as exc:
            if isinstance(exc, FileExistsInLakeError):
                raise
            raise StoreError(f"cannot write {key!r} to {self.root}: {exc}") from exc
        finally:
            tmp_data.unlink(missing_ok=True)
            tmp_meta.unlink(missing_ok=True)
        # The object's name on disk: flushed in the background, and waited for before the next
        # record of this lake is named (put_record), beside that record's own fsync. So a
        # record never names an object a power loss could take back, and a creation (object,
        # then record) waits for one flush less.
        self._name_flushed(start_fsync(data_path.parent))
        return ObjectMeta(
            key=key,
            size=size,
            sha256=sha256,
            created=created,
            metadata=dict(metadata or {}),
            etag=_etag(data_path),
        )

    def _name_flushed(self, pending: Pending) -> None:
        """Remember the fsync of a new object's folder until a record waits for it."""
        with self._flushing_lock:
            # Those that ended well need no waiting; one that failed stays until a record
            # waited for it (and failed with it: its object may not survive a power loss).
            self._flushing = [each for each in self._flushing if not each.succeeded()]
            self._flushing.append(pending)

    def _names_to_flush(self) -> list[Pending]:
        """The folder fsyncs started so far (by any thread), which the next record waits for."""
        with self._flushing_lock:
            return list(self._flushing)

    def _flushed(self, pendings: list[Pending]) -> None:
        """A record waited for these fsyncs: forget them."""
        with self._flushing_lock:
            self._flushing = [each for each in self._flushing if each not in pendings]

    def _claim(self, key: str, tmp_meta: Path, meta_path: Path, data_path: Path) -> None:
        """Link the metadata into place exclusively: the winner of a race is decided here."""
        for attempt in (1, 2):
            try:
                meta_path.parent.mkdir(parents=True, exist_ok=True)
                os.link(tmp_meta, meta_path)
            except FileExistsError as exc:
                if attempt == 1 and self._break_stale_claim(meta_path, data_path):
                    continue
                raise FileExistsInLakeError(f"{key!r} already exists in the data lake") from exc
            except (NotADirectoryError, IsADirectoryError) as exc:
                raise UidConflictError(
                    f"{key!r} conflicts with an existing file or folder of the same name "
                    f"in {self.root}"
                ) from exc
            else:
                return

    def _break_stale_claim(self, meta_path: Path, data_path: Path, *, force: bool = False) -> bool:
        with self._lock():
            try:
                age = time.time() - meta_path.stat().st_mtime
            except FileNotFoundError:
                return True
            if data_path.exists():
                return False
            if not force and age < STALE_CLAIM_SECONDS and not _writer_dead(meta_path):
                return False
            meta_path.unlink(missing_ok=True)
            return True

    def warm_up(self) -> None:
        """Nothing to set up: the lake is a directory."""

    def sweep(self, older_than: float) -> list[str]:
        """Remove what killed writers left: temp files, and claims whose data never came."""
        removed: list[str] = []
        now = time.time()
        try:
            temps = list(os.scandir(self._tmp))
        except (FileNotFoundError, NotADirectoryError):
            temps = []
        for entry in temps:
            with contextlib.suppress(FileNotFoundError):
                if now - entry.stat(follow_symlinks=False).st_mtime > older_than:
                    os.unlink(entry.path)
                    removed.append(f"temp file {entry.path}")
        for meta_path in self._meta_root.rglob("*") if self._meta_root.is_dir() else ():
            if meta_path.is_dir() or meta_path.is_symlink():
                continue
            key = meta_path.relative_to(self._meta_root).as_posix()
            if uid_problem(key):
                continue  # not a sidecar radops wrote (it writes them for valid uids only)
            data_path = self._data_path(key)
            if data_path.exists():
                continue
            with contextlib.suppress(FileNotFoundError):
                age = now - meta_path.stat().st_mtime
                if (age > older_than or _writer_dead(meta_path)) and self._break_stale_claim(
                    meta_path, data_path, force=True
                ):
                    removed.append(f"unfinished claim of {key!r}")
        return removed

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        fd = os.open(self._reserved / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def get(
        self,
        key: str,
        dest: Path,
        *,
        progress: Progress | None = None,
        meta: ObjectMeta | None = None,
        check: Callable[[ObjectMeta], None] | None = None,
    ) -> ObjectMeta:
        data_path = self._data_path(key)
        try:
            # O_NONBLOCK: a FIFO put in the lake under a key must not block the read.
            fd = os.open(data_path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise FileNotInLakeError(f"{key!r} is not in the data lake {self.root}") from exc
        if not S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise FileNotInLakeError(f"{key!r} is not in the data lake {self.root}")
        os.set_blocking(fd, True)
        with open(fd, "rb") as source:
            meta = self._meta_from_stat(key, os.fstat(source.fileno()))
            if meta.sha256 is None:
                raise IntegrityError(
                    f"{key!r} in {self.root} has no recorded sha256: it was not created by "
                    "radops, so it cannot be verified"
                )
            if check is not None:
                check(meta)
            # Large files: hash in a thread of its own, beside the copy (see HashingSink).
            background = meta.size >= _BACKGROUND_HASH_FROM
            with dest.open("xb") as target, HashingSink(target, background=background) as sink:
                while chunk := source.read(CHUNK_SIZE):
                    sink.write(chunk)
                    if progress:
                        progress(len(chunk))
        if sink.hexdigest() != meta.sha256:
            raise IntegrityError(
                f"{key!r} in the data lake {self.root} is corrupted: its sha256 is "
                f"{sink.hexdigest()}, {meta.sha256} was recorded when it was created"
            )
        return meta

    def list(self, prefix: str = "") -> Iterator[ObjectMeta]:
        if not self.root.is_dir():
            return
        yield from self._walk(self.root, "", prefix)

    def _walk(self, directory: Path, rel: str, prefix: str) -> Iterator[ObjectMeta]:
        try:
            entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        # Sort as S3 does (by key), which differs from sorting names when '/' is involved:
        # 'a/b' (folder 'a') sorts after 'a-b' because '/' > '-'.
        items = []
        for entry in entries:
            if not rel and entry.name == RESERVED_PREFIX:
                continue
            key = rel + entry.name
            if entry.is_dir(follow_symlinks=False):
                items.append((key + "/", entry))
            elif entry.is_file(follow_symlinks=False):
                items.append((key, entry))
        for key, entry in sorted(items, key=lambda item: item[0]):
            if not (key.startswith(prefix) or prefix.startswith(key)):
                continue
            if key.endswith("/"):
                yield from self._walk(Path(entry.path), key, prefix)
            elif key.startswith(prefix):
                # Like an S3 listing: no sha256 or metadata, so a listing reads no sidecar.
                yield self._meta_from_stat(
                    key, entry.stat(follow_symlinks=False), with_record=False
                )

    def keys(self, folder: str) -> Iterator[str]:
        return (meta.key for meta in self.list(folder))

    def delete(self, key: str) -> None:
        data_path = self._data_path(key)
        try:
            data_path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError as exc:
            raise StoreError(f"cannot delete {key!r} from {self.root}: {exc}") from exc
        self._meta_path(key).unlink(missing_ok=True)

    def dataset(self, key: str) -> tuple[str, str]:
        return "file", str(self.root.resolve() / validate_uid(key))

    def _record_path(self, name: str) -> Path:
        return safe_path(self._reserved, name)

    def put_record(self, name: str, data: bytes) -> None:
        path = self._record_path(name)
        self._ensure_dirs()
        tmp = self._tmp / f"{uuid.uuid4().hex}.record"
        try:
            earlier = self._names_to_flush()
            with tmp.open("xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            # The objects this record may name are on disk before the record's name is: their
            # folders' fsyncs ran beside the record's own.
            try:
                for pending in earlier:
                    pending.wait()
            finally:
                self._flushed(earlier)
            path.parent.mkdir(parents=True, exist_ok=True)
            os.link(tmp, path)
        except FileExistsError as exc:
            raise FileExistsInLakeError(f"record {name!r} already exists in {self.root}") from exc
        except OSError as exc:
            raise StoreError(f"cannot write record {name!r} to {self.root}: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def get_record(self, name: str, max_bytes: int | None = None) -> bytes | None:
        validate_uid(name)
        try:
            fd = self._open_record(name)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InvalidRecordError("a symbolic link is in its path") from None
            raise StoreError(f"cannot read record {name!r} in {self.root}: {exc}") from exc
        with os.fdopen(fd, "rb") as handle:
            status = os.fstat(handle.fileno())
            if not S_ISREG(status.st_mode):
                raise InvalidRecordError("not a regular file")
            if max_bytes is not None and status.st_size > max_bytes:
                raise InvalidRecordError(
                    f"{status.st_size} bytes, over the limit of {max_bytes} bytes for a record"
                )
            data = handle.read(-1 if max_bytes is None else max_bytes + 1)
        if max_bytes is not None and len(data) > max_bytes:  # it grew while being read
            raise InvalidRecordError(f"over the limit of {max_bytes} bytes for a record")
        return data

    def _open_record(self, name: str) -> int:
        """A descriptor of record ``name``, opened one segment at a time without following a
        symlink (a record is the lake's own file, never a link out of it) and without
        blocking on a FIFO planted in the lake."""
        parts = name.split("/")
        folder = os.open(self._reserved, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for part in parts[:-1]:
                inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
                os.close(folder)
                folder = inner
            return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
        finally:
            os.close(folder)

    def list_records(self, prefix: str, start_after: str = "") -> Iterator[str]:
        folder = self._reserved / prefix.rstrip("/")
        try:
            names = sorted(entry.name for entry in os.scandir(folder) if entry.is_file())
        except (FileNotFoundError, NotADirectoryError):
            return
        base = prefix if prefix.endswith("/") else prefix + "/"
        for name in names:
            if base + name > start_after:
                yield base + name

    def list_record_folders(self, prefix: str) -> tuple[str, ...]:
        folder = self._reserved / prefix.rstrip("/")
        try:
            return tuple(sorted(e.name for e in os.scandir(folder) if e.is_dir()))
        except (FileNotFoundError, NotADirectoryError):
            return ()


_BACKGROUND_HASH_FROM = 8 * CHUNK_SIZE


# A sidecar radops writes is a few hundred bytes; S3 caps user metadata at 2 KB.
_MAX_RECORD_BYTES = 64 * 1024


def _read_record(meta_path: Path) -> dict[str, Any]:
    """The JSON object of a metadata sidecar; {} if there is none, or it is not radops'.

    A sidecar is read from the lake, so it is untrusted: a FIFO is not waited on, a file
    larger than any radops writes is not read, and only a JSON object counts.
    """
    try:
        fd = os.open(meta_path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return {}  # not created by radops: unverifiable
    with open(fd, "rb") as handle:
        if not S_ISREG(os.fstat(fd).st_mode):
            return {}
        data = handle.read(_MAX_RECORD_BYTES + 1)
    if len(data) > _MAX_RECORD_BYTES:
        return {}
    try:
        record = json.loads(data.decode("utf-8"))
    except ValueError:  # a damaged record (UnicodeDecodeError is a ValueError too)
        return {}
    return record if isinstance(record, dict) else {}


def _writer_dead(meta_path: Path) -> bool:
    """True if the process that claimed ``meta_path`` is known to be gone."""
    try:
        record = _read_record(meta_path)
    except OSError:
        return False
    metadata = record.get("metadata", {})
    return (
        writers.is_dead(metadata.get(writers.WRITER_KEY)) if isinstance(metadata, dict) else False
    )


def _etag(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_ino}-{stat.st_mtime_ns}-{stat.st_size}"


def _to_ns(moment: datetime) -> int:
    """``moment`` in nanoseconds since the epoch, exactly (a float would round microseconds)."""
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def _from_ns(ns: int) -> datetime:
    """The inverse of :func:`_to_ns`, to the microsecond."""
    seconds, rest = divmod(ns, 10**9)
    return datetime.fromtimestamp(seconds, tz=timezone.utc).replace(microsecond=rest // 1000)


_COPY_STEP = 2 * CHUNK_SIZE


def _copy(src: Path, dest: Path, progress: Progress | None) -> None:
    """Copy ``src`` to the new file ``dest``, reporting progress as the bytes move.

    Without ``progress``, ``shutil.copyfile`` (in-kernel where it can). With it, the same
    in-kernel ``sendfile`` in steps of 2 MiB, so that a bar moves during the copy rather than
    jumping from 0 to 100 % at its end.
    """
    if progress is None:
        shutil.copyfile(src, dest)
        return
    with src.open("rb") as source, dest.open("xb") as target:
        offset = 0
        try:
            while sent := os.sendfile(target.fileno(), source.fileno(), offset, _COPY_STEP):
                offset += sent
                progress(sent)
        except OSError as exc:
            if offset or exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            # No sendfile between these file systems: the same copy in user space.
            while chunk := source.read(CHUNK_SIZE):
                target.write(chunk)
                progress(len(chunk))
