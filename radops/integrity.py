"""sha256 computed while bytes flow, so integrity never costs a second pass over a file."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import queue
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer as Buffer

__all__ = [
    "CHUNK_SIZE",
    "HashingFile",
    "HashingSink",
    "InOrderHasher",
    "copy_and_hash",
    "sha256_file",
]

CHUNK_SIZE = 1024 * 1024


def sha256_file(path: Path, progress: Callable[[int], None] | None = None) -> tuple[str, int]:
    """Return (sha256 hex digest, size) of the file at ``path``, read once.

    ``progress`` is called with the size of each chunk once it is hashed.

    Raises:
        OSError: ``path`` cannot be read, or is not a regular file (``EINVAL``): a FIFO put
            where a file was expected is refused at once instead of waiting for a writer.
    """
    digest = hashlib.sha256()
    size = 0
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    os.set_blocking(fd, True)
    with open(fd, "rb", buffering=0) as handle:
        buffer = bytearray(CHUNK_SIZE)
        view = memoryview(buffer)
        while n := handle.readinto(buffer):
            digest.update(view[:n])
            size += n
            if progress:
                progress(n)
    return digest.hexdigest(), size


def copy_and_hash(
    src: IO[bytes], dst: IO[bytes], progress: Callable[[int], None] | None = None
) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` and return (sha256, size) of what was copied.

    The hash runs in a thread of its own, beside the copy (see :class:`HashingSink`), once
    there is more than one chunk: a file that fits in one chunk is hashed in line, since
    starting a thread cost more than hashing it (``datalake add`` of thousands of small files).
    ``progress`` is called with the size of each chunk once it is written.
    """
    first = src.read(CHUNK_SIZE)
    rest = src.read(CHUNK_SIZE) if first else b""
    with HashingSink(dst, background=bool(rest)) as sink:
        chunk = first
        while chunk:
            sink.write(chunk)
            if progress:
                progress(len(chunk))
            chunk, rest = rest, (src.read(CHUNK_SIZE) if rest else b"")
        return sink.hexdigest(), sink.size


class HashingSink(io.RawIOBase):
    """A write-only, non-seekable file that hashes what it forwards to ``target``.

    Non-seekable on purpose: boto3's transfer manager then delivers the parts of a parallel
    download in order, so the hash is computed while the download runs. With ``background``,
    the hashing runs in a thread of its own, beside the thread that writes: SHA-256 (about
    770 MB/s on one core) in line with the writes held a parallel download to two thirds of
    boto3's speed (benchmark case 5). Call :meth:`hexdigest` or :meth:`close` to end it.
    """

    def __init__(self, target: IO[bytes], *, background: bool = False) -> None:
        super().__init__()
        self._target = target
        self._digest = hashlib.sha256()
        self.size = 0
        self._queue: queue.Queue[bytes | None] | None = None
        self._hasher: threading.Thread | None = None
        if background:
            # Bounded: a writer faster than the hash waits instead of piling up chunks.
            self._queue = queue.Queue(maxsize=_QUEUED_CHUNKS)
            self._hasher = threading.Thread(
                target=self._hash_queued, args=(self._queue,), name="radops-sha256", daemon=True
            )
            self._hasher.start()

    def writable(self) -> bool:
        return True

    def write(self, data: Buffer) -> int:
        view = memoryview(data)
        self._target.write(view)
        if self._queue is None:
            self._digest.update(view)
        else:  # bytes are immutable; any other buffer may be reused by the caller: copy it
            self._queue.put(data if isinstance(data, bytes) else view.tobytes())
        self.size += view.nbytes
        return view.nbytes

    def _hash_queued(self, chunks: queue.Queue[bytes | None]) -> None:
        while (chunk := chunks.get()) is not None:
            self._digest.update(chunk)

    def _finish_hashing(self) -> None:
        if self._hasher is not None and self._queue is not None:
            self._queue.put(None)
            self._hasher.join()
            self._hasher = None

    def hexdigest(self) -> str:
        """The sha256 of everything written so far (no more writes once asked, in background)."""
        self._finish_hashing()
        return self._digest.hexdigest()

    def close(self) -> None:
        self._finish_hashing()
        super().close()


