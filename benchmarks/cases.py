"""The cases of issue 6: each one measures radops and its baseline and returns result rows.

Numbering follows the issue. Every case takes a :class:`~benchmarks.harness.Context` and
returns a list of :class:`~benchmarks.harness.Row`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    BUCKET,
    Context,
    Row,
    floor_row,
    info_row,
    linear_fit,
    radops_command,
    ratio_row,
    run_quietly,
    seconds,
    throughput_row,
)
from benchmarks.marquez_cases import case_11, case_12, case_13
from radops.data_lake import File, file_creator, set_default_lake
from radops.integrity import sha256_file
from radops.lake import DataLake

KB = b"x" * 1024
KB_TEXT = "x" * 1024


# -- the pipeline steps the cases call -----------------------------------------------------------


@file_creator
def make_one(payload: str, output_uid: str) -> File:
    """A step with one declared output of ``payload``."""
    out = File(output_uid)
    with out.open("w") as handle:
        handle.write(payload)
    return out


@file_creator
def make_implicit(payload: str, n: int) -> File:
    """A step with one implicit output (its uid derived from the call)."""
    out = File(suffix=".txt")
    with out.open("w") as handle:
        handle.write(payload)
    return out


def plain_make(payload: str, output_uid: str) -> str:
    """The same step without radops, for joblib.Memory."""
    return payload + output_uid


# -- 1. File.open("w") of 1 KB vs put_object -----------------------------------------------------


def case_1(ctx: Context) -> list[Row]:
    lake = ctx.lake("c1", s3=True)
    client = ctx.client()
    prefix = ctx.unique("c1-raw")

    def ours() -> None:
        with File(ctx.unique("f"), lake=lake).open("wb") as handle:
            handle.write(KB)

    def theirs() -> None:
        client.put_object(Bucket=BUCKET, Key=f"{prefix}/{ctx.unique('f')}", Body=KB)

    mine, raw = ctx.compare("1 File.open('w') 1 KB", ours, theirs)

    def floor() -> None:
        # The requests a creation cannot do without: is the uid free (HEAD, before any work),
        # the object (conditional PUT), then its COMPLETE record (PUT), in that order.
        key = f"{prefix}/{ctx.unique('floor')}"
        with contextlib.suppress(client.exceptions.ClientError):
            client.head_object(Bucket=BUCKET, Key=key)
        client.put_object(Bucket=BUCKET, Key=key, Body=KB, IfNoneMatch="*")
        client.put_object(Bucket=BUCKET, Key=f"{key}.record", Body=KB, IfNoneMatch="*")

    least, raw_again = ctx.compare("1 floor", floor, theirs)
    return [
        ratio_row("1", "File.open('w'), 1 KB, S3", mine, raw, 2.0, "vs put_object"),
        floor_row(
            "1",
            "raw HEAD + PUT + PUT",
            least,
            raw_again,
            "the 3 requests of a creation, in order, nothing else",
        ),
    ]


# -- 2. file_creator of 1 KB vs put_object -------------------------------------------------------


def case_2(ctx: Context) -> list[Row]:
    lake = ctx.lake("c2", s3=True)
    set_default_lake(lake)
    client = ctx.client()
    prefix = ctx.unique("c2-raw")
    try:

        def ours() -> None:
            make_one(KB_TEXT, output_uid=ctx.unique("f"))

        def theirs() -> None:
            client.put_object(Bucket=BUCKET, Key=f"{prefix}/{ctx.unique('f')}", Body=KB)

        mine, raw = ctx.compare("2 file_creator 1 KB", ours, theirs)
    finally:
        set_default_lake(None)
    return [ratio_row("2", "file_creator, 1 KB, S3", mine, raw, 3.0, "vs put_object")]


# -- 3. a skipped file_creator call vs head_object, and vs joblib.Memory ------------------------


def case_3(ctx: Context) -> list[Row]:
    import joblib

    rows = []
    lake = ctx.lake("c3", s3=True)
    set_default_lake(lake)
    client = ctx.client()
    try:
        make_one(KB_TEXT, output_uid="done.txt")
        key = f"{lake.settings.remote[len(f's3://{BUCKET}/') :]}/done.txt"
        mine, raw = ctx.compare(
            "3 skipped file_creator, S3",
            lambda: make_one(KB_TEXT, output_uid="done.txt"),
            lambda: client.head_object(Bucket=BUCKET, Key=key),
        )
        rows.append(ratio_row("3", "skipped file_creator, S3", mine, raw, 1.5, "vs 1 head_object"))

        lake = ctx.lake("c3-dir", s3=False)
        set_default_lake(lake)
        make_one(KB_TEXT, output_uid="done.txt")
        memory = joblib.Memory(ctx.root / "joblib", verbose=0)
        cached = memory.cache(plain_make)
        cached(KB_TEXT, "done.txt")
        mine, raw = ctx.compare(
            "3 skipped file_creator, directory",
            lambda: make_one(KB_TEXT, output_uid="done.txt"),
            lambda: cached(KB_TEXT, "done.txt"),
            inner=10,
        )
        rows.append(
            ratio_row(
                "3", "skipped file_creator, directory", mine, raw, 3.0, "vs joblib.Memory hit"
            )
        )
    finally:
        set_default_lake(None)
    return rows


# -- 4. a cached read vs open() ------------------------------------------------------------------


def case_4(ctx: Context) -> list[Row]:
    lake = ctx.lake("c4", s3=True)
    with File("cached.bin", lake=lake).open("wb") as handle:
        handle.write(KB)
    path = lake.local_path("cached.bin")
    handle_file = File("cached.bin", lake=lake)

    def ours() -> None:
        with handle_file.open("rb") as handle:
            handle.read()

    def theirs() -> None:
        with open(path, "rb") as handle:
            handle.read()

    mine, raw = ctx.compare("4 cached File.open('rb')", ours, theirs, inner=200)

    def floor() -> None:
        # What a checked read cannot skip: the open, and the fingerprint of the open file
        # (fstat: device, inode, size, mtime), compared with the one recorded at placing.
        with open(path, "rb") as handle:
            os.fstat(handle.fileno())
            handle.read()

    least, raw_again = ctx.compare("4 floor", floor, theirs, inner=200)
    return [
        ratio_row("4", "cached File.open('rb'), 1 KB", mine, raw, 1.2, "vs open()"),
        floor_row(
            "4", "open() + fstat", least, raw_again, "the checks of a trusted read, in raw Python"
        ),
    ]


# -- 5. large uploads and downloads --------------------------------------------------------------


def _write_random(path: Path, size: int) -> None:
    chunk = os.urandom(8 * 1024 * 1024)
    with path.open("wb") as handle:
        written = 0
        while written < size:
            part = chunk[: min(len(chunk), size - written)]
            handle.write(part)
            written += len(part)


def case_5(ctx: Context) -> list[Row]:
    from boto3.s3.transfer import TransferConfig

    from radops.stores.s3 import TransferSettings

    # (size, warm-ups, repeats): the 1 GB round comes warm from the 200 MB one.
    rounds = [(16 * 1000**2, 0, 1)] if ctx.quick else [(200 * 1000**2, 1, 3), (1000**3, 0, 2)]
    same = TransferSettings()
    config = TransferConfig(
        multipart_threshold=same.multipart_threshold,
        multipart_chunksize=same.multipart_chunksize,
        max_concurrency=same.max_concurrency,
    )
    client = ctx.client()
    rows = []
    for size, warmup, repeats in rounds:
        rows += _transfer(ctx, client, config, size, repeats, warmup)
    return rows


def _transfer(
    ctx: Context, client: Any, config: Any, size: int, repeats: int, warmup: int
) -> list[Row]:
    """Case 5 for one size: upload, upload --move, download, and the disk-copy limit."""
    rows = []
    label = f"{size / 1e6:.0f} MB"
    lake = ctx.lake("c5", s3=True)
    source = ctx.root / f"c5-{size}.bin"
    _write_random(source, size)
    prefix = ctx.unique("c5-raw")
    made: list[str] = []

    def ours() -> None:
        uid = ctx.unique("big")
        lake.add_file(source, uid)
        made.append(uid)
        lake.remove_local(uid)  # keep the disk from filling up

    def theirs() -> None:
        client.upload_file(str(source), BUCKET, f"{prefix}/{ctx.unique('big')}", Config=config)

    up, raw_up = ctx.compare(f"5 upload {label}", ours, theirs, warmup=warmup, repeats=repeats)
    rows.append(
        throughput_row(
            "5", f"upload {label} (datalake add)", size, up, raw_up, 0.9, "vs upload_file"
        )
    )

    # --move: the source becomes the temp file by a hard link, hashed in place, no copy.
    moved = []
    for i in range(repeats):
        source_copy = ctx.root / f"c5-move-{i}.bin"
        shutil.copyfile(source, source_copy)
        run_quietly(["sync"])
        began = time.perf_counter()
        uid = ctx.unique("moved")
        lake.add_file(source_copy, uid, move=True)
        moved.append(time.perf_counter() - began)
        lake.remove_local(uid)
    rows.append(
        throughput_row(
            "5",
            f"upload {label} (datalake add --move)",
            size,
            statistics.median(moved),
            raw_up,
            0.9,
            "vs upload_file",
        )
    )

    uid = made[-1]
    target = ctx.root / "c5-download.bin"

    def ours_down() -> None:
        lake.remove_local(uid)
        lake.download(uid)

    key = f"{prefix}/big-raw"
    client.upload_file(str(source), BUCKET, key, Config=config)

    def theirs_down() -> None:
        target.unlink(missing_ok=True)
        client.download_file(BUCKET, key, str(target), Config=config)

    down, raw_down = ctx.compare(
        f"5 download {label}", ours_down, theirs_down, warmup=warmup, repeats=repeats
    )
    rows.append(
        throughput_row(
            "5", f"download {label} (verified)", size, down, raw_down, 0.9, "vs download_file"
        )
    )
    # What the download costs in CPU, here and in the server (which shares the machine's
    # cores): the wall time cannot be under the total divided by the cores.
    cpu_ours, cpu_theirs = ctx.cpu_seconds(ours_down), ctx.cpu_seconds(theirs_down)
    rows.append(
        info_row(
            "5",
            f"  CPU of a download {label} (client + server)",
            f"{cpu_ours:.2f} s",
            "radops vs download_file; the sha256 is CPU on top of a machine already busy",
            baseline=f"{cpu_theirs:.2f} s",
            ratio=f"{os.cpu_count()} cores",
        )
    )
    lake.remove_local(uid)
    target.unlink(missing_ok=True)

    copy = ctx.root / "c5-copy.bin"

    def disk_copy() -> None:
        copy.unlink(missing_ok=True)
        run_quietly(["cp", str(source), str(copy)])
        run_quietly(["sync"])

    limit = ctx.measure(disk_copy, warmup=0, repeats=repeats)
    copy.unlink(missing_ok=True)

    def hash_only() -> None:
        sha256_file(source)

    hashing = ctx.measure(hash_only, warmup=0, repeats=repeats)
    source.unlink()
    rows.append(
        info_row(
            "5",
            f"sha256 limit {label} (radops' sha256_file)",
            f"{size / 1e6 / hashing:.0f} MB/s",
            "hashing alone, from the page cache, one thread",
        )
    )
    rows.append(
        info_row(
            "5",
            f"disk copy limit {label} (cp + sync)",
            f"{size / 1e6 / limit:.0f} MB/s",
            "this disk's copy speed",
        )
    )
    return rows


# -- 6. datalake ls of many files ----------------------------------------------------------------

_PAGINATE = """
import sys, boto3
client = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
write = sys.stdout.write
pages = client.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2], Prefix=sys.argv[3])
for page in pages:
    write("".join(item["Key"][len(sys.argv[3]):] + "\\n" for item in page.get("Contents", [])))
