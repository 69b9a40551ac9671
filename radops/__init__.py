"""radops: a data lake of immutable files with lineage.

``import radops`` is light on purpose: boto3, openlineage and rich load when first used.
The API lives in :mod:`radops.data_lake`.
"""

from radops.errors import (
    ConfigError,
    CreationPendingError,
    FileExistsInLakeError,
    FileNotInLakeError,
    IntegrityError,
    InvalidRecordError,
    InvalidUidError,
    LocalStorageError,
    OutputsError,
    RadopsError,
    StoreError,
    UidReuseError,
    UntrackedOutputError,
)
from radops.lineage.parents import parent_run
from radops.version import __version__

__all__ = [
    "ConfigError",
    "CreationPendingError",
    "FileExistsInLakeError",
    "FileNotInLakeError",
    "IntegrityError",
    "InvalidRecordError",
    "InvalidUidError",
    "LocalStorageError",
    "OutputsError",
    "RadopsError",
    "StoreError",
    "UidReuseError",
    "UntrackedOutputError",
    "__version__",
    "parent_run",
]
