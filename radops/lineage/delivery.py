"""Delivering events to OpenLineage consumers, off the critical path, through an on-disk queue.

An event is first written to ``$RADOPS_HOME/state/outbox/`` (a small local write, renamed into
place, not fsynced: see :meth:`Outbox.put`), then a background thread sends it with the
configured openlineage-python transport and deletes it once the consumer accepted it. A
consumer that is down, slow or failing never fails the user's function: the event stays queued
and is retried by the sender, by later processes, at exit (for a bounded time), and by
``radops lineage flush``. Each queued file is sent under an exclusive lock and
deleted right after it was accepted, so concurrent flushers never send it twice.

Delivery is at least once. An event is sent again only when radops could not learn whether the
consumer took it: the sending process was killed or exited while the request was in flight, or
the consumer took longer than :data:`ANSWER_TIMEOUT` to answer. Each copy is byte-identical
(same ``runId``, ``eventType`` and ``eventTime``), so a consumer deduplicates exactly; Marquez
updates the same run. To keep such copies rare, the sender connects within
``RADOPS_LINEAGE_TIMEOUT`` (a down consumer is noticed quickly) but, once the event is sent,
waits up to ``ANSWER_TIMEOUT`` for the answer: it runs in the background, so waiting blocks
nobody, while giving up early on a slow consumer that is still processing the event is what
made duplicates.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from radops.errors import RadopsError
from radops.lineage.events import uuid7
from radops.private import make_private_dir
from radops.redact import redact_url

if TYPE_CHECKING:
    from radops.settings import Settings

__all__ = [
    "ANSWER_TIMEOUT",
    "EXIT_WAIT",
    "IDLE_EXIT",
    "MAX_SERVER_ERRORS",
    "DeliveryError",
    "FlushResult",
    "Outbox",
    "Rejected",
    "Transport",
    "describe_transport",
    "http_transport",
    "send",
    "transport_from_settings",
]

log = logging.getLogger("radops.lineage")

Transport = Any  # an openlineage.client.transport.Transport: anything with emit(event)

#: Seconds the HTTP sender waits for a consumer's answer once an event is sent (at least
#: ``RADOPS_LINEAGE_TIMEOUT``). Abandoning a request the consumer still processes makes it
#: deliver the event, and the retry delivers it again.
ANSWER_TIMEOUT = 60.0

#: Seconds the sender thread stays once the queue is empty, for the next creation's events.
IDLE_EXIT = 10.0

#: Seconds a process waits at exit for its queued events to go out (not when the consumer just
#: failed); whatever is left stays queued for the next process or ``radops lineage flush``.
EXIT_WAIT = 3.0


@attrs.frozen
class FlushResult:
    """What one flush did: events accepted, sends that failed, events set aside, events left."""

    delivered: int
    failed: int
    remaining: int
    rejected: int = 0
    error: str | None = None  # the last failure: what the consumer answered, or why none


@attrs.frozen
class Rejected:
    """An event the consumer refused for good, set aside in the outbox's ``rejected/`` folder."""

    name: str
    event: Mapping[str, Any]
    answer: str  # what the consumer said: "HTTP 400 from <url>: <body>"

    @property
    def run_id(self) -> str:
        """The event's run."""
        return str(self.event.get("run", {}).get("runId", "?"))


#: Times an event is answered with a server error (5xx), while the consumer takes other events,
#: before it is set aside as rejected: PostgreSQL under Marquez refuses some values for good
#: with a 500, and that one event must not hold back every other.
MAX_SERVER_ERRORS = 3

# The answers that refuse the event itself (malformed, too large, invalid): sending it again
# gets the same answer. Others (401 or 403 for a wrong key, 404 for a wrong URL, 429...) are
# about the consumer or its configuration: the events stay queued until it is fixed.
_REFUSALS = (400, 409, 413, 415, 422)


class DeliveryError(RadopsError):
    """A send that failed: ``status`` is the consumer's HTTP status, None when it never
    answered (down, unreachable, timed out) or the transport is not HTTP; ``answer`` says
    what happened in one line."""

    def __init__(self, status: int | None, answer: str) -> None:
        super().__init__(answer)
        self.status = status
        self.answer = answer

    @property
    def permanent(self) -> bool:
        """The consumer refused the event itself: sending it again gives the same answer."""
        return self.status in _REFUSALS

    @property
    def server_error(self) -> bool:
        return self.status is not None and self.status >= 500


