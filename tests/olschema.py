"""Conformance of OpenLineage events: a model check that always runs, and JSON-Schema validation
against the official schemas (spec 2-0-2) where they are present.

**The model check** (:func:`check_model`) needs nothing outside the repository. It rebuilds the
event as openlineage-python's generated 2-0-2 classes (``openlineage.client.event_v2.RunEvent``
and, for each facet, the class of ``openlineage.client.facet_v2`` or radops' own run facet that
its ``_schemaURL`` names), serialises the result back with ``openlineage.client.serde.Serde``
and requires the same JSON text, byte for byte. So every field must be one the model knows, of
the model's type, and nothing may be dropped or added on the way. A facet whose ``_schemaURL``
names no class, that sits where its kind of facet does not belong, or that is not under the key
OpenLineage gives it (:data:`STANDARD_KEYS`; radops' key is the one ``RadopsRunFacet.json``
declares), is an unknown facet: an error.

**The schema check** (:func:`check_schemas`) validates the event against
``OpenLineage.json#/$defs/RunEvent``, then every facet against the schema its ``_schemaURL``
names. The schemas are read from the folder ``$RADOPS_OPENLINEAGE_SPEC`` names, else from
``<repo>/../shared/specs/openlineage``: ``OpenLineage.json`` and ``facets/*.json``, the layout of
``spec/`` in a checkout of the OpenLineage repository. radops' ``RadopsRunFacet.json`` is added
from the repository. Every schema is put in a :class:`referencing.Registry` under its https
``$id``; nothing is ever fetched: a ``$ref`` to a schema that is not in the registry is an error.
A fresh clone has no schemas: :func:`schemas_missing` says so in one line.

:func:`validate_event` runs the model check, then the schema check when the schemas are present.
Without them it says nothing: the tests of ``tests/test_olschema.py`` that need them skip, or
fail when ``RADOPS_TEST_REQUIRE`` names ``specs`` (CI), so a run cannot pass by skipping.
"""

from __future__ import annotations

import enum
import functools
import inspect
import json
import os
import re
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urlsplit

import attrs
import jsonschema
import referencing
import referencing.exceptions
from referencing.jsonschema import DRAFT202012

__all__ = [
    "DEFAULT_SPECS",
    "EVENT_SCHEMA_URL",
    "SPECS",
    "SPEC_ENV",
    "STANDARD_KEYS",
    "InvalidEvent",
    "check_model",
    "check_schemas",
    "facet_classes",
    "facets_of",
    "registry",
    "schemas_missing",
    "specs_dir",
    "standard_key",
    "validate_event",
    "validate_facet",
]

REPO = Path(__file__).resolve().parents[1]
#: Where the official schemas are when ``$RADOPS_OPENLINEAGE_SPEC`` is not set.
DEFAULT_SPECS = REPO.parent / "shared" / "specs" / "openlineage"
#: The variable naming a folder with ``OpenLineage.json`` and ``facets/`` (an OpenLineage
#: checkout's ``spec/``).
SPEC_ENV = "RADOPS_OPENLINEAGE_SPEC"
RADOPS_FACET_SCHEMA = REPO / "radops" / "lineage" / "RadopsRunFacet.json"
EVENT_SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


class InvalidEvent(AssertionError):
    """An event (or one of its facets) does not conform to OpenLineage's model or schemas."""


# -- where the official schemas are ---------------------------------------------------------------


# Read once, when the tests import this module: conftest removes RADOPS_* variables from the
# environment while the tests run. Tests point it elsewhere with monkeypatch.setattr.
SPECS = Path(os.environ.get(SPEC_ENV) or DEFAULT_SPECS)


def specs_dir() -> Path:
    """The folder of the official schemas: ``$RADOPS_OPENLINEAGE_SPEC``, else the shared specs."""
    return SPECS


def schemas_missing() -> str | None:
    """Why the official schemas cannot be used here (one line), or None when they can."""
    return _missing(specs_dir())


