"""Who is writing: a token naming this process, and whether the writer of a token is gone.

Every object radops creates carries its writer's token, so that recovery can tell an
unfinished creation that is still under way (another process is between uploading the object
and recording its creation) from one whose process was killed. Only a process on this machine
can be proven dead; another machine's writer is presumed alive until ``stale_after``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from functools import cache

__all__ = ["WRITER_KEY", "current", "is_dead", "running"]

# Name of the writer token in an object's metadata.
WRITER_KEY = "radops-writer"

_running: set[str] = set()
_running_lock = threading.Lock()


@cache
def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip()[:8]
    except OSError:
        return ""


def _proc_stat(pid: int) -> tuple[str, str]:
    """(state, start time) of ``pid`` from /proc; ("", "") where /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return "", ""
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) <= 19:
        return "", ""
    return fields[0], fields[19]


def _start_time(pid: int) -> str:
    """When ``pid`` started (clock ticks since boot), so a reused pid is not mistaken for it."""
    return _proc_stat(pid)[1]


@cache
def _host() -> str:
    return socket.gethostname().replace(":", "_")


_current: tuple[int, str] | None = None


def current() -> str:
    """This process's token: ``host:boot:pid:start`` (computed once per process, fork-safe)."""
    global _current
    pid = os.getpid()
    if _current is None or _current[0] != pid:
        _current = (pid, f"{_host()}:{_boot_id()}:{pid}:{_start_time(pid)}")
    return _current[1]


def is_dead(token: str | None, run_id: str | None = None) -> bool:
    """True if the process that wrote ``token`` has certainly ended.

    ``run_id``: the run the token wrote for. In this very process a run that is no longer
    :func:`running` is over too (its creation failed and could not clean up after itself).
    """
    if not token:
        return False
    parts = token.split(":")
    if len(parts) != 4:
        return False
    host, boot, pid_text, start = parts
    if host != _host():
        return False  # another machine: only time can tell (stale_after)
    if boot and _boot_id() and boot != _boot_id():
        return True  # this machine rebooted since
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if pid == os.getpid() and start == _start_time(pid):
        if run_id is None:
            return False
        with _running_lock:
            return run_id not in _running
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, owned by another user
    state, started = _proc_stat(pid)
    if state in ("Z", "X"):
        return True  # killed, not yet reaped by its parent
    return bool(start) and started not in ("", start)


@contextlib.contextmanager
def running(run_id: str) -> Iterator[None]:
    """Mark ``run_id`` as under way in this process while the block runs."""
    with _running_lock:
        _running.add(run_id)
    try:
        yield
    finally:
        with _running_lock:
            _running.discard(run_id)
