"""Offline validation of OpenLineage events against the official JSON Schemas (spec 2-0-2).

The schemas live in ``<repo>/../shared/specs/openlineage/`` (``OpenLineage.json`` and
``facets/*.json``), plus radops' own ``radops/lineage/RadopsRunFacet.json``. Every schema is put
in a :class:`referencing.Registry` under its https ``$id``; nothing is ever fetched: a ``$ref``
to a schema that is not in the registry is an error.

:func:`validate_event` checks the event against ``OpenLineage.json#/$defs/RunEvent``, then every
facet against the schema its ``_schemaURL`` names.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag

import jsonschema
import referencing
import referencing.exceptions
from referencing.jsonschema import DRAFT202012

__all__ = [
    "EVENT_SCHEMA_URL",
    "SPECS",
    "InvalidEvent",
    "facets_of",
    "registry",
    "validate_event",
    "validate_facet",
]

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO.parent / "shared" / "specs" / "openlineage"
RADOPS_FACET_SCHEMA = REPO / "radops" / "lineage" / "RadopsRunFacet.json"
EVENT_SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


class InvalidEvent(AssertionError):
    """An event (or one of its facets) does not conform to its schema."""


# jsonschema checks "uri" and "date-time" only when optional packages are installed: check them
# here, without dependencies. A URI is ASCII with a scheme; a date-time is RFC 3339 with an offset.
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("uri")
def _is_uri(instance: object) -> bool:
    return not isinstance(instance, str) or _URI.match(instance) is not None


@FORMATS.checks("date-time")
def _is_date_time(instance: object) -> bool:
    return not isinstance(instance, str) or _DATE_TIME.match(instance) is not None


def _no_retrieval(uri: str) -> referencing.Resource[Any]:
    """Refuse to fetch anything: the registry holds every schema the tests may use."""
    raise referencing.exceptions.NoSuchResource(ref=uri)


def _schema_files() -> list[Path]:
    files = [SPECS / "OpenLineage.json", *sorted((SPECS / "facets").glob("*.json"))]
    missing = [path for path in files[:1] if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"the OpenLineage schemas are missing ({missing[0]}): clone the shared specs "
            "next to the repository (../shared/specs/openlineage)"
        )
    return [*files, RADOPS_FACET_SCHEMA]


@functools.cache
def registry() -> referencing.Registry[Any]:
    """Every schema, by its https ``$id``; retrieving anything else raises."""
    resources = []
    for path in _schema_files():
        contents = json.loads(path.read_text(encoding="utf-8"))
        schema_id = contents.get("$id", "")
        if not schema_id.startswith("https://"):
            raise ValueError(f"{path} has no https $id")
        resources.append((schema_id, DRAFT202012.create_resource(contents)))
    built: referencing.Registry[Any] = referencing.Registry(retrieve=_no_retrieval)
    return built.with_resources(resources).crawl()


@functools.cache
def _validator(url: str) -> jsonschema.Draft202012Validator:
    """A validator for the schema at ``url`` (``<base>#/$defs/<Name>``), from the registry only."""
    base, _ = urldefrag(url)
    if base not in registry():
        raise InvalidEvent(f"no schema {base!r} in the registry (from {url!r})")
    try:
        # Check the fragment resolves now, so a wrong $defs name fails clearly.
        registry().resolver().lookup(url)
    except referencing.exceptions.Unresolvable as exc:
        raise InvalidEvent(f"{url!r} does not resolve in the registry: {exc}") from exc
    return jsonschema.Draft202012Validator(
        {"$ref": url},
        registry=registry(),
        format_checker=FORMATS,
    )


def _validate(instance: Any, url: str, what: str) -> None:
    validator = _validator(url)
    try:
        validator.validate(instance)
    except jsonschema.ValidationError as exc:
        location = "/".join(str(part) for part in exc.absolute_path) or "(root)"
        raise InvalidEvent(f"{what} does not match {url} at {location}: {exc.message}") from exc
    except referencing.exceptions.Unresolvable as exc:
        raise InvalidEvent(f"{what}: a $ref of {url} is not in the registry: {exc}") from exc


def facets_of(event: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """Every facet of ``event``, with a path naming where it is."""
    for name, facet in (event.get("run", {}).get("facets") or {}).items():
        yield f"run.facets.{name}", facet
    for name, facet in (event.get("job", {}).get("facets") or {}).items():
        yield f"job.facets.{name}", facet
    for kind, extra in (("inputs", "inputFacets"), ("outputs", "outputFacets")):
        for i, dataset in enumerate(event.get(kind) or []):
            for group in ("facets", extra):
                for name, facet in (dataset.get(group) or {}).items():
                    yield f"{kind}[{i}].{group}.{name}", facet


def validate_facet(facet: Any, where: str = "facet") -> None:
    """Validate one facet against the schema its ``_schemaURL`` names."""
    if not isinstance(facet, Mapping):
        raise InvalidEvent(f"{where} is not an object: {facet!r}")
    url = facet.get("_schemaURL")
    if not isinstance(url, str) or "#" not in url:
        raise InvalidEvent(f"{where} has no _schemaURL with a fragment: {url!r}")
    _validate(facet, url, where)


def validate_event(event: Mapping[str, Any]) -> None:
    """Validate ``event`` as an OpenLineage RunEvent, then every facet by its ``_schemaURL``.

    Raises:
        InvalidEvent: the event or a facet does not conform, or names an unknown schema.
    """
    _validate(event, EVENT_SCHEMA_URL, "the event")
    for where, facet in facets_of(event):
        validate_facet(facet, where)
