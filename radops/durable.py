"""Flushing files to disk, several at a time, on a small pool of threads shared by the process.

A creation needs a few files on disk before it may go on: in a directory lake the object's bytes
and its metadata, the local copy, then the lineage record and the folder that names the object.
On a journaling file system each ``fsync`` waits for a journal commit, and fsyncs issued at the
same moment share one: so radops issues the fsyncs of one step together and waits for them all,
instead of one after the other. The pool starts on first use, keeps at most
:data:`MAX_WORKERS` threads for the whole process (never one per call), and is rebuilt in a
forked child (its threads do not survive a fork). See docs/reliability.md, "What is on disk
when", for which fsync serves which promise.
"""

from __future__ import annotations

import errno
import os
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

__all__ = [
    "MAX_WORKERS",
    "Pending",
    "fsync_path",
    "fsync_together",
    "start_fsync",
    "sync_filesystem",
]

#: Threads of the shared pool: enough for the fsyncs of a few creations at once.
MAX_WORKERS = 4

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _forget_pool() -> None:
    """In a forked child: the parent's pool threads are not there, so start a new pool."""
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def fsync_path(path: Path) -> None:
    """``fsync`` the file or folder ``path``.

    Some file systems refuse an fsync of a folder (EINVAL, EBADF); there is nothing more to do
    there, so that is not an error.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF) or not os.path.isdir(path):
            raise
    finally:
        os.close(fd)


class Pending:
    """An fsync running on the shared pool (or already done, when the pool was not there)."""

    def __init__(self, future: Future[None]) -> None:
        self._future = future

    def wait(self) -> None:
        """Wait for the fsync; raise its ``OSError`` if it failed."""
        self._future.result()

    def wait_quietly(self) -> None:
        """Wait for the fsync, whatever its outcome (the file is being given up)."""
        self._future.exception()

    def succeeded(self) -> bool:
        """True once the fsync has ended well."""
        return self._future.done() and self._future.exception() is None


def start_fsync(path: Path) -> Pending:
    """Start ``fsync_path(path)`` on the shared pool; :meth:`Pending.wait` for its end.

    At interpreter exit, when the pool takes no more work, the fsync runs here and now.
    """
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(MAX_WORKERS, thread_name_prefix="radops-fsync")
        pool = _pool
    try:
        return Pending(pool.submit(fsync_path, path))
    except RuntimeError:  # "cannot schedule new futures after interpreter shutdown"
        future: Future[None] = Future()
        try:
            fsync_path(path)
        except OSError as exc:
            future.set_exception(exc)
        else:
            future.set_result(None)
        return Pending(future)


def sync_filesystem(path: Path) -> bool:
    """Flush everything written to the file system that holds ``path`` (Linux ``syncfs``);
    False where that call is not available, and the caller must fsync file by file.

    For many files at once: one ``syncfs`` after thousands of small files are written costs
    one journal commit, where an fsync per file costs one each (a bulk add of 2,000 files
    spent a fifth of its time in them).

    Raises:
        OSError: the file system reported an error writing back.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), str(path))
    finally:
        os.close(fd)
    return True


def fsync_together(*paths: Path) -> None:
    """``fsync`` every path, at the same time: the last one here, the others on the pool.

    Raises:
        OSError: the first fsync that failed (after all of them ended).
    """
    if not paths:
        return
    others = [start_fsync(path) for path in paths[:-1]]
    error: OSError | None = None
    try:
        fsync_path(paths[-1])
    except OSError as exc:
        error = exc
    for pending in others:
        try:
            pending.wait()
        except OSError as exc:
            error = error or exc
    if error is not None:
        raise error
