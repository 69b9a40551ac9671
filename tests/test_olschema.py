"""The offline OpenLineage validator accepts good events and can fail: it is not a no-op."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import referencing.exceptions

from radops.lineage.events import Creation, DatasetRef, build_event, event_to_dict
from tests.olschema import SPECS, InvalidEvent, registry, validate_event, validate_facet

SHA = "0" * 64


@pytest.fixture
def event() -> dict[str, Any]:
    """A COMPLETE event as radops builds it, with input, output and run facets of every kind."""
    creation = Creation(
        run_id="01934a3b-7c4d-7e8f-9a0b-1c2d3e4f5a6b",
        job_namespace="radops",
        job_name="pipes.step",
        email="tester@example.com",
        radops_version="1.0",
        parameters={"n": 1},
        inputs=[DatasetRef("s3://lake", "p/in.txt", "in.txt", SHA, 3)],
        outputs=[DatasetRef("s3://lake", "p/out.txt", "out.txt", SHA, 5)],
        call_digest=SHA,
    )
    return event_to_dict(build_event(creation, "COMPLETE", error=ValueError("x")))


def test_a_radops_event_is_valid(event: dict[str, Any]) -> None:
    """The reference event passes, so the failures below are caused by the one change made."""
    validate_event(event)


def test_the_registry_holds_every_schema_offline() -> None:
    """Every shared schema and radops' facet schema is in the registry under its https $id."""
    ids = {json.loads(path.read_text())["$id"] for path in (SPECS / "facets").glob("*.json")}
    assert len(ids) > 30
    for schema_id in [
        *ids,
        "https://openlineage.io/spec/2-0-2/OpenLineage.json",
        "https://radops.dev/spec/facets/1-1-0/RadopsRunFacet.json",
    ]:
        assert schema_id in registry()


def test_an_unknown_ref_raises_instead_of_fetching() -> None:
    """Resolving a URL that is not in the registry raises; nothing is downloaded."""
    with pytest.raises(referencing.exceptions.Unresolvable):
        registry().resolver().lookup("https://openlineage.io/spec/facets/9-9-9/Nope.json")


def test_an_event_without_run_id_fails(event: dict[str, Any]) -> None:
    """runId is required."""
    del event["run"]["runId"]
    with pytest.raises(InvalidEvent, match="runId"):
        validate_event(event)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("run", "runId"), "not-a-uuid"),
        (("eventTime",), "yesterday"),
        (("eventType",), "FINISHED"),
        (("producer",), "not a uri"),
        (("job", "namespace"), 7),
    ],
    ids=["run-id", "event-time", "event-type", "producer", "job-namespace"],
)
def test_a_malformed_event_field_fails(
    event: dict[str, Any], path: tuple[str, ...], value: object
) -> None:
    """Formats (uuid, date-time, uri), enums and types of the event itself are checked."""
    target = event
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(InvalidEvent):
        validate_event(event)


@pytest.mark.parametrize(
    ("where", "name", "field", "value"),
    [
        ("run", "radops_run", "email", 42),
        ("run", "processing_engine", "name", ["radops"]),
        ("job", "jobType", "processingType", 1),
        ("inputs", "version", "datasetVersion", {"sha": 1}),
        ("outputs", "lifecycleStateChange", "lifecycleStateChange", "EXPLODE"),
        ("outputFacets", "outputStatistics", "size", "big"),
    ],
)
def test_a_facet_with_a_wrong_type_fails(
    event: dict[str, Any], where: str, name: str, field: str, value: object
) -> None:
    """Each facet is checked against its own schema, wherever it sits in the event."""
    if where in ("run", "job"):
        facets = event[where]["facets"]
    elif where == "outputFacets":
        facets = event["outputs"][0]["outputFacets"]
    else:
        facets = event[where][0]["facets"]
    facets[name][field] = value
    with pytest.raises(InvalidEvent, match=name):
        validate_event(event)


def test_a_facet_missing_a_required_field_fails(event: dict[str, Any]) -> None:
    """radops' facet requires email, radopsVersion and pythonVersion."""
    del event["run"]["facets"]["radops_run"]["pythonVersion"]
    with pytest.raises(InvalidEvent, match="pythonVersion"):
        validate_event(event)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/spec/facets/1-0-0/MyFacet.json#/$defs/MyFacet",
        "https://openlineage.io/spec/facets/9-9-9/DatasetVersionDatasetFacet.json#/$defs/"
        "DatasetVersionDatasetFacet",
        "https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json#/$defs/Nope",
        "https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json",
    ],
    ids=["unknown-host", "unknown-version", "unknown-def", "no-fragment"],
)
def test_a_facet_with_an_unknown_schema_url_fails(event: dict[str, Any], url: str) -> None:
    """A facet whose _schemaURL does not resolve in the registry is a failure, not a pass."""
    event["inputs"][0]["facets"]["version"]["_schemaURL"] = url
    with pytest.raises(InvalidEvent):
        validate_event(event)


def test_a_custom_facet_without_schema_url_fails(event: dict[str, Any]) -> None:
    """Every facet must say which schema it follows."""
    event["job"]["facets"]["custom"] = {"_producer": "https://example.com", "x": 1}
    with pytest.raises(InvalidEvent, match="custom"):
        validate_event(event)


def test_validate_facet_checks_one_facet(event: dict[str, Any]) -> None:
    """A facet can be validated alone, and the check sees its fields."""
    facet = copy.deepcopy(event["job"]["facets"]["jobType"])
    validate_facet(facet)
    facet["integration"] = None
    with pytest.raises(InvalidEvent):
        validate_facet(facet)
