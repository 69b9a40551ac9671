"""Several processes creating the same uid at once: exactly one wins, on every remote."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from radops.data_lake import File
from tests.conftest import TEST_EMAIL, MakeLake

WRITERS = 6

# Each child opens the uid for writing (so it has already checked that the uid is free), writes
# its content, says "ready" and waits; the parent releases all of them at once, so every child
# reaches the store's conditional create while the others do.
_CHILD = r"""
import json, sys
from radops.data_lake import DataLake, File
from radops.errors import FileExistsInLakeError
from radops.settings import Settings

home, remote, endpoint, uid, content = sys.argv[1:6]
settings = Settings.load(
    env={}, home=home, remote=remote, s3_endpoint_url=endpoint or None, email=sys.argv[6]
)
lake = DataLake(settings)
try:
    with File(uid, lake=lake).open("wb") as handle:
        handle.write(content.encode())
        print("ready", flush=True)
        sys.stdin.readline()
except FileExistsInLakeError as exc:
    print(json.dumps({"won": False, "error": type(exc).__name__, "message": str(exc)}))
else:
    print(json.dumps({"won": True}))
"""


@pytest.mark.parametrize("homes", ["one home per process", "one shared home"])
def test_concurrent_writers_of_one_uid_exactly_one_wins(
    make_lake: MakeLake, remote: str, endpoint: str | None, tmp_path: Path, homes: str
) -> None:
    """Of six processes creating one uid at the same moment, one succeeds and the rest are told."""
    uid = "race/winner.txt"
    children = []
    for n in range(WRITERS):
        home = tmp_path / (f"writer-{n}" if homes == "one home per process" else "shared")
        args = [str(home), remote, endpoint or "", uid, f"content of writer {n}", TEST_EMAIL]
        children.append(
            subprocess.Popen(
                [sys.executable, "-c", _CHILD, *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=Path(__file__).parent.parent,
            )
        )
    try:
        for child in children:
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line == "ready\n", child.stderr.read() if child.stderr else line
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outcomes = []
        for child in children:
            out, err = child.communicate(timeout=60)
            assert child.returncode == 0, err
            outcomes.append(json.loads(out))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()

    winners = [n for n, outcome in enumerate(outcomes) if outcome["won"]]
    assert len(winners) == 1, outcomes
    losers = [outcome for outcome in outcomes if not outcome["won"]]
    assert {loser["error"] for loser in losers} == {"FileExistsInLakeError"}
    assert all("already exists" in loser["message"] for loser in losers)

    fresh = make_lake("fresh-machine")
    with File(uid, lake=fresh).open("r") as handle:
        assert handle.read() == f"content of writer {winners[0]}"
    assert [meta.key for meta in fresh.files()] == [uid]
    for n in range(WRITERS):
        home = tmp_path / (f"writer-{n}" if homes == "one home per process" else "shared")
        assert not list((home / "tmp").iterdir())
        local = home / "storage" / uid
        if homes == "one home per process":
            assert local.exists() == (n == winners[0])
        else:
            assert local.read_text() == f"content of writer {winners[0]}"
