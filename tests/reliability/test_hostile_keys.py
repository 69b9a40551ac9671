"""Hostile keys and writers: what anyone who can write to the lake, or a neighbour on the same
host, can put in radops' way, on SeaweedFS and on the directory remote.

- **keys** radops would never make, planted beside radops' own files with boto3 or plain file
  writes: an OSC title sequence with BEL and a screen clear, a C1 CSI, DEL, a newline, a
  carriage return, a tab, ``#``, a bidi override (a valid uid, but not printable), and invalid
  UTF-8 (directory only: S3 keys are UTF-8; SeaweedFS also folds ``//`` and refuses ``..``);
- **metadata and lineage** with the same characters in their values (an e-mail, a job name,
  parameters, an output name), and a lineage consumer whose refusal says them;
- **FIFOs** where radops would open a file: ``../../fifo``-style uids that leave local storage
  or the lake, and a FIFO in place of a cached file, of a lake object or of its metadata;
- **a writer in another PID namespace** (``unshare --user --map-root-user --pid --fork``),
  alive between its upload and its record, and one that died there.

Each command must end with exit code 0, 1 or 2 and no traceback, write no raw control byte on
stdout or stderr (a terminal acts on them), list the bad keys escaped and go on with the rest
of the lake; nothing may block on a FIFO; the live writer's upload is never removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from radops.cli.app import app
from radops.data_lake import File
from radops.errors import FileNotInLakeError, InvalidUidError
from radops.lake import DataLake
from tests.conftest import MakeLake

ROOT = Path(__file__).resolve().parents[2]

# Bytes that must never reach a terminal raw: ESC, BEL, DEL, C1 CSI and a bidi override (as
# UTF-8), and a carriage return.
RAW = {
    "ESC": b"\x1b",
    "BEL": b"\x07",
    "DEL": b"\x7f",
    "CSI": "\x9b".encode(),
    "RLO": "\u202e".encode(),
    "CR": b"\r",
}
OSC_TITLE = "\x1b]0;pwned\x07\x1b[2J"  # sets the window title, then clears the screen
BIDI = "bidi\u202etxt.exe"  # a valid uid that reads "bidiexe.txt" on a terminal
KEYS = [
    f"evil{OSC_TITLE}.txt",
    "pfx/a#b",
    "c1\x9b31m.txt",
    "del\x7f.txt",
    "two\nlines.txt",
    "over\rwritten.txt",
    "tab\tx.txt",
    BIDI,
]
DIRECTORY_NAMES = [b"bad\xffname.txt"]  # not UTF-8: a file name S3 cannot hold


def _env(env: Mapping[str, str]) -> dict[str, str | None]:
    return {
        "COLUMNS": "200",
        "FORCE_COLOR": None,
        "NO_COLOR": None,
        "TTY_COMPATIBLE": None,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        **env,
    }


def invoke(env: Mapping[str, str], *args: str, code: int = 0) -> Result:
    """``radops ARGS``: exit ``code``, no traceback, no raw control byte on stdout or stderr."""
    result = CliRunner().invoke(app, list(args), env=_env(env))
    detail = f"radops {args!r}\nstdout: {result.stdout_bytes!r}\nstderr: {result.stderr_bytes!r}"
    assert not isinstance(result.exception, Exception), f"{result.exception!r}\n{detail}"
    assert result.exit_code == code, detail
    for stream in (result.stdout_bytes, result.stderr_bytes):
        assert b"Traceback" not in stream, detail
        for name, raw in RAW.items():
            assert raw not in stream, f"raw {name} in the output of {detail}"
    return result


def _s3(lake: DataLake, request: pytest.FixtureRequest) -> tuple[Any, str, str]:
    """(a plain boto3 client, bucket, key prefix) of an S3 lake."""
    bucket, _, prefix = lake.settings.remote.removeprefix("s3://").partition("/")
    return request.getfixturevalue("seaweed").client(), bucket, f"{prefix}/"


def plant(lake: DataLake, request: pytest.FixtureRequest) -> list[str]:
    """Put every hostile key of this remote in the lake, without radops; return the keys."""
    if lake.settings.remote.startswith("s3://"):
        client, bucket, prefix = _s3(lake, request)
        for key in KEYS:
            client.put_object(Bucket=bucket, Key=prefix + key, Body=b"planted")
        return list(KEYS)
    root = Path(lake.settings.remote)
    keys = list(KEYS)
    for key in KEYS:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"planted")
    for name in DIRECTORY_NAMES:
        with open(os.path.join(os.fsencode(root), name), "wb") as handle:
            handle.write(b"planted")
        keys.append(os.fsdecode(name))
    return keys


def write(lake: DataLake, uid: str, text: str = "sound") -> None:
    with lake.file(uid).open("w") as handle:
        handle.write(text)


# -- FIFOs --------------------------------------------------------------------------------------


@contextlib.contextmanager
def fifo_trap(path: Path, patience: float = 5.0) -> Iterator[list[str]]:
    """A FIFO at ``path`` for the block; yields a list naming every reader that blocked on it.

    Opening a FIFO to read waits for a writer. After ``patience`` seconds a thread opens it
    to write whenever someone waits on it (which releases the reader, who reads nothing) and
    notes it in the list; the test then fails instead of hanging.
    """
    os.mkfifo(path)
    caught: list[str] = []
    done = threading.Event()

    def release() -> None:
        if done.wait(patience):
            return
        while not done.is_set():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:  # ENXIO: nobody is reading
                if exc.errno != errno.ENXIO:
                    raise
                time.sleep(0.05)
                continue
            caught.append(f"a reader blocked on {path}")
            os.close(fd)

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    try:
        yield caught
    finally:
        done.set()
        thread.join()
    assert Path(path).is_fifo(), "the FIFO was removed or replaced"


def _leaving_uids(lake: DataLake, fifo: Path) -> list[str]:
    """uids that lead from local storage or the lake's directory to ``fifo``."""
    uids = ["../../fifo", "a/../../../fifo", str(fifo), "../fifo", "./../../fifo"]
    for root in (lake.local.root, Path(lake.settings.remote)):
        if not lake.settings.remote.startswith("s3://") or root == lake.local.root:
            uids.append(os.path.relpath(fifo, root))
    return uids


