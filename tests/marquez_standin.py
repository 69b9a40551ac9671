"""A Marquez stand-in for tests: Marquez's own OpenAPI spec guards every request and response.

Marquez (Java + PostgreSQL) cannot run on the test machines. This server keeps the OpenLineage
events POSTed to it and answers the read endpoints radops uses from them, the way Marquez
derives its model from events. Every request it receives and every response it sends is
validated against ``../shared/specs/marquez/openapi.yml`` with openapi-core, and every event
body against the OpenLineage JSON Schema, so a client that drifts from the contract fails.

The official spec (Marquez 0.51) does not validate as OpenAPI 3.0 as published;
:func:`marquez_spec` applies the smallest corrections, each listed there.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from tests.olschema import validate_event

SPEC_PATH = (
    Path(__file__).resolve().parents[1].parent / "shared" / "specs" / "marquez" / "openapi.yml"
)
SPEC_SERVER = "http://localhost:5000"  # the spec's `servers` entry is http://localhost:5000/api/v1


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


class MarquezStandIn:
    """The stand-in's state: events in arrival order, and the exchanges it validated."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        self.authorization: list[str | None] = []
        self.failures: list[str] = []
        self.down = False
        self.lock = threading.Lock()

    # -- the model, derived from events -------------------------------------------------------

    def _complete_runs(self) -> Iterator[dict[str, Any]]:
        # Like Marquez, a run is one row per runId: an event sent again updates it.
        latest: dict[str, dict[str, Any]] = {}
        for event in self.events:
            if event.get("eventType") == "COMPLETE":
                latest.pop(event["run"]["runId"], None)
                latest[event["run"]["runId"]] = event
        yield from latest.values()

    def run_ids(self) -> list[str]:
        """The distinct runs the stand-in knows (what Marquez would list)."""
        with self.lock:
            return [event["run"]["runId"] for event in self._complete_runs()]

    def _run(self, event: dict[str, Any]) -> dict[str, Any]:
        version = "00000000-0000-4000-8000-000000000000"
        time = event["eventTime"]
        start = next(
            (
                e["eventTime"]
                for e in self.events
                if e["run"]["runId"] == event["run"]["runId"] and e["eventType"] == "START"
            ),
            time,
        )
        return {
            "id": event["run"]["runId"],
            "createdAt": start,
            "updatedAt": time,
            "startedAt": start,
            "endedAt": time,
            "state": "COMPLETED",
            "jobVersion": {
                "namespace": event["job"]["namespace"],
                "name": event["job"]["name"],
                "version": version,
            },
            "inputDatasetVersions": [
                {
                    "datasetVersionId": {
                        "namespace": d["namespace"],
                        "name": d["name"],
                        "version": version,
                    },
                    "facets": {},
                }
                for d in event.get("inputs", [])
            ],
            "outputDatasetVersions": [
                {
                    "datasetVersionId": {
                        "namespace": d["namespace"],
                        "name": d["name"],
                        "version": version,
                    },
                    "facets": {},
                }
                for d in event.get("outputs", [])
            ],
            "facets": event["run"].get("facets", {}),
        }

    def _versions(self, namespace: str, name: str) -> list[dict[str, Any]]:
        versions = []
        for event in self._complete_runs():
            for output in event.get("outputs", []):
                if (output["namespace"], output["name"]) == (namespace, name):
                    versions.append(
                        {
                            "id": {
                                "namespace": namespace,
                                "name": name,
                                "version": "00000000-0000-4000-8000-000000000000",
                            },
                            "type": "DB_TABLE",
                            "name": name,
                            "physicalName": name,
                            "createdAt": event["eventTime"],
                            "version": output.get("facets", {})
                            .get("version", {})
                            .get("datasetVersion", "unknown"),
                            "namespace": namespace,
                            "sourceName": namespace,
                            "description": f"{name} in the data lake",
                            "fields": [],
                            # no "tags": the spec types them as a string here, an array elsewhere
                            "createdByRun": self._run(event),
                            "facets": output.get("facets", {}),
                        }
                    )
        return list(reversed(versions))  # newest first, as Marquez lists them

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        """(status, body) of a GET, computed from the events received."""
        parts = [unquote(p) for p in path.removeprefix("/api/v1/").split("/")]
        with self.lock:
            if parts[:1] == ["namespaces"] and len(parts) >= 4 and parts[2] == "datasets":
                versions = self._versions(parts[1], parts[3])
                if not versions:
                    return 404, {"code": 404, "message": "dataset not found"}
                if len(parts) == 5 and parts[4] == "versions":
                    limit = int(query.get("limit", 100))
                    return 200, {"versions": versions[:limit]}
                newest = versions[0]
                return 200, {
                    key: newest[key]
                    for key in (
                        "type",
                        "name",
                        "physicalName",
                        "createdAt",
                        "namespace",
                        "sourceName",
                        "description",
                        "fields",
                        "facets",
                    )
                } | {
                    "tags": [],
                    "id": {"namespace": parts[1], "name": parts[3]},
                    "updatedAt": newest["createdAt"],
                    "currentVersion": "00000000-0000-4000-8000-000000000000",
                }
            if parts[:2] == ["jobs", "runs"] and len(parts) >= 3:
                event = next(
                    (e for e in self._complete_runs() if e["run"]["runId"] == parts[2]), None
                )
                if event is None:
                    return 404, {"code": 404, "message": "run not found"}
                if len(parts) == 4 and parts[3] == "facets":
                    kind = query.get("type", "run")
                    facets = (
                        event["job"].get("facets", {})
                        if kind == "job"
                        else event["run"].get("facets", {})
                    )
                    return 200, {"runId": parts[2], "facets": facets}
                return 200, self._run(event)
            if parts[:1] == ["namespaces"] and len(parts) == 5 and parts[2] == "jobs":
                runs = [
                    self._run(e)
                    for e in self._complete_runs()
                    if (e["job"]["namespace"], e["job"]["name"]) == (parts[1], parts[3])
                ]
                return 200, {"runs": list(reversed(runs))[: int(query.get("limit", 100))]}
            if parts == ["search"]:
                pattern = query.get("q", "").replace("%", "")
                results = []
                for event in self._complete_runs():
                    for output in event.get("outputs", []):
                        if pattern in output["name"]:
                            results.append(
                                {
                                    "type": "DATASET",
                                    "name": output["name"],
                                    "updatedAt": event["eventTime"],
                                    "namespace": output["namespace"],
                                    "nodeId": f"dataset:{output['namespace']}:{output['name']}",
                                }
                            )
                return 200, {"totalCount": len(results), "results": results}
            if parts == ["lineage"]:
                return 200, {"graph": []}
        return 404, {"code": 404, "message": "unknown path"}


