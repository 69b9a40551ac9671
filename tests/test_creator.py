"""``@file_creator``: declared and implicit outputs, parameters, skipping, failures and lineage.

Every test runs on a directory remote and on SeaweedFS (the ``lake`` fixture). The steps are
module-level functions, as in a real pipeline, so their job names are
``tests.test_creator.<name>``; ``CALLS`` counts how often each body really ran.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from radops.canonical import ParameterError
from radops.data_lake import File, file_creator, reporting_calls
from radops.errors import OutputsError, UntrackedOutputError
from radops.lake import DataLake, set_default_lake
from radops.lineage.events import function_of
from radops.settings import Settings
from tests.conftest import TEST_EMAIL, MakeLake

REPO = Path(__file__).resolve().parents[1]
MODULE = __name__  # "tests.test_creator"
HEX32 = "[0-9a-f]{32}"
CALLS: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    CALLS.clear()


@pytest.fixture
def default_lake(lake: DataLake) -> Iterator[DataLake]:
    """``lake`` as the default lake, for steps without File inputs."""
    set_default_lake(lake)
    yield lake
    set_default_lake(None)


def put(lake: DataLake, uid: str, text: str) -> File:
    """Create ``uid`` in ``lake`` holding ``text``."""
    file = File(uid, lake=lake)
    with file.open("w") as handle:
        handle.write(text)
    return file


def read(file: File) -> str:
    with file.open() as handle:
        return handle.read()


def events(lake: DataLake, job: str, event_type: str | None = None) -> list[dict[str, Any]]:
    """The indexed events of ``tests.test_creator.<job>``, optionally of one type."""
    return [
        event
        for event in lake.lineage.index.events()
        if function_of(event) == f"{MODULE}.{job}"
        and (event_type is None or event["eventType"] == event_type)
    ]


def radops_facet(event: dict[str, Any]) -> dict[str, Any]:
    facet: dict[str, Any] = event["run"]["facets"]["radops_run"]
    return facet


def expected_digest(function: str, arguments: list[list[Any]], salt: str = "") -> str:
    """The documented recipe of ``radops.canonical.call_digest``, written out independently."""
    payload = {
        "v": 1,
        "module": MODULE,
        "function": function,
        "salt": salt,
        "arguments": arguments,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- the steps ------------------------------------------------------------------------------


@file_creator
def upper(src: File, output_uid: str) -> File:
    CALLS["upper"] += 1
    with File(output_uid).open("w") as handle:
        handle.write(read(src).upper())
    return File(output_uid)


@file_creator
def split_lines(src: File, output_uids: list[str]) -> list[File]:
    CALLS["split_lines"] += 1
    lines = read(src).splitlines()
    outputs = []
    for uid, line in zip(output_uids, lines, strict=True):
        with File(uid).open("w") as handle:
            handle.write(line)
        outputs.append(File(uid))
    return outputs


@file_creator
def scale(src: File, factor: int = 2, label: str = "x") -> File:
    CALLS["scale"] += 1
    out = File(suffix=".txt")
    with out.open("w") as handle:
        handle.write(f"{label}:{read(src) * factor}")
    return out


@file_creator
def concat(parts: list[File], named: dict[str, File], pair: tuple[File, File], sep: str) -> File:
    CALLS["concat"] += 1
    texts = [read(f) for f in parts]
    texts += [read(named[k]) for k in sorted(named)]
    texts += [read(f) for f in pair]
    out = File()
    with out.open("w") as handle:
        handle.write(sep.join(texts))
    return out


@file_creator
def takes_anything(src: File, value: Any) -> File:
    CALLS["takes_anything"] += 1
    out = File()
    with out.open("w") as handle:
        handle.write("never")
    return out


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@file_creator
def paint(src: File, where: Path, color: Color) -> File:
    CALLS["paint"] += 1
    out = File()
    with out.open("w") as handle:
        handle.write(f"{where}:{color}")
    return out


@file_creator
def three_outputs(src: File) -> dict[str, Any]:
    CALLS["three_outputs"] += 1
    made = {"first": File(), "table": File(suffix=".csv"), "last": File()}
    for name, file in made.items():
        with file.open("w") as handle:
            handle.write(name)
    return {"files": made, "count": len(made)}


@file_creator
def generate(n: int) -> File:
    CALLS["generate"] += 1
    out = File(suffix=".txt")
    with out.open("w") as handle:
        handle.write("\n".join(str(i) for i in range(n)))
    return out


@file_creator
def writes_elsewhere(src: File, output_uid: str) -> File:
    CALLS["writes_elsewhere"] += 1
    with File("other").open("w") as handle:
        handle.write("sneaky")
    return File(output_uid)


class StepFailed(Exception):
    pass


BOOM = StepFailed("boom")
MADE_BEFORE_FAILING: list[str] = []


@file_creator
def fails(src: File) -> File:
    CALLS["fails"] += 1
    out = File(suffix=".txt")
    with out.open("w") as handle:
        handle.write("half done")
    MADE_BEFORE_FAILING.append(out.uid)
    raise BOOM


@file_creator
def reads_back(src: File) -> dict[str, Any]:
    CALLS["reads_back"] += 1
    out = File()
    with out.open("w") as handle:
        handle.write(read(src) + "!")
    return {"file": out, "text": read(out)}


@file_creator
def reads_by_name(src: File, other_uid: str) -> File:
    CALLS["reads_by_name"] += 1
    out = File()
    with out.open("w") as handle:
        handle.write(read(src) + read(File(other_uid)))
    return out


@file_creator
def writes_without_with(src: File, output_uid: str) -> File:
    CALLS["writes_without_with"] += 1
    out = File(output_uid)
    source = src.open("r")
    handle = out.open("w")
    handle.write(source.read().upper())
    source.close()
    handle.close()
    return out


KEPT_OPEN: list[Any] = []


@file_creator
def closes_too_late(output_uid: str) -> File:
    out = File(output_uid)
    handle = out.open("w")
    handle.write("late")
    KEPT_OPEN.append(handle)  # closed by the caller, after the call returned
    return out


def same_name_step(body: str, version: str = "") -> Any:
    """A step named ``tests.test_creator.shadowed`` whose body writes ``body``.

    Two calls make two different functions with the same module and qualname: the same step
    as it was before and after someone edited its code.
    """
    if body == "old":

        def shadowed(src: File, output_uid: str | None = None) -> File:
            CALLS["shadowed-old"] += 1
            out = File(output_uid) if output_uid else File()
            with out.open("w") as handle:
                handle.write("old")
            return out

    else:

        def shadowed(src: File, output_uid: str | None = None) -> File:
            CALLS["shadowed-new"] += 1
            out = File(output_uid) if output_uid else File()
            with out.open("w") as handle:
                handle.write("new code, different output")
            return out

    shadowed.__qualname__ = "shadowed"
    shadowed.__module__ = MODULE
    return file_creator(version=version)(shadowed)


# -- declared outputs -----------------------------------------------------------------------


def test_a_step_may_open_files_without_with(lake: DataLake) -> None:
    """Inside a step, ``open()`` without ``with`` reads an input and writes an output that is
    committed with the call, as with ``with``."""
    lower = put(lake, "lower.txt", "shout")
    out = writes_without_with(lower, output_uid="upper-by-hand.txt")
    assert read(out) == "SHOUT"
    [event] = events(lake, "writes_without_with", "COMPLETE")
    assert radops_facet(event)["inputs"] == ["lower.txt"]
    assert radops_facet(event)["outputs"] == ["upper-by-hand.txt"]


def test_an_output_closed_after_its_step_returned_is_refused(default_lake: DataLake) -> None:
    """A write handle closed after its step returned is no output of the step: the step fails
    for the output it did not create, and the late close is an error that keeps nothing."""
    with pytest.raises(OutputsError, match="without creating its declared output"):
        closes_too_late(output_uid="late.txt")
    handle = KEPT_OPEN.pop()
    with pytest.raises(OutputsError, match="closed after"):
        handle.close()
    assert not File("late.txt", lake=default_lake).exists_remotely()
    assert list(default_lake.settings.tmp_dir.iterdir()) == []


def test_output_uid_returns_the_declared_file(lake: DataLake) -> None:
    """A step with ``output_uid`` returns that File, with the content the function wrote."""
    src = put(lake, "in.txt", "hello")
    result = upper(src, output_uid="out/upper.txt")
    assert isinstance(result, File)
    assert result.uid == "out/upper.txt"
    assert read(result) == "HELLO"
    assert lake.head("out/upper.txt") is not None
    assert CALLS["upper"] == 1


def test_files_made_inside_a_step_belong_to_the_call_lake(lake: DataLake, tmp_path: Path) -> None:
    """File(uid) without a lake, inside a step, is on the lake of the call, not the default."""
    elsewhere = DataLake(
        Settings.load(
            env={},
            home=tmp_path / "elsewhere-home",
            remote=str(tmp_path / "elsewhere-remote"),
            email=TEST_EMAIL,
        )
    )
    set_default_lake(elsewhere)
    try:
        result = upper(put(lake, "in.txt", "abc"), output_uid="up.txt")
    finally:
        set_default_lake(None)
    assert result.lake is lake
    assert lake.head("up.txt") is not None
    assert lake.exists_locally("up.txt")
    assert elsewhere.head("up.txt") is None
    assert not elsewhere.exists_locally("up.txt")


def test_output_uids_declares_several_outputs(lake: DataLake) -> None:
    """A step with ``output_uids`` creates each of them; a second call skips and returns them."""
    src = put(lake, "in.txt", "one\ntwo\nthree")
    uids = ["parts/1.txt", "parts/2.txt", "parts/3.txt"]
    result = split_lines(src, output_uids=uids)
    assert [f.uid for f in result] == uids
    assert [read(f) for f in result] == ["one", "two", "three"]
    again = split_lines(src, output_uids=uids)
    assert [f.uid for f in again] == uids
    assert CALLS["split_lines"] == 1


# -- arguments: inputs and parameters -----------------------------------------------------------


def test_positional_and_keyword_calls_are_the_same_call(lake: DataLake) -> None:
    """Positional, keyword and defaulted arguments bind to the same call: one run, one uid."""
    src = put(lake, "in.txt", "ab")
    first = scale(src, 2)
    assert scale(src=src, factor=2) == first
    assert scale(src) == first  # factor=2 is the default
    assert scale(src, label="x", factor=2) == first
    assert CALLS["scale"] == 1
    facet = radops_facet(events(lake, "scale", "COMPLETE")[0])
    assert facet["parameters"] == {"factor": 2, "label": "x"}


def test_files_inside_lists_tuples_and_dicts_are_inputs(lake: DataLake) -> None:
    """File arguments nested in lists, tuples and dicts are all inputs, and not parameters."""
    files = [put(lake, f"in/{i}.txt", str(i)) for i in range(5)]
    out = concat([files[0], files[1]], {"b": files[3], "a": files[2]}, (files[4], files[0]), "-")
    assert read(out) == "0-1-2-3-4-0"
    complete = events(lake, "concat", "COMPLETE")[0]
    facet = radops_facet(complete)
    assert sorted(facet["inputs"]) == sorted(f.uid for f in files)
    assert facet["parameters"] == {"sep": "-"}
    names = {dataset["name"] for dataset in complete["inputs"]}
    assert names == {lake.store.dataset(f.uid)[1] for f in files}
    # A different uid inside the dict is a different call.
    other = put(lake, "in/other.txt", "x")
    changed = concat([files[0], files[1]], {"b": other, "a": files[2]}, (files[4], files[0]), "-")
    assert changed.uid != out.uid
    assert CALLS["concat"] == 2


def test_parameters_are_recorded_by_name(lake: DataLake) -> None:
    """The run records each parameter under its name, as JSON; the input file is not one."""
    src = put(lake, "in.txt", "z")
    scale(src, 3, label="big")
    for event in events(lake, "scale"):
        assert radops_facet(event)["parameters"] == {"factor": 3, "label": "big"}


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (object(), "builtins.object"),
        ({1, 2}, "builtins.set"),
        (float("nan"), "nan"),
        ({1: "one"}, "key 1"),
        ([1, {"deep": object()}], "value[1]['deep']"),
    ],
    ids=["object", "set", "nan", "int-keys", "nested"],
)
def test_a_non_json_parameter_is_refused_before_the_function_runs(
    lake: DataLake, value: Any, why: str
) -> None:
    """A parameter with no canonical JSON form raises ParameterError naming it; nothing runs."""
    src = put(lake, "in.txt", "x")
    before = lake.lineage.index.count()
    with pytest.raises(ParameterError) as raised:
        takes_anything(src, value)
    assert isinstance(raised.value, TypeError)
    assert re.match(r"parameter ['\"]value", str(raised.value))
    assert why in str(raised.value)
    assert CALLS["takes_anything"] == 0
    assert lake.lineage.index.count() == before  # not even a START event


def test_paths_and_enums_are_parameters_by_value(lake: DataLake) -> None:
    """A Path is recorded as its POSIX string and an Enum as its value: equal values, one call."""
    src = put(lake, "in.txt", "x")
    out = paint(src, Path("a/b.txt"), Color.RED)
    facet = radops_facet(events(lake, "paint", "COMPLETE")[0])
    assert facet["parameters"] == {"where": "a/b.txt", "color": "red"}
    assert paint(src, PurePosixPath("a/b.txt"), Color.RED) == out
    assert paint(src, "a/b.txt", "red") == out
    assert CALLS["paint"] == 1
    assert paint(src, Path("a/b.txt"), Color.BLUE) != out
    assert CALLS["paint"] == 2


# -- implicit outputs ---------------------------------------------------------------------------


def test_implicit_uid_names_the_step_and_the_call(lake: DataLake) -> None:
    """File() inside a step gets ``<module>.<qualname>/<32 hex>-<n><suffix>``."""
    src = put(lake, "in.txt", "ab")
    out = scale(src, 3)
    assert re.fullmatch(rf"{re.escape(MODULE)}\.scale/{HEX32}-0\.txt", out.uid)
    assert read(out) == "x:ababab"


def test_the_same_call_twice_is_skipped(lake: DataLake) -> None:
    """The second identical call does not run the function and returns the same files."""
    src = put(lake, "in.txt", "ab")
    first = scale(src, 3)
    second = scale(src, 3)
    assert CALLS["scale"] == 1
    assert isinstance(second, File)
    assert second.uid == first.uid
    assert read(second) == "x:ababab"


def test_a_changed_parameter_or_input_runs_again(lake: DataLake) -> None:
    """Another parameter value, or another input uid, is another call with other uids."""
    src = put(lake, "in.txt", "ab")
    other = put(lake, "in2.txt", "ab")  # same content, different uid
    uids = {scale(src, 3).uid, scale(src, 4).uid, scale(other, 3).uid}
    assert len(uids) == 3
    assert CALLS["scale"] == 3


def test_several_implicit_outputs_are_distinct_and_stable(lake: DataLake) -> None:
    """Implicit outputs are numbered in creation order, and a skip rebuilds the return value."""
    src = put(lake, "in.txt", "x")
    result = three_outputs(src)
    files = result["files"]
    uids = [files[name].uid for name in ("first", "table", "last")]
    prefix = uids[0].rsplit("-", 1)[0]
    assert uids == [f"{prefix}-0", f"{prefix}-1.csv", f"{prefix}-2"]
    assert [read(files[name]) for name in ("first", "table", "last")] == ["first", "table", "last"]
    again = three_outputs(src)
    assert CALLS["three_outputs"] == 1
    assert again == result  # the same structure, with File handles on the same uids


def test_a_step_without_inputs_uses_the_default_lake(default_lake: DataLake) -> None:
    """A step that takes no File works, on the default lake, and is skipped the second time."""
    out = generate(3)
    assert re.fullmatch(rf"{re.escape(MODULE)}\.generate/{HEX32}-0\.txt", out.uid)
    assert read(out) == "0\n1\n2"
    assert default_lake.head(out.uid) is not None
    assert generate(3).uid == out.uid
    assert CALLS["generate"] == 1


def test_implicit_uids_follow_the_documented_recipe(lake: DataLake, tmp_path: Path) -> None:
    """The implicit uid is sha256 of the canonical call JSON, in this and in a fresh process."""
    src = put(lake, "data/in.txt", "ab")
    out = scale(src, 3, label="é")
    digest = expected_digest(
        "scale", [["src", {"radops.File": "data/in.txt"}], ["factor", 3], ["label", "é"]]
    )
    assert out.uid == f"{MODULE}.scale/{digest[:32]}-0.txt"
    assert radops_facet(events(lake, "scale", "COMPLETE")[0])["callDigest"] == digest

    # A fresh interpreter (another hash seed) on another, empty lake runs the call and gets
    # the same uid.
    script = (
        "from radops.data_lake import File\n"
        "from radops.lake import DataLake\n"
        "from tests.test_creator import put, scale\n"
        "lake = DataLake.from_env()\n"
        "src = put(lake, 'data/in.txt', 'ab')\n"
        "print(scale(src, 3, label='é').uid)\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PYTHONHASHSEED": "12345",
        "RADOPS_HOME": str(tmp_path / "fresh-home"),
        "RADOPS_REMOTE": str(tmp_path / "fresh-remote"),
        "RADOPS_EMAIL": TEST_EMAIL,
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == out.uid


def test_version_changes_the_implicit_uids(lake: DataLake) -> None:
    """``@file_creator(version="2")`` salts the digest, so the step runs again with new uids."""
    src = put(lake, "in.txt", "x")
    first = same_name_step("old")(src)
    second = same_name_step("old", version="2")(src)
    assert CALLS["shadowed-old"] == 2
    assert first.uid != second.uid
    arguments = [["src", {"radops.File": "in.txt"}]]
    assert first.uid == f"{MODULE}.shadowed/{expected_digest('shadowed', arguments)[:32]}-0"
    salted = expected_digest("shadowed", arguments, salt="2")
    assert second.uid == f"{MODULE}.shadowed/{salted[:32]}-0"


# -- what the function may create and read -----------------------------------------------------


def test_an_undeclared_explicit_uid_is_refused(lake: DataLake) -> None:
    """Creating File("other") in a step that declared output_uid raises UntrackedOutputError."""
    src = put(lake, "in.txt", "x")
    with pytest.raises(UntrackedOutputError, match="'other'"):
        writes_elsewhere(src, output_uid="declared.txt")
    assert lake.head("other") is None
    assert lake.head("declared.txt") is None


def test_a_failing_step_leaves_nothing_and_records_fail(lake: DataLake) -> None:
    """The step's exception propagates as is; its outputs vanish; a FAIL event is in the lake."""
    MADE_BEFORE_FAILING.clear()
    src = put(lake, "in.txt", "x")
    with pytest.raises(StepFailed) as raised:
        fails(src)
    assert raised.value is BOOM
    [uid] = MADE_BEFORE_FAILING
    assert lake.store.head(uid) is None
    assert not lake.exists_locally(uid)
    assert [p for p in lake.settings.tmp_dir.rglob("*") if p.is_file()] == []

    [fail] = events(lake, "fails", "FAIL")
    assert "StepFailed: boom" in fail["run"]["facets"]["errorMessage"]["message"]
    assert events(lake, "fails", "COMPLETE") == []
    stored = [lake.lineage.records.read(name) for name in lake.lineage.records.names()]
    assert any(
        event and event["eventType"] == "FAIL" and event["run"]["runId"] == fail["run"]["runId"]
        for event in stored
    )
    # Nothing was committed, so the same call runs (and fails) again.
    with pytest.raises(StepFailed):
        fails(src)
    assert CALLS["fails"] == 2