def test_uids_that_lead_to_a_fifo_are_refused_before_any_path(
    lake: DataLake, tmp_path: Path
) -> None:
    """Every library entry point refuses a uid leading out of local storage or the lake with
    InvalidUidError before it opens, stats or removes anything: the FIFO is never opened."""
    write(lake, "real.txt")  # local storage and the lake exist
    fifo = tmp_path / "fifo"
    tmp = tmp_path / "dest.bin"
    with fifo_trap(fifo) as caught:
        for uid in _leaving_uids(lake, fifo):
            entry_points = {
                "File": lambda uid=uid: File(uid, lake=lake),
                "open_for_reading": lambda uid=uid: lake.open_for_reading(uid, "rb").__enter__(),
                "local_path": lambda uid=uid: lake.local_path(uid),
                "exists_locally": lambda uid=uid: lake.exists_locally(uid),
                "download": lambda uid=uid: lake.download(uid),
                "verify": lambda uid=uid: lake.verify(uid),
                "remove_local": lambda uid=uid: lake.remove_local(uid),
                "head": lambda uid=uid: lake.head(uid),
                "delete": lambda uid=uid: lake.delete(uid),
                "ensure_absent": lambda uid=uid: lake.ensure_absent(uid),
                "local.open_trusted": lambda uid=uid: lake.local.open_trusted(uid),
                "local.path": lambda uid=uid: lake.local.path(uid),
                "local.stat": lambda uid=uid: lake.local.stat(uid),
                "local.remove": lambda uid=uid: lake.local.remove(uid),
                "store.head": lambda uid=uid: lake.store.head(uid),
                "store.get": lambda uid=uid: lake.store.get(uid, tmp),
                "store.delete": lambda uid=uid: lake.store.delete(uid),
            }
            for name, call in entry_points.items():
                with pytest.raises(InvalidUidError, match="invalid uid"):
                    call()
                assert caught == [], f"{name}({uid!r}) opened the FIFO"
    assert not tmp.exists()
    assert lake.head("real.txt") is not None


def test_the_cli_refuses_uids_that_lead_to_a_fifo(
    lake: DataLake, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """Every command that takes a uid ends at once with one escaped `error: invalid uid` line."""
    write(lake, "real.txt")
    with fifo_trap(tmp_path / "fifo") as caught:
        for uid in _leaving_uids(lake, tmp_path / "fifo"):
            for command in ("info", "download", "local-path", "verify", "rm-local", "lineage"):
                refused = invoke(cli_env, "datalake", command, uid, code=1)
                assert refused.stderr.startswith("error: invalid uid "), refused.stderr
            invoke(cli_env, "datalake", "rm", uid, "-y", code=1)
            invoke(cli_env, "datalake", "add", str(tmp_path / "fifo"), uid, code=1)
        assert caught == []


def test_a_fifo_in_place_of_a_cached_file_is_replaced_by_the_lake_copy(
    make_lake: MakeLake,
) -> None:
    """A FIFO where local storage keeps a file is not that file: reads, verify and ls do not
    wait on it, and a read replaces it with the verified copy from the lake."""
    write(make_lake("machine-a"), "data/planted.txt", "from the lake")
    other = make_lake("machine-b")
    (other.local.root / "data").mkdir(parents=True)
    with fifo_trap(other.local.root / "data" / "planted.txt") as caught:
        assert not other.exists_locally("data/planted.txt")
        result = other.verify("data/planted.txt")
        assert (result.remote, result.local) == ("ok", "absent")
        assert caught == []
    # The trap is gone (its check passed): the same FIFO again, now read through.
    path = other.local.root / "data" / "planted.txt"
    path.unlink()
    os.mkfifo(path)
    with other.file("data/planted.txt").open("r") as handle:
        assert handle.read() == "from the lake"
    assert path.is_file() and not path.is_fifo()


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
def test_a_fifo_in_a_directory_lake_is_no_object(lake: DataLake, cli_env: dict[str, str]) -> None:
    """A FIFO under a key of a directory lake, or in place of an object's metadata, is never
    waited on: it is no object, and an object without its metadata is unverifiable."""
    write(lake, "sound.txt")
    root = Path(lake.settings.remote)
    meta = root / ".radops" / "meta" / "sound.txt"
    meta.unlink()
    with fifo_trap(root / "pipe.txt") as caught, fifo_trap(meta) as caught_meta:
        assert lake.head("pipe.txt") is None
        with pytest.raises(FileNotInLakeError):
            lake.store.get("pipe.txt", lake.local.temp_path())
        with pytest.raises(FileNotInLakeError):
            File("pipe.txt", lake=lake).open("rb").__enter__()
        head = lake.head("sound.txt")
        assert head is not None and head.sha256 is None
        assert invoke(cli_env, "datalake", "ls").stdout.splitlines() == ["sound.txt"]
        verified = invoke(cli_env, "datalake", "verify", "--all").stdout
        assert verified.startswith("sound.txt  lake unverifiable")
        invoke(cli_env, "datalake", "repair")
        assert caught == caught_meta == []
