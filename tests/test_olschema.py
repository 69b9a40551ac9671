"""The OpenLineage conformance checks accept radops' events and can fail: neither is a no-op.

The model check (openlineage-python's classes) needs nothing outside the repository. The schema
check needs the official schemas: its tests skip without them, or fail under
``RADOPS_TEST_REQUIRE=specs``.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import referencing.exceptions
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    base_subset_dataset,
    column_lineage_dataset,
    lifecycle_state_change_dataset,
    parent_run,
    processing_engine_run,
    schema_dataset,
    symlinks_dataset,
    tags_job,
)

from radops.lineage.events import (
    RADOPS_FACET,
    RADOPS_FACET_SCHEMA_URL,
    Creation,
    DatasetRef,
    build_event,
    event_to_dict,
)
from radops.lineage.source import GitInfo, SourceInfo
from tests import olschema
from tests.capabilities import missing
from tests.olschema import (
    DEFAULT_SPECS,
    SPEC_ENV,
    STANDARD_KEYS,
    InvalidEvent,
    check_model,
    check_schemas,
    facet_classes,
    registry,
    schema_file,
    schemas_missing,
    specs_dir,
    standard_key,
    validate_event,
    validate_facet,
)

SHA = "0" * 64
REPO = Path(__file__).resolve().parents[1]


def radops_event(state: str = "COMPLETE", lifecycle: str = "CREATE") -> dict[str, Any]:
    """An event as radops builds it: run, job, input and output facets of every kind it sends."""
    origin = "git@github.com:acme/pipes.git"
    git = GitInfo(Path("/repo"), "c0ffee" * 6 + "abcd", "main", origin, "p.py", False)
    creation = Creation(
        run_id="01934a3b-7c4d-7e8f-9a0b-1c2d3e4f5a6b",
        job_namespace="radops",
        job_name="pipes.step",
        email="tester@example.com",
        radops_version="1.0",
        source=SourceInfo("pipes", "step", Path("/repo/p.py"), 3, "def step(): ...", SHA, git),
        parameters={"n": 1, "ratio": 0.5, "names": ["a", "b"], "deep": {"on": True}},
        inputs=[DatasetRef("s3://lake", "p/in.txt", "in.txt", SHA, 3)],
        outputs=[DatasetRef("s3://lake", "p/out.txt", "out.txt", SHA, 5)],
        call_digest=SHA,
        returned={"radops.File": "out.txt"},
        lifecycle=lifecycle,
    )
    error = ValueError("x") if state == "FAIL" else None
    return event_to_dict(build_event(creation, state, error=error))


@pytest.fixture
def event() -> dict[str, Any]:
    """A FAIL event, which carries every facet radops sends (errorMessage too)."""
    return radops_event("FAIL")


@pytest.fixture
def official_schemas() -> None:
    """The test needs the official schemas: skip without them (fail if the run requires them)."""
    reason = schemas_missing()
    if reason is not None:
        missing("specs", reason)


@pytest.fixture
def no_schemas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The official schemas are not where they are looked for, as in a fresh clone."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(olschema, "SPECS", empty)
    return empty


def at(event: dict[str, Any], path: str) -> dict[str, Any]:
    """The object at a dotted ``path`` (``outputs.0.facets``) of ``event``."""
    target: Any = event
    for part in path.split("."):
        target = target[int(part)] if part.isdigit() else target[part]
    return target


def rich_event() -> dict[str, Any]:
    """An event of openlineage-python's own classes, with nested objects, unions and enums."""
    subset, columns = base_subset_dataset, column_lineage_dataset
    lifecycle = lifecycle_state_change_dataset

    run_id = "01934a3b-7c4d-7e8f-9a0b-1c2d3e4f5a6b"
    parent = parent_run.ParentRunFacet(
        run=parent_run.Run(runId=run_id),
        job=parent_run.Job(namespace="radops", name="outer"),
        root=parent_run.Root(
            run=parent_run.RootRun(runId=run_id), job=parent_run.RootJob(namespace="r", name="o")
        ),
    )
    nested = schema_dataset.SchemaDatasetFacetFields(name="inner", type="INT", ordinal_position=1)
    schema = schema_dataset.SchemaDatasetFacet(
        fields=[schema_dataset.SchemaDatasetFacetFields(name="s", type="STRUCT", fields=[nested])]
    )
    lineage = columns.ColumnLineageDatasetFacet(
        fields={
            "a": columns.Fields(
                inputFields=[
                    columns.InputField(
                        namespace="s3://lake",
                        name="p/in.txt",
                        field="a",
                        transformations=[columns.Transformation(type="DIRECT", subtype="IDENTITY")],
                    )
                ]
            )
        }
    )
    condition = subset.BinarySubsetCondition(
        left=subset.LocationSubsetCondition(locations=["s3://lake/p/"]),
        right=subset.CompareSubsetCondition(
            left=subset.FieldBaseCompareExpression(field="day"),
            right=subset.LiteralCompareExpression(value="2024-01-01"),
            comparison="EQUAL",
        ),
        operator="AND",
    )
    renamed = lifecycle.LifecycleStateChangeDatasetFacet(
        lifecycleStateChange=lifecycle.LifecycleStateChange.RENAME,
        previousIdentifier=lifecycle.PreviousIdentifier(name="p/old.txt", namespace="s3://lake"),
    )
    symlinks = symlinks_dataset.SymlinksDatasetFacet(
        identifiers=[symlinks_dataset.Identifier(namespace="s3://lake", name="alias", type="FILE")]
    )
    made = RunEvent(
        eventType=RunState.OTHER,
        eventTime="2024-01-01T00:00:00.5+00:00",
        run=Run(runId=run_id, facets={"parent": parent}),
        job=Job(namespace="radops", name="job"),
        inputs=[
            InputDataset(
                namespace="s3://lake",
                name="p/in.txt",
                facets={"schema": schema, "symlinks": symlinks},
                inputFacets={"subset": subset.InputSubsetInputDatasetFacet(condition)},
            )
        ],
        outputs=[
            OutputDataset(
                namespace="s3://lake",
                name="p/out.txt",
                facets={"columnLineage": lineage, "lifecycleStateChange": renamed},
            )
        ],
        producer="https://github.com/radops/radops/tree/1.0",
    )
    return event_to_dict(made)