def test_a_step_can_read_back_what_it_wrote(lake: DataLake) -> None:
    """A staged output can be opened for reading before the function returns."""
    src = put(lake, "in.txt", "hi")
    result = reads_back(src)
    assert result["text"] == "hi!"
    assert read(result["file"]) == "hi!"


def test_a_file_read_inside_the_step_is_an_input(lake: DataLake) -> None:
    """A lake file the function opens without receiving it is recorded as an input."""
    src = put(lake, "in.txt", "a")
    put(lake, "side.txt", "b")
    out = reads_by_name(src, "side.txt")
    assert read(out) == "ab"
    complete = lake.lineage.creation_of(out.uid)
    assert complete is not None
    assert complete["eventType"] == "COMPLETE"
    assert radops_facet(complete)["inputs"] == ["in.txt", "side.txt"]
    assert radops_facet(complete)["parameters"] == {"other_uid": "side.txt"}
    names = [dataset["name"] for dataset in complete["inputs"]]
    assert names == [lake.store.dataset("in.txt")[1], lake.store.dataset("side.txt")[1]]


# -- skipping ---------------------------------------------------------------------------------


def test_another_machine_skips_without_downloading(lake: DataLake, make_lake: MakeLake) -> None:
    """Machine B skips a step A ran, downloads neither input nor output until one is opened."""
    put(lake, "in.txt", "ab")
    made = scale(File("in.txt", lake=lake), 3)
    declared = upper(File("in.txt", lake=lake), output_uid="up.txt")

    machine_b = make_lake("machine-b")
    src_b = File("in.txt", lake=machine_b)
    skipped = scale(src_b, 3)
    skipped_declared = upper(src_b, output_uid="up.txt")
    assert CALLS["scale"] == CALLS["upper"] == 1
    assert skipped.uid == made.uid
    assert skipped_declared.uid == declared.uid
    assert not src_b.exists_locally()
    assert not skipped.exists_locally()
    assert not skipped_declared.exists_locally()
    assert read(skipped) == "x:ababab"
    assert skipped.exists_locally()
    assert not src_b.exists_locally()


