"""Parent runs: a radops run names the run that started it (OpenLineage's ``parent`` facet).

A ``file_creator`` called from another names the outer call; a run inside an orchestrator's run
names that run, given by ``radops.parent_run(...)`` or by the ``OPENLINEAGE_PARENT_*`` variables
the OpenLineage integrations pass to the processes they start. Every event is checked against
the 2-0-2 schemas, the ``parent`` facet's included (``tests/olschema.py``).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest

import radops
from radops.data_lake import File, file_creator
from radops.lake import DataLake
from radops.lineage.events import function_of, radops_facet
from tests.olschema import validate_event

MODULE = __name__


@file_creator
def inner(src: File, suffix: str) -> File:
    with src.open() as handle:
        text = handle.read()
    out = File(suffix=".txt")
    with out.open("w") as handle:
        handle.write(text + suffix)
    return out


@file_creator
def outer(src: File) -> File:
    middle = inner(src, "+inner")
    with middle.open() as handle:
        text = handle.read()
    out = File(suffix=".txt")
    with out.open("w") as handle:
        handle.write(text + "+outer")
    return out


@file_creator
def outermost(src: File) -> File:
    return outer(src)


def put(lake: DataLake, uid: str, text: str) -> File:
    file = File(uid, lake=lake)
    with file.open("w") as handle:
        handle.write(text)
    return file


def events_of(lake: DataLake, function: str) -> list[dict[str, Any]]:
    """The indexed events of the runs of ``function``, START first."""
    return [e for e in lake.lineage.index.events() if function_of(e) == f"{MODULE}.{function}"]


def run_of(event: dict[str, Any]) -> dict[str, Any]:
    """The run an event describes, as the ``parent`` facet names a run."""
    return {
        "run": {"runId": event["run"]["runId"]},
        "job": {"namespace": event["job"]["namespace"], "name": event["job"]["name"]},
    }


def parent_of(event: dict[str, Any]) -> dict[str, Any] | None:
    """The ``parent`` facet's runs, without the (empty) facets forwarded from them."""
    facet = event["run"]["facets"].get("parent")
    if facet is None:
        return None

    def bare(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: bare(v) for k, v in value.items() if k != "facets" and k[0] != "_"}
        return value

    assert not facet["run"]["facets"]
    return dict(bare(facet))


def test_a_step_called_from_a_step_names_the_outer_run_as_parent_and_root(lake: DataLake) -> None:
    """The inner call's START and COMPLETE carry the outer run as parent and root; the outer
    run is a root run, and its inputs and outputs are its own."""
    outer(put(lake, "in.txt", "abc"))

    outer_start, outer_complete = events_of(lake, "outer")
    inner_events = events_of(lake, "inner")
    assert [e["eventType"] for e in inner_events] == ["START", "COMPLETE"]
    for event in inner_events:
        assert parent_of(event) == {**run_of(outer_start), "root": run_of(outer_start)}
        # Named under the outer call's job, as Marquez files it (tests/test_marquez_parents.py).
        assert event["job"]["name"].startswith(outer_start["job"]["name"] + f".{MODULE}.inner/")
    assert parent_of(outer_start) is None
    assert parent_of(outer_complete) is None

    inner_out = radops_facet(inner_events[-1])["outputs"]
    outer_facet = radops_facet(outer_complete)
    # The outer call read the inner call's output itself: an input of its own; the inner
    # call's input and output are not the outer's outputs.
    assert outer_facet["inputs"] == ["in.txt", *inner_out]
    assert len(outer_facet["outputs"]) == 1
    assert outer_facet["outputs"] != inner_out
    for event in lake.lineage.index.events():
        validate_event(event)


def test_three_levels_keep_the_outermost_call_as_root(lake: DataLake) -> None:
    """Each call names its caller as parent, and the outermost call as root."""
    outermost(put(lake, "in.txt", "abc"))
    [top, _] = events_of(lake, "outermost")
    [middle, _] = events_of(lake, "outer")
    [bottom, _] = events_of(lake, "inner")
    assert parent_of(middle) == {**run_of(top), "root": run_of(top)}
    assert parent_of(bottom) == {**run_of(middle), "root": run_of(top)}
    validate_event(bottom)


