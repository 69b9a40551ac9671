"""``@file_creator``: pipeline functions whose outputs are data-lake files, with lineage.

The wrapper only orchestrates: bind the call, decide whether it can be skipped, run it with a
call context that stages its outputs, then commit the outputs and record the run. Staging means
nothing the function writes reaches the lake unless the function returns normally.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, overload

import attrs

from radops import writers
from radops.call_context import CallContext, Staged, in_call
from radops.canonical import call_digest, to_json_value
from radops.errors import (
    CreationPendingError,
    FileExistsInLakeError,
    OutputsError,
    RadopsError,
    UidConflictError,
)
from radops.file import File
from radops.lake import default_lake
from radops.lineage.naming import call_job, module_name
from radops.objects import DIGEST_KEY, RUN_KEY, SOURCE_KEY, CreationState
from radops.version import __version__

if TYPE_CHECKING:
    from radops.lake import DataLake
    from radops.lineage.events import DatasetRef
    from radops.lineage.source import SourceInfo
    from radops.skipping import Evidence

__all__ = ["CallReport", "file_creator", "reporting_calls"]

log = logging.getLogger("radops")

F = TypeVar("F", bound=Callable[..., Any])
FILE_MARKER = "radops.File"
_OUTPUT_ARGS = ("output_uid", "output_uids")


@attrs.frozen
class CallReport:
    """What one ``file_creator`` call did (see :func:`reporting_calls`).

    Attributes:
        job: the function, as recorded (``module.qualname``).
        outcome: ``"ran"``; ``"skipped"`` (its outputs were in the lake); or ``"lost race"``
            (it ran, but another process recorded the same outputs first, and the call
            returned those: the lake holds one copy, made by the other run).
        outputs: the uids of the call's own outputs: made by it, found in the lake, or made
            by the run that won the race.
    """

    job: str
    outcome: str
    outputs: tuple[str, ...]


_reports: contextvars.ContextVar[tuple[list[CallReport], ...]] = contextvars.ContextVar(
    "radops_call_reports", default=()
)


@contextlib.contextmanager
def reporting_calls() -> Iterator[list[CallReport]]:
    """Collect a :class:`CallReport` for each ``file_creator`` call the block makes.

    Calls made in this thread (or asyncio task) are reported as they end, inner calls before
    the call that made them::

        with reporting_calls() as calls:
            clean(raw)
        print(calls[-1].outcome)   # "ran", "skipped" or "lost race"
    """
    reports: list[CallReport] = []
    token = _reports.set((*_reports.get(), reports))
    try:
        yield reports
    finally:
        _reports.reset(token)


def _report(job: str, outcome: str, outputs: list[str]) -> None:
    listeners = _reports.get()
    if listeners:
        report = CallReport(job, outcome, tuple(outputs))
        for reports in listeners:
            reports.append(report)


@overload
def file_creator(func: F) -> F: ...
@overload
def file_creator(*, version: str = "") -> Callable[[F], F]: ...


def file_creator(func: F | None = None, *, version: str = "") -> F | Callable[[F], F]:
    """Make ``func`` a pipeline step whose outputs are data-lake files with lineage.

    Every ``File`` argument (also inside lists, tuples and dicts) is an input; every other
    argument is a parameter and must have a canonical JSON form. Outputs are either declared,
    with the special arguments ``output_uid`` (the function returns one ``File``) or
    ``output_uids`` (it returns a list), or implicit: ``File()`` inside the function gets a uid
    derived from the function, its parameters and its input uids.

    If every output already exists in the lake, the function is not run: the call returns
    handles to the outputs without downloading anything. ``version`` is a salt that enters the
    implicit uids; change it to force a rerun after changing the code.

    Raises:
        ParameterError: a parameter has no canonical JSON form (a ``TypeError``).
        OutputsError: some outputs exist and others do not, or a declared output was not made.
        UntrackedOutputError: the function created a file with an undeclared explicit uid.
    """

    def decorate(function: F) -> F:
        step = _Step(function, version)

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return step(args, kwargs)

        wrapper.__radops_step__ = step  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    if func is not None:
        return decorate(func)
    return decorate


_warned_about_source: set[tuple[str, str]] = set()  # (repository or file, warning)


class _Step:
    """A decorated function: its signature and code, computed once."""

    def __init__(self, function: Callable[..., Any], version: str) -> None:
        self.function = function
        self.version = version
        self.signature = inspect.signature(function)
        # Computed at decoration and pickled with the step: a Dask worker names the function as
        # the process that submitted it did, even without the script or its repository.
        self.module = module_name(function)
        self.name = function.__qualname__
        self.job_name = f"{self.module}.{self.name}"
        self._source: SourceInfo | None = None

    @property
    def source(self) -> SourceInfo:
        if self._source is None:
            from radops.lineage.source import source_info

            self._source = source_info(self.function)
        return self._source

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        inputs: list[File] = []

        def as_marker(value: Any) -> Any:
            if isinstance(value, File):
                inputs.append(value)
                return {FILE_MARKER: value.uid}
            return NotImplemented

        arguments: dict[str, Any] = {}
        parameters: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            if name in _OUTPUT_ARGS:
                continue
            before = len(inputs)
            arguments[name] = to_json_value(value, name, file_hook=as_marker)
            if not _only_files(value) or len(inputs) == before:
                parameters[name] = arguments[name]
        explicit = _explicit_outputs(bound.arguments)
        lake = inputs[0].lake if inputs else default_lake()
        digest = call_digest(self.module, self.name, arguments, salt=self.version)

        single = bound.arguments.get("output_uid") is not None
        from radops.skipping import Evidence

        evidence = Evidence(lake)
        # What the inputs hold now, by the lake (one HEAD each): the skip's evidence, and what
        # the run records if the call runs.
        now = {f.uid: evidence.input_sha256(f.uid) for f in _unique(inputs)}
        # Threads of this process making the same call take turns: one runs it, the others
        # then skip on its outputs (processes race at the upload instead, see _commit_all).
        with _one_at_a_time((lake.store.url, digest, *(explicit or ()))):
            skipped = self._try_skip(lake, digest, explicit, single, now, evidence)
            if skipped is not _RUN:
                return skipped
            return self._run(lake, bound, digest, explicit, inputs, parameters, now)

    # -- skipping ---------------------------------------------------------------------------

    def _try_skip(
        self,
        lake: DataLake,
        digest: str,
        explicit: list[str] | None,
        single: bool,
        now: dict[str, str | None],
        evidence: Evidence,
    ) -> Any:
        """The call's result from the lake, or _RUN (see :mod:`radops.skipping`)."""
        from radops.skipping import check_declared, find_skip

        if explicit is None:
            from radops.lineage.events import child_job
            from radops.lineage.parents import current_parent

            # The job Marquez files this call under now (under its parent, if it has one).
            job = child_job(call_job(self.job_name, lake.store.url, digest), current_parent())
            found = find_skip(
                lake, self.job_name, digest, lake.lineage.calls(digest, job), now, evidence
            )
            if found is None:
                return _RUN
            outputs, returned = found.outputs, found.returned
            metas = {uid: evidence.head(uid) for uid in outputs}
        else:
            outputs, returned = explicit, None
            metas = {uid: evidence.settled(uid, None) for uid in outputs}
            present = [uid for uid, meta in metas.items() if meta is not None]
            if not present:
                # Outputs gone from the lake (deleted, or lost): run again. A stale local copy
                # is kept until the new output replaces it, so a failing rerun loses nothing.
                return _RUN
            if len(present) < len(outputs):
                missing = [uid for uid in outputs if metas[uid] is None]
                raise OutputsError(
                    f"{self.job_name}: some outputs are in the data lake ({', '.join(present)}) "
                    f"and others are not ({', '.join(missing)}); delete the present ones "
                    "(`radops datalake rm`) to run it again, or restore the missing ones"
                )
            # Declared uids say nothing about how the files were made: an output made by a
            # call with other inputs, parameters or version is not this call's result.
            foreign = [
                uid
                for uid, meta in metas.items()
                if meta is not None and meta.metadata.get(DIGEST_KEY) != digest
            ]
            if foreign:
                raise OutputsError(
                    f"{self.job_name}: {', '.join(foreign)} already exist(s) in the data lake "
                    "but were not made by this call (other inputs, parameters or version, or "
                    "not by this function): data-lake files are immutable, so pass new output "
                    "uids, or delete the old files (`radops datalake rm`) to make them again"
                )
            check_declared(
                lake,
                self.job_name,
                digest,
                {uid: meta for uid, meta in metas.items() if meta is not None},
                now,
                evidence,
            )
        for uid, meta in metas.items():
            entry = lake.local.entry(uid)
            if meta is not None and entry is not None and entry.sha256 != meta.sha256:
                # The lake's file was deleted and made again since this copy was cached.
                lake.remove_local(uid)
        recorded = {meta.metadata.get(SOURCE_KEY) for meta in metas.values() if meta}
        log.info(
            "%s skipped: its outputs are already in the data lake (%s)",
            self.job_name,
            ", ".join(outputs),
        )
        if recorded - {None, self.source.source_sha256}:
            how = (
                "delete the outputs (`radops datalake rm`) or pass new output uids"
                if explicit is not None
                else 'pass a new version (@file_creator(version="2")) or delete the outputs '
                "(`radops datalake rm`)"
            )
            log.warning(
                "%s: the outputs in the data lake were made by different code than the current "
                "%s; they are used as they are. To run it again, %s",
                self.job_name,
                self.source.file or "source",
                how,
            )
        _report(self.job_name, "skipped", outputs)
        return _rebuild(lake, explicit, outputs, returned, single)

    # -- running ----------------------------------------------------------------------------

    def _run(
        self,
        lake: DataLake,
        bound: inspect.BoundArguments,
        digest: str,
        explicit: list[str] | None,
        inputs: list[File],
        parameters: dict[str, Any],
        now: dict[str, str | None],
    ) -> Any:
        from radops.lineage.events import Creation, uuid7
        from radops.lineage.parents import current_parent

        call = call_job(self.job_name, lake.store.url, digest, *(explicit or ()))
        source = self.source
        warning = source.warning
        where = str(source.git.repo_root if source.git else source.file)
        if warning and (where, warning) not in _warned_about_source:
            # Once per process, not at every call nor for every step: the warning is about a
            # file or a repository ("pipe.py is not in a git repository"), the same for all of
            # its steps; and a function pickled to Dask workers is a new _Step at every task.
            _warned_about_source.add((where, warning))
            log.warning("%s", warning)
        context = CallContext(
            lake,
            self.job_name,
            digest,
            explicit,
            single=bound.arguments.get("output_uid") is not None,
        )
        run_id = str(uuid7())
        creation = Creation(
            run_id=run_id,
            job_namespace=lake.settings.namespace,
            job_name=self.job_name,
            email=lake.originator,
            radops_version=__version__,
            source=self.source,
            parameters=parameters,
            inputs=[lake.dataset_ref(f.uid, sha256=now.get(f.uid)) for f in _unique(inputs)],
            call_digest=digest,
            call=call,
            parent=current_parent(),
        )
        context.inputs_now = now
        with writers.running(run_id):
            return self._run_call(lake, bound, context, creation, inputs)

    def _run_call(
        self,
        lake: DataLake,
        bound: inspect.BoundArguments,
        context: CallContext,
        creation: Any,
        inputs: list[File],
    ) -> Any:
        from radops.lineage.parents import RunRef, running

        lake.lineage.emit(creation, "START")
        this_run = RunRef(creation.job_namespace, creation.job, creation.run_id)
        try:
            # Steps called from the function (or from Dask tasks it submits) name this run
            # as their parent.
            with in_call(context), running(this_run, creation.parent):
                result = self.function(*bound.args, **bound.kwargs)
        except BaseException as exc:
            context.discard()
            _record_quietly(
                lake,
                attrs.evolve(creation, inputs=self._inputs(lake, inputs, context)),
                "FAIL",
                exc,
            )
            raise
        try:
            return self._complete(lake, context, creation, inputs, result)
        except BaseException as exc:
            context.discard()
            if not isinstance(exc, _LostRace):
                _record_quietly(lake, creation, "FAIL", exc)
                raise
            _record_quietly(lake, creation, "ABORT", None)
            _report(self.job_name, "lost race", exc.outputs)
            return exc.result

    def _inputs(self, lake: DataLake, inputs: list[File], context: CallContext) -> list[DatasetRef]:
        uids = [f.uid for f in _unique(inputs)]
        uids += [uid for uid in context.read if uid not in uids]
        return [lake.dataset_ref(uid) for uid in uids]

    def _complete(
        self, lake: DataLake, context: CallContext, creation: Any, inputs: list[File], result: Any
    ) -> Any:
        if context.explicit is not None:
            missing = [uid for uid in context.explicit if uid not in context.staged]
            if missing:
                raise OutputsError(
                    f"{self.job_name} returned without creating its declared output(s) "
                    f"{', '.join(missing)}"
                )
        metadata = {
            RUN_KEY: creation.run_id,
            DIGEST_KEY: context.digest,
            SOURCE_KEY: self.source.source_sha256,
        }
        from radops.lineage.schemas import table_schema

        # Read now: committing moves the staged files into local storage (or drops them).
        schemas = {uid: table_schema(uid, s.tmp) for uid, s in context.staged.items()}
        committed: list[str] = []
        try:
            self._commit_all(lake, context, metadata, result, committed)
            outputs = [
                lake.dataset_ref(uid, sha256=s.sha256, size=s.size, schema=schemas[uid])
                for uid, s in context.staged.items()
            ]
            complete = attrs.evolve(
                creation,
                inputs=self._inputs(lake, inputs, context),
                outputs=outputs,
                returned=_returned_json(result),
            )
            lake.lineage.emit(complete, "COMPLETE")
        except _LostRace:
            raise
        except BaseException:
            # All or nothing: outputs already uploaded go again, so the lake never holds some
            # outputs of a call without its creation record (a retry then starts clean).
            lake.rollback(committed)
            raise
        _report(self.job_name, "ran", list(context.staged))
        context.staged.clear()
        return result

    def _commit_all(
        self,
        lake: DataLake,
        context: CallContext,
        metadata: dict[str, str],
        result: Any,
        committed: list[str],
    ) -> None:
        """Upload every staged output, appending each to ``committed`` as it lands.

        Raises _LostRace if another run made and recorded the same outputs first.
        """
        for staged in list(context.staged.values()):
            if _commit_output(lake, staged, metadata):
                committed.append(staged.uid)
                continue
            if committed:
                raise OutputsError(
                    f"{self.job_name}: {staged.uid} was made by another run while this one had "
                    f"already made {', '.join(committed)}; delete them (`radops datalake rm`) "
                    "and run it again"
                )
            # Another process made the same outputs first: use theirs, as a skip would, if
            # they are this call's and were made from the inputs' bytes as they are now.
            from radops.skipping import check_winner

            check_winner(lake, self.job_name, context.digest, staged.uid, context.inputs_now)
            outputs = list(context.staged)
            raise _LostRace(
                _rebuild(lake, context.explicit, outputs, _returned_json(result), context.single),
                outputs,
            )


