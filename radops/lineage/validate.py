"""Checking the lineage records radops reads before relying on them (pure: no I/O).

A lake is shared: its ``.radops/events/`` may hold records written by other radops versions,
other tools, a mistake or someone with write access to the bucket. Every record is therefore
bounded (:data:`RECORD_MAX_BYTES`), parsed defensively and checked for the fields radops uses,
with the types it uses them as; anything else in it is left alone (other producers' facets,
fields of later radops versions). A record that fails is reported by the caller with the
one-line reason of its :class:`~radops.errors.InvalidRecordError`, and skipped.

Records radops writes are kept within the same limit (:func:`fit_record`), so one machine never
writes what another one refuses.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

from radops.errors import InvalidRecordError, InvalidUidError
from radops.lineage.events import _LEGACY_FACET, RADOPS_FACET
from radops.uids import validate_uid

__all__ = [
    "EVENT_TYPES",
    "MAX_NESTING",
    "RECORD_MAX_BYTES",
    "check_event",
    "event_time",
    "fit_record",
    "holds_together",
    "parse_record",
    "returned_files",
    "run_id_in",
]

#: The largest lineage record radops reads or writes, in bytes (4 MiB). A record's size bounds
#: the memory parsing it takes (at most about 25 times its size, for a record of empty lists)
#: and the room it takes in every machine's index. A creation's record is a few kB; a 1 MB
#: string parameter, recorded in full, fits; a call's record names up to several thousand
#: files. Larger records radops would write lose their source code, error trace, parameters
#: and return value first (:func:`fit_record`).
RECORD_MAX_BYTES = 4 * 1024 * 1024

#: The deepest nesting of JSON arrays and objects in a record (parameters may nest 100 levels).
MAX_NESTING = 128

#: The OpenLineage event types.
EVENT_TYPES = frozenset({"START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"})

_HEX64 = re.compile(r"[0-9a-f]{64}")
_FILE_MARKER = "radops.File"


def parse_record(data: bytes) -> dict[str, Any]:
    """The event stored in ``data``, checked with :func:`check_event`.

    Raises:
        InvalidRecordError: ``data`` is over :data:`RECORD_MAX_BYTES`, is not a JSON object,
            or is not an event radops can use.
    """
    if len(data) > RECORD_MAX_BYTES:
        raise InvalidRecordError(
            f"{len(data)} bytes, over the limit of {RECORD_MAX_BYTES} bytes for a record"
        )
    # Deep nesting needs as many brackets: most records have too few to need the walk.
    walk = data.count(b"[") + data.count(b"{") > MAX_NESTING
    return check_event(_loads(data), walk=walk)


def _loads(data: bytes) -> Any:
    try:
        return json.loads(data, parse_constant=_no_constant)
    except RecursionError:
        raise InvalidRecordError("not JSON radops can read: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a huge integer
        reason = str(exc).splitlines()[0][:100] if str(exc) else type(exc).__name__
        raise InvalidRecordError(f"not JSON ({reason})") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def run_id_in(data: bytes) -> str | None:
    """The run id a record gives, if it can be read at all (a record that fails the checks may
    still name its run: an object of that run then stays, see ``DataLake.creation_state``)."""
    if len(data) > RECORD_MAX_BYTES:
        return None
    try:
        event = _loads(data)
    except InvalidRecordError:
        return None
    run = event.get("run") if isinstance(event, dict) else None
    run_id = run.get("runId") if isinstance(run, dict) else None
    return run_id if isinstance(run_id, str) and _is_uuid(run_id) else None


def check_event(event: Any, *, walk: bool = True) -> dict[str, Any]:
    """``event`` itself if it has every field radops relies on, with the right type.

    Checked: the nesting depth; ``eventType`` (one of :data:`EVENT_TYPES`, if present);
    ``eventTime`` (ISO 8601); ``run.runId`` (a UUID); ``job.namespace`` and ``job.name``
    (text); the facets radops reads (objects, with text where radops reads text); datasets
    (objects with a text ``namespace`` and ``name``); and radops' run facet: ``callDigest``
    (64 hex digits), ``inputs`` and ``outputs`` (valid uids), ``inputSha256`` (uid to sha256),
    ``parameters`` and ``extra`` (objects), files in ``returned`` (valid uids).

    ``walk``: False if the event cannot nest deeper than :data:`MAX_NESTING` (its JSON has
    fewer brackets), which spares walking every value.

    Raises:
        InvalidRecordError: the first problem found, in one line.
    """
    if not isinstance(event, dict):
        raise InvalidRecordError(f"not a JSON object but {_kind(event)}")
    if walk:
        _check_depth(event)
    kind = event.get("eventType", "OTHER")
    if kind not in EVENT_TYPES:
        raise InvalidRecordError("eventType is not an OpenLineage event type")
    event_time(event)
    run = _mapping(event, "run", "run", required=True)
    run_id = run.get("runId")
    if not isinstance(run_id, str) or not _is_uuid(run_id):
        raise InvalidRecordError("run.runId is missing or not a UUID")
    facets = _mapping(run, "facets", "run.facets")
    job = _mapping(event, "job", "job", required=True)
    for key in ("namespace", "name"):
        if not isinstance(job.get(key), str):
            raise InvalidRecordError(f"job.{key} is missing or not text")
    job_facets = _mapping(job, "facets", "job.facets")
    location = _mapping(job_facets, "sourceCodeLocation", "job.facets.sourceCodeLocation")
    _optional_text(location, "url", "job.facets.sourceCodeLocation")
    for key in ("inputs", "outputs"):
        _check_datasets(event, key)
    for key in (RADOPS_FACET, _LEGACY_FACET):
        if key in facets:
            _check_radops_facet(_mapping(facets, key, f"run.facets.{key}"), f"run.facets.{key}")
    return event


def event_time(event: Mapping[str, Any]) -> str:
    """The event's ``eventTime`` in UTC, as radops writes it (``datetime.isoformat()``).

    A time without an offset is taken as UTC. Raises InvalidRecordError if it is missing or
    not ISO 8601.
    """
    text = event.get("eventTime")
    if not isinstance(text, str) or len(text) > 64:
        raise InvalidRecordError("eventTime is missing or not text")
    try:
        moment = datetime.fromisoformat(text.strip().removesuffix("Z").removesuffix("z"))
    except ValueError:
        raise InvalidRecordError("eventTime is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc).isoformat()
    except OverflowError:  # year 1 with a positive offset, year 9999 with a negative one
        raise InvalidRecordError("eventTime is out of range") from None


def _check_depth(event: dict[str, Any]) -> None:
    """Refuse nesting deeper than :data:`MAX_NESTING` (code walking the event recurses).

    Depth first with one iterator per level: memory grows with the depth, not the size.
    """
    stack: list[Iterator[Any]] = [iter(event.values())]
    while stack:
        for item in stack[-1]:
            if isinstance(item, dict):
                children: Iterator[Any] = iter(item.values())
            elif isinstance(item, list):
                children = iter(item)
            else:
                continue
            if len(stack) >= MAX_NESTING:
                raise InvalidRecordError(f"nested deeper than {MAX_NESTING} levels")
            stack.append(children)
            break
        else:
            stack.pop()


def _container(value: Any) -> bool:
    return isinstance(value, (dict, list))


def _check_datasets(event: Mapping[str, Any], key: str) -> None:
    datasets = event.get(key, [])
    if not isinstance(datasets, list):
        raise InvalidRecordError(f"{key} is not a list")
    for dataset in datasets:
        if not isinstance(dataset, dict):
            raise InvalidRecordError(f"an item of {key} is not an object")
        for field in ("namespace", "name"):
            if not isinstance(dataset.get(field), str):
                raise InvalidRecordError(f"an item of {key} has no text {field}")
        facets = _mapping(dataset, "facets", f"{key}[].facets")
        version = _mapping(facets, "version", f"{key}[].facets.version")
        _optional_text(version, "datasetVersion", f"{key}[].facets.version")
        change = _mapping(facets, "lifecycleStateChange", f"{key}[].facets.lifecycleStateChange")
        _optional_text(change, "lifecycleStateChange", f"{key}[].facets.lifecycleStateChange")


def _check_radops_facet(facet: Mapping[str, Any], where: str) -> None:
    digest = facet.get("callDigest")
    if digest is not None and not (isinstance(digest, str) and _HEX64.fullmatch(digest)):
        raise InvalidRecordError(f"{where}.callDigest is not 64 hex digits")
    for key in (
        "function",
        "email",
        "radopsVersion",
        "pythonVersion",
        "codeWarning",
        "sourceSha256",
    ):
        _optional_text(facet, key, where)
    for key in ("inputs", "outputs"):
        uids = facet.get(key, [])
        if not isinstance(uids, list) or not all(_is_uid(uid) for uid in uids):
            raise InvalidRecordError(f"{where}.{key} is not a list of valid uids")
    _mapping(facet, "parameters", f"{where}.parameters")
    _mapping(facet, "extra", f"{where}.extra")
    versions = _mapping(facet, "inputSha256", f"{where}.inputSha256")
    for uid, sha256 in versions.items():
        if not _is_uid(uid) or not (isinstance(sha256, str) and _HEX64.fullmatch(sha256)):
            raise InvalidRecordError(f"{where}.inputSha256 does not map uids to sha256s")
    _check_files(facet.get("returned"), f"{where}.returned")


def returned_files(event: Mapping[str, Any]) -> list[str]:
    """The uids of the files in the return value radops' facet records."""
    found: list[str] = []
    stack = [_radops_facet(event).get("returned")]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if set(item) == {_FILE_MARKER}:
                found.append(item[_FILE_MARKER])
            else:
                stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def holds_together(event: Mapping[str, Any]) -> bool:
    """True if the files the event's return value names are among its outputs and inputs (a
    function returns what it made or read; a record whose return value points elsewhere was
    altered)."""
    facet = _radops_facet(event)
    known = set(facet.get("outputs", [])) | set(facet.get("inputs", []))
    return all(uid in known for uid in returned_files(event))


