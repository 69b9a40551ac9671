"""Marquez as lineage backend, against the real Marquez API server.

Every answer asserted here is the real server's: Marquez is started by the suite
(``tests/marquez_server.py``) and reached directly, or through ``tests/marquez_proxy.py`` where a
test watches the requests or needs a fault Marquez cannot show on demand (an authenticating
proxy, server errors, slow answers).
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from radops.cli.app import app
from radops.data_lake import File, file_creator
from radops.lake import DataLake
from radops.lineage.delivery import MAX_SERVER_ERRORS
from radops.lineage.events import function_of, producer, radops_facet
from radops.lineage.marquez import MarquezClient, MarquezError, node_id
from radops.lineage.naming import call_job
from tests.conftest import TEST_EMAIL, MakeLake
from tests.marquez_proxy import MarquezProxy
from tests.marquez_server import MarquezServer, start_marquez

MODULE = __name__


@file_creator
def shout(f: File, output_uid: str) -> File:
    with f.open() as handle:
        text = handle.read()
    out = File(output_uid)
    with out.open("w") as handle:
        handle.write(text.upper())
    return out


@file_creator
def halves(f: File) -> list[File]:
    with f.open() as handle:
        text = handle.read()
    outputs = []
    for part in (text[: len(text) // 2], text[len(text) // 2 :]):
        out = File(suffix=".txt")
        with out.open("w") as handle:
            handle.write(part)
        outputs.append(out)
    return outputs


@file_creator
def scale(f: File, factor: int, note: str = "") -> File:
    if factor == 0:
        raise ValueError("a factor of zero\x00 makes nothing")
    with f.open() as handle:
        text = handle.read()
    out = File(suffix=".txt")
    with out.open("w") as handle:
        handle.write(text * factor)
    return out


@file_creator
def join(first: File, second: File) -> File:
    with first.open() as a, second.open() as b:
        text = a.read() + b.read()
    out = File(suffix=".txt")
    with out.open("w") as handle:
        handle.write(text)
    return out


@pytest.fixture
def proxy(marquez: MarquezServer) -> Iterator[MarquezProxy]:
    """A recording proxy in front of the real Marquez; the test fails on an exchange that does
    not match Marquez's OpenAPI spec (when the spec is present)."""
    running = MarquezProxy(marquez.url)
    yield running
    running.stop()
    assert running.invalid == []


def _machine(make_lake: MakeLake, name: str, url: str, namespace: str, **extra: object) -> DataLake:
    # A generous timeout: a loaded test machine must not turn a slow answer into a failure.
    extra.setdefault("lineage_timeout", 30)
    return make_lake(name, marquez_url=url, namespace=namespace, **extra)


def _delivered(lake: DataLake) -> None:
    assert lake.lineage.outbox.wait(60), "events were not delivered to Marquez"
    assert lake.lineage.outbox.rejected() == []


def _runs(lake: DataLake) -> dict[str, str]:
    """run id -> function, of every run this machine indexed."""
    return {e["run"]["runId"]: function_of(e) for e in lake.lineage.index.events()}


def _graph(client: MarquezClient, namespace: str, name: str, depth: int = 20) -> set[str]:
    """The node ids of Marquez's lineage graph around a dataset."""
    graph = client.lineage(node_id("dataset", namespace, name), depth=depth)
    return {node["id"] for node in graph["graph"]}


def test_events_are_accepted_and_every_run_ends_completed(
    make_lake: MakeLake, proxy: MarquezProxy, lineage_namespace: str
) -> None:
    """Marquez answers 201 to each event; each run is COMPLETED; a call is a job of its own,
    named after the function and the call."""
    lake = _machine(make_lake, "a", proxy.url, lineage_namespace)
    with File("words.txt", lake=lake).open("w") as handle:
        handle.write("hello marquez")
    shout(File("words.txt", lake=lake), output_uid="loud.txt")
    _delivered(lake)

    posts = proxy.seen("POST")
    assert [e.status for e in posts] == [201] * 4  # START and COMPLETE of two runs
    client = MarquezClient(proxy.url)
    for run_id, function in _runs(lake).items():
        run = client.run(run_id)
        assert run is not None
        assert run["state"] == "COMPLETED"
        assert run["jobVersion"]["namespace"] == lineage_namespace
        assert run["jobVersion"]["name"].startswith(function + "/")
    creation = lake.lineage.creation_of("loud.txt")
    assert creation is not None
    digest = radops_facet(creation)["callDigest"]
    run = client.run(creation["run"]["runId"])
    assert run is not None
    assert run["jobVersion"]["name"] == call_job(
        f"{MODULE}.shout", lake.store.url, digest, "loud.txt"
    )


