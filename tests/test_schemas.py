"""Tabular outputs (CSV, Parquet, JSON lines) carry their columns in OpenLineage's ``schema``
dataset facet, read from the file's header or footer only; a file that cannot be read that way
is created all the same, without the facet."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from radops.data_lake import File, file_creator
from radops.lake import DataLake, set_default_lake
from radops.lineage.marquez import MarquezClient
from radops.lineage.schemas import HEAD_MAX_BYTES, MAX_FIELDS, kind_of
from radops.lineage.validate import RECORD_MAX_BYTES, fit_record
from tests.conftest import MakeLake
from tests.example_runs import EXAMPLES
from tests.marquez_server import MarquezServer
from tests.olschema import validate_event

# The cleaned CSV's types as pyarrow infers them: these columns hold whole numbers only.
WINE_TYPES = {"class": "int64", "magnesium": "int64", "proline": "int64"}


@pytest.fixture(scope="module")
def ml() -> Iterator[tuple[ModuleType, ModuleType]]:
    """examples/ml-pipeline's pipeline.py and make_dataset.py, imported from their files."""
    modules = []
    for stem in ("pipeline", "make_dataset"):
        name = f"ml_{stem}_{uuid.uuid4().hex}"
        spec = importlib.util.spec_from_file_location(name, EXAMPLES / "ml-pipeline" / f"{stem}.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        modules.append(module)
    yield modules[0], modules[1]
    for module in modules:
        sys.modules.pop(module.__name__, None)


@pytest.fixture
def default_lake(lake: DataLake) -> Iterator[DataLake]:
    """``lake`` as the default lake, for steps without File inputs."""
    set_default_lake(lake)
    yield lake
    set_default_lake(None)


def complete_of(lake: DataLake, uid: str) -> dict[str, Any]:
    """The COMPLETE event that created ``uid``, checked against the OpenLineage schemas."""
    event = lake.lineage.creation_of(uid)
    assert event is not None
    assert event["eventType"] == "COMPLETE"
    validate_event(event)
    return event


def output_facets(lake: DataLake, uid: str) -> dict[str, Any]:
    """The dataset facets of ``uid`` in the event that created it."""
    namespace, name = lake.store.dataset(uid)
    [output] = [
        o
        for o in complete_of(lake, uid)["outputs"]
        if (o["namespace"], o["name"]) == (namespace, name)
    ]
    facets: dict[str, Any] = output["facets"]
    return facets


def columns(lake: DataLake, uid: str) -> list[tuple[str, str | None]]:
    """``(name, type)`` of each column of ``uid``'s schema facet."""
    facet = output_facets(lake, uid)["schema"]
    assert facet["_schemaURL"].endswith("/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet")
    return [(field["name"], field.get("type")) for field in facet["fields"]]


def put_bytes(lake: DataLake, uid: str, data: bytes) -> File:
    file = File(uid, lake=lake)
    with file.open("wb") as handle:
        handle.write(data)
    return file


def test_the_ml_pipelines_csv_and_parquet_outputs_carry_their_columns(lake: DataLake, ml) -> None:
    """examples/ml-pipeline, its own steps: `clean`'s CSV names its 14 columns with the types
    pyarrow infers from its first rows; `split`'s wine/train.parquet and wine/test.parquet name
    them with the types `split` gave them, read from their footers; `train`'s pickled model has
    none. Every COMPLETE event stored in the lake holds them and validates against OpenLineage."""
    pipeline, make_dataset = ml
    raw = put_bytes(lake, "raw/wine.data", "\n".join(make_dataset.wine_rows()).encode() + b"\n")

    cleaned = pipeline.clean(raw)
    train, test = pipeline.split(
        cleaned, 0.3, 0, output_uids=["wine/train.parquet", "wine/test.parquet"]
    )
    model = pipeline.train(train, n_estimators=2, max_depth=1)  # reads the Parquet set back

    inferred = [(name, WINE_TYPES.get(name, "double")) for name in pipeline.COLUMNS]
    typed = [(name, "int64" if name == "class" else "double") for name in pipeline.COLUMNS]
    assert cleaned.uid.endswith(".csv")
    assert columns(lake, cleaned.uid) == inferred
    rows = {}
    for made in (train, test):
        assert columns(lake, made.uid) == typed
        with made.open("rb") as handle:  # the whole file, as a reader of the set sees it
            table = pq.read_table(handle)
        assert [(field.name, str(field.type)) for field in table.schema] == typed
        rows[made.uid] = table.num_rows
    assert rows == {"wine/train.parquet": 124, "wine/test.parquet": 54}  # 178 clean wines
    assert "schema" not in output_facets(lake, model.uid)
    assert "schema" not in output_facets(lake, raw.uid)  # no table format by its uid

    # The records stored in the lake (what a replay sends) hold the same facets, and validate.
    stored = [
        event
        for name in lake.lineage.records.names()
        if (event := lake.lineage.records.read(name)) and event["eventType"] == "COMPLETE"
    ]
    assert len(stored) == 4  # the raw file's write, clean, split, train
    for event in stored:
        validate_event(event)
    recorded = {
        output["name"]: [(f["name"], f.get("type")) for f in output["facets"]["schema"]["fields"]]
        for event in stored
        for output in event["outputs"]
        if "schema" in output["facets"]
    }
    assert recorded == {
        lake.store.dataset(cleaned.uid)[1]: inferred,
        lake.store.dataset(train.uid)[1]: typed,
        lake.store.dataset(test.uid)[1]: typed,
    }


@file_creator
def write_parquet(rows: int) -> File:
    out = File(suffix=".parquet")
    table = pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "name": pa.array([f"n{i}" for i in range(rows)], pa.string()),
            "score": pa.array([i / 2 for i in range(rows)], pa.float64()),
            "tags": pa.array([["a"] for _ in range(rows)], pa.list_(pa.string())),
            "where": pa.array(
                [{"lat": 1.0, "lon": 2.0} for _ in range(rows)],
                pa.struct([("lat", pa.float64()), ("lon", pa.float64())]),
            ),
        }
    )
    with out.open("wb") as handle:
        pq.write_table(table, handle)
    return out


