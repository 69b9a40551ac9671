"""A small typed read client for Marquez's REST API (``/api/v1``), and Marquez as lineage index.

Why not the ``marquez-python`` package: its 0.50 release covers neither ``/lineage`` nor
``/search``, fails to import without an undeclared ``pytz``, and installs a top-level ``tests``
package into site-packages. This client needs only ``requests`` (already brought by
openlineage-python) and reads just what radops uses.

Marquez is read at the **run level**: a file's creation is the ``createdByRun`` of its dataset
version, with that run's facets (radops' own facet carries the inputs, parameters and
originator). Marquez's job-level lineage graph only shows the current job version's inputs and
outputs, so older files made by the same function would drop out of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from radops.errors import RadopsError
from radops.lineage.events import function_of, radops_facet
from radops.lineage.naming import DELETION_JOBS
from radops.redact import redact_in, redact_url

__all__ = ["MarquezClient", "MarquezError", "MarquezIndex", "node_id"]


class MarquezError(RadopsError):
    """Marquez could not be reached or answered with an error."""


def node_id(kind: str, namespace: str, name: str) -> str:
    """A Marquez lineage node id, e.g. ``dataset:s3://bucket:key``.

    ``#`` is Marquez's version delimiter in node ids; radops uids cannot contain it.
    """
    return f"{kind}:{namespace}:{name}"


def _segment(text: str) -> str:
    # Namespaces like s3://bucket and keys with '/' must stay one path segment.
    return quote(text, safe="")


class MarquezClient:
    """GET requests to a Marquez server, answers as plain JSON data."""

    def __init__(
        self, url: str, *, api_key: str | None = None, timeout: float = 5.0, session: Any = None
    ) -> None:
        self.base = url.rstrip("/") + "/api/v1"
        self.shown = redact_url(self.base)  # for messages: never a password of the URL
        self.timeout = timeout
        self._api_key = api_key
        self._session = session

    @property
    def session(self) -> Any:
        if self._session is None:
            import requests

            self._session = requests.Session()
            if self._api_key:
                self._session.headers["Authorization"] = f"Bearer {self._api_key}"
        return self._session

    def _get(
        self, path: str, params: Mapping[str, Any] | None = None, *, missing_ok: bool = False
    ) -> Any:
        import requests

        url = self.base + path
        try:
            response = self.session.get(url, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            # requests repeats the URL in some errors (InvalidURL): never its password.
            reason = redact_in(str(exc), self.base)
            raise MarquezError(f"Marquez at {self.shown} is unreachable: {reason}") from exc
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            raise MarquezError(
                f"Marquez at {self.shown} answered {response.status_code} to GET {path}"
            )
        if not response.content.strip():
            return None  # Marquez answers 200 with no body for a run without job facets
        try:
            return response.json()
        except ValueError as exc:
            raise MarquezError(f"Marquez sent a body that is not JSON for GET {path}") from exc

    def dataset(self, namespace: str, name: str) -> dict[str, Any] | None:
        """``GET /namespaces/{ns}/datasets/{name}``; None if Marquez does not know it."""
        result: dict[str, Any] | None = self._get(
            f"/namespaces/{_segment(namespace)}/datasets/{_segment(name)}", missing_ok=True
        )
        return result

    def dataset_versions(self, namespace: str, name: str, limit: int = 25) -> list[dict[str, Any]]:
        """``GET .../datasets/{name}/versions``, newest first; [] if unknown."""
        result = self._get(
            f"/namespaces/{_segment(namespace)}/datasets/{_segment(name)}/versions",
            {"limit": limit},
            missing_ok=True,
        )
        return list(result.get("versions", [])) if result else []

    def run(self, run_id: str) -> dict[str, Any] | None:
        """``GET /jobs/runs/{id}``; None if unknown."""
        result: dict[str, Any] | None = self._get(f"/jobs/runs/{_segment(run_id)}", missing_ok=True)
        return result

    def job_facets(self, run_id: str) -> dict[str, Any]:
        """``GET /jobs/runs/{id}/facets?type=job``: the job facets of that run."""
        result = self._get(
            f"/jobs/runs/{_segment(run_id)}/facets", {"type": "job"}, missing_ok=True
        )
        facets = result.get("facets") if result else None
        return dict(facets) if isinstance(facets, Mapping) else {}

    def job_runs(self, namespace: str, job: str, limit: int = 100) -> list[dict[str, Any]]:
        """``GET /namespaces/{ns}/jobs/{job}/runs``, newest first; [] if unknown."""
        result = self._get(
            f"/namespaces/{_segment(namespace)}/jobs/{_segment(job)}/runs",
            {"limit": limit},
            missing_ok=True,
        )
        return list(result.get("runs", [])) if result else []

    def lineage(self, node: str, depth: int = 20) -> dict[str, Any]:
        """``GET /lineage?nodeId=...&depth=N``: the (job-level) lineage graph."""
        result: dict[str, Any] | None = self._get("/lineage", {"nodeId": node, "depth": depth})
        return result or {"graph": []}

    def search(
        self, q: str, *, filter: str | None = None, namespace: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """``GET /search``: datasets and jobs whose name matches ``q`` (``%`` wildcards)."""
        params: dict[str, Any] = {"q": q, "limit": limit}
        if filter:
            params["filter"] = filter
        if namespace:
            params["namespace"] = namespace
        result = self._get("/search", params)
        return list(result.get("results", [])) if result else []


def _lake_dataset(version: Mapping[str, Any]) -> tuple[str, str]:
    ident = version.get("datasetVersionId") or version.get("id") or {}
    return str(ident.get("namespace", "")), str(ident.get("name", ""))


class MarquezIndex:
    """The lineage questions radops asks, answered by Marquez at the run level.

    ``dataset_of(uid)`` maps a uid to its (namespace, name); answers are OpenLineage-like
    COMPLETE events rebuilt from Marquez's run, so the CLI renders them as it renders events
    from the embedded index.
    """

    def __init__(self, client: MarquezClient, job_namespace: str) -> None:
        self.client = client
        self.job_namespace = job_namespace

    def creation_of(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The run that created the newest version of a dataset, as a COMPLETE event."""
        for version in self.client.dataset_versions(namespace, name):
            run = version.get("createdByRun")
            if not isinstance(run, Mapping) or not run.get("id"):
                continue
            event = self._event(run)
            if function_of(event) in DELETION_JOBS:
                return None  # the newest version records its deletion
            return event
        return None

    def call(self, job_name: str, digest: str) -> dict[str, Any] | None:
        """The newest completed run of the call job ``job_name`` whose digest is ``digest``."""
        for run in self.client.job_runs(self.job_namespace, job_name):
            if radops_facet({"run": run}).get("callDigest") == digest and (
                run.get("state") == "COMPLETED"
            ):
                # The skip needs the run's facets, not the code link: one request less.
                return self._event(run, job_facets=False)
        return None

    def _event(self, run: Mapping[str, Any], *, job_facets: bool = True) -> dict[str, Any]:
        run_id = str(run["id"])
        full = run if "facets" in run and "jobVersion" in run else (self.client.run(run_id) or run)
        job = full.get("jobVersion") or {}
        facets = dict(full.get("facets") or {})
        return {
            "eventType": "COMPLETE",
            "eventTime": full.get("endedAt") or full.get("updatedAt") or full.get("createdAt"),
            "run": {"runId": run_id, "facets": facets},
            "job": {
                "namespace": job.get("namespace", self.job_namespace),
                "name": job.get("name", ""),
                "facets": self.client.job_facets(run_id) if job_facets else {},
            },
            "inputs": [
                dict(zip(("namespace", "name"), _lake_dataset(item), strict=True))
                for item in full.get("inputDatasetVersions") or []
            ],
            "outputs": [
                dict(zip(("namespace", "name"), _lake_dataset(item), strict=True))
                for item in full.get("outputDatasetVersions") or []
            ],
        }