def test_a_skip_is_logged(lake: DataLake, caplog: pytest.LogCaptureFixture) -> None:
    """A skipped call says so at INFO level on the radops logger."""
    src = put(lake, "in.txt", "x")
    out = scale(src)
    with caplog.at_level(logging.INFO, logger="radops"):
        scale(src)
    skipped = [r for r in caplog.records if r.name == "radops" and "skipped" in r.getMessage()]
    assert len(skipped) == 1
    assert out.uid in skipped[0].getMessage()


def test_partly_present_declared_outputs_are_an_error(lake: DataLake) -> None:
    """If one of several declared outputs is gone from the lake, the call names it and stops."""
    src = put(lake, "in.txt", "one\ntwo")
    split_lines(src, output_uids=["kept.txt", "lost.txt"])
    lake.store.delete("lost.txt")
    with pytest.raises(OutputsError, match=r"others are not \(lost\.txt\)"):
        split_lines(src, output_uids=["kept.txt", "lost.txt"])
    assert CALLS["split_lines"] == 1


def test_partly_present_implicit_outputs_are_an_error(lake: DataLake) -> None:
    """The same holds for implicit outputs found through the lineage index."""
    src = put(lake, "in.txt", "x")
    files = three_outputs(src)["files"]
    lake.store.delete(files["table"].uid)
    with pytest.raises(OutputsError) as raised:
        three_outputs(src)
    missing = str(raised.value).split("others are not", 1)[1]
    assert files["table"].uid in missing
    assert files["first"].uid not in missing