def _handler(state: MarquezStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(
            self,
            status: int,
            body: Any,
            method: str,
            query: dict[str, str],
            request_body: bytes | None,
        ) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            path = urlsplit(self.path).path
            try:
                validate_exchange(
                    method, path, query, request_body, status, data if body is not None else None
                )
            except Exception as exc:  # noqa: BLE001 - recorded, and the test fails on it
                state.failures.append(f"{method} {self.path} -> {status}: {exc}")
            self.send_response(status)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            split = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(split.query).items()}
            state.requests.append(("GET", self.path))
            state.authorization.append(self.headers.get("Authorization"))
            status, body = state.answer(split.path, query)
            self._send(status, body, "GET", query, None)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            state.requests.append(("POST", self.path))
            state.authorization.append(self.headers.get("Authorization"))
            if urlsplit(self.path).path != "/api/v1/lineage":
                self._send(404, {"code": 404, "message": "unknown path"}, "POST", {}, raw)
                return
            event = json.loads(raw)
            try:
                validate_event(event)
            except Exception as exc:  # noqa: BLE001
                state.failures.append(f"invalid OpenLineage event: {exc}")
            with state.lock:
                state.events.append(event)
            self._send(201, None, "POST", {}, raw)

    return Handler


class RunningStandIn:
    """A started stand-in: its URL, its state, and stop()."""

    def __init__(self) -> None:
        self.state = MarquezStandIn()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
