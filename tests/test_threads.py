"""Several threads of one process using one lake: what docs/pipelines.md promises is safe.

Reading (``File.open("r")``, ``DataLake.local_path``), creating (``File.open("w")``) and calling
``file_creator`` steps from a thread pool, on both remotes. Each test runs a few trials and
counts what every thread saw; the counts are asserted once all trials ran.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from radops.creator import CallReport
from radops.data_lake import File, file_creator, reporting_calls
from radops.lake import DataLake
from radops.lineage.events import function_of, radops_facet
from tests.conftest import MakeLake
from tests.olschema import validate_event

THREADS = 8
MODULE = __name__

_ran: list[tuple[str, int]] = []  # (step, n) of every execution of a step's body
_ran_lock = threading.Lock()


def _note_run(step: str, n: int) -> None:
    with _ran_lock:
        _ran.append((step, n))


def _runs_of(step: str, n: int) -> int:
    with _ran_lock:
        return _ran.count((step, n))


@file_creator
def shout(src: File, n: int) -> File:
    """One implicit output: the input in capitals, and ``n``."""
    _note_run("shout", n)
    with src.open("r") as handle:
        text = handle.read()
    out = File(suffix=".txt")
    with out.open("w") as handle:
        handle.write(f"{text.upper()} {n}")
    return out


@file_creator
def copy_to(src: File, n: int, output_uid: str) -> File:
    """One declared output: the input and ``n``."""
    _note_run("copy_to", n)
    with src.open("r") as handle:
        text = handle.read()
    out = File(output_uid)
    with out.open("w") as handle:
        handle.write(f"{text} {n}")
    return out


@file_creator
def parts_in_threads(n: int) -> list[File]:
    """Ten implicit outputs written by threads that run in the call's context."""

    def write(i: int) -> File:
        out = File(suffix=f".{i}")
        with out.open("w") as handle:
            handle.write(f"part {i} of {n}")
        return out

    async def all_parts() -> list[File]:
        # asyncio.to_thread runs each function in a copy of the caller's context.
        return list(await asyncio.gather(*(asyncio.to_thread(write, i) for i in range(10))))

    return asyncio.run(all_parts())


@file_creator
def file_in_a_plain_thread(n: int) -> File:
    """An implicit output made in a thread started without the call's context."""
    made: list[Any] = []

    def make() -> None:
        try:
            made.append(File(suffix=".txt"))
        except ValueError as exc:
            made.append(exc)

    worker = threading.Thread(target=make)
    worker.start()
    worker.join()
    [result] = made
    if isinstance(result, Exception):
        raise result
    return result  # type: ignore[no-any-return]


def _put(lake: DataLake, uid: str, text: str) -> File:
    with File(uid, lake=lake).open("w") as handle:
        handle.write(text)
    return File(uid, lake=lake)


def _in_threads(tasks: list[Callable[[], Any]]) -> list[Any]:
    """Run every task in a pool of THREADS threads; each result, or the exception it raised."""

    def guarded(task: Callable[[], Any]) -> Any:
        try:
            return task()
        except Exception as exc:  # noqa: BLE001 - counted by the caller, not lost in a thread
            return exc

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(guarded, tasks))


def _together(count: int, task: Callable[[int], Any]) -> list[Any]:
    """``task(i)`` in ``count`` threads released at the same moment by a barrier."""
    barrier = threading.Barrier(count)

    def released(i: int) -> Any:
        barrier.wait()
        return task(i)

    return _in_threads([lambda i=i: released(i) for i in range(count)])


def _events_of_run(lake: DataLake, run_id: str) -> list[dict[str, Any]]:
    return [e for e in lake.lineage.index.events() if e["run"]["runId"] == run_id]


def _content(file: File) -> str:
    with file.open("r") as handle:
        return str(handle.read())


def test_threads_creating_and_reading_files_each_see_whole_files(
    make_lake: MakeLake, trials: Callable[[int], int]
) -> None:
    """Threads create files at once (File.open("w")), then threads of a fresh machine read each
    of them at once (File.open("r") and DataLake.local_path): every file is whole, verified,
    recorded, and every read gets its bytes."""
    writer, reader = make_lake("writer"), make_lake("reader")
    errors = wrong = unrecorded = uncached = 0
    created = reads = 0
    for trial in range(trials(2)):
        uids = [f"t{trial}/file-{i}.txt" for i in range(3 * THREADS)]
        made = _in_threads([lambda uid=uid: _put(writer, uid, f"bytes of {uid}") for uid in uids])
        errors += sum(isinstance(each, Exception) for each in made)
        created += sum(isinstance(each, File) for each in made)
        for uid in uids:
            creation = writer.lineage.creation_of(uid)
            if creation is None or uid not in radops_facet(creation).get("outputs", []):
                unrecorded += 1
        # Every thread reads every file of a few, the first reads downloading it meanwhile.
        for uid in uids[:3]:
            file = File(uid, lake=reader)

            def read(i: int, uid: str = uid, file: File = file) -> bool:
                if i % 2:
                    return reader.local_path(uid).read_text(encoding="utf-8") == f"bytes of {uid}"
                return _content(file) == f"bytes of {uid}"

            seen = _together(THREADS, read)
            errors += sum(isinstance(each, Exception) for each in seen)
            wrong += sum(each is False for each in seen)
            reads += len(seen)
            stat = reader.local.stat(uid)
            if stat is None or not reader.local.is_trusted(uid, stat):
                uncached += 1
    assert created == trials(2) * 3 * THREADS
    assert reads == trials(2) * 3 * THREADS
    assert (errors, wrong, unrecorded, uncached) == (0, 0, 0, 0)