def test_outputs_gone_from_the_store_are_a_miss(lake: DataLake) -> None:
    """An indexed call whose outputs were all deleted behind radops' back runs again."""
    src = put(lake, "in.txt", "ab")
    result = three_outputs(src)
    for file in result["files"].values():
        lake.store.delete(file.uid)
    again = three_outputs(src)
    assert CALLS["three_outputs"] == 2
    assert again == result
    assert all(lake.head(f.uid) is not None for f in again["files"].values())
    assert read(again["files"]["table"]) == "table"


def test_a_declared_output_gone_from_the_store_is_made_again(lake: DataLake) -> None:
    """A declared output deleted directly from the store (local copy still here) is remade."""
    src = put(lake, "in.txt", "ab")
    upper(src, output_uid="up.txt")
    lake.store.delete("up.txt")
    assert lake.exists_locally("up.txt")  # a stale copy of an object the lake lost
    again = upper(src, output_uid="up.txt")
    assert CALLS["upper"] == 2
    assert lake.head("up.txt") is not None
    assert read(again) == "AB"


def test_changed_code_is_used_as_is_with_a_warning(
    lake: DataLake, caplog: pytest.LogCaptureFixture
) -> None:
    """Outputs made by other code are reused (skip), with a warning saying how to rerun."""
    src = put(lake, "in.txt", "x")
    old = same_name_step("old")(src, output_uid="made.txt")
    with caplog.at_level(logging.INFO, logger="radops"):
        new = same_name_step("new")(src, output_uid="made.txt")
    assert CALLS["shadowed-old"] == 1
    assert CALLS["shadowed-new"] == 0
    assert new.uid == old.uid
    assert read(new) == "old"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("different code" in m and "radops datalake rm" in m for m in warnings), warnings


