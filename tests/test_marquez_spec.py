"""Marquez's OpenAPI spec as ``tests/marquez_spec.py`` corrects it, proven against the live
Marquez server.

A correction stays only if it is proven: without a validity correction the document is not
valid OpenAPI 3.0; without a live correction the spec rejects what the live Marquez answers to a
request radops makes, while the corrected spec accepts it. And every exchange of a radops
pipeline, through the recording proxy, matches the corrected spec.
"""

from __future__ import annotations

import inspect
import json
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from openapi_core import OpenAPI
from openapi_core.exceptions import OpenAPIError
from openapi_core.templating.paths.finders import APICallPathFinder
from openapi_core.validation.request.exceptions import InvalidParameter
from openapi_spec_validator import OpenAPIV30SpecValidator

import radops.lineage.marquez
from radops.data_lake import File, file_creator
from radops.lake import DataLake
from radops.lineage.marquez import MarquezClient, node_id
from radops.settings import Settings
from tests import capabilities
from tests.conftest import TEST_EMAIL, MakeLake
from tests.marquez_proxy import MarquezProxy
from tests.marquez_server import MarquezServer
from tests.marquez_spec import (
    LIVE,
    SPEC_SERVER,
    VALIDITY,
    check_exchange,
    corrected_spec,
    marquez_spec,
    openapi,
    published_spec,
    spec_missing,
    validate_exchange,
)


@file_creator
def shout(f: File, output_uid: str) -> File:
    with f.open() as handle:
        text = handle.read()
    out = File(output_uid)
    with out.open("w") as handle:
        handle.write(text.upper())
    return out


@file_creator
def double(f: File) -> File:
    with f.open() as handle:
        text = handle.read()
    out = File(suffix=".txt")
    with out.open("w") as handle:
        handle.write(text * 2)
    return out


@file_creator
def fail(f: File) -> File:
    raise ValueError(f"{f.uid} cannot be made into anything")


@pytest.fixture(scope="session", autouse=True)
def _spec_present() -> None:
    """Every test here needs Marquez's spec. Session-scoped, so that a missing spec skips
    before Marquez is started (a fresh clone may have neither)."""
    reason = spec_missing()
    if reason is not None:
        capabilities.missing("specs", reason)


