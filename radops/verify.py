"""Verifying a file end to end: the lake's object and the local copy, each fully rehashed.

Reading trusts a cached file whose stat fingerprint is unchanged; verifying never does. The
lake's object is downloaded into a temp file while it is hashed, and removed afterwards: a
verification leaves local storage as it found it, except that a corrupted local copy is removed
(and replaced by a fresh, verified download when the lake's copy is sound).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from radops.errors import FileNotInLakeError, IntegrityError, LocalStorageError
from radops.integrity import sha256_file
from radops.uids import validate_uid

if TYPE_CHECKING:
    from radops.lake import DataLake
    from radops.stores import ObjectMeta

__all__ = ["VerifyResult", "verify"]

# Statuses of the lake's object.
OK = "ok"
CORRUPTED = "corrupted"
UNVERIFIABLE = "unverifiable"  # no recorded sha256 (not created by radops)
MISSING = "missing"
# Statuses of the local copy: OK, CORRUPTED, UNVERIFIABLE (nothing to compare with), or:
ABSENT = "absent"


@attrs.frozen
class VerifyResult:
    """What ``DataLake.verify`` found for one uid.

    ``remote``: ok, corrupted, unverifiable (no recorded sha256) or missing.
    ``local``: ok, corrupted, unverifiable (no sha256 anywhere to compare with) or absent.
    ``replaced``: a corrupted local copy was replaced by a fresh, verified download (a
    corrupted local copy is removed in any case).
    """

    uid: str
    remote: str
    local: str
    replaced: bool = False
    sha256: str | None = None  # the sha256 the bytes were compared with
    details: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """False if anything was found corrupted (even if repaired) or missing from the lake."""
        return self.remote not in (CORRUPTED, MISSING) and self.local != CORRUPTED

    def as_dict(self) -> dict[str, object]:
        """The result as plain JSON-ready data."""
        return {
            "uid": self.uid,
            "remote": self.remote,
            "local": self.local,
            "replaced": self.replaced,
            "sha256": self.sha256,
            "details": list(self.details),
        }


def verify(lake: DataLake, uid: str) -> VerifyResult:
    """Check ``uid`` in the lake and in local storage by hashing every byte of both."""
    validate_uid(uid)
    details: list[str] = []
    meta = lake.head(uid)
    remote = _check_remote(lake, uid, meta, details)
    expected = meta.sha256 if meta is not None else None
    local = ABSENT
    replaced = False
    if lake.local.stat(uid) is not None:
        if expected is None:
            entry = lake.local.entry(uid)
            expected = entry.sha256 if entry is not None else None
        local, replaced = _check_local(lake, uid, expected, remote, meta, details)
    return VerifyResult(uid, remote, local, replaced, expected, tuple(details))


def _check_remote(lake: DataLake, uid: str, meta: ObjectMeta | None, details: list[str]) -> str:
    if meta is None:
        details.append(f"not in the data lake {lake.store.url}")
        return MISSING
    if meta.sha256 is None:
        details.append("the lake's object has no recorded sha256")
        return UNVERIFIABLE
    tmp = lake.local.temp_path(uid)
    try:
        lake.store.get(uid, tmp, meta=meta)
    except IntegrityError as exc:
        details.append(str(exc))
        return CORRUPTED
    except FileNotInLakeError:  # deleted since the HEAD
        details.append(f"not in the data lake {lake.store.url}")
        return MISSING
    finally:
        tmp.unlink(missing_ok=True)
    return OK


def _check_local(
    lake: DataLake,
    uid: str,
    expected: str | None,
    remote: str,
    meta: ObjectMeta | None,
    details: list[str],
) -> tuple[str, bool]:
    path = lake.local.path(uid)
    actual, _ = sha256_file(path)
    if expected is None:
        details.append("the local copy has no sha256 to be compared with")
        return UNVERIFIABLE, False
    if actual == expected:
        lake.local.accept(uid, actual, meta.etag if meta is not None else None)
        return OK, False
    details.append(f"the local copy's sha256 is {actual}, expected {expected}")
    lake.local.remove(uid)
    if remote != OK:
        details.append("the corrupted local copy was removed; the lake has no sound copy")
        return CORRUPTED, False
    try:
        lake.download(uid)
    except (IntegrityError, FileNotInLakeError, LocalStorageError) as exc:
        details.append(f"the corrupted local copy was removed; downloading it again failed: {exc}")
        return CORRUPTED, False
    return CORRUPTED, True
