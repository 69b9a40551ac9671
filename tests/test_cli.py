"""The ``radops`` command line, run in-process with typer's CliRunner on both remotes.

Every test that takes ``cli_env`` runs against the directory remote and SeaweedFS. Data is
expected on stdout and messages on stderr, so the two are checked separately.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import radops
from radops.cli.app import app
from radops.data_lake import File

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

BOLD, ITALIC, RESET = "\x1b[1m", "\x1b[3m", "\x1b[0m"
DATA = "this is some data\n"

# What every invocation sees besides the radops settings: a fixed width, no colour unless a
# test asks for it, and loopback never sent through a proxy.
BASE_ENV: dict[str, str | None] = {
    "COLUMNS": "120",
    "FORCE_COLOR": None,
    "NO_COLOR": None,
    "TTY_COMPATIBLE": None,
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


def run(env: Mapping[str, str | None], *args: str, code: int = 0) -> Result:
    """Invoke ``radops ARGS`` and check the exit code; never an uncaught exception."""
    result = CliRunner().invoke(app, list(args), env={**BASE_ENV, **env})
    detail = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert not isinstance(result.exception, Exception), f"{result.exception!r}\n{detail}"
    assert result.exit_code == code, detail
    assert "Traceback" not in result.output
    return result


def error_line(result: Result) -> str:
    """The single ``error: ...`` line a failed command prints on stderr."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    return lines[0]


def usage_error(result: Result, command: str) -> str:
    """The message of a usage error (exit 2): after the usage line and the pointer to --help,
    as docs/troubleshooting.md shows it."""
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"Usage: radops {command} "), result.stderr
    assert lines[1] == f"Try 'radops {command} --help' for help.", result.stderr
    assert lines[-1].startswith("Error: "), result.stderr
    return lines[-1]


def machine(cli_env: dict[str, str], name: str) -> dict[str, str]:
    """The environment of another machine (its own RADOPS_HOME) on the same remote."""
    return {**cli_env, "RADOPS_HOME": str(Path(cli_env["RADOPS_HOME"]).parent / name)}


def storage(env: Mapping[str, str]) -> Path:
    """The local storage directory of the machine ``env`` describes."""
    return Path(env["RADOPS_HOME"]) / "storage"


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """A small local file to add."""
    path = tmp_path / "sample.txt"
    path.write_text(DATA)
    return path


def add(env: Mapping[str, str], tmp_path: Path, uid: str, text: str = DATA) -> None:
    """Add a file holding ``text`` as ``uid`` through the CLI."""
    source = tmp_path / f"source-{uid.replace('/', '_')}"
    source.write_text(text)
    run(env, "datalake", "add", str(source), uid)


def ls_json(env: Mapping[str, str], *args: str) -> list[dict[str, object]]:
    """``datalake ls --json`` parsed: one object per line."""
    result = run(env, "datalake", "ls", "--json", *args)
    return [json.loads(line) for line in result.stdout.splitlines()]


def columns(text: str) -> dict[str, list[str]]:
    """Aligned ``key  value [source]`` lines, keyed by their first column."""
    rows = {}
    for line in text.splitlines():
        assert line == line.rstrip(), f"trailing spaces in {line!r}"
        key, *rest = re.split(r"\s{2,}", line)
        rows[key] = rest
    return rows


# -- radops --version ---------------------------------------------------------------------------


def test_version_prints_the_version():
    """``radops --version`` prints radops' version string on stdout and exits 0."""
    result = run({}, "--version")
    assert result.stdout.strip() == radops.__version__
    assert re.match(r"\d+\.\d+", result.stdout)


def test_no_arguments_prints_help():
    """``radops`` alone shows the command groups (a usage exit, 2) instead of failing."""
    result = CliRunner().invoke(app, [], env=BASE_ENV)
    assert result.exit_code == 2
    assert "datalake" in result.output
    assert "config" in result.output


def test_missing_argument_is_a_usage_error():
    """A command missing its UID exits 2 with typer's usage message on stderr."""
    result = run({}, "datalake", "info", code=2)
    assert "Missing argument" in result.stderr
    assert result.stdout == ""


# -- datalake add -------------------------------------------------------------------------------


def test_add_copy_keeps_the_source(cli_env, sample):
    """``add FILE UID --copy`` puts the bytes in the lake and local storage, keeping FILE."""
    result = run(cli_env, "datalake", "add", str(sample), "name_in_datalake.txt", "--copy")
    assert result.stdout == ""
    assert "added name_in_datalake.txt (18 bytes)" in result.stderr
    assert sample.read_text() == DATA
    assert (storage(cli_env) / "name_in_datalake.txt").read_text() == DATA
    other = machine(cli_env, "machine-b")
    path = run(other, "datalake", "local-path", "name_in_datalake.txt").stdout.strip()
    assert Path(path).read_text() == DATA


