"""Many files at once: ``DataLake.add_files`` / ``datalake add DIR`` and ``DataLake.prefetch`` /
``datalake download PREFIX``, on both remotes.

An add is one creation (one run whose outputs are all the files): all of them or none, each a
conditional create, each recorded so that ``info``, ``lineage`` and skips work per uid. A fetch
downloads concurrently, verifies each file and leaves trusted local copies alone.
"""

from __future__ import annotations

import gc
import hashlib
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from radops.bulk import run_all
from radops.cli.app import app
from radops.data_lake import File
from radops.errors import FileExistsInLakeError, FileNotInLakeError
from radops.lake import DataLake
from radops.lineage.naming import ADD_JOB
from radops.objects import RUN_KEY, CreationState
from radops.repair import repair
from tests.conftest import MakeLake, process_env
from tests.s3_proxy import S3Proxy
from tests.seaweed import SeaweedServer
from tests.test_cli import error_line, machine, run, storage
from tests.test_s3_native import without_boto3


def make_tree(root: Path, count: int, size: int = 4096, seed: str = "") -> dict[str, bytes]:
    """``count`` files of ``size`` bytes under ``root`` (some in a subfolder): their contents
    by path relative to ``root``."""
    contents = {}
    for i in range(count):
        rel = f"part-{i % 3}/f{i:04d}.bin" if i % 2 else f"f{i:04d}.bin"
        data = hashlib.sha256(f"{seed}{i}".encode()).digest() * (size // 32)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        contents[rel] = data
    return contents


def pairs(root: Path, contents: dict[str, bytes], prefix: str) -> list[tuple[Path, str]]:
    return [(root / rel, f"{prefix}/{rel}") for rel in sorted(contents)]


@pytest.fixture
def s3_proxy(seaweed: SeaweedServer) -> Iterator[S3Proxy]:
    """The S3 requests lakes send through it, by operation, whichever client sends them."""
    proxy = S3Proxy(seaweed.endpoint)
    try:
        yield proxy
    finally:
        proxy.stop()


class Tally:
    """A :class:`radops.bulk.FilesProgress` that keeps, per phase, what it was told."""

    def __init__(self, on_begin: Any = None) -> None:
        self.phases: dict[str, dict[str, Any]] = {}
        self._current = ""
        self._lock = threading.Lock()
        self._on_begin = on_begin

    def begin(self, phase: str, files: int, size: int | None) -> None:
        self._current = phase
        self.phases[phase] = {"files": files, "size": size, "bytes": 0, "done": 0}
        if self._on_begin is not None:
            self._on_begin(phase)

    def __call__(self, n: int) -> None:
        with self._lock:
            self.phases[self._current]["bytes"] += n

    def file_done(self) -> None:
        with self._lock:
            self.phases[self._current]["done"] += 1


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    root = tmp_path / "tree"
    return root, make_tree(root, 60)


def test_add_files_makes_every_file_one_recorded_creation(
    lake: DataLake, make_lake: MakeLake, tree: tuple[Path, dict[str, bytes]]
) -> None:
    """Every file is in the lake with its bytes, and each uid's creation is the same run."""
    root, contents = tree
    metas = lake.add_files(pairs(root, contents, "bulk"))
    assert [meta.key for meta in metas] == [uid for _, uid in pairs(root, contents, "bulk")]
    reader = make_lake("reader")
    runs = set()
    for rel, data in contents.items():
        uid = f"bulk/{rel}"
        event = reader.lineage.creation_of(uid)
        assert event is not None, uid
        runs.add(event["run"]["runId"])
        assert reader.creation_state(uid) is CreationState.RECORDED
        assert File(uid, lake=reader).local_path().read_bytes() == data
        assert lake.exists_locally(uid)  # the adding machine keeps its copies
    assert len(runs) == 1
    assert {meta.metadata[RUN_KEY] for meta in metas} == runs


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
def test_a_directory_too_large_for_one_record_is_split_into_runs_each_under_the_limit(
    make_lake: MakeLake, tmp_path: Path
) -> None:
    """Files with uids near the 1,024-byte limit fill a record fast: the add is split into
    several runs, each record under the 4 MiB limit that readers enforce, and every file is
    recorded by one of them (the record size, not the store, decides: one remote suffices)."""
    from radops.lineage.validate import RECORD_MAX_BYTES

    folder = "/".join(f"{n}" * 240 for n in range(1, 5))  # 4 segments of 240 bytes
    root = tmp_path / "tree"
    root.mkdir()
    files = []
    for i in range(1600):
        source = root / f"f{i:04d}"
        source.write_bytes(b"%d" % i)
        files.append((source, f"{folder}/f{i:04d}"))
    lake = make_lake("adder")
    lake.add_files(files)
    reader = make_lake("reader")
    runs: Counter[str] = Counter()
    for _, uid in files:
        event = reader.lineage.creation_of(uid)
        assert event is not None, uid
        runs[event["run"]["runId"]] += 1
    assert len(runs) >= 2, "one record would have passed the limit"
    assert sum(runs.values()) == len(files)
    sizes = [
        len(raw)
        for name in reader.lineage.records.names()
        if (raw := reader.store.get_record(name)) is not None
    ]
    assert len(sizes) >= len(runs)
    assert max(sizes) < RECORD_MAX_BYTES
    assert File(files[-1][1], lake=reader).local_path().read_bytes() == b"1599"


def test_add_files_refuses_all_if_any_uid_is_taken(
    lake: DataLake, tree: tuple[Path, dict[str, bytes]]
) -> None:
    """One uid that exists means nothing of the directory is added."""
    root, contents = tree
    first = sorted(contents)[7]
    lake.add_file(root / first, f"bulk/{first}")
    with pytest.raises(FileExistsInLakeError, match=r"1 of the files already exist.*nothing added"):
        lake.add_files(pairs(root, contents, "bulk"))
    assert [meta.key for meta in lake.files()] == [f"bulk/{first}"]


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
@pytest.mark.parametrize(
    ("make_bad", "message"),
    [
        (lambda path: None, "does not exist"),
        (lambda path: path.mkdir(), "is not a regular file"),
        (
            lambda path: path.symlink_to(path.parent / "nowhere"),
            "does not exist (a symbolic link to nothing)",
        ),
    ],
    ids=["missing", "a folder", "a broken link"],
)
def test_add_files_refuses_all_if_any_source_is_not_a_file(
    lake: DataLake, tree: tuple[Path, dict[str, bytes]], make_bad: Any, message: str
) -> None:
    """Every source is checked before anything is copied: one bad one adds nothing."""
    root, contents = tree
    bad = root / "bad.bin"
    make_bad(bad)
    given = [*pairs(root, contents, "bulk"), (bad, "bulk/bad.bin")]
    with pytest.raises(FileNotFoundError) as raised:
        lake.add_files(given)
    assert str(raised.value) == f"{bad} {message}"
    assert list(lake.files()) == []
    assert not any(lake.exists_locally(uid) for _, uid in given)


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
def test_local_storage_says_which_uids_it_holds_as_one_at_a_time_would(
    lake: DataLake, tree: tuple[Path, dict[str, bytes]]
) -> None:
    """The folder-at-a-time check of a bulk add answers what a check of each uid answers."""
    root, contents = tree
    kept = sorted(contents)[1:5]  # the first uid asked of their folder is not held
    lake.add_files([(root / rel, f"held/{rel}") for rel in kept])
    lake.add_file(root / kept[0], "top.bin")
    asked = [
        *(f"held/{rel}" for rel in sorted(contents)),  # a few held, most not, same folders
        "top.bin",
        "nowhere/deep/f.bin",
        "nowhere/g.bin",
        "top.bin/under-a-file.bin",
        "absent.bin",
    ]
    held = lake.local.held(asked)
    assert held == [uid for uid in asked if lake.exists_locally(uid)]
    assert held == [*(f"held/{rel}" for rel in kept), "top.bin"]


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
def test_a_folder_removed_while_files_are_placed_in_bulk_is_made_again(lake: DataLake) -> None:
    """A bulk transfer makes each folder of local storage once; if the folder goes meanwhile
    (its last file removed), the next file placed there makes it again."""
    sha256 = hashlib.sha256(b"x").hexdigest()
    with lake.local.batched():
        for name in ("a.bin", "b.bin"):
            tmp = lake.local.temp_path(name)
            tmp.write_bytes(b"x")
            placed = lake.local.place(tmp, f"folder/{name}", sha256, None)
            assert placed.read_bytes() == b"x"
            lake.local.remove(f"folder/{name}")  # the folder's last file: the folder goes too
            assert not placed.parent.exists()


def test_an_upload_lost_midway_takes_back_every_file_of_the_add(
    make_lake: MakeLake, tree: tuple[Path, dict[str, bytes]]
) -> None:
    """When another machine creates one of the uids once the uploads began, the add fails
    and removes what it uploaded: the directory is all or nothing."""
    root, contents = tree
    adder, other = make_lake("adder"), make_lake("other")
    intruder = f"bulk/{sorted(contents)[-1]}"

    def race(phase: str) -> None:
        if phase == "uploading":
            other.add_file(root / sorted(contents)[-1], intruder)

    with pytest.raises(FileExistsInLakeError, match="already exists"):
        adder.add_files(pairs(root, contents, "bulk"), progress=Tally(race))
    assert [meta.key for meta in adder.files()] == [intruder]
    assert list(adder.local.uids()) == []
    leftover = repair(adder, dry_run=True)
    assert (leftover.abandoned, leftover.under_way, leftover.lost) == ((), (), ())
    auditor = make_lake("auditor")  # what the lake's records say, read afresh
    auditor.lineage.sync()
    ended = Counter(e["eventType"] for e in auditor.lineage.index.events())
    assert ended == {"COMPLETE": 1, "FAIL": 1}  # the intruder's creation; the add's failure


def test_add_files_counts_files_and_bytes_in_one_progress(
    lake: DataLake, tree: tuple[Path, dict[str, bytes]]
) -> None:
    """A FilesProgress sees one phase (each file is copied, hashed and uploaded in one go),
    with every file and every byte."""
    root, contents = tree
    progress = Tally()
    lake.add_files(pairs(root, contents, "bulk"), progress=progress)
    total = sum(len(data) for data in contents.values())
    assert progress.phases == {
        "uploading": {"files": 60, "size": total, "bytes": total, "done": 60}
    }


def test_run_all_returns_results_in_order_and_raises_the_first_error_in_order() -> None:
    """The bulk transfers' worker threads: every result in the items' order; on an error the
    items not started yet are not started (unless ``keep_going``), and the error of the
    earliest failing item is raised, in the caller's thread."""
    assert run_all(4, list(range(50)), lambda n: n * n) == [n * n for n in range(50)]

    started: list[int] = []

    def fail_on_multiples_of_seven(n: int) -> int:
        started.append(n)
        time.sleep(0.01)
        if n and n % 7 == 0:
            raise ValueError(n)
        return n

    with pytest.raises(ValueError, match=r"^7$"):
        run_all(3, list(range(100)), fail_on_multiples_of_seven)
    assert len(started) < 20, started  # the rest were never started
    started.clear()
    with pytest.raises(ValueError, match=r"^7$"):
        run_all(3, list(range(100)), fail_on_multiples_of_seven, keep_going=True)
    assert sorted(started) == list(range(100))
    assert not [t for t in threading.enumerate() if t.name.startswith("radops_")]


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
def test_bulk_transfers_set_older_objects_aside_from_the_collector_and_hand_them_back(
    lake: DataLake, tmp_path: Path
) -> None:
    """During a bulk add or fetch the collector leaves alone the objects made before it (a
    full collection would walk every loaded module's, thousands of times), and those the add
    made before its files are uploaded (the run and its START event, and the OpenLineage
    client the first time); afterwards they are the collector's again. A program that froze
    objects itself keeps its freeze."""
    root, contents = tmp_path / "t", make_tree(tmp_path / "t", 6)
    during: list[int] = []
    per_file: list[int] = []

    class Watch(Tally):
        def file_done(self) -> None:
            per_file.append(gc.get_freeze_count())
            super().file_done()

    progress = Watch(on_begin=lambda phase: during.append(gc.get_freeze_count()))
    assert gc.get_freeze_count() == 0
    lake.add_files(pairs(root, contents, "gc"), progress=progress)
    assert gc.get_freeze_count() == 0
    assert len(per_file) == len(contents) and min(per_file) > during[0], (during, per_file)
    per_file.clear()
    for uid in [f"gc/{rel}" for rel in contents]:
        lake.local.remove(uid)
    lake.prefetch("gc/", progress=progress)
    assert gc.get_freeze_count() == 0
    assert len(during) == 2 and all(count > 0 for count in during), during

    gc.freeze()
    try:
        lake.add_files(pairs(root, make_tree(root, 3, seed="again"), "gc-own"))
        assert gc.get_freeze_count() > 0  # not thawed
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
def test_no_file_is_uploaded_before_its_run_has_started(
    lake: DataLake, tree: tuple[Path, dict[str, bytes]]
) -> None:
    """The run is planned and its START event made while the first files are copied (the
    first event loads the OpenLineage client), but no object is created before it."""
    root, contents = tree
    metas = lake.add_files(pairs(root, contents, "ordered"))
    run_id = metas[0].metadata[RUN_KEY]
    lake.lineage.close()  # indexes the START events of this process
    starts = [
        datetime.fromisoformat(event["eventTime"]).timestamp()
        for event in lake.lineage.index.events()
        if event["eventType"] == "START" and event["run"]["runId"] == run_id
    ]
    assert len(starts) == 1
    objects = Path(lake.store.url)
    created = [(objects / meta.key).stat().st_mtime for meta in metas]
    assert len(created) == len(contents)
    # File times come from the kernel's coarse clock, a few milliseconds behind time.time().
    assert starts[0] <= min(created) + 0.010


def test_prefetch_downloads_a_folder_verified_and_skips_trusted_copies(
    make_lake: MakeLake, tree: tuple[Path, dict[str, bytes]]
) -> None:
    """Every file under the prefix is fetched once; a corrupted local copy is replaced."""
    root, contents = tree
    make_lake("writer").add_files(pairs(root, contents, "bulk"))
    reader = make_lake("reader")
    progress = Tally()
    paths = reader.prefetch("bulk/", progress=progress)
    assert sorted(paths) == sorted(f"bulk/{rel}" for rel in contents)
    for rel, data in contents.items():
        assert paths[f"bulk/{rel}"].read_bytes() == data
    assert progress.phases["downloading"]["done"] == 60
    assert progress.phases["downloading"]["bytes"] == sum(map(len, contents.values()))
    victim = paths[f"bulk/{sorted(contents)[3]}"]
    victim.chmod(0o644)
    victim.write_bytes(b"not the lake's bytes")
    again = Tally()
    reader.prefetch("bulk/", progress=again)
    assert again.phases["downloading"]["files"] == 1  # the others are trusted as they are
    assert victim.read_bytes() == contents[sorted(contents)[3]]


def test_records_of_a_bulk_fetch_written_late_never_make_a_copy_trusted_unchecked(
    make_lake: MakeLake, tree: tuple[Path, dict[str, bytes]]
) -> None:
    """A fetch writes its local records a few hundred at a time: inside the batch this machine
    already trusts what it placed; another process on the same home, reading the index before
    the batch is written (as after a kill), rehashes each copy before it trusts it; after the
    batch every copy is trusted from the index alone."""
    root, contents = tree
    make_lake("writer").add_files(pairs(root, contents, "bulk"))
    reader = make_lake("reader")
    uids = [f"bulk/{rel}" for rel in sorted(contents)]
    with reader.local.batched():
        paths = reader.prefetch(uids)
        assert all(reader.local.entry(uid) is not None for uid in uids)  # this process: yes
        other = make_lake("reader")  # another process on the same home, the index unwritten
        assert [other.local.entry(uid) for uid in uids] == [None] * len(uids)
        victim = uids[5]
        paths[victim].chmod(0o644)
        paths[victim].write_bytes(b"changed before any record of it was written")
        for rel, uid in zip(sorted(contents), uids, strict=True):
            # rehashed against the lake's sha256: the changed copy is replaced, not served
            assert File(uid, lake=other).local_path().read_bytes() == contents[rel]
    third = make_lake("reader")
    for uid in uids:
        entry = third.local.entry(uid)
        assert entry is not None, uid
        stat = third.local.stat(uid)
        assert stat is not None and third.local.is_trusted(uid, stat)


def test_prefetch_of_nothing_is_an_error(lake: DataLake) -> None:
    """A prefix with no file under it, or a uid the lake lacks, raises FileNotInLakeError."""
    with pytest.raises(FileNotInLakeError, match="no file is under 'none/'"):
        lake.prefetch("none/")
    with pytest.raises(FileNotInLakeError, match=r"'ghost\.bin' does not exist"):
        lake.prefetch(["ghost.bin"])


def test_many_concurrent_adds_and_fetches_are_each_verified_and_recorded(
    make_lake: MakeLake, tmp_path: Path
) -> None:
    """Four threads add a directory each through one lake while another lake fetches them:
    every file is recorded once, in its own add's run, and every copy has the right bytes."""
    adder = make_lake("adder", transfer_threads=8)
    reader = make_lake("reader", transfer_threads=8)
    trees = {n: make_tree(tmp_path / f"t{n}", 40, size=1024, seed=f"t{n}") for n in range(4)}
    errors: list[BaseException] = []
    added: dict[int, list[str]] = {}

    def add(n: int) -> None:
        try:
            metas = adder.add_files(pairs(tmp_path / f"t{n}", trees[n], f"c{n}"))
            added[n] = [meta.metadata[RUN_KEY] for meta in metas]
        except Exception as exc:  # noqa: BLE001 - the thread's error, checked below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(n,)) for n in trees]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(len(set(runs)) == 1 for runs in added.values())
    assert len({runs[0] for runs in added.values()}) == 4  # one run per add

    fetched: dict[int, dict[str, Path]] = {}

    def fetch(n: int) -> None:
        try:
            fetched[n] = reader.prefetch(f"c{n}/")
        except Exception as exc:  # noqa: BLE001 - the thread's error, checked below
            errors.append(exc)

    threads = [threading.Thread(target=fetch, args=(n,)) for n in trees]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for n, contents in trees.items():
        for rel, data in contents.items():
            uid = f"c{n}/{rel}"
            assert fetched[n][uid].read_bytes() == data
            assert reader.local.entry(uid).sha256 == hashlib.sha256(data).hexdigest()
            event = reader.lineage.creation_of(uid)
            assert event is not None and event["run"]["runId"] == added[n][0]


@pytest.mark.parametrize("remote", ["s3"], indirect=True)
def test_on_s3_an_add_is_one_put_per_file_and_a_fetch_one_get(
    make_lake: MakeLake, tree: tuple[Path, dict[str, bytes]], s3_proxy: S3Proxy
) -> None:
    """No HEAD per file: adding N files sends N object PUTs and one record PUT; fetching a
    file the machine lacks is one GET, its answer carrying the sha256 that is checked."""
    root, contents = tree
    adder = make_lake("adder", s3_endpoint_url=s3_proxy.endpoint)
    adder.add_files(pairs(root, contents, "bulk"))
    assert s3_proxy.counts["PutObject"] == len(contents) + 1
    assert s3_proxy.counts["HeadObject"] == 0
    s3_proxy.reset()
    reader = make_lake("reader", s3_endpoint_url=s3_proxy.endpoint)
    reader.prefetch("bulk/")
    assert s3_proxy.counts["GetObject"] == len(contents)
    assert s3_proxy.counts["HeadObject"] == 0
    s3_proxy.reset()
    third = make_lake("third", s3_endpoint_url=s3_proxy.endpoint)
    File(f"bulk/{sorted(contents)[0]}", lake=third).local_path()
    assert dict(s3_proxy.counts) == {"GetObject": 1}


@pytest.mark.parametrize("remote", ["s3"], indirect=True)
def test_on_s3_an_add_of_new_files_needs_no_boto3(
    make_lake: MakeLake, tree: tuple[Path, dict[str, bytes]], closed_endpoint: str
) -> None:
    """On an S3-compatible endpoint, all of an add of new files (which uids are taken, which
    records are new, the uploads, the run's record) goes through the fast path: building
    boto3's client is a tenth of a second of the command. Here that client reaches nothing."""
    root, contents = tree
    writer = make_lake("writer")
    without_boto3(writer.store, closed_endpoint)  # type: ignore[arg-type]  # an S3Store
    metas = writer.add_files(pairs(root, contents, "fast"))
    reader = make_lake("reader")
    assert sorted(meta.key for meta in reader.files("fast/")) == [meta.key for meta in metas]
    run_ids = {reader.lineage.creation_of(meta.key)["run"]["runId"] for meta in metas}  # type: ignore[index]
    assert run_ids == {metas[0].metadata[RUN_KEY]}


@pytest.mark.parametrize("remote", ["s3"], indirect=True)
def test_a_read_without_a_head_fetches_empty_small_and_multipart_objects_whole(
    make_lake: MakeLake, tmp_path: Path, s3_proxy: S3Proxy
) -> None:
    """The first GET asks for the first part only (the size comes from its Content-Range): an
    empty object, one just under and one just over the multipart threshold all arrive whole
    and verified, with no HEAD; an object under the threshold takes exactly one GET (an empty
    one two)."""
    writer = make_lake("writer")
    threshold = writer.store.transfer.multipart_threshold  # type: ignore[attr-defined]
    sizes = {"empty": 0, "one": 1, "under": threshold - 1, "at": threshold, "over": threshold + 1}
    contents = {}
    for name, size in sizes.items():
        data = hashlib.sha256(name.encode()).digest() * (size // 32 + 1)
        contents[name] = data[:size]
        source = tmp_path / name
        source.write_bytes(contents[name])
        writer.add_file(source, f"sizes/{name}")
    for name, data in contents.items():
        s3_proxy.reset()
        reader = make_lake(f"reader-{name}", s3_endpoint_url=s3_proxy.endpoint)
        assert File(f"sizes/{name}", lake=reader).local_path().read_bytes() == data
        assert s3_proxy.counts["HeadObject"] == 0, name
        if 0 < len(data) < threshold:
            assert dict(s3_proxy.counts) == {"GetObject": 1}, name
        elif not data:  # it has no first byte to ask for: refused, then asked for whole
            assert dict(s3_proxy.counts) == {"GetObject": 2}, name


_ADD_AND_LIST_FLUSH_THREADS = """
import sys, threading
from pathlib import Path
from radops.lake import DataLake
from radops.settings import Settings
lake = DataLake(Settings.load())
root = Path(sys.argv[1])
lake.add_files([(p, "flushed/" + p.relative_to(root).as_posix()) for p in root.rglob("*.bin")])
print(sorted(t.name for t in threading.enumerate() if t.name.startswith("radops-fsync")))
"""


@pytest.mark.parametrize("remote", ["s3"], indirect=True)
def test_a_bulk_add_flushes_its_local_copies_at_once(
    lake: DataLake, tree: tuple[Path, dict[str, bytes]]
) -> None:
    """The local copies of a directory are flushed by one ``syncfs`` before they are placed,
    not by an fsync each: a fresh process adding 60 files to an S3 lake (whose records are
    not local files) starts no thread of the fsync pool, and every copy is placed."""
    root, contents = tree
    env = process_env(lake)
    done = subprocess.run(
        [sys.executable, "-c", _ADD_AND_LIST_FLUSH_THREADS, str(root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    for rel, data in contents.items():
        assert (lake.settings.storage_dir / "flushed" / rel).read_bytes() == data


def test_sync_filesystem_flushes_or_says_it_cannot(tmp_path: Path) -> None:
    """On Linux, ``syncfs`` of the file system holding a path; a path that is not there is
    an OSError, not a silent success."""
    from radops.durable import sync_filesystem

    assert sync_filesystem(tmp_path) is sys.platform.startswith("linux")
    if sys.platform.startswith("linux"):
        with pytest.raises(FileNotFoundError):
            sync_filesystem(tmp_path / "absent")


# -- the CLI -------------------------------------------------------------------------------------


@pytest.fixture
def cli_tree(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    root = tmp_path / "dir"
    return root, make_tree(root, 12, size=256)


def test_cli_download_of_a_folder_prints_every_local_path(
    cli_env: dict[str, str], cli_tree: tuple[Path, dict[str, bytes]]
) -> None:
    """``download raw`` (a folder, with or without '/') fetches every file under it."""
    root, contents = cli_tree
    added = run(cli_env, "datalake", "add", str(root), "--prefix", "raw")
    assert added.stdout.splitlines() == [f"raw/{rel}" for rel in sorted(contents)]
    other = machine(cli_env, "machine-b")
    result = run(other, "datalake", "download", "raw")
    paths = [Path(line) for line in result.stdout.splitlines()]
    assert paths == [storage(other) / "raw" / rel for rel in sorted(contents)]
    assert [path.read_bytes() for path in paths] == [contents[rel] for rel in sorted(contents)]
    assert f"downloaded {len(contents)} file(s)" in result.stderr
    again = run(other, "datalake", "download", "raw/part-1/")
    assert "downloaded 0 file(s) (0 bytes)" in again.stderr
    assert f"{len(again.stdout.splitlines())} already in local storage" in again.stderr


def test_cli_download_of_nothing_fails_with_one_line(cli_env: dict[str, str]) -> None:
    """A name that is neither a file nor a folder of the lake is one error line, exit 1."""
    assert "'ghost' does not exist" in error_line(
        run(cli_env, "datalake", "download", "ghost", code=1)
    )
    assert "no file is under 'ghost/'" in error_line(
        run(cli_env, "datalake", "download", "ghost/", code=1)
    )
    assert "invalid uid" in error_line(run(cli_env, "datalake", "download", "a/../b/", code=1))


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
def test_ctrl_c_during_a_bulk_add_takes_every_file_back(
    lake: DataLake, make_lake: MakeLake, tmp_path: Path
) -> None:
    """Ctrl-C while the files upload: no new file starts, the ones uploading finish, then the
    run is recorded as failed and every object it made is removed; the command exits 130."""
    root = tmp_path / "tree"
    contents = make_tree(root, 1500, size=512)
    objects = Path(lake.store.url) / "interrupted"
    add = subprocess.Popen(
        [sys.executable, "-m", "radops", "datalake", "add", str(root), "--prefix", "interrupted"],
        env=process_env(lake, transfer_threads="2"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while add.poll() is None and time.monotonic() < deadline:
        if objects.is_dir() and any(objects.rglob("*.bin")):
            break
        time.sleep(0.002)
    uploaded_at_signal = sum(1 for _ in objects.rglob("*.bin"))
    add.send_signal(signal.SIGINT)
    _, stderr = add.communicate(timeout=60)
    assert 0 < uploaded_at_signal < len(contents), "the signal did not land mid-add"
    assert add.returncode == 130, stderr
    reader = make_lake("reader")
    assert list(reader.files("interrupted/")) == []
    reader.lineage.sync()
    ends = [
        event["eventType"]
        for event in reader.lineage.index.events()
        if event["job"]["name"].startswith(ADD_JOB) and event["eventType"] != "START"
    ]
    assert ends == ["FAIL"], ends
    assert stderr.strip() == "interrupted"
    assert not list(lake.settings.tmp_dir.glob("*.part"))


@pytest.mark.parametrize("remote", ["directory"], indirect=True)  # the bar is the same on S3
def test_cli_bulk_bar_counts_files(
    cli_env: dict[str, str], cli_tree: tuple[Path, dict[str, bytes]]
) -> None:
    """On a terminal, one bar names the phase and counts the files."""
    root, contents = cli_tree
    env = {**cli_env, "COLUMNS": "120", "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"}
    result = CliRunner().invoke(app, ["datalake", "add", str(root), "--prefix", "raw"], env=env)
    assert result.exit_code == 0, result.output
    assert f"uploading {len(contents)}/{len(contents)} files" in result.stderr
    other = {**env, "RADOPS_HOME": str(Path(cli_env["RADOPS_HOME"]).parent / "b")}
    fetched = CliRunner().invoke(app, ["datalake", "download", "raw/"], env=other)
    assert fetched.exit_code == 0, fetched.output
    assert f"downloading {len(contents)}/{len(contents)} files" in fetched.stderr


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> Iterator[None]:
    """Bulk work ends its threads: none named for radops is left running after a test."""
    yield
    left = [t.name for t in threading.enumerate() if t.name.startswith("radops_")]
    assert left == []


def test_transfer_threads_is_a_setting(make_lake: MakeLake) -> None:
    """``transfer_threads`` comes from the settings and refuses nonsense."""
    from radops.errors import ConfigError
    from radops.settings import Settings

    assert make_lake("a", transfer_threads=3).settings.transfer_threads == 3
    assert Settings.load(env={"RADOPS_TRANSFER_THREADS": "32"}).transfer_threads == 32
    for bad in ("0", "abc", "2.5", "100000"):
        with pytest.raises(ConfigError, match="invalid transfer_threads"):
            Settings.load(env={"RADOPS_TRANSFER_THREADS": bad})
    assert Settings.load(env={}).transfer_threads == 10
