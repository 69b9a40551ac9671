"""The lineage commands: `datalake lineage`, `datalake rm`, `lineage export`, `datalake add`.

A two-step pipeline runs in the test process on machine A (``raw.txt`` -> ``upper.txt`` ->
``loud.txt``); the CLI then runs in-process through typer's CliRunner as a user of the same
machine would, on both remotes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from radops.cli.app import app
from radops.data_lake import File, file_creator
from radops.errors import FileNotInLakeError
from radops.lake import DataLake
from radops.lineage.events import function_of
from tests.conftest import TEST_EMAIL
from tests.local_http import serving_folder
from tests.olschema import validate_event

MODULE = __name__


@file_creator
def upper(f: File, output_uid: str) -> File:
    with f.open() as handle:
        text = handle.read()
    out = File(output_uid)
    with out.open("w") as handle:
        handle.write(text.upper())
    return out


@file_creator
def exclaim(f: File, output_uid: str, marks: int = 1) -> File:
    with f.open() as handle:
        text = handle.read()
    out = File(output_uid)
    with out.open("w") as handle:
        handle.write(text + "!" * marks)
    return out


def _pipeline(lake: DataLake) -> None:
    """raw.txt (written directly) -> upper.txt -> loud.txt."""
    with File("raw.txt", lake=lake).open("w") as handle:
        handle.write("hello")
    upper(File("raw.txt", lake=lake), output_uid="upper.txt")
    loud = exclaim(File("upper.txt", lake=lake), output_uid="loud.txt", marks=2)
    with loud.open() as handle:
        assert handle.read() == "HELLO!!"


def _invoke(cli_env: dict[str, str], *args: str, input: str | None = None) -> Result:
    runner = CliRunner()
    return runner.invoke(app, list(args), env={**cli_env, "COLUMNS": "200"}, input=input)


def _ok(result: Result) -> Result:
    assert result.exit_code == 0, (
        f"exit {result.exit_code} ({result.exception!r})\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


def _export(cli_env: dict[str, str], *args: str) -> list[dict]:
    result = _ok(_invoke(cli_env, "lineage", "export", *args))
    lines = result.stdout.splitlines()
    assert all(line.strip() for line in lines), "NDJSON has no blank lines"
    return [json.loads(line) for line in lines]


@pytest.fixture
def piped(lake: DataLake) -> DataLake:
    """Machine A after the two-step pipeline ran (the CLI user is on the same home)."""
    _pipeline(lake)
    return lake


# -- datalake lineage -------------------------------------------------------------------------


def test_lineage_shows_the_creation(piped: DataLake, cli_env: dict[str, str]) -> None:
    """Depth 1: the three boxes of the last step only."""
    result = _ok(_invoke(cli_env, "datalake", "lineage", "loud.txt"))
    text = result.stdout
    assert "input files" in text
    assert "upper.txt" in text
    assert f"function {MODULE}.exclaim" in text
    assert "marks = 2" in text
    assert "uid loud.txt" in text
    assert f"originator {TEST_EMAIL}" in text
    assert f"function {MODULE}.upper" not in text
    assert "was made by" not in text
    assert result.stderr == ""


def test_lineage_depth_follows_the_inputs(piped: DataLake, cli_env: dict[str, str]) -> None:
    """--depth 2 shows how the input was made too; --depth 3 reaches the direct write."""
    two = _ok(_invoke(cli_env, "datalake", "lineage", "loud.txt", "--depth", "2")).stdout
    assert f"function {MODULE}.exclaim" in two
    assert "upper.txt was made by:" in two
    assert f"function {MODULE}.upper" in two
    assert "raw.txt was made by:" not in two
    assert two.index(f"{MODULE}.exclaim") < two.index(f"{MODULE}.upper")

    three = _ok(_invoke(cli_env, "datalake", "lineage", "loud.txt", "--depth", "3")).stdout
    assert "raw.txt was made by:" in three
    assert "function radops.File.write" in three

    as_json = json.loads(
        _ok(_invoke(cli_env, "datalake", "lineage", "loud.txt", "--depth", "2", "--json")).stdout
    )
    assert [function_of(e) for e in as_json["events"]] == [
        f"{MODULE}.exclaim",
        f"{MODULE}.upper",
    ]
    for event in as_json["events"]:
        assert event["eventType"] == "COMPLETE"
        validate_event(event)


def test_lineage_downstream(piped: DataLake, cli_env: dict[str, str]) -> None:
    """--downstream lists every file made from a file, directly or not."""
    text = _ok(_invoke(cli_env, "datalake", "lineage", "raw.txt", "--downstream")).stdout
    assert "made from raw.txt:" in text
    after = text.split("made from raw.txt:", 1)[1].split()
    assert after == ["upper.txt", "loud.txt"]

    leaf = _ok(_invoke(cli_env, "datalake", "lineage", "loud.txt", "--downstream")).stdout
    assert "nothing was made from loud.txt" in leaf

    payload = json.loads(
        _ok(_invoke(cli_env, "datalake", "lineage", "raw.txt", "--downstream", "--json")).stdout
    )
    assert payload["uid"] == "raw.txt"
    assert [d["uid"] for d in payload["downstream"]] == ["upper.txt", "loud.txt"]
    assert [function_of(d["event"]) for d in payload["downstream"]] == [
        f"{MODULE}.upper",
        f"{MODULE}.exclaim",
    ]


def test_lineage_json_is_the_complete_event(piped: DataLake, cli_env: dict[str, str]) -> None:
    """--json prints the stored COMPLETE event: inputs, outputs, radops facet."""
    payload = json.loads(_ok(_invoke(cli_env, "datalake", "lineage", "upper.txt", "--json")).stdout)
    assert set(payload) == {"uid", "events"}
    [event] = payload["events"]
    assert event["eventType"] == "COMPLETE"
    facet = event["run"]["facets"]["radops_run"]
    assert facet["inputs"] == ["raw.txt"]
    assert facet["outputs"] == ["upper.txt"]
    assert facet["email"] == TEST_EMAIL
    namespace, name = piped.store.dataset("upper.txt")
    assert [(o["namespace"], o["name"]) for o in event["outputs"]] == [(namespace, name)]
    assert event == piped.lineage.creation_of("upper.txt")
    validate_event(event)


def test_info_summarizes_the_creation(piped: DataLake, cli_env: dict[str, str]) -> None:
    """``info`` names the creating job and run, the inputs and the parameters."""
    text = _ok(_invoke(cli_env, "datalake", "info", "loud.txt")).stdout
    run_id = piped.lineage.creation_of("loud.txt")["run"]["runId"]
    rows = dict(line.split(None, 1) for line in text.splitlines())
    assert rows["created_by"] == f"{MODULE}.exclaim (run {run_id})"
    assert rows["inputs"] == "upper.txt"
    assert rows["parameters"] == '{"marks": 2}'
    assert rows["lineage"] == "radops datalake lineage loud.txt"
    data = json.loads(_ok(_invoke(cli_env, "datalake", "info", "loud.txt", "--json")).stdout)
    assert data["created_by"]["job"] == f"{MODULE}.exclaim"
    assert data["created_by"]["inputs"] == ["upper.txt"]
    assert data["created_by"]["parameters"] == {"marks": 2}


OUTSIDE_GIT = """\
from radops.data_lake import File, file_creator


