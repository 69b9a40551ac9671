"""Object stores: where the lake's bytes live.

:class:`ObjectStore` is the seam. :class:`DirectoryStore` is the embedded default (and the fast
store of tests); :class:`~radops.stores.s3.S3Store` talks to S3-compatible servers and is
imported only when a lake on S3 is opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from radops.stores.base import ObjectMeta, ObjectStore, PhasedProgress, Progress, start_phase
from radops.stores.directory import DirectoryStore

if TYPE_CHECKING:
    from radops.settings import Settings

__all__ = [
    "DirectoryStore",
    "ObjectMeta",
    "ObjectStore",
    "PhasedProgress",
    "Progress",
    "start_phase",
    "store_from_settings",
]


def store_from_settings(settings: Settings) -> ObjectStore:
    """The store ``settings.remote`` names: ``s3://...`` or a directory."""
    if settings.remote.startswith("s3://"):
        from radops.stores.s3 import S3Store, TransferSettings

        return S3Store(
            settings.remote,
            endpoint_url=settings.s3_endpoint_url,
            transfer=TransferSettings(max_concurrency=settings.transfer_threads),
            stale_after=settings.stale_after,
        )
    return DirectoryStore(Path(settings.remote), state_dir=settings.state_dir)
