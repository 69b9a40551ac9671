"""File: a handle on one immutable data-lake file."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs

from radops.creator import active_call
from radops.integrity import HashingFile
from radops.lineage.naming import WRITE_JOB
from radops.uids import validate_uid

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer as Buffer

    from radops.cache import LocalStorage
    from radops.creator import CallContext
    from radops.lake import DataLake
    from radops.stores import Progress

__all__ = ["File", "FileInfo"]

_READ_MODES = {"r": False, "rt": False, "rb": True}
_WRITE_MODES = {"w": False, "wt": False, "wb": True}
_TEXT_KWARGS = {"encoding", "errors", "newline"}


@attrs.frozen
class FileInfo:
    """What is known about a file: its bytes, where it is, its metadata in the lake, and the
    OpenLineage COMPLETE event of the run that created it (``creation``, None if unknown)."""

    uid: str
    size: int
    sha256: str | None
    created: datetime | None
    local: bool
    remote: bool
    lake: str
    metadata: Mapping[str, str] = attrs.field(factory=dict)
    creation: Mapping[str, Any] | None = None


class File:
    """A data-lake file, named by its uid. Creating a handle does no I/O.

    Files are immutable: a uid is written once, through :meth:`open` in ``"w"``/``"wb"`` mode,
    and read any number of times, from local storage or, after a verified download, from the
    lake.

    Args:
        uid: a relative key such as ``"raw/data.csv"``. Inside a ``file_creator`` function it
            may be omitted: the file then gets an implicit uid derived from the call.
        lake: the lake to use; by default the one configured by the environment (inside a
            ``file_creator`` function, the lake of the call).
        suffix: for an implicit uid, a suffix such as ``".csv"``.

    Raises:
        InvalidUidError: ``uid`` is malformed (a ``ValueError``).
        ValueError: no uid outside a ``file_creator`` function.
    """

    __slots__ = ("_lake", "_uid")

    def __init__(
        self, uid: str | None = None, *, lake: DataLake | None = None, suffix: str = ""
    ) -> None:
        call = active_call()
        if uid is None:
            if call is None:
                raise ValueError(
                    "File() needs a uid outside a file_creator function "
                    "(implicit uids are derived from the call that creates the file)"
                )
            uid = call.implicit_uid(suffix)
        if lake is None and call is not None:
            # Fix: as documented, File(uid) inside a file_creator function uses the call's lake
            # (it used the default lake, so declared outputs were staged in the wrong home and
            # the returned handle read from the wrong remote).
            lake = call.lake
        self._uid = validate_uid(uid)
        self._lake = lake

    @property
    def uid(self) -> str:
        """The file's uid; it never changes."""
        return self._uid

    @property
    def lake(self) -> DataLake:
        """The lake this handle reads from and writes to."""
        if self._lake is None:
            from radops.lake import default_lake

            self._lake = default_lake()
        return self._lake

    def __repr__(self) -> str:
        return f"File({self._uid!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, File):
            return NotImplemented
        return self._uid == other._uid and self.lake.settings.remote == other.lake.settings.remote

    def __hash__(self) -> int:
        return hash(self._uid)

    def __reduce__(self) -> tuple[Any, ...]:
        # A handle sent to another process (Dask, multiprocessing) is a reference: its uid and
        # its lake's remote and S3 endpoint. The receiving process reads and writes through its
        # own lake there (its own settings and local storage), never this process's connections.
        if self._lake is None:
            return (_restore, (self._uid, None, None))
        settings = self._lake.settings
        return (_restore, (self._uid, settings.remote, settings.s3_endpoint_url))

    def open(self, mode: str = "r", **kwargs: Any) -> contextlib.AbstractContextManager[IO[Any]]:
        """Open the file: ``"r"``/``"rb"`` to read, ``"w"``/``"wb"`` to create it.

        Reading uses local storage, downloading (and verifying) first if needed. Writing goes to
        a temporary file that is uploaded and placed in local storage only when the ``with``
        block exits cleanly; if it raises, nothing is left behind. Text modes default to UTF-8.
        ``kwargs`` are those of :func:`open` (``encoding``, ``errors``, ``newline``,
        ``buffering``).

        Raises:
            FileNotInLakeError: reading a uid that exists neither locally nor in the lake.
            FileExistsInLakeError: writing a uid that already exists, locally or in the lake.
            ValueError: an unsupported mode.
        """
        if mode in _READ_MODES:
            if not _READ_MODES[mode]:
                kwargs.setdefault("encoding", "utf-8")
            return _Reading(self, mode, kwargs)
        if mode in _WRITE_MODES:
            return self._write(_WRITE_MODES[mode], kwargs)
        raise ValueError(f"unsupported mode {mode!r}: use 'r', 'rb', 'w' or 'wb'")

    @contextlib.contextmanager
    def _read_in_call(
        self, call: CallContext, mode: str, kwargs: dict[str, Any]
    ) -> Iterator[IO[Any]]:
        """A read inside a ``file_creator`` function: staged outputs, and inputs noted."""
        staged = call.staged_path(self._uid)
        if staged is not None:  # an output this call wrote and has not committed yet
            with open(staged, mode, **kwargs) as handle:
                yield handle
            return
        call.note_read(self._uid)
        with self.lake.open_for_reading(self._uid, mode, **kwargs) as handle:
            yield handle

    @contextlib.contextmanager
    def _write(self, binary: bool, kwargs: dict[str, Any]) -> Iterator[IO[Any]]:
        allowed = {"buffering"} | (set() if binary else _TEXT_KWARGS)
        unexpected = set(kwargs) - allowed
        if unexpected:
            raise TypeError(
                f"unexpected argument(s) for mode {'wb' if binary else 'w'}: "
                f"{', '.join(sorted(unexpected))}"
            )
        lake = self.lake
        call = active_call()
        if call is not None:
            call.check_output(self._uid)
        if call is None:
            lake.ensure_absent(self._uid)
        # Inside file_creator the upload at the end is conditional: if another process makes
        # the same output meanwhile, the call settles on theirs instead of failing here.
        tmp = lake.local.temp_path(self._uid)
        staged = False
        try:
            raw = _LocalFile(tmp, lake.local, self._uid)
            buffering = kwargs.pop("buffering", -1)
            buffered = io.BufferedWriter(
                raw, buffer_size=buffering if buffering > 1 else io.DEFAULT_BUFFER_SIZE
            )
            handle: IO[Any] = buffered
            if not binary:
                kwargs.setdefault("encoding", "utf-8")
                handle = io.TextIOWrapper(buffered, **kwargs)
            try:
                yield handle
            except BaseException:
                # The block's own error is the one to see: flushing the rest of the buffer
                # (onto a full disk, say) must not replace it. The file is discarded anyway.
                with contextlib.suppress(Exception):
                    handle.close()
                raise
            handle.close()
            sha256, size = raw.finish(tmp)
            if call is not None:
                # Inside file_creator: committed (uploaded) only if the function returns.
                call.stage(self._uid, tmp, sha256, size)
                staged = True
            else:
                lake.create(self._uid, tmp, sha256, job=WRITE_JOB)
        finally:
            if not staged:
                lake.local.discard(tmp)

    def delete(self) -> None:
        """Remove the file from the lake and local storage, recording the deletion.

        Raises:
            FileNotInLakeError: the lake does not have it.
        """
        self.lake.delete(self._uid)

    def exists_locally(self) -> bool:
        """True if local storage has this file."""
        return self.lake.exists_locally(self._uid)

    def exists_remotely(self) -> bool:
        """True if the lake has this file."""
        return self.lake.head(self._uid) is not None

    def download(self, progress: Progress | None = None) -> Path:
        """Make sure local storage has a verified copy; return its path.

        Raises:
            FileNotInLakeError: the lake does not have it.
            IntegrityError: the lake's copy does not match its recorded sha256.
        """
        return self.lake.local_path(self._uid, progress=progress)

    def local_path(self) -> Path:
        """Path of the read-only local copy, downloading it first if needed.

        For libraries that want a path rather than a file object. Do not modify the file.
        """
        return self.lake.local_path(self._uid)

    @property
    def info(self) -> FileInfo:
        """Size, sha256, creation time, metadata and creation record.

        From the lake, or local storage for a file only there; the creation record comes from
        the lineage index (synced from the lake if it does not know the file yet).

        Raises:
            FileNotInLakeError: neither the lake nor local storage has it.
        """
        from radops.errors import FileNotInLakeError

        lake = self.lake
        meta = lake.head(self._uid)
        local = lake.exists_locally(self._uid)
        if meta is not None:
            return FileInfo(
                self._uid,
                meta.size,
                meta.sha256,
                meta.created,
                local,
                True,
                lake.store.url,
                dict(meta.metadata),
                lake.lineage.creation_of(self._uid, meta),
            )
        entry = lake.local.entry(self._uid)
        stat = lake.local.stat(self._uid)
        if stat is None:
            raise FileNotInLakeError(
                f"{self._uid!r} does not exist locally or in the data lake {lake.store.url}"
            )
        return FileInfo(
            self._uid,
            stat.st_size,
            entry.sha256 if entry else None,
            None,
            True,
            False,
            lake.store.url,
        )


