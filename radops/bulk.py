"""Many files at once: ``datalake add DIR`` and ``datalake download PREFIX``.

Both move up to ``settings.transfer_threads`` files at once and keep the guarantees of one file.

**Adding** is one run of ``radops.datalake.add`` whose outputs are all the files (split into a few
runs only when one record would pass half of
:data:`~radops.lineage.validate.RECORD_MAX_BYTES`, several thousand files). In order:

1. every uid is checked free (one listing of the files' common folder); objects that earlier,
   killed adds left without a record are removed (they were never part of the lake); a uid
   that was used before has its file hashed first, and other bytes refused if files made
   from its old bytes remain (see :meth:`radops.lake.DataLake.add_files`);
2. every file is copied into local storage, hashed and uploaded (a conditional create
   carrying the run's id), concurrently: the copies of some files overlap the uploads of
   others; the run's START is recorded meanwhile, before the first upload;
3. the local copies are flushed (one ``syncfs``) and placed in local storage, while the run's
   COMPLETE record is built;
4. the run's COMPLETE record is written: from then on, and only then, the files are part of the
   lake (see :meth:`radops.lake.DataLake.creation_state`).

An object whose run has no COMPLETE record is *under way* while its writer lives, *abandoned*
once it is dead: a kill anywhere before step 4 leaves only objects that ``datalake repair`` or
the next ``add`` removes, and a failure (an upload refused, the store down) records FAIL and
removes the objects this command uploaded. The directory is thus all or nothing: no file of
it becomes part of the lake unless all do. With several runs (very large directories), a
failure while writing their records deletes the files of the runs already recorded, each
deletion recorded; a kill between two records (milliseconds apart) leaves the first runs'
files, complete and recorded (see docs/reliability.md).

**Fetching** downloads every file under a prefix (one listing) or of a list of uids; files
already trusted in local storage are left alone, each download is verified against its sha256
before it is renamed into place, and a small object is one GET (its answer carries the
sha256). A file that fails does not stop the others; the first error is raised at the end.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import gc
import itertools
import logging
import math
import os
import posixpath
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from stat import S_ISREG
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import attrs

from radops import writers
from radops.durable import start_fsync, sync_filesystem
from radops.errors import FileExistsInLakeError, FileNotInLakeError, RadopsError
from radops.uids import uid_problem, validate_uid

if TYPE_CHECKING:
    from radops.lake import DataLake
    from radops.lineage.events import Creation
    from radops.lineage.schemas import Column
    from radops.stores import ObjectMeta, Progress

__all__ = ["Fetched", "FilesProgress", "add_files", "fetch", "prefetch"]

log = logging.getLogger("radops")

T = TypeVar("T")
R = TypeVar("R")

_SHOWN = 5  # uids named in a message about many files


@runtime_checkable
class FilesProgress(Protocol):
    """One progress display for many files: the bytes moved and the files done, per phase.

    Called from several threads at once: implementations must be thread-safe.
    """

    def __call__(self, n: int) -> None:
        """``n`` more bytes of the current phase are done."""

    def begin(self, phase: str, files: int, size: int | None) -> None:
        """Phase ``phase`` (``"uploading"`` or ``"downloading"``) of ``files``
        files and ``size`` bytes (None: not known) begins; both counts start from zero."""

    def file_done(self) -> None:
        """One more file of the current phase is done."""


def _begin(
    progress: Progress | None, phase: str, files: int, size: int | None
) -> Callable[[], None]:
    """Start ``phase`` on ``progress``; returns what to call as each file is done.

    Whether ``progress`` counts files is asked here, once: a check against a runtime protocol
    costs tens of microseconds, as much as a small file's copy.
    """
    if isinstance(progress, FilesProgress):
        progress.begin(phase, files, size)
        return progress.file_done
    return _nothing


def _nothing() -> None:
    """Nothing to do: a plain byte progress does not count files, a freeze is not ours."""


def run_all(
    threads: int, items: Sequence[T], work: Callable[[T], R], *, keep_going: bool = False
) -> list[R]:
    """``work(item)`` for every item, at most ``threads`` at once; the results in order.

    On the first error the items not yet started are cancelled (unless ``keep_going``), the
    ones running finish, and then the first error (in item order) is raised. An interrupt
    (Ctrl-C) cancels what has not started and waits for what runs, so the caller can clean up.
    """
    if not items:
        return []
    if threads <= 1 or len(items) == 1:
        return [work(item) for item in items]
    # Worker threads that take the next item themselves: a pool's future, queue and wake-up
    # per item cost more than a small file's whole upload.
    results: list[R | None] = [None] * len(items)
    errors: dict[int, BaseException] = {}
    taken = itertools.count()  # next() of a count is atomic: each index is taken once
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            index = next(taken)
            if index >= len(items):
                return
            try:
                results[index] = work(items[index])
            except BaseException as exc:  # noqa: BLE001 - raised below, in the caller's thread
                errors[index] = exc
                if not keep_going:
                    stop.set()

    workers = [
        threading.Thread(target=worker, name=f"radops_{n}") for n in range(min(threads, len(items)))
    ]
    for each in workers:
        each.start()
    try:
        for each in workers:
            each.join()
    except BaseException:  # Ctrl-C: nothing more starts, what runs finishes
        stop.set()
        for each in workers:
            each.join()
        raise
    if errors:
        raise errors[min(errors)]
    return results  # type: ignore[return-value]  # every index was set


# -- adding -------------------------------------------------------------------------------------


@attrs.define
class _Staged:
    """One file copied into local storage and hashed, waiting to be uploaded."""

    source: Path
    uid: str
    tmp: Path
    sha256: str = ""
    size: int = 0
    schema: tuple[Column, ...] | None = None


@attrs.define
class _Batch:
    """The files one run creates, and its record."""

    files: list[_Staged]
    creation: Creation


def add_files(
    lake: DataLake,
    files: Iterable[tuple[Path | str, str]],
    *,
    move: bool = False,
    delete_stale: bool = False,
    progress: Progress | None = None,
) -> list[ObjectMeta]:
    """Add each ``(source, uid)`` of ``files`` as one run: all of them, or none.

    See :meth:`radops.lake.DataLake.add_files`.
    """
    pairs = [(Path(source), validate_uid(uid)) for source, uid in files]
    if not pairs:
        return []
    uids = [uid for _, uid in pairs]
    repeated = sorted(uid for uid, count in Counter(uids).items() if count > 1)
    if repeated:
        raise ValueError(f"the same uid is given for several files: {', '.join(repeated[:_SHOWN])}")
    sizes = [_source_size(source) for source, _ in pairs]
    lake.originator  # noqa: B018 - resolving it raises ConfigError before any work
    threads = lake.settings.transfer_threads
    with _older_objects_left_alone() as set_aside:
        # Built here, once, before any thread asks for them.
        lake.store.warm_up()
        lake.lineage  # noqa: B018
        _clear_the_way(lake, uids, threads)
        set_aside()  # boto3, loaded and given its models by the listing
        temps = lake.local.temp_paths(uids)
        staged = [
            _Staged(src, uid, tmp, size=size)
            for (src, uid), tmp, size in zip(pairs, temps, sizes, strict=True)
        ]
        metas: list[ObjectMeta] = []
        try:
            # A uid with a past may refuse other bytes (see DataLake._check_reuse): those few
            # are hashed and checked before anything is uploaded, so that a refusal leaves no
            # trace. The others are copied, hashed and uploaded in one go, file by file.
            past = [each for each in staged if lake.lineage.runs_using(each.uid)]
            run_all(threads, past, lambda each: _copy_and_hash(lake, each, move, None))
            for each in past:
                lake._check_reuse(each.uid, each.sha256, delete_stale)
            metas = _upload(lake, staged, threads, progress, move, set_aside)
        finally:
            if not metas:  # once added, every temp file is placed or removed already
                for each in staged:
                    lake.local.discard(each.tmp)
    if move:
        for source, _ in pairs:
            source.unlink()
    return metas


@contextlib.contextmanager
def _older_objects_left_alone() -> Iterator[Callable[[], None]]:
    """Keep the garbage collector to the objects made during the block; yields what sets
    aside the objects made so far too (modules loaded midway, such as the OpenLineage client).

    A bulk transfer makes a few objects per file; each full collection they trigger would also
    walk every object of the modules loaded before (botocore's models, openlineage's classes):
    an eighth of the CPU of adding 2,000 small files. Those are set aside (``gc.freeze``) for
    the block, and handed back to the collector after it. Left alone where the program froze
    objects itself, or another transfer already did.
    """
    if gc.get_freeze_count():
        yield _nothing
        return
    gc.freeze()
    try:
        yield gc.freeze
    finally:
        gc.unfreeze()


def _source_size(source: Path) -> int:
    """The size of ``source``, which must be a regular file (one stat, symlinks followed)."""
    try:
        status = source.stat()
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            raise
        broken = " (a symbolic link to nothing)" if source.is_symlink() else ""
        raise FileNotFoundError(f"{source} does not exist{broken}") from None
    if not S_ISREG(status.st_mode):
        raise FileNotFoundError(f"{source} is not a regular file")
    return status.st_size


def _copy_and_hash(lake: DataLake, each: _Staged, move: bool, progress: Progress | None) -> None:
    from radops.integrity import copy_and_hash, sha256_file
    from radops.lineage.schemas import table_schema
    from radops.sources import can_link

    with lake.local.writing(f"copy {str(each.source)!r} for {each.uid!r}"):
        if move and can_link(each.source, each.tmp.parent):
            os.link(each.source, each.tmp)  # no copy: the bytes are hashed once, in place
            each.sha256, each.size = sha256_file(each.tmp, progress)
        else:
            with each.source.open("rb") as src, each.tmp.open("xb") as dst:
                each.sha256, each.size = copy_and_hash(src, dst, progress)
    each.schema = table_schema(each.uid, each.tmp)


def _clear_the_way(lake: DataLake, uids: list[str], threads: int) -> None:
    """Refuse if any of ``uids`` is taken, in the lake or in local storage, after removing the
    objects of creations that were abandoned (a killed add leaves those): nothing is added.

    Abandonment is judged once per run, not once per object: a killed add leaves thousands of
    objects of one run.
    """
    from radops.objects import RUN_KEY, CreationState

    present = _in_the_lake(lake, uids, threads)
    heads = [meta for meta in run_all(threads, present, lake.head) if meta is not None]
    by_run: dict[str | None, list[ObjectMeta]] = {}
    for meta in heads:
        by_run.setdefault(meta.metadata.get(RUN_KEY), []).append(meta)
    taken: list[str] = []
    for run_id, metas in by_run.items():
        first = metas[0]
        state = lake.creation_state(first.key, first) if run_id else CreationState.RECORDED
        if state is CreationState.ABANDONED:
            run_all(threads, metas, lambda meta: lake.remove_abandoned(meta.key, meta))
        else:
            taken += [meta.key for meta in metas]
    if taken:
        taken.sort()
        shown = ", ".join(taken[:_SHOWN]) + (", ..." if len(taken) > _SHOWN else "")
        raise FileExistsInLakeError(
            f"{len(taken)} of the files already exist in the data lake ({shown}): nothing added"
        )
    with lake.local.batched():  # the files' folders are resolved once each, not once a file
        local = lake.local.held(uids)
    if local:
        shown = ", ".join(local[:_SHOWN]) + (", ..." if len(local) > _SHOWN else "")
        raise FileExistsInLakeError(
            f"{len(local)} of the files already exist in local storage ({shown}): data-lake "
            "files are immutable, choose other uids; nothing added"
        )


def _in_the_lake(lake: DataLake, uids: list[str], threads: int) -> list[str]:
    """Those of ``uids`` the lake has: one listing of their common folder (a request per 1,000
    keys, not one per file), or a HEAD each when they share no folder (the whole lake could be
    far larger than the directory)."""
    folder = posixpath.commonpath([uid.rpartition("/")[0] for uid in uids])
    if not folder:
        found = run_all(threads, uids, lake.head)
        return [uid for uid, meta in zip(uids, found, strict=True) if meta is not None]
    wanted = set(uids)
    # A dict: a folder marker "uid/" may be listed as "uid" beside the uid itself (see
    # ObjectStore.keys); the caller's HEAD tells which exist.
    return list(dict.fromkeys(key for key in lake.store.keys(f"{folder}/") if key in wanted))


def _batches(lake: DataLake, staged: list[_Staged], move: bool) -> list[_Batch]:
    """The runs that create ``staged``: one, unless its record would be too large."""
    from radops.lineage.events import build_event, event_to_dict, uuid7
    from radops.lineage.naming import ADD_JOB
    from radops.lineage.schemas import table_schema
    from radops.lineage.validate import RECORD_MAX_BYTES, record_bytes

    # The input is the folder the files come from (all of them, with their paths relative to
    # it, are the outputs): one input, not one per file, keeps records small and lineage
    # readable; a file's own source is that folder + its path.
    parents = {each.source.parent for each in staged}  # resolved once per folder, not per file
    folder = os.path.commonpath([str(parent.resolve()) for parent in parents])
    source = lake._external_ref("file", folder)

    def batch(files: list[_Staged]) -> _Batch:
        creation = lake.command_creation(
            ADD_JOB,
            str(uuid7()),
            "\0".join(each.uid for each in files),  # the call: these files, in this lake
            inputs=[source],
            parameters={"source": folder, "move": move, "files": len(files)},
        )
        return _Batch(files, creation)

    def size(files: list[_Staged]) -> int:
        event = build_event(_completed(lake, batch(files)), "COMPLETE")
        return len(record_bytes(event_to_dict(event)))

    # A margin below the limit: the record must never need shedding (about 900 bytes per
    # file: a run of about 4,000 files). START and FAIL records name no outputs. The size is
    # estimated from the files of the longest uids (building the whole record to measure it
    # cost as much as writing it), so it errs on the large side.
    budget = RECORD_MAX_BYTES * 9 // 10
    longest = [
        # What the record will say, but the sha256's value (the files are being hashed).
        attrs.evolve(
            each,
            sha256="0" * 64,
            schema=table_schema(each.uid, each.source),
        )
        for each in sorted(staged, key=lambda each: len(each.uid.encode()), reverse=True)[:32]
    ]
    one = size(longest[:1])
    per_file = (size(longest) - one) / (len(longest) - 1) if len(longest) > 1 else 0
    estimate = one + per_file * (len(staged) - 1)
    if estimate <= budget:
        return [batch(staged)]
    parts = math.ceil(estimate / budget) + 1
    step = math.ceil(len(staged) / parts)
    return [batch(staged[i : i + step]) for i in range(0, len(staged), step)]


def _completed(lake: DataLake, batch: _Batch) -> Creation:
    """The run's creation with its outputs, as its COMPLETE record names them."""
    outputs = [
        lake.dataset_ref(each.uid, sha256=each.sha256, size=each.size, schema=each.schema)
        for each in batch.files
    ]
    return attrs.evolve(batch.creation, outputs=outputs)


