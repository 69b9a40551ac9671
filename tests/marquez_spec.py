"""Marquez's published OpenAPI spec, made a valid OpenAPI 3.0 document, and validation of real
exchanges against it.

The spec is ``../shared/specs/marquez/openapi.yml`` (Marquez's ``spec/openapi.yml``), or the
file ``$RADOPS_MARQUEZ_SPEC`` names; a fresh clone has neither, and the checks that need it say
so in one line (:func:`spec_missing`). The published spec does not validate as OpenAPI 3.0 as
is: :func:`marquez_spec` applies the smallest corrections, each listed there, and
``tests/test_marquez_spec.py`` checks each one against the live Marquez server, which is the
authority where the two differ.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import yaml

SPEC_PATH = Path(
    os.environ.get("RADOPS_MARQUEZ_SPEC")
    or Path(__file__).resolve().parents[1].parent / "shared" / "specs" / "marquez" / "openapi.yml"
)
SPEC_SERVER = "http://localhost:5000"  # the spec's `servers` entry is http://localhost:5000/api/v1


def spec_missing() -> str | None:
    """Why the spec cannot be used here (one line), or None when it can."""
    if SPEC_PATH.is_file():
        return None
    return (
        f"Marquez's OpenAPI spec is not at {SPEC_PATH}: put the shared specs beside the "
        "repository (../shared) or set RADOPS_MARQUEZ_SPEC to a copy of Marquez's spec/openapi.yml"
    )


def _keys_to_str(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(key): _keys_to_str(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_keys_to_str(value) for value in node]
    return node


@cache
def marquez_spec() -> dict[str, Any]:
    """Marquez's OpenAPI spec with the corrections it needs to be a valid OpenAPI 3.0 document.

    1. YAML reads unquoted response codes as integers: keys become strings again.
    2. ``/runlineage/upstream`` spells ``parameters`` as ``paramteters``; its run id is a query
       parameter there, not the path parameter ``{id}``.
    3. ``/search``'s ``before``/``after`` entries carry stray keys, and ``pattern: YYYY-MM-DD``
       would only match that literal text: a date regex replaces it.
    4. ``UpstreamRunLineage`` spells ``properties`` as ``propoerties``.
    5. ``SearchResult.name`` and ``updatedAt`` have ``type: null``: they are strings.
    6. ``/namespaces/{namespace}/datasets`` declares a ``{dataset}`` path parameter it lacks.
    7. ``POST /lineage`` lists only 200; Marquez answers 201 Created (as the issue notes).
    8. ``FacetsResult.facets`` is typed as one facet; Marquez returns a map of facet name to
       facet, like ``RunFacets``.
    """
    spec: dict[str, Any] = _keys_to_str(yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8")))
    paths = spec["paths"]
    upstream = paths["/runlineage/upstream"]["get"]
    upstream["parameters"] = [
        {
            "name": "runId",
            "in": "query",
            "required": True,
            "schema": {"type": "string", "format": "uuid"},
        },
        {"$ref": "#/components/parameters/depth"},
    ]
    upstream.pop("paramteters", None)
    for parameter in paths["/search"]["get"]["parameters"]:
        parameter.pop("before", None)
        parameter.pop("after", None)
        if parameter.get("schema", {}).get("pattern") == "YYYY-MM-DD":
            parameter["schema"]["pattern"] = r"^\d{4}-\d{2}-\d{2}$"
    schemas = spec["components"]["schemas"]

    def fix_spelling(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                ("properties" if k == "propoerties" else k): fix_spelling(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [fix_spelling(v) for v in node]
        return node

    schemas["UpstreamRunLineage"] = fix_spelling(schemas["UpstreamRunLineage"])
    for field in ("name", "updatedAt"):
        schemas["SearchResult"]["properties"][field]["type"] = "string"
    paths["/namespaces/{namespace}/datasets"]["parameters"] = [
        {"$ref": "#/components/parameters/namespace"}
    ]
    paths["/lineage"]["post"]["responses"]["201"] = {"description": "Created"}
    schemas["FacetsResult"]["properties"]["facets"] = {
        "type": "object",
        "additionalProperties": {"$ref": "#/components/schemas/CustomFacet"},
    }
    return spec


@cache
def openapi() -> Any:
    """The openapi-core validator of the corrected spec (the spec itself is validated too)."""
    from openapi_core import OpenAPI

    return OpenAPI.from_dict(marquez_spec())


def validate_exchange(
    method: str,
    path: str,
    query: dict[str, str],
    body: bytes | None,
    status: int,
    response: bytes | None,
) -> None:
    """Validate one request, and its response, against Marquez's spec (raises on mismatch)."""
    from openapi_core.testing import MockRequest, MockResponse

    request = MockRequest(SPEC_SERVER, method.lower(), path, args=query, data=body)
    openapi().validate_request(request)
    # The spec documents no error responses; Marquez answers 404 {code, message} for unknown
    # datasets, jobs and runs, which radops reads as "not known". Only documented statuses
    # have a schema to validate against.
    if response is not None and status < 400:
        openapi().validate_response(request, MockResponse(response, status_code=status))
