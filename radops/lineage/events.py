"""Building the OpenLineage run events of a creation (pure: no I/O).

One call of a ``file_creator`` function (or one ``radops datalake add``) is one OpenLineage
run: a START event, then COMPLETE, FAIL or ABORT, sharing a UUIDv7 ``runId``. The job is the
call, ``<function>/<call id>`` in the ``RADOPS_NAMESPACE`` namespace (see
:mod:`radops.lineage.naming` for why), and radops' run facet names the function; inputs and
outputs are data-lake files named by the OpenLineage dataset naming convention.

Nothing here produces what a consumer must reject: NUL characters (PostgreSQL, under Marquez,
refuses them in JSON) are replaced by U+FFFD in every text radops puts in an event.
"""

from __future__ import annotations

import json
import os
import platform
import threading
import time
import traceback
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

if TYPE_CHECKING:
    from openlineage.client.event_v2 import RunEvent

    from radops.lineage.parents import ParentRun
    from radops.lineage.schemas import Column
    from radops.lineage.source import SourceInfo

__all__ = [
    "JOB_TYPES",
    "RADOPS_FACET",
    "RADOPS_FACET_SCHEMA_URL",
    "Creation",
    "DatasetRef",
    "build_event",
    "child_job",
    "event_to_dict",
    "function_of",
    "producer",
    "radops_facet",
    "recorded_sha256",
    "uuid7",
]

#: The key of radops' run facet (OpenLineage's ``{prefix}_{name}`` rule for custom facets).
RADOPS_FACET = "radops_run"
#: The key radops used before, still read in records written by earlier versions.
_LEGACY_FACET = "radops"
RADOPS_FACET_SCHEMA_URL = (
    "https://radops.dev/spec/facets/1-1-0/RadopsRunFacet.json#/$defs/RadopsRunFacet"
)


_last_uuid7 = 0
_uuid7_lock = threading.Lock()


