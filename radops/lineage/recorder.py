"""Recording runs: where each event goes, and answering lineage questions for one lake.

A START event goes to the consumers at once (queued in the outbox), and to the index together
with its run's end: one SQLite transaction per run, not one per event. A COMPLETE, FAIL or
ABORT event is also stored in the lake (the record every machine can read) before it is indexed
and queued for the consumers. Queries sync the index from the lake first when it might be stale.

Which record explains a file is decided by the file: its object names the run that created it
(``radops-run-id``), and only a record of that run answers :meth:`LineageRecorder.creation_of`.
Event times are the writers' word and never decide it. Answers from Marquez pass the same
checks as records read from the lake.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radops.errors import InvalidRecordError
from radops.lineage.delivery import Outbox, Transport
from radops.lineage.events import Creation, build_event, event_to_dict
from radops.lineage.index import LineageIndex
from radops.lineage.records import CLOCK_SKEW_MARGIN, LakeRecords, RecordName
from radops.lineage.validate import check_event, fit_record, holds_together
from radops.objects import RUN_KEY

if TYPE_CHECKING:
    from radops.lineage.marquez import MarquezIndex
    from radops.stores import ObjectMeta, ObjectStore

__all__ = ["CALL_RESYNC_INTERVAL", "LineageRecorder"]

log = logging.getLogger("radops.lineage")

#: Seconds during which a skip check that finds nothing trusts the last sync instead of syncing
#: again. A sync re-lists the last ten minutes of records (the clock-skew margin), so syncing at
#: every new call made a run of many small calls slow down as it went (benchmark case 10). A
#: call another machine recorded within this interval runs again here, and its upload then
#: meets the other run's outputs and settles on them (the race of two machines on one call).
CALL_RESYNC_INTERVAL = 1.0

# Answers of Marquez that failed the checks, warned about once per process.
_warned: set[str] = set()
_warned_lock = threading.Lock()


class LineageRecorder:
    """The lineage of one lake as seen from one ``RADOPS_HOME``."""

    def __init__(
        self,
        store: ObjectStore,
        state_dir: Path,
        make_transport: Callable[[], Transport | None],
        marquez: MarquezIndex | None = None,
    ) -> None:
        self.store = store
        self.marquez = marquez
        self._marquez_down = False
        self.records = LakeRecords(store)
        self.index = LineageIndex(state_dir, store.url)
        self.outbox = Outbox(state_dir / "outbox", make_transport)
        self._synced = False
        self._synced_at = -float("inf")  # time.monotonic() of the last sync
        # START events of runs still under way in this process, indexed with their end event.
        self._starts: dict[str, dict[str, Any]] = {}
        self._starts_lock = threading.Lock()

    def emit(
        self,
        creation: Creation,
        state: str,
        *,
        error: BaseException | None = None,
        store_in_lake: bool | None = None,
    ) -> dict[str, Any]:
        """Record ``creation`` in ``state``; returns the event as sent and stored.

        A START event is queued for the consumers now, and indexed with the run's next event
        (in one transaction); :meth:`close` indexes those of runs that never ended here.

        Never raises because a consumer is unreachable; raises only if the lake itself cannot
        store a COMPLETE record (the caller then knows the creation is not recorded).
        """
        return self.record(self.build(creation, state, error=error), store_in_lake=store_in_lake)

    @staticmethod
    def build(
        creation: Creation, state: str, *, error: BaseException | None = None
    ) -> dict[str, Any]:
        """The event :meth:`emit` would record, built but not recorded yet: for a caller that
        builds a large one while other work runs, then hands it to :meth:`record`."""
        return fit_record(event_to_dict(build_event(creation, state, error=error)))

    def record(self, event: dict[str, Any], *, store_in_lake: bool | None = None) -> dict[str, Any]:
        """Record the event made by :meth:`build`, as :meth:`emit` does."""
        state = event["eventType"]
        run_id = event["run"]["runId"]
        keep = state != "START" if store_in_lake is None else store_in_lake
        name = self.records.write(event) if keep else None
        with self._starts_lock:
            if state == "START" and not keep:
                self._starts[run_id] = event
                start = None
            else:
                start = self._starts.pop(run_id, None)
        if state != "START" or keep:
            events = [event] if start is None else [start, event]
            records: list[str | None] = [None] * (len(events) - 1)
            self._index(events, [*records, name])
        try:
            self.outbox.put(event)
        except OSError as exc:  # a full disk must not fail the user's function either
            log.warning("could not queue a lineage event for delivery: %s", exc)
        return event

    def _index(self, events: list[dict[str, Any]], records: list[str | None]) -> None:
        """Index events this process made, with the names of their lake records (if any)."""
        try:
            self.index.add_many(events, records=records, checked=True)
        except (OSError, sqlite3.Error) as exc:
            # The index is a cache of the lake's records: the next sync repairs the gap, so a
            # full or read-only local disk must not undo a creation that is safely recorded.
            log.warning("could not index a lineage event locally (%s); the next sync will", exc)

    def sync(self) -> int:
        """Pull events written to the lake by other machines into the index."""
        added = self.records.sync(self.index)
        self._synced = True
        self._synced_at = time.monotonic()
        return added

    def prepare(self) -> None:
        """Make the embedded index current for a series of queries, unless Marquez answers
        them (then a query that Marquez cannot answer syncs on its own)."""
        if self.marquez is None or self._marquez_down:
            self.sync()

    def _ensure_synced(self) -> None:
        if not self._synced:
            self.sync()

    def _ask_marquez(self, question: Callable[[MarquezIndex], Any]) -> tuple[bool, Any]:
        """(answered, answer) from Marquez; (False, None) without Marquez or when it is down."""
        from radops.lineage.marquez import MarquezError

        if self.marquez is None or self._marquez_down:
            return False, None
        try:
            return True, question(self.marquez)
        except MarquezError as exc:
            self._marquez_down = True  # ask once per process, then use the embedded index
            log.warning("%s; using the embedded lineage index instead", exc)
            return False, None

    def creation_of(
        self, uid: str, meta: ObjectMeta | None = None, *, sync: bool = True
    ) -> dict[str, Any] | None:
        """The COMPLETE event of the run that created the object ``uid`` now in the lake.

        The object (``meta``, or a HEAD) names its run; the answer is a record of that run that
        names ``uid`` among its outputs: from Marquez when it is configured and knows it,
        otherwise from the embedded index, synced from the lake on a miss. None if the file is
        not in the lake, was not made by a radops run, or no readable record of its run names
        it (a record that only claims the file, whatever its time, is no answer).
        """
        if meta is None:
            meta = self.store.head(uid)
        if meta is None:
            return None
        run_id = meta.metadata.get(RUN_KEY)
        if not run_id:
            return None
        namespace, name = self.store.dataset(uid)
        answered, event = self._ask_marquez(lambda m: m.creation_of(namespace, name))
        if answered and event is not None:
            checked = self._checked_answer(event, f"Marquez's creation of {uid!r}")
            if checked is not None and checked.get("run", {}).get("runId") == run_id:
                return checked
        created = meta.created.timestamp() if meta.created is not None else None
        made = self.creations_by(uid, run_id, sync=sync, created=created)
        # Of copies of one run's record, one whose return value points at a file it neither
        # made nor read was altered: the first written of the others.
        return next((e for e in made if holds_together(e)), made[0] if made else None)

    def creations_by(
        self, uid: str, run_id: str, *, sync: bool = True, created: float | None = None
    ) -> list[dict[str, Any]]:
        """The COMPLETE events of ``run_id`` recording the creation of ``uid`` (from the index,
        synced from the lake if it knows none), first written first; more than one only if a
        record was copied. ``created``: the object's upload time; a record named (written)
        before it, less the clock-skew margin, cannot be its creation and is left out."""
        made = self.index.creations_by(uid, run_id)
        if not made and sync:
            self.sync()
            made = self.index.creations_by(uid, run_id)
        if created is not None:
            earliest = created - CLOCK_SKEW_MARGIN.total_seconds()
            made = [(name, event) for name, event in made if _written(name) >= earliest]
        return [event for _, event in made]

    def calls(self, digest: str, job_name: str | None = None) -> Iterator[dict[str, Any]]:
        """COMPLETE events of calls with this digest: Marquez's answer first (if set), then the
        index's, earliest first. Candidates only: the caller checks them against the objects.

        The index is synced from the lake first if it knows none, unless it was synced less
        than :data:`CALL_RESYNC_INTERVAL` ago.
        """
        if job_name is not None:
            answered, found = self._ask_marquez(lambda m: m.call(job_name, digest))
            if answered and found is not None:
                checked = self._checked_answer(found, f"Marquez's run of {job_name}")
                if checked is not None:
                    yield checked
        events = self.index.calls(digest)
        if not events and time.monotonic() - self._synced_at >= CALL_RESYNC_INTERVAL:
            self.sync()
            events = self.index.calls(digest)
        yield from events

    def _checked_answer(self, event: Mapping[str, Any], what: str) -> dict[str, Any] | None:
        """``event`` if it passes the checks records of the lake pass; None, warned once."""
        try:
            return check_event(dict(event))
        except InvalidRecordError as exc:
            with _warned_lock:
                if what in _warned:
                    return None
                _warned.add(what)
            log.warning("ignoring %s: %s", what, exc)
            return None

    def run_state(self, run_id: str) -> str | None:
        """How ``run_id`` ended (COMPLETE, FAIL, ABORT) by the lake's records; None: not yet."""
        state = self.index.run_state(run_id)
        if state is None:
            self.sync()
            state = self.index.run_state(run_id)
        return state

    def rejected_for(self, run_id: str, created: float | None, within: float) -> bool:
        """True if a record of the lake that failed the checks may be ``run_id``'s: it names
        that run, or names none and was written within ``within`` seconds after ``created``
        (an object's upload time). Its objects are then not taken for abandoned."""
        self._ensure_synced()
        if created is None:
            return self.index.rejected_for(run_id, 0.0, -1.0)
        margin = CLOCK_SKEW_MARGIN.total_seconds()
        return self.index.rejected_for(run_id, created - margin, created + within + margin)

    def runs_using(self, uid: str) -> list[dict[str, Any]]:
        """COMPLETE events of runs that read ``uid``, after a sync."""
        self._ensure_synced()
        return self.index.runs_using(uid)

    def close(self) -> None:
        """Index the START events of runs that did not end in this process; close the index."""
        with self._starts_lock:
            starts, self._starts = list(self._starts.values()), {}
        if starts:
            self._index(starts, [None] * len(starts))
        self.index.close()


def _written(record: str | None) -> float:
    """When the lake record ``record`` was written, by its name (+inf if unknown: kept)."""
    if record is None:
        return float("inf")
    try:
        return RecordName.parse(record).written.timestamp()
    except InvalidRecordError:
        return float("inf")
