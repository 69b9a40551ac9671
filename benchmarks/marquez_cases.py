"""The cases with the real Marquez API server: delivery to it (11), lineage answered by it (12),
and the skip check answered by it (13), each against a baseline measured in the same run.

Marquez (the version ``tests/marquez/pom.xml`` names, on a throw-away PostgreSQL, both on
loopback) is started by the first of these cases and stopped at the end of the run
(:meth:`~benchmarks.harness.Context.marquez`). Each case uses job namespaces of its own. When
Marquez cannot be started, each case returns one MISS row that says why.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from benchmarks.harness import (
    EMAIL,
    Context,
    Row,
    floor_row,
    info_row,
    radops_command,
    run_quietly,
    seconds,
)
from radops.lake import DataLake
from radops.settings import Settings

if TYPE_CHECKING:
    from tests.marquez_server import MarquezServer

__all__ = ["case_11", "case_12", "case_13"]

LINEAGE = "/api/v1/lineage"
JSON = {"Content-Type": "application/json"}
#: Seconds to wait for Marquez to take a set-up's events (10,000 take minutes).
DELIVERY_TIMEOUT = 3600.0


def _marquez(ctx: Context) -> tuple[MarquezServer | None, str]:
    """The running Marquez, or None and the one-line reason it cannot run here."""
    from tests.marquez_server import MarquezUnavailable

    try:
        return ctx.marquez(), ""
    except MarquezUnavailable as exc:
        return None, str(exc)


def _unavailable(case: str, name: str, target: str, reason: str) -> list[Row]:
    return [Row(case, name, "unavailable", "", "", target, False, f"no Marquez: {reason}")]


def _namespace(ctx: Context, stem: str) -> str:
    """A job namespace no other trial of this run uses (Marquez keeps everything it took)."""
    return f"bench-{ctx.unique(stem)}"


def _held(marquez: MarquezServer, namespaces: list[str]) -> tuple[int, int]:
    """(events, runs) Marquez stored for these job namespaces, counted in its database."""
    events = runs = 0
    for namespace in namespaces:
        answer = marquez.sql(
            "SELECT count(*), count(DISTINCT run_uuid) FROM lineage_events "
            "WHERE job_namespace = :'ns'",
            ns=namespace,
        )
        counted = answer.split("|")
        events += int(counted[0])
        runs += int(counted[1])
    return events, runs


def _deliver(lake: DataLake) -> None:
    """Wait for the background sender to hand every queued event to Marquez, then flush what
    it left (a sender that went idle); raise if Marquez refused or failed any."""
    outbox = lake.lineage.outbox
    outbox.wait(DELIVERY_TIMEOUT)
    result = outbox.flush()
    if result.failed or result.rejected or result.remaining:
        raise RuntimeError(f"Marquez did not take the set-up's events: {result}")


# A line of Marquez's request log (Dropwizard's default format, in its log file): the request
# line, the status, and last the milliseconds Marquez took to answer.
_REQUEST = re.compile(
    r'"(?P<request>[A-Z]+ \S+) HTTP/[\d.]+" (?P<status>\d{3}) \S+ "[^"]*" "[^"]*" (?P<ms>\d+)\s*$'
)


def _log_end(marquez: MarquezServer) -> int:
    """Where Marquez's log ends once the requests made so far are in it: pass it to
    :func:`_requests_since`.

    The request log is written in the background: this waits until the log stops growing.
    """
    size, deadline = -1, time.monotonic() + 10
    while (now := marquez.log.stat().st_size) != size and time.monotonic() < deadline:
        size = now
        time.sleep(0.5)
    return size


def _requests_since(marquez: MarquezServer, offset: int) -> list[tuple[str, float]]:
    """(request line, Marquez's own seconds) of each request Marquez logged since ``offset``."""
    _log_end(marquez)
    with marquez.log.open("rb") as handle:
        handle.seek(offset)
        text = handle.read().decode("utf-8", errors="replace")
    return [
        (found["request"], int(found["ms"]) / 1e3)
        for line in text.splitlines()
        if (found := _REQUEST.search(line))
    ]


def _asked(marquez: MarquezServer, func: Callable[[], object]) -> tuple[int, int]:
    """(GETs, distinct GETs) that one call of ``func`` sent Marquez."""
    offset = _log_end(marquez)
    func()
    gets = [r for r, _ in _requests_since(marquez, offset) if r.startswith("GET /api/")]
    return len(gets), len(set(gets))


# -- 11. delivery throughput: the outbox draining into Marquez vs raw POSTs ---------------------

# Runs in a process of its own: real file_creator calls (1 KB each, implicit uid, directory
# remote) on a lake whose consumer is a loopback port nobody listens on, so that every event
# stays queued. The process then exits; its sender is gone, and the queue is on disk.
_QUEUE = """
import json, sys
from pathlib import Path
from radops.data_lake import DataLake, set_default_lake
from radops.settings import Settings
from benchmarks.cases import make_implicit

home, remote, namespace, url, count = sys.argv[1:6]
lake = DataLake(Settings.load(env={}, home=Path(home), remote=remote, namespace=namespace,
                              marquez_url=url, email="bench@example.com", log_level="ERROR"))
set_default_lake(lake)
for n in range(int(count)):
    make_implicit("x" * 1024, n)
print(json.dumps({"queued": len(lake.lineage.outbox.pending())}))
"""


def _queue_settings(ctx: Context, side: str, url: str) -> Settings:
    return ctx.settings(
        f"c11-{side}", s3=False, namespace=_namespace(ctx, f"c11-{side}"), marquez_url=url
    )


def _make_queues(ctx: Context, plans: list[tuple[Settings, int]]) -> None:
    """Queue the given number of creations in each lake of ``plans``, two processes at a
    time."""
    from benchmarks.cases import _python

    def make(plan: tuple[Settings, int]) -> None:
        settings, creations = plan
        queued = _python(
            _QUEUE,
            str(settings.home),
            settings.remote,
            settings.namespace,
            str(settings.marquez_url),
            str(creations),
        )["queued"]
        if queued != 2 * creations:
            raise RuntimeError(f"{queued} events queued for {creations} creations, not 2 each")

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(make, plans))