def test_add_copies_by_default(cli_env, sample):
    """Without --copy or --move the source is copied, not moved."""
    run(cli_env, "datalake", "add", str(sample), "data.txt")
    assert sample.read_text() == DATA


def test_add_move_removes_the_source(cli_env, sample):
    """``add FILE UID --move`` removes FILE once the file is in the lake."""
    run(cli_env, "datalake", "add", str(sample), "moved.txt", "--move")
    assert not sample.exists()
    assert (storage(cli_env) / "moved.txt").read_text() == DATA
    assert [item["uid"] for item in ls_json(cli_env)] == ["moved.txt"]


def test_add_existing_uid_fails_with_one_line(cli_env, sample, tmp_path):
    """Adding a uid that exists, locally or only in the lake, is one error line and exit 1."""
    run(cli_env, "datalake", "add", str(sample), "taken.txt")
    again = run(cli_env, "datalake", "add", str(sample), "taken.txt", code=1)
    assert "'taken.txt' already exists" in error_line(again)
    assert "immutable" in again.stderr

    other = machine(cli_env, "machine-b")
    elsewhere = run(other, "datalake", "add", str(sample), "taken.txt", code=1)
    assert "'taken.txt' already exists in the data lake" in error_line(elsewhere)
    assert not (storage(other) / "taken.txt").exists()


def test_add_copy_and_move_together_is_a_usage_error(cli_env, sample):
    """--copy and --move exclude each other: exit 2, the source stays, nothing is added."""
    result = run(cli_env, "datalake", "add", str(sample), "both.txt", "--copy", "--move", code=2)
    assert "--copy and --move" in usage_error(result, "datalake add")
    assert sample.exists()
    assert ls_json(cli_env) == []


def test_add_missing_source_fails(cli_env, tmp_path):
    """Adding a file that does not exist says so, naming it, and exits 1."""
    missing = tmp_path / "missing.txt"
    result = run(cli_env, "datalake", "add", str(missing), "missing.txt", code=1)
    assert error_line(result) == f"error: {missing} does not exist"
    without_uid = run(cli_env, "datalake", "add", str(missing), code=1)
    assert error_line(without_uid) == f"error: {missing} does not exist"
    assert ls_json(cli_env) == []


def test_add_with_an_empty_uid_is_an_error(cli_env, sample):
    """``add FILE ""`` does not fall back to the file's name: an empty UID is refused."""
    result = run(cli_env, "datalake", "add", str(sample), "", code=1)
    assert "empty" in error_line(result)
    assert ls_json(cli_env) == []


def test_a_very_long_uid_is_shortened_in_the_error(cli_env, sample):
    """A 2,000-character uid is not echoed whole: its start, an ellipsis and its length."""
    uid = "a" * 2000
    result = run(cli_env, "datalake", "add", str(sample), uid, code=1)
    line = error_line(result)
    assert uid not in line
    assert f"'{'a' * 60}…' (2000 characters)" in line
    assert len(line) < 200
    assert ls_json(cli_env) == []


