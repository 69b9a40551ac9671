"""The embedded lineage index: SQLite under ``$RADOPS_HOME``, one database per lake.

It answers lineage queries and skip checks without a network round trip. It is filled from the
events this machine writes and synced incrementally from the events stored in the lake, so it
is a cache: deleting it loses nothing (the next sync rebuilds it from the lake).

Every event is checked (:func:`radops.lineage.validate.check_event`) before it is indexed, and
two events of one run and type that differ are both kept: a record copied from another one,
with its run id, must not hide the original, whichever a machine syncs first. Which record
explains a file is decided from the objects (their run id), not from event times, which any
writer chooses: see :meth:`radops.lineage.recorder.LineageRecorder.creation_of`. Records of the
lake that failed the checks are remembered (:meth:`LineageIndex.reject`), so a sync neither
fetches them again nor warns about them twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from radops.cache import local_storage_error, open_wal_database, sqlite_storage_error
from radops.lineage.events import radops_facet
from radops.lineage.validate import check_event, event_time
from radops.private import create_private_file, make_private_dir

__all__ = ["LineageIndex", "RejectedRecord", "radops_facet"]

#: The index's layout version, in its file name: an index of another layout is another file
#: (rebuilt from the lake), so radops versions sharing a home never read each other's tables.
_LAYOUT = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    event_time TEXT NOT NULL,
    job TEXT NOT NULL,
    call_digest TEXT,
    body TEXT NOT NULL,
    body_sha TEXT NOT NULL,
    record TEXT,
    PRIMARY KEY (run_id, event_type, body_sha)
);
CREATE INDEX IF NOT EXISTS events_call ON events (call_digest);
CREATE TABLE IF NOT EXISTS outputs (
    uid TEXT NOT NULL,
    run_id TEXT NOT NULL,
    lifecycle TEXT NOT NULL,
    event_time TEXT NOT NULL,
    PRIMARY KEY (uid, run_id)
);
CREATE TABLE IF NOT EXISTS inputs (
    uid TEXT NOT NULL,
    run_id TEXT NOT NULL,
    PRIMARY KEY (uid, run_id)
);
CREATE INDEX IF NOT EXISTS inputs_run ON inputs (run_id);
CREATE TABLE IF NOT EXISTS records (
    name TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS sync_state (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected (
    name TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    run_id TEXT,
    named_at REAL
);
CREATE INDEX IF NOT EXISTS rejected_run ON rejected (run_id);
"""


@attrs.frozen
class RejectedRecord:
    """A record of the lake that failed the checks: its name, why, and what could be read of
    it (its run id, and the time its name gives, in seconds since the epoch)."""

    name: str
    reason: str
    run_id: str | None = None
    named_at: float | None = None