def test_a_parquet_output_carries_its_columns_from_the_footer(default_lake: DataLake) -> None:
    """A step writing Parquet with pyarrow: names, types, and a struct's fields nested."""
    made = write_parquet(10)

    facet = output_facets(default_lake, made.uid)["schema"]
    assert [(f["name"], f.get("type")) for f in facet["fields"]] == [
        ("id", "int64"),
        ("name", "string"),
        ("score", "double"),
        ("tags", "list<element: string>"),  # Parquet names list items so
        ("where", "struct"),
    ]
    assert facet["fields"][4]["fields"] == [  # openlineage-python writes "fields" always
        {"name": "lat", "type": "double", "fields": []},
        {"name": "lon", "type": "double", "fields": []},
    ]


def test_json_lines_outputs_take_their_columns_from_the_first_line(lake: DataLake) -> None:
    """`.jsonl` and `.ndjson`: the first line's keys; what follows it is never read."""
    first = {"user": "ada", "n": 3, "ok": True, "at": {"x": 1.5}}
    data = json.dumps(first).encode() + b"\n" + b"not json at all\n"
    for uid in ("events/a.jsonl", "events/b.NDJSON"):
        put_bytes(lake, uid, data)
        assert columns(lake, uid) == [
            ("user", "string"),
            ("n", "int64"),
            ("ok", "bool"),
            ("at", "struct"),
        ]