def test_a_directory_with_a_uid_is_a_usage_error_with_the_usage(cli_env, tmp_path):
    """``add DIR UID`` prints the usage and the problem, exit 2, as usage errors do."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("a")
    result = run(cli_env, "datalake", "add", str(tmp_path / "d"), "named.txt", code=2)
    assert "--prefix" in usage_error(result, "datalake add")
    assert ls_json(cli_env) == []


def test_add_under_a_prefix_names_the_file_after_the_source(cli_env, sample):
    """``add FILE --prefix raw/2024`` adds raw/2024/<file name>; with a UID, raw/2024/UID."""
    run(cli_env, "datalake", "add", str(sample), "--prefix", "raw/2024")
    run(cli_env, "datalake", "add", str(sample), "copy.txt", "--prefix", "raw/2024/")
    assert [item["uid"] for item in ls_json(cli_env)] == [
        "raw/2024/copy.txt",
        f"raw/2024/{sample.name}",
    ]


def test_add_refuses_a_prefix_that_escapes(cli_env, sample):
    """A prefix with '..' or a leading '/' is one error line, and nothing is added."""
    for prefix in ("../up", "/abs", "a/../../b"):
        result = run(cli_env, "datalake", "add", str(sample), "--prefix", prefix, code=1)
        assert "invalid --prefix" in error_line(result)
    assert ls_json(cli_env) == []


def test_add_a_directory_adds_its_files_and_skips_links(cli_env, tmp_path):
    """A directory adds every regular file under the prefix; symlinks are reported, not followed."""
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("a")
    (tree / "sub" / "b.txt").write_text("b")
    (tree / "link.txt").symlink_to(tree / "a.txt")
    result = run(cli_env, "datalake", "add", str(tree), "--prefix", "raw")
    assert result.stdout == "raw/a.txt\nraw/sub/b.txt\n"
    assert f"skipped {tree / 'link.txt'}: a symlink (never followed)" in result.stderr
    assert "added 2 file(s) (2 bytes)" in result.stderr
    assert (storage(cli_env) / "raw" / "sub" / "b.txt").read_text() == "b"


@pytest.mark.parametrize("prefix", ["raw/2024", ""])  # one listing of raw/2024/, or a HEAD each
def test_add_a_directory_adds_nothing_if_any_uid_is_taken(cli_env, tmp_path, prefix):
    """Adding a directory again names the uids that exist, and adds none of its files."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.txt").write_text("a")
    taken = f"{prefix}/a.txt" if prefix else "a.txt"
    run(cli_env, "datalake", "add", str(tree / "a.txt"), "--prefix", prefix)
    run(cli_env, "datalake", "add", str(tree / "a.txt"), "raw/2024a.txt")  # beside, not in it
    (tree / "new.txt").write_text("new")
    result = run(cli_env, "datalake", "add", str(tree), "--prefix", prefix, code=1)
    assert f"1 of the files already exist in the data lake ({taken}): nothing added" in (
        error_line(result)
    )
    assert [item["uid"] for item in ls_json(cli_env)] == sorted([taken, "raw/2024a.txt"])
    assert run(cli_env, "datalake", "add", str(tree), "one.txt", code=2).exit_code == 2


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over http on 127.0.0.1 by a thread: (directory, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_add_url_downloads_into_the_lake(cli_env, web):
    """``add URL UID`` downloads the URL and stores its exact bytes under UID."""
    root, base = web
    body = bytes(range(256)) * 40
    (root / "payload.bin").write_bytes(body)
    result = run(cli_env, "datalake", "add", f"{base}/payload.bin", "web/payload.bin")
    assert f"added web/payload.bin ({len(body)} bytes)" in result.stderr
    other = machine(cli_env, "machine-b")
    path = run(other, "datalake", "download", "web/payload.bin").stdout.strip()
    assert Path(path).read_bytes() == body


def test_add_url_under_a_prefix_is_named_after_the_url(cli_env, web):
    """``add URL --prefix web`` adds web/<last segment of the URL's path>."""
    root, base = web
    (root / "payload.bin").write_bytes(b"payload")
    run(cli_env, "datalake", "add", f"{base}/payload.bin?x=1", "--prefix", "web")
    assert [item["uid"] for item in ls_json(cli_env)] == ["web/payload.bin"]


def test_add_url_404_adds_nothing(cli_env, web):
    """A URL answering 404 is an error (exit 1) and leaves no file behind."""
    _, base = web
    result = run(cli_env, "datalake", "add", f"{base}/nope.txt", "nope.txt", code=1)
    assert "404" in error_line(result)
    assert ls_json(cli_env) == []
    assert list(storage(cli_env).rglob("*")) == []
    assert list((Path(cli_env["RADOPS_HOME"]) / "tmp").glob("*")) == []


def test_add_url_with_move_is_a_usage_error(cli_env, web):
    """--move (or --copy) means nothing for a URL: exit 2 and nothing is downloaded."""
    root, base = web
    (root / "file.txt").write_text(DATA)
    result = run(cli_env, "datalake", "add", f"{base}/file.txt", "file.txt", "--move", code=2)
    assert "URL" in usage_error(result, "datalake add")
    assert (root / "file.txt").exists()
    assert ls_json(cli_env) == []


# -- datalake ls --------------------------------------------------------------------------------


def test_ls_lists_every_uid(cli_env, tmp_path):
    """``ls`` prints one uid per line, in key order, without styling when not on a terminal."""
    for uid in ("b.txt", "a/one.txt", "a/two.txt"):
        add(cli_env, tmp_path, uid)
    result = run(cli_env, "datalake", "ls")
    assert sorted(result.stdout.splitlines()) == ["a/one.txt", "a/two.txt", "b.txt"]
    assert "\x1b" not in result.stdout
    assert result.stderr == ""


def test_ls_empty_lake_prints_nothing(cli_env):
    """An empty (even never used) lake lists nothing and exits 0."""
    result = run(cli_env, "datalake", "ls")
    assert result.stdout == ""


def test_ls_marks_local_files_bold_and_remote_only_files_italic(cli_env, tmp_path):
    """With colour forced, local files are bold and files only in the lake are italic."""
    other = machine(cli_env, "machine-b")
    add(cli_env, tmp_path, "mine.txt")
    add(other, tmp_path, "theirs.txt")
    lines = run({**cli_env, "FORCE_COLOR": "1"}, "datalake", "ls").stdout.splitlines()
    assert set(lines) == {f"{BOLD}mine.txt{RESET}", f"{ITALIC}theirs.txt{RESET}"}
    lines = run({**other, "FORCE_COLOR": "1"}, "datalake", "ls").stdout.splitlines()
    assert set(lines) == {f"{ITALIC}mine.txt{RESET}", f"{BOLD}theirs.txt{RESET}"}


def test_ls_no_color_wins_over_force_color(cli_env, tmp_path):
    """NO_COLOR turns the styling off even when colour is forced."""
    add(cli_env, tmp_path, "plain.txt")
    env = {**cli_env, "FORCE_COLOR": "1", "NO_COLOR": "1"}
    assert run(env, "datalake", "ls").stdout == "plain.txt\n"


def test_a_file_has_one_creation_time_everywhere(cli_env, tmp_path):
    """``ls --json``, ``info``, ``info --json`` and ``File.info`` give the same creation time,
    and ``info`` shows no other time for the file."""
    from radops.data_lake import DataLake

    add(cli_env, tmp_path, "timed.txt")
    [listed] = ls_json(cli_env)
    data = json.loads(run(cli_env, "datalake", "info", "timed.txt", "--json").stdout)
    rows = columns(run(cli_env, "datalake", "info", "timed.txt").stdout)
    lake = DataLake.from_env(
        home=cli_env["RADOPS_HOME"],
        remote=cli_env["RADOPS_REMOTE"],
        s3_endpoint_url=cli_env.get("RADOPS_S3_ENDPOINT_URL"),
    )
    try:
        created = File("timed.txt", lake=lake).info.created
    finally:
        lake.local.close()
    assert created is not None
    assert listed["created"] == data["created"] == rows["created"][0] == created.isoformat()
    assert "time" not in data["created_by"]
    shown_times = re.findall(r"\d{4}-\d\d-\d\dT[\d:.]+\+00:00", json.dumps(data))
    assert set(shown_times) == {created.isoformat()}


def test_ls_json_prints_one_object_per_line(cli_env, tmp_path):
    """``ls --json`` gives uid, size, local and created for every file, one JSON per line."""
    other = machine(cli_env, "machine-b")
    add(cli_env, tmp_path, "here.txt", "12345")
    add(other, tmp_path, "there.txt", "1234567")
    items = {item["uid"]: item for item in ls_json(cli_env)}
    assert set(items) == {"here.txt", "there.txt"}
    assert (items["here.txt"]["size"], items["here.txt"]["local"]) == (5, True)
    assert (items["there.txt"]["size"], items["there.txt"]["local"]) == (7, False)
    assert all(isinstance(item["created"], str) for item in items.values())


def test_ls_prefix_filters(cli_env, tmp_path):
    """``ls PREFIX`` lists only the uids starting with PREFIX."""
    for uid in ("raw/a.csv", "raw/b.csv", "rawer.csv", "clean/a.csv"):
        add(cli_env, tmp_path, uid)
    assert sorted(run(cli_env, "datalake", "ls", "raw/").stdout.split()) == [
        "raw/a.csv",
        "raw/b.csv",
    ]
    assert [item["uid"] for item in ls_json(cli_env, "clean")] == ["clean/a.csv"]


def test_ls_warns_about_a_local_file_not_in_the_lake(cli_env, tmp_path):
    """A file put directly in local storage is not listed, but ls warns about it on stderr."""
    add(cli_env, tmp_path, "real.txt")
    stray = storage(cli_env) / "stray.txt"
    stray.write_text("not from radops")
    result = run(cli_env, "datalake", "ls")
    assert result.stdout == "real.txt\n"
    assert result.stderr.splitlines() == [
        "warning: local file 'stray.txt' is out of sync: not in the data lake"
    ]


def test_ls_warns_about_a_cached_file_modified_locally(cli_env, tmp_path):
    """A cached file whose bytes were changed in place is reported as modified locally."""
    add(cli_env, tmp_path, "edited.txt")
    path = storage(cli_env) / "edited.txt"
    path.chmod(0o644)
    path.write_text("changed behind radops' back")
    result = run(cli_env, "datalake", "ls")
    assert result.stdout == "edited.txt\n"
    assert "local file 'edited.txt' is out of sync: modified locally" in result.stderr


# -- datalake info ------------------------------------------------------------------------------


def test_info_prints_aligned_key_value_lines(cli_env, tmp_path):
    """``info UID`` prints one ``key  value`` line each, untruncated, without trailing spaces."""
    uid = "deep/" + "x" * 150 + ".txt"  # longer than the 120-column terminal
    add(cli_env, tmp_path, uid)
    result = run(cli_env, "datalake", "info", uid)
    rows = columns(result.stdout)
    assert rows["uid"] == [uid]
    assert rows["size"] == [str(len(DATA))]
    assert re.fullmatch(r"[0-9a-f]{64}", rows["sha256"][0])
    assert rows["local"] == ["True"]
    assert rows["remote"] == ["True"]
    assert rows["local_path"] == [str(storage(cli_env) / uid)]
    assert rows["originator"] == ["tester@example.com"]
    assert rows["radops-version"] == [radops.__version__]
    starts = {len(line) - len(line.split(maxsplit=1)[1]) for line in result.stdout.splitlines()}
    assert starts == {len("radops-version  ")}, "values are not aligned after the widest key"


def test_info_of_a_remote_only_file(cli_env, tmp_path):
    """On another machine, info says the file is in the lake but not local."""
    add(cli_env, tmp_path, "far.txt")
    rows = columns(run(machine(cli_env, "machine-b"), "datalake", "info", "far.txt").stdout)
    assert rows["local"] == ["False"]
    assert rows["remote"] == ["True"]
    assert rows["local_path"] == ["-"]


def test_info_json(cli_env, tmp_path):
    """``info --json`` is one JSON document with the same facts and the metadata."""
    add(cli_env, tmp_path, "j.txt")
    data = json.loads(run(cli_env, "datalake", "info", "j.txt", "--json").stdout)
    assert data["uid"] == "j.txt"
    assert data["size"] == len(DATA)
    assert data["local"] is True
    assert data["remote"] is True
    assert data["local_path"] == str(storage(cli_env) / "j.txt")
    assert data["metadata"]["originator"] == "tester@example.com"
    assert len(data["sha256"]) == 64


def test_info_missing_uid_fails(cli_env):
    """``info`` of a uid that exists nowhere exits 1 and says so."""
    result = run(cli_env, "datalake", "info", "missing", code=1)
    assert "'missing' does not exist locally or in the data lake" in error_line(result)
    assert result.stdout == ""


# -- datalake download / local-path -------------------------------------------------------------


def test_download_prints_the_local_path(cli_env, tmp_path):
    """``download UID`` on another machine fetches the file and prints its local path."""
    add(cli_env, tmp_path, "get.txt")
    other = machine(cli_env, "machine-b")
    result = run(other, "datalake", "download", "get.txt")
    path = Path(result.stdout.strip())
    assert path == storage(other) / "get.txt"
    assert path.read_text() == DATA
    assert json.loads(run(other, "datalake", "info", "get.txt", "--json").stdout)["local"]


def test_download_missing_uid_fails(cli_env):
    """Downloading a uid the lake does not have exits 1 and says so."""
    result = run(cli_env, "datalake", "download", "ghost.txt", code=1)
    assert "'ghost.txt' does not exist" in error_line(result)


def test_local_path_prints_the_cached_path(cli_env, tmp_path):
    """``local-path UID`` prints the local copy's path, downloading it first if needed."""
    add(cli_env, tmp_path, "p.txt")
    here = run(cli_env, "datalake", "local-path", "p.txt").stdout.strip()
    assert Path(here) == storage(cli_env) / "p.txt"
    other = machine(cli_env, "machine-b")
    there = Path(run(other, "datalake", "local-path", "p.txt").stdout.strip())
    assert there == storage(other) / "p.txt"
    assert there.read_text() == DATA


def test_local_path_of_an_untracked_file_logs_a_warning(cli_env):
    """A local-only file is served, and radops' log warning reaches stderr, each time."""
    stray = storage(cli_env) / "stray.txt"
    stray.parent.mkdir(parents=True)
    stray.write_text("mine only")
    for _ in range(2):  # the log handler follows each invocation's stderr
        result = run(cli_env, "datalake", "local-path", "stray.txt")
        assert result.stdout.strip() == str(stray)
        assert "radops: warning: stray.txt is in local storage but not in the data lake" in (
            result.stderr
        )


# -- datalake rm-local ----------------------------------------------------------------------------


def test_rm_local_frees_the_copy_and_the_lake_keeps_it(cli_env, tmp_path):
    """``rm-local UID`` deletes the local copy; ls still lists it, now italic."""
    add(cli_env, tmp_path, "big.bin")
    result = run(cli_env, "datalake", "rm-local", "big.bin")
    assert "removed big.bin from local storage" in result.stderr
    assert not (storage(cli_env) / "big.bin").exists()
    lines = run({**cli_env, "FORCE_COLOR": "1"}, "datalake", "ls").stdout.splitlines()
    assert lines == [f"{ITALIC}big.bin{RESET}"]
    path = Path(run(cli_env, "datalake", "local-path", "big.bin").stdout.strip())
    assert path.read_text() == DATA


def test_rm_local_all_frees_every_lake_file_and_keeps_untracked_ones(cli_env, tmp_path):
    """``rm-local --all`` frees every file the lake has, but never a local-only one."""
    add(cli_env, tmp_path, "one.txt")
    add(cli_env, tmp_path, "sub/two.txt")
    stray = storage(cli_env) / "stray.txt"
    stray.write_text("only here")
    result = run(cli_env, "datalake", "rm-local", "--all")
    assert "freed 2 file(s) from local storage" in result.stderr
    assert "kept 'stray.txt'" in result.stderr
    assert [p.name for p in storage(cli_env).rglob("*")] == ["stray.txt"]
    assert {item["uid"]: item["local"] for item in ls_json(cli_env)} == {
        "one.txt": False,
        "sub/two.txt": False,
    }


@pytest.mark.parametrize("args", [[], ["one.txt", "--all"]], ids=["neither", "both"])
def test_rm_local_needs_exactly_one_of_uid_and_all(cli_env, tmp_path, args):
    """``rm-local`` with neither UID nor --all, or with both, is a usage error (exit 2)."""
    add(cli_env, tmp_path, "one.txt")
    result = run(cli_env, "datalake", "rm-local", *args, code=2)
    assert "UID or --all" in usage_error(result, "datalake rm-local")
    assert (storage(cli_env) / "one.txt").exists()


def test_rm_local_refuses_a_file_only_local(cli_env):
    """A file that is not in the lake is not removed: that would lose it."""
    stray = storage(cli_env) / "stray.txt"
    stray.parent.mkdir(parents=True)
    stray.write_text("only here")
    result = run(cli_env, "datalake", "rm-local", "stray.txt", code=1)
    assert "would lose it" in error_line(result)
    assert stray.exists()


def test_rm_local_of_a_file_not_local_fails(cli_env, tmp_path):
    """Removing a local copy that is not there exits 1."""
    add(machine(cli_env, "machine-b"), tmp_path, "elsewhere.txt")
    result = run(cli_env, "datalake", "rm-local", "elsewhere.txt", code=1)
    assert "'elsewhere.txt' is not in local storage" in error_line(result)


# -- invalid uids -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "uid", "problem"),
    [
        ("add", "a//b", "empty segment"),
        ("info", "/etc/passwd", "starts with '/'"),
        ("download", "a/../b", "'..' segment"),
        ("local-path", "x#1", "contains '#'"),
        ("rm-local", ".radops/records", "reserved"),
    ],
)
def test_invalid_uid_is_rejected_with_the_reason(cli_env, sample, command, uid, problem):
    """Every command that takes a uid rejects a malformed one: exit 1, naming the problem."""
    args = [str(sample), uid] if command == "add" else [uid]
    result = run(cli_env, "datalake", command, *args, code=1)
    line = error_line(result)
    assert f"invalid uid {uid!r}" in line
    assert problem in line


