"""The embedded SQLite files under concurrent writers and a SIGKILLed process.

Two databases live in ``$RADOPS_HOME/state``: ``cache.sqlite`` (what local storage holds) and
``lineage-<lake>.sqlite`` (the lineage index). Several processes of one machine share them, so
they must take turns without "database is locked" (WAL mode and a busy timeout), and a process
killed in the middle of a write must leave a database that opens, passes ``PRAGMA
integrity_check`` and still has every row whose transaction had committed.

Writers are real processes started together (they wait for a "go" file, so their writes
overlap), each reporting on stdout what it committed, line by line.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from radops.cache import LocalStorage
from radops.errors import RadopsError
from radops.lake import DataLake
from radops.lineage.index import LineageIndex
from tests.conftest import MakeLake
from tests.reliability.tally import Tally, Trial

PROCESSES = 8

_PRELUDE = r"""
import hashlib, os, sys, time
from pathlib import Path

def wait_for(go):
    deadline = time.monotonic() + 60
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            sys.exit("no go file")
        time.sleep(0.005)

def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
"""

# Creates files through the public API: cache.sqlite and the lineage index both take writes.
CREATE_FILES = (
    _PRELUDE
    + r"""
from radops.data_lake import File
worker, count, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
wait_for(go)
for i in range(count):
    uid = f"concurrent/{worker}/{i}.txt"
    with File(uid).open("w") as handle:
        handle.write(uid)
    with File(uid).open("r") as handle:
        assert handle.read() == uid
    say(uid)
"""
)

# Indexes events, one per transaction or in batches, reading between writes.
INDEX_EVENTS = (
    _PRELUDE
    + r"""
import uuid
from radops.lineage.index import LineageIndex
state, worker, count, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
index = LineageIndex(state, "lake://concurrency")

def event(i):
    uid = f"w{worker}/{i}"
    return {
        "eventType": "COMPLETE",
        "eventTime": f"2026-01-01T00:00:{i % 60:02d}Z",
        "job": {"namespace": "test", "name": f"job-{worker}"},
        "run": {
            "runId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"run-{worker}-{i}")),
            "facets": {"radops": {"outputs": [uid]}},
        },
        "padding": "x" * 2000,
    }

wait_for(go)
i = 0
while count < 0 or i < count:
    if i % 4 == 3:  # a batch of 20 in one transaction
        batch = [event(i + k) for k in range(20)]
        index.add_many(batch, records=[f"record-{worker}-{i}"])
        for k in range(20):
            say(f"w{worker}/{i + k}")
        i += 20
    else:
        index.add(event(i))
        say(f"w{worker}/{i}")
        i += 1
    assert index.creation_of(f"w{worker}/{i - 1}") is not None
"""
)

# Places files in local storage and records them in cache.sqlite, as downloads do.
PLACE_FILES = (
    _PRELUDE
    + r"""
from radops.cache import LocalStorage
home, worker, count, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
local = LocalStorage(home / "storage", home / "state", home / "tmp")
wait_for(go)
i = 0
while count < 0 or i < count:
    uid = f"w{worker}/{i}.bin"
    data = (uid * 500).encode()
    tmp = local.temp_path(uid)
    tmp.write_bytes(data)
    local.place(tmp, uid, hashlib.sha256(data).hexdigest(), None)
    say(uid)
    i += 1
