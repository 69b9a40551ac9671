"""The evidence a ``file_creator`` call is skipped on: the objects, their record, the inputs.

A record alone proves nothing: anyone who can write to the bucket can write one, with any
event time. A call is skipped on a record only if it holds together with the lake as it is now:

1. the record is a COMPLETE event of this call (its ``callDigest``), and its outputs are this
   call's (for implicit outputs, uids derived from the digest; files in its return value are
   among its outputs and inputs);
2. every output is in the lake, and each object names the record's run (``radops-run-id``) and
   this call (``radops-call-digest``);
3. the inputs the record names are the bytes the lake holds under their uids now: their sha256
   in the record (radops' facet ``inputSha256``, or the input datasets' ``version`` facets)
   equals the sha256 of the lake's object.

A record that fails 1 or 2 is passed over (the call runs, and says why at INFO). One that
passes 1 and 2 but not 3 proves that the outputs were made from other bytes than the inputs
now hold: the call cannot run into the same uids, so it raises :class:`OutputsError` naming
them. The same checks decide whether a run that loses the race for its outputs may return the
winner's (:func:`check_winner`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from radops.errors import OutputsError
from radops.lineage.events import radops_facet, recorded_sha256
from radops.lineage.validate import returned_files
from radops.objects import DIGEST_KEY, RUN_KEY, CreationState

if TYPE_CHECKING:
    from radops.lake import DataLake
    from radops.stores import ObjectMeta

__all__ = ["Evidence", "Skip", "check_declared", "check_winner", "find_skip"]

log = logging.getLogger("radops")


@attrs.frozen
class Skip:
    """The call is skipped: these outputs, made by the run of ``record``."""

    record: Mapping[str, Any]
    outputs: list[str]
    returned: Any


class Evidence:
    """The lake as one call sees it: each object's metadata fetched once (HEAD)."""

    def __init__(self, lake: DataLake) -> None:
        self.lake = lake
        self._heads: dict[str, ObjectMeta | None] = {}
        self._inputs: dict[str, str | None] = {}

    def head(self, uid: str) -> ObjectMeta | None:
        if uid not in self._heads:
            self._heads[uid] = self.lake.head(uid)
        return self._heads[uid]

    def forget(self, uid: str) -> None:
        self._heads.pop(uid, None)

    def input_sha256(self, uid: str) -> str | None:
        """The sha256 of the lake's object ``uid`` now (None: not in the lake).

        A local copy of other bytes (the file was deleted and added again since it was cached)
        is dropped, so the function reads what the lake holds.
        """
        if uid not in self._inputs:
            meta = self.head(uid)
            sha256 = meta.sha256 if meta is not None else None
            entry = self.lake.local.entry(uid)
            if sha256 is not None and entry is not None and entry.sha256 != sha256:
                self.lake.remove_local(uid)
            self._inputs[uid] = sha256
        return self._inputs[uid]

    def settled(self, uid: str, run_id: str | None) -> ObjectMeta | None:
        """The object ``uid``, once no creation of it is under way (None: absent).

        An object of ``run_id`` is taken as it is. Another one, uploaded by a run that has not
        recorded its creation, is waited for while it is under way (another process finishing
        this same call) and removed if its creation was abandoned.
        """
        meta = self.head(uid)
        if meta is None or meta.metadata.get(RUN_KEY) == run_id:
            return meta
        if self.lake.creation_state(uid, meta) is CreationState.RECORDED:
            return meta
        self.forget(uid)
        if self.lake.settle(uid) is CreationState.ABSENT:
            self._heads[uid] = None
            return None
        return self.head(uid)


def changed_inputs(
    lake: DataLake, record: Mapping[str, Any], now: Mapping[str, str | None], evidence: Evidence
) -> list[str] | None:
    """The inputs ``record`` names whose bytes are not those it records, with why; None if the
    record does not say which bytes one of them was (nothing can be proved either way).

    ``now``: the sha256 of the call's inputs as the call sees them; the other inputs the record
    names (files the function opened) are looked up in the lake.
    """
    changed = []
    for uid in radops_facet(record).get("inputs", []):
        recorded = recorded_sha256(record, uid, lake.store.dataset(uid))
        if recorded is None:
            return None
        current = now[uid] if uid in now else evidence.input_sha256(uid)
        if current is None:
            changed.append(f"{uid} is no longer in the data lake")
        elif current != recorded:
            changed.append(
                f"{uid} holds other bytes (sha256 {current[:12]}…, not {recorded[:12]}…)"
            )
    return changed


