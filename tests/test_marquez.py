"""Marquez as lineage backend, tested against a stand-in that enforces Marquez's OpenAPI spec."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from radops.cli.app import app
from radops.data_lake import File, file_creator
from radops.lake import DataLake
from radops.lineage.marquez import MarquezClient, MarquezError, node_id
from tests.conftest import MakeLake
from tests.marquez_standin import RunningStandIn, openapi, validate_exchange

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


@pytest.fixture
def marquez() -> Iterator[RunningStandIn]:
    """A Marquez stand-in on a free loopback port; the test fails if it saw any invalid exchange."""
    standin = RunningStandIn()
    yield standin
    standin.stop()
    assert standin.state.failures == []


def _machine(make_lake: MakeLake, name: str, marquez: RunningStandIn, **extra: object) -> DataLake:
    # A generous timeout: a loaded test machine must not turn a slow answer into a failure.
    return make_lake(name, marquez_url=marquez.url, lineage_timeout=30, **extra)


def _pipeline(lake: DataLake) -> None:
    with lake.file("words.txt").open("w") as handle:
        handle.write("hello marquez")
    shout(File("words.txt", lake=lake), output_uid="loud.txt")
    assert lake.lineage.outbox.wait(60), "events were not delivered to the stand-in"


def test_the_stand_in_rejects_what_the_spec_forbids() -> None:
    """The contract check can fail: a missing required parameter, a body of the wrong shape."""
    with pytest.raises(Exception, match="type"):
        validate_exchange(
            "GET",
            "/api/v1/jobs/runs/0190d3c6-3c4e-7f00-8000-000000000000/facets",
            {},
            None,
            200,
            b"{}",
        )
    with pytest.raises(Exception):  # noqa: B017 - any validation error will do
        validate_exchange(
            "GET",
            "/api/v1/search",
            {"q": "x"},
            None,
            200,
            json.dumps({"totalCount": "many", "results": []}).encode(),
        )
    assert openapi() is openapi()  # the corrected spec is itself a valid OpenAPI document


def test_events_reach_marquez_and_validate(make_lake: MakeLake, marquez: RunningStandIn) -> None:
    """Every creation is POSTed to /api/v1/lineage (201), START and COMPLETE per run."""
    lake = _machine(make_lake, "a", marquez)
    _pipeline(lake)
    kinds = [(e["job"]["name"], e["eventType"]) for e in marquez.state.events]
    assert (f"{MODULE}.shout", "START") in kinds
    assert (f"{MODULE}.shout", "COMPLETE") in kinds
    assert ("POST", "/api/v1/lineage") in marquez.state.requests


def test_lineage_is_read_from_marquez_at_the_run_level(
    make_lake: MakeLake, marquez: RunningStandIn, cli_env: dict[str, str]
) -> None:
    """`datalake lineage` asks Marquez for the dataset's versions and their createdByRun."""
    _pipeline(_machine(make_lake, "machine-a", marquez))
    before = len(marquez.state.requests)
    env = {
        **cli_env,
        "RADOPS_MARQUEZ_URL": marquez.url,
        "RADOPS_LINEAGE_TIMEOUT": "30",
        "COLUMNS": "200",
    }
    result = CliRunner().invoke(app, ["datalake", "lineage", "loud.txt", "--depth", "2"], env=env)
    assert result.exit_code == 0, result.stderr
    assert f"function {MODULE}.shout" in result.stdout
    assert "words.txt" in result.stdout
    asked = [path for method, path in marquez.state.requests[before:] if method == "GET"]
    assert any("/datasets/" in path and path.split("?")[0].endswith("/versions") for path in asked)
    assert any("/jobs/runs/" in path and "facets" in path for path in asked)
    # Namespace and name are each one URL-encoded path segment.
    assert any("%2F" in path or "%3A" in path for path in asked)