def test_a_failed_call_is_a_failed_run_in_marquez(
    make_lake: MakeLake, marquez: MarquezServer, lineage_namespace: str
) -> None:
    """A call that raises is a FAILED run (``GET /jobs/runs/{id}`` answers 200), with its error."""
    lake = _machine(make_lake, "a", marquez.url, lineage_namespace)
    with File("n.txt", lake=lake).open("w") as handle:
        handle.write("n")
    with pytest.raises(ValueError, match="zero"):
        scale(File("n.txt", lake=lake), 0)
    _delivered(lake)
    [failed] = [e for e in lake.lineage.index.events() if e["eventType"] == "FAIL"]
    run = MarquezClient(marquez.url).run(failed["run"]["runId"])
    assert run is not None
    assert run["state"] == "FAILED"
    message = run["facets"]["errorMessage"]["message"]
    assert message.startswith("ValueError: a factor of zero")
    assert "\x00" not in message  # PostgreSQL refuses NUL: radops sends U+FFFD instead


def test_dataset_versions_name_the_run_that_made_them(
    make_lake: MakeLake, marquez: MarquezServer, lineage_namespace: str, tmp_path: Path
) -> None:
    """A file's dataset version has ``createdByRun``; a local input (and a lake file whose
    creation Marquez never heard of) has versions with ``createdByRun: null``."""
    quiet = make_lake("no-marquez")  # made without Marquez: its events never reach it
    with File("early.txt", lake=quiet).open("w") as handle:
        handle.write("made before Marquez was configured")
    lake = _machine(make_lake, "a", marquez.url, lineage_namespace)
    source = tmp_path / "local.csv"
    source.write_text("a,b\n1,2\n")
    lake.add_file(source, "data.csv", move=False)
    shout(File("early.txt", lake=lake), output_uid="late.txt")
    _delivered(lake)

    client = MarquezClient(marquez.url)
    [version] = client.dataset_versions(*lake.store.dataset("data.csv"))
    made_by = version["createdByRun"]
    assert made_by["state"] == "COMPLETED"
    assert function_of({"run": made_by, "job": {}}) == "radops.datalake.add"
    [local] = client.dataset_versions("file", str(source))
    assert local["createdByRun"] is None
    [early] = client.dataset_versions(*lake.store.dataset("early.txt"))
    assert early["createdByRun"] is None
    # Marquez cannot say who made early.txt: radops answers from the lake's records instead.
    creation = lake.lineage.creation_of("early.txt")
    assert creation is not None
    assert function_of(creation) == "radops.File.write"


def test_run_facets_in_marquez_carry_the_creation(
    make_lake: MakeLake, marquez: MarquezServer, lineage_namespace: str
) -> None:
    """Marquez keeps radops' run facet, the processing engine, the job type and the source, and
    the producer names radops' version."""
    lake = _machine(make_lake, "a", marquez.url, lineage_namespace)
    with File("in.txt", lake=lake).open("w") as handle:
        handle.write("abc")
    scale(File("in.txt", lake=lake), 2, note="a\x00b")
    _delivered(lake)
    [run_id] = [run for run, f in _runs(lake).items() if f == f"{MODULE}.scale"]
    client = MarquezClient(marquez.url)
    run = client.run(run_id)
    assert run is not None
    facet = run["facets"]["radops_run"]
    assert facet["email"] == TEST_EMAIL
    assert facet["function"] == f"{MODULE}.scale"
    assert facet["parameters"] == {"factor": 2, "note": "a\ufffdb"}
    assert facet["radopsVersion"] == run["facets"]["processing_engine"]["version"]
    job = client.job_facets(run_id)
    assert job["jobType"]["jobType"] == "FILE_CREATOR"
    assert job["jobType"]["integration"] == "RADOPS"
    assert "def scale" in job["sourceCode"]["sourceCode"]
    assert "file://" not in json.dumps(job)
    producers = marquez.sql(
        "SELECT DISTINCT producer FROM lineage_events WHERE job_namespace = :'ns'",
        ns=lineage_namespace,
    )
    assert producers == producer(facet["radopsVersion"])
    [write] = [run for run, f in _runs(lake).items() if f == "radops.File.write"]
    assert client.job_facets(write)["jobType"]["jobType"] == "FILE_WRITE"


