"""Fault 2: eight processes running the same pipeline step at the same moment, on both remotes.

The step's two implicit outputs are the same uids in every process (same function, same
parameters) but each process writes different bytes, so the test can tell whose bytes won.
Whatever the interleaving, there must be exactly one object per uid, exactly one COMPLETE
creation record of it, and every process must end up reading that object's bytes; no process
may fail. Then eight processes create 1,000 distinct files between them, from one shared home.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from radops.lake import DataLake
from radops.lineage.events import function_of
from radops.settings import Settings
from tests.conftest import TEST_EMAIL, process_env

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 8
SIZES = {"small": 4096, "50MB": 50 * 1024 * 1024}


@pytest.fixture
def observer(tmp_path: Path, remote: str, endpoint: str | None) -> Iterator[DataLake]:
    """A machine that only looks at the lake the processes write to."""
    lake = DataLake(
        Settings.load(
            env={},
            home=tmp_path / "observer",
            remote=remote,
            s3_endpoint_url=endpoint,
            email=TEST_EMAIL,
        )
    )
    yield lake
    lake.local.close()


def _start(lake: DataLake, home: Path, *args: str) -> subprocess.Popen[str]:
    env = process_env(lake, home, log_level="WARNING")
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.race_child", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _together(children: list[subprocess.Popen[str]], word: str) -> list[dict[str, Any]]:
    """Wait until every child says ``word``, release them at once, collect their results."""
    try:
        for child in children:
            assert child.stdout is not None and child.stdin is not None
            line = child.stdout.readline()
            assert line == f"{word}\n", (line, child.stderr.read() if child.stderr else "")
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        results = []
        for child in children:
            out, err = child.communicate(timeout=240)
            assert child.returncode == 0, err  # no error a user would not expect
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def _completes_of(lake: DataLake, uid: str) -> list[dict[str, Any]]:
    lake.lineage.sync()
    return [
        event
        for event in lake.lineage.index.events()
        if event["eventType"] == "COMPLETE"
        and uid in event["run"]["facets"].get("radops_run", {}).get("outputs", [])
    ]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("barrier", ["before", "inside"])
@pytest.mark.parametrize("size", sorted(SIZES))
def test_eight_processes_running_one_step_end_with_one_object_and_one_record(
    observer: DataLake,
    tmp_path: Path,
    size: str,
    barrier: str,
    trials: Callable[[int], int],
    report: Callable[..., None],
) -> None:
    count = trials(2 if size == "small" else 1)
    for trial in range(count):
        tag = f"{size}-{barrier}-{trial}"
        word = "ready" if barrier == "before" else "staged"
        children = [
            _start(observer, tmp_path / f"{tag}-p{n}", "same", str(SIZES[size]), tag, barrier)
            for n in range(PROCESSES)
        ]
        results = _together(children, word)

        uids = {tuple(result["uids"]) for result in results}
        assert len(uids) == 1, "every process returns the same outputs"
        data_uid, summary_uid = uids.pop()
        data_meta, summary_meta = observer.head(data_uid), observer.head(summary_uid)
        assert data_meta is not None and summary_meta is not None
        # One winner: both objects come from the same process and run.
        assert data_meta.metadata["radops-run-id"] == summary_meta.metadata["radops-run-id"]
        with observer.file(summary_uid).open("r") as handle:
            winner_summary = handle.read()
        assert winner_summary == data_meta.sha256, "the summary describes the data beside it"
        for result in results:  # every process reads the winner's bytes
            assert result["data_sha256"] == data_meta.sha256
            assert result["summary"] == winner_summary
        for uid in (data_uid, summary_uid):
            completes = _completes_of(observer, uid)
            assert [e["run"]["runId"] for e in completes] == [data_meta.metadata["radops-run-id"]]
        assert [m.key for m in observer.files("tests.reliability.race_child.step/")].count(
            data_uid
        ) == 1
    ran_and_lost = sum(
        event["eventType"] == "ABORT" and function_of(event) == "tests.reliability.race_child.step"
        for event in observer.lineage.index.events()
    )
    report(
        fault=f"concurrency: 8 processes, same step, {size} output, barrier {barrier}",
        remote="s3" if observer.settings.remote.startswith("s3://") else "directory",
        trials=count,
        failures=0,
        data_lost=0,
        events_lost=0,
        notes=f"losers that ran the step and settled on the winner's outputs: {ran_and_lost}",
    )


@pytest.mark.timeout(600)
def test_eight_processes_create_a_thousand_distinct_files(
    observer: DataLake, tmp_path: Path, report: Callable[..., None]
) -> None:
    per_process = 1000 // PROCESSES
    shared_home = tmp_path / "shared-home"  # one machine: local state is shared too
    children = [
        _start(observer, shared_home, "distinct", str(n * per_process), str(per_process))
        for n in range(PROCESSES)
    ]
    results = _together(children, "ready")
    assert sum(result["created"] for result in results) == 1000
    listed = {meta.key for meta in observer.files("many/")}
    assert listed == {f"many/{n}.txt" for n in range(1000)}
    unverified = [uid for uid in sorted(listed) if not observer.verify(uid).ok]
    assert unverified == []
    recorded = {uid for uid in listed if observer.lineage.creation_of(uid) is not None}
    assert recorded == listed
    report(
        fault="concurrency: 8 processes, 1,000 distinct files",
        remote="s3" if observer.settings.remote.startswith("s3://") else "directory",
        trials=1,
        failures=0,
        data_lost=1000 - len(listed),
        events_lost=len(listed) - len(recorded),
        notes="all present, all verified by sha256, each with its creation record",
    )
