"""Fault: the lineage backend (OpenLineage/Marquez endpoint) is down, then slow, then failing.

One machine (``RADOPS_HOME``) makes files in separate processes while the endpoint configured as
``RADOPS_MARQUEZ_URL`` goes through the issue's outage, in order:

1. **refused**: the port is bound but not listening (connection refused);
2. **slow**: every request is answered after 30 s (the event is then accepted, whether or not
   the client is still waiting, as a server that commits before it answers would);
3. **failing**: every request gets HTTP 500 (nothing accepted); a process is SIGKILLed here
   with its events queued;
4. **recovered**: ``radops lineage flush`` sends the queue, then a process makes files against
   the healthy endpoint, which is the latency baseline.

Each process makes the same creations (``File(...).open("w")``, a ``@file_creator`` with a
declared output, one with implicit outputs, whose skip check asks Marquez) and reports how long
each took and when it finished, so the test measures the latency each mode adds per creation
and what exiting with a queue costs. A long-lived process (the test itself, another
``RADOPS_HOME``) also makes a file during the slow phase: its sender waits for the 30 s answer
instead of giving up and sending the event again.

Finally every event the machines produced (their lineage indexes) is compared with what the
endpoint accepted: none lost, and exactly one copy per (runId, eventType) except the one event
whose request was in flight when its process exited during the slow phase. radops could not
learn that the endpoint took it, so it sent it again (at-least-once); the copies are identical,
eventTime included, so a consumer deduplicates them exactly.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from radops.cli.app import app
from radops.data_lake import File
from radops.lake import DataLake
from radops.lineage.delivery import ANSWER_TIMEOUT, EXIT_WAIT
from tests.conftest import MakeLake
from tests.olschema import validate_event

ROOT = Path(__file__).parents[2]
ENDPOINT = "/api/v1/lineage"
SLOW_ANSWER = 30.0  # the slow endpoint answers after this many seconds
ROUNDS = 2  # rounds of the three kinds of creation per process: 6 timed creations
# The latency bound asserted per creation and for radops' exit hook: a creation that waited on
# the consumer would wait at least RADOPS_LINEAGE_TIMEOUT (5 s) more while it is slow; 2 s is
# well below that and ten times the largest difference measured with `pytest -n 2` (0.2 s).
BOUND = 2.0
WAIT = 120.0  # upper bound for anything the test awaits (it returns as soon as it happens)
Key = tuple[str, str]  # (runId, eventType)

assert SLOW_ANSWER < ANSWER_TIMEOUT  # the sender's patience covers the slow endpoint

CHILD = """\
import atexit
import json
import os
import sys
import time

import boto3  # noqa: F401 - imported before the clock runs, like a warm pipeline process
import openlineage.client.transport.http  # noqa: F401

from radops.data_lake import File, file_creator

PHASE = os.environ["OUTAGE_PHASE"]
# Registered before radops registers its own exit hook, so it runs after it (last in, first
# out): the time it prints is when radops' wait for the queue ended.
atexit.register(lambda: print(json.dumps({"exited": time.time()}), flush=True))


@file_creator
def shout(src: File, output_uid: str) -> File:
    with src.open() as handle:
        text = handle.read()
    out = File(output_uid)
    with out.open("w") as handle:
        handle.write(text.upper())
    return out


@file_creator
def tally(src: File, phase: str) -> File:
    with src.open() as handle:
        text = handle.read()
    out = File(suffix=".txt")
    with out.open("w") as handle:
        handle.write(f"{phase}: {len(text)}")
    return out


def write(uid):
    with File(uid).open("w") as handle:
        handle.write(f"written during {PHASE}")
    return uid


def timed(kind, make):
    start = time.perf_counter()
    uid = make()
    return {"kind": kind, "uid": uid, "seconds": time.perf_counter() - start}


# Start-up costs (the S3 client, the index, the outbox) are the same in every mode but noisy
# under load: one untimed creation pays them before the clock runs.
warm_up = write(f"{PHASE}/warm-up.txt")
creations = []
for i in range(int(os.environ["OUTAGE_ROUNDS"])):
    raw = f"{PHASE}/raw-{i}.txt"
    creations.append(timed("File.open", lambda: write(raw)))
    creations.append(
        timed("file_creator", lambda: shout(File(raw), output_uid=f"{PHASE}/loud-{i}.txt").uid)
    )
    creations.append(timed("file_creator implicit", lambda: tally(File(raw), phase=PHASE).uid))