# -- config ---------------------------------------------------------------------------------------


def test_config_show_lists_settings_and_their_sources(cli_env):
    """``config show`` prints each setting, its value and where the value comes from."""
    rows = columns(run(cli_env, "config", "show").stdout)
    assert list(rows) == [
        "home",
        "remote",
        "s3_endpoint_url",
        "email",
        "cache_max_bytes",
        "log_level",
        "namespace",
        "marquez_url",
        "lineage_timeout",
        "download_max_bytes",
        "download_timeout",
        "stale_after",
        "transfer_threads",
        "marquez_api_key",
        "openlineage",
    ]
    assert rows["namespace"] == ["radops", "default"]
    assert rows["marquez_api_key"] == ["-", "not set"]
    assert rows["openlineage"] == ["-", "not configured"]
    assert rows["home"] == [str(Path(cli_env["RADOPS_HOME"]).resolve()), "env RADOPS_HOME"]
    assert rows["remote"][1] == "env RADOPS_REMOTE"
    assert rows["email"] == ["tester@example.com", "env RADOPS_EMAIL"]
    assert rows["cache_max_bytes"] == ["-", "default"]
    assert rows["log_level"] == ["INFO", "default"]
    if "RADOPS_S3_ENDPOINT_URL" in cli_env:
        assert rows["remote"][0] == cli_env["RADOPS_REMOTE"]
        assert rows["s3_endpoint_url"] == [
            cli_env["RADOPS_S3_ENDPOINT_URL"],
            "env RADOPS_S3_ENDPOINT_URL",
        ]
    else:
        assert rows["s3_endpoint_url"] == ["-", "default"]


