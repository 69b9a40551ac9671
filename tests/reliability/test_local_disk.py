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
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from radops.lake import DataLake
from tests.conftest import MakeLake
from tests.local_http import serving_folder

pytestmark = pytest.mark.skipif(
    shutil.which("unshare") is None, reason="needs unshare (util-linux) for a real tmpfs"
)


@pytest.fixture(scope="module", autouse=True)
def _mount_namespaces() -> None:
    """Skip, saying why, where unprivileged user and mount namespaces are not allowed."""
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "true"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        pytest.skip(f"unshare --user --mount is not permitted here: {probe.stderr.strip()}")


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
) -> dict[str, Any]:
    """Run the driver with ``setup`` applied to RADOPS_HOME in a private mount namespace."""
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
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    outcome: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return outcome


def _lake_state(observer: DataLake) -> tuple[list[str], list[str]]:
    """Every object of the lake (uid, sha256) and every lineage record name."""
    objects = sorted(f"{meta.key} {meta.sha256}" for meta in observer.files())
    return objects, sorted(observer.lineage.records.names())


def _new_events(observer: DataLake, before: list[str]) -> list[dict[str, Any]]:
    _, after = _lake_state(observer)
    new = [name for name in after if name not in before]
    return [event for name in new if (event := observer.lineage.records.read(name)) is not None]


def _check_error(outcome: dict[str, Any], op: str, expected: str, home: Path) -> str:
    """The operation failed with one LocalStorageError (an OSError) naming the fault and home."""
    if op.startswith("cli-add"):
        assert outcome["code"] == 1, outcome
        lines = outcome["stderr"].strip().splitlines()
        assert len(lines) == 1, outcome["stderr"]
        assert "Traceback" not in outcome["stderr"]
        message: str = lines[0]
        assert message.startswith("error: ")
    else:
        error = outcome["error"]
        assert error is not None, "the operation succeeded on a full or read-only home"
        assert error["types"][:2] == ["LocalStorageError", "RadopsError"], error
        assert "OSError" in error["types"]
        assert error["errno"] == (errno.ENOSPC if expected == "no space left" else errno.EROFS)
        message = error["message"]
    assert expected in message.lower(), message
    assert str(home) in message, message
    return message


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
    if op == "download":  # in the lake, written by another machine
        observer.add_file(source, "disk/full-0.bin")
    failures = 0
    count = trials(1)
    for trial in range(count):
        uid = f"disk/full-{trial}.bin"
        if op == "download" and trial:
            observer.add_file(source, uid)
        before = _lake_state(observer)
        outcome = _run_in_namespace(
            FULL.format(size=SMALL_HOME), env, op, uid, _source(op, source, web)
        )
        _check_error(outcome, op, "no space left", home)
        assert outcome["left"] == [], "partial files left in RADOPS_HOME"
        assert _lake_state(observer)[0] == before[0], "the lake's objects changed"
        # A file_creator records its failure (a FAIL record); nothing ever records a creation.
        new = _new_events(observer, before[1])
        assert [event["eventType"] for event in new] == (["FAIL"] if op == "creator" else [])
        assert list(home.iterdir()) == []  # the tmpfs held everything, and went with it
        assert source.stat().st_size == BIG
    report(
        fault=f"local disk full (ENOSPC): {op}",
        remote=_remote_kind(cli_env),
        trials=count,
        failures=failures,
        data_lost=0,
        events_lost=0,
        notes="1 MiB tmpfs RADOPS_HOME, 2 MiB file",
    )


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
    with used.file("disk/seed.bin").open("wb") as handle:
        handle.write(b"seed")
    used.lineage.close()
    used.local.close()
    source = tmp_path / "big.bin"
    source.write_bytes(b"y" * BIG)
    env = {**cli_env, "RADOPS_HOME": str(home)}
    count = trials(1)
    for trial in range(count):
        uid = f"disk/ro-{trial}.bin"
        if op == "download":
            observer.add_file(source, uid)
        before, files = _lake_state(observer), _files(home)
        outcome = _run_in_namespace(READ_ONLY, env, op, uid, _source(op, source, web))
        _check_error(outcome, op, "read-only", home)
        assert outcome["left"] == files == ["storage/disk/seed.bin"]
        assert _lake_state(observer)[0] == before[0], "the lake's objects changed"
        # A file_creator records its failure in the lake (the local index, a cache, cannot
        # take it: a warning says so); nothing ever records a creation.
        new = _new_events(observer, before[1])
        assert [event["eventType"] for event in new] == (["FAIL"] if op == "creator" else [])
    with used.file("disk/seed.bin").open("rb") as handle:  # the home still works
        assert handle.read() == b"seed"
    report(
        fault=f"local disk read-only (EROFS): {op}",
        remote=_remote_kind(cli_env),
        trials=count,
        failures=0,
        data_lost=0,
        events_lost=0,
        notes="read-only bind mount of a RADOPS_HOME in use",
    )
