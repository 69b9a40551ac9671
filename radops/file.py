"""File: a handle on one immutable data-lake file."""

from __future__ import annotations

import contextlib
import functools
import io
import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs

from radops.call_context import active_call
from radops.integrity import HashingFile
from radops.lake import default_lake, lake_on
from radops.lineage.naming import WRITE_JOB
from radops.uids import validate_uid

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer as Buffer

    from radops.cache import LocalStorage
    from radops.call_context import CallContext
    from radops.lake import DataLake
    from radops.lineage.graph import LineageGraph
    from radops.stores import Progress

__all__ = ["File", "FileInfo"]

log = logging.getLogger("radops")

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
            self._lake = default_lake()
        return self._lake

    def __repr__(self) -> str:
        return f"File({self._uid!r})"

    def _repr_html_(self) -> str:
        """Jupyter's display of the file: a table of its :attr:`info` (never raises)."""
        from radops.notebook import file_html

        return file_html(self)

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

    def open(self, mode: str = "r", **kwargs: Any) -> IO[Any]:
        """Open the file: ``"r"``/``"rb"`` to read, ``"w"``/``"wb"`` to create it.

        Returns an ordinary file object (:class:`io.TextIOWrapper`, or
        :class:`io.BufferedReader`/:class:`io.BufferedWriter` in binary modes), usable with
        ``with`` or without, like the built-in :func:`open`; ``kwargs`` are those of
        :func:`open` (``encoding``, ``errors``, ``newline``, ``buffering``), and text modes
        default to UTF-8.

        Reading uses a verified local copy, downloading (and verifying) it first if needed;
        eviction leaves it alone until the file object is closed. A read handle that is never
        closed is closed by the garbage collector, as the built-in ``open``'s is. Inside a
        ``file_creator`` function, the file read is one of the call's inputs; so is a file
        opened before the call whose ``with`` block starts inside it.

        Writing goes to a temporary file. The file is created (uploaded, and placed in local
        storage) when the handle is closed: by :meth:`~io.IOBase.close` or at the end of the
        ``with`` block. Until then nothing of it is visible. If the ``with`` block raises, or
        the handle is garbage-collected without having been closed, the bytes are discarded
        and the file is not created (the latter with a warning): a half-written file never
        reaches the lake. Inside a ``file_creator`` function, closing stages the output, which
        is uploaded when the function returns; it must be closed before that.

        Raises:
            FileNotInLakeError: reading a uid that exists neither locally nor in the lake.
            FileExistsInLakeError: writing a uid that already exists, locally or in the lake
                (when opening, or when closing if another process created it meanwhile).
            ValueError: an unsupported mode.
            TypeError: an argument the mode does not take.
        """
        if mode in _READ_MODES:
            if not _READ_MODES[mode]:
                kwargs.setdefault("encoding", "utf-8")
            call = active_call()
            if call is not None:
                return self._read_in_call(call, mode, kwargs)
            # Opened outside a call, its with block may still start inside one (it is then
            # an input of that call).
            on_enter = functools.partial(_note_read, self._uid)
            return self.lake.open_for_reading(self._uid, mode, on_enter=on_enter, **kwargs)
        if mode in _WRITE_MODES:
            return self._write(_WRITE_MODES[mode], kwargs)
        raise ValueError(f"unsupported mode {mode!r}: use 'r', 'rb', 'w' or 'wb'")

    def _read_in_call(self, call: CallContext, mode: str, kwargs: dict[str, Any]) -> IO[Any]:
        """A read inside a ``file_creator`` function: staged outputs, and inputs noted."""
        staged = call.staged_path(self._uid)
        if staged is not None:  # an output this call wrote and has not committed yet
            return open(staged, mode, **kwargs)
        call.note_read(self._uid)
        return self.lake.open_for_reading(self._uid, mode, **kwargs)

    def _write(self, binary: bool, kwargs: dict[str, Any]) -> IO[Any]:
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
        try:
            raw = _LocalFile(tmp, lake.local, self._uid)
            pending = _Pending(lake, self._uid, tmp, raw, call)
            options = dict(kwargs)
            buffering = options.pop("buffering", -1)
            size = buffering if buffering > 1 else io.DEFAULT_BUFFER_SIZE
            if binary:
                return _BinaryWriter(pending, raw, size)
            buffered = io.BufferedWriter(raw, size)
            options.setdefault("encoding", "utf-8")
            return _TextWriter(pending, buffered, **options)
        except BaseException:
            lake.local.discard(tmp)
            raise

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

    def lineage(self, depth: int = 1, *, downstream: bool = False) -> LineageGraph:
        """The lineage graph around the file, as ``radops datalake lineage`` draws it.

        ``depth`` creations upstream (1: the run that made the file and its inputs); with
        ``downstream``, also what was made from it, as deep. In Jupyter the graph displays as
        a table of its runs and the HTML lineage picture.

        Raises:
            ValueError: ``depth`` is less than 1.
        """
        from radops.lineage.graph import build_graph

        lineage = self.lake.lineage
        lineage.prepare()
        return build_graph(
            self._uid,
            lineage.creation_of,
            lineage.runs_using,
            depth=depth,
            downstream=downstream,
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


class _Pending:
    """A write not yet created: what closing its handle commits, or abandoning discards."""

    def __init__(
        self, lake: DataLake, uid: str, tmp: Path, raw: _LocalFile, call: CallContext | None
    ) -> None:
        self.lake = lake
        self.uid = uid
        self.tmp = tmp
        self.raw = raw
        self.call = call

    def commit(self) -> None:
        """Create the file from the closed temp file: upload it, or stage it in the call."""
        staged = False
        try:
            sha256, size = self.raw.finish(self.tmp)
            if self.call is not None:
                # Inside file_creator: committed (uploaded) only if the function returns.
                self.call.stage(self.uid, self.tmp, sha256, size)
                staged = True
            else:
                self.lake.create(self.uid, self.tmp, sha256, job=WRITE_JOB)
        finally:
            if not staged:
                self.lake.local.discard(self.tmp)

    def discard(self) -> None:
        """Give the write up: its temp file is removed, nothing is created."""
        self.lake.local.discard(self.tmp)


class _Committing:
    """What the write handles add to their io class: ``close()`` creates the file; the end of
    a ``with`` block that raised, or garbage collection before ``close()``, discards it.

    Mixed into subclasses of the io classes themselves, so that a handle is an ordinary file
    object for every library that checks (``isinstance(handle, io.IOBase)``).
    """

    _radops_pending: _Pending | None

    def close(self) -> None:
        pending, self._radops_pending = getattr(self, "_radops_pending", None), None
        if pending is None:
            super().close()  # type: ignore[misc]
            return
        try:
            super().close()  # type: ignore[misc]  # the last buffered bytes reach the file
        except BaseException:
            pending.discard()
            raise
        pending.commit()

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc_type is not None:
            # The block's own error is the one to see: flushing the rest of the buffer (onto
            # a full disk, say) must not replace it. The file is discarded anyway.
            self._abandon()
            return
        self.close()

    def __del__(self) -> None:
        pending = getattr(self, "_radops_pending", None)
        if pending is None:
            return  # closed, or abandoned already
        self._abandon()
        uid = pending.uid
        # Not flushed and created as the built-in open would: a handle dropped on the way (an
        # exception between open and close, a forgotten close) must not publish a file that
        # may be half-written. Logged, since a ResourceWarning is hidden by default.
        with contextlib.suppress(Exception):
            log.warning(
                "%s was never closed: it was not created, its bytes are discarded (call "
                "close() on the handle, or use `with File(...).open('w') as handle:`)",
                uid,
            )

    def _abandon(self) -> None:
        pending, self._radops_pending = getattr(self, "_radops_pending", None), None
        with contextlib.suppress(Exception):
            super().close()  # type: ignore[misc]
        if pending is not None:
            pending.discard()


class _TextWriter(_Committing, io.TextIOWrapper):
    """What ``File.open("w")`` returns."""

    def __init__(self, pending: _Pending, buffer: io.BufferedWriter[Any], **options: Any) -> None:
        super().__init__(buffer, **options)
        self.mode = "w"  # type: ignore[misc]  # as the built-in open sets it
        self._radops_pending = pending


class _BinaryWriter(_Committing, io.BufferedWriter):
    """What ``File.open("wb")`` returns."""

    def __init__(self, pending: _Pending, raw: _LocalFile, buffer_size: int) -> None:
        super().__init__(raw, buffer_size)
        self._radops_pending = pending


def _note_read(uid: str) -> None:
    """A read's with block starts: inside a ``file_creator`` call, ``uid`` is an input."""
    call = active_call()
    if call is not None:
        call.note_read(uid)


def _restore(uid: str, remote: str | None, endpoint: str | None) -> File:
    """A :class:`File` unpickled: on this process's lake for ``remote`` (see ``__reduce__``)."""
    handle = File.__new__(File)
    handle._uid = uid
    if remote is None:
        handle._lake = None  # the default lake, resolved on first use as always
    else:
        handle._lake = lake_on(remote, endpoint)
    return handle
