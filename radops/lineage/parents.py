"""The run a radops run belongs to: its OpenLineage parent (and that parent's root).

A radops run names a parent run, in the ``parent`` run facet, when it is started by one:

1. a ``file_creator`` call made while another runs (in the same thread or asyncio task, or in a
   Dask task submitted from it): the outer call's run;
2. a block ``with radops.parent_run(namespace, job, run_id):``, the explicit API for
   orchestrators (a Dagster op, a Prefect flow...);
3. the variables the OpenLineage integrations pass to the processes they start (Airflow's
   OpenLineage provider, dbt's ``dbt-ol``, Spark): ``OPENLINEAGE_PARENT_JOB_NAMESPACE``,
   ``OPENLINEAGE_PARENT_JOB_NAME`` and ``OPENLINEAGE_PARENT_RUN_ID``, or
   ``OPENLINEAGE_PARENT_ID`` as ``namespace/job/run_id``; and the same for the root,
   ``OPENLINEAGE_ROOT_PARENT_*`` and ``OPENLINEAGE_ROOT_PARENT_ID``.

The innermost wins: a call inside a call inside an Airflow task names the outer call as its
parent and the Airflow DAG run (the task's root) as its root.

Environment variables are untrusted input: a variable that is too long, not text, or whose run
id is not a UUID is ignored, with one warning line per process, and never fails a call. This
module is light (no openlineage import): :mod:`radops` re-exports :func:`parent_run`.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import sys
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

__all__ = [
    "MAX_NAME_LENGTH",
    "ParentRun",
    "RunRef",
    "current_parent",
    "from_environment",
    "parent_run",
    "running",
]

log = logging.getLogger("radops.lineage")

#: The longest namespace or job name accepted for a parent (Marquez keeps job names in
#: ``VARCHAR`` columns; an orchestrator's names are far shorter).
MAX_NAME_LENGTH = 1024

#: The Dask task annotation that carries the parent of tasks submitted from a running call.
DASK_ANNOTATION = "radops_parent"


@attrs.frozen
class RunRef:
    """One OpenLineage run: its job's namespace and name, and its run id (a UUID)."""

    namespace: str
    job: str
    run_id: str

    def as_dict(self) -> dict[str, str]:
        """The run as JSON data (what a Dask annotation carries)."""
        return {"namespace": self.namespace, "job": self.job, "runId": self.run_id}


@attrs.frozen
class ParentRun:
    """The parent of a run, and the root of the tree it belongs to (None: the parent is it)."""

    run: RunRef
    root: RunRef | None = None

    def child(self) -> RunRef:
        """The root that runs started under this parent name: its root, or itself."""
        return self.root or self.run

    def as_dict(self) -> dict[str, Any]:
        """The parent as JSON data."""
        return {"run": self.run.as_dict(), "root": self.root.as_dict() if self.root else None}