# The calls under way in this process, by (lake, call digest, declared outputs): a lock each,
# and how many threads hold or wait for it (the entry goes when none does).
_calls: dict[tuple[str, ...], tuple[threading.RLock, list[int]]] = {}
_calls_lock = threading.Lock()


@contextlib.contextmanager
def _one_at_a_time(key: tuple[str, ...]) -> Iterator[None]:
    """Hold the lock of the call ``key`` in this process while the block runs.

    Reentrant: a function that makes its own call again (in the same thread) does not wait
    for itself.
    """
    with _calls_lock:
        lock, users = _calls.setdefault(key, (threading.RLock(), [0]))
        users[0] += 1
    try:
        with lock:
            yield
    finally:
        with _calls_lock:
            users[0] -= 1
            if not users[0]:
                del _calls[key]


class _Run:
    pass


_RUN: Any = _Run()


class _LostRace(Exception):
    def __init__(self, result: Any, outputs: list[str]) -> None:
        super().__init__("lost the race")
        self.result = result
        self.outputs = outputs


def _commit_output(lake: DataLake, staged: Staged, metadata: dict[str, str]) -> bool:
    """Upload one staged output; False if another run created it first and recorded it.

    A conflicting object that is still under way is waited for; one whose creation was
    abandoned (its writer died) is removed and the upload tried again.
    """
    pause = 0.05
    deadline = time.monotonic() + 2 * lake.settings.stale_after + 5
    while True:
        try:
            lake.commit(staged.uid, staged.tmp, staged.sha256, metadata=metadata)
        except UidConflictError:
            raise  # a file where the uid needs a folder: no waiting will change that
        except FileExistsInLakeError:
            if lake.settle(staged.uid) is CreationState.RECORDED:
                return False
            if time.monotonic() > deadline:
                raise CreationPendingError(
                    f"{staged.uid!r} is being uploaded by another process that neither "
                    "finishes nor gives up; if that process is gone, run "
                    "`radops datalake repair`"
                ) from None
            # Absent now: removed as abandoned, or still being uploaded (a claimed multipart
            # upload is not visible yet). Try again, without hammering the store.
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
            continue
        return True


