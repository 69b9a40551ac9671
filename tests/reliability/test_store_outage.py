"""Fault: the object store goes away in the middle of a run of 200 creations, then comes back.

A subprocess runs ``tests.reliability.outage_pipeline``: a ``@file_creator`` step called 200
times with distinct parameters. After :data:`FAULT_AT` creations the store goes away for
:data:`OUTAGE_SECONDS`, then comes back:

- S3: a dedicated SeaweedFS server (not the session's shared one) is killed with SIGKILL and
  started again on the same ports and data directory, so the objects survive.
- directory: the lake on a shared file system loses its share. The pipeline runs in its own
  user and mount namespace (``unshare --user --map-root-user --mount``) and an empty tmpfs is
  mounted over the lake directory, then unmounted: the process sees the bare mount point, as
  when an NFS or SMB share drops, while the test (outside the namespace) keeps the real lake.

Whatever the run's exit code, a fresh machine then audits the lake: every object verifies
against its sha256, holds the bytes its parameters call for, and has the COMPLETE creation
record of the run named in its ``radops-run-id`` metadata; no temp file is left in the lake or
in the pipeline's local storage. A rerun must complete the rest, skipping what was done, and
leave all 200 outputs present and correct.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

from radops.errors import StoreError
from radops.lake import DataLake, set_default_lake
from radops.objects import RUN_KEY
from radops.settings import Settings
from radops.stores import s3 as s3_module
from radops.stores.s3 import S3Store
from tests.capabilities import need
from tests.conftest import TEST_EMAIL
from tests.reliability.outage_pipeline import content, make_item, output_uid
from tests.s3_proxy import S3Proxy
from tests.seaweed import SeaweedServer, free_ports, start_seaweed

REPO = Path(__file__).resolve().parents[2]
COUNT = 200
# OUTAGE_TEST_SECONDS=120 (for instance) reproduces an outage the retries cannot ride out.
FAULT_AT = int(os.environ.get("OUTAGE_TEST_FAULT_AT", "60"))  # creations before the outage
# How long the store stays away (plus SeaweedFS' restart, under a second).
OUTAGE_SECONDS = float(os.environ.get("OUTAGE_TEST_SECONDS", "4"))
PACE = {"s3": 0.0, "directory": 0.02}  # seconds between calls: the fast directory lake
# would otherwise finish before the outage is over
RUN_TIMEOUT = 240.0 + OUTAGE_SECONDS  # a failing call gives up within ~200 s (two operations)
PIPELINE = (
    "import sys; from tests.reliability.outage_pipeline import main; "
    "sys.exit(main(int(sys.argv[1]), float(sys.argv[2])))"
)


@attrs.define
class Run:
    """What one pipeline run printed."""

    code: int
    ran: list[int]
    skipped: list[int]
    errors: list[str]
    slowest: float  # seconds, the longest call (the one that rode out the outage)
    stderr: str


@attrs.define
class Audit:
    """The lake as a machine that never ran the pipeline sees it."""

    present: set[int]
    problems: list[str]
    missing_records: set[int]


@pytest.fixture
def outage_server(tmp_path: Path) -> Iterator[SeaweedServer]:
    """A SeaweedFS server for this test alone: it will be killed and restarted."""
    directory = tmp_path / "seaweed-outage"
    directory.mkdir()
    server = start_seaweed(directory)
    try:
        server.create_bucket("lake")
        yield server
    finally:
        server.stop()


def _settings(home: Path, remote: str, endpoint: str | None) -> Settings:
    return Settings.load(
        env={}, home=home, remote=remote, s3_endpoint_url=endpoint, email=TEST_EMAIL
    )


def _env(home: Path, remote: str, endpoint: str | None) -> dict[str, str]:
    env = {
        **os.environ,
        "RADOPS_HOME": str(home),
        "RADOPS_REMOTE": remote,
        "RADOPS_EMAIL": TEST_EMAIL,
        "PYTHONPATH": str(REPO),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    if endpoint:
        env["RADOPS_S3_ENDPOINT_URL"] = endpoint
    return env


class Pipeline:
    """One run of the pipeline in a subprocess, its progress followed line by line."""

    def __init__(self, env: dict[str, str], pace: float, *, namespace: bool, log: Path) -> None:
        prefix = ["unshare", "--user", "--map-root-user", "--mount"] if namespace else []
        self._stderr = log.open("wb")
        self.process = subprocess.Popen(
            [*prefix, sys.executable, "-c", PIPELINE, str(COUNT), str(pace)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.log = log
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def done(self) -> int:
        return sum(1 for line in self.lines if line.startswith("done "))

    def wait_for(self, creations: int, timeout: float = 60.0) -> None:
        """Block until ``creations`` calls finished (fails if the run ends or stalls first)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.done() < creations:
                left = deadline - time.monotonic()
                assert left > 0, f"only {self.done()} creations after {timeout} s"
                assert self.process.poll() is None or self._reader.is_alive(), (
                    f"the pipeline ended after {self.done()} creations:\n{self._tail()}"
                )
                self._changed.wait(min(left, 0.5))

    def finish(self) -> Run:
        try:
            code = self.process.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the pipeline did not end within {RUN_TIMEOUT} s") from None
        self._reader.join(timeout=10)
        self._stderr.close()
        if self.process.stdout is not None:
            self.process.stdout.close()
        ran, skipped, errors, slowest = [], [], [], 0.0
        for line in self.lines:
            words = line.split(" ", 3)
            if words[0] == "done":
                (ran if words[2] == "ran" else skipped).append(int(words[1]))
                slowest = max(slowest, float(words[3]))
            elif words[0] == "error":
                errors.append(line)
        return Run(code, ran, skipped, errors, slowest, self.log.read_text(errors="replace"))

    def _tail(self) -> str:
        return "\n".join(self.lines[-5:]) + "\n" + self.log.read_text(errors="replace")[-3000:]


