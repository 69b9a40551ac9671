"""File: writing once, reading anywhere, and integrity, on a directory remote and on S3."""

from __future__ import annotations

import gc
import hashlib
import io
import os
import pickle
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import radops
from radops.data_lake import DataLake, File, set_default_lake
from radops.errors import (
    FileExistsInLakeError,
    FileNotInLakeError,
    IntegrityError,
    LocalStorageError,
)
from radops.settings import Settings
from tests.conftest import TEST_EMAIL, MakeLake


def _write(lake: DataLake, uid: str, data: bytes) -> None:
    with File(uid, lake=lake).open("wb") as handle:
        handle.write(data)


def _read(lake: DataLake, uid: str) -> bytes:
    with File(uid, lake=lake).open("rb") as handle:
        return handle.read()


def _files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if not path.is_dir()) if root.exists() else []


def _assert_nothing_local(lake: DataLake) -> None:
    """Neither local storage nor the temp directory of ``lake`` holds any file."""
    assert _files_under(lake.settings.storage_dir) == []
    assert _files_under(lake.settings.tmp_dir) == []


def _flip_byte(path: Path, offset: int = 0) -> None:
    path.chmod(0o644)
    with path.open("r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


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
    client = request.getfixturevalue("seaweed").client()
    client.put_object(
        Bucket=bucket,
        Key=f"{prefix}/{uid}",
        Body=b"tampered bytes of the same size"[: original.size].ljust(original.size, b"!"),
        Metadata={"sha256": original.sha256},
    )


# -- writing and reading ---------------------------------------------------------------------


def test_text_round_trip(make_lake: MakeLake) -> None:
    """Text written with mode 'w' reads back identically, as UTF-8, on this and another machine."""
    lake = make_lake("machine-a")
    text = "héllo wörld\nsecond line: 日本語 🙂\n"
    with File("notes/hello.txt", lake=lake).open("w") as handle:
        handle.write(text)
    with File("notes/hello.txt", lake=lake).open("r") as handle:
        assert handle.read() == text
    with File("notes/hello.txt", lake=make_lake("machine-b")).open() as handle:
        assert handle.read() == text
    assert _read(lake, "notes/hello.txt") == text.encode("utf-8")


def test_binary_round_trip(lake: DataLake) -> None:
    """Bytes written with mode 'wb' read back identically with mode 'rb'."""
    data = bytes(range(256)) * 40 + b"\r\n\x00"
    _write(lake, "bin/all-bytes.bin", data)
    assert _read(lake, "bin/all-bytes.bin") == data


def test_text_mode_honours_the_encoding_argument(lake: DataLake) -> None:
    """open('w', encoding=...) writes in that encoding instead of UTF-8."""
    with File("latin.txt", lake=lake).open("w", encoding="latin-1") as handle:
        handle.write("café")
    assert _read(lake, "latin.txt") == "café".encode("latin-1")
    with File("latin.txt", lake=lake).open("r", encoding="latin-1") as handle:
        assert handle.read() == "café"


def test_unsupported_modes_and_arguments_are_refused(lake: DataLake) -> None:
    """Append/update modes and text arguments in binary mode are errors, and do no I/O."""
    with pytest.raises(ValueError, match="unsupported mode 'a'"):
        File("x", lake=lake).open("a")
    with pytest.raises(ValueError, match=r"unsupported mode 'r\+b'"):
        File("x", lake=lake).open("r+b")
    with (
        pytest.raises(TypeError, match=r"unexpected argument.*encoding"),
        File("x", lake=lake).open("wb", encoding="utf-8"),
    ):
        pass
    assert not lake.settings.home.exists()


def test_reading_a_file_only_the_lake_has_downloads_a_read_only_copy(make_lake: MakeLake) -> None:
    """Another machine reads a file it never wrote: it is downloaded into read-only storage."""
    writer, reader = make_lake("machine-a"), make_lake("machine-b")
    _write(writer, "shared/data.bin", b"from machine a")
    handle = File("shared/data.bin", lake=reader)
    assert not handle.exists_locally()
    assert handle.exists_remotely()
    assert _read(reader, "shared/data.bin") == b"from machine a"
    assert handle.exists_locally()
    local = reader.settings.storage_dir / "shared" / "data.bin"
    assert stat.S_IMODE(local.stat().st_mode) == 0o444
    assert _files_under(reader.settings.tmp_dir) == []


def test_a_written_file_is_kept_read_only_in_local_storage(lake: DataLake) -> None:
    """The writer's own local copy is read-only too."""
    _write(lake, "mine.txt", b"mine")
    path = File("mine.txt", lake=lake).local_path()
    assert path == lake.settings.storage_dir / "mine.txt"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert path.read_bytes() == b"mine"


def test_reading_a_missing_uid_says_it_exists_nowhere(lake: DataLake) -> None:
    """A uid that is neither local nor in the lake raises FileNotInLakeError saying so."""
    handle = File("no/such/file.txt", lake=lake)
    with (
        pytest.raises(FileNotInLakeError, match="does not exist locally or in the data lake"),
        handle.open("r"),
    ):
        pass
    with pytest.raises(FileNotFoundError, match="does not exist locally or in the data lake"):
        handle.download()
    with pytest.raises(FileNotInLakeError, match="does not exist locally or in the data lake"):
        _ = handle.info
    assert not handle.exists_locally()
    assert not handle.exists_remotely()
    _assert_nothing_local(lake)


def test_default_lake_is_used_when_none_is_given(lake: DataLake) -> None:
    """File(uid) without lake= uses the lake set with set_default_lake."""
    set_default_lake(lake)
    try:
        with File("default/used.txt").open("w") as handle:
            handle.write("via the default lake")
        assert File("default/used.txt").lake is lake
    finally:
        set_default_lake(None)
    assert _read(lake, "default/used.txt") == b"via the default lake"


# -- open() without with: a file object, as the built-in open returns ---------------------------


def test_open_without_with_reads_like_the_builtin_open(lake: DataLake) -> None:
    """``File(uid).open("r").read()`` works; the handle is an ordinary file object."""
    _write(lake, "plain.txt", b"one\ntwo\n")
    handle = File("plain.txt", lake=lake).open("r")
    assert isinstance(handle, io.TextIOWrapper)
    assert handle.read() == "one\ntwo\n"
    handle.close()
    assert handle.closed
    binary = File("plain.txt", lake=lake).open("rb")
    assert isinstance(binary, io.BufferedReader)
    assert list(binary) == [b"one\n", b"two\n"]
    binary.close()


def test_a_read_without_with_is_verified_too(make_lake: MakeLake) -> None:
    """A corrupted local copy is replaced before a read without ``with``, as with it."""
    _write(make_lake("machine-a"), "checked.bin", b"0123456789" * 10)
    lake = make_lake("machine-b")
    _flip_byte(File("checked.bin", lake=lake).download(), offset=7)
    handle = File("checked.bin", lake=lake).open("rb")
    assert handle.read() == b"0123456789" * 10
    handle.close()


def test_a_read_handle_that_is_never_closed_is_closed_when_collected(lake: DataLake) -> None:
    """Dropped without close, a read handle is closed by the garbage collector, with the
    ResourceWarning the built-in open gives."""
    _write(lake, "dropped.txt", b"data")
    handle = File("dropped.txt", lake=lake).open("r")
    assert handle.read() == "data"
    with pytest.warns(ResourceWarning, match="unclosed file"):
        del handle
        gc.collect()


def test_open_w_without_with_creates_the_file_when_closed(lake: DataLake) -> None:
    """A write handle used without ``with`` uploads at ``close()``: nothing before."""
    handle = File("later.txt", lake=lake).open("w")
    assert isinstance(handle, io.TextIOWrapper)
    handle.write("written ")
    handle.write("in two parts")
    assert not File("later.txt", lake=lake).exists_remotely()
    assert not File("later.txt", lake=lake).exists_locally()
    handle.close()
    assert handle.closed
    assert _read(lake, "later.txt") == b"written in two parts"
    binary = File("later.bin", lake=lake).open("wb")
    assert isinstance(binary, io.BufferedWriter)
    binary.write(b"\x00\x01")
    binary.close()
    assert _read(lake, "later.bin") == b"\x00\x01"
    _assert_no_temp_files(lake)


def test_a_write_handle_never_closed_leaves_nothing_and_warns(
    lake: DataLake, caplog: pytest.LogCaptureFixture
) -> None:
    """Dropped without close, a write handle is discarded, as when its ``with`` block raises:
    no half-written file in the lake, and a warning says the file was not created."""
    handle = File("abandoned.bin", lake=lake).open("wb")
    handle.write(b"x" * 100_000)
    del handle
    gc.collect()
    assert "abandoned.bin was never closed: it was not created" in caplog.text
    assert not File("abandoned.bin", lake=lake).exists_remotely()
    _assert_nothing_local(lake)
    _write(lake, "abandoned.bin", b"second try")
    assert _read(lake, "abandoned.bin") == b"second try"


def test_a_failed_commit_at_close_leaves_nothing(make_lake: MakeLake) -> None:
    """``close()`` raises the commit's error (here: another machine made the uid) and keeps
    nothing, like the end of a ``with`` block."""
    slow, fast = make_lake("machine-a"), make_lake("machine-b")
    handle = File("raced.txt", lake=slow).open("w")
    handle.write("slow")
    _write(fast, "raced.txt", b"fast")
    with pytest.raises(FileExistsInLakeError, match="already exists"):
        handle.close()
    assert handle.closed
    _assert_nothing_local(slow)


def _assert_no_temp_files(lake: DataLake) -> None:
    assert _files_under(lake.settings.tmp_dir) == []


# -- immutability ----------------------------------------------------------------------------


def test_writing_an_existing_local_uid_is_refused(lake: DataLake) -> None:
    """A uid already in local storage cannot be written again; the file is unchanged."""
    _write(lake, "once.txt", b"first")
    with pytest.raises(FileExistsInLakeError, match="already exists in local storage"):
        _write(lake, "once.txt", b"second")
    with pytest.raises(FileExistsError, match="immutable"):
        _write(lake, "once.txt", b"third")
    assert _read(lake, "once.txt") == b"first"
    assert _files_under(lake.settings.tmp_dir) == []


def test_writing_a_uid_only_the_lake_has_is_refused(make_lake: MakeLake) -> None:
    """A uid another machine created cannot be written, although it is not local here."""
    _write(make_lake("machine-a"), "taken.txt", b"first")
    other = make_lake("machine-b")
    with pytest.raises(FileExistsInLakeError, match="already exists in the data lake"):
        _write(other, "taken.txt", b"second")
    _assert_nothing_local(other)
    assert _read(other, "taken.txt") == b"first"


def test_a_writer_that_loses_a_race_keeps_nothing(make_lake: MakeLake) -> None:
    """If another machine creates the uid while a write is open, that write fails at commit."""
    slow, fast = make_lake("machine-a"), make_lake("machine-b")
    with (
        pytest.raises(FileExistsInLakeError, match="already exists"),
        File("raced.txt", lake=slow).open("wb") as handle,
    ):
        handle.write(b"slow")
        _write(fast, "raced.txt", b"fast")
    _assert_nothing_local(slow)
    assert _read(slow, "raced.txt") == b"fast"


def test_an_exception_inside_the_with_block_leaves_nothing(lake: DataLake) -> None:
    """A write whose block raises creates no local file, no lake object and no temp file."""
    with (
        pytest.raises(RuntimeError, match="interrupted"),
        File("broken/partial.bin", lake=lake).open("wb") as handle,
    ):
        handle.write(b"x" * 100_000)
        raise RuntimeError("interrupted")
    handle = File("broken/partial.bin", lake=lake)
    assert not handle.exists_locally()
    assert not handle.exists_remotely()
    _assert_nothing_local(lake)
    assert list(lake.files()) == []
    _write(lake, "broken/partial.bin", b"second try")
    assert _read(lake, "broken/partial.bin") == b"second try"


def test_creating_a_file_handle_does_no_io(make_lake: MakeLake, remote: str) -> None:
    """File(uid, lake=...) creates no directory, locally or in a directory remote."""
    lake = make_lake("never-used")
    handle = File("some/file.txt", lake=lake)
    assert handle.uid == "some/file.txt"
    assert repr(handle) == "File('some/file.txt')"
    assert not lake.settings.home.exists()
    if not remote.startswith("s3://"):
        assert not Path(remote).exists()


def test_a_handle_sent_to_another_process_is_a_reference(
    make_lake: MakeLake, tmp_path: Path
) -> None:
    """Pickled (to a Dask worker, a multiprocessing pool), a handle carries its uid and its
    lake's remote, never the sender's connections; the receiver uses its own lake there."""
    sender = make_lake("sender")
    _write(sender, "shared.txt", b"made by the sender")
    handle = File("shared.txt", lake=sender)
    assert handle.exists_locally()  # used: its lake holds SQLite connections and locks

    receiver = make_lake("receiver")  # another home on the same remote
    set_default_lake(receiver)
    try:
        received = pickle.loads(pickle.dumps(handle))
        assert received == handle
        assert received.lake is receiver
        with received.open("rb") as copy:
            assert copy.read() == b"made by the sender"

        elsewhere = Settings.load(
            env={},
            home=tmp_path / "elsewhere",
            remote=str(tmp_path / "other-remote"),
            email=TEST_EMAIL,
        )
        other = DataLake(elsewhere)
        with File("shared.txt", lake=other).open("wb") as mine:  # same uid, another lake
            mine.write(b"made in the other lake")
        set_default_lake(other)  # the receiver's default lake is elsewhere
        received = pickle.loads(pickle.dumps(handle))
        assert received.lake.settings.remote == sender.settings.remote
        assert received.lake.settings.home != other.settings.home  # its own local storage
        assert pickle.loads(pickle.dumps(handle)).lake is received.lake  # one per process
        assert _read(received.lake, "shared.txt") == b"made by the sender"
        assert _read(other, "shared.txt") == b"made in the other lake"
    finally:
        set_default_lake(None)


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
def test_one_home_never_serves_the_files_of_two_lakes(lake: DataLake, tmp_path: Path) -> None:
    """Two lakes can each have a file "x": a home that cached one lake's refuses another lake
    (one clear error) instead of passing its cached "x" off as the other's."""
    _write(lake, "x.txt", b"lake one")
    settings = Settings.load(
        env={}, home=lake.settings.home, remote=str(tmp_path / "lake-two"), email=TEST_EMAIL
    )
    with pytest.raises(LocalStorageError, match="one RADOPS_HOME per lake"):
        _read(DataLake(settings), "x.txt")


def test_a_handle_without_a_lake_stays_without_one() -> None:
    """An unbound handle (the default lake, resolved on first use) pickles unbound."""
    received = pickle.loads(pickle.dumps(File("later.txt")))
    assert received.uid == "later.txt"
    assert received._lake is None


def test_uid_is_read_only(lake: DataLake) -> None:
    """A File's uid cannot be reassigned, and no other attribute can be added."""
    handle = File("fixed.txt", lake=lake)
    with pytest.raises(AttributeError):
        handle.uid = "other.txt"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        handle.path = "/tmp/x"  # type: ignore[attr-defined]
    assert handle.uid == "fixed.txt"


# -- state and metadata ------------------------------------------------------------------------


def test_exists_download_and_local_path(make_lake: MakeLake) -> None:
    """exists_locally/exists_remotely track where the file is; download and local_path fetch it."""
    _write(make_lake("machine-a"), "state/f.txt", b"content")
    lake = make_lake("machine-b")
    handle = File("state/f.txt", lake=lake)
    assert (handle.exists_locally(), handle.exists_remotely()) == (False, True)
    path = handle.download()
    assert path == lake.settings.storage_dir / "state" / "f.txt"
    assert path.read_bytes() == b"content"
    assert (handle.exists_locally(), handle.exists_remotely()) == (True, True)
    assert lake.remove_local("state/f.txt")
    assert (handle.exists_locally(), handle.exists_remotely()) == (False, True)
    assert handle.local_path() == path
    assert path.read_bytes() == b"content"


def test_info_reports_size_sha256_creation_and_originator(lake: DataLake) -> None:
    """info gives the size, the sha256 of the content, when and by whom it was created."""
    data = b"some bytes to describe\n" * 100
    before = datetime.now(timezone.utc)
    _write(lake, "described.bin", data)
    info = File("described.bin", lake=lake).info
    assert info.uid == "described.bin"
    assert info.size == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.created is not None
    # S3 keeps whole seconds; allow a little clock skew as well.
    assert (
        before - timedelta(seconds=5)
        <= info.created
        <= datetime.now(timezone.utc) + timedelta(seconds=5)
    )
    assert (info.local, info.remote) == (True, True)
    assert info.lake == lake.store.url
    assert info.metadata["originator"] == TEST_EMAIL
    assert info.metadata["radops-version"] == radops.__version__
    assert info.creation is not None
    assert info.creation["eventType"] == "COMPLETE"
    assert info.creation["run"]["runId"] == info.metadata["radops-run-id"]
    assert info.creation["run"]["facets"]["radops_run"]["outputs"] == ["described.bin"]


def test_a_20_mb_file_round_trips(make_lake: MakeLake) -> None:
    """A file over the 8 MiB multipart threshold is uploaded and downloaded intact."""
    chunks = [os.urandom(1024 * 1024) for _ in range(20)]
    digest = hashlib.sha256(b"".join(chunks)).hexdigest()
    writer = make_lake("machine-a")
    with File("big/20mb.bin", lake=writer).open("wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
    assert File("big/20mb.bin", lake=writer).info.sha256 == digest
    reader = make_lake("machine-b")
    path = File("big/20mb.bin", lake=reader).download()
    assert path.stat().st_size == 20 * 1024 * 1024
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("edit", ["overwrite-start", "overwrite-middle", "truncate", "sparse"])
def test_seeking_while_writing_still_records_the_right_sha256(
    make_lake: MakeLake, edit: str
) -> None:
    """Writes after a seek or a truncate are hashed as the bytes finally on disk."""
    writer = make_lake("machine-a")
    with File("edited.bin", lake=writer).open("wb") as handle:
        handle.write(b"a" * 1000)
        if edit == "overwrite-start":
            handle.seek(0)
            handle.write(b"START")
            expected = b"START" + b"a" * 995
        elif edit == "overwrite-middle":
            handle.seek(500)
            handle.write(b"MIDDLE")
            handle.seek(0, os.SEEK_END)
            handle.write(b"end")
            expected = b"a" * 500 + b"MIDDLE" + b"a" * 494 + b"end"
        elif edit == "truncate":
            handle.truncate(10)
            handle.seek(10)
            handle.write(b"z")
            expected = b"a" * 10 + b"z"
        else:
            handle.seek(2000)
            handle.write(b"!")
            expected = b"a" * 1000 + b"\x00" * 1000 + b"!"
    assert File("edited.bin", lake=writer).info.sha256 == hashlib.sha256(expected).hexdigest()
    assert _read(make_lake("machine-b"), "edited.bin") == expected


# -- integrity ------------------------------------------------------------------------------------


def test_a_corrupted_local_copy_is_downloaded_again(
    make_lake: MakeLake, caplog: pytest.LogCaptureFixture
) -> None:
    """A cached file whose bytes changed is detected, reported, and replaced by the lake's copy."""
    _write(make_lake("machine-a"), "fragile.bin", b"0123456789" * 100)
    lake = make_lake("machine-b")
    path = File("fragile.bin", lake=lake).download()
    _flip_byte(path, offset=42)
    assert path.read_bytes() != b"0123456789" * 100
    assert _read(lake, "fragile.bin") == b"0123456789" * 100
    assert "local copy of fragile.bin is corrupted" in caplog.text
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert File("fragile.bin", lake=lake).local_path().read_bytes() == b"0123456789" * 100


def test_a_corrupted_local_copy_of_a_written_file_is_repaired(lake: DataLake) -> None:
    """The writer's own cached copy is verified as well, and repaired from the lake."""
    _write(lake, "own.txt", b"original content")
    _flip_byte(File("own.txt", lake=lake).local_path(), offset=0)
    assert _read(lake, "own.txt") == b"original content"


def test_a_cached_read_names_the_local_copy(lake: DataLake) -> None:
    """The handle of a cached read is an ordinary file: its name is the local copy's path."""
    _write(lake, "named/data.txt", "é\n".encode())
    with File("named/data.txt", lake=lake).open("r", encoding="utf-8") as handle:
        assert handle.read() == "é\n"
        assert Path(handle.name) == File("named/data.txt", lake=lake).local_path().resolve()


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
@pytest.mark.parametrize("swapped", ["file", "folder"])
def test_a_cached_copy_swapped_for_a_symlink_is_never_read(
    lake: DataLake, tmp_path: Path, swapped: str
) -> None:
    """A symlink put in local storage in place of a cached file (or of its folder), leading to
    an identical file outside, is refused: a read never leaves local storage."""
    _write(lake, "folder/secret.txt", b"same bytes")
    copy = File("folder/secret.txt", lake=lake).local_path()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"same bytes")
    target = copy if swapped == "file" else copy.parent
    target.parent.chmod(0o700)
    if swapped == "file":
        copy.unlink()
        copy.symlink_to(outside / "secret.txt")
    else:
        copy.chmod(0o600)
        copy.unlink()
        target.rmdir()
        target.symlink_to(outside, target_is_directory=True)
    with pytest.raises(LocalStorageError, match="symlink"):
        _read(lake, "folder/secret.txt")


def test_a_corrupted_lake_object_is_refused_and_never_cached(
    make_lake: MakeLake, request: pytest.FixtureRequest
) -> None:
    """Bytes in the lake that no longer match their sha256 raise IntegrityError on download."""
    writer = make_lake("machine-a")
    _write(writer, "tampered/data.bin", b"the original bytes, recorded with their sha256")
    _corrupt_remote(writer, "tampered/data.bin", request)
    reader = make_lake("machine-b")
    with (
        pytest.raises(IntegrityError, match="corrupted"),
        File("tampered/data.bin", lake=reader).open("rb"),
    ):
        pass
    with pytest.raises(IntegrityError, match="corrupted"):
        File("tampered/data.bin", lake=reader).download()
    assert not File("tampered/data.bin", lake=reader).exists_locally()
    _assert_nothing_local(reader)


# -- uids at the edges of the rules ----------------------------------------------------------------


def test_the_longest_segment_round_trips(make_lake: MakeLake) -> None:
    """A uid whose last segment is 255 bytes (the limit) can be written and read anywhere."""
    uid = "long/" + "n" * 251 + ".bin"
    _write(make_lake("machine-a"), uid, b"long name")
    assert _read(make_lake("machine-b"), uid) == b"long name"


def test_uids_that_resemble_radops_bookkeeping_names_coexist(make_lake: MakeLake) -> None:
    """'a' and 'a.json/b' are unrelated uids: writing one never blocks the other."""
    writer = make_lake("machine-a")
    _write(writer, "a", b"plain")
    _write(writer, "a.json/b", b"nested")
    reader = make_lake("machine-b")
    assert _read(reader, "a") == b"plain"
    assert _read(reader, "a.json/b") == b"nested"