# -- the model check: openlineage-python's classes, no files from outside the repository ---------


@pytest.mark.parametrize(
    ("state", "lifecycle"),
    [
        *[(state, "CREATE") for state in ("START", "COMPLETE", "FAIL", "ABORT")],
        *[(state, "DROP") for state in ("START", "COMPLETE")],
    ],
)
def test_radops_events_pass_the_model_check(state: str, lifecycle: str) -> None:
    """Every kind of event radops sends rebuilds and serialises back unchanged."""
    check_model(radops_event(state, lifecycle))


def test_nested_objects_unions_and_enums_round_trip() -> None:
    """Facets with nested objects, recursive fields, a union and an enum pass the check."""
    event = rich_event()
    assert at(event, "outputs.0.facets.lifecycleStateChange")["lifecycleStateChange"] == "RENAME"
    check_model(event)


def test_the_model_knows_every_facet_class_of_openlineage_python_and_radops() -> None:
    """Every facet_v2 facet class is known by its _schemaURL, each with its standard key."""
    classes = facet_classes()
    assert len(classes) > 35
    assert classes[processing_engine_run.ProcessingEngineRunFacet._get_schema()] is (
        processing_engine_run.ProcessingEngineRunFacet
    )
    assert tags_job.TagsJobFacet in classes.values()
    assert classes[RADOPS_FACET_SCHEMA_URL].__name__ == "RadopsRunFacet"
    assert {cls.__name__: standard_key(cls) for cls in classes.values()} == {
        cls.__name__: STANDARD_KEYS.get(schema_file(url), RADOPS_FACET)
        for url, cls in classes.items()
    }
    assert all(standard_key(cls) for cls in classes.values())
    assert standard_key(classes[RADOPS_FACET_SCHEMA_URL]) == RADOPS_FACET