def test_lineage_and_info_are_read_from_marquez(
    make_lake: MakeLake, proxy: MarquezProxy, lineage_namespace: str, cli_env: dict[str, str]
) -> None:
    """On a machine whose index is empty, `datalake lineage` and `info` answer from Marquez:
    the dataset's versions, then the creating run and its job facets."""
    lake = _machine(make_lake, "machine-a", proxy.url, lineage_namespace)
    with File("words.txt", lake=lake).open("w") as handle:
        handle.write("hello marquez")
    shout(File("words.txt", lake=lake), output_uid="loud.txt")
    _delivered(lake)
    home = Path(cli_env["RADOPS_HOME"]).parent / "machine-b"
    env = {
        **cli_env,
        "RADOPS_HOME": str(home),
        "RADOPS_MARQUEZ_URL": proxy.url,
        "RADOPS_NAMESPACE": lineage_namespace,
        "RADOPS_LINEAGE_TIMEOUT": "30",
        "COLUMNS": "200",
    }
    before = len(proxy.seen())
    shown = CliRunner().invoke(app, ["datalake", "lineage", "loud.txt", "--depth", "2"], env=env)
    assert shown.exit_code == 0, shown.stderr
    assert f"function {MODULE}.shout" in shown.stdout
    assert "words.txt" in shown.stdout
    assert TEST_EMAIL in shown.stdout
    info = CliRunner().invoke(app, ["datalake", "info", "loud.txt", "--json"], env=env)
    assert info.exit_code == 0, info.stderr
    created_by = json.loads(info.stdout)["created_by"]
    assert created_by["job"] == f"{MODULE}.shout"
    assert created_by["inputs"] == ["words.txt"]
    asked = [e.path.split("?")[0] for e in proxy.seen("GET")[before:]]
    assert any(p.endswith("/versions") and "/datasets/" in p for p in asked)
    assert any(p.startswith("/api/v1/jobs/runs/") and p.endswith("/facets") for p in asked)
    # Namespace and name are each one URL-encoded path segment.
    assert any("%2F" in p for p in asked)
    machine_b = make_lake("machine-b", marquez_url=proxy.url, namespace=lineage_namespace)
    assert machine_b.lineage.index.count() == 0  # nothing was synced from the lake


def test_a_second_machine_skips_on_marquez_answer(
    make_lake: MakeLake, proxy: MarquezProxy, lineage_namespace: str
) -> None:
    """Implicit outputs: Marquez's runs of the call's job decide the skip; the objects are
    still checked in the lake."""
    first = _machine(make_lake, "machine-a", proxy.url, lineage_namespace)
    with File("text.txt", lake=first).open("w") as handle:
        handle.write("abcdef")
    made = halves(File("text.txt", lake=first))
    _delivered(first)

    second = _machine(make_lake, "machine-b", proxy.url, lineage_namespace)
    again = halves(File("text.txt", lake=second))
    assert [f.uid for f in again] == [f.uid for f in made]
    assert second.lineage.index.count() == 0  # answered by Marquez, not by syncing the lake
    asked = [e.path.split("?")[0] for e in proxy.seen("GET")]
    assert any("/jobs/" in path and path.endswith("/runs") for path in asked)

    for file in made:  # Marquez still lists the run, but the objects are gone: a miss
        first.store.delete(file.uid)
    third = _machine(make_lake, "machine-c", proxy.url, lineage_namespace)
    rerun = halves(File("text.txt", lake=third))
    assert [f.exists_remotely() for f in rerun] == [True, True]