def _upload(
    lake: DataLake,
    staged: list[_Staged],
    threads: int,
    progress: Progress | None,
    move: bool,
    set_aside: Callable[[], None],
) -> list[ObjectMeta]:
    """Copy, hash and upload every file of ``staged`` (each object carrying its run's id),
    place the local copies, then record the runs.

    Each file is copied into local storage and uploaded by the same worker, so that copying
    some files overlaps uploading others. The runs are planned and started (their START
    events) in a thread of their own while the first files are copied: building the first
    event loads the OpenLineage client, about 0.2 s. No file is uploaded before its run is
    started. Nothing is part of the lake before its run's
    COMPLETE record; on an error, what this call uploaded is removed (and runs already
    recorded are deleted, their deletion recorded).
    """
    from radops.objects import RUN_KEY

    started: list[_Batch] = []
    created: list[str] = []
    recorded: list[_Batch] = []
    file_done = _begin(progress, "uploading", len(staged), sum(each.size for each in staged))

    with contextlib.ExitStack() as running:

        def start_runs() -> dict[str, str]:
            for batch in _batches(lake, staged, move):
                running.enter_context(writers.running(batch.creation.run_id))
                lake.lineage.emit(batch.creation, "START")
                started.append(batch)
            set_aside()  # the OpenLineage client, loaded by the first event
            return {each.uid: batch.creation.run_id for batch in started for each in batch.files}

        runs = _beside(start_runs)

        def upload(each: _Staged) -> ObjectMeta:
            if not each.sha256:
                _copy_and_hash(lake, each, move, None)
            run_id = runs.result()[each.uid]  # an error starting the runs stops every file
            meta = lake.upload_new(
                each.uid, each.tmp, each.sha256, metadata={RUN_KEY: run_id}, progress=progress
            )
            created.append(each.uid)
            file_done()
            return meta

        try:
            try:
                metas = run_all(threads, staged, upload)
            finally:
                wait([runs])  # the runs are all started (or failed to) before anything else
            # The COMPLETE records (thousands of outputs: a tenth of a second of Python) are
            # built while the copies are placed, and written once all are.
            built = [_beside(functools.partial(_complete_event, lake, batch)) for batch in started]
            try:
                _keep_local(lake, staged, metas, threads)
            finally:
                wait(built)
            for batch, event in zip(started, built, strict=True):
                lake.lineage.record(event.result())
                recorded.append(batch)
        except BaseException as exc:
            _undo(lake, started, recorded, created, exc)
            raise
    return metas


