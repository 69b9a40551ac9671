"""Marquez's published OpenAPI spec, corrected to be a valid OpenAPI 3.0 document that describes
what the live Marquez answers, and validation of real exchanges against it.

The spec is ``../shared/specs/marquez/openapi.yml`` (Marquez's ``spec/openapi.yml``, 0.51), or
the file ``$RADOPS_MARQUEZ_SPEC`` names; a fresh clone has neither, and the checks that need it
say so in one line (:func:`spec_missing`). The tests run the real Marquez server (the version
``tests/marquez/pom.xml`` names, 0.50.0), which is the authority where spec and server differ.

Each correction is a named function in :data:`VALIDITY` (without it the document is not valid
OpenAPI 3.0) or :data:`LIVE` (without it the spec rejects what the live server answers to a
request radops makes). ``tests/test_marquez_spec.py`` proves each one: the document without a
validity correction is invalid, and the spec without a live correction rejects a live answer
that the full spec accepts. A correction that cannot be proven that way does not belong here.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

SPEC_PATH = Path(
    os.environ.get("RADOPS_MARQUEZ_SPEC")
    or Path(__file__).resolve().parents[1].parent / "shared" / "specs" / "marquez" / "openapi.yml"
)
SPEC_SERVER = "http://localhost:5000"  # the spec's `servers` entry is http://localhost:5000/api/v1

Spec = dict[str, Any]


def spec_missing() -> str | None:
    """Why the spec cannot be used here (one line), or None when it can."""
    if SPEC_PATH.is_file():
        return None
    return (
        f"Marquez's OpenAPI spec is not at {SPEC_PATH}: put the shared specs beside the "
        "repository (../shared) or set RADOPS_MARQUEZ_SPEC to a copy of Marquez's spec/openapi.yml"
    )


@cache
def _published() -> Spec:
    loaded: Spec = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    return loaded


def published_spec() -> Spec:
    """The spec as published, as YAML reads it (a fresh copy)."""
    return copy.deepcopy(_published())


# -- corrections that make the document valid OpenAPI 3.0 ---------------------------------------


def _keys_to_str(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(key): _keys_to_str(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_keys_to_str(value) for value in node]
    return node


def _response_codes_are_strings(spec: Spec) -> None:
    # YAML reads the unquoted codes of the job version paths (`200:`) as integers.
    spec.update(_keys_to_str(spec))


def _search_parameters_without_stray_keys(spec: Spec) -> None:
    # `- before:` / `- after:` open the two entries, adding a key no Parameter Object has.
    for parameter in spec["paths"]["/search"]["get"]["parameters"]:
        parameter.pop("before", None)
        parameter.pop("after", None)


def _search_result_types(spec: Spec) -> None:
    # `type:` with no value is `type: null`; the two fields are a name and a timestamp.
    properties = spec["components"]["schemas"]["SearchResult"]["properties"]
    for field in ("name", "updatedAt"):
        properties[field]["type"] = "string"


def _datasets_path_parameters(spec: Spec) -> None:
    # The listing path declares the `{dataset}` path parameter that it does not have.
    spec["paths"]["/namespaces/{namespace}/datasets"]["parameters"] = [
        {"$ref": "#/components/parameters/namespace"}
    ]


def _without_run_lineage_upstream(spec: Spec) -> None:
    # Its operation spells `paramteters`, declares a path parameter `{id}` the path lacks, and
    # its schema spells `propoerties`. Removed rather than repaired: see `marquez_spec`.
    del spec["paths"]["/runlineage/upstream"]
    del spec["components"]["schemas"]["UpstreamRunLineage"]


VALIDITY: dict[str, Callable[[Spec], None]] = {
    "response codes are strings": _response_codes_are_strings,
    "/search parameters without stray keys": _search_parameters_without_stray_keys,
    "SearchResult name and updatedAt are strings": _search_result_types,
    "/namespaces/{namespace}/datasets declares no {dataset}": _datasets_path_parameters,
    "no /runlineage/upstream": _without_run_lineage_upstream,
}
"""Corrections without which the document is not valid OpenAPI 3.0, by name, in order."""


# -- corrections that make the spec describe what the live Marquez answers ----------------------


def _lineage_post_answers_201(spec: Spec) -> None:
    spec["paths"]["/lineage"]["post"]["responses"]["201"] = {"description": "Created"}


def _facets_result_is_a_map(spec: Spec) -> None:
    spec["components"]["schemas"]["FacetsResult"]["properties"]["facets"] = {
        "type": "object",
        "additionalProperties": {"$ref": "#/components/schemas/CustomFacet"},
    }


def _facets_result_may_be_empty(spec: Spec) -> None:
    # OpenAPI 3.0 cannot say "this JSON, or no body at all": check_exchange reads an empty body
    # as JSON null, which only a nullable schema accepts.
    spec["components"]["schemas"]["FacetsResult"]["nullable"] = True


def _dataset_version_id_has_no_version(spec: Spec) -> None:
    properties = spec["components"]["schemas"]["DatasetVersion"]["properties"]
    properties["id"] = {"$ref": "#/components/schemas/DatasetId"}


def _dataset_version_tags_are_an_array(spec: Spec) -> None:
    properties = spec["components"]["schemas"]["DatasetVersion"]["properties"]
    properties["tags"] = {"type": "array", "items": {"type": "string"}}


def _dataset_version_created_by_run_may_be_null(spec: Spec) -> None:
    # `nullable` acts only on the type of its own Schema Object (OpenAPI 3.0.3), and a `$ref`
    # ignores its siblings: a run, or a schema that admits null and nothing else.
    properties = spec["components"]["schemas"]["DatasetVersion"]["properties"]
    properties["createdByRun"] = {
        "anyOf": [
            {"$ref": "#/components/schemas/Run"},
            {"type": "object", "nullable": True, "enum": [None]},
        ]
    }


def _output_facets_are_facets(spec: Spec) -> None:
    facets = spec["components"]["schemas"]["OutputDatasetVersion"]["properties"]["facets"]
    facets["additionalProperties"] = {"$ref": "#/components/schemas/CustomFacet"}


def _graph_node_data_follows_node_type(spec: Spec) -> None:
    node = spec["components"]["schemas"]["GraphNode"]
    node["properties"]["data"] = {
        "type": "object",
        "description": "The dataset or the job the node is, as the node's type says.",
    }
    node["oneOf"] = [
        {
            "properties": {
                "type": {"type": "string", "enum": [kind]},
                "data": {"$ref": f"#/components/schemas/{schema}"},
            }
        }
        for kind, schema in (("DATASET", "Dataset"), ("JOB", "Job"))
    ]


def _nullable(schema: str, field: str) -> Callable[[Spec], None]:
    def correct(spec: Spec) -> None:
        spec["components"]["schemas"][schema]["properties"][field]["nullable"] = True

    return correct


def _field_descriptions_may_be_null(spec: Spec) -> None:
    for schema in ("Dataset", "DatasetVersion"):
        fields = spec["components"]["schemas"][schema]["properties"]["fields"]
        fields["items"]["properties"]["description"]["nullable"] = True


LIVE: dict[str, Callable[[Spec], None]] = {
    "POST /lineage answers 201": _lineage_post_answers_201,
    "FacetsResult.facets is a map of facets": _facets_result_is_a_map,
    "FacetsResult may be an empty body": _facets_result_may_be_empty,
    "DatasetVersion.id has no version": _dataset_version_id_has_no_version,
    "DatasetVersion.tags is an array": _dataset_version_tags_are_an_array,
    "DatasetVersion.description may be null": _nullable("DatasetVersion", "description"),
    "DatasetVersion.createdByRun may be null": _dataset_version_created_by_run_may_be_null,
    "OutputDatasetVersion.facets are facets": _output_facets_are_facets,
    "Dataset.lastModifiedAt may be null": _nullable("Dataset", "lastModifiedAt"),
    "Dataset.description may be null": _nullable("Dataset", "description"),
    "a field's description may be null": _field_descriptions_may_be_null,
    "GraphNode.data follows the node type": _graph_node_data_follows_node_type,
    "Job.parentJobName may be null": _nullable("Job", "parentJobName"),
    "Job.parentJobUuid may be null": _nullable("Job", "parentJobUuid"),
    "Job.location may be null": _nullable("Job", "location"),
    "Job.description may be null": _nullable("Job", "description"),
}
"""Corrections that make the spec describe the live Marquez's answers, by name."""