def test_a_skipped_inner_call_inside_a_rerun_records_nothing(lake: DataLake) -> None:
    """A skipped call is no run: rerunning the outer call with its outputs deleted reruns it,
    and the inner call, whose output is still there, is skipped."""
    src = put(lake, "in.txt", "abc")
    made = outer(src)
    made.delete()
    outer(src)
    assert [e["eventType"] for e in events_of(lake, "inner")] == ["START", "COMPLETE"]
    assert len(events_of(lake, "outer")) == 4


AIRFLOW_TASK = ("airflow", "wine_dag.clean", "01973a2e-7b0c-7c43-9f1e-2b6f0b6d9a10")
AIRFLOW_DAG = ("airflow", "wine_dag", "01973a2e-7a10-7b7e-8d3c-5a2e61f1f2c4")


def ref(namespace: str, job: str, run_id: str) -> dict[str, Any]:
    return {"run": {"runId": run_id}, "job": {"namespace": namespace, "name": job}}


def test_parent_run_block_names_the_orchestrator_run(lake: DataLake) -> None:
    """Inside ``radops.parent_run(...)``, a call names that run as parent (and root when none
    is given); a call nested in it names the outer call, with the block's run as root."""
    with radops.parent_run(*AIRFLOW_TASK):
        outer(put(lake, "in.txt", "abc"))
    outer_start, _ = events_of(lake, "outer")
    writes = [e for e in lake.lineage.index.events() if function_of(e) == "radops.File.write"]
    assert parent_of(outer_start) == ref(*AIRFLOW_TASK)
    assert [parent_of(e) for e in writes] == [ref(*AIRFLOW_TASK)] * 2  # File(...).open("w") too
    for event in events_of(lake, "inner"):
        assert parent_of(event) == {**run_of(outer_start), "root": ref(*AIRFLOW_TASK)}
        validate_event(event)
    validate_event(outer_start)


def test_parent_run_with_a_root_passes_the_root_down(lake: DataLake) -> None:
    """With a root, the call names it as root, and so do the calls nested in it."""
    dag_ns, dag, dag_run = AIRFLOW_DAG
    with radops.parent_run(*AIRFLOW_TASK, root_namespace=dag_ns, root_job=dag, root_run_id=dag_run):
        outer(put(lake, "in.txt", "abc"))
    outer_start, _ = events_of(lake, "outer")
    assert parent_of(outer_start) == {**ref(*AIRFLOW_TASK), "root": ref(*AIRFLOW_DAG)}
    inner_start, _ = events_of(lake, "inner")
    assert parent_of(inner_start) == {**run_of(outer_start), "root": ref(*AIRFLOW_DAG)}
    validate_event(inner_start)
    validate_event(outer_start)


def test_outside_the_block_runs_are_root_runs_again(lake: DataLake) -> None:
    """The block's parent ends with the block."""
    with radops.parent_run(*AIRFLOW_TASK):
        pass
    inner(put(lake, "in.txt", "abc"), "!")
    assert all(parent_of(e) is None for e in lake.lineage.index.events())


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("airflow", "dag.task", "not-a-uuid"), "run id 'not-a-uuid' is not a UUID"),
        (("", "dag.task", AIRFLOW_TASK[2]), "namespace is empty"),
        (("airflow", "x" * 1025, AIRFLOW_TASK[2]), "job name is 1025 characters long"),
        (("airflow", "dag\ntask", AIRFLOW_TASK[2]), "job name holds control characters"),
    ],
)
def test_parent_run_refuses_what_no_consumer_could_use(
    arguments: tuple[str, str, str], message: str
) -> None:
    """A bad name or run id is a ValueError saying which one, before the block runs."""
    with pytest.raises(ValueError, match=message), radops.parent_run(*arguments):
        pytest.fail("the block ran")


def test_parent_run_wants_the_whole_root_or_none() -> None:
    """A root given in part is refused."""
    with (
        pytest.raises(ValueError, match="root_namespace, root_job and root_run_id together"),
        radops.parent_run(*AIRFLOW_TASK, root_job="wine_dag"),
    ):
        pytest.fail("the block ran")


