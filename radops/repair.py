"""``radops datalake repair``: bring a lake back to its invariants after crashes.

The invariants: every object in the lake has a COMPLETE creation record, every file a record
says exists is in the lake, and nothing a killed writer left behind lingers. Lineage records
that fail the checks (:mod:`radops.lineage.validate`) are reported, never removed: an object
whose record may be one of them is kept. A creation runs
upload-then-record, so a process killed in between leaves an object without a record; it is
*abandoned* once its writer is known dead (a process on this machine) or older than
``stale_after`` (another machine), and repair removes it, as the rerun of the pipeline would.
A file whose record survived but whose object is gone (deleted outside radops, or a crash in the
middle of ``datalake rm``) gets its deletion recorded, so lineage never points at nothing.

``file_creator`` and ``datalake add`` recover the objects they meet on their own; repair does
it for the whole lake, and also sweeps temp files, multipart uploads and claims.
"""

from __future__ import annotations

import contextlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import attrs

from radops import writers
from radops.lineage.naming import REPAIR_JOB
from radops.objects import CreationState
from radops.uids import uid_problem

if TYPE_CHECKING:
    from radops.lake import DataLake
    from radops.stores import ObjectMeta

__all__ = ["REPAIR_JOB", "RepairReport", "repair"]

_HEADS_AT_ONCE = 8


@attrs.frozen
class RepairReport:
    """What :func:`repair` found (and, unless it was a dry run, fixed)."""

    checked: int
    abandoned: tuple[str, ...] = ()  # objects without a creation record, removed
    under_way: tuple[str, ...] = ()  # creations another process may still record: left alone
    lost: tuple[str, ...] = ()  # recorded files missing from the lake: deletion recorded
    swept: tuple[str, ...] = ()  # leftovers of killed writers, in the lake and locally
    dry_run: bool = False
    invalid: tuple[str, ...] = ()  # keys that are not valid uids (not radops'): left alone
    #: Lineage records of the lake that failed the checks (key, reason): skipped by every
    #: reader, left in place (they may be another radops version's; remove them if not).
    ignored_records: tuple[tuple[str, str], ...] = ()
    #: Records named for a time more than the clock-skew margin ahead: read once it comes.
    future_records: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        """True if the lake needed nothing (creations under way do not count)."""
        return not (self.abandoned or self.lost or self.swept)

    def as_dict(self) -> dict[str, object]:
        """The report as plain JSON-ready data."""
        return {
            "checked": self.checked,
            "abandoned": list(self.abandoned),
            "under_way": list(self.under_way),
            "lost": list(self.lost),
            "swept": list(self.swept),
            "ignored_records": [
                {"record": key, "reason": reason} for key, reason in self.ignored_records
            ],
            "future_records": list(self.future_records),
            "dry_run": self.dry_run,
            "invalid": list(self.invalid),
        }


def repair(lake: DataLake, *, dry_run: bool = False) -> RepairReport:
    """Check every object of ``lake`` against its creation records and fix what crashes left.

    Costs one listing and one HEAD per object (eight at a time), plus a sync of the index.
    ``dry_run``: report only, change nothing. Keys that are not valid uids (put in the lake
    without radops) are reported as ``invalid`` and left alone; the rest is checked.
    """
    lake.lineage.sync()
    listed: dict[str, ObjectMeta] = {}
    invalid: list[str] = []
    for each in lake.files():
        if uid_problem(each.key):
            invalid.append(each.key)
        else:
            listed[each.key] = each
    with ThreadPoolExecutor(_HEADS_AT_ONCE) as pool:
        heads = dict(zip(listed, pool.map(lake.head, listed), strict=True))
    abandoned: list[str] = []
    under_way: list[str] = []
    for uid, meta in heads.items():
        if meta is None:
            continue  # deleted since the listing
        state = lake.creation_state(uid, meta)
        if state is CreationState.ABANDONED:
            if dry_run or lake.remove_abandoned(uid, meta):
                abandoned.append(uid)
        elif state is CreationState.UNDER_WAY:
            under_way.append(uid)
    present = {uid for uid, meta in heads.items() if meta is not None} - set(abandoned)
    # Records are read from the lake too: a name that is not a uid is no file radops made.
    lost = [
        uid
        for uid in lake.lineage.index.live_outputs()
        if uid not in present and isinstance(uid, str) and not uid_problem(uid)
    ]
    if not dry_run:
        for uid in lost:
            _record_loss(lake, uid)
    swept: list[str] = []
    if not dry_run:
        swept += lake.store.sweep(lake.settings.stale_after)
        swept += _sweep_local_temps(lake)
    from radops.lineage.records import shown_key

    return RepairReport(
        checked=len(listed),
        abandoned=tuple(abandoned),
        under_way=tuple(under_way),
        lost=tuple(lost),
        swept=tuple(swept),
        dry_run=dry_run,
        invalid=tuple(invalid),
        ignored_records=tuple(
            (shown_key(record.name), record.reason) for record in lake.lineage.index.rejected()
        ),
        future_records=tuple(shown_key(name) for name in lake.lineage.records.deferred),
    )


def _record_loss(lake: DataLake, uid: str) -> None:
    """Record that ``uid`` is gone, as a deletion by the repair job."""
    from radops.lineage.events import DatasetRef, uuid7

    namespace, name = lake.store.dataset(uid)
    creation = lake.command_creation(
        REPAIR_JOB,
        str(uuid7()),
        uid,
        lifecycle="DROP",
        outputs=[DatasetRef(namespace, name, uid)],
        parameters={"reason": "missing from the data lake"},
    )
    lake.lineage.emit(creation, "START")
    lake.lineage.emit(creation, "COMPLETE")
    lake.local.remove(uid)


def _sweep_local_temps(lake: DataLake) -> list[str]:
    """Temp files in local storage left by dead processes (or older than ``stale_after``)."""
    removed: list[str] = []
    now = time.time()
    try:
        entries = list(os.scandir(lake.local.tmp_dir))
    except FileNotFoundError:
        return removed
    for entry in entries:
        dead = writers.is_dead_tag(entry.name)
        with contextlib.suppress(FileNotFoundError):
            old = now - entry.stat(follow_symlinks=False).st_mtime > lake.settings.stale_after
            if dead or old:
                os.unlink(entry.path)
                removed.append(f"local temp file {entry.path}")
    return removed