def _missing(specs: Path) -> str | None:
    if (specs / "OpenLineage.json").is_file() and (specs / "facets").is_dir():
        return None
    named = f" (from {SPEC_ENV})" if specs != DEFAULT_SPECS else ""
    return (
        f"the official OpenLineage schemas (OpenLineage.json and facets/) are not in "
        f"{specs}{named}: put the shared specs beside the repository ({DEFAULT_SPECS}) or set "
        f"{SPEC_ENV} to a folder holding them, such as an OpenLineage checkout's spec/"
    )


# -- the model check ------------------------------------------------------------------------------

#: The key each facet has in its facets map, by the name of its schema file: the one property
#: the file's top level declares (``tests/test_olschema.py`` compares them where the schemas are).
#: openlineage-python's classes do not carry it.
STANDARD_KEYS: Mapping[str, str] = {
    "BaseSubsetDatasetFacet": "subset",
    "CatalogDatasetFacet": "catalog",
    "ColumnLineageDatasetFacet": "columnLineage",
    "DataQualityAssertionsDatasetFacet": "dataQualityAssertions",
    "DataQualityMetricsDatasetFacet": "dataQualityMetrics",
    "DataQualityMetricsInputDatasetFacet": "dataQualityMetrics",
    "DatasetTypeDatasetFacet": "datasetType",
    "DatasetVersionDatasetFacet": "version",
    "DatasourceDatasetFacet": "dataSource",
    "DocumentationDatasetFacet": "documentation",
    "DocumentationJobFacet": "documentation",
    "EnvironmentVariablesRunFacet": "environmentVariables",
    "ErrorMessageRunFacet": "errorMessage",
    "ExecutionParametersRunFacet": "executionParameters",
    "ExternalQueryRunFacet": "externalQuery",
    "ExtractionErrorRunFacet": "extractionError",
    "HierarchyDatasetFacet": "hierarchy",
    "InputStatisticsInputDatasetFacet": "inputStatistics",
    "JobDependenciesRunFacet": "jobDependencies",
    "JobTypeJobFacet": "jobType",
    "LifecycleStateChangeDatasetFacet": "lifecycleStateChange",
    "LineageFacet": "lineage",
    "NominalTimeRunFacet": "nominalTime",
    "OutputStatisticsOutputDatasetFacet": "outputStatistics",
    "OwnershipDatasetFacet": "ownership",
    "OwnershipJobFacet": "ownership",
    "ParentRunFacet": "parent",
    "ProcessingEngineRunFacet": "processing_engine",
    "SQLJobFacet": "sql",
    "SchemaDatasetFacet": "schema",
    "SourceCodeJobFacet": "sourceCode",
    "SourceCodeLocationJobFacet": "sourceCodeLocation",
    "StorageDatasetFacet": "storage",
    "SymlinksDatasetFacet": "symlinks",
    "TagsDatasetFacet": "tags",
    "TagsJobFacet": "tags",
    "TagsRunFacet": "tags",
    "TestRunFacet": "test",
}


def schema_file(url: str) -> str:
    """The name of the schema file a ``_schemaURL`` points into, without ``.json``."""
    return urlsplit(url).path.rsplit("/", 1)[-1].removesuffix(".json")


@functools.cache
def facet_classes() -> Mapping[str, type]:
    """Every facet class the model knows, by its ``_schemaURL``: the attrs facet classes of
    openlineage-python's ``facet_v2`` submodules, and radops' run facet."""
    from openlineage.client import facet_v2

    from radops.lineage import events

    found: dict[str, type] = {}
    modules = [value for value in vars(facet_v2).values() if inspect.ismodule(value)]
    candidates = [
        value
        for module in modules
        for value in vars(module).values()
        if inspect.isclass(value) and value.__module__ == module.__name__
    ]
    radops = events._radops_facet_class()
    if radops._get_schema() != events.RADOPS_FACET_SCHEMA_URL:
        raise ValueError(f"radops' run facet class does not give {events.RADOPS_FACET_SCHEMA_URL}")
    for cls in [*candidates, radops]:
        if not (attrs.has(cls) and issubclass(cls, facet_v2.BaseFacet)):
            continue  # an enum, or an object nested in a facet
        url = cls._get_schema()
        if url in found:
            raise ValueError(f"{found[url].__qualname__} and {cls.__qualname__} both claim {url}")
        found[url] = cls
    return found