class Exchange(NamedTuple):
    """One request to Marquez, as sent (path percent-encoded), and its answer."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes | None
    status: int
    response: bytes | None


def ask(url: str, method: str, path: str, params: Any = None, event: Any = None) -> Exchange:
    """``method /api/v1{path}`` on the Marquez at ``url``, as radops sends it."""
    import requests

    body = json.dumps(event).encode() if event is not None else None
    headers = {"Content-Type": "application/json"} if body else {}
    answer = requests.request(
        method, f"{url}/api/v1{path}", params=params, data=body, headers=headers, timeout=30
    )
    sent = urlsplit(answer.request.path_url)
    return Exchange(
        method,
        sent.path,
        dict(parse_qsl(sent.query)),
        body,
        answer.status_code,
        answer.content or None,
    )


def segment(text: str) -> str:
    return quote(text, safe="")


@cache
def api(live: frozenset[str]) -> Any:
    """The openapi-core validator of the valid spec with these live corrections."""
    return OpenAPI.from_dict(corrected_spec(VALIDITY, sorted(live)))


def rejection(live: Iterable[str], exchange: Exchange) -> list[str]:
    """Where the spec with these live corrections rejects ``exchange``: the error, then each
    schema error as ``at <path in the answer>: <message>``; fails the test if it accepts it."""
    try:
        check_exchange(api(frozenset(live)), *exchange)
    except OpenAPIError as exc:
        found = [f"{type(exc).__name__}: {exc}"]
        cause: BaseException | None = exc
        while cause is not None and not getattr(cause, "schema_errors", None):
            cause = cause.__cause__
        pending = list(getattr(cause, "schema_errors", None) or [])
        while pending:
            error = pending.pop()
            where = "/".join(map(str, error.absolute_path)) or "(the answer)"
            found.append(f"at {where}: {error.message}")
            pending.extend(error.context or [])
        return found
    pytest.fail(f"the spec accepts {exchange.method} {exchange.path}")


@pytest.fixture(scope="module")
def live(
    marquez_server: MarquezServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Exchange]]:
    """Marquez's answers, by name, about a lake made by radops: a local file added, a file made
    from it, and the run of a producer that sends no job facets."""
    marquez = marquez_server
    if marquez.process is None or marquez.process.poll() is not None:
        marquez.start()  # an earlier test killed it (the `marquez` fixture does the same)
    folder = tmp_path_factory.mktemp("spec-lake")
    namespace = f"t-{uuid.uuid4().hex[:12]}"
    lake = DataLake(
        Settings.load(
            env={},
            home=folder / "home",
            remote=str(folder / "remote"),
            email=TEST_EMAIL,
            marquez_url=marquez.url,
            namespace=namespace,
            lineage_timeout=30,
        )
    )
    try:
        source = folder / "local.csv"
        source.write_text("a,b\n1,2\n")
        lake.add_file(source, "data.csv", move=False)
        shout(File("data.csv", lake=lake), output_uid="loud.csv")
        assert lake.lineage.outbox.wait(60), "events were not delivered to Marquez"
        creation = lake.lineage.creation_of("loud.csv")
        assert creation is not None
        run_id = creation["run"]["runId"]
        foreign_run = str(uuid.uuid4())
        foreign = {
            "eventType": "COMPLETE",
            "eventTime": datetime.now(timezone.utc).isoformat(),
            "run": {"runId": foreign_run},
            "job": {"namespace": namespace, "name": "another-producer-job"},
            "inputs": [],
            "outputs": [],
            "producer": "https://example.com/another-producer",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        }
        ns, name = lake.store.dataset("loud.csv")
        dataset = f"/namespaces/{segment(ns)}/datasets/{segment(name)}"
        yield {
            "POST an event": ask(marquez.url, "POST", "/lineage", event=foreign),
            "job facets": ask(marquez.url, "GET", f"/jobs/runs/{run_id}/facets", {"type": "job"}),
            "no job facets": ask(
                marquez.url, "GET", f"/jobs/runs/{foreign_run}/facets", {"type": "job"}
            ),
            "versions of a local file": ask(
                marquez.url,
                "GET",
                f"/namespaces/file/datasets/{segment(str(source))}/versions",
                {"limit": 25},
            ),
            "run": ask(marquez.url, "GET", f"/jobs/runs/{run_id}"),
            "dataset": ask(marquez.url, "GET", dataset),
            "lineage": ask(
                marquez.url, "GET", "/lineage", {"nodeId": node_id("dataset", ns, name)}
            ),
            "run lineage upstream": ask(
                marquez.url, "GET", "/runlineage/upstream", {"runId": run_id}
            ),
        }
    finally:
        lake.local.close()


def _document_errors(spec: dict[str, Any]) -> list[str]:
    try:
        return [error.message for error in OpenAPIV30SpecValidator(spec).iter_errors()]
    except TypeError as exc:  # integer keys: the validator cannot match them against a pattern
        return [str(exc)]


def test_the_corrected_spec_is_valid_and_the_published_one_is_not() -> None:
    """The validator finds nothing wrong with the corrected spec, nor with the published one
    given only the validity corrections, and openapi-core (which validates it) loads it; the
    published spec is not a valid OpenAPI 3.0 document."""
    assert _document_errors(marquez_spec()) == []
    assert _document_errors(corrected_spec(VALIDITY)) == []
    openapi()
    assert _document_errors(published_spec())


#: Each validity correction, and what the validator says of the document without it.
INVALID_WITHOUT = {
    "response codes are strings": "got 'int'",
    "/search parameters without stray keys": "{'before': None, 'name': 'before'",
    "SearchResult name and updatedAt are strings": "None is not valid under any of",
    "/namespaces/{namespace}/datasets declares no {dataset}": "Path parameter 'dataset'",
    "no /runlineage/upstream": "'paramteters' does not match",
}


def test_every_validity_correction_is_proven() -> None:
    """Each validity correction has its proof below, and only those."""
    assert set(INVALID_WITHOUT) == set(VALIDITY)


@pytest.mark.parametrize("correction", list(INVALID_WITHOUT))
def test_the_published_spec_is_invalid_without_each_validity_correction(correction: str) -> None:
    """The published document is not valid OpenAPI 3.0, and each validity correction is
    needed: without it, the document is invalid for the reason the correction names."""
    errors = _document_errors(corrected_spec([name for name in VALIDITY if name != correction]))
    assert any(INVALID_WITHOUT[correction] in error for error in errors), errors


#: Each live correction: the live answer that proves it, and where the spec without it rejects
#: that answer (the error, or the path in the answer of a schema error).
PROVEN_BY = {
    "POST /lineage answers 201": ("POST an event", "Unknown response http status: 201"),
    "FacetsResult.facets is a map of facets": ("job facets", "at facets: '_producer'"),
    "FacetsResult may be an empty body": (
        "no job facets",
        "at (the answer): None for not nullable",
    ),
    "DatasetVersion.id has no version": ("versions of a local file", "at versions/0/id:"),
    "DatasetVersion.tags is an array": ("versions of a local file", "at versions/0/tags:"),
    "DatasetVersion.description may be null": (
        "versions of a local file",
        "at versions/0/description: None for not nullable",
    ),
    "DatasetVersion.createdByRun may be null": (
        "versions of a local file",
        "at versions/0/createdByRun: None for not nullable",
    ),
    "OutputDatasetVersion.facets are facets": (
        "run",
        "at outputDatasetVersions/0/facets/outputStatistics:",
    ),
    "Dataset.lastModifiedAt may be null": ("dataset", "at lastModifiedAt: None for not nullable"),
    "Dataset.description may be null": ("dataset", "at description: None for not nullable"),
    "a field's description may be null": (
        "dataset",
        "at fields/0/description: None for not nullable",
    ),
    "GraphNode.data follows the node type": ("lineage", "could not be resolved"),
    "Job.parentJobName may be null": ("lineage", "/data/parentJobName: None for not nullable"),
    "Job.parentJobUuid may be null": ("lineage", "/data/parentJobUuid: None for not nullable"),
    "Job.location may be null": ("lineage", "/data/location: None for not nullable"),
    "Job.description may be null": ("lineage", "/data/description: None for not nullable"),
}


def test_every_live_correction_is_proven() -> None:
    """Each live correction has its proof below, and only those."""
    assert set(PROVEN_BY) == set(LIVE)


@pytest.mark.parametrize("correction", list(PROVEN_BY))
def test_each_live_correction_describes_what_marquez_answers(
    live: dict[str, Exchange], correction: str
) -> None:
    """The live answer is rejected by the published spec made valid, and by the corrected spec
    without this one correction, where the correction says; the corrected spec accepts it."""
    answer, where = PROVEN_BY[correction]
    exchange = live[answer]
    assert rejection((), exchange)
    without = rejection(set(LIVE) - {correction}, exchange)
    assert any(where in line for line in without), without
    validate_exchange(*exchange)


def test_run_lineage_upstream_is_left_out_because_marquez_fails_on_radops_lineage(
    live: dict[str, Exchange],
) -> None:
    """Marquez answers ``/runlineage/upstream`` 500 for a run downstream of a local file added
    to the lake (no run produced that file's version); radops never reads it, and the spec
    leaves it out instead of repairing it."""
    assert live["run lineage upstream"].status == 500
    assert "/runlineage/upstream" not in marquez_spec()["paths"]
    assert "UpstreamRunLineage" not in marquez_spec()["components"]["schemas"]
    assert "/runlineage" not in inspect.getsource(radops.lineage.marquez)


def test_a_name_with_slashes_is_one_segment_validated_decoded(live: dict[str, Exchange]) -> None:
    """A name with ``/`` travels as one ``%2F``-encoded path segment: the path template matches
    it, Marquez reads it decoded, and so does the validator (``maxLength: 1024`` counts the
    decoded name, whose encoding may be longer)."""
    dataset = live["dataset"]
    assert "%2F" in dataset.path
    validate_exchange(*dataset)
    segment_sent = dataset.path.rsplit("/", 1)[1]
    assert json.loads(dataset.response or b"")["name"] == segment_sent.replace("%2F", "/")
    longest = ("d" * 127 + "/") * 8
    assert (len(longest), len(segment(longest))) == (1024, 1040)
    path = f"/api/v1/namespaces/file/datasets/{segment(longest)}"
    validate_exchange("GET", path, {}, None, 404, None)
    with pytest.raises(InvalidParameter, match="dataset"):
        validate_exchange("GET", path + "x", {}, None, 404, None)


#: The endpoints radops calls, as (method, path pattern) of the spec.
RADOPS_ENDPOINTS = {
    ("POST", "/lineage"),
    ("GET", "/namespaces/{namespace}/datasets/{dataset}"),
    ("GET", "/namespaces/{namespace}/datasets/{dataset}/versions"),
    ("GET", "/jobs/runs/{id}"),
    ("GET", "/jobs/runs/{id}/facets"),
    ("GET", "/namespaces/{namespace}/jobs/{job}/runs"),
    ("GET", "/lineage"),
    ("GET", "/search"),
}


def _endpoint(method: str, path: str) -> tuple[str, str]:
    found = APICallPathFinder(openapi().spec).find(method.lower(), SPEC_SERVER + path)
    return method, found.path_result.pattern


def test_every_exchange_of_a_pipeline_matches_the_spec(
    make_lake: MakeLake, marquez: MarquezServer, lineage_namespace: str, tmp_path: Path
) -> None:
    """A pipeline through the recording proxy, read back on a second machine and by every
    read of radops' Marquez client: each request and each answer matches the corrected spec."""
    proxy = MarquezProxy(marquez.url)
    try:
        lake = make_lake(
            "a", marquez_url=proxy.url, namespace=lineage_namespace, lineage_timeout=30
        )
        source = tmp_path / "local.csv"
        source.write_text("a,b\n1,2\n")
        lake.add_file(source, "data.csv", move=False)
        with File("dir/words.txt", lake=lake).open("w") as handle:
            handle.write("hello marquez")
        shout(File("dir/words.txt", lake=lake), output_uid="dir/loud.txt")
        doubled = double(File("data.csv", lake=lake))
        with pytest.raises(ValueError, match="cannot be made"):
            fail(File("data.csv", lake=lake))
        assert lake.lineage.outbox.wait(60), "events were not delivered to Marquez"
        assert lake.lineage.outbox.rejected() == []

        other = make_lake(
            "b", marquez_url=proxy.url, namespace=lineage_namespace, lineage_timeout=30
        )
        # Skipped on Marquez's list of the call's runs.
        assert double(File("data.csv", lake=other)).uid == doubled.uid
        creation = other.lineage.creation_of("dir/loud.txt")  # versions and job facets
        assert creation is not None
        run_id = creation["run"]["runId"]
        client = MarquezClient(proxy.url, timeout=30)
        namespace, name = lake.store.dataset("dir/loud.txt")
        assert client.dataset(namespace, name) is not None
        [local] = client.dataset_versions("file", str(source))
        assert local["createdByRun"] is None
        assert client.run(run_id) is not None
        assert client.job_facets(run_id)["jobType"]["jobType"] == "FILE_CREATOR"
        assert client.job_runs(lineage_namespace, creation["job"]["name"])
        graph = client.lineage(node_id("dataset", namespace, name))
        assert {node["type"] for node in graph["graph"]} == {"DATASET", "JOB"}
        assert client.search("loud%", namespace=namespace)
    finally:
        proxy.stop()
    assert proxy.invalid == []
    seen = {_endpoint(e.method, e.path.split("?")[0]) for e in proxy.seen()}
    assert seen >= RADOPS_ENDPOINTS