def test_a_second_machine_skips_on_marquez_answer(
    make_lake: MakeLake, marquez: RunningStandIn
) -> None:
    """Implicit outputs: Marquez's run history decides the skip; the objects are still checked."""
    first = _machine(make_lake, "machine-a", marquez)
    with first.file("text.txt").open("w") as handle:
        handle.write("abcdef")
    made = halves(File("text.txt", lake=first))
    assert first.lineage.outbox.wait(60)

    second = _machine(make_lake, "machine-b", marquez)
    again = halves(File("text.txt", lake=second))
    assert [f.uid for f in again] == [f.uid for f in made]
    assert second.lineage.index.count() == 0  # answered by Marquez, not by syncing the lake
    assert any(
        "/jobs/" in path and path.split("?")[0].endswith("/runs")
        for _, path in marquez.state.requests
    )

    for file in made:  # Marquez still lists the run, but the objects are gone: a miss
        first.store.delete(file.uid)
    third = _machine(make_lake, "machine-c", marquez)
    rerun = halves(File("text.txt", lake=third))
    assert [f.exists_remotely() for f in rerun] == [True, True]


def test_marquez_down_falls_back_to_the_embedded_index(
    make_lake: MakeLake, caplog: pytest.LogCaptureFixture
) -> None:
    """Unreachable Marquez: creation succeeds, events queue, queries use the embedded index."""
    standin = RunningStandIn()
    url = standin.url
    standin.stop()  # nothing listens there any more
    lake = make_lake("offline", marquez_url=url, lineage_timeout=1)
    with lake.file("words.txt").open("w") as handle:
        handle.write("still works")
    shout(File("words.txt", lake=lake), output_uid="loud.txt")
    assert lake.lineage.outbox.pending()
    with caplog.at_level(logging.WARNING, logger="radops"):
        event = lake.lineage.creation_of("loud.txt")
    assert event is not None
    assert event["job"]["name"] == f"{MODULE}.shout"
    assert "using the embedded lineage index" in caplog.text


def test_client_sends_the_api_key_and_reports_errors(marquez: RunningStandIn) -> None:
    """RADOPS_MARQUEZ_API_KEY travels as a bearer token; a dead server is a MarquezError."""
    client = MarquezClient(marquez.url, api_key="test-token-123")
    assert client.dataset("s3://lake", "a/b.txt") is None
    assert marquez.state.authorization[-1] == "Bearer test-token-123"
    assert node_id("dataset", "s3://lake", "a/b.txt") == "dataset:s3://lake:a/b.txt"
    assert client.search("b.txt") == []
    assert client.lineage(node_id("dataset", "s3://lake", "a/b.txt"), depth=3) == {"graph": []}
    assert any(
        path.startswith("/api/v1/lineage?nodeId=dataset%3As3%3A%2F%2Flake%3Aa%2Fb.txt")
        for _, path in marquez.state.requests
    )
    dead = MarquezClient("http://127.0.0.1:9", timeout=1)
    with pytest.raises(MarquezError, match="unreachable"):
        dead.run("0190d3c6-3c4e-7f00-8000-000000000000")


def test_replay_backfills_a_fresh_marquez_idempotently(
    make_lake: MakeLake, marquez: RunningStandIn, cli_env: dict[str, str]
) -> None:
    """`radops lineage replay --to URL` sends the lake's events; twice creates no duplicates."""
    lake = make_lake("machine-a")  # no Marquez configured while the pipeline ran
    with lake.file("words.txt").open("w") as handle:
        handle.write("history")
    shout(File("words.txt", lake=lake), output_uid="loud.txt")
    runs = {e["run"]["runId"] for e in lake.lineage.index.events() if e["eventType"] == "COMPLETE"}
    for _ in range(2):
        result = CliRunner().invoke(
            app,
            ["lineage", "replay", "--to", marquez.url],
            env={**cli_env, "RADOPS_LINEAGE_TIMEOUT": "30"},
        )
        assert result.exit_code == 0, result.stderr
        assert "replayed" in result.stderr
    assert sorted(marquez.state.run_ids()) == sorted(runs)
    assert len(marquez.state.events) == 2 * len(runs)