class Outbox:
    """The on-disk queue of events waiting for a consumer.

    ``transport`` is built lazily by ``make_transport`` (None: no consumer is configured, and
    nothing is queued). Queued files are named ``<UUIDv7>_<runId>.json``: the UUIDv7 keeps the
    order they were made in, the run id lets a sender keep each run's events in order.
    """

    def __init__(self, directory: Path, make_transport: Callable[[], Transport | None]) -> None:
        self.directory = directory
        self.rejected_directory = directory / "rejected"
        self._make_transport = make_transport
        self._transport: Transport | None = None
        self._transport_made = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._retry_after = 0.0
        self._failures = 0
        self._atexit_registered = False
        self._last_failure: str | None = None

    @property
    def transport(self) -> Transport | None:
        """The consumer's transport, or None when none is configured."""
        with self._lock:
            if not self._transport_made:
                self._transport = self._make_transport()
                self._transport_made = True
            return self._transport

    @property
    def enabled(self) -> bool:
        """True if a consumer is configured."""
        return self.transport is not None

    @property
    def consumer(self) -> str:
        """The consumer, as messages name it: its URL without credentials, or its kind."""
        return describe_transport(self.transport)

    def put(self, event: Mapping[str, Any]) -> Path | None:
        """Queue ``event`` and wake the sender; None (nothing queued) without a consumer."""
        if not self.enabled:
            return None
        make_private_dir(self.directory)
        run_id = str(event.get("run", {}).get("runId", ""))
        path = self.directory / f"{uuid7()}_{_safe_run(run_id)}.json"
        tmp = path.with_suffix(".tmp")
        data = json.dumps(event, sort_keys=True).encode("utf-8")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        # No fsync: the queued file survives the process being killed at any point (it is in
        # the page cache), and only a power loss or kernel crash could lose the last events
        # queued. Those are recorded in the lake all the same (COMPLETE, FAIL and ABORT, the
        # record every machine syncs from), and `radops lineage replay` sends them again. Two
        # fsyncs per creation were most of what delivery added to it (benchmark case 9).
        tmp.replace(path)
        self._start()
        self._wake.set()
        return path

    def pending(self) -> list[Path]:
        """Queued events, oldest first."""
        try:
            return sorted(p for p in self.directory.iterdir() if p.suffix == ".json")
        except FileNotFoundError:
            return []

    def flush(self, deadline: float | None = None) -> FlushResult:
        """Send queued events in order until the queue is empty, the consumer fails, or
        ``deadline``.

        Each run's events go in the order they were made, across processes: a run whose event
        another process is sending (its file is locked), or that just failed, is left for later,
        and events of other runs go on. An event the consumer refuses for good (HTTP 4xx) is set
        aside at once (:meth:`rejected`); one answered with a server error
        :data:`MAX_SERVER_ERRORS` times while other events were taken is set aside too. A
        consumer that does not answer, or fails two runs in a row, stops the flush: a down
        consumer costs one timeout, not one per event.
        """
        transport = self.transport
        if transport is None:
            return FlushResult(0, 0, len(self.pending()))
        delivered = failed = rejected = 0
        held: set[str] = set()  # runs whose next event must wait
        struck: list[Path] = []  # events answered with a server error in this flush
        failures_in_a_row = 0
        for path in self.pending():
            if deadline is not None and time.monotonic() > deadline:
                break
            run = _run_of(path)
            if run in held:
                continue
            with self._claim(path) as (state, event):
                if state == "locked":
                    held.add(run)  # being sent by another process: its next ones wait
                    continue
                if event is None:
                    continue  # sent by another process meanwhile, or set aside as unreadable
                try:
                    send(transport, event)
                except DeliveryError as failure:
                    if failure.permanent:
                        self._set_aside(path, event, f"{failure.answer}")
                        rejected += 1
                        continue
                    failed += 1
                    failures_in_a_row += 1
                    held.add(run)
                    self._note_failure(path, failure)
                    if failure.server_error:
                        struck.append(path)
                    if not failure.server_error or failures_in_a_row >= 2:
                        break  # down, or failing everything: stop here, in order
                    continue
                failures_in_a_row = 0
                path.unlink(missing_ok=True)
                _strikes_path(path).unlink(missing_ok=True)
                delivered += 1
        if delivered:
            self._note_taken()
        # An event that keeps failing while the consumer takes others is refused for good.
        rejected += self._set_aside_struck(struck)
        error = self._last_failure if failed else None
        return FlushResult(delivered, failed, len(self.pending()), rejected, error)

    # -- events the consumer refused ----------------------------------------------------------

    def rejected(self) -> list[Rejected]:
        """The events set aside because the consumer refused them, oldest first."""
        found = []
        try:
            paths = sorted(p for p in self.rejected_directory.iterdir() if p.suffix == ".json")
        except FileNotFoundError:
            return []
        for path in paths:
            try:
                event = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            why = path.with_suffix(".why")
            answer = why.read_text(encoding="utf-8").strip() if why.exists() else "unknown"
            found.append(Rejected(path.name, event, answer))
        return found

    def retry(self, names: Sequence[str] | None = None) -> int:
        """Put rejected events (all, or those named) back in the queue, in their place in the
        order; returns how many. The sender then sends them again."""
        moved = 0
        for item in self.rejected():
            if names is not None and item.name not in names:
                continue
            source = self.rejected_directory / item.name
            source.replace(self.directory / item.name)
            source.with_suffix(".why").unlink(missing_ok=True)
            moved += 1
        if moved:
            self._start()
            self._wake.set()
        return moved

    def _set_aside(self, path: Path, event: Mapping[str, Any], answer: str) -> None:
        make_private_dir(self.rejected_directory)
        target = self.rejected_directory / path.name
        why = target.with_suffix(".why")
        why.write_text(answer + "\n", encoding="utf-8")
        path.replace(target)
        _strikes_path(path).unlink(missing_ok=True)
        log.warning(
            "the lineage consumer refused an event (%s %s of run %s): %s; it is set aside, "
            "other events go on (`radops lineage rejected` lists it, `radops lineage retry` "
            "sends it again)",
            event.get("eventType", "?"),
            event.get("job", {}).get("name", "?"),
            event.get("run", {}).get("runId", "?"),
            answer,
        )

    def _note_failure(self, path: Path, failure: DeliveryError) -> None:
        self._last_failure = failure.answer
        if failure.server_error:
            count, taken = _strikes(path)
            _write_strikes(path, count + 1, taken)

    def _note_taken(self) -> None:
        """The consumer took an event: every event that failed with a server error so far
        failed alone, not with the whole consumer."""
        for strikes in self.directory.glob("*.strikes"):
            count, taken = _strikes(strikes)
            if not taken:
                _write_strikes(strikes, count, True)

    def _set_aside_struck(self, struck: list[Path]) -> int:
        """Set aside the events of ``struck`` refused often enough, while others were taken."""
        count = 0
        for path in struck:
            strikes, taken = _strikes(path)
            if strikes < MAX_SERVER_ERRORS or not taken:
                continue
            with self._claim(path) as (state, event):
                if state == "claimed" and event is not None:
                    answer = self._last_failure or "a server error"
                    self._set_aside(path, event, f"{answer} ({strikes} times, others taken)")
                    count += 1
        return count

    @contextlib.contextmanager
    def _claim(self, path: Path) -> Iterator[tuple[str, dict[str, Any] | None]]:
        """(state, event) of a queued file, under an exclusive lock while the block runs.

        state: "claimed" (event read), "locked" (another process holds it), "gone" (sent and
        deleted meanwhile), "unreadable" (cut short: set aside).
        """
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            yield "gone", None
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    yield "locked", None
                    return
                raise
            if os.fstat(fd).st_nlink == 0:  # sent and deleted while we waited
                yield "gone", None
                return
            try:
                with os.fdopen(os.dup(fd), encoding="utf-8") as handle:
                    event = json.load(handle)
            except ValueError:
                # Cut short by a power loss (the write is not fsynced): set it aside, so the
                # events behind it still go out, and say where it is.
                aside = path.with_suffix(".unreadable")
                path.replace(aside)
                log.warning("a queued lineage event could not be read; it is kept in %s", aside)
                yield "unreadable", None
                return
            yield "claimed", event
        finally:
            os.close(fd)

    # -- the background sender ------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="radops-lineage", daemon=True)
            self._thread.start()
            if not self._atexit_registered:  # Fix: once, not at every (re)start of the sender
                # Through a weak reference: an outbox nobody uses any more can go.
                atexit.register(_close_at_exit, weakref.ref(self))
                self._atexit_registered = True

    def _run(self) -> None:
        idle_since: float | None = None
        while not self._stop:
            self._wake.wait(timeout=max(1.0, self._retry_after - time.monotonic()))
            self._wake.clear()
            if time.monotonic() < self._retry_after and not self._stop:
                continue
            try:
                result = self.flush()
            except Exception as exc:
                log.debug("lineage sender failed", exc_info=True)
                result = FlushResult(0, 1, 1, error=f"{type(exc).__name__}: {exc}")
            if result.failed:
                self._failures += 1
                backoff = min(60.0, 0.5 * 2 ** min(self._failures, 7))
                self._retry_after = time.monotonic() + backoff
                if self._failures == 1:
                    log.warning(
                        "the lineage consumer %s failed (%s); %d event(s) stay queued in %s and "
                        "will be sent later (or run `radops lineage flush`)",
                        self.consumer,
                        result.error,
                        result.remaining,
                        self.directory,
                    )
            else:
                self._failures = 0
                self._retry_after = 0.0
            # The sender stays while events keep coming (starting a thread for every creation
            # cost more than sending its events) and ends after IDLE_EXIT seconds of an empty
            # queue. It decides to end under the lock _start() takes, and drops itself, so an
            # event queued meanwhile starts a new sender instead of waiting (no lost wake-up).
            with self._lock:
                if self.pending():
                    idle_since = None
                    continue
                now = time.monotonic()
                idle_since = now if idle_since is None else idle_since
                if now - idle_since >= IDLE_EXIT:
                    if self._thread is threading.current_thread():
                        self._thread = None
                    return

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the queue to drain; True if it did."""
        deadline = time.monotonic() + timeout
        while self.pending():
            thread = self._thread
            if thread is None or not thread.is_alive() or time.monotonic() >= deadline:
                return False
            thread.join(timeout=min(0.02, max(0.0, deadline - time.monotonic())))
        return True

    def close(self, timeout: float = 0.0) -> None:
        """Give queued events ``timeout`` seconds to go out, then stop the sender.

        When the consumer just failed, exit does not wait for it: the events stay queued.
        """
        if timeout > 0 and self._failures == 0:
            self.wait(timeout)
        self._stop = True
        self._wake.set()


def _run_of(path: Path) -> str:
    """The run of a queued file ``<UUIDv7>_<runId>.json`` (older names: the file itself)."""
    return path.stem.split("_", 1)[-1]


def _safe_run(run_id: str) -> str:
    return "".join(c for c in run_id if c.isascii() and (c.isalnum() or c == "-"))[:64] or "x"


def _strikes_path(path: Path) -> Path:
    return path.with_suffix(".strikes")


def _strikes(path: Path) -> tuple[int, bool]:
    """(server errors so far, whether the consumer took other events since) of an event."""
    try:
        count, taken = _strikes_path(path).read_text().split()
        return int(count), taken == "1"
    except (OSError, ValueError):
        return 0, False


def _write_strikes(path: Path, count: int, taken: bool) -> None:
    with contextlib.suppress(OSError):  # a count lost only delays setting the event aside
        _strikes_path(path).write_text(f"{count} {int(taken)}")


def describe_transport(transport: Transport | None) -> str:
    """A transport as messages name it: its URL without credentials, or its kind."""
    if transport is None:
        return "(none)"
    url = getattr(transport, "url", None)
    if isinstance(url, str) and url:
        return redact_url(url)
    return type(transport).__name__


def send(transport: Transport, event: Mapping[str, Any]) -> None:
    """Send one event; any failure as a :class:`DeliveryError` saying what the consumer answered."""
    try:
        transport.emit(event)
    except Exception as exc:  # every transport fails in its own way; re-raised, classified
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        consumer = describe_transport(transport)
        if isinstance(status, int):
            body = _one_line(str(getattr(response, "text", "") or ""))
            answer = f"HTTP {status} from {consumer}" + (f": {body}" if body else "")
            raise DeliveryError(status, answer) from exc
        raise DeliveryError(
            None, _one_line(f"no answer from {consumer}: {type(exc).__name__}: {exc}")
        ) from exc


def _one_line(text: str, limit: int = 200) -> str:
    """``text`` on one line, without control characters or HTML tags (Jetty's error pages),
    at most ``limit`` characters."""
    if text.lstrip().startswith("<"):
        text = re.sub(r"<[^>]*>", " ", text)
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _close_at_exit(outbox: weakref.ref[Outbox]) -> None:
    alive = outbox()
    if alive is not None:
        alive.close(EXIT_WAIT)


def transport_from_settings(settings: Settings) -> Transport | None:
    """The transport to the configured OpenLineage consumer, or None.

    ``RADOPS_MARQUEZ_URL`` selects openlineage-python's HTTP transport to
    ``POST /api/v1/lineage`` (with ``RADOPS_MARQUEZ_API_KEY`` as a bearer token). Otherwise,
    when openlineage-python's own configuration exists (``openlineage.yml``,
    ``OPENLINEAGE_URL``, ``OPENLINEAGE__TRANSPORT__*``), its client builds the transport, so
    composite, kafka, file and the other transports work as documented by OpenLineage.
    For ``RADOPS_MARQUEZ_URL`` the transport's own retries are off (the outbox retries,
    without blocking anyone); openlineage-python's own configuration is used as written,
    retries included, and runs in the background sender all the same.
    """
    if settings.marquez_url:
        return http_transport(
            settings.marquez_url,
            api_key=settings.marquez_api_key,
            timeout=settings.lineage_timeout,
        )
    if settings.openlineage_config:
        from openlineage.client import OpenLineageClient

        with _environment_unchanged():
            return OpenLineageClient().transport
    return None


@contextlib.contextmanager
def _environment_unchanged() -> Iterator[None]:
    """Undo what the block writes to ``os.environ``.

    openlineage-python's client copies ``OPENLINEAGE_URL`` and friends into
    ``OPENLINEAGE__TRANSPORT__TRANSPORTS__*`` variables of the process while it builds its
    transport; radops never changes the user's environment, so it takes those writes back.
    """
    before = dict(os.environ)
    try:
        yield
    finally:
        for name in set(os.environ) - set(before):
            del os.environ[name]
        for name, value in before.items():
            if os.environ.get(name) != value:
                os.environ[name] = value


def http_transport(url: str, *, api_key: str | None = None, timeout: float = 5.0) -> Transport:
    """openlineage-python's HTTP transport to ``<url>/api/v1/lineage``, without retries.

    It connects within ``timeout`` seconds and then waits up to ``max(timeout,``
    :data:`ANSWER_TIMEOUT` ``)`` for the answer (requests' ``(connect, read)`` timeout).
    """
    from openlineage.client.transport import get_default_factory

    config: dict[str, Any] = {
        "type": "http",
        "url": url,
        "endpoint": "api/v1/lineage",
        "timeout": timeout,
        # No retries of its own (the outbox retries, in the background), and an error answer
        # comes back as the answer, not as urllib3's "too many 500 error responses": the
        # outbox needs the status to tell a refused event from a failing consumer.
        "retry": {"total": 0, "connect": 0, "read": 0, "status_forcelist": []},
    }
    if api_key:
        config["auth"] = {"type": "api_key", "apiKey": api_key}
    transport: Transport = get_default_factory().create(config)  # an HttpTransport
    # openlineage-python passes its timeout to requests as is: (connect, read) seconds.
    transport.timeout = (timeout, max(timeout, ANSWER_TIMEOUT))
    return transport
