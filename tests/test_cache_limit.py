"""RADOPS_CACHE_MAX_BYTES: local storage stays under the limit by evicting what is in the lake."""

from __future__ import annotations

import gc

import pytest

from radops.data_lake import DataLake, File
from radops.errors import LocalStorageError
from tests.conftest import MakeLake

SIZE = 400  # bytes per test file


def _content(uid: str) -> bytes:
    return uid.encode().ljust(SIZE, b".")


def _fill_lake(make_lake: MakeLake, count: int) -> list[str]:
    """Write ``count`` files of SIZE bytes from a machine without a limit; return their uids."""
    writer = make_lake("writer")
    uids = [f"cached/f{n}.bin" for n in range(count)]
    for uid in uids:
        with File(uid, lake=writer).open("wb") as handle:
            handle.write(_content(uid))
    return uids


def _read(lake: DataLake, uid: str) -> bytes:
    with File(uid, lake=lake).open("rb") as handle:
        return handle.read()


def _local(lake: DataLake) -> set[str]:
    root = lake.settings.storage_dir
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


def _local_bytes(lake: DataLake) -> int:
    root = lake.settings.storage_dir
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def test_local_storage_stays_under_the_limit(make_lake: MakeLake) -> None:
    """After every download, the bytes in local storage are at most cache_max_bytes."""
    uids = _fill_lake(make_lake, 6)
    reader = make_lake("reader", cache_max_bytes=1000)
    for uid in uids:
        assert _read(reader, uid) == _content(uid)
        assert _local_bytes(reader) <= 1000
    assert len(_local(reader)) == 2
    # Evicted files are still in the lake: reading them again downloads them again.
    assert _read(reader, uids[0]) == _content(uids[0])
    assert _local_bytes(reader) <= 1000


def test_the_least_recently_used_files_are_evicted_first(make_lake: MakeLake) -> None:
    """Eviction removes the file read longest ago, not the one downloaded first."""
    f0, f1, f2, f3, f4 = _fill_lake(make_lake, 5)
    reader = make_lake("reader", cache_max_bytes=3 * SIZE)
    for uid in (f0, f1, f2):
        _read(reader, uid)
    assert _local(reader) == {f0, f1, f2}
    _read(reader, f0)  # f1 is now the least recently used
    _read(reader, f3)
    assert _local(reader) == {f0, f2, f3}
    _read(reader, f2)  # f0 is now the least recently used
    _read(reader, f4)
    assert _local(reader) == {f2, f3, f4}


def test_a_file_open_for_reading_is_not_evicted(make_lake: MakeLake) -> None:
    """While a file is open for reading it stays; once closed it can be evicted again."""
    f0, f1, f2, f3 = _fill_lake(make_lake, 4)
    reader = make_lake("reader", cache_max_bytes=2 * SIZE)
    with File(f0, lake=reader).open("rb") as handle:
        _read(reader, f1)
        _read(reader, f2)  # over the limit: f1 goes, f0 is being read
        assert _local(reader) == {f0, f2}
        assert handle.read() == _content(f0)
    _read(reader, f3)  # f0 is closed and now the least recently used
    assert _local(reader) == {f2, f3}


@pytest.mark.parametrize("end", ["close", "garbage collection"])
def test_a_file_opened_without_with_is_not_evicted_until_closed(
    make_lake: MakeLake, end: str
) -> None:
    """A handle from ``open()`` without ``with`` keeps its file until it is closed or
    collected, like the ``with`` form until its block ends."""
    f0, f1, f2, f3 = _fill_lake(make_lake, 4)
    reader = make_lake("reader", cache_max_bytes=2 * SIZE)
    handle = File(f0, lake=reader).open("rb")
    _read(reader, f1)
    _read(reader, f2)  # over the limit: f1 goes, f0 is being read
    assert _local(reader) == {f0, f2}
    assert handle.read() == _content(f0)
    if end == "close":
        handle.close()
    else:
        with pytest.warns(ResourceWarning):
            del handle
            gc.collect()
    _read(reader, f3)  # f0 is no longer read, and the least recently used
    assert _local(reader) == {f2, f3}


def test_a_file_larger_than_the_limit_is_refused_and_leaves_nothing(make_lake: MakeLake) -> None:
    """A file that can never fit raises LocalStorageError before any byte is stored locally."""
    (uid,) = _fill_lake(make_lake, 1)
    reader = make_lake("reader", cache_max_bytes=SIZE - 1)
    with pytest.raises(LocalStorageError, match="larger than RADOPS_CACHE_MAX_BYTES"):
        _read(reader, uid)
    with pytest.raises(OSError, match=f"{SIZE} bytes"):
        File(uid, lake=reader).download()
    assert _local(reader) == set()
    tmp = reader.settings.tmp_dir
    assert not tmp.exists() or list(tmp.iterdir()) == []


def test_files_written_on_a_limited_machine_are_evicted_but_kept_in_the_lake(
    make_lake: MakeLake,
) -> None:
    """Writing also respects the limit: older written files leave local storage, not the lake."""
    lake = make_lake("limited", cache_max_bytes=2 * SIZE)
    uids = [f"written/{n}.bin" for n in range(4)]
    for uid in uids:
        with File(uid, lake=lake).open("wb") as handle:
            handle.write(_content(uid))
        assert _local_bytes(lake) <= 2 * SIZE
    assert _local(lake) == set(uids[2:])
    assert sorted(meta.key for meta in lake.files()) == uids
    assert _read(lake, uids[0]) == _content(uids[0])


def test_a_written_file_larger_than_the_limit_stays_only_in_the_lake(make_lake: MakeLake) -> None:
    """Writing a file that can never fit locally uploads it and keeps no local copy."""
    lake = make_lake("limited", cache_max_bytes=SIZE - 1)
    with File("big.bin", lake=lake).open("wb") as handle:
        handle.write(_content("big.bin"))
    assert _local(lake) == set()
    assert [meta.key for meta in lake.files()] == ["big.bin"]
    assert lake.head("big.bin").size == SIZE


def test_without_a_limit_nothing_is_evicted(make_lake: MakeLake) -> None:
    """With cache_max_bytes unset, every downloaded file stays in local storage."""
    uids = _fill_lake(make_lake, 4)
    reader = make_lake("reader")
    for uid in uids:
        _read(reader, uid)
    assert _local(reader) == set(uids)