def test_config_show_does_not_truncate_long_values(cli_env, tmp_path):
    """A value wider than the terminal is printed whole."""
    remote = tmp_path / ("long-" * 40)
    env = {**cli_env, "RADOPS_REMOTE": str(remote)}
    rows = columns(run(env, "config", "show").stdout)
    assert rows["remote"] == [str(remote), "env RADOPS_REMOTE"]
    data = json.loads(run(env, "config", "show", "--json").stdout)
    assert data["remote"]["value"] == str(remote)


def test_config_show_json(cli_env):
    """``config show --json`` maps each setting to its value and source."""
    data = json.loads(run(cli_env, "config", "show", "--json").stdout)
    assert data["email"] == {"value": "tester@example.com", "source": "env RADOPS_EMAIL"}
    assert data["remote"]["source"] == "env RADOPS_REMOTE"
    assert data["cache_max_bytes"] == {"value": None, "source": "default"}


def test_config_set_writes_config_toml(cli_env, tmp_path):
    """``config set remote DIR`` writes config.toml; show then reports it, until env overrides."""
    env: dict[str, str | None] = {**cli_env, "RADOPS_REMOTE": None}
    target = tmp_path / "x"
    result = run(env, "config", "set", "remote", str(target))
    config = Path(cli_env["RADOPS_HOME"]) / "config.toml"
    assert f"remote saved in {config}" in result.stderr
    assert tomllib.loads(config.read_text()) == {"remote": str(target)}
    assert config.stat().st_mode & 0o777 == 0o600
    rows = columns(run(env, "config", "show").stdout)
    assert rows["remote"] == [str(target), f"config {config}"]
    rows = columns(run(cli_env, "config", "show").stdout)
    assert rows["remote"][1] == "env RADOPS_REMOTE"