"""


def case_6(ctx: Context) -> list[Row]:
    count = 2_000 if ctx.quick else 100_000
    lake = ctx.lake("c6", s3=True)
    prefix = lake.settings.remote[len(f"s3://{BUCKET}/") :] + "/"
    client = ctx.client()

    def put(i: int) -> None:
        client.put_object(Bucket=BUCKET, Key=f"{prefix}d{i // 1000:03d}/f{i:06d}.txt", Body=b"x")

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(put, range(count)))
    env = ctx.cli_env(lake)
    ours = [*radops_command(), "datalake", "ls"]
    theirs = [sys.executable, "-c", _PAGINATE, ctx.server.endpoint, BUCKET, prefix]
    repeats = 3
    mine, raw = ctx.compare(
        "6 datalake ls",
        lambda: run_quietly(ours, env),
        lambda: run_quietly(theirs, env),
        warmup=1 if ctx.quick else 0,  # a 100,000-key listing is its own warm-up
        repeats=repeats,
    )
    return [
        ratio_row(
            "6",
            f"datalake ls, {count:,} files (process)",
            mine,
            raw,
            1.2,
            "vs boto3 paginator (process)",
        ),
        info_row(
            "6",
            "datalake ls with the embedded index",
            "n/a",
            "ls lists the store; it does not use the index",
        ),
    ]


# -- 7. datalake lineage --depth 10 over a large graph -------------------------------------------


def _record_graph(lake: DataLake, width: int, layers: int, *, calls: bool = False) -> str:
    """Record ``width * layers`` creations: each file made from 2 files of the layer before.

    The events go through radops' own recorder (stored in the lake, indexed, queued for a
    consumer if one is set), and each file is a 1-byte object naming its run (the lineage
    command asks each object which run made it). With ``calls``, each creation is a job of its
    own, as a ``file_creator`` call's is (``<function>/<call id>`` in the lake's namespace).
    Returns the last uid.
    """
    import hashlib

    from radops.lineage.events import Creation, uuid7
    from radops.lineage.naming import call_job
    from radops.objects import RUN_KEY

    byte = lake.settings.tmp_dir / "one-byte"
    byte.parent.mkdir(parents=True, exist_ok=True)
    byte.write_bytes(b"x")
    sha = hashlib.sha256(b"x").hexdigest()
    uid = ""
    for layer in range(layers):
        for i in range(width):
            uid = f"layer{layer:02d}/f{i:05d}.bin"
            inputs = []
            if layer:
                inputs = [
                    lake.dataset_ref(f"layer{layer - 1:02d}/f{j % width:05d}.bin", sha, 1)
                    for j in (i, i + 1)
                ]
            creation = Creation(
                run_id=str(uuid7()),
                job_namespace=lake.settings.namespace,
                job_name="bench.step",
                email="bench@example.com",
                radops_version="bench",
                inputs=inputs,
                parameters={"layer": layer, "i": i},
                outputs=[lake.dataset_ref(uid, sha, 1)],
                call=call_job("bench.step", lake.store.url, uid) if calls else None,
            )
            lake.store.put_new(byte, uid, sha256=sha, metadata={RUN_KEY: creation.run_id})
            lake.lineage.emit(creation, "COMPLETE")
    return uid


def case_7(ctx: Context) -> list[Row]:
    from typer.testing import CliRunner

    from radops.cli.app import app

    width, layers = (50, 10) if ctx.quick else (1_000, 10)
    lake = ctx.lake("c7", s3=False)
    started = time.perf_counter()
    leaf = _record_graph(lake, width, layers)
    recording = time.perf_counter() - started
    count = width * layers
    env = ctx.cli_env(lake)
    command = [*radops_command(), "datalake", "lineage", leaf, "--depth", "10"]
    repeats = 5 if ctx.quick else 11
    process = ctx.measure(lambda: run_quietly(command, env), warmup=1, repeats=repeats)
    runner = CliRunner()

    def in_process() -> None:
        result = runner.invoke(app, ["datalake", "lineage", leaf, "--depth", "10"], env=env)
        if result.exit_code != 0:
            raise RuntimeError(result.output)

    inside = ctx.measure(in_process, warmup=1, repeats=repeats)

    def as_json() -> None:
        args = ["datalake", "lineage", leaf, "--depth", "10", "--json"]
        result = runner.invoke(app, args, env=env)
        if result.exit_code != 0:
            raise RuntimeError(result.output)

    query = ctx.measure(as_json, warmup=1, repeats=repeats)
    if ctx.profile:
        ctx.profile_calls("7 lineage --depth 10 (in process)", in_process, 5)
    help_time = ctx.measure(
        lambda: run_quietly([*radops_command(), "--help"]), warmup=1, repeats=repeats
    )
    return [
        Row(
            "7",
            f"datalake lineage --depth 10, {count:,} files (process)",
            seconds(process),
            "",
            "",
            "< 200 ms",
            process < 0.2,
            f"radops --help alone: {seconds(help_time)}",
        ),
        Row(
            "7",
            "datalake lineage --depth 10 (in process)",
            seconds(inside),
            "",
            "",
            "< 200 ms",
            inside < 0.2,
            f"without start-up; recording the graph took {seconds(recording)}",
        ),
        Row(
            "7",
            "datalake lineage --depth 10 --json (in process)",
            seconds(query),
            "",
            "",
            "< 200 ms",
            query < 0.2,
            "the same walk of the index, without drawing boxes",
        ),
    ]


# -- 8. CLI start-up -----------------------------------------------------------------------------

_HELLO = """
import typer