@pytest.mark.parametrize(
    ("path", "field", "value", "message"),
    [
        ("run", "runId", "not-a-uuid", "run: not a valid Run"),
        ("", "eventTime", "yesterday", "not a valid RunEvent"),
        ("", "eventType", "FINISHED", "eventType: .* is not a EventType"),
        ("job", "namespace", 7, "job.namespace: expected str, got int"),
        ("run.facets.radops_run", "email", 42, "run.facets.radops_run.email: expected str"),
        ("run.facets.radops_run", "outputs", "out.txt", "radops_run.outputs: expected an array"),
        ("run.facets.radops_run", "parameters", [1], "radops_run.parameters: expected an obj"),
        ("run.facets.processing_engine", "name", ["radops"], "processing_engine.name: expected"),
        ("job.facets.jobType", "processingType", 1, "jobType.processingType: expected str"),
        ("inputs.0.facets.version", "datasetVersion", {"sha": 1}, "version.datasetVersion"),
        ("outputs.0.facets.lifecycleStateChange", "lifecycleStateChange", "EXPLODE", "EXPLODE"),
        ("outputs.0.outputFacets.outputStatistics", "size", "big", "outputStatistics.size"),
        ("outputs.0.outputFacets.outputStatistics", "rowCount", True, "rowCount: expected int"),
    ],
)
def test_a_wrong_type_fails_the_model_check(
    event: dict[str, Any], path: str, field: str, value: object, message: str
) -> None:
    """Types, enums and formats the classes validate are checked, naming where the value is."""
    (at(event, path) if path else event)[field] = value
    with pytest.raises(InvalidEvent, match=message):
        check_model(event)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("inputs.0.facets.schema.fields.0.fields.0.ordinal_position", "1", "ordinal_position: ex"),
        ("outputs.0.facets.columnLineage.fields.a.inputFields.0.field", 3, r"inputFields\[0\]\.f"),
        ("inputs.0.inputFacets.subset.inputCondition.right.left.field", 3, "none of its types"),
        ("run.facets.parent.root.job.name", None, r"root\.job\.name: expected str, got NoneType"),
        ("outputs.0.facets.lifecycleStateChange.lifecycleStateChange", "create", "LifecycleSt"),
    ],
)
def test_a_wrong_type_in_a_nested_object_fails(path: str, value: object, message: str) -> None:
    """Objects inside facets are rebuilt as their classes too, however deep."""
    event = rich_event()
    *parents, field = path.split(".")
    at(event, ".".join(parents))[field] = value
    with pytest.raises(InvalidEvent, match=message):
        check_model(event)


@pytest.mark.parametrize(
    ("path", "field", "message"),
    [
        ("run.facets.radops_run", "pythonVersion", "not a valid RadopsRunFacet: .*pythonVersion"),
        ("outputs.0.facets.version", "datasetVersion", "not a valid DatasetVersionDatasetFacet"),
        ("job", "name", r"^job: not a valid Job: .*'name'"),
        ("", "run", "not a valid RunEvent: .*'run'"),
    ],
)
def test_a_missing_required_field_fails(
    event: dict[str, Any], path: str, field: str, message: str
) -> None:
    """What a class requires, the event must have."""
    del (at(event, path) if path else event)[field]
    with pytest.raises(InvalidEvent, match=message):
        check_model(event)