# -- review fixes: all-or-nothing commits, declared outputs, stale copies ------------------------


def test_a_declared_output_made_by_another_call_is_an_error_not_a_skip(lake: DataLake) -> None:
    """Same output uid, other input: never silently returns the first call's file."""
    jan = put(lake, "jan.txt", "january")
    feb = put(lake, "feb.txt", "february")
    upper(jan, output_uid="report.txt")
    with pytest.raises(OutputsError, match=r"report\.txt already exist.*not made by this call"):
        upper(feb, output_uid="report.txt")
    assert CALLS["upper"] == 1
    assert read(File("report.txt", lake=lake)) == "JANUARY"


@pytest.fixture
def dir_lake(tmp_path: Path) -> Iterator[DataLake]:
    """A lake on a directory remote, whose files a test can damage on purpose."""
    lake = DataLake(
        Settings.load(env={}, home=tmp_path / "home", remote=tmp_path / "remote", email=TEST_EMAIL)
    )
    yield lake
    lake.local.close()


def test_outputs_are_all_or_nothing_when_one_cannot_be_stored(dir_lake: DataLake) -> None:
    """If the second output cannot be stored, the first is taken back; a retry then works."""
    src = put(dir_lake, "in.txt", "a\nb")
    blocker = Path(dir_lake.settings.remote) / "second"
    blocker.write_text("a file where a folder is needed")
    with pytest.raises(OSError, match="conflicts"):
        split_lines(src, output_uids=["first/a.txt", "second/b.txt"])
    assert dir_lake.head("first/a.txt") is None
    assert not dir_lake.exists_locally("first/a.txt")
    assert events(dir_lake, "split_lines", "FAIL")
    blocker.unlink()
    made = split_lines(src, output_uids=["first/a.txt", "second/b.txt"])
    assert [read(f) for f in made] == ["a", "b"]