def test_config_set_help_names_every_settable_setting():
    """``config set --help`` lists every setting config.toml may hold, stale_after included."""
    from radops.settings import SETTING_NAMES

    text = run({}, "config", "set", "--help").stdout
    flat = " ".join(text.split())
    assert [name for name in SETTING_NAMES if name != "home" and name not in flat] == []


@pytest.mark.parametrize("remote", ["directory"], indirect=True)  # no store needed
def test_config_set_empty_value_says_it_removed_the_setting(cli_env):
    """Removing a setting says "removed", not "saved"; removing an absent one says so."""
    config = Path(cli_env["RADOPS_HOME"]) / "config.toml"
    run(cli_env, "config", "set", "stale_after", "30")
    result = run(cli_env, "config", "set", "stale_after", "")
    assert result.stderr == f"stale_after removed from {config}\n"
    again = run(cli_env, "config", "set", "stale_after", "")
    assert again.stderr == f"stale_after was not set in {config}: nothing to remove\n"
    assert tomllib.loads(config.read_text()) == {}


@pytest.mark.parametrize("remote", ["directory"], indirect=True)  # no store needed
def test_a_bad_value_in_config_toml_is_reported_and_can_be_fixed_with_config_set(cli_env, tmp_path):
    """``remote = 5`` stops commands with the file, key and expected type; ``config set``
    still runs, so it can replace the value."""
    env = {name: value for name, value in cli_env.items() if name != "RADOPS_REMOTE"}
    config = Path(env["RADOPS_HOME"]) / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("remote = 5\n")
    shown = run(env, "config", "show", code=1)
    assert error_line(shown).startswith(f"error: invalid remote from {config}: expected a string")
    run(env, "config", "set", "remote", str(tmp_path / "lake"))
    assert columns(run(env, "config", "show").stdout)["remote"][0] == str(tmp_path / "lake")


