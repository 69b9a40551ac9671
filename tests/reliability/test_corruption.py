"""``radops datalake verify`` and ``DataLake.verify`` on corrupted bytes, on both remotes."""

from __future__ import annotations

import json
import os
import random
import stat
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from radops.data_lake import File
from radops.errors import IntegrityError, RadopsError
from radops.lake import DataLake
from tests.conftest import MakeLake
from tests.reliability.tally import Tally, Trial

DATA = b"0123456789abcdef" * 64
BASE_ENV: dict[str, str | None] = {
    "COLUMNS": "120",
    "FORCE_COLOR": None,
    "NO_COLOR": None,
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


def run(env: Mapping[str, str | None], *args: str, code: int = 0) -> Result:
    """Invoke ``radops ARGS`` in-process and check the exit code; never an uncaught exception."""
    from radops.cli.app import app

    result = CliRunner().invoke(app, list(args), env={**BASE_ENV, **env})
    detail = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert not isinstance(result.exception, Exception), f"{result.exception!r}\n{detail}"
    assert result.exit_code == code, detail
    assert "Traceback" not in result.output
    return result


def _write(lake: DataLake, uid: str, data: bytes = DATA) -> None:
    with File(uid, lake=lake).open("wb") as handle:
        handle.write(data)


def _read(lake: DataLake, uid: str) -> bytes:
    with File(uid, lake=lake).open("rb") as handle:
        return handle.read()


def _files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if not path.is_dir()) if root.exists() else []