"""
)


def _start(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env={**os.environ, "NO_PROXY": "127.0.0.1,localhost", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run_together(
    tmp_path: Path, script: str, args: Callable[[int, str], list[str]], **kwargs: Any
) -> list[tuple[int, str, str]]:
    """Start PROCESSES writers, release them at once; (exit code, stdout, stderr) of each."""
    go = tmp_path / f"go-{time.monotonic_ns()}"
    workers = [_start(script, *args(n, str(go)), **kwargs) for n in range(PROCESSES)]
    time.sleep(0.5)  # let every interpreter start and wait at the line
    go.touch()
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        results.append((worker.returncode, out, err))
    return results


def _integrity(path: Path) -> str:
    """``PRAGMA integrity_check``'s answer: ``ok``, or what is wrong."""
    try:
        db = sqlite3.connect(path)
        try:
            return str(db.execute("PRAGMA integrity_check").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error as exc:
        return f"{type(exc).__name__}: {exc}"


def _worker_problems(results: list[tuple[int, str, str]]) -> dict[int, str]:
    """Per writer that failed or met "database is locked": what it said."""
    return {
        n: f"writer {n} exited {code}: {err.strip()[-1000:]}"
        for n, (code, _, err) in enumerate(results)
        if code != 0 or "locked" in err
    }


def test_processes_creating_files_at_once_lose_nothing(
    make_lake: MakeLake, cli_env: dict[str, str], tmp_path: Path, trials: Any, report: Any
) -> None:
    """8 processes creating files in one home: no 'locked' error, every row in both indexes.

    A trial is one file: created, whole in local storage and trusted by cache.sqlite, in the
    lake, and its creation in the lineage index.
    """
    lake: DataLake = make_lake("machine-a")  # the home of cli_env
    per_worker = trials(10)
    results = _run_together(
        tmp_path,
        CREATE_FILES,
        lambda n, go: [str(n), str(per_worker), go],
        env=cli_env,
    )
    failed = _worker_problems(results)
    created = {line for _, out, _ in results for line in out.splitlines()}
    state = lake.settings.state_dir
    index = lake.lineage.index
    checks = {"cache.sqlite": _integrity(state / "cache.sqlite"), "index": _integrity(index.path)}
    listed = {meta.key for meta in lake.files("concurrent/")}
    tally = Tally()
    for n in range(PROCESSES):
        for i in range(per_worker):
            uid = f"concurrent/{n}/{i}.txt"
            trial = tally.trial(uid)
            if uid not in created:
                trial.fail(f"never created: {failed.get(n, 'its writer did not say')}")
                continue
            path = lake.local.path(uid)
            if not path.is_file() or path.read_text() != uid:
                trial.lose_data(uid, "its local copy is missing or wrong")
            elif lake.local.entry(uid) is None:
                trial.fail("missing from cache.sqlite")
            elif not lake.local.is_trusted(uid, path.stat()):
                trial.fail("cache.sqlite does not trust its local copy")
            if uid not in listed:
                trial.lose_data(uid, "not in the lake")
            if index.creation_of(uid) is None:
                trial.lose_event(uid, "its creation is missing from the lineage index")
        if n in failed:  # a writer that made all its files but failed or met a lock anyway
            tally.trials[-1].fail(failed[n])
    for name, answer in checks.items():
        if answer != "ok":
            tally.trials[0].fail(f"integrity_check of {name}: {answer}")
    report(
        fault="SQLite: 8 processes creating files in one RADOPS_HOME",
        remote="s3" if cli_env["RADOPS_REMOTE"].startswith("s3://") else "directory",
        **tally.figures(),
        notes=(
            "cache.sqlite and lineage index rows checked for every file; integrity_check "
            + ", ".join(f"{name} {answer}" for name, answer in checks.items())
        ),
    )
    assert tally.data_lost == 0, tally.problems()
    assert tally.events_lost == 0, tally.problems()
    assert tally.failures == 0, tally.problems()


def test_processes_indexing_events_at_once_lose_nothing(
    tmp_path: Path, trials: Any, report: Any
) -> None:
    """8 processes hammering one lineage index (single events and batches): all rows there.

    A trial is one event a writer had to commit (or committed beyond, finishing a batch).
    """
    state = tmp_path / "state"
    per_worker = trials(200)
    results = _run_together(
        tmp_path, INDEX_EVENTS, lambda n, go: [str(state), str(n), str(per_worker), go]
    )
    failed = _worker_problems(results)
    committed = {line for _, out, _ in results for line in out.splitlines()}
    index = LineageIndex(state, "lake://concurrency")
    try:
        check = _integrity(index.path)
        rows = {row[0] for row in index.db.execute("SELECT uid FROM outputs")}
        counted = index.count()
    finally:
        index.close()
    tally = Tally()
    due = {f"w{n}/{i}" for n in range(PROCESSES) for i in range(per_worker)}
    for key in sorted(due | committed):
        trial = tally.trial(key)
        if key not in committed:
            trial.fail(f"never committed: {failed.get(int(key[1:].split('/')[0]), 'no error')}")
        elif key not in rows:
            trial.lose_event(key, "committed, not in the index")
    if failed:
        tally.trials[-1].fail("; ".join(failed.values()))
    if check != "ok" or counted != len(rows):
        tally.trials[0].fail(f"integrity_check {check}; {counted} events for {len(rows)} outputs")
    report(
        fault="SQLite: 8 processes writing one lineage index",
        remote="local",
        **tally.figures(),
        notes=(
            "events one per transaction and in batches of 20, reads in between; "
            f"integrity_check {check}"
        ),
    )
    assert tally.data_lost == 0, tally.problems()
    assert tally.events_lost == 0, tally.problems()
    assert tally.failures == 0, tally.problems()


def _kill_midway(
    script: str, args: list[str], rng: random.Random, reached: int
) -> tuple[list[str], int, str]:
    """Run a writer, SIGKILL it once it reported ``reached`` commits.

    Returns every line it reported, its exit code (``-SIGKILL`` unless it ended first) and its
    stderr.
    """
    writer = _start(script, *args)
    assert writer.stdout is not None
    lines: list[str] = []
    while len(lines) < reached:
        line = writer.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
    # A little later, so the kill lands at any point of a transaction, not just after one.
    time.sleep(rng.uniform(0, 0.02))
    writer.send_signal(signal.SIGKILL)
    out, err = writer.communicate(timeout=60)
    lines.extend(out.splitlines())  # committed before the kill, still in the pipe
    return lines, writer.returncode, err


def _killed(trial: Trial, lines: list[str], code: int, err: str) -> None:
    """The writer was running, and had committed something, when it was killed."""
    if code != -signal.SIGKILL:
        trial.fail(f"the writer ended by itself (exit {code}) before the kill: {err[-1000:]}")
    elif not lines:
        trial.fail(f"the writer committed nothing before the kill: {err[-1000:]}")


def test_a_killed_index_writer_leaves_a_sound_index(
    tmp_path: Path, trials: Any, report: Any
) -> None:
    """SIGKILL mid-writes: the index opens, passes integrity_check, has every committed event."""
    rng = random.Random(5)
    state = tmp_path / "state"
    go = tmp_path / "go"
    go.touch()
    committed: set[str] = set()
    tally = Tally()
    for n in range(trials(8)):
        reached = rng.randint(1, 150)
        trial = tally.trial(f"kill {n} after {reached} commits")
        lines, code, err = _kill_midway(
            INDEX_EVENTS, [str(state), f"{n}", "-1", str(go)], rng, reached
        )
        _killed(trial, lines, code, err)
        committed.update(lines)
        try:
            index = LineageIndex(state, "lake://concurrency")
        except (sqlite3.Error, RadopsError) as exc:
            trial.fail(f"the index does not open: {exc}")
            continue
        try:
            if (check := _integrity(index.path)) != "ok":
                trial.fail(f"integrity_check: {check}")
            rows = {row[0] for row in index.db.execute("SELECT uid FROM outputs")}
            for key in sorted(committed - rows):
                trial.lose_event(key, "committed before the kill, not in the index")
            index.add(  # and it takes writes again
                {
                    "eventType": "START",
                    "eventTime": "2026-01-01T00:00:00Z",
                    "job": {"namespace": "test", "name": "after"},
                    "run": {"runId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"after-{n}"))},
                }
            )
        except (sqlite3.Error, RadopsError) as exc:
            trial.fail(f"the index fails after the kill: {type(exc).__name__}: {exc}")
        finally:
            index.close()
    report(
        fault="SQLite: lineage index writer SIGKILLed mid-write",
        remote="local",
        **tally.figures(),
        notes=f"{len(committed)} committed events checked after the kills",
    )
    assert tally.data_lost == 0, tally.problems()
    assert tally.events_lost == 0, tally.problems()
    assert tally.failures == 0, tally.problems()


def test_a_killed_cache_writer_leaves_sound_local_storage(
    tmp_path: Path, trials: Any, report: Any
) -> None:
    """SIGKILL while placing files: cache.sqlite is sound, every placed file recorded and whole."""
    rng = random.Random(7)
    home = tmp_path / "home"
    go = tmp_path / "go"
    go.touch()
    placed: set[str] = set()
    tally = Tally()
    for n in range(trials(8)):
        reached = rng.randint(1, 60)
        trial = tally.trial(f"kill {n} after {reached} files")
        lines, code, err = _kill_midway(
            PLACE_FILES, [str(home), f"{n}", "-1", str(go)], rng, reached
        )
        _killed(trial, lines, code, err)
        placed.update(lines)
        if (check := _integrity(home / "state" / "cache.sqlite")) != "ok":
            trial.fail(f"integrity_check: {check}")
        try:
            local = LocalStorage(home / "storage", home / "state", home / "tmp")
        except (sqlite3.Error, RadopsError) as exc:
            trial.fail(f"cache.sqlite does not open: {exc}")
            continue
        try:
            for uid in sorted(placed):
                entry, stat = local.entry(uid), local.stat(uid)
                if entry is None or stat is None:
                    trial.lose_data(uid, "placed before the kill, gone from local storage")
                elif not local.is_trusted(uid, stat):
                    trial.fail(f"{uid}: placed, no longer trusted by cache.sqlite")
            for uid in local.uids():  # placed or not yet recorded: never partial
                if local.path(uid).read_bytes() != (uid * 500).encode():
                    if uid in placed:
                        trial.lose_data(uid, "placed before the kill, its bytes changed")
                    else:
                        trial.fail(f"{uid}: a partial file is visible in local storage")
        finally:
            local.close()
    report(
        fault="SQLite: cache.sqlite writer SIGKILLed mid-write",
        remote="local",
        **tally.figures(),
        notes=f"{len(placed)} placed files checked after the kills",
    )
    assert tally.data_lost == 0, tally.problems()
    assert tally.events_lost == 0, tally.problems()
    assert tally.failures == 0, tally.problems()
