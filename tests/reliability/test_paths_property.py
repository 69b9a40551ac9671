"""Hostile paths, property-based: nothing outside local storage or the lake is read or written.

tests/test_uids.py checks the uid rules on arbitrary text and that valid uids land where they
should. Here hypothesis builds uids out of the pieces that make paths escape (``..``, ``/``,
backslashes, NUL, ``.radops``, and names planted as symlinks to a directory outside), and runs
them through the library and the CLI — ``datalake add`` with hostile sources, ``--copy`` and
``--move``, ``datalake ls`` with hostile prefixes — on a home and a directory lake salted with
symlinks that lead out, and on a SeaweedFS prefix. After each example the outside directory is
exactly as it was (names, bytes, modes, mtimes), and everything radops made is a regular file
inside local storage or the lake.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from radops.cli.app import app
from radops.data_lake import DataLake, File
from radops.errors import RadopsError
from radops.settings import Settings
from tests.seaweed import SeaweedServer

SECRET = b"outside: must never be read into the lake, nor changed"
PLANTED = "evil"  # in storage and in the lake: a symlink to the outside directory
PLANTED_FILE = "evil.txt"  # a symlink to the outside secret

SEGMENT = st.one_of(
    st.sampled_from(
        [
            "..",
            ".",
            "",
            "a",
            "b.txt",
            PLANTED,
            PLANTED_FILE,
            ".radops",
            "meta",
            "..\\..",
            "%2e%2e",
            "~",
            "a\x00b",
            "\u2024\u2024",  # one-dot leaders, which look like '..'
            "outside",
            "x#1",
        ]
    ),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=6),
)
HOSTILE_UID = st.builds(
    lambda lead, segments: lead + "/".join(segments),
    st.sampled_from(["", "/", "./", "../", "//"]),
    st.lists(SEGMENT, min_size=1, max_size=4),
)

FAST = settings(max_examples=60, deadline=None)


def _snapshot(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every entry under ``root``: (mode, size, mtime_ns, sha256 or link target), no follow."""
    found = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            content = "-> " + os.readlink(path)
        elif stat.S_ISREG(info.st_mode):
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            content = "dir"
        found[str(path.relative_to(root))] = (
            info.st_mode,
            info.st_size,
            info.st_mtime_ns,
            content,
        )
    return found


def _made_by_radops(root: Path, planted: set[str]) -> list[Path]:
    """Entries under ``root`` that are neither directories nor the planted symlinks."""
    return [
        path
        for path in root.rglob("*")
        if str(path.relative_to(root)) not in planted and not path.is_dir()
    ]


