"""What radops writes on the lake's objects, and where an object's creation stands.

Beside the sha256 (:data:`radops.stores.base.SHA256_KEY`) and the writer
(:data:`radops.writers.WRITER_KEY`), every object radops creates names the run that created it;
recovery, skipping and lineage read these keys back. At the ground: the lake writes them, and
lineage reads them below the lake.
"""

from __future__ import annotations

import enum

__all__ = [
    "DIGEST_KEY",
    "ORIGINATOR_KEY",
    "RADOPS_VERSION_KEY",
    "RUN_KEY",
    "SOURCE_KEY",
    "CreationState",
]

ORIGINATOR_KEY = "originator"
RADOPS_VERSION_KEY = "radops-version"
RUN_KEY = "radops-run-id"  # the run whose COMPLETE record created the object
DIGEST_KEY = "radops-call-digest"  # the file_creator call that made it (its digest)
SOURCE_KEY = "radops-source-sha256"  # the code of the file_creator function that made it


class CreationState(enum.Enum):
    """Where the creation of a lake object stands, as recovery sees it."""

    ABSENT = "absent"  # no such object
    RECORDED = "recorded"  # its creating run recorded COMPLETE (or radops did not create it)
    UNDER_WAY = "under way"  # uploaded by a process that may still record its creation
    ABANDONED = "abandoned"  # its creation will never be recorded: the writer died or failed
