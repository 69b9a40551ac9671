"""Who is writing: a token naming this process, and whether the writer of a token is gone.

Every object radops creates carries its writer's token, so that recovery can tell an
unfinished creation that is still under way (another process is between uploading the object
and recording its creation) from one whose process was killed. Removing an upload in flight
loses a creation, so a writer counts as alive unless radops can prove it dead.

A token is ``host:boot:namespaces:pid:start``:

- ``host``: the host name, for people (``CreationPendingError`` names the writer). It proves
  nothing: containers on one host often share it (Kubernetes ``hostNetwork`` pods,
  ``docker --hostname``), and so can two machines.
- ``boot``: the kernel's boot id, the same in every container of one host and different on
  another machine or after a reboot;
- ``namespaces``: the inodes of the writer's PID and time namespaces (``/proc/self/ns``): a
  pid names the same process only within one PID namespace, and a start time reads the same
  only within one time namespace;
- ``pid`` and ``start``: the process and when it started (clock ticks after boot), so that a
  reused pid is not taken for it.

A writer is proven dead only by a process of the same boot and the same PID namespace, which
finds its pid gone, a zombie, or (in the same time namespace) another process started at
another time. A writer anywhere else (another machine, another container, the same machine
before a reboot, which looks like another machine of the same name) is presumed alive until
``stale_after``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from functools import cache

__all__ = ["WRITER_KEY", "current", "file_tag", "is_dead", "is_dead_tag", "running"]

# Name of the writer token in an object's metadata.
WRITER_KEY = "radops-writer"

_running: set[str] = set()
_running_lock = threading.Lock()


@cache
def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            boot = handle.read().strip()
    except (OSError, ValueError):
        return ""
    # All of it (122 random bits): every host's first PID namespace has the same inode, so the
    # boot id alone tells two machines apart. Without its dashes: it is no run id.
    boot = boot.replace("-", "")
    return boot if boot.isalnum() and len(boot) <= 64 else ""


def _namespace(kind: str) -> str:
    """The inode of this process's ``kind`` namespace, "" where /proc cannot tell."""
    try:
        return str(os.stat(f"/proc/self/ns/{kind}").st_ino)
    except OSError:
        return ""


def _proc_stat(path: str) -> tuple[str, str]:
    """(state, start time) from the stat file ``path`` of /proc; ("", "") if it cannot tell."""
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return "", ""
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) <= 19:
        return "", ""
    return fields[0], fields[19]


def _proc_is_ours() -> bool:
    """True if /proc numbers processes as this process's PID namespace does.

    A process started with ``unshare --pid`` but without a /proc of its own still sees its
    parent namespace's /proc, where ``/proc/<pid>`` is another process than its ``pid``.
    """
    try:
        return os.readlink("/proc/self") == str(os.getpid())
    except OSError:
        return False


@cache
def _host() -> str:
    return socket.gethostname().replace(":", "_")


class _Identity:
    """This process, as tokens name it; computed once per process (fork-safe by its pid)."""

    __slots__ = ("namespaces", "pid", "proc_is_ours", "start")

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.namespaces = f"{_namespace('pid')}-{_namespace('time')}"
        # /proc/self is this process whichever namespace /proc belongs to.
        self.start = _proc_stat("/proc/self/stat")[1]
        self.proc_is_ours = _proc_is_ours()


_me: _Identity | None = None


def _identity() -> _Identity:
    global _me
    if _me is None or _me.pid != os.getpid():
        _me = _Identity()
    return _me


def current() -> str:
    """This process's token: ``host:boot:namespaces:pid:start``."""
    me = _identity()
    return f"{_host()}:{_boot_id()}:{me.namespaces}:{me.pid}:{me.start}"


def file_tag() -> str:
    """This process's token without the host, fit for a file name: ``boot_namespaces_pid_start``.

    Temp files of local storage start with it, so that ``datalake repair`` can tell which of
    them a dead process left, even in a RADOPS_HOME that several containers share.
    """
    return "_".join(current().split(":")[1:])


def is_dead_tag(name: str) -> bool:
    """True if the file ``name``, which starts with a :func:`file_tag` and ``_``, was made by a
    process that has certainly ended. Any other name: False."""
    parts = name.split("_", 4)
    return len(parts) == 5 and is_dead(":".join(["", *parts[:4]]))


def is_dead(token: object, run_id: str | None = None) -> bool:
    """True if the process that wrote ``token`` has certainly ended (see the module).

    ``token`` comes from the lake, so anything that is not a token of this format (an older
    radops', a damaged one) proves nothing. ``run_id``: the run the token wrote for. In this
    very process a run that is no longer :func:`running` is over too (its creation failed and
    could not clean up after itself).
    """
    if not isinstance(token, str):
        return False
    parts = token.split(":")
    if len(parts) != 5:
        return False
    _, boot, namespaces, pid_text, start = parts
    if not boot or boot != _boot_id():
        return False  # another machine, or this one before a reboot: only time can tell
    me = _identity()
    pid_namespace, _, time_namespace = namespaces.partition("-")
    my_pid_namespace, _, my_time_namespace = me.namespaces.partition("-")
    if not pid_namespace or pid_namespace != my_pid_namespace:
        return False  # another PID namespace (a container): its pids are not ours to look up
    if not pid_text.isdigit() or len(pid_text) > 10 or int(pid_text) <= 0:
        return False
    pid = int(pid_text)
    if pid == me.pid and start == me.start:
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
    if not me.proc_is_ours:
        return False  # its start time cannot be read: the pid may be its own, alive
    state, started = _proc_stat(f"/proc/{pid}/stat")
    if state in ("Z", "X"):
        return True  # killed, not yet reaped by its parent
    if not time_namespace or time_namespace != my_time_namespace:
        return False  # start times are counted from another boot time: not comparable
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