def test_every_file_has_its_full_lineage_in_the_web_ui_graph(
    make_lake: MakeLake, marquez: MarquezServer, lineage_namespace: str
) -> None:
    """``GET /lineage?nodeId=dataset:...`` (what the web UI draws) holds, for every file made,
    its creating job and all its inputs, transitively: a sweep of one function over several
    values, a failed call in between, and a step that joins two results."""
    lake = _machine(make_lake, "a", marquez.url, lineage_namespace)
    with File("raw.txt", lake=lake).open("w") as handle:
        handle.write("ab")
    made = {}
    for factor in (1, 2, 0, 3):
        with contextlib.suppress(ValueError):  # the call with 0 fails, between the others
            made[factor] = scale(File("raw.txt", lake=lake), factor)
    joined = join(made[1], made[3])
    _delivered(lake)

    client = MarquezClient(marquez.url)
    raw = node_id("dataset", *lake.store.dataset("raw.txt"))
    for file in [*made.values(), joined]:
        creation = lake.lineage.creation_of(file.uid)
        assert creation is not None
        nodes = _graph(client, *lake.store.dataset(file.uid))
        assert node_id("job", lineage_namespace, creation["job"]["name"]) in nodes
        assert raw in nodes  # the first input, two steps up for the joined file
        for parent in radops_facet(creation)["inputs"]:
            assert node_id("dataset", *lake.store.dataset(parent)) in nodes
    joined_nodes = _graph(client, *lake.store.dataset(joined.uid))
    for part in (made[1], made[3]):
        upstream = lake.lineage.creation_of(part.uid)
        assert upstream is not None
        assert node_id("job", lineage_namespace, upstream["job"]["name"]) in joined_nodes


@pytest.mark.s3
def test_digit_first_keys_get_names_the_web_ui_can_open(
    request: pytest.FixtureRequest, marquez: MarquezServer, lineage_namespace: str, tmp_path: Path
) -> None:
    """Marquez cannot split ``dataset:s3://bucket:2024/raw.txt`` (a ``:`` before digits is a
    port to it) and answers 500; radops names such a key ``/2024/raw.txt``, which it opens."""
    from radops.settings import Settings

    server = request.getfixturevalue("seaweed")
    bucket = f"root-{uuid.uuid4().hex[:10]}"
    server.create_bucket(bucket)
    lake = DataLake(
        Settings.load(
            env={},
            home=tmp_path / "home",
            remote=f"s3://{bucket}",
            s3_endpoint_url=server.endpoint,
            email=TEST_EMAIL,
            marquez_url=marquez.url,
            namespace=lineage_namespace,
            lineage_timeout=30,
        )
    )
    try:
        with File("2024/raw.txt", lake=lake).open("w") as handle:
            handle.write("dated")
        _delivered(lake)
        namespace, name = lake.store.dataset("2024/raw.txt")
        assert (namespace, name) == (f"s3://{bucket}", "/2024/raw.txt")
        client = MarquezClient(marquez.url)
        assert node_id("dataset", namespace, name) in _graph(client, namespace, name)
        with pytest.raises(MarquezError, match="answered 500"):  # the key itself: unparsable
            client.lineage(node_id("dataset", namespace, "2024/raw.txt"))
    finally:
        lake.local.close()


