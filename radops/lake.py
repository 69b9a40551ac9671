"""DataLake: one remote store plus this machine's local storage, as configured by Settings.

Everything that moves bytes between the two goes through here, so the rules hold everywhere:
uploads are conditional creates, downloads are verified before they become visible, cached
files are rehashed when they changed, and nothing partial is ever left behind.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs

from radops import writers
from radops.cache import LocalStorage, local_storage_error
from radops.durable import Pending, start_fsync
from radops.errors import (
    CreationPendingError,
    FileExistsInLakeError,
    FileNotInLakeError,
    LocalStorageError,
)
from radops.escape import escape
from radops.integrity import copy_and_hash, sha256_file
from radops.lineage.naming import ADD_JOB, JOB_TYPES, RM_JOB, call_job
from radops.objects import ORIGINATOR_KEY, RADOPS_VERSION_KEY, RUN_KEY, CreationState
from radops.settings import Settings
from radops.sources import can_link
from radops.stores import ObjectMeta, ObjectStore, Progress, start_phase, store_from_settings
from radops.uids import uid_problem, validate_uid
from radops.version import __version__

if TYPE_CHECKING:
    from radops.lineage.events import Creation, DatasetRef
    from radops.lineage.recorder import LineageRecorder
    from radops.lineage.schemas import Column
    from radops.verify import VerifyResult

__all__ = [
    "DataLake",
    "LocalStatus",
    "default_lake",
    "lake_on",
    "set_default_lake",
]

log = logging.getLogger("radops")

_TEXT_KWARGS = frozenset({"encoding", "errors", "newline"})


class _EnterHook:
    """``on_enter``, if set, runs when a ``with`` block starts on the file object: a read
    opened before a ``file_creator`` call and used in a ``with`` block inside it is one of
    the call's inputs (see ``File.open``)."""

    on_enter: Callable[[], None] | None = None

    def __enter__(self) -> Any:
        if self.on_enter is not None:
            self.on_enter()
        return super().__enter__()  # type: ignore[misc]


class _ReadFile(_EnterHook, io.FileIO):
    """The raw file under a read's file object. Closing it (explicitly, at the end of a
    ``with`` block, or when the garbage collector finalizes the handle) ends the read, so that
    eviction may take the file again."""

    def __init__(self, fd: int, name: str, on_close: Callable[[], None]) -> None:
        super().__init__(fd, "rb", closefd=True)
        self.name = name  # the path, as the built-in open gives it (FileIO(fd) names the fd)
        self._on_close: Callable[[], None] | None = on_close

    def close(self) -> None:
        try:
            super().close()
        finally:
            done, self._on_close = self._on_close, None
            if done is not None:
                done()


def _check_read_arguments(mode: str, kwargs: dict[str, Any]) -> None:
    unexpected = set(kwargs) - {"buffering"} - (set() if "b" in mode else _TEXT_KWARGS)
    if unexpected:
        raise TypeError(
            f"unexpected argument(s) for mode {mode!r}: {', '.join(sorted(unexpected))}"
        )


class _TextReader(_EnterHook, io.TextIOWrapper):
    pass


class _BufferedReader(_EnterHook, io.BufferedReader):
    pass


def _reader(
    fd: int,
    path: str,
    mode: str,
    kwargs: dict[str, Any],
    on_close: Callable[[], None],
    on_enter: Callable[[], None] | None = None,
) -> IO[Any]:
    """What the built-in ``open(path, mode, **kwargs)`` builds, over the descriptor ``fd``,
    with ``on_close`` run when the file is closed (see :class:`_ReadFile`) and ``on_enter``
    when a ``with`` block starts on it. On an error the descriptor is closed and ``on_close``
    run."""
    try:
        raw = _ReadFile(fd, path, on_close)
    except BaseException:
        os.close(fd)
        on_close()
        raise
    try:
        options = dict(kwargs)
        buffering = options.pop("buffering", -1)
        if "b" in mode and buffering == 0:
            raw.on_enter = on_enter
            return raw
        size = buffering if buffering > 1 else io.DEFAULT_BUFFER_SIZE
        buffer = _BufferedReader(raw, size)
        if "b" in mode:
            buffer.on_enter = on_enter
            return buffer
        text = _TextReader(buffer, line_buffering=buffering == 1, **options)
        text.mode = mode  # type: ignore[misc]  # as the built-in open sets it
        text.on_enter = on_enter
    except BaseException:
        raw.close()
        raise
    return text


