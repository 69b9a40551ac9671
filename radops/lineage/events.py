"""Building the OpenLineage run events of a creation (pure: no I/O).

One call of a ``file_creator`` function (or one ``radops datalake add``) is one OpenLineage
run: a START event, then COMPLETE, FAIL or ABORT, sharing a UUIDv7 ``runId``. The job is the
function (``module.function`` in the ``RADOPS_NAMESPACE`` namespace); inputs and outputs are
data-lake files named by the OpenLineage dataset naming convention.
"""

from __future__ import annotations

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

    from radops.lineage.source import SourceInfo

__all__ = [
    "RADOPS_FACET",
    "RADOPS_FACET_SCHEMA_URL",
    "Creation",
    "DatasetRef",
    "build_event",
    "event_to_dict",
    "uuid7",
]

PRODUCER = "https://github.com/radops/radops"
RADOPS_FACET = "radops"
RADOPS_FACET_SCHEMA_URL = (
    "https://radops.dev/spec/facets/1-0-0/RadopsRunFacet.json#/$defs/RadopsRunFacet"
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


@attrs.frozen
class Creation:
    """Everything recorded about one run that creates (or deletes) data-lake files."""

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
        parameters: dict[str, Any] = attrs.field(factory=dict)
        sourceSha256: str | None = attrs.field(default=None)
        callDigest: str | None = attrs.field(default=None)
        outputs: list[str] = attrs.field(factory=list)
        inputs: list[str] = attrs.field(factory=list)
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
        processing_engine_run,
        source_code_job,
        source_code_location_job,
    )

    global _FACET_CLASS
    if _FACET_CLASS is None:
        _FACET_CLASS = _radops_facet_class()

    source = creation.source
    run_facets: dict[str, Any] = {
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
            version=creation.radops_version,
            name="radops",
            openlineageAdapterVersion=constants.__version__,
            producer=PRODUCER,
        ),
        RADOPS_FACET: _FACET_CLASS(
            email=creation.email,
            radopsVersion=creation.radops_version,
            pythonVersion=platform.python_version(),
            parameters=dict(creation.parameters),
            sourceSha256=source.source_sha256 if source else None,
            callDigest=creation.call_digest,
            outputs=[ref.uid for ref in creation.outputs if ref.uid],
            inputs=[ref.uid for ref in creation.inputs if ref.uid],
            returned=creation.returned,
            codeWarning=source.warning if source else None,
            extra=dict(creation.extra),
            producer=PRODUCER,
        ),
    }
    if error is not None:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=f"{type(error).__name__}: {error}",
            programmingLanguage="python",
            stackTrace="".join(traceback.format_exception(error)),
            producer=PRODUCER,
        )

    job_facets: dict[str, Any] = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH",
            integration="RADOPS",
            jobType="FILE_CREATOR",
            producer=PRODUCER,
        ),
    }
    if source is not None:
        if source.source:
            job_facets["sourceCode"] = source_code_job.SourceCodeJobFacet(
                language="python", sourceCode=source.source, producer=PRODUCER
            )
        location = _source_location(source, source_code_location_job)
        if location is not None:
            job_facets["sourceCodeLocation"] = location

    inputs = [
        InputDataset(
            namespace=ref.namespace,
            name=ref.name,
            facets={
                "version": dataset_version_dataset.DatasetVersionDatasetFacet(
                    datasetVersion=ref.sha256, producer=PRODUCER
                )
            }
            if ref.sha256
            else {},
        )
        for ref in creation.inputs
    ]
    outputs = []
    if state != "START" or creation.lifecycle == "DROP":
        lifecycle = lifecycle_state_change_dataset
        change = getattr(lifecycle.LifecycleStateChange, creation.lifecycle)
        for ref in creation.outputs:
            facets: dict[str, Any] = {
                "lifecycleStateChange": lifecycle.LifecycleStateChangeDatasetFacet(
                    lifecycleStateChange=change, producer=PRODUCER
                )
            }
            if ref.sha256:
                facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
                    datasetVersion=ref.sha256, producer=PRODUCER
                )
            output_facets: dict[str, Any] = {}
            if ref.size is not None and creation.lifecycle == "CREATE":
                output_facets["outputStatistics"] = (
                    output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                        size=ref.size, fileCount=1, producer=PRODUCER
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
        job=Job(namespace=creation.job_namespace, name=creation.job_name, facets=job_facets),
        inputs=inputs,
        outputs=outputs,
        producer=PRODUCER,
    )


def _source_location(source: SourceInfo, module: Any) -> Any:
    git = source.git
    if git is not None:
        url = source.url
        repo_url = git.origin
        if url is None:  # no origin: still say where the file is in the repository
            url = f"file://{git.repo_root / git.path}"
        return module.SourceCodeLocationJobFacet(
            type="git",
            url=url,
            repoUrl=repo_url,
            path=git.path,
            version=git.commit,
            branch=git.branch,
            producer=PRODUCER,
        )
    if source.file is not None:
        anchor = f"#L{source.line}" if source.line else ""
        return module.SourceCodeLocationJobFacet(
            type="file",
            url=f"{source.file.as_uri()}{anchor}",
            path=str(source.file),
            producer=PRODUCER,
        )
    return None


def event_to_dict(event: RunEvent) -> dict[str, Any]:
    """The event as plain JSON data, exactly as it is sent and stored."""
    from openlineage.client.serde import Serde

    data: dict[str, Any] = Serde.to_dict(event)
    return data