def test_marquez_killed_and_restarted_mid_pipeline_loses_nothing(
    make_lake: MakeLake, marquez: MarquezServer, lineage_namespace: str, cli_env: dict[str, str]
) -> None:
    """Marquez dies (SIGKILL) between steps: creations go on, their events wait; once it is
    back, one flush sends them, and every run ends COMPLETED in Marquez."""
    lake = _machine(make_lake, "a", marquez.url, lineage_namespace, lineage_timeout=2)
    with File("seed.txt", lake=lake).open("w") as handle:
        handle.write("x")
    current = File("seed.txt", lake=lake)
    for factor in (2, 3):
        current = scale(current, factor)
    _delivered(lake)
    marquez.kill()
    for factor in (4, 5):
        current = scale(current, factor)
    assert current.exists_remotely()
    queued = lake.lineage.outbox.pending()
    assert len(queued) == 4  # START and COMPLETE of the two calls made while it was down
    marquez.start()
    flushed = CliRunner().invoke(
        app,
        ["lineage", "flush"],
        env={
            **cli_env,
            "RADOPS_HOME": str(lake.settings.home),
            "RADOPS_MARQUEZ_URL": marquez.url,
            "RADOPS_NAMESPACE": lineage_namespace,
        },
    )
    assert flushed.exit_code == 0, flushed.stderr
    assert lake.lineage.outbox.wait(60)
    client = MarquezClient(marquez.url)
    runs = _runs(lake)
    assert len(runs) == 5
    assert {run_id: client.run(run_id)["state"] for run_id in runs} == dict.fromkeys(  # type: ignore[index]
        runs, "COMPLETED"
    )
    events = int(
        marquez.sql(
            "SELECT count(*) FROM lineage_events WHERE job_namespace = :'ns'", ns=lineage_namespace
        )
    )
    assert events == 2 * len(runs)