app = typer.Typer()


@app.command()
def hello(name: str = "world") -> None:
    \"\"\"Say hello.\"\"\"
    typer.echo(f"hello {name}")


if __name__ == "__main__":
    app()
"""


def case_8(ctx: Context) -> list[Row]:
    hello = ctx.root / "hello.py"
    hello.write_text(textwrap.dedent(_HELLO))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADOPS_")}
    env["RADOPS_HOME"] = str(ctx.root / "homes" / "c8")
    ours = [*radops_command(), "--help"]
    theirs = [sys.executable, str(hello), "--help"]
    repeats = 5 if ctx.quick else 21
    mine, raw = ctx.compare(
        "8 radops --help",
        lambda: run_quietly(ours, env),
        lambda: run_quietly(theirs, env),
        warmup=1,
        repeats=repeats,
    )
    return [ratio_row("8", "radops --help (process)", mine, raw, 1.5, "vs typer hello --help")]


# -- 9. lineage delivery to an HTTP endpoint ------------------------------------------------------


class _Lineage(BaseHTTPRequestHandler):
    """A Marquez-style endpoint: accepts ``POST /api/v1/lineage``, answers 201."""

    received = 0

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        type(self).received += 1
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        return


def case_9(ctx: Context) -> list[Row]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Lineage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rows = []
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        for s3 in (False, True):
            where = "S3" if s3 else "directory"
            with_http = ctx.lake("c9-http", s3=s3, marquez_url=url)
            without = ctx.lake("c9-none", s3=s3)

            def create(lake: DataLake) -> Callable[[], None]:
                def run() -> None:
                    with File(ctx.unique("f"), lake=lake).open("wb") as handle:
                        handle.write(KB)

                return run

            mine, raw = ctx.compare(
                f"9 creation with an HTTP lineage endpoint, {where}",
                create(with_http),
                create(without),
            )
            added = mine - raw
            rows.append(
                Row(
                    "9",
                    f"File.open('w') 1 KB with HTTP lineage, {where}",
                    seconds(mine),
                    seconds(raw),
                    f"+{added * 1e3:.2f} ms",
                    "<= +1 ms",
                    added <= 1e-3,
                    "vs the same lake without an endpoint",
                )
            )
        with_http.lineage.outbox.wait(30)
        outbox = ctx.root / "c9-outbox"
        outbox.mkdir()

        def queue(durable: bool) -> Callable[[], None]:
            # What the outbox does per creation: two events (START, COMPLETE), each written to
            # a temp file and renamed into the queue before the creation returns; fsynced too
            # when ``durable`` (radops did that before the change described in the doc).
            def run() -> None:
                for _ in range(2):
                    tmp = outbox / f"{ctx.unique('e')}.tmp"
                    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    try:
                        os.write(fd, KB)
                        if durable:
                            os.fsync(fd)
                    finally:
                        os.close(fd)
                    tmp.replace(tmp.with_suffix(".json"))

            return run

        for durable, name, note in (
            (False, "2 queued 1 KB files", "the outbox's share of the added time"),
            (True, "2 fsynced 1 KB files", "what fsyncing the queue would add instead"),
        ):
            rows.append(
                info_row("9", f"  floor: {name}", seconds(ctx.measure(queue(durable))), note)
            )
    finally:
        server.shutdown()
        server.server_close()
    rows[1].note += f"; endpoint received {_Lineage.received} events"
    return rows


# -- 10. scale -----------------------------------------------------------------------------------

_CREATE_MANY = """
import json, os, sys, time
from pathlib import Path
from benchmarks.harness import peak_rss
from radops.data_lake import DataLake, set_default_lake
from radops.settings import Settings
from benchmarks.cases import make_implicit