def _claims(
    record: Mapping[str, Any], digest: str, prefix: str | None, inputs: Sequence[str]
) -> str | None:
    """Why ``record`` cannot be this call's COMPLETE record, on its own word (None: it can)."""
    facet = radops_facet(record)
    if record.get("eventType") != "COMPLETE" or facet.get("callDigest") != digest:
        return "it is not a COMPLETE record of this call"
    outputs = list(facet.get("outputs", []))
    if not outputs:
        return "it records no output"
    if prefix is not None:
        foreign = [uid for uid in outputs if not uid.startswith(prefix)]
        if foreign or len(set(outputs)) != len(outputs):
            return f"it names outputs that are not this call's ({', '.join(foreign[:3])})"
    recorded_inputs = set(facet.get("inputs", []))
    missing = [uid for uid in inputs if uid not in recorded_inputs]
    if missing:
        return f"it does not name the call's input(s) {', '.join(missing[:3])}"
    known = set(outputs) | recorded_inputs
    strange = [uid for uid in returned_files(record) if uid not in known]
    if strange:
        return f"its return value names {', '.join(strange[:3])}, neither output nor input"
    return None


def find_skip(
    lake: DataLake,
    job: str,
    digest: str,
    candidates: Iterable[Mapping[str, Any]],
    now: Mapping[str, str | None],
    evidence: Evidence,
) -> Skip | None:
    """The record this call of implicit outputs can be skipped on, or None: run it.

    ``candidates``: the recorded COMPLETE events of calls with this digest (Marquez's answer,
    then the index's). A record whose objects were remade by another run brings that run's
    records in. ``now``: the sha256 of the call's inputs.

    Raises:
        OutputsError: the outputs are in the lake, made by this call from other input bytes,
            or some of them are missing.
    """
    prefix = f"{job}/{digest[:32]}-"
    # Lazily: a record that holds ends the search before the index is synced or read.
    recorded = iter(_bounded(candidates))
    discovered: list[Mapping[str, Any]] = []
    seen: set[str] = set()
    reasons: list[str] = []
    partial: tuple[list[str], list[str]] | None = None
    stale: tuple[list[str], list[str]] | None = None
    while True:
        record = discovered.pop(0) if discovered else next(recorded, None)
        if record is None:
            break
        run_id = str(record.get("run", {}).get("runId"))
        key = f"{run_id}:{sorted(radops_facet(record).get('outputs', []))}"
        if key in seen:
            continue
        seen.add(key)
        why = _claims(record, digest, prefix, list(now))
        if why is not None:
            reasons.append(f"the record of run {run_id} does not hold: {why}")
            continue
        outputs = list(radops_facet(record)["outputs"])
        metas = {uid: evidence.settled(uid, run_id) for uid in outputs}
        present = [uid for uid in outputs if metas[uid] is not None]
        if not present:
            reasons.append(f"the outputs of run {run_id} are no longer in the data lake")
            continue
        found = {uid: meta for uid, meta in metas.items() if meta is not None}
        runs = {str(meta.metadata.get(RUN_KEY)) for meta in found.values()}
        if runs != {run_id}:
            for other in sorted(runs - {run_id, "None"}):
                discovered.extend(
                    lake.lineage.creations_by(present[0], other, created=_created(found))
                )
            reasons.append(f"the outputs in the data lake were made by another run than {run_id}")
            continue
        if len(present) < len(outputs):
            partial = (present, [uid for uid in outputs if metas[uid] is None])
            continue
        if any(meta.metadata.get(DIGEST_KEY) != digest for meta in found.values()):
            reasons.append(f"the outputs of run {run_id} were not made by this call")
            continue
        changed = changed_inputs(lake, record, now, evidence)
        if changed is None:
            reasons.append(f"the record of run {run_id} does not give the sha256 of its inputs")
            continue
        if changed:
            stale = (outputs, changed)
            continue
        return Skip(record, outputs, radops_facet(record).get("returned"))
    if stale is not None:
        raise _stale_error(job, *stale)
    if partial is not None:
        present, missing = partial
        raise OutputsError(
            f"{job}: some outputs are in the data lake ({', '.join(present)}) and "
            f"others are not ({', '.join(missing)}); delete the present ones "
            "(`radops datalake rm`) to run it again, or restore the missing ones"
        )
    if reasons:
        log.info("%s runs again: %s", job, reasons[-1])
    return None