print(json.dumps({"creations": creations, "warm_up": warm_up, "done": time.time()}), flush=True)
if os.environ.get("OUTAGE_HOLD"):
    sys.stdin.read()  # the test kills this process here, with its events queued
"""


# -- the endpoint --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One request the endpoint received."""

    method: str
    mode: str
    key: Key | None  # the event's (runId, eventType), for a POST


class Endpoint:
    """A lineage endpoint whose mode the test switches: refuse, slow, fail (500) or ok.

    It records every request (``attempts``) and every event it accepted (``accepted``, in the
    order it accepted them), and validates each accepted event against the OpenLineage schema.
    GETs (Marquez questions) get 404 ("not known") when healthy, like a Marquez that has not
    seen the job.
    """

    def __init__(self) -> None:
        self.mode = "refuse"
        self.attempts: list[Attempt] = []
        self.accepted: list[dict[str, Any]] = []
        self.invalid: list[str] = []
        self._busy = 0
        self._changed = threading.Condition()
        self._release = threading.Event()  # set only at teardown: ends slow answers early
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(endpoint.handle("GET", self.path, b""))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self._answer(endpoint.handle("POST", self.path, body))

            def _answer(self, status: int) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    pass  # the client gave up (its process exited): the event was taken anyway
                finally:
                    endpoint.finished()

            def log_message(self, format: str, *args: object) -> None:
                pass

        # Bound but not listening: connections are refused, and no other process takes the port.
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.server.server_bind()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread: threading.Thread | None = None

    def switch(self, mode: str) -> None:
        """Change mode; the first switch away from refuse starts listening."""
        with self._changed:
            self.mode = mode
        if self._thread is None:
            self.server.server_activate()
            self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
            self._thread.start()

    def handle(self, method: str, path: str, body: bytes) -> int:
        event: dict[str, Any] | None = json.loads(body) if method == "POST" else None
        key = (event["run"]["runId"], event["eventType"]) if event is not None else None
        with self._changed:
            mode = self.mode
            self.attempts.append(Attempt(method, mode, key))
            self._busy += 1
            self._changed.notify_all()
        if mode == "slow":
            self._release.wait(SLOW_ANSWER)  # the fault itself, not a synchronisation
        if mode == "fail":
            return 500
        if event is None:
            return 404
        if path != ENDPOINT:
            with self._changed:
                self.invalid.append(f"POST to {path}")
            return 404
        try:
            validate_event(event)
        except AssertionError as exc:
            with self._changed:
                self.invalid.append(str(exc))
        with self._changed:
            self.accepted.append(event)
        return 201

    def finished(self) -> None:
        with self._changed:
            self._busy -= 1
            self._changed.notify_all()

    def wait_idle(self, timeout: float = WAIT) -> None:
        """Wait until no request is being handled (the slow answers have been given)."""
        with self._changed:
            assert self._changed.wait_for(lambda: self._busy == 0, timeout), "endpoint still busy"

    def stop(self) -> None:
        self._release.set()
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join()
        self.server.server_close()


@pytest.fixture
def endpoints() -> Iterator[Callable[[], Endpoint]]:
    made: list[Endpoint] = []

    def make() -> Endpoint:
        made.append(Endpoint())
        return made[-1]

    yield make
    for endpoint in made:
        endpoint.stop()


# -- the creating processes ----------------------------------------------------------------------


@dataclass
class Child:
    """A process that made files: its creations, when it finished them, and when it exited."""

    phase: str
    creations: list[dict[str, Any]]  # the timed ones
    warm_up: str  # the uid of the untimed first creation
    done: float
    process: subprocess.Popen[str]
    exited: float = 0.0  # when radops' exit hook returned
    ended: float = 0.0  # when the process was gone
    stderr: Path = field(default_factory=Path)

    @property
    def exit_cost(self) -> float:
        """Seconds radops kept the process at exit (its wait for queued events to go out)."""
        return self.exited - self.done

    @property
    def exit_total(self) -> float:
        """Seconds from its last creation until the process was gone (interpreter included)."""
        return self.ended - self.done

    @property
    def uids(self) -> list[str]:
        """Every file it made."""
        return [self.warm_up] + [c["uid"] for c in self.creations]


