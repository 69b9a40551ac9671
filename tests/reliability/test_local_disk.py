"""A full or read-only RADOPS_HOME: one clear error, no partial file, the lake unchanged.

We run as root, where file modes stop nothing, so the faults are real file systems: each
operation runs in a subprocess inside an unprivileged mount namespace (``unshare --user
--map-root-user --mount``) where RADOPS_HOME is a 1 MiB tmpfs (a real ENOSPC) or a read-only
bind mount of a home that was in use (a real EROFS). The lake (the SeaweedFS bucket or a
directory) stays outside, and is compared before and after from a second machine.

After the operation, still inside the namespace (the mount goes with it), the subprocess lists
what RADOPS_HOME's storage and tmp directories hold.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from radops.data_lake import File
from radops.lake import DataLake
from tests.capabilities import need
from tests.conftest import MakeLake
from tests.local_http import serving_folder
from tests.reliability.tally import Tally, Trial


@pytest.fixture(scope="module", autouse=True)
def _mount_namespaces(request: pytest.FixtureRequest) -> None:
    """Unprivileged user and mount namespaces: skip without them, or fail if required."""
    need(request.config, "userns")


BIG = 2 * 1024 * 1024  # twice the tmpfs: never fits
SMALL_HOME = "1m"

# Runs one operation against RADOPS_HOME, then reports (JSON, last line of stdout) the error it
# raised and every file left in the home's storage and tmp directories.
DRIVER = r"""
import json, os, subprocess, sys
from pathlib import Path

op, uid, source, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
home = Path(os.environ["RADOPS_HOME"])
outcome = {"error": None}
if op.startswith("cli-add"):  # SOURCE is a file or a URL
    done = subprocess.run(
        [sys.executable, "-m", "radops", "datalake", "add", source, uid],
        capture_output=True, text=True,
    )
    outcome["code"], outcome["stderr"] = done.returncode, done.stderr
