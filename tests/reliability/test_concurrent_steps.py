"""Fault 2: eight processes running the same pipeline step at the same moment, on both remotes.

The step's two implicit outputs are the same uids in every process (same function, same
parameters) but each process writes different bytes, so the test can tell whose bytes won.
Whatever the interleaving, there must be exactly one object per uid, exactly one COMPLETE
creation record of it, and every process must end up reading that object's bytes; no process
may fail. Then eight processes create 1,000 distinct files between them, from one shared home.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from radops.cache import LocalStorage
from radops.data_lake import File
from radops.lake import DataLake
from radops.lineage.events import function_of
from radops.objects import RUN_KEY
from radops.settings import Settings
from tests.conftest import TEST_EMAIL, process_env
from tests.reliability.tally import Tally, Trial

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


def _together(
    children: list[subprocess.Popen[str]], word: str
) -> list[tuple[dict[str, Any] | None, str]]:
    """Wait until every child says ``word``, release them at once; what each returned.

    Per child: its JSON result, or None if it failed (a failure the trial counts), and its
    stderr.
    """
    try:
        for child in children:
            assert child.stdout is not None and child.stdin is not None
            line = child.stdout.readline()
            assert line == f"{word}\n", (line, child.stderr.read() if child.stderr else "")
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outcomes: list[tuple[dict[str, Any] | None, str]] = []
        for child in children:
            out, err = child.communicate(timeout=240)
            lines = out.strip().splitlines()
            result = json.loads(lines[-1]) if child.returncode == 0 and lines else None
            outcomes.append((result, f"exit {child.returncode}: {err.strip()[-1000:]}"))
        return outcomes
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def _results(trial: Trial, outcomes: list[tuple[dict[str, Any] | None, str]]) -> list[Any]:
    """The results of the processes that succeeded; each one that failed is a problem."""
    results = []
    for n, (result, err) in enumerate(outcomes):
        if result is None:
            trial.fail(f"process {n} failed, which no user would expect: {err}")
        else:
            results.append(result)
    return results


def _completes_of(lake: DataLake, uid: str) -> list[dict[str, Any]]:
    lake.lineage.sync()
    return [
        event
        for event in lake.lineage.index.events()
        if event["eventType"] == "COMPLETE"
        and uid in event["run"]["facets"].get("radops_run", {}).get("outputs", [])
    ]


def _check_race(trial: Trial, observer: DataLake, results: list[dict[str, Any]]) -> None:
    """One object per output, of one winning run, recorded once, read by every process."""
    returned = {tuple(result["uids"]) for result in results}
    if len(returned) > 1:
        trial.fail(f"the processes returned different outputs: {sorted(returned)}")
    for data_uid, summary_uid in returned:
        metas = {uid: observer.head(uid) for uid in (data_uid, summary_uid)}
        for uid, meta in metas.items():
            if meta is None:
                trial.lose_data(uid, "returned by the step, not in the lake")
            elif (seen := observer.verify(uid).remote) != "ok":
                trial.lose_data(uid, f"the lake's object is {seen}")
        data_meta, summary_meta = metas[data_uid], metas[summary_uid]
        if data_meta is None or summary_meta is None or trial.data_lost:
            continue
        run_id = data_meta.metadata.get(RUN_KEY)
        if summary_meta.metadata.get(RUN_KEY) != run_id:
            trial.fail("the two outputs in the lake come from different runs: no one winner")
        with File(summary_uid, lake=observer).open("r") as handle:
            winner_summary = handle.read()
        if winner_summary != data_meta.sha256:
            trial.lose_data(summary_uid, "the summary does not describe the data beside it")
        for n, result in enumerate(results):  # every process reads the winner's bytes
            if result["data_sha256"] != data_meta.sha256:
                trial.lose_data(data_uid, f"process {n} read other bytes than the lake's")
            if result["summary"] != winner_summary:
                trial.lose_data(summary_uid, f"process {n} read another summary")
        for uid in (data_uid, summary_uid):
            runs = [e["run"]["runId"] for e in _completes_of(observer, uid)]
            if run_id not in runs:
                trial.lose_event(uid, f"no COMPLETE record of run {run_id}, which made it")
            if len(runs) > 1:
                trial.fail(f"{uid} has {len(runs)} COMPLETE records: {runs}")
        listed = [m.key for m in observer.files("tests.reliability.race_child.step/")].count(
            data_uid
        )
        if listed != 1:
            trial.fail(f"{data_uid} is listed {listed} times")


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
    tally = Tally()
    for n in range(trials(2 if size == "small" else 1)):
        tag = f"{size}-{barrier}-{n}"
        word = "ready" if barrier == "before" else "staged"
        children = [
            _start(observer, tmp_path / f"{tag}-p{p}", "same", str(SIZES[size]), tag, barrier)
            for p in range(PROCESSES)
        ]
        trial = tally.trial(f"trial {n}")
        _check_race(trial, observer, _results(trial, _together(children, word)))
        for p in range(PROCESSES):  # checked: free their copies (8 x 50 MB per trial)
            shutil.rmtree(tmp_path / f"{tag}-p{p}")
    ran_and_lost = sum(
        event["eventType"] == "ABORT" and function_of(event) == "tests.reliability.race_child.step"
        for event in observer.lineage.index.events()
    )
    report(
        fault=f"concurrency: 8 processes, same step, {size} output, barrier {barrier}",
        remote="s3" if observer.settings.remote.startswith("s3://") else "directory",
        **tally.figures(),
        notes=f"losers that ran the step and settled on the winner's outputs: {ran_and_lost}",
    )
    assert tally.data_lost == 0, tally.problems()
    assert tally.events_lost == 0, tally.problems()
    assert tally.failures == 0, tally.problems()


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
    tally = Tally()
    trial = tally.trial("8 processes")
    created = []  # what the processes that succeeded say they created
    for n, result in enumerate(_results(trial, _together(children, "ready"))):
        if result["created"] != per_process:
            trial.fail(f"process {n} created {result['created']} files, not {per_process}")
        created += [f"many/{i}.txt" for i in range(n * per_process, (n + 1) * per_process)]
    listed = {meta.key for meta in observer.files("many/")}
    shared = attrs.evolve(observer.settings, home=shared_home)
    local = LocalStorage(shared.storage_dir, shared.state_dir, shared.tmp_dir)
    try:
        for uid in created:
            text = f"file {uid.removeprefix('many/').removesuffix('.txt')}\n"
            if uid not in listed:
                trial.lose_data(uid, "created, not in the lake")
            elif (seen := observer.verify(uid).remote) != "ok":
                trial.lose_data(uid, f"the lake's object is {seen}")
            path = local.path(uid)
            if not path.is_file():
                trial.fail(f"{uid}: not in the shared home's local storage")
            elif path.read_text() != text:
                trial.lose_data(uid, "the shared home's local copy has other bytes")
            if observer.lineage.creation_of(uid) is None:
                trial.lose_event(uid, "no creation record")
    finally:
        local.close()
    if unexpected := listed - set(created):
        trial.fail(
            f"{len(unexpected)} objects in the lake nobody created: {sorted(unexpected)[:5]}"
        )
    report(
        fault="concurrency: 8 processes, 1,000 distinct files",
        remote="s3" if observer.settings.remote.startswith("s3://") else "directory",
        **tally.figures(),
        notes=(
            f"{len(created)} files created: each checked in the lake (sha256), in the shared "
            "home's local storage and for its creation record"
        ),
    )
    assert tally.data_lost == 0, tally.problems()
    assert tally.events_lost == 0, tally.problems()
    assert tally.failures == 0, tally.problems()