def start_child(script: Path, env: dict[str, str], phase: str, *, hold: bool = False) -> Child:
    """Run the creations in a new process; returns once they are done (the process may live)."""
    errors = script.parent / f"{phase.replace('/', '-')}.stderr"
    with errors.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(script)],
            cwd=script.parent,
            env={
                **env,
                "OUTAGE_PHASE": phase,
                "OUTAGE_ROUNDS": str(ROUNDS),
                **({"OUTAGE_HOLD": "1"} if hold else {}),
            },
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], WAIT)
    line = process.stdout.readline() if ready else ""
    if not line:
        process.kill()
        process.wait()
        pytest.fail(f"{phase}: the creating process failed:\n{errors.read_text()}")
    report = json.loads(line)
    return Child(
        phase, report["creations"], report["warm_up"], report["done"], process, stderr=errors
    )


def finish(child: Child) -> Child:
    """Wait for the process to exit by itself; it must succeed."""
    code = child.process.wait(timeout=WAIT)
    child.ended = time.time()
    assert child.process.stdout is not None and child.process.stdin is not None
    rest = child.process.stdout.read()
    child.process.stdout.close()
    child.process.stdin.close()
    assert code == 0, f"{child.phase}: exit {code}\n{child.stderr.read_text()}"
    child.exited = json.loads(rest)["exited"]
    return child


def queued(home: Path) -> dict[Key, dict[str, Any]]:
    """The events waiting in the outbox of ``home``, by (runId, eventType)."""
    events = (json.loads(p.read_text()) for p in (home / "state" / "outbox").glob("*.json"))
    return {(e["run"]["runId"], e["eventType"]): e for e in events}


def produced_by(lake: DataLake) -> dict[Key, dict[str, Any]]:
    """Every event this machine produced, by (runId, eventType).

    Its index also holds runs synced from the lake (other machines, earlier trials); START
    events are never stored in the lake, so the runs with a START are this machine's own.
    """
    events = list(lake.lineage.index.events())
    own = {e["run"]["runId"] for e in events if e["eventType"] == "START"}
    return {(e["run"]["runId"], e["eventType"]): e for e in events if e["run"]["runId"] in own}


# -- one trial of the outage ---------------------------------------------------------------------


@dataclass
class Figures:
    produced: int
    delivered: int  # distinct (runId, eventType) accepted
    accepted: int  # every copy accepted
    duplicates: int
    lost: int  # events the endpoint never accepted
    records_lost: int  # files without their creation record in the lake
    data_lost: int
    problems: list[str]  # latency or exit-wait bounds broken
    added: dict[str, float]  # mode -> largest added latency of a creation, but the one below
    slow_question: float  # the first Marquez question of a process while Marquez is slow
    timeout: float  # RADOPS_LINEAGE_TIMEOUT
    exit_costs: dict[str, float]  # mode -> seconds radops' exit hook kept the process
    exit_total: float  # the longest time from a process's last creation until it was gone