def test_a_creation_whose_record_cannot_be_stored_leaves_no_object(dir_lake: DataLake) -> None:
    """An object is never left in the lake without its creation record."""
    records = Path(dir_lake.settings.remote) / ".radops" / "events"
    records.parent.mkdir(parents=True, exist_ok=True)
    records.write_text("not a folder")
    with pytest.raises(Exception, match="record"), File("x.txt", lake=dir_lake).open("w") as handle:
        handle.write("data")
    assert dir_lake.head("x.txt") is None
    assert not dir_lake.exists_locally("x.txt")


def test_output_uids_of_one_return_a_list_when_skipped(lake: DataLake) -> None:
    """output_uids=[one] returns a list both when it runs and when it is skipped."""
    src = put(lake, "one.txt", "only line")
    first = split_lines(src, output_uids=["only.txt"])
    again = split_lines(src, output_uids=["only.txt"])
    assert isinstance(first, list) and isinstance(again, list)
    assert [f.uid for f in again] == ["only.txt"]
    assert CALLS["split_lines"] == 1


def test_a_remade_output_replaces_a_stale_local_copy_on_skip(make_lake: MakeLake) -> None:
    """After rm and a rerun elsewhere, a machine's cached copy is not served as the output."""
    a = make_lake("machine-a")
    b = make_lake("machine-b")
    src = put(a, "in.txt", "v1")
    upper(src, output_uid="up.txt")
    assert read(upper(File("in.txt", lake=b), output_uid="up.txt")) == "V1"  # b caches it
    a.delete("up.txt")
    a.delete("in.txt")
    put(a, "in.txt", "v2")
    upper(File("in.txt", lake=a), output_uid="up.txt")
    again = upper(File("in.txt", lake=b), output_uid="up.txt")  # skipped on b
    assert read(again) == "V2"