class InOrderHasher(io.RawIOBase):
    """A seekable, write-only file over ``fd`` (open for reading and writing, closed by
    :meth:`close`: pass a ``os.dup`` of a file's descriptor), for parallel downloads.

    Parts are written at their offsets as they arrive (as boto3's ``download_file`` does), and
    a thread hashes the file in order, as far as it is contiguous, reading back what was just
    written (from the page cache). Unlike :class:`HashingSink`, no part waits in memory for the
    ones before it. Bytes are written once: a write over a range already contiguous (a part
    retried after its first bytes arrived) keeps the first bytes, so what was hashed is what
    the file holds. Call :meth:`hexdigest` (or :meth:`close`) when every part is written.
    """

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self._open = threading.Lock()
        self._pos = 0
        self._contiguous = 0  # bytes [0, _contiguous) are written
        self._pending: dict[int, int] = {}  # start -> end of ranges written beyond that
        self._written = threading.Condition()
        self._finished = False
        self._digest = hashlib.sha256()
        self.size = 0  # bytes hashed
        self._error: BaseException | None = None
        self._hasher: threading.Thread | None = threading.Thread(
            target=self._hash_in_order, name="radops-sha256", daemon=True
        )
        self._hasher.start()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            self._pos = offset
        elif whence == os.SEEK_CUR:
            self._pos += offset
        else:
            raise io.UnsupportedOperation("seek from the end")
        return self._pos

    def write(self, data: Buffer) -> int:
        view = memoryview(data).cast("B")
        start, end = self._pos, self._pos + view.nbytes
        self._pos = end
        skip = max(0, min(self._contiguous, end) - start)  # already written: keep the first
        offset = start + skip
        remaining = view[skip:]
        with self._open:  # close() waits for a write in progress, and no write follows it
            if self.closed:
                # A part still arriving after an interrupted download was given up.
                raise ValueError("write to a closed InOrderHasher")
            while remaining:
                done = os.pwrite(self._fd, remaining, offset)
                remaining, offset = remaining[done:], offset + done
        if end > start + skip:
            self._mark_written(start + skip, end)
        return view.nbytes

    def _mark_written(self, start: int, end: int) -> None:
        with self._written:
            self._pending[start] = max(end, self._pending.get(start, end))
            while self._contiguous in self._pending:
                self._contiguous = max(self._contiguous, self._pending.pop(self._contiguous))
            self._written.notify()

    def _hash_in_order(self) -> None:
        try:
            self._hash_written()
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that asks for the digest
            self._error = exc

    def _hash_written(self) -> None:
        while True:
            with self._written:
                while self._contiguous == self.size and not self._finished:
                    self._written.wait()
                upto = self._contiguous
                if upto == self.size:
                    return  # finished, and everything written was hashed
            while self.size < upto:
                chunk = os.pread(self._fd, min(CHUNK_SIZE, upto - self.size), self.size)
                if not chunk:
                    return  # the file was truncated under us: the size check will say so
                self._digest.update(chunk)
                self.size += len(chunk)

    def _finish_hashing(self) -> None:
        if self._hasher is not None:
            with self._written:
                self._finished = True
                self._written.notify()
            self._hasher.join()
            self._hasher = None

    def hexdigest(self) -> str:
        """The sha256 of the file's contiguous start (the whole file once every part is in);
        :attr:`size` says how many bytes that is.

        Raises:
            OSError: the file could not be read back.
        """
        self._finish_hashing()
        if self._error is not None:
            raise self._error
        return self._digest.hexdigest()

    def close(self) -> None:
        """Finish hashing and close the descriptor (it belongs to this object)."""
        self._finish_hashing()
        with self._open:
            if not self.closed:
                os.close(self._fd)
                super().close()


#: Chunks a background hash may lag behind the writes (boto3 writes 256 KiB at a time).
_QUEUED_CHUNKS = 64


class HashingFile(io.RawIOBase):
    """A raw, seekable, write-only file over a new file, hashing bytes as they are written.

    Wrapped in :class:`io.BufferedWriter` (and :class:`io.TextIOWrapper` for text) it is an
    ordinary file object. Writes that do not append (after a seek) or that bypass it through
    ``fileno()`` are detected, and :meth:`finish` then hashes the file once more from disk, so
    the digest is always the digest of the bytes on disk.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.name = str(path)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._digest = hashlib.sha256()
        self._hashed = 0  # bytes [0, _hashed) are in the digest
        self._pos = 0
        self._dirty = False
        self._final_size = -1

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._pos = os.lseek(self._fd, offset, whence)
        return self._pos

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else size
        os.ftruncate(self._fd, size)
        if size < self._hashed:
            self._dirty = True
        return size

    def write(self, data: Buffer) -> int:
        view = memoryview(data).cast("B")
        written = os.write(self._fd, view)
        if self._pos == self._hashed and not self._dirty:
            self._digest.update(view[:written])
            self._hashed += written
        else:
            self._dirty = True
        self._pos += written
        return written

    def close(self) -> None:
        # No fsync here: DataLake.commit flushes the file to disk while it uploads it.
        if not self.closed:
            try:
                self._final_size = os.fstat(self._fd).st_size
            finally:
                os.close(self._fd)
                super().close()

    def finish(self, path: Path) -> tuple[str, int]:
        """Close and return (sha256, size) of the file's bytes.

        Close the buffered wrappers first, so their buffers reach this file.
        """
        self.close()
        if self._dirty or self._final_size != self._hashed:
            return sha256_file(path)
        return self._digest.hexdigest(), self._final_size
