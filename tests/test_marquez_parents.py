"""Parent runs in the real Marquez 0.50: a radops run started by another run is filed under it.

The orchestrator's own events (an Airflow DAG run and its task run, as the OpenLineage provider
sends them) are posted here by hand; no orchestrator runs. Every answer asserted is Marquez's.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import pytest
import requests

import radops
from radops.data_lake import File, file_creator
from radops.lake import DataLake
from radops.lineage.events import function_of, radops_facet
from radops.lineage.marquez import MarquezClient, node_id
from tests.conftest import MakeLake
from tests.marquez_server import MarquezServer
from tests.olschema import validate_event

MODULE = __name__


@file_creator
def inner(src: File) -> File:
    with src.open() as handle:
        text = handle.read()
    out = File(suffix=".txt")
    with out.open("w") as handle:
        handle.write(text + "+inner")
    return out


@file_creator
def outer(src: File) -> File:
    middle = inner(src)
    out = File(suffix=".txt")
    with middle.open() as a, out.open("w") as b:
        b.write(a.read() + "+outer")
    return out


def _machine(make_lake: MakeLake, url: str, namespace: str) -> DataLake:
    return make_lake("a", marquez_url=url, namespace=namespace, lineage_timeout=30)


def _delivered(lake: DataLake) -> None:
    assert lake.lineage.outbox.wait(60), "events were not delivered to Marquez"
    assert lake.lineage.outbox.rejected() == []


def _get(marquez: MarquezServer, path: str) -> Any:
    response = requests.get(f"{marquez.url}/api/v1{path}", timeout=30)
    assert response.status_code == 200, (path, response.status_code, response.text[:300])
    return response.json()


def _job(marquez: MarquezServer, namespace: str, name: str) -> dict[str, Any]:
    return dict(
        _get(marquez, f"/namespaces/{quote(namespace, safe='')}/jobs/{quote(name, safe='')}")
    )


def _jobs(marquez: MarquezServer, namespace: str) -> set[str]:
    answer = _get(marquez, f"/namespaces/{quote(namespace, safe='')}/jobs?limit=100")
    return {job["name"] for job in answer["jobs"]}


def _starts(lake: DataLake, function: str) -> list[dict[str, Any]]:
    return [
        e
        for e in lake.lineage.index.events()
        if e["eventType"] == "START" and function_of(e) == f"{MODULE}.{function}"
    ]


def _completes(lake: DataLake, function: str) -> list[dict[str, Any]]:
    return [
        e
        for e in lake.lineage.index.events()
        if e["eventType"] == "COMPLETE" and function_of(e) == f"{MODULE}.{function}"
    ]


def _write_job(lake: DataLake) -> str:
    [job] = {
        e["job"]["name"] for e in lake.lineage.index.events() if "File.write" in e["job"]["name"]
    }
    return job


def _airflow_start(
    namespace: str, job: str, run_id: str, parent: tuple[str, str] | None
) -> dict[str, Any]:
    """What the OpenLineage provider sends when a DAG run or a task run starts."""
    facets: dict[str, Any] = {}
    if parent is not None:
        facets["parent"] = {
            "_producer": "https://github.com/apache/airflow/tree/providers-openlineage/2.3.0",
            "_schemaURL": "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet",
            "run": {"runId": parent[1], "facets": {}},
            "job": {"namespace": namespace, "name": parent[0], "facets": {}},
        }
    return {
        "eventType": "START",
        "eventTime": datetime.now(timezone.utc).isoformat(),
        "producer": "https://github.com/apache/airflow/tree/providers-openlineage/2.3.0",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": run_id, "facets": facets},
        "job": {"namespace": namespace, "name": job, "facets": {}},
        "inputs": [],
        "outputs": [],
    }


def _post(marquez: MarquezServer, event: dict[str, Any]) -> None:
    validate_event(event)
    response = requests.post(f"{marquez.url}/api/v1/lineage", json=event, timeout=30)
    assert response.status_code == 201, response.text[:300]


def test_nested_steps_in_an_airflow_task_are_filed_under_it(
    make_lake: MakeLake,
    marquez: MarquezServer,
    lineage_namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the provider's variables set, the outer call is a run of the job
    ``<dag>.<task>.<call>`` whose parent job is the task's, in radops' namespace; the inner call
    is filed under the outer call's job; ``GET /jobs/runs/{id}`` names each parent run in its
    ``args``; no other job appears; and every file still has its full lineage in the graph."""
    airflow = f"{lineage_namespace}-airflow"
    dag_run, task_run = str(uuid.uuid4()), str(uuid.uuid4())
    _post(marquez, _airflow_start(airflow, "wine_dag", dag_run, None))
    _post(marquez, _airflow_start(airflow, "wine_dag.clean", task_run, ("wine_dag", dag_run)))
    monkeypatch.setenv("OPENLINEAGE_PARENT_ID", f"{airflow}/wine_dag.clean/{task_run}")
    monkeypatch.setenv("OPENLINEAGE_ROOT_PARENT_ID", f"{airflow}/wine_dag/{dag_run}")

    lake = _machine(make_lake, marquez.url, lineage_namespace)
    with File("in.txt", lake=lake).open("w") as handle:
        handle.write("abc")
    made = outer(File("in.txt", lake=lake))
    _delivered(lake)

    [outer_start] = _starts(lake, "outer")
    [inner_start] = _starts(lake, "inner")
    outer_job, inner_job = outer_start["job"]["name"], inner_start["job"]["name"]
    assert outer_job.startswith(f"wine_dag.clean.{MODULE}.outer/")
    assert inner_job.startswith(f"{outer_job}.{MODULE}.inner/")

    outer_run = _get(marquez, f"/jobs/runs/{outer_start['run']['runId']}")
    assert outer_run["state"] == "COMPLETED"
    assert outer_run["args"] == {"run_id": task_run, "name": "wine_dag.clean", "namespace": airflow}
    assert outer_run["jobVersion"]["name"] == outer_job  # the name radops sent, kept
    inner_run = _get(marquez, f"/jobs/runs/{inner_start['run']['runId']}")
    assert inner_run["state"] == "COMPLETED"
    assert inner_run["args"] == {
        "run_id": outer_start["run"]["runId"],
        "name": outer_job,
        "namespace": lineage_namespace,
    }
    assert inner_run["jobVersion"]["name"] == inner_job

    outer_in_marquez = _job(marquez, lineage_namespace, outer_job)
    assert outer_in_marquez["parentJobName"] == "wine_dag.clean"
    assert outer_in_marquez["simpleName"] == outer_job.removeprefix("wine_dag.clean.")
    inner_in_marquez = _job(marquez, lineage_namespace, inner_job)
    assert inner_in_marquez["parentJobName"] == outer_job
    assert inner_in_marquez["parentJobUuid"] is not None
    # in.txt's write ran in the task too; no other job (a second parent job) was made.
    [write] = {e["job"]["name"] for e in lake.lineage.index.events()} - {outer_job, inner_job}
    assert write.startswith("wine_dag.clean.radops.File.write/")
    assert _jobs(marquez, lineage_namespace) == {write, outer_job, inner_job}
    assert _jobs(marquez, airflow) == {"wine_dag", "wine_dag.clean"}

    client = MarquezClient(marquez.url)
    [inner_output] = radops_facet(_completes(lake, "inner")[0])["outputs"]
    for uid, job in ((inner_output, inner_job), (made.uid, outer_job)):
        creation = lake.lineage.creation_of(uid)  # answered by Marquez
        assert creation is not None
        assert creation["job"]["name"] == job
        graph = client.lineage(node_id("dataset", *lake.store.dataset(uid)), depth=20)
        nodes = {node["id"] for node in graph["graph"]}
        assert node_id("job", lineage_namespace, job) in nodes
        assert node_id("job", lineage_namespace, inner_job) in nodes
        assert node_id("dataset", *lake.store.dataset("in.txt")) in nodes