@pytest.mark.parametrize(
    "facet",
    [
        {"_producer": "https://example.com", "_schemaURL": "https://example.com/F.json#/$defs/F"},
        {"_producer": "https://example.com", "x": 1},
        {
            "_producer": "https://example.com",
            "_schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/JobFacet",
        },
    ],
    ids=["unknown-schema-url", "no-schema-url", "base-job-facet"],
)
def test_an_unknown_facet_fails(event: dict[str, Any], facet: dict[str, Any]) -> None:
    """A facet no class of the model is known by is flagged, naming the facet."""
    event["job"]["facets"]["custom"] = facet
    with pytest.raises(InvalidEvent, match=r"job\.facets\.custom: unknown facet"):
        check_model(event)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("", "'colour'"),
        ("run", "run: unknown field 'colour'"),
        ("job", "job: unknown field"),
        ("inputs.0", "inputs\\[0\\]: unknown field"),
        ("run.facets.radops_run", "run.facets.radops_run: unknown field 'colour'"),
        ("job.facets.sourceCodeLocation", "sourceCodeLocation: unknown field 'colour'"),
        ("outputs.0.facets.version", "outputs\\[0\\].facets.version: unknown field"),
    ],
)
def test_an_unknown_field_fails(event: dict[str, Any], path: str, message: str) -> None:
    """A field the model does not know is not silently dropped: it fails, naming where it is."""
    (at(event, path) if path else event)["colour"] = "blue"
    with pytest.raises(InvalidEvent, match=message):
        check_model(event)


def test_an_unknown_field_in_a_nested_object_fails() -> None:
    """Nested objects have no room for unknown fields either."""
    event = rich_event()
    at(event, "outputs.0.facets.lifecycleStateChange.previousIdentifier")["colour"] = "blue"
    with pytest.raises(InvalidEvent, match="previousIdentifier: unknown field 'colour'"):
        check_model(event)


def _schema_url(name: str) -> str:
    return next(url for url in facet_classes() if schema_file(url) == name)


@pytest.mark.parametrize(
    ("key", "facet", "message"),
    [
        ("datasetType", "DatasetTypeDatasetFacet", "unknown field 'datasetVersion'"),
        ("version", "DatasetVersionDatasetFacet@1-0-0", "unknown facet: its _schemaURL"),
        ("errorMessage", "ErrorMessageRunFacet", "ErrorMessageRunFacet .* is not a DatasetFacet"),
        ("version", "SymlinksDatasetFacet", "belongs under the key 'symlinks', not 'version'"),
    ],
    ids=["other-facet", "other-version", "other-kind", "other-key"],
)
def test_a_facet_under_a_wrong_schema_url_fails(
    event: dict[str, Any], key: str, facet: str, message: str
) -> None:
    """The class the _schemaURL names must fit the facet's fields, its map and its key."""
    name, _, version = facet.partition("@")
    url = next(url for url in facet_classes() if schema_file(url) == name)
    if version:
        url = re.sub(r"/\d+-\d+-\d+/", f"/{version}/", url)
    facets = event["inputs"][0]["facets"]
    facets[key] = {**facets.pop("version"), "_schemaURL": url}
    with pytest.raises(InvalidEvent, match=message):
        check_model(event)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("run.facets", "radops_run:radops", "a RadopsRunFacet belongs under the key 'radops_run'"),
        ("inputs.0.facets", "version:datasetVersion", "belongs under the key 'version'"),
        ("outputs.0.outputFacets", "outputStatistics:stats", "key 'outputStatistics'"),
    ],
)
def test_a_facet_under_a_wrong_key_fails(
    event: dict[str, Any], old: str, new: str, message: str
) -> None:
    """Facets are under the key OpenLineage (or RadopsRunFacet.json) gives them; ``radops``,
    the key of earlier radops versions, is not it."""
    facets = at(event, old)
    was, now = new.split(":")
    facets[now] = facets.pop(was)
    with pytest.raises(InvalidEvent, match=message):
        check_model(event)


