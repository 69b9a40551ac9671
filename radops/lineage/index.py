"""The embedded lineage index: SQLite under ``$RADOPS_HOME``, one database per lake.

It answers lineage queries and skip checks without a network round trip. It is filled from the
events this machine writes and synced incrementally from the events stored in the lake, so it
is a cache: deleting it loses nothing (the next sync rebuilds it from the lake).
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

from radops.cache import local_storage_error, open_wal_database, sqlite_storage_error
from radops.lineage.events import radops_facet
from radops.private import create_private_file, make_private_dir

__all__ = ["LineageIndex", "radops_facet"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    event_time TEXT NOT NULL,
    job TEXT NOT NULL,
    call_digest TEXT,
    body TEXT NOT NULL,
    PRIMARY KEY (run_id, event_type)
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
"""


class LineageIndex:
    """Lineage of one lake, indexed locally."""

    def __init__(self, state_dir: Path, lake_url: str) -> None:
        digest = hashlib.sha256(lake_url.encode("utf-8")).hexdigest()[:16]
        self.path = state_dir / f"lineage-{digest}.sqlite"
        self.lake_url = lake_url
        self._db: sqlite3.Connection | None = None
        self._lock = threading.RLock()

    @property
    def db(self) -> sqlite3.Connection:
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
        return self._db

    @contextlib.contextmanager
    def _sql(self, doing: str) -> Iterator[None]:
        """SQLite's errors (a full or read-only disk) as one :class:`LocalStorageError`."""
        try:
            yield
        except sqlite3.Error as exc:
            raise sqlite_storage_error(exc, doing, self.path.parent) from exc

    def close(self) -> None:
        """Close the database connection."""
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- writing ------------------------------------------------------------------------

    def add(self, event: Mapping[str, Any]) -> bool:
        """Index one event (idempotent per runId and eventType); True if it was new."""
        return self.add_many([event]) > 0

    def add_many(self, events: Sequence[Mapping[str, Any]], records: Sequence[str] = ()) -> int:
        """Index events in one transaction; returns how many were new.

        ``records`` names the lake records the events were read from, so a later sync does
        not fetch them again.
        """
        added = 0
        with self._lock, self._sql("index lineage events"):
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                for event in events:
                    added += self._add(db, event)
                db.executemany(
                    "INSERT OR IGNORE INTO records VALUES (?)", [(name,) for name in records]
                )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # a failed COMMIT may have rolled back already
                    db.execute("ROLLBACK")
                raise
        return added

    def _add(self, db: sqlite3.Connection, event: Mapping[str, Any]) -> int:
        run_id = event["run"]["runId"]
        event_type = event.get("eventType", "OTHER")
        facet = radops_facet(event)
        cursor = db.execute(
            "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?)",
            (
                run_id,
                event_type,
                event["eventTime"],
                event["job"]["name"],
                facet.get("callDigest"),
                json.dumps(event, sort_keys=True),
            ),
        )
        if cursor.rowcount == 0:
            return 0
        if event_type == "COMPLETE":
            lifecycle = _lifecycle(event)
            for uid in facet.get("outputs", []):
                db.execute(
                    "INSERT OR REPLACE INTO outputs VALUES (?, ?, ?, ?)",
                    (uid, run_id, lifecycle, event["eventTime"]),
                )
            for uid in facet.get("inputs", []):
                db.execute("INSERT OR IGNORE INTO inputs VALUES (?, ?)", (uid, run_id))
        return 1

    # -- reading ----------------------------------------------------------------------------

    def _event(self, run_id: str, event_type: str = "COMPLETE") -> dict[str, Any] | None:
        with self._lock:
            row = self.db.execute(
                "SELECT body FROM events WHERE run_id = ? AND event_type = ?", (run_id, event_type)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def creation_of(self, uid: str) -> dict[str, Any] | None:
        """The COMPLETE event that created ``uid`` (the latest, if it was deleted and remade).

        None if no creation is known, or if the latest record of ``uid`` is its deletion.
        """
        with self._lock:
            row = self.db.execute(
                "SELECT run_id, lifecycle FROM outputs WHERE uid = ? "
                "ORDER BY event_time DESC, run_id DESC LIMIT 1",
                (uid,),
            ).fetchone()
        if row is None or row[1] == "DROP":
            return None
        return self._event(row[0])

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

    def call(self, digest: str) -> dict[str, Any] | None:
        """The latest COMPLETE event of a call with this digest, or None."""
        with self._lock:
            row = self.db.execute(
                "SELECT body FROM events WHERE call_digest = ? AND event_type = 'COMPLETE' "
                "ORDER BY event_time DESC LIMIT 1",
                (digest,),
            ).fetchone()
        return json.loads(row[0]) if row else None

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


def _lifecycle(event: Mapping[str, Any]) -> str:
    for output in event.get("outputs", []):
        change = output.get("facets", {}).get("lifecycleStateChange", {})
        if change.get("lifecycleStateChange") == "DROP":
            return "DROP"
    return "CREATE"