def test_a_parent_marquez_never_heard_of_is_made_in_radops_namespace(
    make_lake: MakeLake, marquez: MarquezServer, lineage_namespace: str
) -> None:
    """A parent whose orchestrator reports elsewhere (a Prefect flow run, by
    ``radops.parent_run``): Marquez makes its job, in the namespace of the radops run that names
    it, and files the radops job under it."""
    flow_run = str(uuid.uuid4())
    lake = _machine(make_lake, marquez.url, lineage_namespace)
    with File("in.txt", lake=lake).open("w") as handle:
        handle.write("abc")
    with radops.parent_run("prefect", "wine-flow", flow_run):
        inner(File("in.txt", lake=lake))
    _delivered(lake)

    [start] = _starts(lake, "inner")
    job = start["job"]["name"]
    assert job.startswith(f"wine-flow.{MODULE}.inner/")
    run = _get(marquez, f"/jobs/runs/{start['run']['runId']}")
    assert run["state"] == "COMPLETED"
    assert run["args"] == {"run_id": flow_run, "name": "wine-flow", "namespace": "prefect"}
    assert _job(marquez, lineage_namespace, job)["parentJobName"] == "wine-flow"
    # Marquez made the flow's job where the radops run is, not in "prefect"; the flow run is
    # RUNNING (the radops run's START made it); its COMPLETE, naming a parent job of another
    # namespace than the one Marquez made, added a second, COMPLETED run to that job.
    assert _jobs(marquez, lineage_namespace) == {job, "wine-flow", _write_job(lake)}
    assert _get(marquez, "/namespaces/prefect/jobs")["jobs"] == []
    assert _get(marquez, f"/jobs/runs/{flow_run}")["state"] == "RUNNING"
    parent = _job(marquez, lineage_namespace, "wine-flow")
    assert parent["parentJobName"] is None
    assert sorted(r["state"] for r in parent["latestRuns"]) == ["COMPLETED", "RUNNING"]