class LineageIndex:
    """Lineage of one lake, indexed locally."""

    def __init__(self, state_dir: Path, lake_url: str) -> None:
        digest = hashlib.sha256(lake_url.encode("utf-8")).hexdigest()[:16]
        self.path = state_dir / f"lineage-v{_LAYOUT}-{digest}.sqlite"
        self._earlier = [state_dir / f"lineage-{digest}.sqlite"]  # layout 1
        self.lake_url = lake_url
        self._db: sqlite3.Connection | None = None
        self._lock = threading.RLock()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            with self._lock:  # threads share one connection, used under this lock
                return self._open_db()
        return self._db

    def _open_db(self) -> sqlite3.Connection:
        if self._db is None:
            where = self.path.parent
            try:
                make_private_dir(where)
                create_private_file(self.path)
            except OSError as exc:
                raise local_storage_error(exc, "open the lineage index", where) from exc
            with self._sql("open the lineage index"):
                db = open_wal_database(self.path, _SCHEMA)
            self._db = db
            self._remove_earlier()
        return self._db

    @contextlib.contextmanager
    def _sql(self, doing: str) -> Iterator[None]:
        """SQLite's errors (a full or read-only disk) as one :class:`LocalStorageError`."""
        try:
            yield
        except sqlite3.Error as exc:
            raise sqlite_storage_error(exc, doing, self.path.parent) from exc

    def _remove_earlier(self) -> None:
        """Remove the indexes of earlier layouts: caches nothing reads any more, possibly large
        (a process of an older radops that still has one open keeps reading its own copy)."""
        for path in self._earlier:
            for suffix in ("", "-wal", "-shm"):
                each = path.with_name(path.name + suffix)
                with contextlib.suppress(OSError):
                    each.unlink()

    def close(self) -> None:
        """Close the database connection."""
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- writing ------------------------------------------------------------------------

    def add(self, event: Mapping[str, Any]) -> bool:
        """Index one event (idempotent); True if it was new.

        Raises:
            InvalidRecordError: the event lacks a field radops relies on.
        """
        return self.add_many([event]) > 0

    def add_many(
        self,
        events: Sequence[Mapping[str, Any]],
        records: Sequence[str | None] = (),
        *,
        checked: bool = False,
    ) -> int:
        """Index events in one transaction; returns how many were new.

        ``records`` names the lake records the events were read from, so a later sync does
        not fetch them again; when it names one per event (None for an event that is no lake
        record, such as a START), each event remembers its record (the order records were
        written in decides between copies, see :meth:`calls`).
        Indexing an event again is a no-op; another event of the same run and type is indexed
        beside it. ``checked``: the caller checked the events already (a sync), or made them.

        Raises:
            InvalidRecordError: an event lacks a field radops relies on (nothing is indexed).
        """
        names: Sequence[str | None] = records if len(records) == len(events) else ()
        rows = [_row(event, names[i] if names else None, checked) for i, event in enumerate(events)]
        added = 0
        with self._lock, self._sql("index lineage events"):
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                for row in rows:
                    added += self._add(db, row)
                db.executemany(
                    "INSERT OR IGNORE INTO records VALUES (?)",
                    [(name,) for name in records if name is not None],
                )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # a failed COMMIT may have rolled back already
                    db.execute("ROLLBACK")
                raise
        return added

    def _add(self, db: sqlite3.Connection, row: _Row) -> int:
        cursor = db.execute(
            "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.run_id,
                row.event_type,
                row.event_time,
                row.job,
                row.call_digest,
                row.body,
                hashlib.sha256(row.body.encode("utf-8")).hexdigest(),
                row.record,
            ),
        )
        if cursor.rowcount == 0:
            return 0
        if row.event_type == "COMPLETE":
            for uid in row.outputs:
                db.execute(
                    "INSERT OR REPLACE INTO outputs VALUES (?, ?, ?, ?)",
                    (uid, row.run_id, row.lifecycle, row.event_time),
                )
            for uid in row.inputs:
                db.execute("INSERT OR IGNORE INTO inputs VALUES (?, ?)", (uid, row.run_id))
        return 1

    def reject(self, rejected: Sequence[RejectedRecord]) -> None:
        """Remember lake records that failed the checks: not fetched or reported again."""
        with self._lock, self._sql("remember rejected lineage records"):
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT OR REPLACE INTO rejected VALUES (?, ?, ?, ?)",
                    [(r.name, r.reason, r.run_id, r.named_at) for r in rejected],
                )
                db.executemany(
                    "INSERT OR IGNORE INTO records VALUES (?)", [(r.name,) for r in rejected]
                )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def rejected(self) -> list[RejectedRecord]:
        """Every lake record that failed the checks, by name."""
        with self._lock:
            rows = self.db.execute(
                "SELECT name, reason, run_id, named_at FROM rejected ORDER BY name"
            ).fetchall()
        return [RejectedRecord(*row) for row in rows]

    def rejected_for(self, run_id: str, named_from: float, named_until: float) -> bool:
        """True if a rejected record may be the one of ``run_id``: it names that run, or no
        run could be read from it and its name dates it between the two times."""
        with self._lock:
            row = self.db.execute(
                "SELECT 1 FROM rejected WHERE run_id = ? OR (run_id IS NULL AND named_at "
                "BETWEEN ? AND ?) LIMIT 1",
                (run_id, named_from, named_until),
            ).fetchone()
        return row is not None

    # -- reading ----------------------------------------------------------------------------

    def run_events(self, run_id: str, event_type: str = "COMPLETE") -> list[dict[str, Any]]:
        """The events of ``run_id`` of this type (more than one only if a record was copied
        with another's run id), in the order their records were written: by the UUIDv7 of
        their names (``events/<day>/`` is 18 characters), then, for events that were never
        lake records, in the order they were indexed."""
        return [event for _, event in self._run_events(run_id, event_type)]

    def _run_events(self, run_id: str, event_type: str) -> list[tuple[str | None, dict[str, Any]]]:
        with self._lock:
            rows = self.db.execute(
                "SELECT record, body FROM events WHERE run_id = ? AND event_type = ? "
                "ORDER BY record IS NULL, substr(record, 19), rowid",
                (run_id, event_type),
            ).fetchall()
        return [(row[0], json.loads(row[1])) for row in rows]

    def creation_of(self, uid: str) -> dict[str, Any] | None:
        """The COMPLETE event that the index holds as the latest creation of ``uid``.

        None if no creation is known, or if the latest record of ``uid`` is its deletion. This
        trusts event times, which any writer of the lake chooses: skip decisions and what the
        CLI shows go through :meth:`LineageRecorder.creation_of`, which asks the object.
        """
        with self._lock:
            row = self.db.execute(
                "SELECT run_id, lifecycle FROM outputs WHERE uid = ? "
                "ORDER BY event_time DESC, run_id DESC LIMIT 1",
                (uid,),
            ).fetchone()
        if row is None or row[1] == "DROP":
            return None
        made = self.creations_by(uid, row[0])
        return made[0][1] if made else None

    def creations_by(self, uid: str, run_id: str) -> list[tuple[str | None, dict[str, Any]]]:
        """The COMPLETE events of ``run_id`` that record the creation of ``uid``, each with the
        name of its lake record (None: not read from the lake), in the order written."""
        return [
            (record, event)
            for record, event in self._run_events(run_id, "COMPLETE")
            if uid in radops_facet(event).get("outputs", []) and _lifecycle(event) == "CREATE"
        ]

    def run_state(self, run_id: str) -> str | None:
        """How ``run_id`` ended: COMPLETE, FAIL or ABORT; None if no end is indexed."""
        with self._lock:
            rows = self.db.execute(
                "SELECT event_type FROM events WHERE run_id = ? "
                "AND event_type IN ('COMPLETE', 'FAIL', 'ABORT')",
                (run_id,),
            ).fetchall()
        ended = {row[0] for row in rows}
        for state in ("COMPLETE", "FAIL", "ABORT"):
            if state in ended:
                return state
        return None

    def live_outputs(self) -> list[str]:
        """Every uid whose latest indexed record is its creation (not its deletion)."""
        with self._lock:
            rows = self.db.execute(
                "SELECT uid, lifecycle FROM outputs o WHERE event_time = "
                "(SELECT MAX(event_time) FROM outputs p WHERE p.uid = o.uid) ORDER BY uid"
            ).fetchall()
        live: dict[str, bool] = {}
        for uid, lifecycle in rows:
            live[uid] = live.get(uid, True) and lifecycle != "DROP"
        return [uid for uid, alive in live.items() if alive]

    def runs_using(self, uid: str) -> list[dict[str, Any]]:
        """COMPLETE events of the runs that read ``uid`` (what was made from it)."""
        with self._lock:
            rows = self.db.execute(
                "SELECT e.body FROM inputs i JOIN events e ON e.run_id = i.run_id "
                "AND e.event_type = 'COMPLETE' WHERE i.uid = ? ORDER BY e.event_time",
                (uid,),
            ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def calls(self, digest: str, *, limit: int = 32) -> list[dict[str, Any]]:
        """COMPLETE events of calls with this digest, first written first (at most ``limit``).

        In the order of their records' names (UUIDv7s of the time they were written), then of
        indexing: never by ``eventTime``, which the writer of a record chooses. Which one holds
        is for the objects to say (``file_creator``'s skip decision).
        """
        with self._lock:
            rows = self.db.execute(
                "SELECT body FROM events WHERE call_digest = ? AND event_type = 'COMPLETE' "
                "ORDER BY record IS NULL, substr(record, 19), rowid LIMIT ?",
                (digest, limit),
            ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def events(self, since: str | None = None) -> Iterator[dict[str, Any]]:
        """Every indexed event in time order, optionally from ``since`` (ISO 8601) on."""
        query = "SELECT body FROM events"
        params: tuple[str, ...] = ()
        if since:
            query += " WHERE event_time >= ?"
            params = (since,)
        with self._lock:
            rows = self.db.execute(query + " ORDER BY event_time, run_id", params).fetchall()
        for row in rows:
            yield json.loads(row[0])

    def count(self) -> int:
        """How many events are indexed."""
        with self._lock:
            return int(self.db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    # -- sync bookkeeping ----------------------------------------------------------------------

    def has_record(self, name: str) -> bool:
        """True if the lake record ``name`` was already indexed."""
        with self._lock:
            row = self.db.execute("SELECT 1 FROM records WHERE name = ?", (name,)).fetchone()
        return row is not None

    def records_from(self, first: str) -> set[str]:
        """The names of the indexed lake records that sort at or after ``first``."""
        with self._lock:
            rows = self.db.execute("SELECT name FROM records WHERE name >= ?", (first,))
            return {row[0] for row in rows}

    def mark_record(self, name: str) -> None:
        """Remember that the lake record ``name`` is indexed (this machine wrote it)."""
        with self._lock, self._sql("index a lineage record"):
            self.db.execute("INSERT OR IGNORE INTO records VALUES (?)", (name,))

    def get_state(self, name: str) -> str | None:
        """A value the sync remembered."""
        with self._lock:
            row = self.db.execute("SELECT value FROM sync_state WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def set_state(self, name: str, value: str) -> None:
        """Remember a value for the next sync."""
        with self._lock, self._sql("save the lineage sync state"):
            self.db.execute("INSERT OR REPLACE INTO sync_state VALUES (?, ?)", (name, value))


@attrs.frozen
class _Row:
    """What the index stores of one (checked) event."""

    run_id: str
    event_type: str
    event_time: str
    job: str
    call_digest: str | None
    body: str
    lifecycle: str
    outputs: tuple[str, ...]
    inputs: tuple[str, ...]
    record: str | None


def _row(event: Mapping[str, Any], record: str | None, checked: bool) -> _Row:
    if not checked:
        check_event(event)
    facet = radops_facet(event)
    return _Row(
        run_id=event["run"]["runId"],
        event_type=event.get("eventType", "OTHER"),
        event_time=event_time(event),
        job=event["job"]["name"],
        call_digest=facet.get("callDigest"),
        body=json.dumps(event, sort_keys=True),
        lifecycle=_lifecycle(event),
        outputs=tuple(facet.get("outputs", [])),
        inputs=tuple(facet.get("inputs", [])),
        record=record,
    )


def _lifecycle(event: Mapping[str, Any]) -> str:
    for output in event.get("outputs", []):
        change = output.get("facets", {}).get("lifecycleStateChange", {})
        if change.get("lifecycleStateChange") == "DROP":
            return "DROP"
    return "CREATE"
