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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from radops.cache import LocalStorage
from radops.lake import DataLake
from radops.lineage.index import LineageIndex
from tests.conftest import MakeLake

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
from radops.lineage.index import LineageIndex
state, worker, count, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
index = LineageIndex(state, "lake://concurrency")

def event(i):
    uid = f"w{worker}/{i}"
    return {
        "eventType": "COMPLETE",
        "eventTime": f"2026-01-01T00:00:{i % 60:02d}Z",
        "job": {"name": f"job-{worker}"},
        "run": {"runId": f"run-{worker}-{i}", "facets": {"radops": {"outputs": [uid]}}},
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
    db = sqlite3.connect(path)
    try:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()


def test_processes_creating_files_at_once_lose_nothing(
    make_lake: MakeLake, cli_env: dict[str, str], tmp_path: Path, trials: Any, report: Any
) -> None:
    """8 processes creating files in one home: no 'locked' error, every row in both indexes."""
    lake: DataLake = make_lake("machine-a")  # the home of cli_env
    per_worker = trials(10)
    results = _run_together(
        tmp_path,
        CREATE_FILES,
        lambda n, go: [str(n), str(per_worker), go],
        env=cli_env,
    )
    failures = [(code, err) for code, _, err in results if code != 0 or "locked" in err]
    assert failures == []
    created = sorted(line for _, out, _ in results for line in out.splitlines())
    expected = sorted(
        f"concurrent/{n}/{i}.txt" for n in range(PROCESSES) for i in range(per_worker)
    )
    assert created == expected
    state = lake.settings.state_dir
    assert _integrity(state / "cache.sqlite") == "ok"
    for uid in expected:
        entry = lake.local.entry(uid)
        assert entry is not None, f"{uid} missing from cache.sqlite"
        assert lake.local.is_trusted(uid, lake.local.path(uid).stat())
    index = lake.lineage.index
    assert _integrity(index.path) == "ok"
    missing = [uid for uid in expected if index.creation_of(uid) is None]
    assert missing == [], "creations missing from the lineage index"
    assert sorted(meta.key for meta in lake.files("concurrent/")) == expected
    report(
        fault="SQLite: 8 processes creating files in one RADOPS_HOME",
        remote="s3" if cli_env["RADOPS_REMOTE"].startswith("s3://") else "directory",
        trials=PROCESSES * per_worker,
        failures=0,
        data_lost=0,
        events_lost=len(missing),
        notes="cache.sqlite and lineage index rows checked for every file",
    )


def test_processes_indexing_events_at_once_lose_nothing(
    tmp_path: Path, trials: Any, report: Any
) -> None:
    """8 processes hammering one lineage index (single events and batches): all rows there."""
    state = tmp_path / "state"
    per_worker = trials(200)
    results = _run_together(
        tmp_path, INDEX_EVENTS, lambda n, go: [str(state), str(n), str(per_worker), go]
    )
    assert [(code, err) for code, _, err in results if code != 0 or "locked" in err] == []
    committed = {line for _, out, _ in results for line in out.splitlines()}
    index = LineageIndex(state, "lake://concurrency")
    try:
        assert _integrity(index.path) == "ok"
        rows = {row[0] for row in index.db.execute("SELECT uid FROM outputs")}
        assert committed <= rows and len(committed) >= PROCESSES * per_worker
        assert index.count() == len(rows)
    finally:
        index.close()
    report(
        fault="SQLite: 8 processes writing one lineage index",
        remote="local",
        trials=len(committed),
        failures=0,
        data_lost=0,
        events_lost=len(committed - rows),
        notes="events one per transaction and in batches of 20, reads in between",
    )


def _kill_midway(
    script: str, args: list[str], rng: random.Random, reached: int
) -> tuple[list[str], str]:
    """Run a writer, SIGKILL it once it reported ``reached`` commits; every line it reported."""
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
    assert writer.returncode == -signal.SIGKILL, err
    lines.extend(out.splitlines())  # committed before the kill, still in the pipe
    return lines, err


def test_a_killed_index_writer_leaves_a_sound_index(
    tmp_path: Path, trials: Any, report: Any
) -> None:
    """SIGKILL mid-writes: the index opens, passes integrity_check, has every committed event."""
    rng = random.Random(5)
    count = trials(8)
    state = tmp_path / "state"
    go = tmp_path / "go"
    go.touch()
    committed: set[str] = set()
    for trial in range(count):
        lines, err = _kill_midway(
            INDEX_EVENTS, [str(state), f"{trial}", "-1", str(go)], rng, rng.randint(1, 150)
        )
        assert lines, err
        committed.update(lines)
        index = LineageIndex(state, "lake://concurrency")
        try:
            assert _integrity(index.path) == "ok"
            rows = {row[0] for row in index.db.execute("SELECT uid FROM outputs")}
            assert committed - rows == set(), "committed events lost"
            index.add(  # and it takes writes again
                {
                    "eventType": "START",
                    "eventTime": "2026-01-01T00:00:00Z",
                    "job": {"name": "after"},
                    "run": {"runId": f"after-{trial}"},
                }
            )
        finally:
            index.close()
    report(
        fault="SQLite: lineage index writer SIGKILLed mid-write",
        remote="local",
        trials=count,
        failures=0,
        data_lost=0,
        events_lost=0,
        notes=f"{len(committed)} committed events checked after the kills",
    )


def test_a_killed_cache_writer_leaves_sound_local_storage(
    tmp_path: Path, trials: Any, report: Any
) -> None:
    """SIGKILL while placing files: cache.sqlite is sound, every placed file recorded and whole."""
    rng = random.Random(7)
    count = trials(8)
    home = tmp_path / "home"
    go = tmp_path / "go"
    go.touch()
    placed: set[str] = set()
    for trial in range(count):
        lines, err = _kill_midway(
            PLACE_FILES, [str(home), f"{trial}", "-1", str(go)], rng, rng.randint(1, 60)
        )
        assert lines, err
        placed.update(lines)
        assert _integrity(home / "state" / "cache.sqlite") == "ok"
        local = LocalStorage(home / "storage", home / "state", home / "tmp")
        try:
            for uid in placed:
                entry, stat = local.entry(uid), local.stat(uid)
                assert entry is not None and stat is not None, f"{uid} lost"
                assert local.is_trusted(uid, stat)
            for uid in local.uids():  # placed or not yet recorded: never partial
                assert local.path(uid).read_bytes() == (uid * 500).encode()
        finally:
            local.close()
    report(
        fault="SQLite: cache.sqlite writer SIGKILLed mid-write",
        remote="local",
        trials=count,
        failures=0,
        data_lost=0,
        events_lost=0,
        notes=f"{len(placed)} placed files checked after the kills",
    )