def _radops_facet(event: Mapping[str, Any]) -> Mapping[str, Any]:
    from radops.lineage.events import radops_facet

    return radops_facet(event)


def _check_files(value: Any, where: str) -> None:
    """Every ``{"radops.File": uid}`` in ``value`` names a valid uid."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if set(item) == {_FILE_MARKER} and not _is_uid(item[_FILE_MARKER]):
                raise InvalidRecordError(f"{where} names a file by an invalid uid")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _mapping(
    parent: Mapping[str, Any], key: str, where: str, *, required: bool = False
) -> Mapping[str, Any]:
    value = parent.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise InvalidRecordError(f"{where} is {'missing or ' if required else ''}not an object")
    return value


def _optional_text(parent: Mapping[str, Any], key: str, where: str) -> None:
    value = parent.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidRecordError(f"{where}.{key} is not text")


def _is_uid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        validate_uid(value)
    except InvalidUidError:
        return False
    return True


def _is_uuid(value: str) -> bool:
    if len(value) != 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


# -- writing: radops' own records stay within the limit ------------------------------------------


def record_bytes(event: Mapping[str, Any]) -> bytes:
    """The bytes of ``event`` as a lake record (canonical: sorted keys, no spaces)."""
    return json.dumps(event, sort_keys=True, separators=(",", ":")).encode("utf-8")


def fit_record(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` within :data:`RECORD_MAX_BYTES`, shedding what skip decisions do not need.

    In this order, until it fits: the outputs' columns (their ``schema`` facets), the
    function's source code, the error's stack trace, the parameters, the return value (a
    skipped call then returns the output handles) and the ``extra`` facet field. What was left
    out is listed in the radops facet's ``extra["radops.omitted"]``. ``event`` itself is
    returned when it fits (the usual case).

    Raises:
        InvalidRecordError: even without them the record is over the limit (it names too many
            files: split the call).
    """
    size = len(record_bytes(event))
    if size <= RECORD_MAX_BYTES:
        return event
    fitted: dict[str, Any] = json.loads(record_bytes(event))
    facet = fitted.get("run", {}).get("facets", {}).get(RADOPS_FACET)
    omitted: list[str] = []
    for part in _SHED:
        if part == "schema" and not _has_schemas(fitted):
            continue  # listed only when there were some: most records have none
        _shed(fitted, part)
        omitted.append(part)
        if isinstance(facet, dict):
            facet["extra"] = {**facet.get("extra", {}), "radops.omitted": omitted}
        size = len(record_bytes(fitted))
        if size <= RECORD_MAX_BYTES:
            return fitted
    outputs = len(fitted.get("outputs", []))
    inputs = len(fitted.get("inputs", []))
    raise InvalidRecordError(
        f"the lineage record of run {fitted.get('run', {}).get('runId')} would be {size} bytes "
        f"even without its source code, parameters and return value, over the limit of "
        f"{RECORD_MAX_BYTES} bytes: it names {outputs} output(s) and {inputs} input(s); "
        "split the call into smaller ones"
    )


_SHED = ("schema", "sourceCode", "stackTrace", "parameters", "returned", "extra")


def _has_schemas(event: dict[str, Any]) -> bool:
    return any(
        isinstance(output, dict) and "schema" in (output.get("facets") or {})
        for output in event.get("outputs", [])
    )


def _shed(event: dict[str, Any], part: str) -> None:
    """Leave ``part`` (one of :data:`_SHED`) out of ``event``, in place."""
    job_facets = event.get("job", {}).get("facets", {})
    run_facets = event.get("run", {}).get("facets", {})
    facet = run_facets.get(RADOPS_FACET)
    if part == "schema":
        for output in event.get("outputs", []):
            if isinstance(output, dict) and isinstance(output.get("facets"), dict):
                output["facets"].pop("schema", None)
    elif part == "sourceCode":
        job_facets.pop("sourceCode", None)
    elif part == "stackTrace":
        run_facets.get("errorMessage", {}).pop("stackTrace", None)
    elif isinstance(facet, dict):
        facet[part] = None if part == "returned" else {}