@pytest.mark.parametrize("remote", ["directory"], indirect=True)  # no store needed
def test_config_set_on_a_malformed_config_toml_says_how_to_fix_it(cli_env):
    """A config.toml that is not TOML cannot be rewritten safely: the error says what to do."""
    config = Path(cli_env["RADOPS_HOME"]) / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("remote = \n")
    result = run(cli_env, "config", "set", "email", "me@example.com", code=1)
    line = error_line(result)
    assert f"{config} is not valid TOML" in line
    assert "fix it in an editor" in line
    assert f"rm {config}" in line
    assert config.read_text() == "remote = \n"


def test_config_set_empty_value_removes_the_setting(cli_env):
    """``config set KEY ''`` removes KEY from config.toml, back to its default."""
    run(cli_env, "config", "set", "log_level", "debug")
    assert columns(run(cli_env, "config", "show").stdout)["log_level"][0] == "DEBUG"
    run(cli_env, "config", "set", "log_level", "")
    assert columns(run(cli_env, "config", "show").stdout)["log_level"] == ["INFO", "default"]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("bogus", "1", "cannot set 'bogus'"), ("cache_max_bytes", "lots", "invalid cache_max_bytes")],
)
def test_config_set_rejects_unknown_keys_and_bad_values(cli_env, key, value, message):
    """An unknown key or an invalid value exits 1 and writes nothing."""
    result = run(cli_env, "config", "set", key, value, code=1)
    assert message in error_line(result)
    assert not (Path(cli_env["RADOPS_HOME"]) / "config.toml").exists()