class World:
    """A home and a directory lake, each with symlinks planted that lead to ``outside``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.outside = base / "outside"
        self.outside.mkdir()
        (self.outside / "secret.txt").write_bytes(SECRET)
        (self.outside / "hard.txt").write_bytes(SECRET)
        self.home, self.remote, self.work = base / "home", base / "remote", base / "work"
        self.storage = self.home / "storage"
        for root in (self.storage, self.remote, self.work):
            root.mkdir(parents=True)
        for root in (self.storage, self.remote):
            (root / PLANTED).symlink_to(self.outside)
            (root / PLANTED_FILE).symlink_to(self.outside / "secret.txt")
        # Sources for `datalake add`: a plain file, links that lead outside, a relative escape.
        (self.work / "plain.txt").write_bytes(b"plain")
        (self.work / "link.txt").symlink_to(self.outside / "secret.txt")
        os.link(self.outside / "hard.txt", self.work / "hard.txt")
        (self.work / "linkdir").symlink_to(self.outside)
        self.before = _snapshot(self.outside)

    def env(self) -> dict[str, str]:
        return {
            "RADOPS_HOME": str(self.home),
            "RADOPS_REMOTE": str(self.remote),
            "RADOPS_EMAIL": "tester@example.com",
        }

    def check(self) -> None:
        """Outside untouched; every file radops made is a regular file inside its root."""
        assert _snapshot(self.outside) == self.before, "something outside was changed"
        planted = {PLANTED, PLANTED_FILE}
        for root in (self.storage, self.remote, self.home / "tmp"):
            if not root.exists():
                continue
            real_root = os.path.realpath(root)
            for path in _made_by_radops(root, planted):
                assert not path.is_symlink(), f"radops made a symlink: {path}"
                assert os.path.realpath(path).startswith(real_root + os.sep), path
                if path.is_file() and ".radops" not in path.parts:
                    assert SECRET not in path.read_bytes(), f"the secret was read into {path}"


@contextlib.contextmanager
def _world() -> Iterator[World]:
    with tempfile.TemporaryDirectory(prefix="radops-paths-") as base:
        yield World(Path(base))


def _quietly(action: object) -> None:
    """Run ``action``; radops' refusals (and a uid-less handle's ValueError) are fine."""
    assert callable(action)
    with contextlib.suppress(RadopsError, ValueError, FileNotFoundError):
        action()


@FAST
@given(uids=st.lists(HOSTILE_UID, min_size=1, max_size=4))
def test_library_operations_on_hostile_uids_stay_inside(uids: list[str]) -> None:
    """Write, read, inspect, verify, free and delete hostile uids: outside stays untouched."""
    with _world() as world:
        lake = DataLake(Settings.load(env={}, **_settings(world)))
        try:
            for uid in uids:

                def write(uid: str = uid) -> None:
                    with File(uid, lake=lake).open("wb") as handle:
                        handle.write(b"written")

                def read(uid: str = uid) -> None:
                    with File(uid, lake=lake).open("rb") as handle:
                        assert handle.read() == b"written"

                for action in (
                    write,
                    read,
                    lambda uid=uid: File(uid, lake=lake).info,
                    lambda uid=uid: lake.exists_locally(uid),
                    lambda uid=uid: lake.verify(uid),
                    lambda uid=uid: lake.remove_local(uid),
                    read,  # a download, now
                    lambda uid=uid: File(uid, lake=lake).delete(),
                ):
                    _quietly(action)
                world.check()
        finally:
            lake.local.close()


def _settings(world: World) -> dict[str, object]:
    return {"home": world.home, "remote": str(world.remote), "email": "tester@example.com"}


SOURCES = st.sampled_from(
    [
        "plain.txt",  # the only one that may be added
        "link.txt",  # a symlink to the outside secret: its bytes are the user's to add
        "hard.txt",  # a hard link of an outside file
        "../work/plain.txt",  # a relative path that leaves and comes back
        "linkdir",  # a symlink to a directory
        "missing.txt",
        ".",
        "/dev/null",
    ]
)


@FAST
@given(
    source=SOURCES,
    uid=st.one_of(st.sampled_from(["added.txt", "dir/added.bin"]), HOSTILE_UID),
    how=st.sampled_from(["", "--copy", "--move"]),
)
def test_cli_add_with_hostile_sources_and_uids_stays_inside(
    source: str, uid: str, how: str
) -> None:
    """`datalake add SOURCE UID [--copy|--move]`: one clean exit, outside unchanged.

    A source named through a link is the user's to add (its bytes go to the lake and storage,
    as a plain file); moving it removes the name given, never the file outside, and never
    changes that file's mode or times.
    """
    with _world() as world:
        cwd = os.getcwd()
        os.chdir(world.work)
        try:
            args = ["datalake", "add", source, uid, *([how] if how else [])]
            result = CliRunner().invoke(app, args, env=world.env())
        finally:
            os.chdir(cwd)
        assert not isinstance(result.exception, Exception), repr(result.exception)
        assert result.exit_code in (0, 1, 2), result.output
        assert "Traceback" not in result.output
        outside_bytes = source in ("link.txt", "hard.txt")
        if result.exit_code == 0:
            assert source in ("plain.txt", "../work/plain.txt", "link.txt", "hard.txt")
            stored = world.storage / uid
            assert not stored.is_symlink() and stored.is_file()
            assert (world.remote / uid).read_bytes() == stored.read_bytes()
            if outside_bytes:
                # Added on purpose: the only place the secret may be is this uid.
                (world.storage / uid).unlink()
                (world.remote / uid).unlink()
        world.check()


@FAST
@given(prefix=HOSTILE_UID)
def test_cli_ls_with_a_hostile_prefix_lists_only_the_lake(prefix: str) -> None:
    """`datalake ls PREFIX`: only uids of the lake, never what a planted symlink leads to."""
    with _world() as world:
        lake = DataLake(Settings.load(env={}, **_settings(world)))
        try:
            with File("a/b.txt", lake=lake).open("wb") as handle:
                handle.write(b"inside")
        finally:
            lake.local.close()
        result = CliRunner().invoke(app, ["datalake", "ls", prefix], env=world.env())
        assert result.exit_code == 0, result.output
        assert set(result.stdout.split()) <= {"a/b.txt"}
        assert "secret" not in result.output and "hard" not in result.output
        world.check()


@settings(max_examples=40, deadline=None)
@given(uids=st.lists(HOSTILE_UID, min_size=1, max_size=3))
def test_hostile_uids_on_s3_stay_under_the_lake_prefix(
    uids: list[str], seaweed: SeaweedServer
) -> None:
    """On SeaweedFS, whatever the uid, every key written to the bucket is under the prefix.

    The bucket is this example's alone, so a key that escaped the prefix would be listed.
    """
    bucket = f"paths-{uuid.uuid4().hex[:12]}"
    seaweed.create_bucket(bucket)
    with tempfile.TemporaryDirectory(prefix="radops-paths-s3-") as base:
        lake = DataLake(
            Settings.load(
                env={},
                home=Path(base) / "home",
                remote=f"s3://{bucket}/lake/inner",
                s3_endpoint_url=seaweed.endpoint,
                email="tester@example.com",
            )
        )
        try:
            for uid in uids:

                def write(uid: str = uid) -> None:
                    with File(uid, lake=lake).open("wb") as handle:
                        handle.write(b"written")

                def read(uid: str = uid) -> None:
                    with File(uid, lake=lake).open("rb") as handle:
                        assert handle.read() == b"written"

                for action in (write, lambda uid=uid: lake.remove_local(uid), read):
                    _quietly(action)
        finally:
            lake.local.close()
    pages = seaweed.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    assert all(key.startswith("lake/inner/") for key in keys), keys
    for key in keys:
        uid = key.removeprefix("lake/inner/")
        if not uid.startswith(".radops/"):
            assert uid in uids, f"{key} is not the key of a uid that was written"


@FAST
@given(
    prefix=st.one_of(st.sampled_from(["", "raw", "raw/2024/", "a/b"]), HOSTILE_UID),
    directory=st.booleans(),
)
# Found by hypothesis: only the lake's top-level `.radops/` is radops' own; a uid may hold a
# `.radops` segment further down.
@example(prefix="a/.radops", directory=False)
def test_cli_add_under_a_hostile_prefix_stays_inside(prefix: str, directory: bool) -> None:
    """`datalake add SOURCE --prefix PREFIX`: uids under the prefix or nothing; links skipped.

    A directory source holds plain files and symlinks that lead outside (to a file and to a
    directory): the plain files are added under the prefix, the links are never followed.
    """
    with _world() as world:
        tree = world.base / "tree"
        (tree / "sub").mkdir(parents=True)
        (tree / "one.txt").write_bytes(b"one")
        (tree / "sub" / "two.txt").write_bytes(b"two")
        (tree / "secret-link.txt").symlink_to(world.outside / "secret.txt")
        (tree / "sub" / "outside-dir").symlink_to(world.outside)
        source = tree if directory else tree / "one.txt"
        result = CliRunner().invoke(
            app, ["datalake", "add", str(source), "--prefix", prefix], env=world.env()
        )
        assert not isinstance(result.exception, Exception), repr(result.exception)
        assert result.exit_code in (0, 1), result.output
        assert "Traceback" not in result.output
        added = sorted(
            path.relative_to(world.remote).as_posix()
            for path in world.remote.rglob("*")
            if path.is_file()
            and not path.is_symlink()
            and path.relative_to(world.remote).parts[0] != ".radops"
        )
        if result.exit_code == 0:
            folder = prefix.removesuffix("/") + "/" if prefix else ""
            names = ["one.txt", "sub/two.txt"] if directory else ["one.txt"]
            assert added == sorted(folder + name for name in names)
            assert "secret-link.txt" not in result.stdout and "outside-dir" not in result.stdout
        else:
            assert added == [], "a refused prefix adds nothing"
            assert result.output.count("error:") == 1
        world.check()