def _checked(namespace: Any, job: Any, run_id: Any, what: str) -> RunRef:
    """A :class:`RunRef` from untrusted values; ValueError saying which one is wrong."""
    for label, value in (("namespace", namespace), ("job name", job)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{what}: the {label} is empty")
        if len(value) > MAX_NAME_LENGTH:
            raise ValueError(
                f"{what}: the {label} is {len(value)} characters long, more than {MAX_NAME_LENGTH}"
            )
        if not value.isprintable():
            raise ValueError(f"{what}: the {label} holds control characters")
    if not isinstance(run_id, str) or len(run_id) > 64:
        raise ValueError(f"{what}: the run id is not a UUID")
    try:
        run = str(uuid.UUID(run_id))
    except ValueError:
        raise ValueError(f"{what}: the run id {run_id!r} is not a UUID") from None
    return RunRef(namespace, job, run)


_explicit: contextvars.ContextVar[ParentRun | None] = contextvars.ContextVar(
    "radops_parent_run", default=None
)


@contextlib.contextmanager
def parent_run(
    namespace: str,
    job: str,
    run_id: str,
    *,
    root_namespace: str | None = None,
    root_job: str | None = None,
    root_run_id: str | None = None,
) -> Iterator[ParentRun]:
    """Make the radops runs of this block children of the run ``namespace/job/run_id``.

    The run of an orchestrator (a Dagster op, a Prefect task...) that calls radops steps::

        with radops.parent_run("dagster", "my_job.my_op", context.run_id):
            clean(raw)

    The root (the run at the top of the tree, such as a DAG run) is given with
    ``root_namespace``, ``root_job`` and ``root_run_id``, all three or none; without it the
    parent is its own root. Inside the block, a ``file_creator`` call still names the call it
    is made from, and the block's run as its root.

    Raises:
        ValueError: a name is empty, too long or holds control characters, or a run id is not
            a UUID; or the root is given in part.
    """
    parent = ParentRun(_checked(namespace, job, run_id, "parent_run"))
    roots = (root_namespace, root_job, root_run_id)
    if any(value is not None for value in roots):
        if any(value is None for value in roots):
            raise ValueError("parent_run: give root_namespace, root_job and root_run_id together")
        root = _checked(root_namespace, root_job, root_run_id, "parent_run root")
        parent = attrs.evolve(parent, root=root)
    token = _explicit.set(parent)
    try:
        yield parent
    finally:
        _explicit.reset(token)


@contextlib.contextmanager
def running(run: RunRef, parent: ParentRun | None) -> Iterator[None]:
    """Within the block, ``run`` (a running call whose parent is ``parent``) is the parent.

    Dask tasks submitted in the block carry it too (an annotation), when Dask is in use.
    """
    child = ParentRun(run, parent.child() if parent else run)
    token = _explicit.set(child)
    with contextlib.ExitStack() as stack:
        if "dask" in sys.modules:
            stack.enter_context(_dask_annotation(child))
        try:
            yield
        finally:
            _explicit.reset(token)


def _dask_annotation(parent: ParentRun) -> contextlib.AbstractContextManager[Any]:
    try:
        import dask

        annotate: Any = dask.annotate  # type: ignore[attr-defined]
        return annotate(**{DASK_ANNOTATION: parent.as_dict()})  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001 - lineage extras never fail a call: no parent for its tasks
        return contextlib.nullcontext()


def current_parent(env: Mapping[str, str] | None = None) -> ParentRun | None:
    """The parent of a run starting now: the innermost of a running call or a
    :func:`parent_run` block, a Dask task's annotation, the ``OPENLINEAGE_*`` variables."""
    explicit = _explicit.get()
    if explicit is not None:
        return explicit
    task = _dask_parent()
    if task is not None:
        return task
    return from_environment(os.environ if env is None else env)


def _dask_parent() -> ParentRun | None:
    """The parent a Dask task was annotated with, if this thread runs one."""
    if "distributed" not in sys.modules:
        return None
    try:
        from distributed import get_worker
        from distributed.worker import thread_state  # type: ignore[attr-defined]

        key = getattr(thread_state, "key", None)
        if key is None:
            return None
        task = get_worker().state.tasks.get(key)
        annotations = getattr(task, "annotations", None) or {}
        value = annotations.get(DASK_ANNOTATION)
    except Exception:  # noqa: BLE001 - not a worker, another distributed: no parent from Dask
        return None
    if value is None:
        return None
    try:
        run = value["run"]
        parent = ParentRun(_checked(run["namespace"], run["job"], run["runId"], "Dask task"))
        root = value.get("root")
        if root:
            root_ref = _checked(root["namespace"], root["job"], root["runId"], "Dask task")
            parent = attrs.evolve(parent, root=root_ref)
    except (KeyError, TypeError, ValueError) as exc:
        _warn_once(f"ignoring the Dask task's parent run annotation: {exc}", value)
        return None
    return parent


_warned: set[str] = set()


def _warn_once(message: str, value: object = None) -> None:
    """Warn once per process about one value (the same variables at every call)."""
    key = f"{message}\x00{value!r}"
    if key not in _warned:
        _warned.add(key)
        log.warning("%s", message)


#: The variables that give the run one triple each (Airflow's macros, Spark, Glue...).
_PARENT_VARS = (
    "OPENLINEAGE_PARENT_JOB_NAMESPACE",
    "OPENLINEAGE_PARENT_JOB_NAME",
    "OPENLINEAGE_PARENT_RUN_ID",
)
_ROOT_VARS = (
    "OPENLINEAGE_ROOT_PARENT_JOB_NAMESPACE",
    "OPENLINEAGE_ROOT_PARENT_JOB_NAME",
    "OPENLINEAGE_ROOT_PARENT_RUN_ID",
)


def _from_variables(env: Mapping[str, str], names: tuple[str, str, str], joined: str) -> RunRef:
    """The run the three variables ``names`` give, or the one variable ``joined``
    (``namespace/job/run_id``); ValueError naming the variable that is wrong."""
    values = [env.get(name, "") for name in names]
    if any(values):
        missing = [name for name, value in zip(names, values, strict=True) if not value]
        if missing:
            given = [name for name in names if name not in missing]
            raise ValueError(f"{', '.join(given)} set without {', '.join(missing)}")
        namespace, job, run_id = values
        return _checked(namespace, job, run_id, names[0].removesuffix("_JOB_NAMESPACE") + "_*")
    text = env.get(joined, "")
    if len(text) > 2 * MAX_NAME_LENGTH + 64:
        raise ValueError(f"{joined} is {len(text)} characters long")
    # namespace/job/run_id: the namespace is the first segment and the run id the last, so a
    # job name may hold '/' (radops' own do); a namespace with '/' needs the three variables.
    namespace, _, rest = text.partition("/")
    job, _, run_id = rest.rpartition("/")
    if not job:
        raise ValueError(f"{joined} is not namespace/job/run_id")
    return _checked(namespace, job, run_id, joined)


def from_environment(env: Mapping[str, str]) -> ParentRun | None:
    """The parent the ``OPENLINEAGE_PARENT_*`` / ``OPENLINEAGE_ROOT_PARENT_*`` variables of
    ``env`` name, or None (also when they are malformed: warned once, never raised)."""
    if not any(name.startswith("OPENLINEAGE_") and "PARENT" in name for name in env):
        return None
    has_parent = any(env.get(name) for name in (*_PARENT_VARS, "OPENLINEAGE_PARENT_ID"))
    if not has_parent:
        return None
    given = {name: value for name, value in env.items() if "PARENT" in name}
    try:
        parent = ParentRun(_from_variables(env, _PARENT_VARS, "OPENLINEAGE_PARENT_ID"))
    except ValueError as exc:
        _warn_once(f"ignoring the parent run of the environment: {exc}", sorted(given.items()))
        return None
    if any(env.get(name) for name in (*_ROOT_VARS, "OPENLINEAGE_ROOT_PARENT_ID")):
        try:
            root = _from_variables(env, _ROOT_VARS, "OPENLINEAGE_ROOT_PARENT_ID")
        except ValueError as exc:
            _warn_once(f"ignoring the root run of the environment: {exc}", sorted(given.items()))
        else:
            parent = attrs.evolve(parent, root=root)
    return parent