def uuid7() -> uuid.UUID:
    """A new UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits.

    Monotonic within a process (RFC 9562, method 2 style): a value that would not sort after
    the previous one is the previous one plus one, so records and queued events keep the order
    they were made in, even within one millisecond.
    """
    global _last_uuid7
    millis = time.time_ns() // 1_000_000
    value = (millis & ((1 << 48) - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    value = _with_version(value)
    with _uuid7_lock:
        if value <= _last_uuid7:
            value = _with_version(_last_uuid7 + 1)
            if value <= _last_uuid7:  # the +1 overflowed into the fixed bits: skip past them
                value = _with_version(_last_uuid7 + (1 << 62))
        _last_uuid7 = value
    return uuid.UUID(int=value)


def _with_version(value: int) -> int:
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    return (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant


@attrs.frozen
class DatasetRef:
    """A file as an OpenLineage dataset: its name in the lineage world, and what we know of it."""

    namespace: str
    name: str
    uid: str | None = None
    sha256: str | None = None
    size: int | None = None
    schema: tuple[Column, ...] | None = None  # an output's columns (a table format)


#: ``jobType`` of each kind of radops run (OpenLineage's ``JobTypeJobFacet``).
JOB_TYPES = ("FILE_CREATOR", "FILE_WRITE", "DATALAKE_ADD", "DATALAKE_RM", "DATALAKE_REPAIR")


def producer(radops_version: str) -> str:
    """The ``producer`` URI of events and facets: radops at its version."""
    return f"https://github.com/radops/radops/tree/{radops_version}"


def radops_facet(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """The radops run facet of an event ({} for events of other producers)."""
    facets = event.get("run", {}).get("facets", {})
    if not isinstance(facets, Mapping):
        return {}
    facet = facets.get(RADOPS_FACET, facets.get(_LEGACY_FACET, {}))
    return facet if isinstance(facet, Mapping) else {}


def function_of(event: Mapping[str, Any]) -> str:
    """The function (or radops command) that made a run: the radops facet's ``function``, or,
    in events of earlier radops versions whose job was the function, the job's name."""
    function = radops_facet(event).get("function")
    if isinstance(function, str) and function:
        return function
    return str(event.get("job", {}).get("name", ""))


def recorded_sha256(
    record: Mapping[str, Any], uid: str, lake_dataset: tuple[str, str]
) -> str | None:
    """The sha256 ``record`` gives for its input ``uid``: from radops' facet, else from the
    ``version`` facet of the input dataset ``lake_dataset`` (the uid's namespace and name in
    this lake), else of the one input whose name ends in ``/<uid>`` (a directory lake mounted
    elsewhere)."""
    versions = radops_facet(record).get("inputSha256", {})
    if isinstance(versions, Mapping) and isinstance(versions.get(uid), str):
        return str(versions[uid])
    namespace, name = lake_dataset
    exact: list[str] = []
    suffixed: list[str] = []
    for dataset in record.get("inputs", []):
        version = dataset.get("facets", {}).get("version", {}).get("datasetVersion")
        if not isinstance(version, str):
            continue
        if dataset.get("namespace") == namespace and dataset.get("name") == name:
            exact.append(version)
        elif str(dataset.get("name", "")).endswith("/" + uid):
            suffixed.append(version)
    if exact:
        return exact[0]
    return suffixed[0] if len(set(suffixed)) == 1 else None


@attrs.frozen
class Creation:
    """Everything recorded about one run that creates (or deletes) data-lake files.

    ``job_name`` is the function (or radops command, such as ``radops.datalake.add``); ``call``
    is the run's job, one per distinct call (:func:`radops.lineage.naming.call_job`).
    """

    run_id: str
    job_namespace: str
    job_name: str
    email: str
    radops_version: str
    source: SourceInfo | None = None
    parameters: Mapping[str, Any] = attrs.field(factory=dict)
    inputs: Sequence[DatasetRef] = ()
    outputs: Sequence[DatasetRef] = ()
    call_digest: str | None = None
    returned: Any = None
    lifecycle: str = "CREATE"  # or DROP for deletions
    extra: Mapping[str, Any] = attrs.field(factory=dict)
    call: str | None = None
    job_type: str = "FILE_CREATOR"
    parent: ParentRun | None = None  # the run that started this one (the ``parent`` facet)

    @property
    def job(self) -> str:
        """The OpenLineage job name of the run: the call, or the function if no call is set;
        under a parent, ``<parent job>.<call>`` (:func:`child_job`)."""
        return child_job(self.call or self.job_name, self.parent)


def child_job(job: str, parent: ParentRun | None) -> str:
    """The name of ``job`` run under ``parent``: ``<parent job>.<job>``.

    Marquez files a run with a parent under the parent's job, as ``<parent job>.<job>`` (unless
    the name starts so already), and finds a parent by run id *and* job name: a run named
    otherwise in its event would be filed under another name than it sent, and the runs it
    starts would name a parent Marquez does not know (it then makes a second job). So the
    event carries the name Marquez gives, the convention of the Airflow integration
    (``dag.task`` under ``dag``).
    """
    if parent is None or job.startswith(parent.run.job + "."):
        return job
    return f"{parent.run.job}.{job}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _radops_facet_class() -> type:
    from openlineage.client.facet_v2 import RunFacet

    @attrs.define
    class RadopsRunFacet(RunFacet):
        """radops' own run facet: who ran what, with which parameters and code."""

        email: str = attrs.field()
        radopsVersion: str = attrs.field()
        pythonVersion: str = attrs.field()
        function: str | None = attrs.field(default=None)
        parameters: dict[str, Any] = attrs.field(factory=dict)
        sourceSha256: str | None = attrs.field(default=None)
        callDigest: str | None = attrs.field(default=None)
        outputs: list[str] = attrs.field(factory=list)
        inputs: list[str] = attrs.field(factory=list)
        inputSha256: dict[str, str] = attrs.field(factory=dict)
        returned: Any = attrs.field(default=None)
        codeWarning: str | None = attrs.field(default=None)
        extra: dict[str, Any] = attrs.field(factory=dict)

        _additional_skip_redact: ClassVar[list[str]] = ["radopsVersion", "pythonVersion"]

        @staticmethod
        def _get_schema() -> str:
            return RADOPS_FACET_SCHEMA_URL

    return RadopsRunFacet


_FACET_CLASS: type | None = None


def build_event(
    creation: Creation,
    state: str,
    *,
    error: BaseException | None = None,
    event_time: str | None = None,
) -> RunEvent:
    """The OpenLineage RunEvent of ``creation`` in ``state`` (START, COMPLETE, FAIL, ABORT)."""
    from openlineage.client import constants
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent
    from openlineage.client.event_v2 import RunState as EventType
    from openlineage.client.facet_v2 import (
        dataset_version_dataset,
        error_message_run,
        job_type_job,
        lifecycle_state_change_dataset,
        output_statistics_output_dataset,
        parent_run,
        processing_engine_run,
        schema_dataset,
        source_code_job,
        source_code_location_job,
    )

    global _FACET_CLASS
    if _FACET_CLASS is None:
        _FACET_CLASS = _radops_facet_class()

    made_by = producer(creation.radops_version)
    source = creation.source
    run_facets: dict[str, Any] = {
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
            version=creation.radops_version,
            name="radops",
            openlineageAdapterVersion=constants.__version__,
            producer=made_by,
        ),
        RADOPS_FACET: _FACET_CLASS(
            email=_text(creation.email),
            radopsVersion=creation.radops_version,
            pythonVersion=platform.python_version(),
            function=creation.job_name,
            parameters=_json(dict(creation.parameters)),
            sourceSha256=source.source_sha256 if source else None,
            callDigest=creation.call_digest,
            outputs=[ref.uid for ref in creation.outputs if ref.uid],
            inputs=[ref.uid for ref in creation.inputs if ref.uid],
            inputSha256={ref.uid: ref.sha256 for ref in creation.inputs if ref.uid and ref.sha256},
            returned=_json(creation.returned),
            codeWarning=_text(source.warning) if source and source.warning else None,
            extra=_json(dict(creation.extra)),
            producer=made_by,
        ),
    }
    if creation.parent is not None:
        parent, root = creation.parent.run, creation.parent.root
        run_facets["parent"] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=parent.run_id),
            job=parent_run.Job(namespace=_text(parent.namespace), name=_text(parent.job)),
            root=parent_run.Root(
                run=parent_run.RootRun(runId=root.run_id),
                job=parent_run.RootJob(namespace=_text(root.namespace), name=_text(root.job)),
            )
            if root is not None
            else None,
            producer=made_by,
        )
    if error is not None:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=_text(f"{type(error).__name__}: {error}"),
            programmingLanguage="python",
            stackTrace=_text("".join(traceback.format_exception(error))),
            producer=made_by,
        )

    job_facets: dict[str, Any] = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH",
            integration="RADOPS",
            jobType=creation.job_type,
            producer=made_by,
        ),
    }
    if source is not None:
        if source.source:
            job_facets["sourceCode"] = source_code_job.SourceCodeJobFacet(
                language="python", sourceCode=_text(source.source), producer=made_by
            )
        # Only a link a browser can open: the Marquez UI shows the URL as the job's location,
        # and a file:// URL there is a dead link (the radops facet's codeWarning says why
        # there is none).
        if source.git is not None and source.url is not None:
            job_facets["sourceCodeLocation"] = source_code_location_job.SourceCodeLocationJobFacet(
                type="git",
                url=source.url,
                repoUrl=source.git.origin,
                path=source.git.path,
                version=source.git.commit,
                branch=source.git.branch,
                producer=made_by,
            )

    def version(ref: DatasetRef) -> dict[str, Any]:
        if not ref.sha256:
            return {}
        facet = dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion=ref.sha256, producer=made_by
        )
        return {"version": facet}

    inputs = [
        InputDataset(namespace=ref.namespace, name=ref.name, facets=version(ref))
        for ref in creation.inputs
    ]
    outputs = []
    if state != "START" or creation.lifecycle == "DROP":
        lifecycle = lifecycle_state_change_dataset
        # One facet for every output (the same for each): a directory's run has thousands.
        change = lifecycle.LifecycleStateChangeDatasetFacet(
            lifecycleStateChange=getattr(lifecycle.LifecycleStateChange, creation.lifecycle),
            producer=made_by,
        )
        for ref in creation.outputs:
            facets: dict[str, Any] = {"lifecycleStateChange": change, **version(ref)}
            if ref.schema and creation.lifecycle == "CREATE":
                facets["schema"] = schema_dataset.SchemaDatasetFacet(
                    fields=_schema_fields(ref.schema), producer=made_by
                )
            output_facets: dict[str, Any] = {}
            if ref.size is not None and creation.lifecycle == "CREATE":
                output_facets["outputStatistics"] = (
                    output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                        size=ref.size, fileCount=1, producer=made_by
                    )
                )
            outputs.append(
                OutputDataset(
                    namespace=ref.namespace,
                    name=ref.name,
                    facets=facets,
                    outputFacets=output_facets,
                )
            )
    else:
        outputs = [OutputDataset(namespace=r.namespace, name=r.name) for r in creation.outputs]

    return RunEvent(
        eventType=getattr(EventType, state),
        eventTime=event_time or _now(),
        run=Run(runId=creation.run_id, facets=run_facets),
        job=Job(namespace=creation.job_namespace, name=creation.job, facets=job_facets),
        inputs=inputs,
        outputs=outputs,
        producer=made_by,
    )