def test_a_facet_in_the_wrong_map_fails(event: dict[str, Any]) -> None:
    """A run facet among the job facets is flagged, though its own fields are right."""
    event["job"]["facets"]["errorMessage"] = event["run"]["facets"].pop("errorMessage")
    with pytest.raises(InvalidEvent, match=r"job\.facets\.errorMessage: .* is not a JobFacet"):
        check_model(event)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e["run"]["facets"]["radops_run"].update(codeWarning=None), "codeWarning: drop"),
        (lambda e: e["run"]["facets"]["radops_run"].pop("_producer"), "_producer: the model adds"),
        (lambda e: e.pop("schemaURL"), "schemaURL: the model adds"),
        (lambda e: e.update(schemaURL=e["schemaURL"].replace("2-0-2", "2-0-1")), "schemaURL: "),
        (lambda e: e["outputs"][0]["facets"]["version"].update(_schemaURL="x"), "unknown facet"),
        (lambda e: e["inputs"].append(None), "inputs\\[1\\]: expected an object"),
    ],
    ids=["null", "no-producer", "no-schema-url", "other-spec", "facet-url", "null-item"],
)
def test_what_the_round_trip_would_change_fails(
    event: dict[str, Any], change: Any, message: str
) -> None:
    """Whatever serde would write differently (a null it drops, a default it adds) fails."""
    change(event)
    with pytest.raises(InvalidEvent, match=message):
        check_model(event)


def test_nulls_inside_the_calls_own_values_are_kept(event: dict[str, Any]) -> None:
    """Parameters, return value and extra fields hold any JSON value, nulls included: radops
    records them as they are (serde alone would drop the nulls), and the model accepts them."""
    event["run"]["facets"]["radops_run"]["returned"] = {"x": None, "items": [None, {}]}
    event["run"]["facets"]["radops_run"]["parameters"]["n"] = None
    check_model(event)


def test_what_is_not_json_fails(event: dict[str, Any]) -> None:
    """The event must be JSON data: a number JSON has not is refused before anything else."""
    event["run"]["facets"]["radops_run"]["parameters"]["x"] = float("nan")
    with pytest.raises(InvalidEvent, match="not JSON"):
        check_model(event)


# -- without the official schemas: a fresh clone still checks conformance ----------------------


def test_without_the_schemas_validate_event_still_catches_a_bad_event(
    event: dict[str, Any], no_schemas: Path
) -> None:
    """With no official schemas validate_event passes a good event and fails a bad one."""
    assert schemas_missing() is not None
    validate_event(event)
    event["run"]["facets"]["radops_run"]["email"] = 42
    with pytest.raises(InvalidEvent, match=r"radops_run\.email"):
        validate_event(event)
    with pytest.raises(FileNotFoundError, match=SPEC_ENV):
        registry()


def test_the_reason_names_both_places_and_the_variable(no_schemas: Path) -> None:
    """The one-line reason says where the schemas were looked for and how to provide them."""
    reason = schemas_missing()
    assert reason is not None
    assert "\n" not in reason
    assert str(no_schemas) in reason
    assert str(DEFAULT_SPECS) in reason
    assert SPEC_ENV in reason
    assert "spec/" in reason


