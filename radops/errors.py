"""Every error radops raises, in one hierarchy.

Each error subclasses the builtin it resembles, so ``except FileExistsError`` or
``except ValueError`` in user code keeps working::

    RadopsError
    ├── ConfigError                                  a setting is missing or invalid
    ├── InvalidUidError(RadopsError, ValueError)     a uid that could escape or is malformed
    ├── FileExistsInLakeError(RadopsError, FileExistsError)
    │   └── UidConflictError                         a file is where a uid needs a folder
    ├── FileNotInLakeError(RadopsError, FileNotFoundError)
    ├── IntegrityError                               a sha256 does not match
    ├── LocalStorageError(RadopsError, OSError)      local storage full, read-only or unsafe
    ├── CreationPendingError(RadopsError, TimeoutError)  another process's creation never ended
    ├── InvalidRecordError(RadopsError, ValueError)  a lineage record of the lake is unusable
    ├── UidReuseError(RadopsError, FileExistsError)  other bytes under a deleted uid would leave
    │                                                files made from its old bytes stale
    ├── OutputsError                                 a file_creator call's outputs do not hold
    ├── UntrackedOutputError(RadopsError, ValueError)  a step created an undeclared uid
    └── StoreError                                   the store failed after retries (auth, network)

Backend errors (botocore, OS) are translated where they enter radops, with ``raise ... from``,
so the original stays available in ``__cause__``.
"""

from __future__ import annotations


class RadopsError(Exception):
    """Base class of every error radops raises on purpose."""


class ConfigError(RadopsError):
    """A setting is missing or has an invalid value."""


class InvalidUidError(RadopsError, ValueError):
    """A uid is malformed or could address something outside the lake."""


class FileExistsInLakeError(RadopsError, FileExistsError):
    """A file with this uid already exists: data-lake files are immutable."""


class UidConflictError(FileExistsInLakeError):
    """A uid cannot be created because a file and a folder of the same name would clash."""


class FileNotInLakeError(RadopsError, FileNotFoundError):
    """A uid exists neither in local storage nor in the data lake."""


class IntegrityError(RadopsError):
    """Bytes do not match the sha256 recorded when the object was created."""


class LocalStorageError(RadopsError, OSError):
    """Local storage cannot hold a file: disk full, read-only, over the size limit, or unsafe.

    When the disk under ``RADOPS_HOME`` is full or read-only, ``errno`` is that of the OS error
    (``ENOSPC``, ``EDQUOT``, ``EROFS``) and the message says so in words, naming the directory.
    """


class CreationPendingError(RadopsError, TimeoutError):
    """Another process started creating this file and neither finished nor provably died."""


class InvalidRecordError(RadopsError, ValueError):
    """A lineage record read from the lake (or a lineage server) cannot be used.

    It is too large, not JSON, or lacks a field radops relies on, or gives it the wrong type.
    Such a record is skipped with one warning naming it; it never stops a pipeline.
    """


class UidReuseError(RadopsError, FileExistsError):
    """Other bytes under a deleted uid, while files made from its old bytes are still there.

    A pipeline reading the uid could not tell the new bytes from the old: delete those files
    first (or let radops delete them), or add the bytes under a new uid.
    """


class OutputsError(RadopsError):
    """A ``file_creator`` call's outputs are inconsistent: partly present, not created, made by
    another call, or made from other bytes of its inputs than the lake holds now (stale)."""


class UntrackedOutputError(RadopsError, ValueError):
    """A file with an undeclared explicit uid was created inside a ``file_creator`` function."""


class StoreError(RadopsError):
    """The object store failed after retries: network, credentials, permissions."""