def test_a_step_mapped_over_fifty_inputs_in_threads_records_every_run(
    make_lake: MakeLake, trials: Callable[[int], int]
) -> None:
    """A thread pool mapping a step over 50 inputs: 50 runs, each output whole, each run one
    valid START and one valid COMPLETE event (indexed, and its record in the lake); mapped
    again, all 50 calls skip."""
    lake = make_lake()
    errors = wrong = bad_runs = not_skipped = 0
    outputs: set[str] = set()
    for trial in range(trials(1)):
        inputs = _in_threads(
            [lambda i=i, t=trial: _put(lake, f"t{t}/in-{i}.txt", f"in {i}") for i in range(50)]
        )
        results = _in_threads([lambda f=f, t=trial: shout(f, t) for f in inputs])
        errors += sum(isinstance(each, Exception) for each in results)
        for i, out in enumerate(results):
            if not isinstance(out, File):
                continue
            outputs.add(out.uid)
            wrong += _content(out) != f"IN {i} {trial}"
            creation = lake.lineage.creation_of(out.uid)
            if creation is None:
                bad_runs += 1
                continue
            events = _events_of_run(lake, creation["run"]["runId"])
            if sorted(e["eventType"] for e in events) != ["COMPLETE", "START"]:
                bad_runs += 1
            for event in events:
                validate_event(event)

        def again(f: File, trial: int = trial) -> str:
            with reporting_calls() as calls:
                shout(f, trial)
            return calls[-1].outcome

        outcomes = _in_threads([lambda f=f: again(f) for f in inputs])
        not_skipped += sum(outcome != "skipped" for outcome in outcomes)
    stored = [
        event
        for name in lake.lineage.records.names()
        if (event := lake.lineage.records.read(name)) is not None
        and function_of(event) == f"{MODULE}.shout"
    ]
    assert len(outputs) == 50 * trials(1)
    assert sorted(e["eventType"] for e in stored) == ["COMPLETE"] * len(outputs)
    assert (errors, wrong, bad_runs, not_skipped) == (0, 0, 0, 0)


@pytest.mark.parametrize("declared", [False, True], ids=["implicit output", "declared output"])
def test_threads_making_the_same_call_at_once_run_it_once(
    make_lake: MakeLake, trials: Callable[[int], int], declared: bool
) -> None:
    """Threads released together into the same call: exactly one runs the function, the
    others wait for it and skip; all return its output, and it has one COMPLETE record."""
    lake = make_lake()
    src = _put(lake, "in.txt", "same")
    step = "copy_to" if declared else "shout"
    with _ran_lock:
        _ran.clear()  # the other remote's run of this test, in the same worker
    executions = errors = disagreements = extra_records = 0
    outcomes: Counter[str] = Counter()
    for trial in range(trials(3)):
        n = 1000 + trial

        def call(i: int, n: int = n) -> tuple[str, list[CallReport]]:
            with reporting_calls() as calls:
                out = copy_to(src, n, output_uid=f"same-{n}.txt") if declared else shout(src, n)
            return out.uid, calls

        results = _together(THREADS, call)
        errors += sum(isinstance(each, Exception) for each in results)
        done = [each for each in results if not isinstance(each, Exception)]
        executions += _runs_of(step, n)
        outcomes.update(calls[-1].outcome for _, calls in done)
        uids = {uid for uid, _ in done}
        disagreements += len(uids) - 1
        [uid] = uids
        records = [
            e
            for e in lake.lineage.index.events()
            if e["eventType"] == "COMPLETE" and uid in radops_facet(e).get("outputs", [])
        ]
        extra_records += len(records) - 1
        for event in records:
            validate_event(event)
    assert executions == trials(3)
    assert outcomes == Counter({"ran": trials(3), "skipped": (THREADS - 1) * trials(3)})
    assert (errors, disagreements, extra_records) == (0, 0, 0)


def test_threads_a_step_starts_with_its_context_make_its_outputs(make_lake: MakeLake) -> None:
    """Outputs made by threads that run in the call's context (asyncio.to_thread) are the
    call's: ten distinct implicit uids, all committed with the call."""
    lake = make_lake()
    from radops.lake import set_default_lake

    set_default_lake(lake)
    try:
        parts = parts_in_threads(7)
    finally:
        set_default_lake(None)
    assert len({part.uid for part in parts}) == 10
    assert sorted(_content(part) for part in parts) == sorted(f"part {i} of 7" for i in range(10))
    [creation] = {
        e["run"]["runId"]: e
        for part in parts
        if (e := lake.lineage.creation_of(part.uid)) is not None
    }.values()
    assert sorted(radops_facet(creation)["outputs"]) == sorted(part.uid for part in parts)


def test_a_plain_thread_inside_a_step_is_outside_the_call(make_lake: MakeLake) -> None:
    """A thread started without the call's context is not in the call: File() there has no
    implicit uid, as outside any step."""
    lake = make_lake()
    from radops.lake import set_default_lake

    set_default_lake(lake)
    try:
        with pytest.raises(ValueError, match="needs a uid outside a file_creator function"):
            file_in_a_plain_thread(1)
    finally:
        set_default_lake(None)


def test_the_shared_fsync_pool_is_bounded(make_lake: MakeLake) -> None:
    """Creations from many threads start no thread of their own: the fsyncs share a pool of
    at most MAX_WORKERS threads."""
    from radops.durable import MAX_WORKERS

    lake = make_lake()
    seen: set[str] = set()

    def create(i: int) -> None:
        _put(lake, f"pool/{i}.txt", hashlib.sha256(str(i).encode()).hexdigest())
        seen.update(t.name for t in threading.enumerate() if t.name.startswith("radops-fsync"))

    results = _in_threads([lambda i=i: create(i) for i in range(4 * THREADS)])
    assert not [each for each in results if isinstance(each, Exception)]
    assert 0 < len(seen) <= MAX_WORKERS