def _pointed_at(ctx: Context, queued: Settings, url: str) -> DataLake:
    """The machine that queued ``queued``'s events (same home, same lake), its consumer now
    ``url``: its outbox holds the queue, and nothing is sending it."""
    return ctx.lake_of(
        Settings.load(
            env={},
            home=queued.home,
            remote=queued.remote,
            namespace=queued.namespace,
            marquez_url=url,
            email=EMAIL,
            log_level="WARNING",
        )
    )


def _all_asked(marquez: MarquezServer, offset: int, calls: int, gets: int) -> float:
    """Marquez's own seconds per call in the ``gets`` GETs each of ``calls`` calls sent it
    since ``offset``; raise unless it logged them all: every timed call asked all its
    questions (radops falls back to the embedded index when Marquez fails)."""
    answered = [s for r, s in _requests_since(marquez, offset) if r.startswith("GET /api/")]
    if len(answered) != calls * gets:
        raise RuntimeError(
            f"Marquez was asked {len(answered)} times, not {calls * gets}: it did not answer all"
        )
    return sum(answered) / calls


@dataclass(frozen=True)
class _Trial:
    """One timed delivery: wall and CPU seconds, events sent, Marquez's own seconds."""

    seconds: float
    cpu: float
    events: int
    marquez: float


def _posted(marquez: MarquezServer, offset: int, count: int) -> float:
    """Marquez's own seconds answering the ``count`` lineage POSTs it logged since
    ``offset``."""
    posts = [s for request, s in _requests_since(marquez, offset) if request.endswith(LINEAGE)]
    if len(posts) != count:
        raise RuntimeError(f"Marquez logged {len(posts)} lineage POSTs, not {count}")
    return sum(posts)