def _complete_event(lake: DataLake, batch: _Batch) -> dict[str, Any]:
    """The COMPLETE event of ``batch``'s run, built, not recorded yet."""
    return lake.lineage.build(_completed(lake, batch), "COMPLETE")


def _beside(work: Callable[[], R]) -> Future[R]:
    """``work()`` in a thread of its own; its result (or error) in the future returned."""
    thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="radops-beside")
    try:
        return thread.submit(work)
    finally:
        thread.shutdown(wait=False)  # the thread ends once ``work`` returns


def _keep_local(
    lake: DataLake, files: list[_Staged], metas: list[ObjectMeta], threads: int
) -> None:
    """Place the uploaded copies in local storage, flushed first (a placed file is never
    partial): by one ``syncfs`` for all of them, not an fsync each (one journal commit
    instead of one per file). Where that is not available or fails, each file's own fsync
    says which one could not be flushed."""
    try:
        flushed = sync_filesystem(lake.local.tmp_dir)
    except OSError:
        flushed = False

    def keep(pair: tuple[_Staged, ObjectMeta]) -> None:
        each, meta = pair
        flushing = None if flushed else start_fsync(each.tmp)
        lake.keep_local(each.uid, each.tmp, each.sha256, meta, flushing)

    with lake.local.batched():
        # Placing a flushed file is a few calls on its metadata: threads would only contend
        # (for the GIL and the lock of local storage). Unflushed ones wait for their fsyncs.
        run_all(1 if flushed else threads, list(zip(files, metas, strict=True)), keep)