def run_trial(
    trial: int,
    tmp_path: Path,
    cli_env: dict[str, str],
    make_lake: MakeLake,
    endpoint: Endpoint,
) -> Figures:
    base = tmp_path / f"trial-{trial}"
    base.mkdir()
    home = base / "machine-a"
    script = base / "create.py"
    script.write_text(CHILD)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
        **cli_env,
        "RADOPS_HOME": str(home),
        "RADOPS_MARQUEZ_URL": endpoint.url,
        "PYTHONPATH": str(ROOT),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    cli = {**cli_env, "RADOPS_HOME": str(home), "RADOPS_MARQUEZ_URL": endpoint.url}
    checker = make_lake(f"trial-{trial}/checker")  # no consumer: reads the lake only
    timeout = checker.settings.lineage_timeout

    # 1. Connection refused.
    refused = finish(start_child(script, env, f"t{trial}/refused"))
    backlog = sorted((home / "state" / "outbox").glob("*.json"))
    assert len(backlog) == 2 * len(refused.uids)
    first = json.loads(backlog[0].read_text())
    oldest: Key = (first["run"]["runId"], first["eventType"])

    # 2. Slow: a long-lived process (this one, another home) and a short-lived one make files.
    endpoint.switch("slow")
    patient = make_lake(f"trial-{trial}/machine-b", marquez_url=endpoint.url)
    with File(f"t{trial}/patient.txt", lake=patient).open("w") as handle:
        handle.write("made while the endpoint is slow")
    slow = finish(start_child(script, env, f"t{trial}/slow"))
    slow_posts = [a.key for a in endpoint.attempts if a.mode == "slow" and a.method == "POST"]
    patient_keys = set(produced_by(patient))
    # The short-lived process sent the oldest queued event once, and exited before the answer.
    assert [k for k in slow_posts if k not in patient_keys] == [oldest]
    assert len(queued(home)) == 2 * (len(refused.uids) + len(slow.uids))

    # 3. HTTP 500; a process is killed with its events queued.
    endpoint.switch("fail")
    failing = finish(start_child(script, env, f"t{trial}/failing"))
    killed = start_child(script, env, f"t{trial}/killed", hold=True)
    records = [checker.lineage.creation_of(uid) for uid in killed.uids]
    killed_runs = {record["run"]["runId"] for record in records if record is not None}
    assert len(killed_runs) == len(killed.uids)
    killed_keys = {(run, kind) for run in killed_runs for kind in ("START", "COMPLETE")}
    assert killed_keys <= set(queued(home))
    killed.process.send_signal(signal.SIGKILL)
    assert killed.process.wait(timeout=WAIT) == -signal.SIGKILL
    for pipe in (killed.process.stdin, killed.process.stdout):
        assert pipe is not None
        pipe.close()
    assert killed_keys <= set(queued(home)), "events queued by the killed process were lost"
    waiting = queued(home)  # nothing was accepted yet: every event of the four processes
    assert len(waiting) == 2 * sum(len(c.uids) for c in (refused, slow, failing, killed))

    # 4. Recovery: `radops lineage flush` sends the whole queue, then a process on a healthy
    # endpoint (the baseline) sends its own events in the background as it goes.
    endpoint.switch("ok")
    flushed = CliRunner().invoke(app, ["lineage", "flush"], env={**cli, "COLUMNS": "200"})
    assert flushed.exit_code == 0, flushed.stderr
    assert f"delivered {len(waiting)} event(s), 0 still queued" in flushed.stderr
    healthy = finish(start_child(script, env, f"t{trial}/healthy"))
    final = CliRunner().invoke(app, ["lineage", "flush"], env={**cli, "COLUMNS": "200"})
    assert final.exit_code == 0, final.stderr
    assert "0 still queued" in final.stderr
    endpoint.wait_idle()  # the slow answers, 30 s after their requests
    assert patient.lineage.outbox.wait(WAIT)
    endpoint.wait_idle()

    # -- what was produced, and what the endpoint accepted
    machine = make_lake(f"trial-{trial}/machine-a")  # the children's home, read after they ran
    produced = produced_by(machine) | produced_by(patient)
    children = [refused, slow, failing, killed, healthy]
    creations = sum(len(c.uids) for c in children) + 1
    assert len(produced) == 2 * creations
    assert not endpoint.invalid, endpoint.invalid
    copies = Counter((e["run"]["runId"], e["eventType"]) for e in endpoint.accepted)
    assert set(copies) <= set(produced), "the endpoint accepted events nobody produced"
    for event in endpoint.accepted:  # every copy is the event as produced, eventTime included
        assert event == produced[(event["run"]["runId"], event["eventType"])]
    lost = set(produced) - set(copies)
    duplicates = {key: n - 1 for key, n in copies.items() if n > 1}
    # Exactly one event arrived twice: the one in flight when the slow phase's process exited.
    assert duplicates == {oldest: 1}, duplicates
    # The long-lived process waited for the slow answer (30 s) instead of giving up after
    # RADOPS_LINEAGE_TIMEOUT and sending the event again: one request, one copy.
    patient_start = next(key for key in patient_keys if key[1] == "START")
    assert [a.mode for a in endpoint.attempts if a.key == patient_start] == ["slow"]

    # -- the data itself, and the creation records in the lake
    uids = [uid for child in children for uid in child.uids] + [f"t{trial}/patient.txt"]
    data_lost = sum(1 for uid in uids if checker.head(uid) is None)
    records_lost = sum(
        1
        for uid in uids
        if (record := checker.lineage.creation_of(uid)) is None
        or (record["run"]["runId"], "COMPLETE") not in produced
    )

    # -- latency: each creation against the same creation on the healthy endpoint
    problems: list[str] = []
    added: dict[str, float] = {}
    slow_question = 0.0
    for child in (refused, slow, failing, killed):
        extra = [
            c["seconds"] - h["seconds"]
            for c, h in zip(child.creations, healthy.creations, strict=True)
        ]
        if child is slow:
            # Its first implicit-output creation asks Marquez (is this call done already?): the
            # question times out after RADOPS_LINEAGE_TIMEOUT, then the process asks its index.
            index = next(i for i, c in enumerate(child.creations) if "implicit" in c["kind"])
            slow_question = extra.pop(index)
            if not timeout - 0.5 <= slow_question <= timeout + BOUND:
                problems.append(f"the question to a slow Marquez took {slow_question:.2f} s")
        mode = child.phase.split("/")[1]
        added[mode] = max(extra)
        if max(extra) > BOUND:
            problems.append(f"{mode}: creations took longer by {extra} s")

    # -- exit: radops waits up to EXIT_WAIT for the queue, only while a request is in flight
    exit_costs = {c.phase.split("/")[1]: c.exit_cost for c in (refused, slow, failing, healthy)}
    if not EXIT_WAIT - 0.1 <= exit_costs.pop("slow") <= EXIT_WAIT + BOUND:
        problems.append(f"the slow phase's process waited {slow.exit_cost:.2f} s at exit")
    if any(cost > BOUND for cost in exit_costs.values()):
        problems.append(f"processes waited at exit: {exit_costs}")
    exit_costs["slow"] = slow.exit_cost

    return Figures(
        produced=len(produced),
        delivered=len(copies),
        accepted=sum(copies.values()),
        duplicates=sum(duplicates.values()),
        lost=len(lost),
        records_lost=records_lost,
        data_lost=data_lost,
        problems=problems,
        added=added,
        slow_question=slow_question,
        timeout=timeout,
        exit_costs=exit_costs,
        exit_total=max(c.exit_total for c in (refused, slow, failing, healthy)),
    )