def test_replay_into_a_fresh_marquez_sends_each_event_once(
    make_lake: MakeLake,
    marquez: MarquezServer,
    lineage_namespace: str,
    cli_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """`lineage replay --to URL` fills a Marquez that never heard of the lake; replaying again
    sends nothing: radops asks Marquez which runs it holds. ``--all`` sends every event."""
    lake = make_lake("machine-a", namespace=lineage_namespace)  # no Marquez while it ran
    with File("words.txt", lake=lake).open("w") as handle:
        handle.write("history")
    shout(File("words.txt", lake=lake), output_uid="loud.txt")
    runs = {e["run"]["runId"] for e in lake.lineage.index.events()}
    fresh = start_marquez(tmp_path / "fresh", postgres=marquez.postgres)
    try:
        env = {**cli_env, "RADOPS_NAMESPACE": lineage_namespace, "RADOPS_LINEAGE_TIMEOUT": "30"}

        def replay(*extra: str) -> str:
            result = CliRunner().invoke(
                app, ["lineage", "replay", "--to", fresh.url, *extra], env=env
            )
            assert result.exit_code == 0, result.stderr
            return result.stderr

        def counts() -> tuple[str, str, str]:
            return (
                fresh.sql("SELECT count(*) FROM lineage_events"),
                fresh.sql("SELECT count(*) FROM run_states"),
                fresh.sql("SELECT max(updated_at) FROM runs"),
            )

        assert f"replayed {len(runs)} event(s)" in replay()
        client = MarquezClient(fresh.url)
        assert {client.run(r)["state"] for r in runs} == {"COMPLETED"}  # type: ignore[index]
        first = counts()
        assert first[0] == str(len(runs))
        assert f"replayed 0 event(s) from {lake.store.url}, {len(runs)} already there" in replay()
        assert counts() == first  # nothing was sent: no row, no state, no update
        assert f"replayed {len(runs)} event(s)" in replay("--all")
        again = counts()
        assert int(again[0]) == 2 * len(runs)  # Marquez keeps every event it is sent
        assert int(again[1]) == 2 * int(first[1])
    finally:
        fresh.stop()


def test_refused_events_are_set_aside_and_never_block_the_queue(
    make_lake: MakeLake,
    marquez: MarquezServer,
    lineage_namespace: str,
    cli_env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Marquez refuses some events for good: a 400 (a namespace it does not accept) at once,
    a 500 that comes back for the same event (a NUL character PostgreSQL refuses). Each is set
    aside with Marquez's answer, listed by `lineage rejected`, and the others are delivered."""
    lake = _machine(make_lake, "a", marquez.url, lineage_namespace)
    outbox = lake.lineage.outbox
    with File("first.txt", lake=lake).open("w") as handle:
        handle.write("1")
    _delivered(lake)
    [template] = [e for e in lake.lineage.index.events() if e["eventType"] == "COMPLETE"]

    def planted(**changes: Any) -> dict[str, Any]:
        event = json.loads(json.dumps(template))
        event["run"]["runId"] = str(uuid.uuid4())
        event.update(changes)
        return event

    bad_namespace = planted(inputs=[{"namespace": "http://[::1]:8000", "name": "/f"}])
    nul = planted()
    nul["run"]["facets"]["radops_run"]["parameters"] = {"x": "a\x00b"}
    outbox.close()  # the test flushes by itself
    outbox.put(bad_namespace)
    outbox.put(nul)
    for n in range(3):
        with File(f"ok-{n}.txt", lake=lake).open("w") as handle:
            handle.write(str(n))
    outbox.close()
    outbox.wait(60)
    with caplog.at_level(logging.WARNING, logger="radops.lineage"):
        for _ in range(MAX_SERVER_ERRORS):
            outbox.flush()
    assert outbox.pending() == []
    refused = {item.run_id: item.answer for item in outbox.rejected()}
    assert set(refused) == {bad_namespace["run"]["runId"], nul["run"]["runId"]}
    assert refused[bad_namespace["run"]["runId"]].startswith(f"HTTP 400 from {marquez.url}")
    assert refused[nul["run"]["runId"]].startswith(f"HTTP 500 from {marquez.url}")
    assert "set aside" in caplog.text
    client = MarquezClient(marquez.url)
    for n in range(3):
        creation = lake.lineage.creation_of(f"ok-{n}.txt")
        assert creation is not None
        assert client.run(creation["run"]["runId"])["state"] == "COMPLETED"  # type: ignore[index]

    env = {
        **cli_env,
        "RADOPS_HOME": str(lake.settings.home),
        "RADOPS_MARQUEZ_URL": marquez.url,
        "RADOPS_NAMESPACE": lineage_namespace,
        "COLUMNS": "300",
    }
    listed = CliRunner().invoke(app, ["lineage", "rejected"], env=env)
    assert listed.exit_code == 0, listed.stderr
    assert "HTTP 400" in listed.stdout and "HTTP 500" in listed.stdout
    retried = CliRunner().invoke(app, ["lineage", "retry", "--all"], env=env)
    assert retried.exit_code == 1  # Marquez refuses the 400 again; the 500 waits for strikes
    assert "queued 2 event(s) again" in retried.stderr


def test_radops_sends_nothing_marquez_must_refuse(
    make_lake: MakeLake, marquez: MarquezServer, lineage_namespace: str
) -> None:
    """NUL characters in parameters and errors, and the namespace of a URL input from an IPv6
    host (``http://[::1]:8000``, whose brackets Marquez refuses): every run is taken."""
    from radops.lineage.events import DatasetRef, uuid7
    from radops.lineage.naming import ADD_JOB
    from radops.urls import public_url

    lake = _machine(make_lake, "a", marquez.url, lineage_namespace)
    with File("in.txt", lake=lake).open("w") as handle:
        handle.write("x")
    scale(File("in.txt", lake=lake), 1, note="nul\x00here")
    with pytest.raises(ValueError, match="zero"):
        scale(File("in.txt", lake=lake), 0, note="\x00")
    # The run `datalake add http://[::1]:8000/data.csv` records, without the download.
    source = DatasetRef(*public_url("http://user:pw@[::1]:8000/data.csv?sig=1"))
    assert source.namespace == "http://_::1_:8000"
    added = lake.command_creation(
        ADD_JOB, str(uuid7()), "from-ipv6.csv", inputs=[source], parameters={"source": "x"}
    )
    lake.lineage.emit(added, "START")
    lake.lineage.emit(added, "COMPLETE")
    _delivered(lake)
    client = MarquezClient(marquez.url)
    states = {client.run(run)["state"] for run in _runs(lake)}  # type: ignore[index]
    assert states == {"COMPLETED", "FAILED"}
    [version] = client.dataset_versions("http://_::1_:8000", "/data.csv")
    assert version["createdByRun"] is None


def test_eight_processes_on_one_home_leave_every_run_completed(
    make_lake: MakeLake, marquez: MarquezServer, lineage_namespace: str, tmp_path: Path
) -> None:
    """Eight processes share one outbox: each run's START reaches Marquez before its COMPLETE,
    whoever sends them, so no run is left RUNNING."""
    import os
    import subprocess
    import sys

    from tests.conftest import process_env

    proxy = MarquezProxy(marquez.url)
    proxy.mode, proxy.delay = "slow", 0.02  # widen the window between two senders
    try:
        lake = _machine(make_lake, "shared", proxy.url, lineage_namespace)
        script = tmp_path / "many.py"
        script.write_text(
            "import sys\n"
            "from radops.data_lake import File\n"
            "for n in range(6):\n"
            "    with File(f'p{sys.argv[1]}/{n}.txt').open('w') as handle:\n"
            "        handle.write(str(n))\n"
        )
        env = process_env(
            lake, marquez_url=proxy.url, namespace=lineage_namespace, lineage_timeout="30"
        )
        children = [
            subprocess.Popen([sys.executable, str(script), str(n)], env=env, cwd=tmp_path)
            for n in range(8)
        ]
        assert [child.wait(timeout=300) for child in children] == [0] * 8
        # What the children left queued when their exit timeout ran out (a loaded machine) is
        # sent now, by one more process on the same home, as a later run would.
        lake.lineage.outbox.flush()
        assert lake.lineage.outbox.pending() == []
        lake.lineage.sync()
        runs = _runs(lake)
        assert len(runs) == 48
        client = MarquezClient(marquez.url)
        states = [client.run(run)["state"] for run in runs]  # type: ignore[index]
        assert states == ["COMPLETED"] * 48
        assert os.path.isdir(lake.settings.home)
    finally:
        proxy.stop()


def test_scripts_with_functions_of_one_name_are_different_jobs(
    make_lake: MakeLake, marquez: MarquezServer, lineage_namespace: str, tmp_path: Path
) -> None:
    """Two scripts of a repository, each with its ``process``: two functions, named by their
    paths, never one ``__main__.process``; and their implicit outputs never collide."""
    import subprocess
    import sys

    from tests.conftest import process_env

    repo = tmp_path / "repo"
    for folder in ("clean", "train"):
        (repo / folder).mkdir(parents=True)
        (repo / folder / "run.py").write_text(
            "from radops.data_lake import File, file_creator\n"
            "@file_creator\n"
            "def process(f: File) -> File:\n"
            "    out = File(suffix='.txt')\n"
            "    with f.open() as a, out.open('w') as b:\n"
            f"        b.write('{folder}: ' + a.read())\n"
            "    return out\n"
            "print(process(File('in.txt')).uid)\n"
        )
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    lake = _machine(make_lake, "a", marquez.url, lineage_namespace)
    with File("in.txt", lake=lake).open("w") as handle:
        handle.write("data")
    env = process_env(lake, marquez_url=marquez.url, namespace=lineage_namespace)
    uids = []
    for folder in ("clean", "train"):
        ran = subprocess.run(
            [sys.executable, str(repo / folder / "run.py")],
            env=env,
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        )
        uids.append(ran.stdout.strip())
    assert uids[0].startswith("clean.run.process/")
    assert uids[1].startswith("train.run.process/")
    reader = _machine(make_lake, "b", marquez.url, lineage_namespace)
    with File(uids[1], lake=reader).open() as handle:
        assert handle.read() == "train: data"
    jobs = {job for job in _job_names(marquez, lineage_namespace) if "process" in job}
    assert {job.split("/")[0] for job in jobs} == {"clean.run.process", "train.run.process"}


def _job_names(marquez: MarquezServer, namespace: str) -> set[str]:
    import requests

    answer = requests.get(f"{marquez.url}/api/v1/namespaces/{namespace}/jobs?limit=100", timeout=30)
    answer.raise_for_status()
    return {job["name"] for job in answer.json()["jobs"]}


def test_the_api_key_reaches_an_authenticating_proxy_and_is_never_logged(
    make_lake: MakeLake,
    marquez: MarquezServer,
    lineage_namespace: str,
    cli_env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Marquez has no authentication; a proxy in front of it checks ``Authorization: Bearer``.
    radops sends the key on every request, events and reads, and no message shows it."""
    key = f"key-{uuid.uuid4().hex}"
    guard = MarquezProxy(marquez.url, require_key=key)
    try:
        with caplog.at_level(logging.DEBUG, logger="radops"):
            lake = _machine(make_lake, "a", guard.url, lineage_namespace, marquez_api_key=key)
            with File("words.txt", lake=lake).open("w") as handle:
                handle.write("secret-free")
            shout(File("words.txt", lake=lake), output_uid="loud.txt")
            _delivered(lake)
        assert {e.status for e in guard.seen("POST")} == {201}
        assert {e.authorization for e in guard.seen()} == {f"Bearer {key}"}
        assert key not in caplog.text
        env = {
            **cli_env,
            "RADOPS_MARQUEZ_URL": guard.url,
            "RADOPS_MARQUEZ_API_KEY": key,
            "RADOPS_NAMESPACE": lineage_namespace,
            "RADOPS_LOG_LEVEL": "DEBUG",
        }
        shown = CliRunner().invoke(app, ["datalake", "lineage", "loud.txt"], env=env)
        assert shown.exit_code == 0, shown.stderr
        assert key not in shown.stdout + shown.stderr
        config = CliRunner().invoke(app, ["config", "show"], env=env)
        assert key not in config.stdout + config.stderr
    finally:
        guard.stop()


def test_replay_to_another_url_sends_a_key_only_when_asked(
    make_lake: MakeLake, marquez: MarquezServer, lineage_namespace: str, cli_env: dict[str, str]
) -> None:
    """The configured key belongs to the configured Marquez: `replay --to URL` sends none, unless
    ``--api-key-env NAME`` names the variable that holds that URL's key."""
    lake = make_lake("machine-a", namespace=lineage_namespace)
    with File("words.txt", lake=lake).open("w") as handle:
        handle.write("x")
    mine, theirs = f"mine-{uuid.uuid4().hex}", f"theirs-{uuid.uuid4().hex}"
    guard = MarquezProxy(marquez.url, require_key=theirs)
    try:
        env = {
            **cli_env,
            "RADOPS_MARQUEZ_API_KEY": mine,
            "THEIR_KEY": theirs,
            "RADOPS_NAMESPACE": lineage_namespace,
        }
        refused = CliRunner().invoke(app, ["lineage", "replay", "--to", guard.url], env=env)
        assert refused.exit_code == 1
        assert "HTTP 401" in refused.stderr
        assert {e.authorization for e in guard.seen()} == {None}  # `mine` went nowhere
        sent = CliRunner().invoke(
            app, ["lineage", "replay", "--to", guard.url, "--api-key-env", "THEIR_KEY"], env=env
        )
        assert sent.exit_code == 0, sent.stderr
        assert "replayed 1 event(s)" in sent.stderr
        assert theirs not in sent.stderr and mine not in sent.stderr
    finally:
        guard.stop()


def test_a_run_of_another_producer_without_job_facets_reads_as_none(
    marquez: MarquezServer, lineage_namespace: str
) -> None:
    """Marquez answers 200 with no body for the job facets of such a run: no facets, not an
    error (which would make radops take Marquez for down)."""
    import requests

    run_id = str(uuid.uuid4())
    event = {
        "eventType": "COMPLETE",
        "eventTime": "2026-01-01T00:00:00Z",
        "run": {"runId": run_id},
        "job": {"namespace": lineage_namespace, "name": "elsewhere"},
        "producer": "https://example.com/another-producer",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
    }
    assert requests.post(f"{marquez.url}/api/v1/lineage", json=event, timeout=30).status_code == 201
    client = MarquezClient(marquez.url)
    assert client.job_facets(run_id) == {}
    assert client.run(run_id)["state"] == "COMPLETED"  # type: ignore[index]


def test_client_reports_errors_in_one_line_without_credentials() -> None:
    """A Marquez that does not answer is a MarquezError naming it, its password removed."""
    dead = MarquezClient("http://alice:S3CRETPW@127.0.0.1:9", timeout=1)
    with pytest.raises(MarquezError, match="unreachable") as caught:
        dead.run("0190d3c6-3c4e-7f00-8000-000000000000")
    assert "S3CRETPW" not in str(caught.value)
    assert "alice@127.0.0.1:9" in str(caught.value)
