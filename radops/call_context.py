"""The call context: what a running ``file_creator`` step exposes to the files it opens.

:class:`~radops.file.File` and :func:`~radops.creator.file_creator` meet here and nowhere else.
While a step's function runs, :func:`active_call` returns its :class:`CallContext` (a
contextvar: threads and tasks started with the function's context share it). A ``File`` opened
then asks it for an implicit uid, stages what it writes in it instead of uploading, reads its
own staged outputs back from it, and notes the other files it reads as inputs. The creator
builds the context, makes it active for the function (:func:`in_call`), then commits what was
staged. This module imports neither of them.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from radops.errors import FileExistsInLakeError, OutputsError, UntrackedOutputError

if TYPE_CHECKING:
    from radops.lake import DataLake

__all__ = ["CallContext", "Staged", "active_call", "in_call"]


@attrs.define
class Staged:
    """An output the function wrote and closed: its finished temp file, not yet uploaded."""

    uid: str
    tmp: Path
    sha256: str
    size: int


@attrs.define
class CallContext:
    """The state of one running ``file_creator`` call, as ``File`` sees it (:func:`active_call`)."""

    lake: DataLake
    job_name: str
    digest: str
    explicit: list[str] | None
    single: bool = False  # the outputs were declared with output_uid (one File returned)
    staged: dict[str, Staged] = attrs.field(factory=dict)
    read: list[str] = attrs.field(factory=list)
    ended: bool = False  # the function returned or raised: no more outputs
    inputs_now: dict[str, str | None] = attrs.field(factory=dict)  # their sha256 at the start
    _counter: int = 0
    # Threads the function starts with its context (asyncio.to_thread, copy_context().run)
    # share this call: each implicit uid is handed out once, each output staged once.
    _lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False)

    def implicit_uid(self, suffix: str = "") -> str:
        """The next implicit output uid of this call: ``<module.function>/<digest>-<n><suffix>``."""
        with self._lock:
            uid = f"{self.job_name}/{self.digest[:32]}-{self._counter}{suffix}"
            self._counter += 1
        return uid

    def check_output(self, uid: str) -> None:
        """Refuse to create ``uid`` unless the call declared it (or it is implicit)."""
        if uid in self.staged:
            raise FileExistsInLakeError(f"{uid!r} was already written by this call")
        implicit_prefix = f"{self.job_name}/{self.digest[:32]}-"
        if uid.startswith(implicit_prefix):
            return
        if self.explicit is None or uid not in self.explicit:
            declared = ", ".join(repr(u) for u in self.explicit or []) or "none"
            raise UntrackedOutputError(
                f"{self.job_name} tried to create {uid!r}, which it did not declare: inside a "
                f"file_creator function, create File() (implicit uid) or the uids passed as "
                f"output_uid/output_uids (declared: {declared})"
            )

    def stage(self, uid: str, tmp: Path, sha256: str, size: int) -> None:
        """Keep a finished output until the function returns.

        Raises:
            OutputsError: the function has returned already (the output's handle was closed
                after it): the call's outputs were settled without this one.
        """
        with self._lock:
            if self.ended:
                raise OutputsError(
                    f"{uid!r} was closed after {self.job_name} returned, so it is not one of "
                    "its outputs and was discarded: close output files inside the function "
                    "(or write them in a with block)"
                )
            if uid in self.staged:
                raise FileExistsInLakeError(f"{uid!r} was already written by this call")
            self.staged[uid] = Staged(uid, tmp, sha256, size)

    def end(self) -> None:
        """The function returned or raised: no output is staged from now on."""
        with self._lock:
            self.ended = True

    def staged_path(self, uid: str) -> Path | None:
        """The staged bytes of ``uid`` if this call wrote it (so it can read it back)."""
        staged = self.staged.get(uid)
        return staged.tmp if staged else None

    def note_read(self, uid: str) -> None:
        """Remember an input that the function opened without receiving it as an argument."""
        with self._lock:
            if uid not in self.read and uid not in self.staged:
                self.read.append(uid)

    def discard(self) -> None:
        """Delete every staged output (the function raised)."""
        for staged in self.staged.values():
            staged.tmp.unlink(missing_ok=True)
        self.staged.clear()


_active: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar(
    "radops_call", default=None
)


def active_call() -> CallContext | None:
    """The ``file_creator`` call running in this context, if any."""
    return _active.get()


@contextlib.contextmanager
def in_call(context: CallContext) -> Iterator[CallContext]:
    """Make ``context`` the active call while the block (the step's function) runs; when it
    ends, returning or raising, the call takes no more outputs (:meth:`CallContext.end`)."""
    token = _active.set(context)
    try:
        yield context
    finally:
        _active.reset(token)
        context.end()