def _check_same_bytes(body: bytes) -> None:
    """The raw side posts what openlineage-python's HttpTransport sends for the queued event."""
    from openlineage.client.serde import Serde

    if Serde.to_json(json.loads(body)).encode("utf-8") != body:
        raise RuntimeError("the queued bytes differ from what the HTTP transport sends")


def case_11(ctx: Context) -> list[Row]:
    from tests.marquez_server import free_port

    marquez, reason = _marquez(ctx)
    name = "deliver creations to Marquez (outbox drain)"
    if marquez is None:
        return _unavailable("11", name, ">= 0.9x", reason)
    # Trials of `per_trial` creations (2 events each: START, COMPLETE), radops and raw
    # alternately (an even number: each side goes first as often), each into a fresh
    # namespace: 10,000 creations a side (quick: 300). Between the two, the floor: raw POSTs
    # that also delete each queued file once Marquez took it, as the outbox must (half as
    # many creations). A warm-up of smaller queues goes first (Marquez's JIT, the pools).
    trials, per_trial, warmup = (4, 75, 25) if ctx.quick else (4, 2_500, 250)
    down = f"http://127.0.0.1:{free_port()}"
    plans = [
        tuple(_queue_settings(ctx, side, down) for side in ("radops", "raw", "floor"))
        for _ in range(trials + 1)
    ]
    profiled = _queue_settings(ctx, "profile", down) if ctx.profile else None
    sizes = [
        (s, warmup if i == 0 else per_trial // 2 if side == 2 else per_trial)
        for i, plan in enumerate(plans)
        for side, s in enumerate(plan)
    ]
    started = time.perf_counter()
    _make_queues(ctx, sizes + ([(profiled, per_trial)] if profiled else []))
    queuing = time.perf_counter() - started

    import requests

    def drain(settings: Settings) -> _Trial:
        outbox = _pointed_at(ctx, settings, marquez.url).lineage.outbox
        count = len(outbox.pending())
        if not outbox.enabled:  # builds the transport now, not in the timed flush
            raise RuntimeError("no transport to Marquez")
        offset = _log_end(marquez)
        cpu, start = time.process_time(), time.perf_counter()
        result = outbox.flush()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        if result.delivered != count or result.failed or result.rejected or result.remaining:
            raise RuntimeError(f"the outbox did not drain into Marquez: {result}")
        return _Trial(elapsed, cpu, count, _posted(marquez, offset, count))

    def post(settings: Settings, delete: bool = False) -> _Trial:
        # The bodies radops queued for this lake, in queue order, read before the clock starts.
        queued = ctx.lake_of(settings).lineage.outbox.pending()
        bodies = [path.read_bytes() for path in queued]
        _check_same_bytes(bodies[-1])
        offset = _log_end(marquez)
        with requests.Session() as session:
            cpu, start = time.process_time(), time.perf_counter()
            for path, body in zip(queued, bodies, strict=True):
                answer = session.post(
                    marquez.url + LINEAGE, data=body, headers=JSON, timeout=(5, 60)
                )
                answer.raise_for_status()
                if delete:
                    path.unlink()
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        return _Trial(elapsed, cpu, len(bodies), _posted(marquez, offset, len(bodies)))

    def post_and_delete(settings: Settings) -> _Trial:
        return post(settings, delete=True)

    for func, settings in zip((drain, post, post_and_delete), plans[0], strict=True):
        func(settings)
    plans = plans[1:]
    ours: list[_Trial] = []
    theirs: list[_Trial] = []
    floors: list[_Trial] = []
    for trial, (mine, raw, least) in enumerate(plans):
        sides: list[tuple[Callable[[Settings], _Trial], Settings, list[_Trial]]] = [
            (drain, mine, ours),
            (post_and_delete, least, floors),
            (post, raw, theirs),
        ]
        for func, settings, samples in sides if trial % 2 == 0 else reversed(sides):
            samples.append(func(settings))
    if profiled is not None:
        outbox = _pointed_at(ctx, profiled, marquez.url).lineage.outbox
        count = len(outbox.pending())
        ctx.profile_calls(f"11 outbox.flush() of {count} queued events", outbox.flush, 1)

    our_rate = statistics.median(t.events / t.seconds for t in ours)
    raw_rate = statistics.median(t.events / t.seconds for t in theirs)
    ratio = our_rate / raw_rate
    events = sum(t.events for t in ours)
    raw_events = sum(t.events for t in theirs)
    held = _held(marquez, [plan[0].namespace for plan in plans])
    held_raw = _held(marquez, [plan[1].namespace for plan in plans])
    floor_rate = statistics.median(t.events / t.seconds for t in floors)
    floor_server = statistics.median(t.marquez / t.events for t in floors)
    floor_rest = statistics.median((t.seconds - t.marquez) / t.events for t in floors)
    creations = trials * per_trial
    expected = (2 * creations, creations)
    our_cpu = sum(t.cpu for t in ours) / events
    raw_cpu = sum(t.cpu for t in theirs) / raw_events
    our_server = statistics.median(t.marquez / t.events for t in ours)
    raw_server = statistics.median(t.marquez / t.events for t in theirs)
    our_rest = statistics.median((t.seconds - t.marquez) / t.events for t in ours)
    raw_rest = statistics.median((t.seconds - t.marquez) / t.events for t in theirs)
    return [
        Row(
            "11",
            f"deliver {creations:,} creations to Marquez ({events:,} events)",
            f"{our_rate:,.0f} events/s",
            f"{raw_rate:,.0f} events/s",
            f"{ratio:.2f}x",
            ">= 0.9x",
            ratio >= 0.9,
            f"outbox.flush() of events queued while Marquez was unreachable (real file_creator "
            f"calls, queued in {queuing:.0f} s) vs POSTs of the same queued bytes from one "
            f"requests.Session; median of {trials} interleaved trials of {per_trial:,} "
            f"creations, each in a fresh namespace",
        ),
        info_row(
            "11",
            "  floor: raw POST + delete of the queued file",
            f"{floor_rate:,.0f} events/s",
            f"what the outbox cannot skip: each file goes once Marquez took it; median of "
            f"{trials} trials of {per_trial // 2:,} creations, between the two sides; Marquez's "
            f"own time {seconds(floor_server)} and the rest {seconds(floor_rest)} per event",
            baseline=f"{raw_rate:,.0f} events/s",
            ratio=f"{floor_rate / raw_rate:.2f}x",
        ),
        Row(
            "11",
            "  Marquez holds every event and run",
            f"{held[0]:,} events, {held[1]:,} runs",
            f"{held_raw[0]:,} events, {held_raw[1]:,} runs",
            "",
            f"{expected[0]:,} events, {expected[1]:,} runs",
            held == expected == held_raw,
            "counted in Marquez's lineage_events table, by job namespace",
        ),
        info_row(
            "11",
            "  Marquez's own time per event",
            seconds(our_server),
            f"from its request log (medians of the trials); the rest of the time per event, "
            f"the client's and the network's: {seconds(our_rest)} (radops), "
            f"{seconds(raw_rest)} (raw)",
            baseline=seconds(raw_server),
            ratio=f"{our_server / raw_server:.2f}x",
        ),
        info_row(
            "11",
            "  client CPU per event",
            seconds(our_cpu),
            "this process's CPU time (user + system) in the timed loops, per event sent",
            baseline=seconds(raw_cpu),
            ratio=f"{our_cpu / raw_cpu:.2f}x",
        ),
    ]


# -- 12. datalake lineage --depth 10 answered by Marquez vs the embedded index ------------------


def case_12(ctx: Context) -> list[Row]:
    from typer.testing import CliRunner

    from benchmarks.cases import _record_graph
    from radops.cli.app import app
    from radops.lake import radops_outputs

    marquez, reason = _marquez(ctx)
    width, layers = (50, 10) if ctx.quick else (1_000, 10)
    count = width * layers
    name = f"datalake lineage --depth 10, {count:,} files, Marquez (process)"
    if marquez is None:
        return _unavailable("12", name, "<= 2x", reason)
    namespace = _namespace(ctx, "c12")
    lake = ctx.lake("c12", s3=False, marquez_url=marquez.url, namespace=namespace)
    started = time.perf_counter()
    leaf = _record_graph(lake, width, layers, calls=True)
    _deliver(lake)
    setup = time.perf_counter() - started
    _, runs = _held(marquez, [namespace])
    if runs != count:
        raise RuntimeError(f"Marquez holds {runs} runs of the {count} recorded")

    embedded = {**ctx.cli_env(lake), "RADOPS_NAMESPACE": namespace}
    asking = {**embedded, "RADOPS_MARQUEZ_URL": marquez.url}
    arguments = ["datalake", "lineage", leaf, "--depth", "10"]
    runner = CliRunner()

    def in_process(env: dict[str, str], *extra: str) -> Callable[[], str]:
        def run() -> str:
            result = runner.invoke(app, [*arguments, *extra], env=env)
            if result.exit_code != 0:
                raise RuntimeError(result.output)
            return result.output

        return run

    # Both answers walk the same creations; Marquez's are rebuilt from its runs (no
    # `producer`), so none of them came from the index of this home. Asked again a few times:
    # a Marquez on a busy machine once answered one walk with a gap right after the set-up.
    from_index = json.loads(in_process(embedded, "--json")())["events"]
    for _ in range(5):
        from_marquez = json.loads(in_process(asking, "--json")())["events"]
        not_marquez = [e["run"]["runId"] for e in from_marquez if "producer" in e]
        if len(from_marquez) == len(from_index) and not not_marquez:
            break
        time.sleep(2)
    else:
        raise RuntimeError(
            f"Marquez did not answer every creation of the walk: {len(from_marquez)} "
            f"creations ({len(from_index)} from the index alone), these from the index "
            f"instead: {not_marquez[:5]}"
        )
    # What one command asks Marquez, counted in its request log.
    gets, distinct = _asked(marquez, in_process(asking))

    command = [*radops_command(), *arguments]
    repeats = 5 if ctx.quick else 11
    offset = _log_end(marquez)
    process, process_index = ctx.compare(
        "12 lineage --depth 10 from Marquez (process)",
        lambda: run_quietly(command, asking),
        lambda: run_quietly(command, embedded),
        warmup=1,
        repeats=repeats,
    )
    inside, inside_index = ctx.compare(
        "12 lineage --depth 10 from Marquez (in process)",
        in_process(asking),
        in_process(embedded),
        warmup=1,
        repeats=repeats,
    )
    calls = 1 + repeats + (max(repeats, 20) if ctx.profile else 0)  # compare() may profile
    answering = _all_asked(marquez, offset, 2 * calls, gets)

    # The floor: one GET per creation of the walk (the versions of its output, which name the
    # run that made it), from one session, against the same in-process baseline.
    import requests

    session = requests.Session()
    versions = [
        "{}/api/v1/namespaces/{}/datasets/{}/versions".format(
            marquez.url, *(quote(part, safe="") for part in lake.store.dataset(uid))
        )
        for event in from_index
        for uid in radops_outputs(event)
    ]

    def floor() -> None:
        for url in versions:
            session.get(url, params={"limit": 25}, timeout=60).raise_for_status()

    offset = _log_end(marquez)
    least, inside_again = ctx.compare(
        "12 floor", floor, in_process(embedded), warmup=1, repeats=repeats
    )
    floor_answering = _all_asked(marquez, offset, calls, len(versions))
    session.close()
    return [
        # The issue sets no target here: a comparison, each side measured in this run.
        info_row(
            "12",
            name,
            seconds(process),
            baseline=seconds(process_index),
            ratio=f"{process / process_index:.2f}x",
            note=f"vs the same command answered by the embedded index (RADOPS_MARQUEZ_URL unset); "
            f"{len(from_marquez)} creations in the walk; the command sends Marquez {gets} GETs "
            f"({distinct} distinct), which take Marquez {seconds(answering)} (its request "
            f"log, mean of the timed commands)",
        ),
        info_row(
            "12",
            "  in process: Marquez, embedded index",
            seconds(inside),
            f"without start-up; recording and delivering the {count:,} creations took "
            f"{setup:.0f} s",
            baseline=seconds(inside_index),
            ratio=f"{inside / inside_index:.2f}x",
        ),
        floor_row(
            "12",
            f"{len(versions)} raw GETs of dataset versions",
            least,
            inside_again,
            f"one request per creation of the walk, one session; Marquez's own time in them "
            f"{seconds(floor_answering)}; vs the embedded index in process",
        ),
    ]


# -- 13. a skipped file_creator call answered by Marquez vs the embedded index ------------------


def case_13(ctx: Context) -> list[Row]:
    import requests

    from benchmarks.cases import KB_TEXT, make_implicit
    from radops.data_lake import set_default_lake

    marquez, reason = _marquez(ctx)
    name = "skipped file_creator, S3, asked of Marquez"
    if marquez is None:
        return _unavailable("13", name, "<= 2x", reason)
    namespace = _namespace(ctx, "c13")
    lake = ctx.lake("c13", s3=True, marquez_url=marquez.url, namespace=namespace)
    set_default_lake(lake)
    try:
        made = make_implicit(KB_TEXT, 0)
        _deliver(lake)
        # A fresh machine: its index is empty, and stays so while Marquez answers.
        asking = ctx.machine(lake, "c13-marquez", marquez_url=marquez.url, namespace=namespace)
        # A machine without Marquez, its embedded index synced from the lake.
        embedded = ctx.machine(lake, "c13-embedded", namespace=namespace)
        embedded.lineage.sync()

        def skipped(machine: DataLake) -> Callable[[], None]:
            def run() -> None:
                set_default_lake(machine)
                if make_implicit(KB_TEXT, 0).uid != made.uid:
                    raise RuntimeError("the call was not skipped")

            return run

        gets, _ = _asked(marquez, skipped(asking))
        offset = _log_end(marquez)
        mine, theirs = ctx.compare(
            "13 skipped file_creator, Marquez", skipped(asking), skipped(embedded)
        )
        calls = ctx.warmup + ctx.repeats + (max(ctx.repeats, 20) if ctx.profile else 0)
        answering = _all_asked(marquez, offset, calls, gets)
        if asking.lineage.index.creation_of(made.uid) is not None:
            raise RuntimeError("the fresh machine synced its index: Marquez did not answer")

        # The floor: the one request the answer needs (the runs of the call's job), and the
        # HEAD of the output every skip does, raw.
        record = lake.lineage.creation_of(made.uid)
        if record is None:
            raise RuntimeError(f"no creation record of {made.uid}")
        runs = "{}/api/v1/namespaces/{}/jobs/{}/runs".format(
            marquez.url,
            *(quote(part, safe="") for part in (namespace, record["job"]["name"])),
        )
        client = ctx.client()
        bucket, _, prefix = lake.settings.remote[len("s3://") :].partition("/")
        key = f"{prefix}/{made.uid}"
        session = requests.Session()

        def floor() -> None:
            session.get(runs, params={"limit": 100}, timeout=60).raise_for_status()
            client.head_object(Bucket=bucket, Key=key)

        offset = _log_end(marquez)
        least, theirs_again = ctx.compare("13 floor", floor, skipped(embedded))
        floor_answering = _all_asked(marquez, offset, calls, 1)
        session.close()
    finally:
        set_default_lake(None)
    return [
        info_row(
            "13",
            name,
            seconds(mine),
            baseline=seconds(theirs),
            ratio=f"{mine / theirs:.2f}x",
            note=f"a fresh machine (empty index) vs one answering from its synced embedded index; "
            f"a call sends Marquez {gets} GETs, which take Marquez {seconds(answering)} (its "
            f"request log, mean of the timed calls)",
        ),
        floor_row(
            "13",
            "raw GET of the job's runs + HEAD",
            least,
            theirs_again,
            f"the one request Marquez's answer needs (Marquez's own time in it "
            f"{seconds(floor_answering)}) and the HEAD every skip does, raw",
        ),
    ]