def test_only_the_head_of_a_csv_is_read(lake: DataLake) -> None:
    """A CSV larger than the bound: its first lines give the columns, and rows after them that
    would not parse (three fields under two columns) are never looked at."""
    head = b"a,b\n" + b"1,x\n" * (HEAD_MAX_BYTES // 4)
    put_bytes(lake, "big.csv", head + b"1,2,3\n" * 10)
    assert columns(lake, "big.csv") == [("a", "int64"), ("b", "string")]


def test_a_header_only_csv_names_its_columns_without_types(lake: DataLake) -> None:
    """No rows: the names are known, the types are not (left out, not guessed)."""
    put_bytes(lake, "empty.csv", b"when,what\n")
    assert columns(lake, "empty.csv") == [("when", None), ("what", None)]


@pytest.mark.parametrize(
    ("uid", "data"),
    [
        ("bad/rows.csv", b"a,b\n1,2,3\n"),  # more fields than the header
        ("bad/binary.csv", b"\xff\xfe\x00\x01"),
        ("bad/empty.csv", b""),
        ("bad/long-line.csv", b"a" * (HEAD_MAX_BYTES + 10) + b"\n1\n"),  # no line end in bound
        ("bad/not.parquet", b"this is not parquet, though it ends like it PAR1"),
        ("bad/cut.parquet", b"PAR1" + b"\x00" * 20),
        ("bad/array.jsonl", b"[1, 2]\n"),
    ],
)
def test_a_malformed_table_is_created_without_the_facet(
    lake: DataLake, uid: str, data: bytes
) -> None:
    """The file is in the lake with its COMPLETE event; only the schema facet is missing."""
    put_bytes(lake, uid, data)

    assert File(uid, lake=lake).exists_remotely()
    facets = output_facets(lake, uid)
    assert "schema" not in facets
    assert facets["version"]["datasetVersion"]  # the rest of the output is there


def test_a_parquet_footer_claiming_more_than_the_bound_is_not_read(lake: DataLake) -> None:
    """A footer length of 2 GiB in the last 8 bytes: nothing is read past it, no facet."""
    buffer = io.BytesIO()
    pq.write_table(pa.table({"a": [1]}), buffer)
    data = buffer.getvalue()
    put_bytes(lake, "huge-footer.parquet", data[:-8] + (2**31).to_bytes(4, "little") + b"PAR1")
    assert "schema" not in output_facets(lake, "huge-footer.parquet")


@file_creator
def wide_csv(columns: int) -> File:
    out = File(suffix=".csv")
    with out.open("w") as handle:
        handle.write(",".join(f"c{i}" for i in range(columns)) + "\n")
    return out


def test_a_schema_over_the_field_limit_is_left_out(default_lake: DataLake) -> None:
    """More columns than MAX_FIELDS: the creation has no schema facet rather than a huge one."""
    assert "schema" in output_facets(default_lake, wide_csv(MAX_FIELDS).uid)
    assert "schema" not in output_facets(default_lake, wide_csv(MAX_FIELDS + 1).uid)


def test_added_files_carry_their_columns(lake: DataLake, tmp_path: Path) -> None:
    """`datalake add` of a CSV records its columns, like a step's output."""
    source = tmp_path / "measures.csv"
    source.write_text("station,temp\nA,21.5\n", encoding="utf-8")
    lake.add_file(source, "in/measures.csv")
    assert columns(lake, "in/measures.csv") == [("station", "string"), ("temp", "double")]


def test_without_pyarrow_files_are_created_without_the_facet(
    lake: DataLake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyarrow is an optional extra: without it, a CSV is created as before."""
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` raises ImportError
    put_bytes(lake, "plain.csv", b"a,b\n1,2\n")
    assert "schema" not in output_facets(lake, "plain.csv")


def test_the_suffix_tells_the_format() -> None:
    """Only .csv, .parquet, .jsonl and .ndjson, in any case, at the end of the uid."""
    assert kind_of("wine/train.csv") == "csv"
    assert kind_of("t/x.PARQUET") == "parquet"
    assert kind_of("e.ndjson") == "jsonl"
    assert kind_of("a.csv/readme") is None
    assert kind_of("a.csv.gz") is None
    assert kind_of("csv") is None


def test_an_oversized_record_sheds_the_schemas_first() -> None:
    """Over the record limit, the outputs' schema facets go before the source code."""
    fields = [{"name": f"c{i}" + "x" * 1000, "type": "string"} for i in range(5000)]
    event = {
        "eventType": "COMPLETE",
        "run": {"runId": "r", "facets": {"radops_run": {"extra": {}}}},
        "job": {"facets": {"sourceCode": {"sourceCode": "def f(): ..."}}},
        "outputs": [
            {"namespace": "file", "name": "/x.csv", "facets": {"schema": {"fields": fields}}}
        ],
    }
    fitted = fit_record(event)
    assert len(json.dumps(fitted)) <= RECORD_MAX_BYTES
    assert "schema" not in fitted["outputs"][0]["facets"]
    assert "sourceCode" in fitted["job"]["facets"]
    assert fitted["run"]["facets"]["radops_run"]["extra"]["radops.omitted"] == ["schema"]


def test_marquez_shows_the_columns_of_a_dataset(
    make_lake: MakeLake, marquez: MarquezServer, lineage_namespace: str
) -> None:
    """The real Marquez accepts the facet: the dataset's ``fields`` (what its web UI and
    ``GET /api/v1/namespaces/{ns}/datasets/{name}`` show) are the file's columns."""
    lake = make_lake("a", marquez_url=marquez.url, namespace=lineage_namespace, lineage_timeout=30)
    put_bytes(lake, "wine/sample.csv", b"class,alcohol,name\n1,13.2,a\n")
    set_default_lake(lake)
    try:
        made = write_parquet(3)
    finally:
        set_default_lake(None)
    assert lake.lineage.outbox.wait(60), "events were not delivered to Marquez"
    assert lake.lineage.outbox.rejected() == []

    client = MarquezClient(marquez.url)
    csv_set = client.dataset(*lake.store.dataset("wine/sample.csv"))
    assert csv_set is not None
    assert [(f["name"], f["type"]) for f in csv_set["fields"]] == [
        ("class", "int64"),
        ("alcohol", "double"),
        ("name", "string"),
    ]
    parquet_set = client.dataset(*lake.store.dataset(made.uid))
    assert parquet_set is not None
    assert [f["name"] for f in parquet_set["fields"]] == ["id", "name", "score", "tags", "where"]