def test_skips_are_printed_on_stderr_with_an_explicit_lake(tmp_path: Path) -> None:
    """A script that configures its lake itself still shows the skip message by default."""
    script = tmp_path / "explicit.py"
    script.write_text(
        "import sys\n"
        "from radops.data_lake import DataLake, File, file_creator, set_default_lake\n"
        "from radops.settings import Settings\n"
        f"lake = DataLake(Settings.load(env={{}}, home={str(tmp_path / 'h')!r}, "
        f"remote={str(tmp_path / 'r')!r}, email='t@example.com'))\n"
        "set_default_lake(lake)\n"
        "@file_creator\n"
        "def gen(n: int) -> File:\n"
        "    out = File()\n"
        "    with out.open('w') as handle:\n"
        "        handle.write(str(n))\n"
        "    return out\n"
        "gen(1)\n"
        "gen(1)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # A script outside a repository is named by its absolute path.
    module = ".".join(script.resolve().with_suffix("").parts[1:])
    assert f"radops: {module}.gen skipped: its outputs are already in the data lake" in (
        result.stderr
    )


def test_a_read_opened_before_the_call_and_entered_in_it_is_recorded(lake: DataLake) -> None:
    """Whether a read is an input of the call is decided when its ``with`` block starts."""
    source = File("early-in.txt", lake=lake)
    with source.open("w") as handle:
        handle.write("read inside")
    opening = source.open("r")  # created outside any call

    @file_creator
    def copy_it(output_uid: str) -> File:
        with opening as handle:
            text = handle.read()
        out = File(output_uid)
        with out.open("w") as handle:
            handle.write(text)
        return out

    set_default_lake(lake)
    try:
        copy_it(output_uid="early-out.txt")
    finally:
        set_default_lake(None)
    creation = lake.lineage.creation_of("early-out.txt")
    assert creation is not None
    assert creation["run"]["facets"]["radops_run"]["inputs"] == ["early-in.txt"]


@file_creator
def scaled_twice(src: File) -> File:
    """A step that calls another step."""
    return scale(scale(src))


def test_reporting_calls_says_what_each_call_did(lake: DataLake) -> None:
    """Ran or skipped, with the call's own outputs; inner calls before the call that made
    them; nested blocks each see their calls."""
    src = put(lake, "report-in.txt", "a")
    with reporting_calls() as first:
        twice = scaled_twice(src)
    with reporting_calls() as outer:
        with reporting_calls() as inner:
            scaled_twice(src)
        scale(src, factor=3)
    scale(src, factor=4)  # outside any block: reported nowhere
    step, inner_step = f"{MODULE}.scaled_twice", f"{MODULE}.scale"
    assert [(r.job, r.outcome) for r in first] == [
        (inner_step, "ran"),
        (inner_step, "ran"),
        (step, "ran"),  # it returns scale's file: no output of its own, so it never skips
    ]
    assert first[1].outputs == (twice.uid,)
    assert first[2].outputs == ()
    assert [(r.job, r.outcome) for r in inner] == [
        (inner_step, "skipped"),
        (inner_step, "skipped"),
        (step, "ran"),
    ]
    assert inner[1].outputs == (twice.uid,)
    assert outer[:3] == inner
    assert [(r.job, r.outcome) for r in outer[3:]] == [(inner_step, "ran")]
    assert len(outer) == 4


def test_a_miss_resyncs_at_most_once_a_second_and_a_late_rerun_settles(
    make_lake: MakeLake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after a sync, a call another machine has just recorded runs again here, loses the
    race at the upload and returns the other machine's file; once the interval is over, the
    miss syncs and the call is skipped."""
    from radops.lineage import recorder

    here, there = make_lake("machine-a"), make_lake("machine-b")
    set_default_lake(here)
    try:
        generate(1)  # a miss: syncs `here`'s index now
        set_default_lake(there)
        made_there = generate(2)
        set_default_lake(here)
        monkeypatch.setattr(recorder, "CALL_RESYNC_INTERVAL", 3600.0)
        with reporting_calls() as reports:
            rerun = generate(2)
        assert CALLS["generate"] == 3  # it ran again here
        assert [r.outcome for r in reports] == ["lost race"]
        assert rerun.uid == made_there.uid
        assert read(rerun) == read(made_there)

        set_default_lake(there)
        generate(3)
        set_default_lake(here)
        monkeypatch.setattr(recorder, "CALL_RESYNC_INTERVAL", 0.0)
        with reporting_calls() as reports:
            generate(3)
        assert CALLS["generate"] == 4  # not run here: found by the sync
        assert [r.outcome for r in reports] == ["skipped"]
    finally:
        set_default_lake(None)