def corrected_spec(validity: Iterable[str] = tuple(VALIDITY), live: Iterable[str] = ()) -> Spec:
    """The published spec with the named corrections (a fresh copy; see :func:`marquez_spec`).

    Raises:
        KeyError: a name that is no correction.
    """
    spec = published_spec()
    for name in validity:
        VALIDITY[name](spec)
    for name in live:
        LIVE[name](spec)
    return spec


@cache
def marquez_spec() -> Spec:
    """Marquez's spec with every correction: a valid OpenAPI 3.0 document that accepts what
    the live Marquez 0.50.0 answers to the requests radops makes. Do not modify the result.

    Kept, because they make the document valid (:data:`VALIDITY`):

    1. YAML reads the unquoted response codes ``200:`` as integers: keys become strings again.
    2. ``/search``'s ``before`` and ``after`` entries carry stray ``before:``/``after:`` keys.
    3. ``SearchResult.name`` and ``updatedAt`` have ``type: null``: they are strings (the live
       ``/search`` answer has them so).
    4. ``/namespaces/{namespace}/datasets`` declares a ``{dataset}`` path parameter it lacks.

    Removed:

    5. ``/runlineage/upstream`` and its schema ``UpstreamRunLineage`` go. As published they are
       invalid (``paramteters``, a path parameter ``{id}`` the path lacks, ``propoerties``), and
       the old repair is gone with them: radops never reads the endpoint, and Marquez 0.50.0
       answers it 500 for a run whose upstream holds a dataset version no run produced (every
       run downstream of ``datalake add`` of a local file).
    6. The date regex that replaced ``pattern: YYYY-MM-DD`` on ``/search``'s ``before`` and
       ``after``: the pattern is valid as published, and radops sends neither parameter.

    Added or kept because the live Marquez 0.50.0 answers so (:data:`LIVE`):

    7. ``POST /lineage`` answers 201 Created with no body; the spec lists only 200.
    8. ``GET /jobs/runs/{id}/facets`` answers ``facets`` as a map of facet name to facet (like
       ``RunFacets``); the spec types it as one facet.
    9. It answers 200 with an empty body (no Content-Type) for a run without facets of the
       asked type: ``FacetsResult`` is nullable, and :func:`check_exchange` reads an empty body
       as null.
    10. ``GET .../datasets/{dataset}/versions``: a version's ``id`` is ``{namespace, name}``
        without the ``version`` that ``DatasetVersionId`` requires, so it is a ``DatasetId``;
    11. its ``tags`` is an array (``[]``), not a string;
    12. its ``description`` is null (the field is required, and the answer carries it);
    13. its ``createdByRun`` is null for a version no run produced (a local file added to the
        lake).
    14. A run's ``outputDatasetVersions[].facets`` are facet objects (``outputStatistics``), not
        strings (in ``GET /jobs/runs/{id}``, job runs, and versions' ``createdByRun``). The
        run's null ``nominalStartTime`` and ``nominalEndTime`` need nothing: ``Run`` is
        ``anyOf`` an ``IncompleteRun`` or a run with its versions, which does not declare them.
        ``InputDatasetVersion.facets`` keeps its published type: radops sends no input facets,
        so no live answer proves a correction.
    15. ``GET .../datasets/{dataset}`` and the dataset nodes of ``GET /lineage`` have
        ``lastModifiedAt`` null;
    16. and ``description`` null.
    17. ``GET /lineage``: a node's ``data`` is the dataset or the job its ``type`` (``DATASET``,
        ``JOB``) names. The published discriminator reads ``data.type``, which holds the
        dataset's or the job's own type (``DB_TABLE``, ``BATCH``), so no node matched.
    18. The job nodes' ``data`` has ``parentJobName``,
    19. ``parentJobUuid``,
    20. ``location``,
    21. and ``description`` null.
    22. A dataset with columns (the ``schema`` facet radops records for CSV and Parquet
        outputs) has ``fields``, each with ``description`` null, in ``Dataset`` and in
        ``DatasetVersion`` (and so in the dataset nodes of ``GET /lineage``).
    """
    return corrected_spec(VALIDITY, LIVE)