class Outage:
    """Takes the store away and brings it back."""

    def __init__(self, kind: str, lake_dir: Path, server: SeaweedServer | None) -> None:
        self.kind = kind
        self.lake_dir = lake_dir
        self.server = server

    def begin(self, pipeline: Pipeline) -> None:
        if self.server is not None:
            self.server.kill(signal.SIGKILL)
        else:
            self._in_namespace(pipeline, "mount", "-t", "tmpfs", "-o", "size=64m", "outage")

    def end(self, pipeline: Pipeline) -> None:
        if self.server is not None:
            self.server.restart()
        elif pipeline.process.poll() is None:  # a run that gave up took its namespace along
            self._in_namespace(pipeline, "umount", "-l")

    def _in_namespace(self, pipeline: Pipeline, *command: str) -> None:
        pid = str(pipeline.process.pid)  # unshare execs the interpreter: same pid
        subprocess.run(
            [
                "nsenter",
                "-t",
                pid,
                "-U",
                "-m",
                "--preserve-credentials",
                *command,
                str(self.lake_dir),
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )


def _audit(remote: str, endpoint: str | None, home: Path) -> Audit:
    """Check every object of the lake from a machine that never ran the pipeline."""
    home.mkdir(parents=True)
    lake = DataLake(_settings(home, remote, endpoint))
    problems: list[str] = []
    present: set[int] = set()
    missing_records: set[int] = set()
    expected = {output_uid(i): i for i in range(COUNT)}
    try:
        for listed in lake.files():
            uid = listed.key
            if uid not in expected:
                problems.append(f"unexpected object {uid!r}")
                continue
            index = expected[uid]
            meta = lake.head(uid)
            if meta is None or meta.sha256 is None:
                problems.append(f"{uid}: no recorded sha256 (half-written)")
                continue
            tmp = home / "audit.tmp"
            try:
                lake.store.get(uid, tmp, meta=meta)  # verifies size and sha256
                data = tmp.read_text(encoding="utf-8")
            except Exception as exc:  # noqa: BLE001 - every failure is a finding
                problems.append(f"{uid}: {type(exc).__name__}: {exc}")
                continue
            finally:
                tmp.unlink(missing_ok=True)
            if data != content(index):
                problems.append(f"{uid}: wrong bytes")
                continue
            present.add(index)
            record = lake.lineage.creation_of(uid)
            run_id = meta.metadata.get(RUN_KEY)
            if record is None or record["eventType"] != "COMPLETE":
                missing_records.add(index)
                problems.append(f"{uid}: no COMPLETE creation record (run {run_id})")
            elif record["run"]["runId"] != run_id:
                missing_records.add(index)
                problems.append(
                    f"{uid}: made by run {run_id}, whose COMPLETE record is missing "
                    f"(the record found is of run {record['run']['runId']})"
                )
        problems += _leftover_temp_files(lake, remote)
    finally:
        lake.local.close()
        shutil.rmtree(home, ignore_errors=True)
    return Audit(present, problems, missing_records)


def _leftover_temp_files(lake: DataLake, remote: str) -> list[str]:
    if remote.startswith("s3://"):
        bucket, _, prefix = remote.removeprefix("s3://").partition("/")
        uploads = lake.store.client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)  # type: ignore[attr-defined]
        return [f"unfinished multipart upload {u['Key']}" for u in uploads.get("Uploads", [])]
    tmp = Path(remote) / ".radops" / "tmp"
    return [f"temp file in the lake: {p}" for p in tmp.rglob("*")] if tmp.exists() else []