def _schema_fields(columns: Sequence[Column]) -> list[Any]:
    """OpenLineage's ``schema`` facet fields of ``columns`` (nested ones for structs)."""
    from openlineage.client.facet_v2 import schema_dataset

    return [
        schema_dataset.SchemaDatasetFacetFields(
            name=_text(column.name),
            type=_text(column.type) if column.type is not None else None,
            fields=_schema_fields(column.fields),
        )
        for column in columns
    ]


def _text(text: str) -> str:
    """``text`` without NUL characters (U+FFFD instead): PostgreSQL refuses them in JSON."""
    return text.replace("\x00", "\ufffd")


def _json(value: Any) -> Any:
    """A JSON value with :func:`_text` applied to every string in it, keys included."""
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, Mapping):
        return {_text(str(key)): _json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(item) for item in value]
    return value


def event_to_dict(event: RunEvent) -> dict[str, Any]:
    """The event as plain JSON data, exactly as it is sent and stored."""
    from openlineage.client.serde import Serde

    data: dict[str, Any] = Serde.to_dict(event)
    # openlineage-python's serde drops every None, and empty objects in lists, at any depth: in
    # the call's parameters, return value and extra fields (any JSON value) that would record
    # another call than the one made ({"n": None} as {}). Those go in as they are.
    facet = (event.run.facets or {}).get(RADOPS_FACET)
    if facet is not None:
        recorded = data["run"]["facets"][RADOPS_FACET]
        for name in _FREE_FORM:
            value = getattr(facet, name)
            if value is not None:
                recorded[name] = json.loads(json.dumps(value))
    return data


#: The fields of radops' run facet that hold any JSON value, kept exactly as they are.
_FREE_FORM = ("parameters", "returned", "extra")