def _record_quietly(lake: DataLake, creation: Any, state: str, error: BaseException | None) -> None:
    try:
        lake.lineage.emit(creation, state, error=error)
    except Exception:
        log.warning("could not record the %s event of %s", state, creation.job_name, exc_info=True)


def _only_files(value: Any) -> bool:
    if isinstance(value, File):
        return True
    if isinstance(value, (list, tuple)):
        return bool(value) and all(_only_files(v) for v in value)
    if isinstance(value, dict):
        return bool(value) and all(_only_files(v) for v in value.values())
    return False


def _explicit_outputs(arguments: dict[str, Any]) -> list[str] | None:
    from radops.uids import validate_uid

    if "output_uid" in arguments and arguments["output_uid"] is not None:
        return [validate_uid(arguments["output_uid"])]
    if "output_uids" in arguments and arguments["output_uids"] is not None:
        uids = arguments["output_uids"]
        if isinstance(uids, str):
            raise TypeError("output_uids must be a list of uids, not a string")
        return [validate_uid(uid) for uid in uids]
    return None


def _unique(files: list[File]) -> Iterator[File]:
    seen: set[str] = set()
    for file in files:
        if file.uid not in seen:
            seen.add(file.uid)
            yield file


def _returned_json(result: Any) -> Any:
    def marker(value: Any) -> Any:
        return {FILE_MARKER: value.uid} if isinstance(value, File) else NotImplemented

    try:
        return to_json_value(result, "return value", file_hook=marker)
    except RadopsError:
        return None  # not reconstructible: a skipped call then returns the output handles


def _rebuild(
    lake: DataLake,
    explicit: list[str] | None,
    outputs: list[str],
    returned: Any,
    single: bool = False,
) -> Any:
    if returned is not None:
        return _from_json(lake, returned)
    if explicit is not None:
        # output_uid: the function returns one File; output_uids: a list, even of one.
        files = [File(uid, lake=lake) for uid in explicit]
        return files[0] if single else files
    files = [File(uid, lake=lake) for uid in outputs]
    return files[0] if len(files) == 1 else files


def _from_json(lake: DataLake, value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {FILE_MARKER}:
            return File(value[FILE_MARKER], lake=lake)
        return {k: _from_json(lake, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(lake, v) for v in value]
    return value