else:
    from radops.data_lake import File, file_creator

    def write():
        with File(uid).open("wb") as handle:
            for _ in range(size // 65536):
                handle.write(b"x" * 65536)

    @file_creator
    def create(output_uid):
        write()
        return File(output_uid)

    try:
        if op == "write":
            write()
        elif op == "creator":
            create(output_uid=uid)
        elif op == "download":
            with File(uid).open("rb") as handle:
                handle.read()
    except BaseException as exc:
        outcome["error"] = {
            "types": [cls.__name__ for cls in type(exc).__mro__],
            "message": str(exc),
            "errno": getattr(exc, "errno", None),
        }
left = []
for part in ("storage", "tmp"):
    for dirpath, _, files in os.walk(home / part):
        left.extend(os.path.relpath(os.path.join(dirpath, f), home) for f in files)
outcome["left"] = sorted(left)
print(json.dumps(outcome))
"""

FULL = 'mount -t tmpfs -o size={size},mode=0700 tmpfs "$RADOPS_HOME" && exec "$@"'
READ_ONLY = (
    'mount --bind "$RADOPS_HOME" "$RADOPS_HOME" && '
    'mount -o remount,ro,bind "$RADOPS_HOME" && exec "$@"'
)


def _run_in_namespace(
    setup: str, env: dict[str, str], op: str, uid: str, source: str
) -> tuple[dict[str, Any] | None, str]:
    """Run the driver with ``setup`` applied to RADOPS_HOME in a private mount namespace.

    Returns what the driver saw, or None and why the driver itself failed.
    """
    command = [
        "unshare",
        "--user",
        "--map-root-user",
        "--mount",
        "sh",
        "-c",
        setup,
        "sh",
        sys.executable,
        "-c",
        DRIVER,
        op,
        uid,
        source,
        str(BIG),
    ]
    done = subprocess.run(
        command,
        env={**os.environ, "NO_PROXY": "127.0.0.1,localhost", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    detail = f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    if done.returncode != 0 or not done.stdout.strip():
        return None, detail
    outcome: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return outcome, detail


def _lake_state(observer: DataLake) -> tuple[dict[str, str | None], list[str]]:
    """Every object of the lake (uid: sha256) and every lineage record name."""
    objects = {meta.key: meta.sha256 for meta in observer.files()}
    return objects, sorted(observer.lineage.records.names())


def _compare_lake(
    trial: Trial, observer: DataLake, before: tuple[dict[str, str | None], list[str]], op: str
) -> None:
    """The lake as it was: same objects, same bytes, no record gone, no creation recorded.

    A file_creator records its failure (a FAIL record); nothing ever records a creation.
    """
    objects, records = _lake_state(observer)
    for uid, sha256 in before[0].items():
        if objects.get(uid) != sha256:
            trial.lose_data(uid, f"its object changed in the lake ({objects.get(uid)})")
    if appeared := sorted(set(objects) - set(before[0])):
        trial.fail(f"objects appeared in the lake: {appeared}")
    for name in sorted(set(before[1]) - set(records)):
        trial.lose_event(name, "a lineage record disappeared from the lake")
    new = [name for name in records if name not in before[1]]
    kinds = [event["eventType"] for name in new if (event := observer.lineage.records.read(name))]
    if kinds != (["FAIL"] if op == "creator" else []):
        trial.fail(f"new lineage records in the lake: {kinds}")


def _error_problems(outcome: dict[str, Any], op: str, expected: str, home: Path) -> list[str]:
    """What is wrong with the error: one LocalStorageError (an OSError) naming fault and home."""
    if op.startswith("cli-add"):
        lines = outcome["stderr"].strip().splitlines()
        if outcome["code"] != 1 or len(lines) != 1 or not lines[0].startswith("error: "):
            return [f"not one error line and exit 1: exit {outcome['code']}, {outcome['stderr']}"]
        message: str = lines[0]
    else:
        error = outcome["error"]
        if error is None:
            return ["the operation succeeded on a full or read-only home"]
        errno_wanted = errno.ENOSPC if expected == "no space left" else errno.EROFS
        if (
            error["types"][:2] != ["LocalStorageError", "RadopsError"]
            or "OSError" not in error["types"]
            or error["errno"] != errno_wanted
        ):
            return [f"not a LocalStorageError with errno {errno_wanted}: {error}"]
        message = error["message"]
    problems = []
    if expected not in message.lower():
        problems.append(f"the message does not say {expected!r}: {message}")
    if str(home) not in message:
        problems.append(f"the message does not name {home}: {message}")
    return problems


OPERATIONS = ["cli-add", "cli-add-url", "write", "creator", "download"]


@pytest.fixture
def web(tmp_path: Path) -> Iterator[str]:
    """A local HTTP server for ``datalake add URL``: serves ``tmp_path``; yields its base URL."""
    with serving_folder(tmp_path) as url:
        yield url


def _source(op: str, file: Path, web: str) -> str:
    return f"{web}/{file.name}" if op == "cli-add-url" else str(file)


@pytest.fixture
def observer(make_lake: MakeLake) -> DataLake:
    """A second machine, with a home of its own, that looks at the lake before and after."""
    return make_lake("observer")


def _operate(
    trial: Trial, setup: str, env: dict[str, str], op: str, uid: str, source: str, fault: str
) -> dict[str, Any] | None:
    """Run ``op`` on the faulty home; count what is wrong with how it failed."""
    outcome, detail = _run_in_namespace(setup, env, op, uid, source)
    if outcome is None:
        trial.fail(f"the process running {op} failed: {detail}")
        return None
    for problem in _error_problems(outcome, op, fault, Path(env["RADOPS_HOME"])):
        trial.fail(problem)
    return outcome


@pytest.mark.parametrize("op", OPERATIONS)
def test_a_full_local_disk_fails_cleanly(
    op: str,
    tmp_path: Path,
    cli_env: dict[str, str],
    observer: DataLake,
    web: str,
    trials: Any,
    report: Any,
) -> None:
    """ENOSPC under RADOPS_HOME: 'no space left' naming the home, nothing partial, lake as was."""
    home = tmp_path / "small-home"
    home.mkdir()
    source = tmp_path / "big.bin"
    source.write_bytes(b"y" * BIG)
    env = {**cli_env, "RADOPS_HOME": str(home)}
    tally = Tally()
    for n in range(trials(1)):
        trial = tally.trial(f"trial {n}")
        uid = f"disk/full-{n}.bin"
        if op == "download":  # in the lake, written by another machine
            observer.add_file(source, uid)
        before = _lake_state(observer)
        setup = FULL.format(size=SMALL_HOME)
        outcome = _operate(trial, setup, env, op, uid, _source(op, source, web), "no space left")
        if outcome is not None and outcome["left"]:
            trial.fail(f"partial files left in RADOPS_HOME: {outcome['left']}")
        _compare_lake(trial, observer, before, op)
        if left := list(home.iterdir()):  # the tmpfs held everything, and went with it
            trial.fail(f"files written beside the tmpfs: {left}")
        if source.read_bytes() != b"y" * BIG:
            trial.lose_data(str(source), "the source file changed")
    report(
        fault=f"local disk full (ENOSPC): {op}",
        remote=_remote_kind(cli_env),
        **tally.figures(),
        notes="1 MiB tmpfs RADOPS_HOME, 2 MiB file",
    )
    assert tally.data_lost == 0, tally.problems()
    assert tally.events_lost == 0, tally.problems()
    assert tally.failures == 0, tally.problems()


def _remote_kind(env: dict[str, str]) -> str:
    return "s3" if env["RADOPS_REMOTE"].startswith("s3://") else "directory"


def _files(home: Path) -> list[str]:
    return sorted(
        str(path.relative_to(home))
        for part in ("storage", "tmp")
        for path in (home / part).rglob("*")
        if not path.is_dir()
    )


@pytest.mark.parametrize("op", OPERATIONS)
def test_a_read_only_local_disk_fails_cleanly(
    op: str,
    tmp_path: Path,
    cli_env: dict[str, str],
    make_lake: MakeLake,
    observer: DataLake,
    web: str,
    trials: Any,
    report: Any,
) -> None:
    """EROFS under a home in use: 'read-only' naming the home; home and lake as they were."""
    home = tmp_path / "ro-home"
    used = make_lake("ro-home")  # storage, tmp, the indexes: a home that has been in use
    with File("disk/seed.bin", lake=used).open("wb") as handle:
        handle.write(b"seed")
    used.lineage.close()
    used.local.close()
    source = tmp_path / "big.bin"
    source.write_bytes(b"y" * BIG)
    env = {**cli_env, "RADOPS_HOME": str(home)}
    tally = Tally()
    for n in range(trials(1)):
        trial = tally.trial(f"trial {n}")
        uid = f"disk/ro-{n}.bin"
        if op == "download":
            observer.add_file(source, uid)
        before, files = _lake_state(observer), _files(home)
        outcome = _operate(trial, READ_ONLY, env, op, uid, _source(op, source, web), "read-only")
        if outcome is not None and outcome["left"] != files:
            trial.fail(f"the home held {files}, and {outcome['left']} on the read-only mount")
        if _files(home) != ["storage/disk/seed.bin"]:
            trial.fail(f"the home's storage and tmp hold {_files(home)}")
        if used.local.path("disk/seed.bin").read_bytes() != b"seed":
            trial.lose_data("disk/seed.bin", "the home's local copy changed")
        # A file_creator's FAIL record goes to the lake (the local index, a cache, cannot take
        # it on a read-only home: a warning says so).
        _compare_lake(trial, observer, before, op)
    with File("disk/seed.bin", lake=used).open("rb") as handle:  # the home still works
        if handle.read() != b"seed":
            tally.trials[-1].lose_data("disk/seed.bin", "read through radops afterwards")
    report(
        fault=f"local disk read-only (EROFS): {op}",
        remote=_remote_kind(cli_env),
        **tally.figures(),
        notes="read-only bind mount of a RADOPS_HOME in use",
    )
    assert tally.data_lost == 0, tally.problems()
    assert tally.events_lost == 0, tally.problems()
    assert tally.failures == 0, tally.problems()
