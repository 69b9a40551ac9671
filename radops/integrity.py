"""sha256 computed while bytes flow, so integrity never costs a second pass over a file."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer as Buffer

__all__ = ["CHUNK_SIZE", "HashingFile", "HashingSink", "copy_and_hash", "sha256_file"]

CHUNK_SIZE = 1024 * 1024


def sha256_file(path: Path) -> tuple[str, int]:
    """Return (sha256 hex digest, size) of the file at ``path``, read once."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb", buffering=0) as handle:
        buffer = bytearray(CHUNK_SIZE)
        view = memoryview(buffer)
        while n := handle.readinto(buffer):
            digest.update(view[:n])
            size += n
    return digest.hexdigest(), size


def copy_and_hash(src: IO[bytes], dst: IO[bytes]) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` and return (sha256, size) of what was copied."""
    digest = hashlib.sha256()
    size = 0
    while chunk := src.read(CHUNK_SIZE):
        digest.update(chunk)
        dst.write(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


class HashingSink(io.RawIOBase):
    """A write-only, non-seekable file that hashes what it forwards to ``target``.

    Non-seekable on purpose: boto3's transfer manager then delivers the parts of a parallel
    download in order, so the hash is computed while the download runs.
    """

    def __init__(self, target: IO[bytes]) -> None:
        super().__init__()
        self._target = target
        self._digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Buffer) -> int:
        view = memoryview(data)
        self._digest.update(view)
        self._target.write(view)
        self.size += view.nbytes
        return view.nbytes

    def hexdigest(self) -> str:
        """The sha256 of everything written so far."""
        return self._digest.hexdigest()


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
        if not self.closed:
            try:
                os.fsync(self._fd)
                self._final_size = os.fstat(self._fd).st_size
            finally:
                os.close(self._fd)
                super().close()

    def finish(self, path: Path) -> tuple[str, int]:
        """Close (flushing to disk) and return (sha256, size) of the file's bytes.

        Close the buffered wrappers first, so their buffers reach this file.
        """
        self.close()
        if self._dirty or self._final_size != self._hashed:
            return sha256_file(path)
        return self._digest.hexdigest(), self._final_size