def _local_temp_files(settings: Settings) -> list[str]:
    tmp = settings.tmp_dir
    return [f"temp file in local storage: {p}" for p in tmp.rglob("*")] if tmp.exists() else []


def _summary(indices: set[int] | list[int]) -> str:
    return f"{len(indices)} ({', '.join(str(i) for i in sorted(indices)[:8])}...)"


@pytest.mark.parametrize("kind", ["directory", "s3"])
def test_object_store_outage(
    kind: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    trials: Callable[[int], int],
    report: Callable[..., None],
) -> None:
    if kind == "directory":  # the share is taken away in the pipeline's mount namespace
        need(request.config, "userns")
    server: SeaweedServer | None = (
        request.getfixturevalue("outage_server") if kind == "s3" else None
    )
    endpoint = server.endpoint if server else None
    count = trials(1)
    failures = 0
    data_lost = 0
    events_lost = 0
    notes: list[str] = []
    problems: list[str] = []
    silent_losses: list[str] = []
    for trial in range(count):
        base = tmp_path / f"trial-{trial}"
        base.mkdir()
        lake_dir = base / "remote"
        lake_dir.mkdir()
        remote = f"s3://lake/outage-{trial}" if server else str(lake_dir)
        home = base / "home"
        env = _env(home, remote, endpoint)
        settings = _settings(home, remote, endpoint)
        outage = Outage(kind, lake_dir, server)

        # -- the run, with the outage in the middle ----------------------------------------
        pipeline = Pipeline(env, PACE[kind], namespace=server is None, log=base / "run1.log")
        try:
            pipeline.wait_for(FAULT_AT)
            before = pipeline.done()
            started = time.monotonic()
            outage.begin(pipeline)
            time.sleep(OUTAGE_SECONDS)
            during = pipeline.done() - before
            outage.end(pipeline)
            away = time.monotonic() - started
        except BaseException:
            pipeline.process.kill()  # the test failed: do not leave the run behind
            raise
        first = pipeline.finish()

        # -- nothing half-written, nothing unrecorded ------------------------------------
        audit = _audit(remote, endpoint, base / "auditor-1")
        trial_problems = [f"after the run: {p}" for p in audit.problems]
        trial_problems += [f"after the run: {p}" for p in _local_temp_files(settings)]
        lost = set(first.ran) - audit.present
        unrecorded = (set(first.ran) & audit.present) & audit.missing_records
        lost_events = (set(first.ran) - audit.present) | unrecorded
        if first.code != 0:
            # The one acceptable failure: a clear StoreError once the retries are exhausted.
            if not (len(first.errors) == 1 and " StoreError: " in first.errors[0]):
                trial_problems.append(
                    f"the run failed without one clear StoreError (exit {first.code}): "
                    f"{first.errors}\n{first.stderr[-2000:]}"
                )
            if "Traceback" in first.stderr:
                trial_problems.append(f"a traceback was printed:\n{first.stderr[-2000:]}")

        # -- the rerun completes the rest, skipping what was done ------------------------
        second = Pipeline(env, 0.0, namespace=False, log=base / "run2.log").finish()
        final = _audit(remote, endpoint, base / "auditor-2")
        if second.code != 0:
            trial_problems.append(
                f"the rerun failed (exit {second.code}): {second.errors}; if this is an "
                "OutputsError or FileExistsInLakeError about an output left by the outage, it "
                "needs the orphan recovery of lake.py/creator.py"
            )
        elif set(second.skipped) != audit.present:
            trial_problems.append(
                f"the rerun skipped {_summary(second.skipped)}, the lake held "
                f"{_summary(audit.present)}"
            )
        trial_problems += [f"after the rerun: {p}" for p in final.problems]
        trial_problems += [f"after the rerun: {p}" for p in _local_temp_files(settings)]
        if final.present != set(range(COUNT)):
            trial_problems.append(
                f"after the rerun, missing outputs: {_summary(set(range(COUNT)) - final.present)}"
            )

        failures += bool(trial_problems or lost or lost_events)
        data_lost += len(lost)
        events_lost += len(lost_events)
        problems += [f"trial {trial}: {p}" for p in trial_problems]
        if lost:
            silent_losses.append(
                f"trial {trial}: {_summary(lost)} creations reported done by the run are not "
                f"in the lake (lost records: {len(lost_events)})"
            )
        outcome = "completed" if first.code == 0 else f"failed: {first.errors[0]}"
        notes.append(
            f"trial {trial}: {before} completed before the outage, {during} during it "
            f"({away:.1f} s away); run {outcome}; slowest call {first.slowest:.1f} s; "
            f"rerun ran {len(second.ran)}, skipped {len(second.skipped)}"
        )

    report(
        fault="object store outage",
        remote=kind,
        trials=count,
        failures=failures,
        data_lost=data_lost,
        events_lost=events_lost,
        notes="; ".join(notes),
    )
    if any("no COMPLETE creation record" in p or "whose COMPLETE record" in p for p in problems):
        problems.append(
            "objects without their COMPLETE record are orphans: a rerun skips them as done "
            "until orphan recovery (lake.py/creator.py, `radops datalake repair`) or the "
            "412-on-retry fix in S3Store.put_new handles them"
        )
    assert not problems, "\n".join(problems)
    # A directory lake whose share is gone must not grow a second lake on the bare mount point
    # (whose files would vanish when the share comes back): writes fail with a clear error.
    assert not silent_losses, "\n".join(silent_losses)