def test_dbt_style_parent_id_names_the_parent(
    lake: DataLake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``OPENLINEAGE_PARENT_ID=namespace/job/run_id`` (dbt-ol's, and the Airflow provider's
    ``lineage_parent_id`` macro) names the parent; ``OPENLINEAGE_ROOT_PARENT_ID`` the root. A job
    name may hold '/': the namespace is the first segment and the run id the last."""
    parent = ("team", "radops.steps/clean/1a2b", "0197a000-0000-7000-8000-000000000001")
    monkeypatch.setenv("OPENLINEAGE_PARENT_ID", "/".join(parent))
    monkeypatch.setenv("OPENLINEAGE_ROOT_PARENT_ID", "/".join(AIRFLOW_DAG))
    inner(put(lake, "in.txt", "abc"), "!")
    start, complete = events_of(lake, "inner")
    assert parent_of(start) == parent_of(complete) == {**ref(*parent), "root": ref(*AIRFLOW_DAG)}
    validate_event(start)
    validate_event(complete)


def test_airflow_provider_variables_name_the_task_and_the_dag_run(
    lake: DataLake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The variables the recipe of docs/orchestrators.md fills from the OpenLineage provider's
    macros (``lineage_job_namespace``, ``lineage_job_name``, ``lineage_run_id`` and the
    ``lineage_root_*`` ones) name the task run as parent and the DAG run as root."""
    for prefix, (namespace, job, run_id) in (
        ("OPENLINEAGE_PARENT", AIRFLOW_TASK),
        ("OPENLINEAGE_ROOT_PARENT", AIRFLOW_DAG),
    ):
        monkeypatch.setenv(f"{prefix}_JOB_NAMESPACE", namespace)
        monkeypatch.setenv(f"{prefix}_JOB_NAME", job)
        monkeypatch.setenv(f"{prefix}_RUN_ID", run_id)
    inner(put(lake, "in.txt", "abc"), "!")
    start, _ = events_of(lake, "inner")
    assert parent_of(start) == {**ref(*AIRFLOW_TASK), "root": ref(*AIRFLOW_DAG)}
    validate_event(start)


@pytest.mark.parametrize(
    ("variables", "reason"),
    [
        ({"OPENLINEAGE_PARENT_ID": "airflow/dag.task/42"}, "the run id '42' is not a UUID"),
        ({"OPENLINEAGE_PARENT_ID": "just-a-name"}, "OPENLINEAGE_PARENT_ID is not namespace/job"),
        ({"OPENLINEAGE_PARENT_ID": "a/" + "j" * 5000 + "/x"}, "characters long"),
        (
            {"OPENLINEAGE_PARENT_RUN_ID": AIRFLOW_TASK[2]},
            "OPENLINEAGE_PARENT_RUN_ID set without OPENLINEAGE_PARENT_JOB_NAMESPACE",
        ),
    ],
)
def test_a_malformed_parent_variable_is_ignored_with_one_warning(
    lake: DataLake,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    variables: dict[str, str],
    reason: str,
) -> None:
    """A variable no consumer could use never fails the call: the run is recorded without a
    parent, and one warning line says which variable and why, once per process."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    # Another variable of the same kind: each test's values are new to this process.
    monkeypatch.setenv("OPENLINEAGE_PARENT_NOTE", lake.settings.home.name + str(uuid.uuid4()))
    with caplog.at_level(logging.WARNING, logger="radops"):
        inner(put(lake, "in.txt", "abc"), "!")
        inner(File("in.txt", lake=lake), "?")
    assert all(parent_of(e) is None for e in lake.lineage.index.events())
    warnings = [r.getMessage() for r in caplog.records if "parent run" in r.getMessage()]
    assert len(warnings) == 1
    assert reason in warnings[0]
    assert "\n" not in warnings[0]


def test_a_malformed_root_keeps_the_parent(lake: DataLake, monkeypatch: pytest.MonkeyPatch) -> None:
    """A root variable that cannot be used is left out; the parent stays."""
    monkeypatch.setenv("OPENLINEAGE_PARENT_ID", "/".join(AIRFLOW_TASK))
    monkeypatch.setenv("OPENLINEAGE_ROOT_PARENT_ID", "airflow/wine_dag/yesterday")
    inner(put(lake, "in.txt", "abc"), "!")
    start, _ = events_of(lake, "inner")
    assert parent_of(start) == ref(*AIRFLOW_TASK)


def test_the_block_wins_over_the_environment(
    lake: DataLake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The innermost parent wins: a ``parent_run`` block over the process's variables."""
    monkeypatch.setenv("OPENLINEAGE_PARENT_ID", "/".join(AIRFLOW_DAG))
    with radops.parent_run(*AIRFLOW_TASK):
        inner(put(lake, "in.txt", "abc"), "!")
    start, _ = events_of(lake, "inner")
    assert parent_of(start) == ref(*AIRFLOW_TASK)


_dask_lake: list[DataLake] = []


def _dask_task(uid: str) -> str:
    """A Dask task that calls a step (on a worker: no call is running in its thread)."""
    return str(inner(File(uid, lake=_dask_lake[0]), "+task").uid)


@file_creator
def fan_out(src: File) -> list[File]:
    from distributed import get_client

    uids = get_client().gather(get_client().map(_dask_task, [src.uid], pure=False))
    return [File(uid) for uid in uids]


def test_a_step_in_a_dask_task_submitted_from_a_step_names_it_as_parent(lake: DataLake) -> None:
    """A Dask task submitted while a call runs carries that run (a task annotation): a step
    the task calls names it as parent, on the worker, and its root too."""
    import distributed  # a test dependency (the `examples` extra): never skipped

    _dask_lake[:] = [lake]
    try:
        with distributed.Client(
            processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None
        ):
            fan_out(put(lake, "in.txt", "abc"))
    finally:
        _dask_lake.clear()
    [fan_out_start, _] = events_of(lake, "fan_out")
    inner_start, _ = events_of(lake, "inner")
    assert parent_of(inner_start) == {**run_of(fan_out_start), "root": run_of(fan_out_start)}
    validate_event(inner_start)


def test_dagster_recipe_names_the_dagster_run(lake: DataLake) -> None:
    """docs/orchestrators.md's Dagster recipe: inside an op, the Dagster run (``context.run_id``,
    a UUID, of the job ``context.job_name``) is the parent."""
    dagster_run = str(uuid.uuid4())  # what context.run_id holds
    with radops.parent_run("dagster", "wine_job", dagster_run):
        inner(put(lake, "in.txt", "abc"), "!")
    start, _ = events_of(lake, "inner")
    assert parent_of(start) == ref("dagster", "wine_job", dagster_run)
    assert start["job"]["name"].startswith(f"wine_job.{MODULE}.inner/")
    validate_event(start)


def test_prefect_recipe_names_the_task_run_and_the_flow_run(lake: DataLake) -> None:
    """docs/orchestrators.md's Prefect recipe: inside a task, the task run is the parent and the
    flow run the root (``prefect.runtime``'s ``task_run.id`` and ``flow_run.id``, UUIDs)."""
    flow_run, task_run = str(uuid.uuid4()), str(uuid.uuid4())
    with radops.parent_run(
        "prefect",
        "wine-flow.clean",
        task_run,
        root_namespace="prefect",
        root_job="wine-flow",
        root_run_id=flow_run,
    ):
        inner(put(lake, "in.txt", "abc"), "!")
    start, _ = events_of(lake, "inner")
    assert parent_of(start) == {
        **ref("prefect", "wine-flow.clean", task_run),
        "root": ref("prefect", "wine-flow", flow_run),
    }
    validate_event(start)


def test_lineage_shows_the_call_a_file_was_made_in(lake: DataLake, cli_env: dict[str, str]) -> None:
    """``radops datalake lineage`` of a file made by a nested call names the outer call's run,
    and the orchestrator's root run with its namespace."""
    from typer.testing import CliRunner

    from radops.cli.app import app

    dag_ns, dag, dag_run = AIRFLOW_DAG
    with radops.parent_run(*AIRFLOW_TASK, root_namespace=dag_ns, root_job=dag, root_run_id=dag_run):
        outer(put(lake, "in.txt", "abc"))
    outer_start, _ = events_of(lake, "outer")
    [inner_output] = radops_facet(events_of(lake, "inner")[-1])["outputs"]
    result = CliRunner().invoke(
        app, ["datalake", "lineage", inner_output], env={**cli_env, "COLUMNS": "300"}
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert f"called from: {outer_start['job']['name']} (run {outer_start['run']['runId']})" in lines
    assert f"root run: wine_dag (run {dag_run}, namespace airflow)" in lines
