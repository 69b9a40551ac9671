"""Fault 1: a pipeline killed with SIGKILL at random moments, on both remotes.

Each trial starts ``crash_pipeline`` in a subprocess (small outputs, or one 50 MB output that
goes through S3 multipart), kills it at a random moment of its run, and then checks:

- before any recovery: every object visible in the lake is complete (its bytes match its
  recorded sha256) and every file in local storage matches the lake's sha256;
- the rerun of the same pipeline succeeds: it recovers what the kill left (objects uploaded
  whose creation was never recorded are removed and made again) and skips what was done;
- after the rerun: every object has a COMPLETE creation record, every file a record says
  exists is in the lake, ``datalake repair --dry-run`` finds nothing left to fix, and every
  output holds the right bytes.
"""

from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from radops.lake import CreationState, DataLake
from radops.repair import repair
from radops.settings import Settings
from tests.conftest import TEST_EMAIL, process_env
from tests.reliability import crash_pipeline as pipeline

ROOT = Path(__file__).resolve().parents[2]
SMALL, LARGE = 64 * 1024, 50 * 1024 * 1024
KINDS = {"small": (SMALL, 4, 40), "large": (LARGE, 1, 10)}  # size, calls, default trials


@pytest.fixture
def machine(tmp_path: Path, remote: str, endpoint: str | None) -> Iterator[DataLake]:
    """The test's view of the machine the pipeline runs on (same home, same lake)."""
    settings = Settings.load(
        env={},
        home=tmp_path / "home",
        remote=remote,
        s3_endpoint_url=endpoint,
        email=TEST_EMAIL,
        stale_after=3600.0,  # only a provably dead writer is recovered: nothing by age
    )
    lake = DataLake(settings)
    yield lake
    lake.local.close()


def _env(lake: DataLake) -> dict[str, str]:
    return process_env(lake, stale_after="3600", log_level="WARNING")


def _start(lake: DataLake, trial: int, size: int, calls: int) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.reliability.crash_pipeline",
            str(trial),
            str(size),
            str(calls),
        ],
        cwd=ROOT,
        env=_env(lake),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def _run_to_end(lake: DataLake, trial: int, size: int, calls: int) -> tuple[float, str]:
    """Run the pipeline without killing it; (seconds from ready to exit, stderr)."""
    process = _start(lake, trial, size, calls)
    started = time.monotonic()
    out, err = process.communicate(timeout=240)
    assert process.returncode == 0, err
    assert out.strip() == "done"
    return time.monotonic() - started, err


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _visible_objects_are_whole(lake: DataLake, checked: dict[str, str]) -> None:
    """Every object in the lake has its recorded bytes; every local copy matches the lake."""
    for listed in lake.files():
        meta = lake.head(listed.key)
        if meta is None:
            continue
        assert meta.sha256, f"{listed.key} has no sha256"
        if checked.get(listed.key) != meta.etag:
            scratch = lake.local.temp_path()
            try:
                lake.store.get(listed.key, scratch, meta=meta)  # raises IntegrityError if partial
            finally:
                scratch.unlink(missing_ok=True)
            checked[listed.key] = meta.etag or ""
    for uid in lake.local.uids():
        meta = lake.head(uid)
        assert meta is not None, f"local storage holds {uid}, which is not in the lake"
        assert _sha256(lake.local.path(uid)) == meta.sha256, f"local {uid} differs from the lake"


def _lineage_is_consistent(lake: DataLake, recorded: set[str]) -> int:
    """No object without a COMPLETE record, no record pointing to a missing object.

    ``recorded``: objects already found recorded (a recorded object stays so); updated.
    """
    lake.lineage.sync()
    present = set()
    for listed in lake.files():
        present.add(listed.key)
        if listed.key not in recorded:
            assert lake.creation_state(listed.key) is CreationState.RECORDED, listed.key
            recorded.add(listed.key)
    missing = [uid for uid in lake.lineage.index.live_outputs() if uid not in present]
    assert missing == []
    return len(present)


def _outputs_are_right(lake: DataLake, trial: int, size: int, calls: int) -> None:
    summaries = [pipeline.summary(seed, size) for seed in pipeline.seeds(trial, calls)]
    with lake.file(pipeline.combined_uid(trial)).open("r") as handle:
        assert handle.read() == "".join(summaries)


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_killed_pipeline_leaves_nothing_partial_and_reruns_to_completion(
    machine: DataLake,
    kind: str,
    trials: Callable[[int], int],
    report: Callable[..., None],
) -> None:
    size, calls, default = KINDS[kind]
    count = trials(default)
    rng = random.Random(f"{machine.settings.remote}-{kind}")
    # A full run (trial 0, not counted) gives the window to kill in; kills that come after the
    # run ended do not count as trials, and shrink the window.
    window, _ = _run_to_end(machine, 0, size, calls)
    checked: dict[str, str] = {}
    recorded: set[str] = set()
    killed = late = recovered = 0
    data_lost = events_lost = 0
    trial = 0
    while killed < count:
        trial += 1
        # A loaded machine makes run lengths vary: allow many late kills, but never loop forever.
        assert late <= 5 * count + 10, "the kills keep missing the run: it ends too fast"
        process = _start(machine, trial, size, calls)
        time.sleep(rng.uniform(0, window))
        finished = process.poll() is not None
        process.send_signal(signal.SIGKILL)
        process.communicate()
        if finished:
            late += 1
            window *= 0.7
        else:
            killed += 1

        _visible_objects_are_whole(machine, checked)

        _, stderr = _run_to_end(machine, trial, size, calls)
        recovered += stderr.count("was never recorded")
        try:
            _lineage_is_consistent(machine, recorded)
        except AssertionError:
            events_lost += 1
            raise
        try:
            _outputs_are_right(machine, trial, size, calls)
        except AssertionError:
            data_lost += 1
            raise
    leftover = repair(machine, dry_run=True)
    assert (leftover.abandoned, leftover.lost, leftover.under_way) == ((), (), ())
    swept = repair(machine).swept  # temp files and uploads of killed writers: never visible
    objects = _lineage_is_consistent(machine, set())
    report(
        fault=f"crash (SIGKILL), {kind} outputs",
        remote="s3" if machine.settings.remote.startswith("s3://") else "directory",
        trials=killed,
        failures=0,
        data_lost=data_lost,
        events_lost=events_lost,
        notes=(
            f"{killed} kills mid-run ({late} more after the run ended, not counted); "
            f"{recovered} unrecorded objects recovered by the rerun; {len(swept)} leftovers "
            f"swept by repair; {objects} objects checked"
        ),
    )
