"""Recovery: what a writer killed between uploading an object and recording it leaves behind.

A creation uploads its objects, then records COMPLETE. An object whose run never recorded it is
not part of the lake: while its writer may still record it, it is under way and waited for;
once the writer is provably dead (a process on this machine) or older than ``stale_after``, it
is abandoned, and the rerun, ``datalake add`` or ``datalake repair`` removes it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from radops import writers
from radops.data_lake import File
from radops.errors import FileExistsInLakeError
from radops.lake import DataLake
from radops.lineage.events import uuid7
from radops.objects import RUN_KEY, CreationState
from radops.repair import repair
from tests.conftest import MakeLake, process_env

ROOT = Path(__file__).resolve().parents[1]


def _dead_writer() -> str:
    """The token of a process of this machine that has ended."""
    child = subprocess.run(
        [sys.executable, "-c", "from radops import writers; print(writers.current())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return child.stdout.strip()


def _unrecorded(lake: DataLake, uid: str, writer: str, data: bytes = b"half made") -> str:
    """Upload ``uid`` as a creation would, without recording it; returns its run id."""
    run_id = str(uuid7())
    tmp = lake.local.temp_path(uid)
    tmp.write_bytes(data)
    import hashlib

    lake.store.put_new(
        tmp,
        uid,
        sha256=hashlib.sha256(data).hexdigest(),
        metadata={RUN_KEY: run_id, writers.WRITER_KEY: writer},
    )
    tmp.unlink()
    return run_id


def run(env: Mapping[str, str], *args: str) -> Result:
    from radops.cli.app import app

    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **env})
    assert not isinstance(result.exception, Exception), repr(result.exception)
    assert result.exit_code == 0, result.output
    return result


def test_an_object_whose_writer_died_unrecorded_is_abandoned(lake: DataLake) -> None:
    _unrecorded(lake, "half.txt", _dead_writer())
    assert lake.creation_state("half.txt") is CreationState.ABANDONED


def test_an_object_whose_writer_is_alive_is_under_way_until_stale(make_lake: MakeLake) -> None:
    lake = make_lake("a")
    run_id = str(uuid7())
    with writers.running(run_id):
        tmp = lake.local.temp_path()
        tmp.write_bytes(b"x")
        lake.store.put_new(
            tmp,
            "busy.txt",
            sha256="2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
            metadata={RUN_KEY: run_id, writers.WRITER_KEY: writers.current()},
        )
        assert lake.creation_state("busy.txt") is CreationState.UNDER_WAY
        assert repair(lake).under_way == ("busy.txt",)
        assert lake.head("busy.txt") is not None
        impatient = make_lake("b", stale_after=0.5)
        time.sleep(1.6)  # S3 times objects to the second
        assert impatient.creation_state("busy.txt") is CreationState.ABANDONED
    # Back in this process, a run that is over and never recorded is abandoned at once.
    assert lake.creation_state("busy.txt") is CreationState.ABANDONED


def test_a_writer_on_another_machine_is_presumed_alive(lake: DataLake) -> None:
    _unrecorded(lake, "remote.txt", "elsewhere:0123abcd:4242:999")
    assert lake.creation_state("remote.txt") is CreationState.UNDER_WAY


def test_repair_removes_abandoned_objects_and_a_dry_run_only_reports(
    lake: DataLake, cli_env: dict[str, str]
) -> None:
    with File("kept.txt", lake=lake).open("w") as handle:
        handle.write("recorded")
    _unrecorded(lake, "half.txt", _dead_writer())

    dry = json.loads(run(cli_env, "datalake", "repair", "--dry-run", "--json").stdout)
    assert dry["abandoned"] == ["half.txt"]
    assert lake.head("half.txt") is not None

    result = run(cli_env, "datalake", "repair")
    assert "removed half.txt: its creation was never recorded" in result.stdout
    assert lake.head("half.txt") is None
    assert lake.head("kept.txt") is not None
    again = json.loads(run(cli_env, "datalake", "repair", "--json").stdout)
    assert (again["abandoned"], again["lost"]) == ([], [])


def test_repair_records_the_loss_of_a_recorded_file_gone_from_the_lake(lake: DataLake) -> None:
    with File("lost.txt", lake=lake).open("w") as handle:
        handle.write("soon gone")
    lake.store.delete("lost.txt")  # behind radops' back
    assert repair(lake).lost == ("lost.txt",)
    assert lake.lineage.creation_of("lost.txt") is None
    assert "lost.txt" not in lake.lineage.index.live_outputs()
    assert repair(lake).lost == ()


def test_add_replaces_an_abandoned_object_but_never_a_recorded_one(
    lake: DataLake, tmp_path: Path
) -> None:
    source = tmp_path / "data.txt"
    source.write_text("the real thing")
    _unrecorded(lake, "data.txt", _dead_writer())
    lake.add_file(source, "data.txt")
    with File("data.txt", lake=lake).open("r") as handle:
        assert handle.read() == "the real thing"
    with pytest.raises(FileExistsInLakeError):
        lake.add_file(source, "data.txt")


_KILLED_BEFORE_RECORDING = r"""
import os, signal, sys
from radops.lineage.recorder import LineageRecorder
from tests.reliability import crash_pipeline as pipeline

emit = LineageRecorder.emit
def emit_or_die(self, creation, state, **kwargs):
    if state == "COMPLETE":  # the outputs are in the lake; the record is not: die right here
        os.kill(os.getpid(), signal.SIGKILL)
    return emit(self, creation, state, **kwargs)
LineageRecorder.emit = emit_or_die
pipeline.run(int(sys.argv[1]), int(sys.argv[2]), 1)
"""


_RERUN = r"""
import sys
from tests.reliability import crash_pipeline as pipeline

pipeline.run(int(sys.argv[1]), int(sys.argv[2]), 1)
"""


@pytest.mark.parametrize("size", [1024, 9 * 1024 * 1024], ids=["small", "multipart"])
def test_a_rerun_recovers_outputs_uploaded_by_a_killed_run(
    lake: DataLake, size: int, tmp_path: Path
) -> None:
    env = process_env(lake)
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_BEFORE_RECORDING, "7", str(size)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    left = [meta.key for meta in lake.files()]
    assert len(left) == 2, "both outputs of the first call were uploaded"
    assert {lake.creation_state(uid) for uid in left} == {CreationState.ABANDONED}

    rerun = subprocess.run(
        [sys.executable, "-c", _RERUN, "7", str(size)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stderr.count("was never recorded") == 2
    assert {lake.creation_state(m.key) for m in lake.files()} == {CreationState.RECORDED}
    from tests.reliability import crash_pipeline as pipeline

    with File(pipeline.combined_uid(7), lake=lake).open("r") as handle:
        assert handle.read() == pipeline.summary(7000, size)
    assert repair(lake, dry_run=True).abandoned == ()