@cache
def openapi() -> Any:
    """The openapi-core validator of the corrected spec (the spec itself is validated too)."""
    from openapi_core import OpenAPI

    return OpenAPI.from_dict(marquez_spec())


def check_exchange(
    api: Any,
    method: str,
    path: str,
    query: dict[str, str],
    body: bytes | None,
    status: int,
    response: bytes | None,
) -> None:
    """Validate one exchange against the openapi-core validator ``api`` (raises on mismatch).

    ``path`` is the path as sent, each namespace or name one percent-encoded segment: the
    template is matched on it (a decoded ``%2F`` would split the segment), and the decoded
    values are validated, as Marquez sees them. An empty or missing ``response`` is read as
    JSON null: OpenAPI 3.0 cannot say "this JSON, or no body", so only a nullable schema
    accepts it (a response without content, like 201 to ``POST /lineage``, is not read).
    """
    from openapi_core.templating.paths.exceptions import PathError
    from openapi_core.templating.paths.finders import APICallPathFinder
    from openapi_core.testing import MockRequest, MockResponse

    try:
        found = APICallPathFinder(api.spec).find(method.lower(), SPEC_SERVER + path)
        variables = found.path_result.variables or {}
        decoded = {name: unquote(value) for name, value in variables.items()}
    except PathError:
        decoded = {}  # validate_request says what is wrong
    request = MockRequest(
        SPEC_SERVER, method.lower(), path, view_args=decoded, args=query, data=body
    )
    api.validate_request(request)
    # The spec documents no error responses; Marquez answers 404 {code, message} for unknown
    # datasets, jobs and runs, which radops reads as "not known". Only documented statuses
    # have a schema to validate against.
    if status < 400:
        api.validate_response(request, MockResponse(response or b"null", status_code=status))


def validate_exchange(
    method: str,
    path: str,
    query: dict[str, str],
    body: bytes | None,
    status: int,
    response: bytes | None,
) -> None:
    """Validate one request, and its response, against Marquez's corrected spec (raises on
    mismatch): :func:`check_exchange` with :func:`openapi`."""
    check_exchange(openapi(), method, path, query, body, status, response)