@pytest.mark.parametrize("command", [["datalake", "ls"], ["config", "show"]])
def test_bad_environment_value_fails_naming_the_variable(cli_env, command):
    """A malformed RADOPS_CACHE_MAX_BYTES stops every command with exit 1, naming it."""
    result = run({**cli_env, "RADOPS_CACHE_MAX_BYTES": "lots"}, *command, code=1)
    line = error_line(result)
    assert "RADOPS_CACHE_MAX_BYTES" in line
    assert "'lots'" in line


def test_help_works_despite_a_bad_environment_value(cli_env):
    """--help needs no settings, so a malformed RADOPS_* value does not hide it."""
    result = run({**cli_env, "RADOPS_CACHE_MAX_BYTES": "lots"}, "datalake", "ls", "--help")
    assert "Only uids starting with this prefix" in result.stdout


# -- S3 errors ------------------------------------------------------------------------------------


@pytest.fixture
def missing_bucket_env(seaweed, tmp_path) -> dict[str, str]:
    """A user configured for a bucket that does not exist on the S3 server."""
    return {
        "RADOPS_HOME": str(tmp_path / "home"),
        "RADOPS_REMOTE": "s3://no-such-bucket/lake",
        "RADOPS_S3_ENDPOINT_URL": seaweed.endpoint,
        "RADOPS_EMAIL": "tester@example.com",
    }


@pytest.mark.parametrize("command", ["ls", "add", "info", "download"])
def test_missing_bucket_is_one_clear_error(missing_bucket_env, sample, command):
    """Any command on a bucket that does not exist says so in one line, exit 1."""
    args = {
        "ls": ["ls"],
        "add": ["add", str(sample), "x.txt"],
        "info": ["info", "x.txt"],
        "download": ["download", "x.txt"],
    }[command]
    result = run(missing_bucket_env, "datalake", *args, code=1)
    assert "the bucket 'no-such-bucket' does not exist" in error_line(result)
    assert sample.exists()


def test_missing_credentials_are_reported_as_such(tmp_path):
    """No AWS credentials anywhere: the error says so and where boto3 looks, at once, instead
    of calling the store unreachable after retries."""
    env = {
        "RADOPS_HOME": str(tmp_path / "home"),
        "RADOPS_REMOTE": "s3://lake/x",
        "RADOPS_S3_ENDPOINT_URL": "http://127.0.0.1:9",  # never contacted: signing fails first
        "RADOPS_EMAIL": "tester@example.com",
        "AWS_ACCESS_KEY_ID": None,
        "AWS_SECRET_ACCESS_KEY": None,
    }
    started = time.monotonic()
    result = run(env, "datalake", "ls", code=1)
    assert time.monotonic() - started < 10
    line = error_line(result)
    assert "no AWS credentials were found" in line
    for where in ("AWS_ACCESS_KEY_ID", "~/.aws/credentials", "~/.aws/config", "role"):
        assert where in line, where
    assert "unreachable" not in line
    assert "attempts" not in line


# -- the installed console script -----------------------------------------------------------------


def test_console_script_runs():
    """The ``radops`` console script installed next to this Python shows its help."""
    script = shutil.which("radops", path=str(Path(sys.executable).parent))
    assert script is not None
    result = subprocess.run(
        [script, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert result.returncode == 0, result.stderr
    assert "datalake" in result.stdout
    assert "config" in result.stdout
    assert "--version" in result.stdout


def test_importing_the_cli_loads_neither_boto3_nor_openlineage():
    """``import radops.cli.app`` stays light: boto3, botocore and openlineage load on use."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import radops.cli.app"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "radops.cli.app" in imported
    heavy = {
        name for name in imported if name.split(".")[0] in {"boto3", "botocore", "openlineage"}
    }
    assert heavy == set()
