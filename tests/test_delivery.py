"""Delivering events to an OpenLineage consumer, through the on-disk outbox.

The consumer is any OpenLineage HTTP consumer: here a small server on 127.0.0.1 that takes
``POST /api/v1/lineage``, records every body and checks it against the OpenLineage model. These
tests assert only what radops sends and when; what Marquez makes of the events is tested against
the real Marquez in tests/test_marquez.py. A consumer that is down or failing never fails a
creation: the events wait in the outbox until a later flush.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from radops.cli.app import app
from radops.data_lake import File, file_creator
from radops.lake import DataLake
from radops.lineage.events import function_of
from radops.settings import Settings
from tests.conftest import TEST_EMAIL, MakeLake
from tests.olschema import validate_event

ROOT = Path(__file__).parents[1]
ENDPOINT = "/api/v1/lineage"


class Consumer:
    """A stand-in lineage server. Its port is reserved at once; it listens only once started."""

    def __init__(self, status: int = 201) -> None:
        self.status = status
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.invalid: list[str] = []
        self.posts = 0
        self._lock = threading.Lock()
        consumer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = consumer.record(self.path, dict(self.headers), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        # Bound but not listening: connections are refused until start(), and no other
        # process can take the port meanwhile.
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.server.server_bind()
        self.port = self.server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def record(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self._lock:
            self.posts += 1
            if path != ENDPOINT:
                self.invalid.append(f"POST to {path}")
                return 404
            if self.status >= 300:
                return self.status
            event = json.loads(body)
            try:
                validate_event(event)
            except AssertionError as exc:
                self.invalid.append(str(exc))
            self.bodies.append(event)
            self.headers.append(headers)
            return self.status

    def start(self) -> None:
        self.server.server_activate()
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join()
        self.server.server_close()

    def run_keys(self) -> list[tuple[str, str]]:
        """(runId, eventType) of every accepted event, in arrival order."""
        with self._lock:
            return [(e["run"]["runId"], e["eventType"]) for e in self.bodies]

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            assert not self.invalid, self.invalid
            return list(self.bodies)


@pytest.fixture
def consumer() -> Iterator[Consumer]:
    server = Consumer()
    try:
        yield server
    finally:
        server.stop()


@file_creator
def shout(f: File, output_uid: str) -> File:
    with f.open() as handle:
        text = handle.read()
    out = File(output_uid)
    with out.open("w") as handle:
        handle.write(text.upper())
    return out


def _create(lake: DataLake) -> None:
    """Two runs: a direct write (in.txt), then a file_creator step (out.txt)."""
    with File("in.txt", lake=lake).open("w") as handle:
        handle.write("quiet")
    shout(File("in.txt", lake=lake), output_uid="out.txt")


def _stop_sender(lake: DataLake) -> None:
    """Stop the background sender (it makes one last attempt), so the test flushes alone."""
    lake.lineage.outbox.close()
    lake.lineage.outbox.wait(60)


def _flush_cli(cli_env: dict[str, str], url: str) -> Result:
    return CliRunner().invoke(
        app, ["lineage", "flush"], env={**cli_env, "RADOPS_MARQUEZ_URL": url, "COLUMNS": "200"}
    )


def test_events_reach_the_consumer(make_lake: MakeLake, consumer: Consumer) -> None:
    """Every run's START and COMPLETE arrive once, as stored in the lake, with the API key."""
    consumer.start()
    lake = make_lake("machine-a", marquez_url=consumer.url, marquez_api_key="s3cret-key")
    _create(lake)
    assert lake.lineage.outbox.wait(60)
    assert lake.lineage.outbox.pending() == []

    events = consumer.events()
    keys = consumer.run_keys()
    assert len(keys) == len(set(keys)) == 4
    step = [e for e in events if function_of(e) == f"{__name__}.shout"]
    assert sorted(e["eventType"] for e in step) == ["COMPLETE", "START"]
    assert step[0]["run"]["runId"] == step[1]["run"]["runId"]
    [complete] = [e for e in step if e["eventType"] == "COMPLETE"]
    [start] = [e for e in step if e["eventType"] == "START"]
    assert start["eventTime"] <= complete["eventTime"]
    assert complete == lake.lineage.creation_of("out.txt")
    assert complete["run"]["facets"]["radops_run"]["inputs"] == ["in.txt"]
    writes = [e for e in events if function_of(e) == "radops.File.write"]
    assert sorted(e["eventType"] for e in writes) == ["COMPLETE", "START"]
    assert all(h.get("Authorization") == "Bearer s3cret-key" for h in consumer.headers)


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
def test_a_down_consumer_never_fails_a_creation(
    make_lake: MakeLake, consumer: Consumer, cli_env: dict[str, str]
) -> None:
    """Consumer down: the creation succeeds and its events wait; `lineage flush` sends them."""
    lake = make_lake("machine-a", marquez_url=consumer.url)  # the consumer is not listening
    _create(lake)
    assert File("out.txt", lake=lake).exists_remotely()
    assert lake.lineage.creation_of("out.txt") is not None  # recorded in the lake regardless
    assert len(lake.lineage.outbox.pending()) == 4
    _stop_sender(lake)
    assert len(lake.lineage.outbox.pending()) == 4

    without = CliRunner().invoke(app, ["lineage", "flush"], env={**cli_env, "COLUMNS": "200"})
    assert without.exit_code == 0
    assert "no lineage consumer is configured; 4 event(s) queued" in without.stderr

    consumer.start()
    flushed = _flush_cli(cli_env, consumer.url)
    assert flushed.exit_code == 0, flushed.stderr
    assert "delivered 4 event(s), 0 still queued" in flushed.stderr
    assert lake.lineage.outbox.pending() == []
    keys = consumer.run_keys()
    assert len(keys) == len(set(keys)) == 4
    assert {e["eventType"] for e in consumer.events()} == {"START", "COMPLETE"}

    again = _flush_cli(cli_env, consumer.url)
    assert "delivered 0 event(s), 0 still queued" in again.stderr
    assert len(consumer.run_keys()) == 4


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
def test_a_failing_consumer_keeps_events_queued(
    make_lake: MakeLake, consumer: Consumer, cli_env: dict[str, str]
) -> None:
    """HTTP 500: nothing is lost, nothing is retried in a loop, and a later flush delivers."""
    consumer.status = 500
    consumer.start()
    lake = make_lake("machine-a", marquez_url=consumer.url)
    with File("x.txt", lake=lake).open("w") as handle:
        handle.write("x")
    _stop_sender(lake)
    outbox = lake.lineage.outbox
    assert len(outbox.pending()) == 2
    assert consumer.posts >= 1

    before = consumer.posts
    result = outbox.flush()
    assert (result.delivered, result.failed, result.remaining) == (0, 1, 2)
    assert consumer.posts == before + 1  # stops at the first failure; no transport retries

    failed = _flush_cli(cli_env, consumer.url)
    assert failed.exit_code == 1
    assert "delivered 0 event(s), 2 still queued" in failed.stderr
    assert consumer.bodies == []

    consumer.status = 201
    assert _flush_cli(cli_env, consumer.url).exit_code == 0
    assert outbox.pending() == []
    assert sorted(t for _, t in consumer.run_keys()) == ["COMPLETE", "START"]


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
def test_a_queued_event_cut_short_is_set_aside(
    make_lake: MakeLake, consumer: Consumer, caplog: pytest.LogCaptureFixture
) -> None:
    """Queue files are not fsynced: one a power loss cut short is kept aside, with a warning,
    and the events queued behind it are still delivered."""
    lake = make_lake("machine-a", marquez_url=consumer.url)  # not listening yet
    with File("x.txt", lake=lake).open("w") as handle:
        handle.write("x")
    _stop_sender(lake)
    outbox = lake.lineage.outbox
    first = outbox.pending()[0]
    cut = first.with_name("00000000-0000-7000-8000-000000000000.json")  # sorts first
    partial = first.read_text()[:40]
    cut.write_text(partial)

    consumer.start()
    with caplog.at_level("WARNING", logger="radops.lineage"):
        result = outbox.flush()
    assert (result.delivered, result.failed, result.remaining) == (2, 0, 0)
    assert sorted(t for _, t in consumer.run_keys()) == ["COMPLETE", "START"]
    aside = cut.with_suffix(".unreadable")
    assert aside.read_text() == partial
    assert f"could not be read; it is kept in {aside}" in caplog.text


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
def test_the_sender_thread_ends_when_idle_and_comes_back(
    make_lake: MakeLake, consumer: Consumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One sender thread serves a burst of creations, ends once the queue stays empty, and a
    later creation starts a new one: an unused outbox leaves no thread behind."""
    from radops.lineage import delivery

    monkeypatch.setattr(delivery, "IDLE_EXIT", 0.2)
    consumer.start()
    lake = make_lake("machine-a", marquez_url=consumer.url)
    outbox = lake.lineage.outbox
    with File("one.txt", lake=lake).open("w") as handle:
        handle.write("1")
    assert outbox.wait(60)
    deadline = time.monotonic() + 30
    while outbox._thread is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert outbox._thread is None  # ended: idle for longer than IDLE_EXIT
    with File("two.txt", lake=lake).open("w") as handle:
        handle.write("2")
    assert outbox.wait(60)
    assert len(consumer.run_keys()) == 4  # START and COMPLETE of both, each once


KILLED = textwrap.dedent(
    """\
    import os
    import signal

    from radops.data_lake import File

    with File("kept.txt").open("w") as handle:
        handle.write("survives")
    print("created", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_queued_events_survive_a_killed_process(
    make_lake: MakeLake, consumer: Consumer, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """Events queued by a process that was killed are on disk, and a later flush sends them."""
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
        **cli_env,
        "RADOPS_MARQUEZ_URL": consumer.url,  # not listening yet
        "PYTHONPATH": str(ROOT),
        "PYTHONWARNINGS": "error",
    }
    ran = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == -signal.SIGKILL, ran.stderr
    assert ran.stdout == "created\n"
    queued = sorted((Path(cli_env["RADOPS_HOME"]) / "state" / "outbox").glob("*.json"))
    assert len(queued) == 2
    assert {json.loads(p.read_text())["eventType"] for p in queued} == {"START", "COMPLETE"}

    consumer.start()
    lake = make_lake("machine-a", marquez_url=consumer.url)  # the same home
    result = lake.lineage.outbox.flush()
    assert (result.delivered, result.failed, result.remaining) == (2, 0, 0)
    assert not any(p.exists() for p in queued)
    events = consumer.events()
    assert len(set(consumer.run_keys())) == 2
    [complete] = [e for e in events if e["eventType"] == "COMPLETE"]
    assert complete == lake.lineage.creation_of("kept.txt")
    assert complete["run"]["facets"]["radops_run"]["email"] == TEST_EMAIL


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
def test_openlineage_url_is_passed_through(
    monkeypatch: pytest.MonkeyPatch,
    consumer: Consumer,
    remote: str,
    endpoint: str | None,
    tmp_path: Path,
) -> None:
    """Without RADOPS_MARQUEZ_URL, openlineage-python's own configuration picks the transport."""
    from openlineage.client.transport.http import HttpTransport

    consumer.start()
    # openlineage-python reads os.environ itself; Settings.load is given the same environment.
    monkeypatch.setenv("OPENLINEAGE_URL", consumer.url)
    settings = Settings.load(
        env={"OPENLINEAGE_URL": consumer.url},
        home=tmp_path / "machine-a",
        remote=remote,
        s3_endpoint_url=endpoint,
        email=TEST_EMAIL,
    )
    assert settings.marquez_url is None
    assert settings.openlineage_config == "env OPENLINEAGE_URL"
    lake = DataLake(settings)
    try:
        environment = dict(os.environ)
        transport = lake.lineage.outbox.transport
        assert dict(os.environ) == environment  # radops leaves the environment as it was
        assert isinstance(transport, HttpTransport)
        assert transport.url == consumer.url
        with File("ol.txt", lake=lake).open("w") as handle:
            handle.write("through openlineage-python")
        assert lake.lineage.outbox.wait(60)
        events = consumer.events()
        assert sorted(e["eventType"] for e in events) == ["COMPLETE", "START"]
        assert events[0]["run"]["runId"] == events[1]["run"]["runId"]
        assert lake.lineage.creation_of("ol.txt") in events
    finally:
        lake.local.close()

    # Nothing configured: no transport, and nothing is queued.
    bare = Settings.load(env={}, home=tmp_path / "machine-b", remote=remote, email=TEST_EMAIL)
    assert bare.openlineage_config is None
    plain = DataLake(bare)
    try:
        assert plain.lineage.outbox.transport is None
        with File("quiet.txt", lake=plain).open("w") as handle:
            handle.write("no consumer")
        assert plain.lineage.outbox.pending() == []
    finally:
        plain.local.close()
