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
import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

from radops.data_lake import File
from radops.errors import IntegrityError, RadopsError
from radops.lake import DataLake
from radops.objects import CreationState
from radops.repair import repair
from radops.settings import Settings
from tests.conftest import TEST_EMAIL, process_env
from tests.reliability import crash_pipeline as pipeline
from tests.reliability.tally import Tally, Trial

ROOT = Path(__file__).resolve().parents[2]
SMALL, LARGE = 64 * 1024, 50 * 1024 * 1024
KINDS = {"small": (SMALL, 4, 40), "large": (LARGE, 1, 10)}  # size, calls, default trials


@attrs.frozen
class Rerun:
    """A run of the pipeline that was not killed."""

    seconds: float  # from ready to exit
    outputs: list[str] | None  # the uids it returned, None if it failed
    stderr: str
    code: int


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


def _run_to_end(lake: DataLake, trial: int, size: int, calls: int) -> Rerun:
    """Run the pipeline without killing it."""
    process = _start(lake, trial, size, calls)
    started = time.monotonic()
    out, err = process.communicate(timeout=240)
    lines = out.splitlines()
    done = process.returncode == 0 and len(lines) >= 2 and lines[-1] == "done"
    return Rerun(
        seconds=time.monotonic() - started,
        outputs=json.loads(lines[-2]) if done else None,
        stderr=err,
        code=process.returncode,
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _visible_objects_are_whole(trial: Trial, lake: DataLake, checked: dict[str, str]) -> None:
    """Every object in the lake has its recorded bytes; every local copy matches the lake."""
    for listed in lake.files():
        meta = lake.head(listed.key)
        if meta is None:
            continue
        if not meta.sha256:
            trial.fail(f"{listed.key} is in the lake without a sha256")
            continue
        if checked.get(listed.key) != meta.etag:
            scratch = lake.local.temp_path()
            try:
                lake.store.get(listed.key, scratch, meta=meta)  # raises IntegrityError if partial
                checked[listed.key] = meta.etag or ""
            except IntegrityError as exc:
                trial.lose_data(listed.key, f"a partial object is visible in the lake: {exc}")
            finally:
                scratch.unlink(missing_ok=True)
    for uid in lake.local.uids():
        meta = lake.head(uid)
        if meta is None:
            trial.fail(f"local storage holds {uid}, which is not in the lake")
        elif _sha256(lake.local.path(uid)) != meta.sha256:
            trial.lose_data(uid, "the local copy differs from the lake's object")


def _lineage_is_consistent(trial: Trial, lake: DataLake, recorded: set[str]) -> int:
    """No object without a COMPLETE record, no record pointing to a missing object.

    ``recorded``: objects already found recorded (a recorded object stays so); updated.
    Returns how many objects the lake holds.
    """
    lake.lineage.sync()
    present = set()
    for listed in lake.files():
        present.add(listed.key)
        if listed.key not in recorded:
            state = lake.creation_state(listed.key)
            if state is CreationState.RECORDED:
                recorded.add(listed.key)
            else:
                trial.lose_event(listed.key, f"an object of the lake is {state.name}")
    for uid in lake.lineage.index.live_outputs():
        if uid not in present:
            trial.lose_data(uid, "recorded as created, missing from the lake")
    return len(present)


def _outputs_are_right(
    trial: Trial, lake: DataLake, outputs: list[str], expected: list[bytes]
) -> None:
    """Every output the rerun returned holds the bytes its parameters call for."""
    for uid, data in zip(outputs, expected, strict=True):
        try:
            with File(uid, lake=lake).open("rb") as handle:
                found = handle.read()
        except (RadopsError, OSError) as exc:
            trial.lose_data(uid, f"cannot be read: {type(exc).__name__}: {exc}")
            continue
        if found != data:
            trial.lose_data(uid, f"holds {len(found)} bytes that are not the right ones")


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
    # run ended do not count as trials (nothing to recover), and shrink the window.
    first = _run_to_end(machine, 0, size, calls)
    assert first.outputs is not None, f"the pipeline fails without any fault:\n{first.stderr}"
    window = first.seconds
    tally = Tally()
    checked: dict[str, str] = {}
    recorded: set[str] = set()
    late = recovered = 0
    run = 0
    while len(tally.trials) < count:
        run += 1
        # A loaded machine makes run lengths vary: allow many late kills, but never loop forever.
        assert late <= 5 * count + 10, "the kills keep missing the run: it ends too fast"
        process = _start(machine, run, size, calls)
        time.sleep(rng.uniform(0, window))
        finished = process.poll() is not None
        process.send_signal(signal.SIGKILL)
        process.communicate()
        if finished:
            late += 1
            window *= 0.7
            continue
        trial = tally.trial(f"kill {len(tally.trials)} (run {run})")
        _visible_objects_are_whole(trial, machine, checked)

        rerun = _run_to_end(machine, run, size, calls)
        recovered += rerun.stderr.count("was never recorded")
        if rerun.outputs is None:
            trial.fail(f"the rerun failed (exit {rerun.code}): {rerun.stderr[-2000:]}")
        else:
            _outputs_are_right(trial, machine, rerun.outputs, pipeline.expected(run, size, calls))
            for uid in rerun.outputs:  # checked: free local storage (50 MB a run, 100s of runs)
                machine.remove_local(uid)
        _lineage_is_consistent(trial, machine, recorded)
    leftover = repair(machine, dry_run=True)
    swept = repair(machine).swept  # temp files and uploads of killed writers: never visible
    final = tally.trials[-1]  # what the last trial left, once repair has run too
    objects = _lineage_is_consistent(final, machine, set())
    for what, uids in (
        ("abandoned", leftover.abandoned),
        ("lost", leftover.lost),
        ("under way", leftover.under_way),
    ):
        if uids:
            final.fail(f"repair --dry-run finds {len(uids)} {what}: {sorted(uids)[:5]}")
    report(
        fault=f"crash (SIGKILL), {kind} outputs",
        remote="s3" if machine.settings.remote.startswith("s3://") else "directory",
        **tally.figures(),
        notes=(
            f"{len(tally.trials)} kills mid-run ({late} more after the run ended, not counted); "
            f"{recovered} unrecorded objects recovered by the rerun; {len(swept)} leftovers "
            f"swept by repair; {objects} objects checked"
        ),
    )
    assert tally.data_lost == 0, tally.problems()
    assert tally.events_lost == 0, tally.problems()
    assert tally.failures == 0, tally.problems()