# -- the error once the retries are exhausted (fast: the client is told to try twice) ---------


class _Unavailable(http.server.BaseHTTPRequestHandler):
    """An S3 endpoint that answers every request 503 ServiceUnavailable, as while restarting."""

    hits = 0

    def _answer(self) -> None:
        type(self).hits += 1
        body = b"<Error><Code>ServiceUnavailable</Code><Message>restarting</Message></Error>"
        self.send_response(503)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = _answer

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def two_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_module, "MAX_ATTEMPTS", 2)


@pytest.mark.usefixtures("two_attempts")
def test_an_unreachable_store_is_one_clear_error(tmp_path: Path) -> None:
    """Connection refused on every attempt: one StoreError naming the store and what to do."""
    port = free_ports(1)[0]
    store = S3Store("s3://lake/p", endpoint_url=f"http://127.0.0.1:{port}")
    source = tmp_path / "data.txt"
    source.write_text("x")
    with pytest.raises(StoreError) as caught:
        store.put_new(source, "a/b.txt", sha256="0" * 64)
    message = str(caught.value)
    assert message.startswith(f"cannot upload 'a/b.txt': s3://lake/p (http://127.0.0.1:{port})")
    assert " is unreachable (Could not connect to the endpoint URL: " in message
    assert re.search(
        r"; gave up after 2 attempts in \d+ s; check that the store is up and reachable, then "
        r"run again$",
        message,
    ), message


@pytest.mark.usefixtures("two_attempts")
def test_a_store_answering_503_is_one_clear_error() -> None:
    """5xx on every attempt: retried, then one StoreError that says how often it was tried."""
    _Unavailable.hits = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        store = S3Store("s3://lake/p", endpoint_url=endpoint)
        with pytest.raises(StoreError) as caught:
            store.get_record("events/x.json")
    finally:
        server.shutdown()
        server.server_close()
    assert str(caught.value) == (
        f"cannot read record events/x.json: s3://lake/p ({endpoint}) is unavailable "
        "(ServiceUnavailable); gave up after 2 attempts; check that the store is up, then run "
        "again"
    )
    assert _Unavailable.hits == 2


# -- a write that lands while its answer is lost (the server dies after storing it) -----------


@pytest.fixture
def s3_proxy(request: pytest.FixtureRequest) -> Iterator[S3Proxy]:
    """A proxy in front of SeaweedFS that can lose an answer, whichever client sent the
    request (boto3, or the fast path for small objects)."""
    server: SeaweedServer = request.getfixturevalue("seaweed")
    proxy = S3Proxy(server.endpoint)
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def s3_lake(tmp_path: Path, s3_proxy: S3Proxy) -> Iterator[DataLake]:
    remote = f"s3://lake/lost-answer-{tmp_path.name[-40:]}"
    lake = DataLake(_settings(tmp_path / "home", remote, s3_proxy.endpoint))
    set_default_lake(lake)
    try:
        yield lake
    finally:
        set_default_lake(None)
        lake.local.close()


@pytest.mark.parametrize("lost", ["output", "record"])
def test_a_write_whose_answer_was_lost_is_not_a_conflict(
    s3_lake: DataLake, s3_proxy: S3Proxy, tmp_path: Path, lost: str
) -> None:
    """The retry of a conditional PUT that had landed gets 412: that is our own write."""
    uid = output_uid(7)
    # The request reaches the store, which stores it; its answer never comes back.
    s3_proxy.lose_answer("outage/item-007" if lost == "output" else "/.radops/")
    make_item(7, output_uid=uid)
    assert s3_proxy.lost, "no answer was lost"
    meta = s3_lake.head(uid)
    assert meta is not None
    auditor = _audit(s3_lake.settings.remote, s3_lake.settings.s3_endpoint_url, tmp_path / "a")
    assert auditor.problems == [] and auditor.present == {7}
