"""Lineage records as untrusted input: the size limit on both sides, the reuse of a deleted uid
in the Python API, and the checks' one-line reasons (the hostile-lake suite is in
``tests/reliability/test_shared_lake.py``)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from radops.data_lake import File, file_creator, reporting_calls
from radops.errors import InvalidRecordError, UidReuseError
from radops.lake import DataLake
from radops.lineage.events import radops_facet
from radops.lineage.validate import RECORD_MAX_BYTES, check_event, parse_record
from tests.conftest import MakeLake

CALLS: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    CALLS.clear()


@file_creator
def tagged(source: File, tag: str) -> File:
    """An implicit output: the input's text and ``tag``'s length."""
    CALLS["tagged"] += 1
    out = File(suffix=".txt")
    with source.open("r") as handle, out.open("w") as target:
        target.write(f"{handle.read()} {len(tag)}")
    return out


def put(lake: DataLake, uid: str, text: str) -> File:
    file = File(uid, lake=lake)
    with file.open("w") as handle:
        handle.write(text)
    return file


def lake_records(lake: DataLake) -> list[bytes]:
    records = lake.lineage.records
    return [lake.store.get_record(name) or b"" for name in records.names()]


def test_a_record_over_the_limit_leaves_out_what_skips_do_not_need(make_lake: MakeLake) -> None:
    """A 5 MB parameter: the call's record is written within the limit, without its source
    code and parameters (listed as omitted), and another machine skips the call on it."""
    first, second = make_lake("a"), make_lake("b")
    tag = "x" * (5 * 1024 * 1024)
    made = tagged(put(first, "in.txt", "text"), tag)

    sizes = [len(data) for data in lake_records(first)]
    complete = [
        json.loads(data)
        for data in lake_records(first)
        if json.loads(data)["eventType"] == "COMPLETE" and b"tagged" in data
    ]
    assert max(sizes) <= RECORD_MAX_BYTES
    [event] = complete
    facet = radops_facet(event)
    assert facet["parameters"] == {}
    assert facet["extra"]["radops.omitted"] == ["sourceCode", "stackTrace", "parameters"]
    assert "sourceCode" not in event["job"]["facets"]

    with reporting_calls() as calls:
        again = tagged(File("in.txt", lake=second), tag)
    assert [call.outcome for call in calls] == ["skipped"]
    assert again.uid == made.uid
    assert CALLS["tagged"] == 1


def test_a_deleted_uid_takes_other_bytes_only_without_stale_results(lake: DataLake) -> None:
    """``File.open("w")`` of a deleted input whose results remain raises UidReuseError naming
    them; the same bytes are taken back; ``add_file(delete_stale=True)`` deletes them."""
    made = tagged(put(lake, "in.txt", "one"), "t")
    lake.delete("in.txt")

    with pytest.raises(UidReuseError, match=rf"in.txt' was deleted.*{made.uid}"):
        put(lake, "in.txt", "two")
    assert lake.head("in.txt") is None  # nothing was uploaded

    put(lake, "in.txt", "one")
    with reporting_calls() as calls:
        assert tagged(File("in.txt", lake=lake), "t").uid == made.uid
    assert [call.outcome for call in calls] == ["skipped"]

    lake.delete("in.txt")
    source = lake.settings.home / "two.txt"
    source.write_text("two")
    lake.add_file(source, "in.txt", delete_stale=True)
    assert lake.head(made.uid) is None
    with File(tagged(File("in.txt", lake=lake), "t").uid, lake=lake).open("r") as handle:
        assert handle.read() == "two 1"


def test_a_bulk_add_over_a_deleted_uid_is_refused_before_anything_is_uploaded(
    lake: DataLake, tmp_path: Path
) -> None:
    """``add_files`` checks the uids that were used before first: other bytes for a deleted
    uid whose results remain refuse the whole directory, with no object uploaded and no run
    recorded; with ``delete_stale`` the stale results go and the directory is added."""
    made = tagged(put(lake, "dir/in.txt", "one"), "t")
    lake.delete("dir/in.txt")
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "in.txt").write_text("two")
    (folder / "new.txt").write_text("new")
    files = [(folder / name, f"dir/{name}") for name in ("in.txt", "new.txt")]
    runs_before = len(lake_records(lake))

    with pytest.raises(UidReuseError, match=rf"in.txt' was deleted.*{made.uid}"):
        lake.add_files(files)
    assert lake.head("dir/in.txt") is None and lake.head("dir/new.txt") is None
    assert len(lake_records(lake)) == runs_before

    lake.add_files(files, delete_stale=True)
    assert lake.head(made.uid) is None
    assert {meta.key for meta in lake.files("dir/")} == {"dir/in.txt", "dir/new.txt"}


BROKEN: list[tuple[bytes, str]] = [
    (b"not json {", r"not JSON \(Expecting value"),
    (b"[1]", "not a JSON object but an array"),
    (b'{"a": NaN}', "not JSON"),
    (b"[" * 5000 + b"]" * 5000, "nested too deeply|nested deeper"),
    (b'{"eventTime": "2026-01-01T00:00:00Z", "job": {"namespace": "n", "name": "j"}}', "run"),
]


@pytest.mark.parametrize(("data", "reason"), BROKEN)
def test_a_broken_record_gets_a_one_line_reason(data: bytes, reason: str) -> None:
    """Each way a record can be broken is an InvalidRecordError of one line saying which."""
    with pytest.raises(InvalidRecordError, match=reason) as raised:
        parse_record(data)
    assert "\n" not in str(raised.value)


def test_a_record_over_the_limit_is_refused_before_parsing() -> None:
    """Bytes over the limit are refused by their length, whatever they hold."""
    with pytest.raises(InvalidRecordError, match=f"over the limit of {RECORD_MAX_BYTES}"):
        parse_record(b" " * (RECORD_MAX_BYTES + 1))


def test_fields_of_other_producers_are_left_alone() -> None:
    """An event with facets and fields radops does not know passes the checks unchanged."""
    event: dict[str, Any] = {
        "eventType": "COMPLETE",
        "eventTime": "2026-01-01T00:00:00Z",
        "run": {"runId": "01a24028-5502-7d78-b73e-323cdcfe3244", "facets": {"other": [1]}},
        "job": {"namespace": "n", "name": "j", "facets": {"x": {"y": None}}},
        "inputs": [{"namespace": "s3://b", "name": "k", "inputFacets": {"z": 1}}],
        "producer": "https://example.com/another-tool",
        "somethingNew": {"nested": [[], {}]},
    }
    assert check_event(json.loads(json.dumps(event))) == event
