"""The columns of a tabular output (CSV, Parquet, JSON lines), for OpenLineage's ``schema`` facet.

A lineage UI or catalog shows a dataset's columns from the ``schema`` dataset facet. radops
fills it for outputs whose uid names a table format (:data:`KINDS`), from what pyarrow (the
optional ``schemas`` extra) reads of the staged file, and only from its cheap parts:

- CSV: the first lines, at most :data:`HEAD_MAX_BYTES` (cut after the last whole line): the
  header gives the names, those rows the types pyarrow infers;
- JSON lines: the first line, at most :data:`HEAD_MAX_BYTES`;
- Parquet: the footer's metadata, at most :data:`FOOTER_MAX_BYTES` (its length is read from the
  last 8 bytes before pyarrow reads it).

The columns are a lineage extra: without pyarrow, for a file pyarrow cannot read, or a schema
over :data:`MAX_FIELDS` fields or :data:`MAX_SCHEMA_CHARS` characters, there are none (logged at
DEBUG), and the creation goes on as before.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import pyarrow

__all__ = [
    "FOOTER_MAX_BYTES",
    "HEAD_MAX_BYTES",
    "KINDS",
    "MAX_FIELDS",
    "MAX_SCHEMA_CHARS",
    "Column",
    "kind_of",
    "table_schema",
]

log = logging.getLogger("radops")

#: The table formats, by the uid's suffix (case-insensitive).
KINDS = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
#: At most this much of the start of a CSV or JSON lines file is read.
HEAD_MAX_BYTES = 64 * 1024
#: A Parquet footer (its metadata) longer than this is not read.
FOOTER_MAX_BYTES = 1024 * 1024
#: A schema with more fields than this (nested ones included) is left out.
MAX_FIELDS = 1000
#: A schema whose names and types add up to more characters than this is left out.
MAX_SCHEMA_CHARS = 64 * 1024
_NESTING_MAX = 8  # struct levels described; deeper ones are given by their type alone

_PARQUET_MAGIC = b"PAR1"


@attrs.frozen
class Column:
    """One column (or nested field): its name, its type as pyarrow writes it (``int64``,
    ``string``, ``list<item: double>``; None when nothing tells it), and its fields if it is a
    struct."""

    name: str
    type: str | None
    fields: tuple[Column, ...] = ()


def kind_of(uid: str) -> str | None:
    """``"csv"``, ``"parquet"`` or ``"jsonl"`` by ``uid``'s suffix, or None."""
    dot = uid.rfind(".")
    if dot < 0 or "/" in uid[dot:]:
        return None
    return KINDS.get(uid[dot:].lower())


def table_schema(uid: str, path: Path) -> tuple[Column, ...] | None:
    """The columns of the file at ``path``, created as ``uid``, or None.

    None when ``uid`` names no table format, pyarrow is not installed, the file cannot be read
    as its format within the bounds, or the schema is too large. Never raises (a schema is a
    lineage extra: it never fails a creation).
    """
    kind = kind_of(uid)
    if kind is None:
        return None
    try:
        import pyarrow  # noqa: F401 - the optional extra: is it there?
    except ImportError:
        log.debug("no schema for %s: pyarrow is not installed (the radops[schemas] extra)", uid)
        return None
    try:
        schema = _READERS[kind](path)
        columns = _columns(schema, 0)
    except Exception as exc:  # noqa: BLE001 - lineage extras never fail a creation
        log.debug("no schema for %s: %s: %s", uid, type(exc).__name__, exc)
        return None
    fields, chars = _size(columns)
    if fields > MAX_FIELDS or chars > MAX_SCHEMA_CHARS:
        log.debug("no schema for %s: %d fields, %d characters: too large", uid, fields, chars)
        return None
    return columns


def _head(path: Path) -> bytes:
    """The first whole lines of ``path``, at most HEAD_MAX_BYTES."""
    with path.open("rb") as handle:
        head = handle.read(HEAD_MAX_BYTES + 1)
    if len(head) <= HEAD_MAX_BYTES:
        return head
    end = head.rfind(b"\n", 0, HEAD_MAX_BYTES)
    if end < 0:
        raise ValueError(f"no end of line in the first {HEAD_MAX_BYTES} bytes")
    return head[: end + 1]


def _csv(path: Path) -> pyarrow.Schema:
    from pyarrow import csv

    options = csv.ReadOptions(use_threads=False)
    return csv.read_csv(io.BytesIO(_head(path)), read_options=options).schema


def _jsonl(path: Path) -> pyarrow.Schema:
    from pyarrow import json

    first = _head(path).split(b"\n", 1)[0]
    options = json.ReadOptions(use_threads=False)
    return json.read_json(io.BytesIO(first), read_options=options).schema


def _parquet(path: Path) -> pyarrow.Schema:
    with path.open("rb") as handle:
        size = handle.seek(0, io.SEEK_END)
        if size < 12:
            raise ValueError("too short for Parquet")
        handle.seek(size - 8)
        tail = handle.read(8)
    if tail[4:] != _PARQUET_MAGIC:
        raise ValueError("no Parquet footer (or an encrypted one)")
    footer = int.from_bytes(tail[:4], "little")
    if footer > FOOTER_MAX_BYTES or footer > size - 12:
        raise ValueError(f"a footer of {footer} bytes (at most {FOOTER_MAX_BYTES} are read)")
    from pyarrow import parquet

    return parquet.read_schema(path, memory_map=False)


_READERS: dict[str, Callable[[Path], Any]] = {"csv": _csv, "jsonl": _jsonl, "parquet": _parquet}


def _columns(fields: Any, depth: int) -> tuple[Column, ...]:
    """Columns of a pyarrow schema or struct type's fields."""
    import pyarrow

    columns = []
    for field in fields:
        nested: tuple[Column, ...] = ()
        if pyarrow.types.is_struct(field.type) and depth < _NESTING_MAX:
            nested = _columns(field.type, depth + 1)
        if nested:
            kind: str | None = "struct"  # its fields say the rest
        elif pyarrow.types.is_null(field.type):
            kind = None  # no value in what was read: the type is unknown
        else:
            kind = str(field.type)
        columns.append(Column(field.name, kind, nested))
    return tuple(columns)


def _size(columns: tuple[Column, ...]) -> tuple[int, int]:
    fields = chars = 0
    for column in columns:
        inner_fields, inner_chars = _size(column.fields)
        fields += 1 + inner_fields
        chars += len(column.name) + len(column.type or "") + inner_chars
    return fields, chars