def _flip_byte(path: Path, offset: int, *, keep_mtime: bool = False) -> None:
    """Invert one byte of ``path`` in place, optionally restoring its original times."""
    before = path.stat()
    path.chmod(stat.S_IMODE(before.st_mode) | stat.S_IWUSR)
    with path.open("r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))
    if keep_mtime:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def _corrupt_remote(lake: DataLake, uid: str, request: pytest.FixtureRequest) -> None:
    """Change the bytes of ``uid`` in the lake behind radops' back, keeping its recorded sha256."""
    remote = lake.settings.remote
    if not remote.startswith("s3://"):
        _flip_byte(Path(remote) / uid, offset=3)
        return
    # radops' own client refuses to overwrite (If-None-Match: *); a plain client does not.
    bucket, _, prefix = remote.removeprefix("s3://").partition("/")
    original = lake.head(uid)
    assert original is not None and original.sha256 is not None
    request.getfixturevalue("seaweed").client().put_object(
        Bucket=bucket,
        Key=f"{prefix}/{uid}",
        Body=b"X" * original.size,
        Metadata={"sha256": original.sha256},
    )


def _json_lines(result: Result) -> list[dict[str, object]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.parametrize("keep_mtime", [False, True], ids=["mtime-changed", "mtime-restored"])
def test_a_corrupted_local_copy_is_reported_and_replaced(
    lake: DataLake, cli_env: dict[str, str], keep_mtime: bool
) -> None:
    """A flipped byte in a cached file is found by a full rehash, replaced, and reads right."""
    _write(lake, "cached/data.bin")
    path = lake.local.path("cached/data.bin")
    _flip_byte(path, offset=100, keep_mtime=keep_mtime)
    if keep_mtime:  # the fingerprint cannot see it: only hashing every byte can
        assert lake.local.is_trusted("cached/data.bin", path.stat())
    result = run(cli_env, "datalake", "verify", "cached/data.bin", code=1)
    assert result.stdout == "cached/data.bin  lake ok  local corrupted, replaced\n"
    assert "1 corrupted local copy(ies) replaced" in result.stderr
    assert _read(lake, "cached/data.bin") == DATA
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert run(cli_env, "datalake", "verify", "cached/data.bin").stdout == (
        "cached/data.bin  lake ok  local ok\n"
    )


def test_the_library_reports_a_replaced_local_copy(lake: DataLake) -> None:
    """DataLake.verify returns what it found and did, and leaves no temp file behind."""
    _write(lake, "lib/data.bin")
    _flip_byte(lake.local.path("lib/data.bin"), offset=0, keep_mtime=True)
    result = lake.verify("lib/data.bin")
    assert (result.remote, result.local, result.replaced, result.ok) == (
        "ok",
        "corrupted",
        True,
        False,
    )
    assert lake.local.path("lib/data.bin").read_bytes() == DATA
    assert _files_under(lake.settings.tmp_dir) == []


def test_a_corrupted_lake_object_is_reported_and_never_cached(
    make_lake: MakeLake, cli_env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    """Tampered lake bytes: verify exits 1; a fresh machine's read raises and keeps nothing."""
    writer = make_lake("machine-a")
    _write(writer, "tampered/data.bin")
    _corrupt_remote(writer, "tampered/data.bin", request)
    result = run(cli_env, "datalake", "verify", "tampered/data.bin", "--json", code=1)
    [line] = _json_lines(result)
    assert (line["remote"], line["local"], line["replaced"]) == ("corrupted", "ok", False)
    assert "is corrupted" in result.stderr
    assert _read(writer, "tampered/data.bin") == DATA  # the writer's own copy is sound
    fresh = make_lake("machine-b")
    verified = fresh.verify("tampered/data.bin")
    assert (verified.remote, verified.local) == ("corrupted", "absent")
    with (
        pytest.raises(IntegrityError, match="corrupted"),
        File("tampered/data.bin", lake=fresh).open(),
    ):
        pass
    assert _files_under(fresh.settings.storage_dir) == []
    assert _files_under(fresh.settings.tmp_dir) == []


def test_a_sound_lake_verifies_with_exit_0_and_downloads_nothing(
    make_lake: MakeLake, cli_env: dict[str, str]
) -> None:
    """Every file sound: exit 0, one line each, and files only in the lake stay out of storage."""
    lake = make_lake("machine-a")
    _write(lake, "ok/one.bin")
    _write(make_lake("machine-b"), "ok/two.bin", b"only in the lake")
    result = run(cli_env, "datalake", "verify", "--all")
    assert sorted(result.stdout.splitlines()) == [
        "ok/one.bin  lake ok  local ok",
        "ok/two.bin  lake ok  local absent",
    ]
    assert "verified 2 file(s) in the lake: 2 ok" in result.stderr
    assert [p.name for p in _files_under(lake.settings.storage_dir)] == ["one.bin"]
    assert _files_under(lake.settings.tmp_dir) == []


def test_verify_all_reports_every_file(
    make_lake: MakeLake, cli_env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    """--all checks every file of one listing: sound, local-corrupted and lake-corrupted alike."""
    lake = make_lake("machine-a")
    for uid in ("many/a.bin", "many/b.bin", "many/c.bin", "many/d.bin"):
        _write(lake, uid, uid.encode() * 50)
    _flip_byte(lake.local.path("many/b.bin"), offset=7, keep_mtime=True)
    _corrupt_remote(lake, "many/c.bin", request)
    lake.remove_local("many/c.bin")
    result = run(cli_env, "datalake", "verify", "--all", "--json", code=1)
    found = {line["uid"]: (line["remote"], line["local"]) for line in _json_lines(result)}
    assert found == {
        "many/a.bin": ("ok", "ok"),
        "many/b.bin": ("ok", "corrupted"),
        "many/c.bin": ("corrupted", "absent"),
        "many/d.bin": ("ok", "ok"),
    }
    assert "2 with problems" in result.stderr
    assert _read(lake, "many/b.bin") == b"many/b.bin" * 50
    assert not lake.exists_locally("many/c.bin")


def test_a_missing_uid_and_wrong_arguments(cli_env: dict[str, str]) -> None:
    """A uid the lake lacks is 'missing' (exit 1); UID with --all, or neither, is a usage error."""
    result = run(cli_env, "datalake", "verify", "nowhere.bin", code=1)
    assert result.stdout == "nowhere.bin  lake missing  local absent\n"
    run(cli_env, "datalake", "verify", "nowhere.bin", "--all", code=2)
    run(cli_env, "datalake", "verify", code=2)


def _flip_remote_byte(
    lake: DataLake, uid: str, offset: int, request: pytest.FixtureRequest
) -> None:
    """Invert one byte of ``uid`` in the lake behind radops' back, keeping its metadata."""
    remote = lake.settings.remote
    if not remote.startswith("s3://"):
        _flip_byte(Path(remote) / uid, offset=offset, keep_mtime=True)
        return
    bucket, _, prefix = remote.removeprefix("s3://").partition("/")
    client = request.getfixturevalue("seaweed").client()
    key = f"{prefix}/{uid}"
    found = client.get_object(Bucket=bucket, Key=key)
    body = bytearray(found["Body"].read())
    body[offset] ^= 0xFF
    client.put_object(Bucket=bucket, Key=key, Body=bytes(body), Metadata=found["Metadata"])


def _read_into(trial: Trial, lake: DataLake, uid: str, data: bytes, who: str) -> None:
    """Read ``uid`` on ``lake``: a loss in ``trial`` unless it returns exactly ``data``."""
    try:
        found = _read(lake, uid)
    except (RadopsError, OSError) as exc:
        trial.lose_data(uid, f"{who} cannot read it: {type(exc).__name__}: {exc}")
        return
    if found != data:
        trial.lose_data(uid, f"{who} read {len(found)} bytes that are not the ones written")


def test_random_byte_flips_are_always_detected(
    make_lake: MakeLake,
    request: pytest.FixtureRequest,
    trials: Callable[[int], int],
    report: Callable[..., None],
) -> None:
    """One flipped byte anywhere, in a cached copy or in the lake: never read as good data.

    A flipped local copy (its mtime restored, so only hashing can see it) is found by verify and
    replaced from the lake; a flipped lake object is reported by verify and refused by every read
    that would download it. Each trial counts what it saw; the figures are asserted at the end.
    """
    rng = random.Random(request.node.nodeid)
    writer, reader = make_lake("writer"), make_lake("reader")
    tally = Tally()
    replaced = refused = 0
    for n in range(trials(20)):
        uid = f"flips/{n}.bin"
        data = rng.randbytes(rng.randint(1, 300_000))
        _write(writer, uid, data)
        offset = rng.randrange(len(data))
        where = "local copy" if n % 2 == 0 else "lake object"
        trial = tally.trial(f"trial {n} ({where}, byte {offset} of {len(data)})")
        if where == "local copy":
            _flip_byte(writer.local.path(uid), offset=offset, keep_mtime=True)
            result = writer.verify(uid)
            seen = (result.remote, result.local, result.replaced)
            if seen != ("ok", "corrupted", True):
                trial.fail(f"verify saw (lake, local, replaced) = {seen}")
            replaced += result.replaced
            _read_into(trial, writer, uid, data, "the writer")
        else:
            _flip_remote_byte(writer, uid, offset, request)
            seen_remote = reader.verify(uid).remote
            if seen_remote != "corrupted":
                trial.fail(f"verify saw the flipped lake object as {seen_remote!r}")
            try:
                served = _read(reader, uid)
            except IntegrityError:
                refused += 1
            else:
                trial.lose_data(uid, f"a read served the flipped object ({len(served)} bytes)")
            if reader.exists_locally(uid):
                trial.lose_data(uid, "the flipped object was placed in the reader's storage")
            _read_into(trial, writer, uid, data, "the writer, from its own sound copy,")
        if reader.lineage.creation_of(uid) is None:
            trial.lose_event(uid, "no creation record in the lake")
    report(
        fault="corruption: one random byte flipped",
        remote="s3" if writer.settings.remote.startswith("s3://") else "directory",
        **tally.figures(),
        notes=(
            f"{replaced} flipped local copies (mtime restored) found by verify and replaced "
            f"from the lake; {refused} flipped lake objects reported and never served"
        ),
    )
    assert tally.data_lost == 0, tally.problems()
    assert tally.events_lost == 0, tally.problems()
    assert tally.failures == 0, tally.problems()
