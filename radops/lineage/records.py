"""The lake's own lineage record: events stored next to the data, under ``.radops/events/``.

Every machine that reads the lake can read its lineage from here, and nothing is lost while a
lineage server is down. Records are named ``events/<UTC day>/<UUIDv7 at write time>.json``:
the names sort by the time they were written, so a sync lists only the days since the last
one, starting after the last name it saw (minus a margin for clocks that disagree).

The lake is shared, so what a sync finds there is untrusted: a record may be malformed, huge,
of another tool, or planted. A record is read only up to
:data:`~radops.lineage.validate.RECORD_MAX_BYTES` and checked before it is indexed; one that
fails, and one whose name is not of the form above, is skipped with one warning naming it, and
remembered (``datalake repair --dry-run`` lists them). A name dated more than the clock-skew
margin ahead is left for later, and never moves the sync's position: a record named in 2099
cannot make every machine stop seeing the records written after it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

from radops.errors import InvalidRecordError
from radops.lineage.events import uuid7
from radops.lineage.index import LineageIndex, RejectedRecord
from radops.lineage.validate import RECORD_MAX_BYTES, parse_record, record_bytes
from radops.lineage.validate import run_id_in as _run_id_in
from radops.stores import ObjectStore
from radops.uids import RESERVED_PREFIX

__all__ = ["CLOCK_SKEW_MARGIN", "LakeRecords", "RecordName", "shown_key"]

log = logging.getLogger("radops.lineage")

EVENTS = "events/"
CLOCK_SKEW_MARGIN = timedelta(minutes=10)
_SYNC_KEY = "last_record"
_BATCH_EVENTS = 500
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_NAME = re.compile(
    r"events/([0-9]{4}-[0-9]{2}-[0-9]{2})/"
    r"([0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})\.json"
)

# Records named in the future, warned about once per process (they are looked at again by
# every sync until their time comes, and must not warn each time).
_warned_future: set[str] = set()
_warned_lock = threading.Lock()


def _uuid7_floor(moment: datetime) -> str:
    """The smallest UUIDv7 string of the millisecond ``moment``."""
    millis = int(moment.timestamp() * 1000)
    hex_time = f"{millis:012x}"
    return f"{hex_time[:8]}-{hex_time[8:]}-7000-8000-000000000000"


@attrs.frozen
class RecordName:
    """A record name as radops writes them: its day folder and the time of its UUIDv7."""

    name: str
    day: str
    written: datetime

    @classmethod
    def parse(cls, name: str) -> RecordName:
        """Raises InvalidRecordError if ``name`` is not ``events/<day>/<UUIDv7>.json`` with
        the UUID's time in that UTC day (or the next: the name is made across midnight)."""
        match = _NAME.fullmatch(name)
        if match is None:
            raise InvalidRecordError(
                "not a record name radops reads (events/<UTC day>/<UUIDv7>.json)"
            )
        day, record_id = match.groups()
        try:
            folder = datetime.fromisoformat(day).replace(tzinfo=timezone.utc)
        except ValueError:
            raise InvalidRecordError("its day folder is not a date") from None
        millis = int(record_id.replace("-", "")[:12], 16)
        written = datetime.fromtimestamp(millis / 1000, tz=timezone.utc)
        if not folder <= written < folder + timedelta(days=2):
            raise InvalidRecordError("the time of its UUIDv7 is not in its day folder")
        return cls(name, day, written)


def shown_key(name: str) -> str:
    """The lake key of record ``name``, safe to print (control characters escaped, bounded)."""
    key = f"{RESERVED_PREFIX}/{name}"
    if key.isprintable() and len(key) <= 300:
        return key
    return ascii(key[:300])


