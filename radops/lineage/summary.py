"""What a creation's COMPLETE event says, in the terms users think in (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

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
    code_url: str | None  # a web (http/https) link to the code that ran; None if there is none
    code_warning: str | None
    deleted: bool
    code_file: str | None = None  # the code's file, when it was recorded but not linked
    code_line: int | None = None
    code_linkless: str | None = None  # why a recorded file has no link
    called_from: str | None = None  # the parent run: "<job> (run <id>)", with its namespace
    root: str | None = None  # the root run, when it is not the parent

    def code_description(self) -> tuple[str, str | None]:
        """The code of the creation as one line, and a note to print under it, if any.

        A web link is the line, with the warning (uncommitted changes, say) as the note.
        Without a link the line says where the code was and why there is no link, and no note
        contradicts it: ``/work/p/pipe.py line 13 (not in a git repository: no link)``. A
        creation recorded without any code location shows the warning alone.
        """
        if self.code_url:
            return self.code_url, self.code_warning
        if self.code_file:
            line = f" line {self.code_line}" if self.code_line else ""
            return f"{self.code_file}{line} ({self.code_linkless or 'no link'})", None
        if self.code_warning:
            reason = self.code_warning
            for suffix in (": no code link is recorded", ": no code link"):
                reason = reason.removesuffix(suffix)
            return f"no link ({reason})", None
        return "not recorded", None


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
    url = str(location.get("url") or "")
    code_file, code_line, linkless = _unlinked_code(location, url)
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
        code_url=url if url.startswith(("https://", "http://")) else None,
        code_warning=radops.get("codeWarning"),
        deleted=deleted,
        code_file=code_file,
        code_line=code_line,
        code_linkless=linkless,
        **_parents(event),
    )


def _parents(event: Mapping[str, Any]) -> dict[str, str | None]:
    """The ``parent`` facet's runs as lines: ``job (run id, namespace ns)``."""
    facet = event.get("run", {}).get("facets", {}).get("parent")
    if not isinstance(facet, Mapping):
        return {}

    def line(item: Any) -> str | None:
        if not isinstance(item, Mapping):
            return None
        job, run = item.get("job") or {}, item.get("run") or {}
        if not isinstance(job, Mapping) or not isinstance(run, Mapping):
            return None
        where = job.get("namespace")
        namespace = "" if where == event.get("job", {}).get("namespace") else f", namespace {where}"
        return f"{job.get('name', '?')} (run {run.get('runId', '?')}{namespace})"

    parent, root = line(facet), line(facet.get("root"))
    return {"called_from": parent, "root": root if root != parent else None}


def _unlinked_code(
    location: Mapping[str, Any], url: str
) -> tuple[str | None, int | None, str | None]:
    """Where the code was when its location has no web link: (file, line, why no link).

    Older events name such a file with a ``file://`` URL; a location may also carry only its
    ``path``. A ``file://`` URL is no link anyone else can follow, so it is shown as a path.
    """
    if not location or url.startswith(("https://", "http://")):
        return None, None, None
    code_file: str | None = None
    code_line: int | None = None
    if url.startswith("file://"):
        target, _, anchor = url.removeprefix("file://").partition("#")
        code_file = unquote(target)
        match = re.fullmatch(r"L(\d+)", anchor)
        code_line = int(match.group(1)) if match else None
    elif location.get("path"):
        code_file = str(location["path"])
    if code_file is None:
        return None, None, None
    if location.get("type") == "git":
        return code_file, code_line, "the repository has no web origin: no link"
    return code_file, code_line, "not in a git repository: no link"


def _is_lake_dataset(item: Mapping[str, Any], lake_inputs: set[str]) -> bool:
    name = str(item.get("name", ""))
    return any(name == uid or name.endswith("/" + uid) for uid in lake_inputs)
