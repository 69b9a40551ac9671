"""The lake's own lineage record: events stored next to the data, under ``.radops/events/``.

Every machine that reads the lake can read its lineage from here, and nothing is lost while a
lineage server is down. Records are named ``events/<UTC day>/<UUIDv7 at write time>.json``:
the names sort by the time they were written, so a sync lists only the days since the last
one, starting after the last name it saw (minus a margin for clocks that disagree).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from radops.lineage.events import uuid7
from radops.lineage.index import LineageIndex
from radops.stores import ObjectStore

__all__ = ["CLOCK_SKEW_MARGIN", "LakeRecords"]

EVENTS = "events/"
CLOCK_SKEW_MARGIN = timedelta(minutes=10)
_SYNC_KEY = "last_record"


def _uuid7_floor(moment: datetime) -> str:
    """The smallest UUIDv7 string of the millisecond ``moment``."""
    millis = int(moment.timestamp() * 1000)
    hex_time = f"{millis:012x}"
    return f"{hex_time[:8]}-{hex_time[8:]}-7000-8000-000000000000"


class LakeRecords:
    """Reads and writes the event records kept in the lake."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def write(self, event: Mapping[str, Any]) -> str:
        """Store ``event`` in the lake; returns the record's name."""
        now = datetime.now(timezone.utc)
        name = f"{EVENTS}{now:%Y-%m-%d}/{uuid7()}.json"
        body = json.dumps(event, sort_keys=True, separators=(",", ":")).encode("utf-8")
        self.store.put_record(name, body)
        return name

    def read(self, name: str) -> dict[str, Any] | None:
        """The event stored under ``name``, or None."""
        data = self.store.get_record(name)
        return None if data is None else json.loads(data)

    def names(self, after: str = "") -> Iterator[str]:
        """Record names in write order, those after ``after`` only (by day, then name)."""
        after_day = after[len(EVENTS) : len(EVENTS) + 10] if after.startswith(EVENTS) else ""
        days = sorted(day for day in self.store.list_record_folders(EVENTS) if day >= after_day)
        for day in days:
            start = after if day == after_day else ""
            yield from self.store.list_records(f"{EVENTS}{day}/", start_after=start)

    def sync(self, index: LineageIndex) -> int:
        """Add to ``index`` the events written to the lake since its last sync.

        Returns how many events were new to the index.
        """
        last = index.get_state(_SYNC_KEY) or ""
        start = _with_margin(last)
        batch: list[dict[str, Any]] = []
        added = 0
        newest = last
        names: list[str] = []
        # Records re-listed because of the margin are mostly indexed already: one query for
        # them all, not one per record (that was most of a sync's time after recent writes).
        known = index.records_from(start)
        for name in self.names(after=start):
            newest = max(newest, name)
            if name in known:  # re-listed because of the margin: already indexed
                continue
            event = self.read(name)
            if event is not None:
                batch.append(event)
                names.append(name)
            if len(batch) >= 500:
                added += index.add_many(batch, records=names)
                batch, names = [], []
        if batch:
            added += index.add_many(batch, records=names)
        if newest != last:
            index.set_state(_SYNC_KEY, newest)
        return added


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