def test_lineage_backend_outage(
    remote: str,
    tmp_path: Path,
    cli_env: dict[str, str],
    make_lake: MakeLake,
    endpoints: Callable[[], Endpoint],
    trials: Callable[[int], int],
    report: Callable[..., None],
) -> None:
    """Refused, slow, failing, recovered: creations go on, nothing is lost, one known duplicate."""
    count = trials(1)
    figures = [
        run_trial(trial, tmp_path, cli_env, make_lake, endpoints()) for trial in range(count)
    ]
    produced = sum(f.produced for f in figures)
    delivered = sum(f.delivered for f in figures)
    duplicates = sum(f.duplicates for f in figures)
    lost = sum(f.lost + f.records_lost for f in figures)
    data_lost = sum(f.data_lost for f in figures)
    added = {mode: max(f.added[mode] for f in figures) for mode in figures[0].added}
    exits = {mode: max(f.exit_costs[mode] for f in figures) for mode in figures[0].exit_costs}
    slow_question = max(f.slow_question for f in figures)
    report(
        fault="lineage backend outage",
        remote="s3" if remote.startswith("s3://") else "directory",
        trials=count,
        failures=sum(1 for f in figures if f.lost or f.records_lost or f.data_lost or f.problems),
        data_lost=data_lost,
        events_lost=lost,
        notes=(
            f"produced {produced}, delivered {delivered} (accepted "
            f"{sum(f.accepted for f in figures)}), duplicates {duplicates} (one per trial: the "
            "event in flight when a process exited during the slow phase; identical copy); "
            "added latency per creation max "
            + ", ".join(f"{mode} {seconds:+.2f} s" for mode, seconds in added.items())
            + f" (bound {BOUND:.0f} s asserted), except a process's first Marquez question "
            f"while Marquez is slow {slow_question:.1f} s (bound RADOPS_LINEAGE_TIMEOUT "
            f"{figures[0].timeout:.0f} s + {BOUND:.0f} s); exit wait with a queue "
            + ", ".join(f"{mode} {seconds:.1f} s" for mode, seconds in exits.items())
            + f" (bound {EXIT_WAIT:.0f} s + {BOUND:.0f} s; whole exit, interpreter included, "
            f"{max(f.exit_total for f in figures):.1f} s)"
        ),
    )
    assert lost == 0 and data_lost == 0
    assert [p for f in figures for p in f.problems] == []
    assert duplicates == count
