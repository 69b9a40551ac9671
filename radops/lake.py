"""DataLake: one remote store plus this machine's local storage, as configured by Settings.

Everything that moves bytes between the two goes through here, so the rules hold everywhere:
uploads are conditional creates, downloads are verified before they become visible, cached
files are rehashed when they changed, and nothing partial is ever left behind.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from stat import S_ISREG
from typing import IO, TYPE_CHECKING, Any

import attrs

from radops import writers
from radops.cache import LocalStorage, local_storage_error
from radops.errors import (
    CreationPendingError,
    FileExistsInLakeError,
    FileNotInLakeError,
    LocalStorageError,
)
from radops.integrity import copy_and_hash, sha256_file
from radops.lineage.naming import ADD_JOB, JOB_TYPES, RM_JOB, call_job
from radops.settings import Settings
from radops.stores import ObjectMeta, ObjectStore, Progress, store_from_settings
from radops.uids import validate_uid

if TYPE_CHECKING:
    from radops.file import File
    from radops.lineage.events import Creation, DatasetRef
    from radops.lineage.recorder import LineageRecorder
    from radops.verify import VerifyResult

__all__ = [
    "CreationState",
    "DataLake",
    "LocalStatus",
    "default_lake",
    "lake_on",
    "set_default_lake",
]

log = logging.getLogger("radops")

# Metadata radops records on every object it creates, beside the sha256.
ORIGINATOR_KEY = "originator"
RADOPS_VERSION_KEY = "radops-version"
RUN_KEY = "radops-run-id"  # the run whose COMPLETE record created the object
DIGEST_KEY = "radops-call-digest"  # the file_creator call that made it (its digest)


class _Read:
    """The context manager of :meth:`DataLake.open_for_reading`.

    A class, not a generator: a cached read is a few microseconds of system calls, and the
    layers of generator context managers cost more than that (benchmark case 4).
    """

    __slots__ = ("_handle", "_kwargs", "_lake", "_mode", "_slow", "_uid")

    def __init__(self, lake: DataLake, uid: str, mode: str, kwargs: dict[str, Any]) -> None:
        self._lake = lake
        self._uid = uid
        self._mode = mode
        self._kwargs = kwargs
        self._handle: IO[Any] | None = None
        self._slow: contextlib.AbstractContextManager[IO[Any]] | None = None

    def __enter__(self) -> IO[Any]:
        local = self._lake.local
        opened = local.open_trusted(self._uid)
        if opened is None:
            self._slow = self._lake._read_checked(self._uid, self._mode, self._kwargs)
            return self._slow.__enter__()
        fd, path = opened
        try:
            # The descriptor open_trusted checked, under the path's name (handle.name).
            handle = open(path, self._mode, opener=lambda _path, _flags: fd, **self._kwargs)
        except BaseException:
            os.close(fd)
            raise
        local.begin_reading(self._uid)
        self._handle = handle
        return handle

    def __exit__(self, *exc_info: Any) -> bool | None:
        if self._slow is not None:
            return self._slow.__exit__(*exc_info)
        try:
            if self._handle is not None:
                self._handle.close()
        finally:
            self._lake.local.end_reading(self._uid)
        return None


class _Fsync:
    """``os.fsync`` of a file, in a thread, so that it overlaps other work (the upload)."""

    def __init__(self, path: Path) -> None:
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._run, args=(path,), name="radops-fsync")
        self._thread.start()

    def _run(self, path: Path) -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self._error = exc

    def wait(self) -> None:
        """Wait for the fsync; raise its error if it failed."""
        self._thread.join()
        if self._error is not None:
            raise self._error

    def wait_quietly(self) -> None:
        """Wait for the fsync, whatever its outcome (the file is being given up)."""
        self._thread.join()


def radops_outputs(event: dict[str, Any]) -> list[str]:
    """The uids a radops event created (or deleted)."""
    from radops.lineage.events import radops_facet

    return list(radops_facet(event).get("outputs", []))


def radops_version() -> str:
    """The installed radops version."""
    from radops import __version__

    return __version__


class CreationState(enum.Enum):
    """Where the creation of a lake object stands, as recovery sees it."""

    ABSENT = "absent"  # no such object
    RECORDED = "recorded"  # its creating run recorded COMPLETE (or radops did not create it)
    UNDER_WAY = "under way"  # uploaded by a process that may still record its creation
    ABANDONED = "abandoned"  # its creation will never be recorded: the writer died or failed


@attrs.frozen
class LocalStatus:
    """How a local file compares with the lake, as ``radops datalake ls`` reports it."""

    uid: str
    problem: str  # "not in the lake", "differs from the lake", "modified locally"


class DataLake:
    """The lake as seen from this machine: ``settings.remote`` and ``settings.home``.

    Pass ``store`` to use another :class:`~radops.stores.ObjectStore` than the one the
    settings name.
    """

    def __init__(self, settings: Settings, store: ObjectStore | None = None) -> None:
        from radops.logs import configure_logging

        # Skips and warnings are visible by default however the lake was configured.
        configure_logging(settings.log_level)
        self.settings = settings
        self._store = store
        self._originator: str | None = None
        self._lineage: LineageRecorder | None = None
        self.local = LocalStorage(
            settings.storage_dir,
            settings.state_dir,
            settings.tmp_dir,
            max_bytes=settings.cache_max_bytes,
            lake=settings.remote,
        )

    @classmethod
    def from_env(cls, **overrides: Any) -> DataLake:
        """A lake configured from the environment and config file, like the CLI's."""
        return cls(Settings.load(**overrides))

    def __repr__(self) -> str:
        return f"DataLake(remote={self.settings.remote!r}, home={str(self.settings.home)!r})"

    @property
    def store(self) -> ObjectStore:
        """The remote object store, built on first use (boto3 loads only then)."""
        if self._store is None:
            self._store = store_from_settings(self.settings)
        return self._store

    @property
    def lineage(self) -> LineageRecorder:
        """This lake's lineage: records in the lake, the local index, delivery to consumers."""
        if self._lineage is None:
            from radops.lineage.delivery import transport_from_settings
            from radops.lineage.recorder import LineageRecorder

            marquez = None
            if self.settings.marquez_url:
                from radops.lineage.marquez import MarquezClient, MarquezIndex

                client = MarquezClient(
                    self.settings.marquez_url,
                    api_key=self.settings.marquez_api_key,
                    timeout=self.settings.lineage_timeout,
                )
                marquez = MarquezIndex(client, self.settings.namespace)
            self._lineage = LineageRecorder(
                self.store,
                self.settings.state_dir,
                lambda: transport_from_settings(self.settings),
                marquez,
            )
        return self._lineage

    def dataset_ref(
        self, uid: str, sha256: str | None = None, size: int | None = None
    ) -> DatasetRef:
        """``uid`` as an OpenLineage dataset, with its sha256 (from local storage or a HEAD)."""
        from radops.lineage.events import DatasetRef

        namespace, name = self.store.dataset(uid)
        if sha256 is None:
            entry = self.local.entry(uid)
            if entry is not None:
                sha256, size = entry.sha256, entry.size
            else:
                meta = self.head(uid)
                if meta is not None:
                    sha256, size = meta.sha256, meta.size
        return DatasetRef(namespace, name, uid, sha256, size)

    def command_creation(self, job: str, run_id: str, uid: str, **fields: Any) -> Creation:
        """A creation (or deletion) of ``uid`` by a radops command: its job is that uid's."""
        from radops.lineage.events import Creation

        return Creation(
            run_id=run_id,
            job_namespace=self.settings.namespace,
            job_name=job,
            email=self.originator,
            radops_version=radops_version(),
            call=call_job(job, self.store.url, uid),
            job_type=JOB_TYPES[job],
            **fields,
        )

    def file(self, uid: str) -> File:
        """A :class:`~radops.file.File` handle on this lake."""
        from radops.file import File

        return File(uid, lake=self)

    # -- existence -------------------------------------------------------------------------

    @property
    def originator(self) -> str:
        """The e-mail recorded on the files this lake creates (resolved once).

        Raises:
            ConfigError: neither ``RADOPS_EMAIL`` nor ``git config user.email`` is set.
        """
        if self._originator is None:
            self._originator = self.settings.resolve_email()
        return self._originator

    def exists_locally(self, uid: str) -> bool:
        """True if local storage holds ``uid``."""
        return self.local.stat(validate_uid(uid)) is not None

    def head(self, uid: str) -> ObjectMeta | None:
        """The lake's metadata of ``uid``, or None if it is not in the lake."""
        return self.store.head(validate_uid(uid))

    def ensure_absent(self, uid: str, *, lake_only: bool = False) -> None:
        """Raise :class:`FileExistsInLakeError` if ``uid`` exists locally or in the lake.

        ``lake_only``: a local copy of a file the lake no longer has does not count (a
        ``file_creator`` rerun replaces it once the new output is safely in the lake).
        An object whose creation was abandoned (its writer died before recording it) is
        removed first: it was never part of the lake.
        """
        meta = self.head(uid)
        if meta is not None and self.creation_state(uid, meta) is CreationState.ABANDONED:
            self.remove_abandoned(uid, meta)
            meta = None
        if not lake_only and self.exists_locally(uid):
            raise FileExistsInLakeError(
                f"{uid!r} already exists in local storage: data-lake files are immutable, "
                "choose another uid"
            )
        if meta is not None:
            raise FileExistsInLakeError(
                f"{uid!r} already exists in the data lake {self.store.url}: data-lake files "
                "are immutable, choose another uid"
            )

    # -- getting a verified local copy ------------------------------------------------------

    def local_path(self, uid: str, progress: Progress | None = None) -> Path:
        """A verified local copy of ``uid``, downloaded first if needed.

        Raises:
            FileNotInLakeError: neither local storage nor the lake has it.
            IntegrityError: the lake's copy is corrupted.
        """
        # One safe_path (a realpath, an lstat per path segment) per read, not one per step:
        # it was half the time of a cached read.
        path = self.local.path(uid)
        stat = self.local.stat_path(path)
        if stat is not None:
            if self.local.is_trusted(uid, stat):
                return path
            if self._revalidate(uid):
                return path
        return self.download(uid, progress=progress)

    def _revalidate(self, uid: str) -> bool:
        """Rehash a cached file radops cannot vouch for; drop it if it is not the lake's."""
        entry = self.local.entry(uid)
        expected = entry.sha256 if entry else None
        etag = entry.etag if entry else None
        if expected is None:
            meta = self.head(uid)
            if meta is None or meta.sha256 is None:
                # Only local: nothing to compare with. Serve it, but say it is untracked.
                log.warning(
                    "%s is in local storage but not in the data lake %s", uid, self.store.url
                )
                return True
            expected, etag = meta.sha256, meta.etag
        actual, _ = sha256_file(self.local.path(uid))
        if actual == expected:
            self.local.accept(uid, actual, etag)
            return True
        log.warning(
            "local copy of %s is corrupted (sha256 %s, expected %s): downloading it "
            "again from the data lake",
            uid,
            actual,
            expected,
        )
        self.local.remove(uid)
        return False

    def download(self, uid: str, progress: Progress | None = None) -> Path:
        """Download ``uid`` into local storage (verified, then renamed into place)."""
        validate_uid(uid)
        meta = self.head(uid)
        if meta is None:
            raise FileNotInLakeError(
                f"{uid!r} does not exist locally or in the data lake {self.store.url}"
            )
        self.local.check_fits(uid, meta.size)
        tmp = self.local.temp_path(uid)
        try:
            # A full or read-only disk here is this machine's, not the lake's: say so.
            with self.local.writing(f"download {uid!r}"):
                meta = self.store.get(uid, tmp, progress=progress, meta=meta)
            # get() verified the bytes against meta.sha256, so it is never None here.
            return self.local.place(tmp, uid, meta.sha256 or "", meta.etag)
        finally:
            self.local.discard(tmp)

    def verify(self, uid: str) -> VerifyResult:
        """Hash every byte of ``uid`` in the lake and of its local copy; repair the local copy.

        Unlike a read, this never trusts the local fingerprint. The lake's object is checked
        through a temp file that is then removed; a corrupted local copy is removed, and
        downloaded again if the lake's copy is sound. See :class:`~radops.verify.VerifyResult`.
        """
        from radops.verify import verify

        return verify(self, uid)

    def open_for_reading(
        self, uid: str, mode: str, **kwargs: Any
    ) -> contextlib.AbstractContextManager[IO[Any]]:
        """``open(path, mode, **kwargs)`` of a verified local copy of ``uid`` (downloaded first
        if needed), which eviction leaves alone while the block runs."""
        return _Read(self, uid, mode, kwargs)

    @contextlib.contextmanager
    def _read_checked(self, uid: str, mode: str, kwargs: dict[str, Any]) -> Iterator[IO[Any]]:
        """The slow path of a read: check the path, verify or download, then open."""
        with self.reading(uid) as path, open(path, mode, **kwargs) as handle:
            yield handle

    @contextlib.contextmanager
    def reading(self, uid: str) -> Iterator[Path]:
        """A verified local path of ``uid`` that eviction leaves alone while the block runs."""
        path = self.local_path(uid)
        with self.local.reading(uid):
            yield path

    # -- creating --------------------------------------------------------------------------

    def create(
        self,
        uid: str,
        tmp: Path,
        sha256: str,
        *,
        job: str,
        inputs: list[DatasetRef] | None = None,
        parameters: dict[str, Any] | None = None,
        progress: Progress | None = None,
        delete_stale: bool = False,
    ) -> ObjectMeta:
        """Create ``uid`` from ``tmp`` and record the creation as a run of ``job``.

        For creations outside ``file_creator``: ``File.open("w")`` and ``datalake add``.
        A uid that was deleted takes other bytes than its last ones only once nothing made
        from those is left in the lake (see :meth:`stale_dependants`); ``delete_stale``
        deletes what is left first (each deletion recorded), instead of refusing.

        Raises:
            UidReuseError: files made from the uid's old bytes are in the lake.
        """
        from radops.lineage.events import uuid7

        self._check_reuse(uid, sha256, delete_stale)
        run_id = str(uuid7())
        creation = self.command_creation(
            job, run_id, uid, inputs=inputs or [], parameters=parameters or {}
        )
        with writers.running(run_id):
            return self._create(uid, tmp, sha256, creation, progress)

    def _create(
        self, uid: str, tmp: Path, sha256: str, creation: Creation, progress: Progress | None
    ) -> ObjectMeta:
        run_id = creation.run_id
        self.lineage.emit(creation, "START")
        try:
            meta = self.commit(uid, tmp, sha256, metadata={RUN_KEY: run_id}, progress=progress)
        except BaseException as exc:
            try:
                self.lineage.emit(creation, "FAIL", error=exc)
            except Exception:  # the store is down: the upload's own error says more
                log.warning("could not record the failure of %s", uid, exc_info=True)
            raise
        output = self.dataset_ref(uid, sha256=sha256, size=meta.size)
        try:
            self.lineage.emit(attrs.evolve(creation, outputs=[output]), "COMPLETE")
        except BaseException:
            self.rollback([uid])  # no object without its creation record
            raise
        return meta

    def rollback(self, uids: list[str]) -> None:
        """Remove objects this process just created, whose creation could not be recorded."""
        for uid in uids:
            try:
                self.store.delete(uid)
                self.local.remove(uid)
            except Exception:
                log.warning(
                    "could not remove %s after a failed creation; run `radops datalake rm %s`",
                    uid,
                    uid,
                    exc_info=True,
                )

    def commit(
        self,
        uid: str,
        tmp: Path,
        sha256: str,
        metadata: dict[str, str] | None = None,
        progress: Progress | None = None,
    ) -> ObjectMeta:
        """Create ``uid`` from the complete temp file ``tmp``: upload, then place locally.

        The upload is a conditional create, so of several writers exactly one wins; the others
        get :class:`FileExistsInLakeError` and nothing of theirs remains. This records no
        lineage: see :meth:`create` and ``file_creator``.
        """
        validate_uid(uid)
        recorded = {
            ORIGINATOR_KEY: self.originator,
            RADOPS_VERSION_KEY: radops_version(),
            writers.WRITER_KEY: writers.current(),
            **(metadata or {}),
        }
        # The local copy must be on disk before it is placed (a power loss must not leave a
        # placed file with holes): flushed while the upload runs, not before it starts.
        flushed = _Fsync(tmp)
        try:
            meta = self.store.put_new(tmp, uid, sha256=sha256, metadata=recorded, progress=progress)
        except FileExistsInLakeError:
            flushed.wait_quietly()
            raise  # ``tmp`` stays: the caller may settle the conflict and try again
        except BaseException:
            flushed.wait_quietly()
            tmp.unlink(missing_ok=True)
            raise
        try:
            try:
                flushed.wait()
            except OSError as exc:
                raise local_storage_error(
                    exc, f"flush {uid!r} to disk", self.local.tmp_dir
                ) from exc
            if self.local.fits(meta.size):
                self.local.place(tmp, uid, sha256, meta.etag)
            else:  # safely in the lake, but larger than RADOPS_CACHE_MAX_BYTES allows locally
                log.info("%s is in the data lake; it is too large to keep in local storage", uid)
        except LocalStorageError as exc:
            # The file is safely in the lake: failing now would undo a good creation for the
            # sake of a local copy that a read downloads again anyway.
            log.warning("%s is in the data lake but could not be kept locally: %s", uid, exc)
        finally:
            tmp.unlink(missing_ok=True)
        return meta

    # -- recovery: creations that were never recorded ------------------------------------------

    def creation_state(self, uid: str, meta: ObjectMeta | None = None) -> CreationState:
        """Whether the object ``uid`` was created for good (see :class:`CreationState`).

        An object is part of the lake once the run that uploaded it recorded COMPLETE. Until
        then it is under way, unless its run failed, its writer process on this machine is
        gone, or it is older than ``stale_after`` (a writer on another machine). An object whose
        record may be one that failed the checks (see ``datalake repair --dry-run``) is never
        taken for abandoned: it counts as recorded, and stays.
        """
        meta = meta if meta is not None else self.head(uid)
        if meta is None:
            return CreationState.ABSENT
        run_id = meta.metadata.get(RUN_KEY)
        if not run_id:
            return CreationState.RECORDED  # not uploaded by a radops creation: not ours to judge
        ended = self.lineage.run_state(run_id)
        if ended == "COMPLETE":
            return CreationState.RECORDED
        if ended is not None:  # FAIL or ABORT recorded, but the rollback did not happen
            return CreationState.ABANDONED
        gone = writers.is_dead(meta.metadata.get(writers.WRITER_KEY), run_id)
        created = meta.created.timestamp() if meta.created is not None else None
        if not gone and (created is None or time.time() - created <= self.settings.stale_after):
            return CreationState.UNDER_WAY
        if self.lineage.rejected_for(run_id, created, 2 * self.settings.stale_after):
            # Its record may be one the checks refused (damaged, or written by a radops that
            # writes what this one cannot read): the object stays. Nothing is skipped on it.
            return CreationState.RECORDED
        return CreationState.ABANDONED

    def remove_abandoned(self, uid: str, meta: ObjectMeta) -> bool:
        """Remove an object whose creation was abandoned, and its local copy.

        Checks again just before deleting that the object is still the abandoned one (same
        run), so a file another process has just made is never removed. True if removed.
        """
        current = self.head(uid)
        if current is None:
            return False
        if current.metadata.get(RUN_KEY) != meta.metadata.get(RUN_KEY):
            return False
        log.warning(
            "removing %s from the data lake %s: its creation (run %s) was never recorded, "
            "its writer is gone",
            uid,
            self.store.url,
            meta.metadata.get(RUN_KEY),
        )
        self.store.delete(uid)
        self.local.remove(uid)
        return True

    def settle(self, uid: str) -> CreationState:
        """Wait until the object ``uid`` is recorded or absent, removing it if abandoned.

        Returns RECORDED or ABSENT. Polls with backoff while another process's creation is
        under way, at most until that creation is older than ``stale_after``.

        Raises:
            CreationPendingError: the creation is still under way after that time.
        """
        deadline = time.monotonic() + 2 * self.settings.stale_after + 5
        pause = 0.05
        while True:
            meta = self.head(uid)
            state = self.creation_state(uid, meta)
            if state is CreationState.ABANDONED and meta is not None:
                self.remove_abandoned(uid, meta)
                return CreationState.ABSENT
            if state is not CreationState.UNDER_WAY:
                return state
            if time.monotonic() > deadline:
                writer = meta.metadata.get(writers.WRITER_KEY, "unknown") if meta else "unknown"
                raise CreationPendingError(
                    f"{uid!r} is being created by another process ({writer}) that has not "
                    f"recorded it yet; if that process is gone, run `radops datalake repair`"
                )
            time.sleep(pause)
            pause = min(pause * 2, 1.0)

    def add_file(
        self,
        source: Path,
        uid: str,
        *,
        move: bool = False,
        progress: Progress | None = None,
        delete_stale: bool = False,
    ) -> ObjectMeta:
        """Add a local file as ``uid``, copying it (or moving it with ``move=True``).

        A moved source is removed only once the file is safely in the lake. ``delete_stale``:
        see :meth:`create`.

        Raises:
            FileExistsInLakeError: ``uid`` exists.
            UidReuseError: ``uid`` was deleted, and files made from its old bytes remain.
        """
        validate_uid(uid)
        source = Path(source)
        if not source.is_file():
            raise FileNotFoundError(f"{source} is not a file")
        self.ensure_absent(uid)
        tmp = self.local.temp_path(uid)
        try:
            with self.local.writing(f"copy {str(source)!r} for {uid!r}"):
                if move and _can_link(source, tmp.parent):
                    os.link(source, tmp)  # no copy: the bytes are hashed once, in place
                    sha256, _ = sha256_file(tmp)
                else:
                    with source.open("rb") as src, tmp.open("xb") as dst:
                        sha256, _ = copy_and_hash(src, dst)
            source_ref = self._external_ref("file", str(source.resolve()))
            meta = self.create(
                uid,
                tmp,
                sha256,
                job=ADD_JOB,
                inputs=[source_ref],
                parameters={"source": str(source), "move": move},
                progress=progress,
                delete_stale=delete_stale,
            )
        finally:
            self.local.discard(tmp)
        if move:
            source.unlink()
        return meta

    def add_url(
        self,
        url: str,
        uid: str,
        *,
        progress: Progress | None = None,
        delete_stale: bool = False,
    ) -> ObjectMeta:
        """Download ``url`` (http or https) and add it as ``uid`` (``delete_stale``: see
        :meth:`create`)."""
        from radops.urls import fetch_url, public_url, redact_url

        validate_uid(uid)
        self.ensure_absent(uid)
        tmp = self.local.temp_path(uid)
        try:
            with self.local.writing(f"download {redact_url(url)} for {uid!r}"):
                sha256 = fetch_url(
                    url,
                    tmp,
                    timeout=self.settings.download_timeout,
                    max_bytes=self.settings.download_max_bytes,
                    progress=progress,
                )
            # Credentials and signed query strings never enter lineage (it is stored and sent).
            source_ref = self._external_ref(*public_url(url))
            return self.create(
                uid,
                tmp,
                sha256,
                job=ADD_JOB,
                inputs=[source_ref],
                parameters={"source": redact_url(url)},
                progress=progress,
                delete_stale=delete_stale,
            )
        finally:
            self.local.discard(tmp)

    def _external_ref(self, namespace: str, name: str) -> DatasetRef:
        from radops.lineage.events import DatasetRef

        return DatasetRef(namespace, name)

    # -- deleting ----------------------------------------------------------------------------

    def delete(self, uid: str) -> None:
        """Remove ``uid`` from the lake and local storage, recording the deletion (DROP).

        Raises:
            FileNotInLakeError: the lake does not have it.
        """
        from radops.lineage.events import uuid7

        validate_uid(uid)
        meta = self.head(uid)
        if meta is None:
            raise FileNotInLakeError(f"{uid!r} is not in the data lake {self.store.url}")
        run_id = str(uuid7())
        creation = self.command_creation(
            RM_JOB,
            run_id,
            uid,
            lifecycle="DROP",
            outputs=[self.dataset_ref(uid, sha256=meta.sha256, size=meta.size)],
        )
        self.lineage.emit(creation, "START")
        self.store.delete(uid)
        self.local.remove(uid)
        self.lineage.emit(creation, "COMPLETE")

    def downstream(self, uid: str) -> list[str]:
        """Every file made from ``uid``, directly or not, in the order they were made."""
        found: list[str] = []
        frontier = [uid]
        while frontier:
            current = frontier.pop(0)
            for event in self.lineage.runs_using(current):
                for output in radops_outputs(event):
                    if output not in found and output != uid:
                        found.append(output)
                        frontier.append(output)
        return found

    def stale_dependants(self, uid: str, sha256: str) -> list[str]:
        """Files in the lake made from other bytes of ``uid`` than ``sha256``, and what was made
        from them: what ``sha256`` under ``uid`` would leave stale, in the order they were made.

        A file counts if a run that read an earlier ``uid`` recorded other bytes for it (or
        none), and made the file, which the lake still holds as that run's.
        """
        from radops.skipping import recorded_sha256

        lineage = self.lineage
        lineage.runs_using(uid)  # synced once per process
        if lineage.index.runs_using(uid):
            lineage.sync()  # the uid has a past: be current about it
        stale: list[str] = []
        for event in lineage.index.runs_using(uid):
            if recorded_sha256(self, event, uid) == sha256:
                continue  # made from these very bytes: they stay valid
            run_id = event["run"]["runId"]
            for output in radops_outputs(event):
                meta = self.head(output)
                if meta is None or meta.metadata.get(RUN_KEY) != run_id or output in stale:
                    continue
                stale.append(output)
                stale += [
                    each
                    for each in self.downstream(output)
                    if each not in stale and self.head(each) is not None
                ]
        return stale

    def _check_reuse(self, uid: str, sha256: str, delete_stale: bool) -> None:
        """Refuse (or, with ``delete_stale``, clear the way for) other bytes under ``uid``
        while files made from its old bytes are in the lake."""
        from radops.errors import UidReuseError

        stale = self.stale_dependants(uid, sha256)
        if not stale:
            return
        if delete_stale:
            for each in reversed(stale):  # what was made last first: no file outlives its input
                log.warning("deleting %s: it was made from the old bytes of %s", each, uid)
                self.delete(each)
            return
        shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
        raise UidReuseError(
            f"{uid!r} was deleted, and {len(stale)} file(s) made from its old bytes are still "
            f"in the data lake {self.store.url}: {shown}. Other bytes under the same uid would "
            "leave them stale, so nothing was added. Delete them first (`radops datalake rm "
            f"{stale[0]} --cascade`), add the new bytes under a new uid, or let radops delete "
            "them (`radops datalake add --delete-stale`, delete_stale=True)"
        )

    # -- listing and local state ----------------------------------------------------------------

    def files(self, prefix: str = "") -> Iterator[ObjectMeta]:
        """Every file in the lake under ``prefix``, in key order, paginated lazily."""
        return self.store.list(prefix)

    def local_problems(
        self, remote: dict[str, ObjectMeta], only: set[str] | None = None
    ) -> list[LocalStatus]:
        """Local files out of sync with the lake.

        ``remote`` maps uids to their lake listing; ``only`` limits the check to these local
        uids (by default every file in local storage).
        """
        problems = []
        for uid in sorted(only) if only is not None else self.local.uids():
            meta = remote.get(uid)
            if meta is None:
                problems.append(LocalStatus(uid, "not in the data lake"))
                continue
            stat = self.local.stat(uid)
            entry = self.local.entry(uid)
            if stat is None or entry is None:
                problems.append(LocalStatus(uid, "not placed by radops"))
            elif not self.local.is_trusted(uid, stat):
                problems.append(LocalStatus(uid, "modified locally"))
            elif (meta.etag and entry.etag and meta.etag != entry.etag) or meta.size != entry.size:
                problems.append(LocalStatus(uid, "differs from the data lake"))
        return problems

    def remove_local(self, uid: str) -> bool:
        """Free the local copy of ``uid``; the lake is untouched."""
        return self.local.remove(validate_uid(uid))