def radops_outputs(event: dict[str, Any]) -> list[str]:
    """The uids a radops event created (or deleted)."""
    from radops.lineage.events import radops_facet

    return list(radops_facet(event).get("outputs", []))


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
        # Threads share a lake: what is built on first use is built once (a second recorder
        # would have a second index connection and outbox; a second store, a second client).
        self._build_lock = threading.RLock()
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
            with self._build_lock:
                if self._store is None:
                    self._store = store_from_settings(self.settings)
        return self._store

    @property
    def lineage(self) -> LineageRecorder:
        """This lake's lineage: records in the lake, the local index, delivery to consumers."""
        if self._lineage is None:
            with self._build_lock:
                if self._lineage is None:
                    self._lineage = self._make_lineage()
        return self._lineage

    def _make_lineage(self) -> LineageRecorder:
        """The lineage recorder of this lake (see :attr:`lineage`)."""
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
        return LineageRecorder(
            self.store,
            self.settings.state_dir,
            lambda: transport_from_settings(self.settings),
            marquez,
        )

    def dataset_ref(
        self,
        uid: str,
        sha256: str | None = None,
        size: int | None = None,
        schema: tuple[Column, ...] | None = None,
    ) -> DatasetRef:
        """``uid`` as an OpenLineage dataset, with its sha256 (from local storage or a HEAD)
        and, for an output, its columns."""
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
        return DatasetRef(namespace, name, uid, sha256, size, schema)

    def command_creation(self, job: str, run_id: str, uid: str, **fields: Any) -> Creation:
        """A creation (or deletion) of ``uid`` by a radops command: its job is that uid's."""
        from radops.lineage.events import Creation
        from radops.lineage.parents import current_parent

        fields.setdefault("parent", current_parent())
        return Creation(
            run_id=run_id,
            job_namespace=self.settings.namespace,
            job_name=job,
            email=self.originator,
            radops_version=__version__,
            call=call_job(job, self.store.url, uid),
            job_type=JOB_TYPES[job],
            **fields,
        )

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
        """Download ``uid`` into local storage (verified, then renamed into place).

        A small object is one request: the download's answer carries the sha256 and size
        it is verified against (no HEAD first).

        Raises:
            FileNotInLakeError: the lake does not have it.
            IntegrityError: the lake's copy is corrupted, or was not made by radops.
            LocalStorageError: it is larger than ``RADOPS_CACHE_MAX_BYTES`` allows, or the
                local disk is full or read-only.
        """
        validate_uid(uid)

        def fits(meta: ObjectMeta) -> None:
            self.local.check_fits(uid, meta.size)

        tmp = self.local.temp_path(uid)
        try:
            # A full or read-only disk here is this machine's, not the lake's: say so.
            with self.local.writing(f"download {uid!r}"):
                meta = self.store.get(uid, tmp, progress=progress, check=fits)
            # get() verified the bytes against meta.sha256, so it is never None here.
            return self.local.place(tmp, uid, meta.sha256 or "", meta.etag)
        except FileNotInLakeError:
            raise FileNotInLakeError(
                f"{uid!r} does not exist locally or in the data lake {self.store.url}"
            ) from None
        finally:
            self.local.discard(tmp)

    def prefetch(
        self, uids_or_prefix: str | Iterable[str], progress: Progress | None = None
    ) -> dict[str, Path]:
        """Verified local copies of many files, downloaded concurrently; their paths by uid.

        ``uids_or_prefix``: a prefix (``"raw/2024/"``: every file under it, by one listing)
        or uids. Files already trusted in local storage are not downloaded again; each
        download is verified against its sha256 before it becomes visible. At most
        ``settings.transfer_threads`` move at once. ``progress``: a callable counting bytes,
        or a :class:`radops.bulk.FilesProgress` that also counts files.

        Raises:
            FileNotInLakeError: a uid (or, for a prefix, every file) is not in the lake.
            IntegrityError: a file's copy in the lake is corrupted (the others are fetched).
        """
        from radops.bulk import prefetch

        return prefetch(self, uids_or_prefix, progress)

    def verify(self, uid: str) -> VerifyResult:
        """Hash every byte of ``uid`` in the lake and of its local copy; repair the local copy.

        Unlike a read, this never trusts the local fingerprint. The lake's object is checked
        through a temp file that is then removed; a corrupted local copy is removed, and
        downloaded again if the lake's copy is sound. See :class:`~radops.verify.VerifyResult`.
        """
        from radops.verify import verify

        return verify(self, uid)

    def open_for_reading(
        self, uid: str, mode: str, *, on_enter: Callable[[], None] | None = None, **kwargs: Any
    ) -> IO[Any]:
        """``open(path, mode, **kwargs)`` of a verified local copy of ``uid`` (downloaded first
        if needed), which eviction leaves alone until the file object is closed.

        The file object is an ordinary one (a :class:`io.TextIOWrapper` or
        :class:`io.BufferedReader`), usable with or without ``with``; if it is never closed,
        the garbage collector closes it, with the ResourceWarning of the built-in ``open``.
        ``on_enter`` runs when a ``with`` block starts on it.

        Raises:
            InvalidUidError: ``uid`` is not a valid uid (checked before any path is made).
        """
        uid = validate_uid(uid)
        _check_read_arguments(mode, kwargs)
        local = self.local
        # The fast path of a cached read (benchmark case 4): one open, whose file is checked to
        # be the one radops placed; else the checked path, verifying or downloading first.
        opened = local.open_trusted(uid)
        if opened is not None:
            fd, path = opened
            local.begin_reading(uid)
        else:
            checked = self.local_path(uid)
            local.begin_reading(uid)
            try:
                fd = os.open(checked, os.O_RDONLY | os.O_CLOEXEC)
            except BaseException:
                local.end_reading(uid)
                raise
            path = str(checked)
        end = functools.partial(local.end_reading, uid)
        return _reader(fd, path, mode, kwargs, end, on_enter)

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
        from radops.lineage.schemas import table_schema

        run_id = creation.run_id
        self.lineage.emit(creation, "START")
        schema = table_schema(uid, tmp)  # now: committing moves ``tmp`` into local storage
        try:
            meta = self.commit(uid, tmp, sha256, metadata={RUN_KEY: run_id}, progress=progress)
        except BaseException as exc:
            try:
                self.lineage.emit(creation, "FAIL", error=exc)
            except Exception:  # the store is down: the upload's own error says more
                log.warning("could not record the failure of %s", uid, exc_info=True)
            raise
        output = self.dataset_ref(uid, sha256=sha256, size=meta.size, schema=schema)
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
        # The local copy must be on disk before it is placed (a power loss must not leave a
        # placed file with holes): flushed while the upload runs, not before it starts, on the
        # shared pool (a directory lake's own fsyncs then share its journal commit).
        flushing = start_fsync(tmp)
        try:
            meta = self.upload_new(uid, tmp, sha256, metadata, progress)
        except FileExistsInLakeError:
            flushing.wait_quietly()
            raise  # ``tmp`` stays: the caller may settle the conflict and try again
        except BaseException:
            flushing.wait_quietly()
            tmp.unlink(missing_ok=True)
            raise
        self.keep_local(uid, tmp, sha256, meta, flushing)
        return meta

    def upload_new(
        self,
        uid: str,
        tmp: Path,
        sha256: str,
        metadata: dict[str, str] | None = None,
        progress: Progress | None = None,
    ) -> ObjectMeta:
        """The upload of :meth:`commit`: ``uid`` created in the store from ``tmp`` (kept).

        Raises:
            FileExistsInLakeError: another writer created ``uid`` first.
        """
        validate_uid(uid)
        recorded = {
            ORIGINATOR_KEY: self.originator,
            RADOPS_VERSION_KEY: __version__,
            writers.WRITER_KEY: writers.current(),
            **(metadata or {}),
        }
        return self.store.put_new(tmp, uid, sha256=sha256, metadata=recorded, progress=progress)

    def keep_local(
        self, uid: str, tmp: Path, sha256: str, meta: ObjectMeta, flushing: Pending | None
    ) -> None:
        """The end of :meth:`commit`: the uploaded ``tmp`` placed in local storage as ``uid``
        once ``flushing`` (its fsync; None: flushed already) is done, then removed.

        Never raises for local storage: the file is safely in the lake, and failing now would
        undo a good creation for the sake of a local copy that a read downloads again anyway.
        """
        placed = False
        try:
            if flushing is not None:
                try:
                    flushing.wait()
                except OSError as exc:
                    raise local_storage_error(
                        exc, f"flush {uid!r} to disk", self.local.tmp_dir
                    ) from exc
            if self.local.fits(meta.size):
                self.local.place(tmp, uid, sha256, meta.etag)
                placed = True
            else:  # safely in the lake, but larger than RADOPS_CACHE_MAX_BYTES allows locally
                log.info("%s is in the data lake; it is too large to keep in local storage", uid)
        except LocalStorageError as exc:
            log.warning("%s is in the data lake but could not be kept locally: %s", uid, exc)
        finally:
            if not placed:
                tmp.unlink(missing_ok=True)

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
                writer = escape(writer)  # read from the lake: never raw in a message
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

        A moved source is removed only once the file is safely in the lake. A
        :class:`~radops.stores.PhasedProgress` is told of two phases, ``"hashing"`` (the copy
        into local storage) and ``"uploading"``; a plain callable counts the upload.
        ``delete_stale``: see :meth:`create`.

        Raises:
            FileExistsInLakeError: ``uid`` exists.
            UidReuseError: ``uid`` was deleted, and files made from its old bytes remain.
        """
        validate_uid(uid)
        source = Path(source)
        if not source.is_file():
            if not source.exists():
                broken = " (a symbolic link to nothing)" if source.is_symlink() else ""
                raise FileNotFoundError(f"{source} does not exist{broken}")
            raise FileNotFoundError(f"{source} is not a regular file")
        self.ensure_absent(uid)
        tmp = self.local.temp_path(uid)
        try:
            hashing = start_phase(progress, "hashing")
            with self.local.writing(f"copy {str(source)!r} for {uid!r}"):
                if move and can_link(source, tmp.parent):
                    os.link(source, tmp)  # no copy: the bytes are hashed once, in place
                    sha256, _ = sha256_file(tmp, hashing)
                else:
                    with source.open("rb") as src, tmp.open("xb") as dst:
                        sha256, _ = copy_and_hash(src, dst, hashing)
            source_ref = self._external_ref("file", str(source.resolve()))
            meta = self.create(
                uid,
                tmp,
                sha256,
                job=ADD_JOB,
                inputs=[source_ref],
                parameters={"source": str(source), "move": move},
                progress=start_phase(progress, "uploading"),
                delete_stale=delete_stale,
            )
        finally:
            self.local.discard(tmp)
        if move:
            source.unlink()
        return meta

    def add_files(
        self,
        files: Iterable[tuple[Path | str, str]],
        *,
        move: bool = False,
        progress: Progress | None = None,
        delete_stale: bool = False,
    ) -> list[ObjectMeta]:
        """Add many local files, each ``(source, uid)``: all of them or none, concurrently.

        The files are one creation, recorded as one run of ``radops.datalake.add`` whose
        outputs they all are (a few runs for many thousands of files), so ``info``,
        ``lineage`` and skip decisions work per uid as for :meth:`add_file`. Every uid is
        checked free first; at most ``settings.transfer_threads`` files are copied, hashed
        and uploaded at once, each a conditional create. No file is part of the lake before
        the run's COMPLETE record: if an upload fails, the run's failure is recorded and what
        it uploaded is removed; if the process is killed, ``datalake repair`` (or the next add
        of these uids) removes it. ``progress``: a callable counting uploaded bytes, or a
        :class:`radops.bulk.FilesProgress` that sees every phase and counts files.
        The metadata of each file is returned, in the order given.

        Raises:
            FileExistsInLakeError: a uid exists (in the lake or in local storage): nothing
                is added.
            UidReuseError: a uid was deleted, and files made from its old bytes remain.
            ValueError: the same uid is given twice.
        """
        from radops.bulk import add_files

        return add_files(self, files, move=move, delete_stale=delete_stale, progress=progress)

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
        from radops.redact import redact_url
        from radops.urls import fetch_url, public_url

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
                    progress=start_phase(progress, "downloading"),
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
                progress=start_phase(progress, "uploading"),
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
        """Every file made from ``uid``, directly or not, in the order they were made.

        Outputs an event names that are not valid uids (events are read from the lake, and
        radops never makes such a file) are left out.
        """
        found: list[str] = []
        frontier = [uid]
        while frontier:
            current = frontier.pop(0)
            for event in self.lineage.runs_using(current):
                for output in radops_outputs(event):
                    if not isinstance(output, str) or uid_problem(output):
                        continue
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
        from radops.lineage.events import recorded_sha256

        lineage = self.lineage
        lineage.runs_using(uid)  # synced once per process
        if lineage.index.runs_using(uid):
            lineage.sync()  # the uid has a past: be current about it
        stale: list[str] = []
        for event in lineage.index.runs_using(uid):
            if recorded_sha256(event, uid, self.store.dataset(uid)) == sha256:
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
        """Every file in the lake under ``prefix``, in key order, paginated lazily.

        Every key, including those that are not valid uids (put in the lake without radops:
        check with :func:`radops.uids.uid_problem`); the methods that take a uid refuse them.
        """
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
            if uid_problem(uid):  # put in local storage by hand, under a name radops refuses
                problems.append(LocalStatus(uid, "not a valid uid"))
                continue
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
