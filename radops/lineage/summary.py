"""What a creation's COMPLETE event says, in the terms users think in (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from radops.lineage.events import function_of, radops_facet

__all__ = ["CreationSummary", "summarize"]


@attrs.frozen
class CreationSummary:
    """What a creation's COMPLETE event says, in the terms users think in."""

    run_id: str
    job: str
    event_time: str
    originator: str | None
    radops_version: str | None
    inputs: list[str]
    external_inputs: list[str]  # datasets outside the lake (URLs, local files)
    outputs: list[str]
    parameters: dict[str, Any]
    code_url: str | None
    code_warning: str | None
    deleted: bool


def summarize(event: Mapping[str, Any]) -> CreationSummary:
    """Read a COMPLETE event into a :class:`CreationSummary`."""
    radops = radops_facet(event)
    job_facets = event.get("job", {}).get("facets", {})
    location = job_facets.get("sourceCodeLocation", {})
    lake_inputs = set(radops.get("inputs", []))
    external = [
        f"{item['namespace']}{item['name']}"
        if item["namespace"].startswith("http")
        else f"{item['namespace']}:{item['name']}"
        for item in event.get("inputs", [])
        if not _is_lake_dataset(item, lake_inputs)
    ]
    deleted = any(
        output.get("facets", {}).get("lifecycleStateChange", {}).get("lifecycleStateChange")
        == "DROP"
        for output in event.get("outputs", [])
    )
    return CreationSummary(
        run_id=event["run"]["runId"],
        job=function_of(event),
        event_time=event["eventTime"],
        originator=radops.get("email"),
        radops_version=radops.get("radopsVersion"),
        inputs=list(radops.get("inputs", [])),
        external_inputs=external,
        outputs=list(radops.get("outputs", [])),
        parameters=dict(radops.get("parameters", {})),
        code_url=location.get("url"),
        code_warning=radops.get("codeWarning"),
        deleted=deleted,
    )


def _is_lake_dataset(item: Mapping[str, Any], lake_inputs: set[str]) -> bool:
    name = str(item.get("name", ""))
    return any(name == uid or name.endswith("/" + uid) for uid in lake_inputs)