def _can_link(source: Path, directory: Path) -> bool:
    """True if a moved ``source`` may become the temp file by a hard link, without a copy.

    Only a regular file with no other name, on the same file system: local storage makes its
    files read-only and back-dates their mtime, which would change a symlink's target or the
    file's other hard links, both outside local storage (and that file could later change the
    cached bytes through them).
    """
    try:
        status = os.lstat(source)
        return (
            S_ISREG(status.st_mode)
            and status.st_nlink == 1
            and status.st_dev == directory.stat().st_dev
        )
    except OSError:
        return False


_default: DataLake | None = None
_default_lock = threading.Lock()


def default_lake() -> DataLake:
    """The lake ``File(uid)`` uses when none is given: configured once, from the environment.

    This is the library's entry point for configuration, like ``main()`` is the CLI's.
    """
    global _default
    with _default_lock:
        if _default is None:
            _default = DataLake(Settings.load())
        return _default


_others: dict[tuple[str, str | None], DataLake] = {}


def lake_on(remote: str, s3_endpoint_url: str | None = None) -> DataLake:
    """This process's lake on ``remote``: the default lake if it is there; else one configured
    like it (environment, config file) but on ``remote``, with a home of its own under the
    default lake's (``lakes/<digest>``: local storage holds the files of one lake only), made
    once per process."""
    lake = default_lake()
    if (lake.settings.remote, lake.settings.s3_endpoint_url) == (remote, s3_endpoint_url):
        return lake
    key = (remote, s3_endpoint_url)
    with _default_lock:
        if key not in _others:
            digest = hashlib.sha256(f"{remote}\n{s3_endpoint_url or ''}".encode()).hexdigest()
            home = lake.settings.home / "lakes" / digest[:16]
            settings = Settings.load(home=home, remote=remote, s3_endpoint_url=s3_endpoint_url)
            _others[key] = DataLake(settings)
        return _others[key]


def set_default_lake(lake: DataLake | None) -> None:
    """Make ``lake`` the default for ``File(uid)`` (None: configure again on next use)."""
    global _default
    with _default_lock:
        _default = lake
