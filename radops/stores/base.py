"""The object-store seam: what radops needs from wherever the lake lives."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

import attrs

__all__ = ["SHA256_KEY", "ObjectMeta", "ObjectStore", "PhasedProgress", "Progress", "start_phase"]

# Name of the sha256 in an object's metadata (S3 user metadata, or the directory sidecar).
SHA256_KEY = "sha256"

Progress = Callable[[int], None]
"""Called with the number of bytes transferred since the previous call."""


@runtime_checkable
class PhasedProgress(Protocol):
    """A :data:`Progress` that is also told when the work moves on to another pass over the
    bytes: ``datalake add`` hashes a file as it copies it into local storage, then uploads it.
    """

    def __call__(self, n: int) -> None:
        """``n`` more bytes of the current phase are done."""

    def phase(self, name: str) -> None:
        """Phase ``name`` (``"hashing"``, ``"downloading"``, ``"uploading"``) begins; its
        bytes are counted from zero."""


def start_phase(progress: Progress | None, name: str) -> Progress | None:
    """Begin phase ``name`` of ``progress``; return what should count that phase's bytes.

    A :class:`PhasedProgress` counts every phase. A plain callable is not told of phases and
    counts only the transfer to or from the store, as it always did: for the other phases
    (``"hashing"``) None is returned, so that it never counts the same bytes twice.
    """
    if isinstance(progress, PhasedProgress):
        progress.phase(name)
        return progress
    return progress if name in ("uploading", "downloading") else None


@attrs.frozen
class ObjectMeta:
    """What a store knows about one object.

    ``sha256`` is None in listings of stores that do not return metadata there (S3), and for
    objects that radops did not create. ``etag`` is an opaque token that changes if the object's
    bytes are ever replaced behind radops' back.
    """

    key: str
    size: int
    sha256: str | None = None
    etag: str | None = None
    created: datetime | None = None
    metadata: Mapping[str, str] = attrs.field(factory=dict)


@runtime_checkable
class ObjectStore(Protocol):
    """A flat namespace of immutable objects: created once, never overwritten.

    Keys are validated uids; implementations map them under their root or prefix.
    """

    @property
    def url(self) -> str:
        """Where the lake lives, for messages (``s3://bucket/prefix`` or a directory path)."""
        ...

    def head(self, key: str) -> ObjectMeta | None:
        """Metadata of ``key``, or None if there is no such object."""
        ...

    def put_new(
        self,
        src: Path,
        key: str,
        *,
        sha256: str,
        metadata: Mapping[str, str] | None = None,
        progress: Progress | None = None,
    ) -> ObjectMeta:
        """Create ``key`` from the file ``src``, whose sha256 the caller computed.

        The creation is conditional at the store: if ``key`` exists, nothing is written and
        :class:`~radops.errors.FileExistsInLakeError` is raised, whoever raced to create it.
        """
        ...

    def get(
        self,
        key: str,
        dest: Path,
        *,
        progress: Progress | None = None,
        meta: ObjectMeta | None = None,
        check: Callable[[ObjectMeta], None] | None = None,
    ) -> ObjectMeta:
        """Download ``key`` into the new file ``dest``, verifying its sha256 on the way.

        ``meta``: the object's metadata if the caller just fetched it (a download pinned to
        that version). Without it, the store takes the metadata from the download's own
        answer, so that a small object costs one request. ``check`` is called with the
        metadata before any byte is written to ``dest``; what it raises ends the download.

        Raises FileNotInLakeError if missing and IntegrityError if the bytes do not match.
        On error ``dest`` may hold partial bytes: the caller owns and removes it.
        """
        ...

    def list(self, prefix: str = "") -> Iterator[ObjectMeta]:
        """Objects whose key starts with ``prefix``; radops' records excluded.

        In the store's listing order: AWS S3 and the directory store sort by the keys' UTF-8
        bytes, some S3-compatible servers (SeaweedFS) list folder by folder.
        """
        ...

    def keys(self, folder: str) -> Iterator[str]:
        """The keys under ``folder`` (ending in '/'), radops' records excluded: :meth:`list`
        without the metadata, which some stores answer faster (a bulk add asks which of its
        uids are taken). A key that ends in '/' (a folder marker, never a uid) may be named
        without its '/': confirm with :meth:`head` what must exist."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; missing keys are ignored."""
        ...

    def warm_up(self) -> None:
        """Many transfers are about to start: set up connections ahead of them, in the
        background (nothing to do for a store that has none)."""
        ...

    def sweep(self, older_than: float) -> Sequence[str]:
        """Remove what killed writers left behind (never visible as objects); say what.

        Leftovers of writers on this machine that are known to be dead go at once, others
        once older than ``older_than`` seconds.
        """
        ...

    def dataset(self, key: str) -> tuple[str, str]:
        """(namespace, name) of ``key`` by the OpenLineage dataset naming convention.

        Names follow :mod:`radops.lineage.naming` too, so that Marquez can open each one.
        """
        ...

    # Records: radops' own small files under the reserved ``.radops/`` prefix of the lake.

    def put_record(self, name: str, data: bytes) -> None:
        """Create the record ``name`` (conditionally, like objects)."""
        ...

    def get_record(self, name: str, max_bytes: int | None = None) -> bytes | None:
        """The bytes of record ``name``, or None.

        ``max_bytes``: refuse a larger record without reading it all
        (:class:`~radops.errors.InvalidRecordError`, saying how large it is).
        """
        ...

    def list_records(self, prefix: str, start_after: str = "") -> Iterator[str]:
        """Names of the records under ``prefix`` (a folder ending in '/'), sorted, after one."""
        ...

    def list_record_folders(self, prefix: str) -> tuple[str, ...]:
        """Names of the folders directly under the record folder ``prefix``."""
        ...