class _LocalFile(HashingFile):
    """The temp file behind ``File.open("w")``: a full or read-only disk under RADOPS_HOME
    raises one :class:`~radops.errors.LocalStorageError` (an ``OSError``) naming it."""

    def __init__(self, path: Path, local: LocalStorage, uid: str) -> None:
        self._local = local
        self._doing = f"write {uid!r}"
        try:
            with local.writing(self._doing):
                super().__init__(path)
        except BaseException:
            io.RawIOBase.close(self)  # no file descriptor to close when the object goes
            raise

    def write(self, data: Buffer) -> int:
        with self._local.writing(self._doing):
            return super().write(data)

    def close(self) -> None:
        with self._local.writing(self._doing):
            super().close()


def _restore(uid: str, remote: str | None, endpoint: str | None) -> File:
    """A :class:`File` unpickled: on this process's lake for ``remote`` (see ``__reduce__``)."""
    handle = File.__new__(File)
    handle._uid = uid
    if remote is None:
        handle._lake = None  # the default lake, resolved on first use as always
    else:
        from radops.lake import lake_on

        handle._lake = lake_on(remote, endpoint)
    return handle


class _Reading:
    """What ``File.open("r")`` returns. Whether the read is part of a ``file_creator`` call is
    decided when the ``with`` block is entered, not when ``open`` is called."""

    __slots__ = ("_file", "_inner", "_kwargs", "_mode")

    def __init__(self, file: File, mode: str, kwargs: dict[str, Any]) -> None:
        self._file = file
        self._mode = mode
        self._kwargs = kwargs
        self._inner: contextlib.AbstractContextManager[IO[Any]] | None = None

    def __enter__(self) -> IO[Any]:
        call = active_call()
        if call is None:
            self._inner = self._file.lake.open_for_reading(
                self._file.uid, self._mode, **self._kwargs
            )
        else:
            self._inner = self._file._read_in_call(call, self._mode, self._kwargs)
        return self._inner.__enter__()

    def __exit__(self, *exc_info: Any) -> bool | None:
        if self._inner is None:
            return None  # never entered
        return self._inner.__exit__(*exc_info)