home, remote, total, step = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
lake = DataLake(Settings.load(env={}, home=Path(home), remote=remote,
                              email="bench@example.com", log_level="WARNING"))
set_default_lake(lake)
page = os.sysconf("SC_PAGE_SIZE")
points = []
start = time.perf_counter()
for n in range(total):
    make_implicit("x" * 1024, n)
    if (n + 1) % step == 0:
        rss = int(Path("/proc/self/statm").read_text().split()[1]) * page
        points.append([n + 1, time.perf_counter() - start, rss])
print(json.dumps({"points": points, "peak": peak_rss()}))
"""

_SYNC = """
import json, sys, time
from pathlib import Path
from benchmarks.harness import peak_rss
from radops.data_lake import DataLake
from radops.settings import Settings

lake = DataLake(Settings.load(env={}, home=Path(sys.argv[1]), remote=sys.argv[2],
                              email="bench@example.com", log_level="WARNING"))
start = time.perf_counter()
added = lake.lineage.sync()
elapsed = time.perf_counter() - start
print(json.dumps({"added": added, "seconds": elapsed, "peak": peak_rss()}))
"""


def _python(script: str, *args: str) -> dict[str, Any]:
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADOPS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed:\n{result.stderr}")
    parsed: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def _fill_records(lake: DataLake, template: dict[str, Any], start: int, stop: int) -> None:
    """Store events ``start..stop`` in the lake: ``template`` with new run ids and uids.

    The bytes are those radops stores (LakeRecords' serialisation), written in parallel and
    without fsync: this is the set-up, the sync that reads them is what is measured.
    """
    from radops.lineage.events import uuid7
    from radops.lineage.records import EVENTS

    store = lake.store
    body = json.dumps(template, sort_keys=True, separators=(",", ":"))
    run_id = template["run"]["runId"]
    uid = template["run"]["facets"]["radops_run"]["outputs"][0]
    day = time.strftime("%Y-%m-%d", time.gmtime())
    folder = Path(lake.settings.remote) / ".radops" / EVENTS / day
    folder.mkdir(parents=True, exist_ok=True)
    del store

    def write(i: int) -> None:
        new_run = str(uuid7())
        data = body.replace(run_id, new_run).replace(uid, f"scale/f{i:07d}.txt")
        (folder / f"{uuid7()}.json").write_text(data, encoding="utf-8")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(start, stop)))


def case_10(ctx: Context) -> list[Row]:
    total, step = (200, 50) if ctx.quick else (10_000, 2_000)
    lake_settings = ctx.settings("c10-create", s3=False)
    created = _python(
        _CREATE_MANY, str(lake_settings.home), lake_settings.remote, str(total), str(step)
    )
    points = created["points"]
    ns = [p[0] for p in points]
    slope, _ = linear_fit(ns, [p[1] for p in points])
    mem_slope, _ = linear_fit(ns, [p[2] for p in points])
    # Per-file time of each segment; the first one also pays imports and warm-up.
    segments = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in itertools.pairwise(points)]
    first, last = segments[0], segments[-1]
    rows = [
        Row(
            "10",
            f"create {total:,} files, implicit uids (directory)",
            f"{seconds(slope)}/file",
            "",
            f"last/second {last / first:.2f}",
            "linear",
            last / first <= 1.5,
            f"{created['points'][-1][1]:.1f} s in all; RSS {mem_slope:.0f} B/file",
        ),
        Row(
            "10",
            "  peak memory",
            f"{created['peak'] / 1e6:.0f} MB",
            "",
            "",
            "< 500 MB",
            created["peak"] < 500e6,
            "",
        ),
    ]

    sizes = [250, 500, 1_000] if ctx.quick else [25_000, 50_000, 100_000]
    lake = ctx.lake("c10-sync", s3=False)
    with File("scale/template.txt", lake=lake).open("wb") as handle:
        handle.write(KB)
    template = lake.lineage.creation_of("scale/template.txt")
    if template is None:
        raise RuntimeError("no creation record of the template")
    done = 1  # the template's own COMPLETE record
    timings = []
    for size in sizes:
        _fill_records(lake, template, done, size)
        done = size
        fresh = ctx.root / "homes" / ctx.unique("c10-fresh")
        result = _python(_SYNC, str(fresh), lake.settings.remote)
        timings.append((size, result["seconds"], result["peak"], result["added"]))
    slope, _ = linear_fit([t[0] for t in timings], [t[1] for t in timings])
    per_first = timings[0][1] / timings[0][0]
    per_last = timings[-1][1] / timings[-1][0]
    peak = max(t[2] for t in timings)
    detail = ", ".join(f"{n:,}: {s:.2f} s" for n, s, _, _ in timings)
    rows += [
        Row(
            "10",
            f"sync the index from {sizes[-1]:,} events (directory)",
            f"{seconds(slope)}/event",
            "",
            f"last/first {per_last / per_first:.2f}",
            "linear",
            per_last / per_first <= 1.5,
            detail,
        ),
        Row(
            "10",
            "  peak memory",
            f"{peak / 1e6:.0f} MB",
            "",
            "",
            "< 500 MB",
            peak < 500e6,
            "",
        ),
    ]
    return rows


CASES: dict[str, Callable[[Context], list[Row]]] = {
    "1": case_1,
    "2": case_2,
    "3": case_3,
    "4": case_4,
    "5": case_5,
    "6": case_6,
    "7": case_7,
    "8": case_8,
    "9": case_9,
    "10": case_10,
    "11": case_11,
    "12": case_12,
    "13": case_13,
}