class LakeRecords:
    """Reads and writes the event records kept in the lake."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        #: Records the last sync left for later: named more than the margin in the future.
        self.deferred: list[str] = []

    def write(self, event: Mapping[str, Any]) -> str:
        """Store ``event`` in the lake; returns the record's name.

        Raises:
            InvalidRecordError: the event is over the size limit (the recorder makes it fit
                first, see :func:`~radops.lineage.validate.fit_record`).
        """
        now = datetime.now(timezone.utc)
        name = f"{EVENTS}{now:%Y-%m-%d}/{uuid7()}.json"
        body = record_bytes(event)
        if len(body) > RECORD_MAX_BYTES:
            raise InvalidRecordError(
                f"the lineage record of run {event.get('run', {}).get('runId')} is "
                f"{len(body)} bytes, over the limit of {RECORD_MAX_BYTES} bytes"
            )
        self.store.put_record(name, body)
        return name

    def read(self, name: str) -> dict[str, Any] | None:
        """The event stored under ``name``, checked; None if there is no such record.

        Raises:
            InvalidRecordError: the record's name or bytes fail the checks (the message is
                the reason, without the name).
        """
        RecordName.parse(name)
        data = self.store.get_record(name, max_bytes=RECORD_MAX_BYTES)
        return None if data is None else parse_record(data)

    def names(self, after: str = "") -> Iterator[str]:
        """Record names in write order, those after ``after`` only (by day, then name).

        Only day folders that are dates up to tomorrow (UTC) are listed: a folder named in the
        future is read when its day comes, and one that is no date never (it holds no record
        radops writes).
        """
        after_day = after[len(EVENTS) : len(EVENTS) + 10] if after.startswith(EVENTS) else ""
        last_day = f"{datetime.now(timezone.utc) + timedelta(days=1):%Y-%m-%d}"
        days = sorted(
            day
            for day in self.store.list_record_folders(EVENTS)
            if _DAY.fullmatch(day) and after_day <= day <= last_day
        )
        for day in days:
            start = after if day == after_day else ""
            yield from self.store.list_records(f"{EVENTS}{day}/", start_after=start)

    def sync(self, index: LineageIndex) -> int:
        """Add to ``index`` the events written to the lake since its last sync.

        A record that fails the checks is skipped, with one warning, and remembered in the
        index. Returns how many events were new to the index.
        """
        last = index.get_state(_SYNC_KEY) or ""
        start = _with_margin(last)
        horizon = datetime.now(timezone.utc) + CLOCK_SKEW_MARGIN
        batch = _Batch(index)
        newest = last
        deferred: list[str] = []
        # Records re-listed because of the margin are mostly indexed already: one query for
        # them all, not one per record (that was most of a sync's time after recent writes).
        known = index.records_from(start)
        for name in self.names(after=start):
            if name in known:  # re-listed because of the margin: already indexed (or rejected)
                continue
            try:
                parsed = RecordName.parse(name)
            except InvalidRecordError as exc:
                batch.reject(self._rejected(name, str(exc)))
                continue
            if parsed.written > horizon:
                deferred.append(name)
                self._warn_future(name)
                continue
            newest = max(newest, name)
            data: bytes | None = None
            try:
                data = self.store.get_record(name, max_bytes=RECORD_MAX_BYTES)
                if data is None:
                    continue  # removed since it was listed
                event = parse_record(data)
            except InvalidRecordError as exc:
                run_id = _run_id_in(data) if data else None
                batch.reject(self._rejected(name, str(exc), parsed, run_id))
                continue
            batch.add(event, name, size=len(data))
        batch.flush()
        self.deferred = deferred
        if newest != last:
            index.set_state(_SYNC_KEY, newest)
        return batch.added

    def _rejected(
        self,
        name: str,
        reason: str,
        parsed: RecordName | None = None,
        run_id: str | None = None,
    ) -> RejectedRecord:
        log.warning(
            "ignoring the lineage record %s of the data lake %s: %s",
            shown_key(name),
            self.store.url,
            reason,
        )
        named_at = parsed.written.timestamp() if parsed is not None else None
        return RejectedRecord(name, reason, run_id, named_at)

    def _warn_future(self, name: str) -> None:
        with _warned_lock:
            if name in _warned_future:
                return
            _warned_future.add(name)
        log.warning(
            "the lineage record %s of the data lake %s is named for a time more than %d "
            "minutes ahead of this machine's clock: it is read once that time has come",
            shown_key(name),
            self.store.url,
            CLOCK_SKEW_MARGIN.total_seconds() // 60,
        )


class _Batch:
    """Events and rejections of a sync, written to the index in transactions of bounded size:
    at most 500 events, and no more than :data:`RECORD_MAX_BYTES` of them held at once."""

    def __init__(self, index: LineageIndex) -> None:
        self.index = index
        self.events: list[dict[str, Any]] = []
        self.names: list[str] = []
        self.rejected: list[RejectedRecord] = []
        self.size = 0
        self.added = 0

    def add(self, event: dict[str, Any], name: str, size: int) -> None:
        if self.events and self.size + size > RECORD_MAX_BYTES:
            self.flush()
        self.events.append(event)
        self.names.append(name)
        self.size += size
        if len(self.events) >= _BATCH_EVENTS:
            self.flush()

    def reject(self, rejected: RejectedRecord) -> None:
        self.rejected.append(rejected)
        if len(self.rejected) >= _BATCH_EVENTS:
            self.flush()

    def flush(self) -> None:
        if self.events:
            self.added += self.index.add_many(self.events, records=self.names, checked=True)
        if self.rejected:
            self.index.reject(self.rejected)
        self.events, self.names, self.rejected, self.size = [], [], [], 0


def _with_margin(name: str) -> str:
    """``name`` moved back by the clock-skew margin, so late writers are not missed."""
    if not name.startswith(EVENTS):
        return ""
    try:
        day = datetime.strptime(name[len(EVENTS) : len(EVENTS) + 10], "%Y-%m-%d")
        record_id = name.rsplit("/", 1)[1]
        millis = int(record_id.replace("-", "")[:12], 16)
    except (ValueError, IndexError):
        return ""
    moment = datetime.fromtimestamp(millis / 1000, tz=timezone.utc) - CLOCK_SKEW_MARGIN
    if moment.date() < day.date():
        return f"{EVENTS}{moment:%Y-%m-%d}/{_uuid7_floor(moment)}"
    return f"{EVENTS}{day:%Y-%m-%d}/{_uuid7_floor(moment)}"