@file_creator
def first(output_uid: str) -> File:
    out = File(output_uid)
    with out.open("w") as handle:
        handle.write("1")
    return out


@file_creator
def second(src: File, output_uid: str) -> File:
    out = File(output_uid)
    with src.open() as given, out.open("w") as handle:
        handle.write(given.read() + "2")
    return out


second(first(output_uid="one.txt"), output_uid="two.txt")
"""


@pytest.mark.parametrize("remote", ["directory"], indirect=True)  # about the code, not the store
def test_steps_outside_git_warn_once_and_show_their_code_consistently(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """Two steps of a script outside any git repository: one warning for the process, not
    one per step; and lineage and info then say in one line that there is no link and why,
    with no file:// "link" beside a note saying there is no link (events carry no location
    without a link)."""
    project = tmp_path / "project"  # not inside a git repository
    project.mkdir()
    script = project / "pipe.py"
    script.write_text(OUTSIDE_GIT)
    ran = subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, **cli_env},
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert ran.stderr.count("is not in a git repository") == 1, ran.stderr

    shown = {f"no link ({script} is not in a git repository)"}
    text = _ok(_invoke(cli_env, "datalake", "lineage", "two.txt")).stdout
    [code] = [line for line in text.splitlines() if "code" in line and "method" in line]
    assert code.removeprefix("creation method code: ") in shown, text
    assert "file://" not in text
    assert "note:" not in text
    rows = dict(
        line.split(None, 1)
        for line in _ok(_invoke(cli_env, "datalake", "info", "two.txt")).stdout.splitlines()
    )
    assert rows["code"] in shown
    data = json.loads(_ok(_invoke(cli_env, "datalake", "info", "two.txt", "--json")).stdout)
    assert data["created_by"]["code"] is None  # no link
    assert data["created_by"]["code_note"].endswith(
        "is not in a git repository: no code link is recorded"
    )


def test_lineage_of_a_missing_uid(lake: DataLake, cli_env: dict[str, str]) -> None:
    """A uid the lake does not have: exit 1, one line on stderr, nothing on stdout."""
    result = _invoke(cli_env, "datalake", "lineage", "nope.txt")
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: 'nope.txt' is not in the data lake")


# -- datalake rm and File.delete ----------------------------------------------------------------


def test_rm_deletes_records_a_drop_and_warns(piped: DataLake, cli_env: dict[str, str]) -> None:
    """rm removes the file everywhere, records a DROP, and names what lost an input."""
    assert piped.exists_locally("upper.txt")
    result = _ok(_invoke(cli_env, "datalake", "rm", "upper.txt"))
    assert "deleted upper.txt" in result.stderr
    assert "warning: 1 file(s) made from upper.txt now have a missing input: loud.txt" in (
        result.stderr
    )
    assert result.stdout == ""
    assert piped.head("upper.txt") is None
    assert not piped.exists_locally("upper.txt")
    assert piped.head("loud.txt") is not None  # without --cascade, downstream stays

    drops = [
        event
        for event in _export(cli_env)
        if event["eventType"] == "COMPLETE" and function_of(event) == "radops.datalake.rm"
    ]
    [drop] = drops
    [output] = drop["outputs"]
    assert output["name"] == piped.store.dataset("upper.txt")[1]
    assert output["facets"]["lifecycleStateChange"]["lifecycleStateChange"] == "DROP"
    assert drop["run"]["facets"]["radops_run"]["outputs"] == ["upper.txt"]
    validate_event(drop)

    gone = _invoke(cli_env, "datalake", "lineage", "upper.txt")
    assert gone.exit_code == 1
    assert "is not in the data lake" in gone.stderr
    again = _invoke(cli_env, "datalake", "rm", "upper.txt")
    assert again.exit_code == 1
    assert again.stderr.startswith("error: 'upper.txt' is not in the data lake")


def test_rm_cascade_yes_deletes_downstream(piped: DataLake, cli_env: dict[str, str]) -> None:
    """rm --cascade --yes deletes the file and everything made from it."""
    result = _ok(_invoke(cli_env, "datalake", "rm", "raw.txt", "--cascade", "--yes"))
    for uid in ("raw.txt", "upper.txt", "loud.txt"):
        assert f"deleted {uid}" in result.stderr
        assert piped.head(uid) is None
        assert not piped.exists_locally(uid)
    assert "missing input" not in result.stderr
    # downstream first, so no file outlives the record of its input
    assert result.stderr.index("deleted loud.txt") < result.stderr.index("deleted raw.txt")
    dropped = {
        event["run"]["facets"]["radops_run"]["outputs"][0]
        for event in _export(cli_env)
        if event["eventType"] == "COMPLETE" and function_of(event) == "radops.datalake.rm"
    }
    assert dropped == {"raw.txt", "upper.txt", "loud.txt"}
    assert _ok(_invoke(cli_env, "datalake", "ls")).stdout == ""


def test_rm_cascade_asks_first(piped: DataLake, cli_env: dict[str, str]) -> None:
    """rm --cascade without --yes asks; answering no deletes nothing."""
    result = _invoke(cli_env, "datalake", "rm", "upper.txt", "--cascade", input="n\n")
    assert result.exit_code == 1
    assert "will be deleted too" in result.stderr
    assert "loud.txt" in result.stderr
    assert "delete 2 file(s)?" in result.stderr
    assert "error: nothing deleted" in result.stderr
    for uid in ("raw.txt", "upper.txt", "loud.txt"):
        assert piped.head(uid) is not None
    assert not any(function_of(e) == "radops.datalake.rm" for e in _export(cli_env))

    yes = _ok(_invoke(cli_env, "datalake", "rm", "upper.txt", "--cascade", input="y\n"))
    assert "deleted loud.txt" in yes.stderr
    assert piped.head("upper.txt") is None
    assert piped.head("loud.txt") is None
    assert piped.head("raw.txt") is not None


def test_file_delete(piped: DataLake) -> None:
    """File.delete() removes the file and records it: it no longer has a creation."""
    file = File("loud.txt", lake=piped)
    assert file.exists_locally()
    file.delete()
    assert not file.exists_remotely()
    assert not file.exists_locally()
    assert piped.lineage.creation_of("loud.txt") is None
    with pytest.raises(FileNotInLakeError):
        file.delete()
    # A new file may take the freed uid; its lineage is the new creation.
    with File("loud.txt", lake=piped).open("w") as handle:
        handle.write("again")
    recreated = piped.lineage.creation_of("loud.txt")
    assert recreated is not None
    assert function_of(recreated) == "radops.File.write"


# -- lineage export -----------------------------------------------------------------------------


def test_export_prints_every_event(piped: DataLake, cli_env: dict[str, str]) -> None:
    """NDJSON, one valid event per line, every event of the lake; --since filters by time."""
    events = _export(cli_env)
    keys = [(e["run"]["runId"], e["eventType"]) for e in events]
    assert len(keys) == len(set(keys))
    jobs = [(function_of(e), e["eventType"]) for e in events]
    assert jobs == [
        ("radops.File.write", "START"),
        ("radops.File.write", "COMPLETE"),
        (f"{MODULE}.upper", "START"),
        (f"{MODULE}.upper", "COMPLETE"),
        (f"{MODULE}.exclaim", "START"),
        (f"{MODULE}.exclaim", "COMPLETE"),
    ]
    for event in events:
        validate_event(event)

    # Another machine sees the lake's records (the COMPLETE events) in the export.
    remote = _export({**cli_env, "RADOPS_HOME": str(piped.settings.home.parent / "machine-b")})
    assert [(function_of(e), e["eventType"]) for e in remote] == [
        job for job in jobs if job[1] == "COMPLETE"
    ]

    cut = events[4]["eventTime"]  # the START of the last step
    since = _export(cli_env, "--since", cut)
    assert [(function_of(e), e["eventType"]) for e in since] == jobs[4:]
    assert _export(cli_env, "--since", "2000-01-01") == events
    assert _export(cli_env, "--since", "2999-01-01") == []


@pytest.mark.parametrize("remote", ["directory"], indirect=True)  # parsing only
def test_export_since_accepts_other_iso_forms(piped: DataLake, cli_env: dict[str, str]) -> None:
    """--since with a Z suffix or another offset means the same instant as stored times."""
    events = _export(cli_env)
    cut = datetime.fromisoformat(events[4]["eventTime"]) - timedelta(microseconds=1)
    expected = events[4:]
    zulu = cut.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert _export(cli_env, "--since", zulu) == expected
    shifted = cut.astimezone(timezone(timedelta(hours=2))).isoformat()
    assert _export(cli_env, "--since", shifted) == expected
    bad = _invoke(cli_env, "lineage", "export", "--since", "yesterday")
    assert bad.exit_code != 0
    assert "yesterday" in bad.stderr


# -- datalake add -------------------------------------------------------------------------------


def test_add_records_a_run(lake: DataLake, cli_env: dict[str, str], tmp_path: Path) -> None:
    """`datalake add FILE` is a run of radops.datalake.add whose input is the local file."""
    source = tmp_path / "measurements.csv"
    source.write_text("a,b\n1,2\n")
    result = _ok(_invoke(cli_env, "datalake", "add", str(source), "data/measurements.csv"))
    assert "added data/measurements.csv (8 bytes)" in result.stderr
    assert source.exists()

    text = _ok(_invoke(cli_env, "datalake", "lineage", "data/measurements.csv")).stdout
    assert "function radops.datalake.add" in text
    assert f"file:{source.resolve()}" in text
    [event] = json.loads(
        _ok(_invoke(cli_env, "datalake", "lineage", "data/measurements.csv", "--json")).stdout
    )["events"]
    assert function_of(event) == "radops.datalake.add"
    assert [(i["namespace"], i["name"]) for i in event["inputs"]] == [
        ("file", str(source.resolve()))
    ]
    assert event["run"]["facets"]["radops_run"]["outputs"] == ["data/measurements.csv"]
    assert event["run"]["facets"]["radops_run"]["parameters"]["move"] is False
    validate_event(event)


@pytest.fixture
def http_files(tmp_path: Path) -> Iterator[str]:
    """A local HTTP server on 127.0.0.1 serving a folder; yields its base URL."""
    folder = tmp_path / "served"
    folder.mkdir()
    (folder / "table.csv").write_text("x,y\n3,4\n")
    with serving_folder(folder) as url:
        yield url


def test_add_url_records_the_url(lake: DataLake, cli_env: dict[str, str], http_files: str) -> None:
    """`datalake add URL`: the input dataset is the URL (namespace scheme://host:port)."""
    url = f"{http_files}/table.csv"
    _ok(_invoke(cli_env, "datalake", "add", url, "table.csv"))
    with File("table.csv", lake=lake).open() as handle:
        assert handle.read() == "x,y\n3,4\n"
    [event] = json.loads(
        _ok(_invoke(cli_env, "datalake", "lineage", "table.csv", "--json")).stdout
    )["events"]
    assert function_of(event) == "radops.datalake.add"
    assert [(i["namespace"], i["name"]) for i in event["inputs"]] == [(http_files, "/table.csv")]
    assert event["run"]["facets"]["radops_run"]["parameters"] == {"source": url}
    validate_event(event)
    text = _ok(_invoke(cli_env, "datalake", "lineage", "table.csv")).stdout
    assert url in text

    refused = _invoke(cli_env, "datalake", "add", url, "table.csv")
    assert refused.exit_code == 1
    assert "already exists" in refused.stderr


def test_url_credentials_and_signatures_stay_out_of_lineage(
    lake: DataLake, cli_env: dict[str, str], http_files: str
) -> None:
    """A password or a presigned query string in an added URL is never recorded or printed."""
    host = http_files.removeprefix("http://")
    url = f"http://alice:s3cr3t-pw@{host}/table.csv?X-Amz-Signature=s3cr3t-sig"
    result = _ok(_invoke(cli_env, "datalake", "add", url, "signed.csv"))
    assert "s3cr3t" not in result.stdout + result.stderr
    events = _export(cli_env)
    assert events
    assert "s3cr3t" not in json.dumps(events)
    [event] = [e for e in events if e["eventType"] == "COMPLETE"]
    assert [(i["namespace"], i["name"]) for i in event["inputs"]] == [(http_files, "/table.csv")]
    assert event["run"]["facets"]["radops_run"]["parameters"] == {
        "source": f"http://alice@{host}/table.csv"
    }
    missing = _invoke(cli_env, "datalake", "add", url.replace("table", "nothing"), "x.csv")
    assert missing.exit_code == 1
    assert "s3cr3t" not in missing.stderr


# -- log messages -------------------------------------------------------------------------------


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
def test_each_command_logs_to_its_own_stderr(lake: DataLake, cli_env: dict[str, str]) -> None:
    """radops' log records reach the stderr of the command running now, not the first one's."""
    with File("kept.txt", lake=lake).open("w") as handle:
        handle.write("original")
    _ok(_invoke(cli_env, "datalake", "ls"))  # an earlier command in the same process
    path = lake.local.path("kept.txt")
    path.chmod(0o644)
    path.write_text("tampered")
    result = _ok(_invoke(cli_env, "datalake", "local-path", "kept.txt"))
    assert "radops: warning: local copy of kept.txt is corrupted" in result.stderr
    assert path.read_text() == "original"