def _undo(
    lake: DataLake,
    batches: list[_Batch],
    recorded: list[_Batch],
    created: list[str],
    error: BaseException,
) -> None:
    """Take back what a failed add made: FAIL for the runs not recorded and their objects
    removed; the files of runs already recorded deleted, each deletion recorded."""
    for batch in batches:
        if batch in recorded:
            continue
        try:
            lake.lineage.emit(batch.creation, "FAIL", error=error)
        except Exception:  # the store is down: the error itself says more
            log.warning(
                "could not record the failure of %d file(s)", len(batch.files), exc_info=True
            )
    done = {each.uid for batch in recorded for each in batch.files}
    lake.rollback([uid for uid in created if uid not in done])
    for uid in sorted(done):
        try:
            lake.delete(uid)
        except Exception:
            log.warning(
                "could not delete %s after the add failed; run `radops datalake rm %s`",
                uid,
                uid,
                exc_info=True,
            )


# -- fetching -----------------------------------------------------------------------------------


@attrs.frozen
class Fetched:
    """What :func:`fetch` did: every file's verified local path, and which it downloaded."""

    paths: dict[str, Path]
    downloaded: tuple[str, ...]
    size: int  # bytes downloaded


def fetch(
    lake: DataLake, uids_or_prefix: str | Iterable[str], progress: Progress | None = None
) -> Fetched:
    """Verified local copies of every file under a prefix, or of each uid given.

    Raises:
        FileNotInLakeError: nothing is under the prefix, or a uid is not in the lake.
        IntegrityError: a file is corrupted in the lake (the others are fetched first).
    """
    with _older_objects_left_alone():
        lake.store.warm_up()  # built here, once, before any thread asks for it
        return _fetch_listed(lake, uids_or_prefix, progress)