def test_a_folder_in_the_layout_of_an_openlineage_checkout_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenLineage.json beside facets/ (the repository's spec/) is what the check looks for."""
    spec = tmp_path / "OpenLineage" / "spec"
    (spec / "facets").mkdir(parents=True)
    monkeypatch.setattr(olschema, "SPECS", spec)
    assert schemas_missing() is not None
    (spec / "OpenLineage.json").write_text("{}")
    assert schemas_missing() is None


@pytest.mark.parametrize("variable", ["/somewhere/spec", ""])
def test_the_variable_names_the_folder(variable: str) -> None:
    """RADOPS_OPENLINEAGE_SPEC, read when the tests start, names the folder (if not empty)."""
    probe = "import tests.olschema as o; print(o.specs_dir())"
    env = {**os.environ, SPEC_ENV: variable}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == (variable or str(DEFAULT_SPECS))


# -- the schema check: the official JSON Schemas, where they are ---------------------------------


def test_a_radops_event_is_valid(event: dict[str, Any], official_schemas: None) -> None:
    """The reference event passes, so the failures below are caused by the one change made."""
    check_schemas(event)
    validate_event(event)


def test_the_rich_event_is_valid(official_schemas: None) -> None:
    """The schemas accept the nested objects the model check rebuilds."""
    check_schemas(rich_event())


def test_validate_event_runs_the_schema_check_where_the_schemas_are(
    event: dict[str, Any], official_schemas: None
) -> None:
    """A producer that is no URI passes the model (a str) but not the schemas' uri format."""
    event["producer"] = "not a uri"
    check_model(event)
    with pytest.raises(InvalidEvent, match="producer"):
        validate_event(event)


def test_the_standard_keys_are_the_official_schemas_keys(official_schemas: None) -> None:
    """Each facet class's key is the one top-level property of its official schema file."""
    compared = 0
    for url, cls in facet_classes().items():
        path = specs_dir() / "facets" / f"{schema_file(url)}.json"
        if url == RADOPS_FACET_SCHEMA_URL or not path.is_file():
            continue
        declared = list(json.loads(path.read_text(encoding="utf-8")).get("properties", {}))
        assert declared == [standard_key(cls)], cls.__name__
        compared += 1
    assert compared > 35


def test_the_registry_holds_every_schema_offline(official_schemas: None) -> None:
    """Every official schema and radops' facet schema is in the registry under its https $id."""
    facets = (specs_dir() / "facets").glob("*.json")
    ids = {json.loads(path.read_text())["$id"] for path in facets}
    assert len(ids) > 30
    for schema_id in [
        *ids,
        "https://openlineage.io/spec/2-0-2/OpenLineage.json",
        "https://radops.dev/spec/facets/1-1-0/RadopsRunFacet.json",
    ]:
        assert schema_id in registry()


def test_an_unknown_ref_raises_instead_of_fetching(official_schemas: None) -> None:
    """Resolving a URL that is not in the registry raises; nothing is downloaded."""
    with pytest.raises(referencing.exceptions.Unresolvable):
        registry().resolver().lookup("https://openlineage.io/spec/facets/9-9-9/Nope.json")


def test_an_event_without_run_id_fails(event: dict[str, Any], official_schemas: None) -> None:
    """runId is required."""
    del event["run"]["runId"]
    with pytest.raises(InvalidEvent, match="runId"):
        check_schemas(event)


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
    event: dict[str, Any], path: tuple[str, ...], value: object, official_schemas: None
) -> None:
    """Formats (uuid, date-time, uri), enums and types of the event itself are checked."""
    target = event
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(InvalidEvent):
        check_schemas(event)


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
    event: dict[str, Any],
    where: str,
    name: str,
    field: str,
    value: object,
    official_schemas: None,
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
        check_schemas(event)


def test_a_facet_missing_a_required_field_fails(
    event: dict[str, Any], official_schemas: None
) -> None:
    """radops' facet requires email, radopsVersion and pythonVersion."""
    del event["run"]["facets"]["radops_run"]["pythonVersion"]
    with pytest.raises(InvalidEvent, match="pythonVersion"):
        check_schemas(event)


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
def test_a_facet_with_an_unknown_schema_url_fails(
    event: dict[str, Any], url: str, official_schemas: None
) -> None:
    """A facet whose _schemaURL does not resolve in the registry is a failure, not a pass."""
    event["inputs"][0]["facets"]["version"]["_schemaURL"] = url
    with pytest.raises(InvalidEvent):
        check_schemas(event)


def test_a_custom_facet_without_schema_url_fails(
    event: dict[str, Any], official_schemas: None
) -> None:
    """Every facet must say which schema it follows."""
    event["job"]["facets"]["custom"] = {"_producer": "https://example.com", "x": 1}
    with pytest.raises(InvalidEvent, match="custom"):
        check_schemas(event)


def test_validate_facet_checks_one_facet(event: dict[str, Any], official_schemas: None) -> None:
    """A facet can be validated alone, and the check sees its fields."""
    facet = copy.deepcopy(event["job"]["facets"]["jobType"])
    validate_facet(facet)
    facet["integration"] = None
    with pytest.raises(InvalidEvent):
        validate_facet(facet)