@functools.cache
def _radops_key() -> str:
    """The key ``RadopsRunFacet.json`` gives radops' run facet (its one top-level property)."""
    declared = json.loads(RADOPS_FACET_SCHEMA.read_text(encoding="utf-8")).get("properties", {})
    if len(declared) != 1:
        raise ValueError(f"{RADOPS_FACET_SCHEMA} declares {sorted(declared)}, not one facet key")
    return str(next(iter(declared)))


def standard_key(cls: type) -> str | None:
    """The key a facet of class ``cls`` must have, or None where OpenLineage defines none."""
    name = schema_file(cls._get_schema())
    if name == schema_file(RADOPS_FACET_SCHEMA.name):
        return _radops_key()
    return STANDARD_KEYS.get(name)


@functools.cache
def _fields(cls: type) -> tuple[tuple[attrs.Attribute[Any], Any], ...]:
    """The attrs fields of ``cls`` with their types, resolved: the classes annotate with strings."""
    hints = typing.get_type_hints(cls)
    return tuple((field, hints[field.name]) for field in attrs.fields(cls))


def _at(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _named(where: str) -> str:
    return where or "the event"


def _describe(value: object) -> str:
    return f"{type(value).__name__} {json.dumps(value, default=repr)[:80]}"


_PRIMITIVES: dict[Any, tuple[type, ...]] = {
    str: (str,),
    bool: (bool,),
    int: (int,),
    float: (int, float),  # JSON has one number type; serde writes an int back as it came
}


def _is_primitive(kind: type, value: object) -> bool:
    if kind is bool or isinstance(value, bool):  # a bool is an int to Python, not to JSON
        return kind is bool and isinstance(value, bool)
    return isinstance(value, _PRIMITIVES[kind])


def _build(kind: Any, value: Any, where: str, key: str | None = None) -> Any:
    """``value`` (JSON data) as an instance of the model's type ``kind``; raises InvalidEvent."""
    origin = typing.get_origin(kind)
    if kind is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        arms = [arm for arm in typing.get_args(kind) if arm is not type(None)]
        if value is None and len(arms) < len(typing.get_args(kind)):
            return None  # serde drops it: the comparison reports a null the model has no use for
        return _build_union(arms, value, where, key)
    if origin is dict:
        _, item = typing.get_args(kind)
        if not isinstance(value, dict):
            raise InvalidEvent(f"{_named(where)}: expected an object, got {_describe(value)}")
        return {name: _build(item, v, _at(where, name), name) for name, v in value.items()}
    if origin is list:
        (item,) = typing.get_args(kind)
        if not isinstance(value, list):
            raise InvalidEvent(f"{_named(where)}: expected an array, got {_describe(value)}")
        return [_build(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if kind in _PRIMITIVES:
        if not _is_primitive(kind, value):
            raise InvalidEvent(f"{_named(where)}: expected {kind.__name__}, got {_describe(value)}")
        return value
    if inspect.isclass(kind) and issubclass(kind, enum.Enum):
        try:
            return kind(value)
        except (ValueError, TypeError):
            allowed = ", ".join(str(member.value) for member in kind)
            raise InvalidEvent(
                f"{_named(where)}: {_describe(value)} is not a {kind.__name__} ({allowed})"
            ) from None
    if inspect.isclass(kind) and attrs.has(kind):
        from openlineage.client.facet_v2 import BaseFacet

        if issubclass(kind, BaseFacet):
            return _build_facet(kind, value, where, key)
        return _build_object(kind, value, where)
    raise InvalidEvent(f"{_named(where)}: the model's type {kind!r} is not one the check knows")


def _build_union(arms: list[Any], value: Any, where: str, key: str | None) -> Any:
    """``value`` as the first of the types ``arms`` that it fits. The unions of the generated
    classes need no more: their types have different required fields, and an unknown field
    does not fit."""
    errors: list[str] = []
    for arm in arms:
        try:
            return _build(arm, value, where, key)
        except InvalidEvent as exc:
            errors.append(str(exc))
    if len(errors) == 1:
        raise InvalidEvent(errors[0])
    raise InvalidEvent(f"{_named(where)}: matches none of its types: {'; '.join(errors)}")


def _build_object(cls: type, value: Any, where: str) -> Any:
    """An attrs object of ``cls`` from its fields in ``value``; a field it lacks is an error."""
    if not isinstance(value, dict):
        raise InvalidEvent(f"{_named(where)}: expected an object, got {_describe(value)}")
    fields = _fields(cls)
    known = {field.name for field, _ in fields}
    unknown = sorted(set(value) - known)
    if unknown:
        raise InvalidEvent(
            f"{_named(where)}: unknown field {', '.join(map(repr, unknown))}: {cls.__name__} "
            f"has {', '.join(sorted(known))}"
        )
    arguments = {
        field.alias: _build(kind, value[field.name], _at(where, field.name))
        for field, kind in fields
        if field.init and field.name in value
    }
    try:
        return cls(**arguments)
    except (TypeError, ValueError) as exc:
        raise InvalidEvent(f"{_named(where)}: not a valid {cls.__name__}: {exc}") from exc


def _build_facet(slot: type, value: Any, where: str, key: str | None) -> Any:
    """The facet ``value`` as the class its ``_schemaURL`` names, which must fit ``slot`` (the
    kind of facet the map holds) and ``key`` (the key OpenLineage gives it)."""
    if not isinstance(value, dict):
        raise InvalidEvent(f"{where}: expected a facet object, got {_describe(value)}")
    url = value.get("_schemaURL")
    cls = facet_classes().get(url) if isinstance(url, str) else None
    if cls is None:
        raise InvalidEvent(
            f"{where}: unknown facet: its _schemaURL {url!r} names no facet class of "
            "openlineage-python's facet_v2 nor radops' run facet"
        )
    if not issubclass(cls, slot):
        raise InvalidEvent(
            f"{where}: unknown facet: {cls.__name__} ({url}) is not a {slot.__name__}, the "
            "kind of facet this map holds"
        )
    expected = standard_key(cls)
    if expected is not None and key != expected:
        raise InvalidEvent(
            f"{where}: unknown facet: a {cls.__name__} belongs under the key {expected!r}, "
            f"not {key!r}"
        )
    return _build_object(cls, value, where)


def _difference(had: Any, gives: Any, where: str) -> str | None:
    """Where the event (``had``) and the model's serialisation (``gives``) first differ."""
    if isinstance(had, dict) and isinstance(gives, dict):
        for name in sorted(set(had) | set(gives)):
            path = _at(where, name)
            if name not in gives:
                return f"{path}: dropped by the model (the event has {_describe(had[name])})"
            if name not in had:
                return f"{path}: the model adds {_describe(gives[name])}, the event has none"
            found = _difference(had[name], gives[name], path)
            if found:
                return found
        return None
    if isinstance(had, list) and isinstance(gives, list):
        for i, (a, b) in enumerate(zip(had, gives, strict=False)):
            found = _difference(a, b, f"{where}[{i}]")
            if found:
                return found
        if len(had) != len(gives):
            return f"{_named(where)}: {len(had)} items, the model keeps {len(gives)}"
        return None
    if type(had) is not type(gives) or had != gives:
        return f"{_named(where)}: the event has {_describe(had)}, the model {_describe(gives)}"
    return None


def _fixed_fields(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event's JSON text without the fields of radops' run facet that hold any JSON value
    (parameters, returned, extra): the model types them ``Any``, and openlineage-python's serde
    drops the None values and empty objects inside them, which radops records as they are."""
    from radops.lineage.events import RADOPS_FACET_SCHEMA_URL

    copy = json.loads(json.dumps(event))
    for facet in (copy.get("run", {}).get("facets") or {}).values():
        if isinstance(facet, dict) and facet.get("_schemaURL") == RADOPS_FACET_SCHEMA_URL:
            for name in ("parameters", "returned", "extra"):
                facet.pop(name, None)
    fixed: dict[str, Any] = copy
    return fixed


def check_model(event: Mapping[str, Any]) -> None:
    """Rebuild ``event`` as openlineage-python's RunEvent and facet classes, and require that
    serde writes it back as the same JSON (no files outside the repository are needed).

    Raises:
        InvalidEvent: a field the model does not know or of the wrong type, an unknown facet
            (unknown ``_schemaURL``, wrong kind or key), or a value the round trip changes.
    """
    from openlineage.client.event_v2 import RunEvent
    from openlineage.client.serde import Serde

    try:
        original = json.dumps(event, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidEvent(f"the event is not JSON data: {exc}") from exc
    data = json.loads(original)
    rebuilt = _build(RunEvent, data, "")
    written = Serde.to_dict(rebuilt)
    if json.dumps(_fixed_fields(written), sort_keys=True) != json.dumps(
        _fixed_fields(data), sort_keys=True
    ):
        found = _difference(_fixed_fields(data), _fixed_fields(written), "")
        raise InvalidEvent(
            f"the event does not round-trip through openlineage-python's model: "
            f"{found or 'the JSON text differs'}"
        )


# -- the schema check -----------------------------------------------------------------------------

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


def _schema_files(specs: Path) -> list[Path]:
    reason = _missing(specs)
    if reason is not None:
        raise FileNotFoundError(reason)
    return [
        specs / "OpenLineage.json",
        *sorted((specs / "facets").glob("*.json")),
        RADOPS_FACET_SCHEMA,
    ]


def registry() -> referencing.Registry[Any]:
    """Every official schema (from :func:`specs_dir`) and radops' facet schema, by https ``$id``;
    retrieving anything else raises.

    Raises:
        FileNotFoundError: the official schemas are missing (:func:`schemas_missing`).
    """
    return _registry(specs_dir())


@functools.cache
def _registry(specs: Path) -> referencing.Registry[Any]:
    resources = []
    for path in _schema_files(specs):
        contents = json.loads(path.read_text(encoding="utf-8"))
        schema_id = contents.get("$id", "")
        if not schema_id.startswith("https://"):
            raise ValueError(f"{path} has no https $id")
        resources.append((schema_id, DRAFT202012.create_resource(contents)))
    built: referencing.Registry[Any] = referencing.Registry(retrieve=_no_retrieval)
    return built.with_resources(resources).crawl()


@functools.cache
def _validator(specs: Path, url: str) -> jsonschema.Draft202012Validator:
    """A validator for the schema at ``url`` (``<base>#/$defs/<Name>``), from the registry only."""
    schemas = _registry(specs)
    base, _ = urldefrag(url)
    if base not in schemas:
        raise InvalidEvent(f"no schema {base!r} in the registry (from {url!r})")
    try:
        # Check the fragment resolves now, so a wrong $defs name fails clearly.
        schemas.resolver().lookup(url)
    except referencing.exceptions.Unresolvable as exc:
        raise InvalidEvent(f"{url!r} does not resolve in the registry: {exc}") from exc
    return jsonschema.Draft202012Validator(
        {"$ref": url},
        registry=schemas,
        format_checker=FORMATS,
    )


def _validate(instance: Any, url: str, what: str) -> None:
    validator = _validator(specs_dir(), url)
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
    """Validate one facet against the official schema its ``_schemaURL`` names.

    Raises:
        InvalidEvent: the facet does not match, or names no schema of the registry.
        FileNotFoundError: the official schemas are missing (:func:`schemas_missing`).
    """
    if not isinstance(facet, Mapping):
        raise InvalidEvent(f"{where} is not an object: {facet!r}")
    url = facet.get("_schemaURL")
    if not isinstance(url, str) or "#" not in url:
        raise InvalidEvent(f"{where} has no _schemaURL with a fragment: {url!r}")
    _validate(facet, url, where)


def check_schemas(event: Mapping[str, Any]) -> None:
    """Validate ``event`` against the official RunEvent schema, then every facet against the
    schema its ``_schemaURL`` names.

    Raises:
        InvalidEvent: the event or a facet does not conform, or names an unknown schema.
        FileNotFoundError: the official schemas are missing (:func:`schemas_missing`).
    """
    _validate(event, EVENT_SCHEMA_URL, "the event")
    for where, facet in facets_of(event):
        validate_facet(facet, where)


def validate_event(event: Mapping[str, Any]) -> None:
    """Check ``event`` against openlineage-python's model (always), and against the official
    JSON Schemas where they are present.

    Raises:
        InvalidEvent: the event does not conform.
    """
    check_model(event)
    if schemas_missing() is None:
        check_schemas(event)