def _fetch_listed(
    lake: DataLake, uids_or_prefix: str | Iterable[str], progress: Progress | None
) -> Fetched:
    """:func:`fetch`, once the store is ready."""
    from radops.escape import escape

    if isinstance(uids_or_prefix, str):
        prefix = uids_or_prefix
        if prefix.removesuffix("/"):
            validate_uid(prefix.removesuffix("/"))  # no '..' or absolute prefix
        listed = list(lake.files(prefix))
        sizes: dict[str, int | None] = {}
        for meta in listed:
            problem = uid_problem(meta.key)
            if problem:  # put in the lake without radops: cannot be checked, named and left
                log.warning("skipped %s: not a valid uid (%s)", escape(meta.key), problem)
            else:
                sizes[meta.key] = meta.size
        if not sizes:
            raise FileNotInLakeError(
                f"no file is under {prefix!r} in the data lake {lake.store.url}"
            )
    else:
        sizes = {validate_uid(uid): None for uid in uids_or_prefix}
    with lake.local.batched():
        return _fetch(lake, sizes, progress)


def _fetch(lake: DataLake, sizes: dict[str, int | None], progress: Progress | None) -> Fetched:
    """:func:`fetch` of ``sizes``' uids (their sizes if listed), in a batch of local storage."""
    from radops.escape import escape

    wanted = list(sizes)
    # In this thread: a stat and a dictionary (or index) lookup each, far cheaper than handing
    # thousands of them to the pool (that cost 0.1 s for 2,000 files).
    local = [_trusted(lake, uid) for uid in wanted]
    paths = {uid: path for uid, path in zip(wanted, local, strict=True) if path is not None}
    missing = [uid for uid in wanted if uid not in paths]
    known = [sizes[uid] for uid in missing]
    total = None if any(size is None for size in known) else sum(s or 0 for s in known)
    file_done = _begin(progress, "downloading", len(missing), total)
    moved = [0]
    lock = threading.Lock()

    failed: dict[str, RadopsError | OSError] = {}

    def download(uid: str) -> Path | None:
        try:
            path = lake.local_path(uid, progress=progress)
        except (RadopsError, OSError) as exc:  # the others go on; the first is raised at the end
            with lock:
                failed[uid] = exc
            return None
        with lock:
            moved[0] += path.stat().st_size
        file_done()
        return path

    fetched = run_all(lake.settings.transfer_threads, missing, download)
    if failed:
        first, *others = [uid for uid in missing if uid in failed]
        for uid in others:
            log.warning("could not download %s: %s", escape(uid), failed[uid])
        if others:
            log.warning("%d of %d file(s) could not be downloaded", len(failed), len(wanted))
        raise failed[first]
    paths.update((uid, path) for uid, path in zip(missing, fetched, strict=True) if path)
    return Fetched({uid: paths[uid] for uid in wanted}, tuple(missing), moved[0])


def _trusted(lake: DataLake, uid: str) -> Path | None:
    """The path of ``uid`` if local storage holds it as radops placed it, else None."""
    path = lake.local.path(uid)
    stat = lake.local.stat_path(path)
    return path if stat is not None and lake.local.is_trusted(uid, stat) else None


def prefetch(
    lake: DataLake, uids_or_prefix: str | Iterable[str], progress: Progress | None = None
) -> dict[str, Path]:
    """:func:`fetch`, returning the paths only (see :meth:`radops.lake.DataLake.prefetch`)."""
    return fetch(lake, uids_or_prefix, progress).paths