def check_declared(
    lake: DataLake,
    job: str,
    digest: str,
    metas: Mapping[str, ObjectMeta],
    now: Mapping[str, str | None],
    evidence: Evidence,
) -> Mapping[str, Any]:
    """The record that declared outputs, all present and made by this call, were made by, if
    their inputs hold the same bytes now.

    Raises:
        OutputsError: no readable record of their run names them (the objects cannot be tied
            to input bytes), or it shows they were made from other input bytes.
    """
    runs = {uid: str(meta.metadata.get(RUN_KEY)) for uid, meta in metas.items()}
    records: list[Mapping[str, Any]] = []
    for run_id in sorted(set(runs.values())):
        uids = [uid for uid, run in runs.items() if run == run_id]
        made = [
            record
            for record in lake.lineage.creations_by(
                uids[0], run_id, created=_created({uid: metas[uid] for uid in uids})
            )
            if _claims(record, digest, None, list(now)) is None
            and set(uids) <= set(radops_facet(record).get("outputs", []))
        ]
        if not made:
            raise OutputsError(
                f"{job}: {', '.join(uids)} in the data lake name run {run_id}, but no readable "
                "creation record of that run names them (see `radops datalake repair "
                "--dry-run`), so radops cannot tell which input bytes they were made from; "
                "delete them (`radops datalake rm`) to make them again"
            )
        records.append(made[0])
    for record in records:
        changed = changed_inputs(lake, record, now, evidence)
        if changed:
            raise _stale_error(job, list(metas), changed)
        if changed is None:
            raise OutputsError(
                f"{job}: the creation record of {', '.join(metas)} does not give the sha256 of "
                "its inputs, so radops cannot tell whether they still hold the same bytes; "
                "delete them (`radops datalake rm`) to make them again"
            )
    return records[0]


def check_winner(
    lake: DataLake, job: str, digest: str, uid: str, now: Mapping[str, str | None]
) -> None:
    """Whether a run that lost the race for ``uid`` may return the winner's outputs: the object
    is this call's, and the winner's record shows the same input bytes.

    Raises:
        OutputsError: it is not this call's object, or was made from other input bytes, or no
            readable record of its run says from which.
    """
    evidence = Evidence(lake)
    meta = evidence.head(uid)
    if meta is None:
        return  # gone again: the caller's rebuild makes handles to what is there
    if meta.metadata.get(DIGEST_KEY) != digest:
        raise OutputsError(
            f"{job}: {uid} already exists in the data lake but was not made by this call "
            "(another call, or not by radops): delete it (`radops datalake rm`) to make it again"
        )
    check_declared(lake, job, digest, {uid: meta}, now, evidence)


def _stale_error(job: str, outputs: list[str], changed: list[str]) -> Exception:
    return OutputsError(
        f"{job}: {', '.join(outputs)} in the data lake were made from other input bytes than "
        f"the data lake holds now ({'; '.join(changed)}): they are stale, and their uids are "
        "taken. Delete them and what was made from them (`radops datalake rm "
        f"{outputs[0]} --cascade`), then run it again"
    )


def _bounded(
    candidates: Iterable[Mapping[str, Any]], limit: int = 64
) -> Iterable[Mapping[str, Any]]:
    for count, record in enumerate(candidates):
        if count >= limit:
            return
        yield record


def _created(metas: Mapping[str, ObjectMeta]) -> float | None:
    """The earliest upload time of these objects (a record of their run is written after)."""
    times = [meta.created.timestamp() for meta in metas.values() if meta.created is not None]
    return min(times) if times else None
