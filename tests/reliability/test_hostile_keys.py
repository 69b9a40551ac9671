"""Hostile keys and writers: what anyone who can write to the lake, or a neighbour on the same
host, can put in radops' way, on SeaweedFS and on the directory remote.

- **keys** radops would never make, planted beside radops' own files with boto3 or plain file
  writes: an OSC title sequence with BEL and a screen clear, a C1 CSI, DEL, a newline, a
  carriage return, a tab, ``#``, a bidi override (a valid uid, but not printable), and invalid
  UTF-8 (directory only: S3 keys are UTF-8; SeaweedFS also folds ``//`` and refuses ``..``);
- **metadata and lineage** with the same characters in their values (an e-mail, a job name,
  parameters, an output name), and a lineage consumer whose refusal says them;
- **FIFOs** where radops would open a file: ``../../fifo``-style uids that leave local storage
  or the lake, and a FIFO in place of a cached file, of a lake object or of its metadata;
- **a writer in another PID namespace** (``unshare --user --map-root-user --pid --fork``),
  alive between its upload and its record, and one that died there.

Each command must end with exit code 0, 1 or 2 and no traceback, write no raw control byte on
stdout or stderr (a terminal acts on them), list the bad keys escaped and go on with the rest
of the lake; nothing may block on a FIFO; the live writer's upload is never removed.

The fault tests count (``tests/reliability/tally.py``): each command run and each property
checked afterwards is a trial, which fails or not; a planted key or a file of radops missing
afterwards is data lost, a creation record missing an event lost. They report the figures for
docs/reliability.md, then assert that they are 0.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
from typer.testing import CliRunner, Result

from radops import writers
from radops.cli.app import app
from radops.data_lake import File
from radops.errors import FileExistsInLakeError, FileNotInLakeError, InvalidUidError
from radops.escape import shown
from radops.lake import DataLake
from radops.lineage.events import Creation, DatasetRef, uuid7
from radops.objects import RUN_KEY, CreationState
from radops.repair import repair
from radops.uids import uid_problem
from tests.capabilities import need
from tests.conftest import MakeLake, process_env
from tests.local_http import serving
from tests.reliability.tally import Tally

ROOT = Path(__file__).resolve().parents[2]

# Bytes that must never reach a terminal raw: ESC, BEL, DEL, C1 CSI and a bidi override (as
# UTF-8), and a carriage return.
RAW = {
    "ESC": b"\x1b",
    "BEL": b"\x07",
    "DEL": b"\x7f",
    "CSI": "\x9b".encode(),
    "RLO": "\u202e".encode(),
    "CR": b"\r",
}
OSC_TITLE = "\x1b]0;pwned\x07\x1b[2J"  # sets the window title, then clears the screen
BIDI = "bidi\u202etxt.exe"  # a valid uid that reads "bidiexe.txt" on a terminal
KEYS = [
    f"evil{OSC_TITLE}.txt",
    "pfx/a#b",
    "c1\x9b31m.txt",
    "del\x7f.txt",
    "two\nlines.txt",
    "over\rwritten.txt",
    "tab\tx.txt",
    BIDI,
]
DIRECTORY_NAMES = [b"bad\xffname.txt"]  # not UTF-8: a file name S3 cannot hold


def _env(env: Mapping[str, str]) -> dict[str, str | None]:
    return {
        "COLUMNS": "200",
        "FORCE_COLOR": None,
        "NO_COLOR": None,
        "TTY_COMPATIBLE": None,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        **env,
    }


def _problems(result: Result, code: int) -> list[str]:
    """What is wrong with a run that should exit ``code``: an uncaught exception, another exit
    code, a traceback, a raw control byte on stdout or stderr."""
    found = []
    if isinstance(result.exception, Exception) and not isinstance(result.exception, SystemExit):
        found.append(f"raised {result.exception!r}")
    if result.exit_code != code:
        found.append(f"exit {result.exit_code}, not {code}")
    for name, stream in (("stdout", result.stdout_bytes), ("stderr", result.stderr_bytes)):
        if b"Traceback" in stream:
            found.append(f"a traceback on {name}")
        found += [f"raw {raw} on {name}" for raw, byte in RAW.items() if byte in stream]
    if found:
        found.append(f"stdout {result.stdout_bytes[:300]!r}, stderr {result.stderr_bytes[:300]!r}")
    return found


def invoke(env: Mapping[str, str], *args: str, code: int = 0) -> Result:
    """``radops ARGS``: exit ``code``, no traceback, no raw control byte on stdout or stderr."""
    result = CliRunner().invoke(app, list(args), env=_env(env))
    problems = _problems(result, code)
    assert not problems, f"radops {args!r}: " + "; ".join(problems)
    return result


def remote_kind(lake: DataLake) -> str:
    return "s3" if lake.settings.remote.startswith("s3://") else "directory"


class Checks:
    """The trials of one fault test, counted: each command it runs and each property it then
    checks fails or passes, and a planted key or a file radops made that is gone afterwards is
    lost data."""

    def __init__(self) -> None:
        self.tally = Tally()
        self.commands = 0

    def run(self, env: Mapping[str, str], *args: str, code: int = 0) -> Result:
        """``radops ARGS`` as a trial: exit ``code``, no traceback, no raw control byte."""
        self.commands += 1
        trial = self.tally.trial("radops " + " ".join(shown(arg) for arg in args))
        result = CliRunner().invoke(app, list(args), env=_env(env))
        for problem in _problems(result, code):
            trial.fail(problem)
        return result

    def expect(self, what: str, holds: bool) -> None:
        """A property of what the commands did, as a trial."""
        trial = self.tally.trial(what)
        if not holds:
            trial.fail("it does not hold")

    def lake_kept(self, lake: DataLake, keys: list[str], files: Mapping[str, str]) -> None:
        """One last trial: every planted key is still in the lake, and every file radops
        made (uid: text) still reads back whole, with its creation record."""
        trial = self.tally.trial("the lake afterwards")
        listed = {meta.key for meta in lake.files()}
        for key in keys:
            if key not in listed:
                trial.lose_data(shown(key), "the planted key is gone")
        for uid, text in files.items():
            try:
                with File(uid, lake=lake).open("r") as handle:
                    if handle.read() != text:
                        trial.lose_data(uid, "it reads back different bytes")
            except FileNotInLakeError:
                trial.lose_data(uid, "it is gone")
            if lake.lineage.creation_of(uid) is None:
                trial.lose_event(uid, "its creation record is gone")

    def report(self, report: Any, fault: str, lake: DataLake, notes: str) -> None:
        """Report the figures, then assert them: 0 failures, nothing lost."""
        report(fault=fault, remote=remote_kind(lake), **self.tally.figures(), notes=notes)
        assert self.tally.failures == 0, self.tally.problems()


def _s3(lake: DataLake, request: pytest.FixtureRequest) -> tuple[Any, str, str]:
    """(a plain boto3 client, bucket, key prefix) of an S3 lake."""
    bucket, _, prefix = lake.settings.remote.removeprefix("s3://").partition("/")
    return request.getfixturevalue("seaweed").client(), bucket, f"{prefix}/"


def plant(lake: DataLake, request: pytest.FixtureRequest) -> list[str]:
    """Put every hostile key of this remote in the lake, without radops; return the keys."""
    if lake.settings.remote.startswith("s3://"):
        client, bucket, prefix = _s3(lake, request)
        for key in KEYS:
            client.put_object(Bucket=bucket, Key=prefix + key, Body=b"planted")
        return list(KEYS)
    root = Path(lake.settings.remote)
    keys = list(KEYS)
    for key in KEYS:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"planted")
    for name in DIRECTORY_NAMES:
        with open(os.path.join(os.fsencode(root), name), "wb") as handle:
            handle.write(b"planted")
        keys.append(os.fsdecode(name))
    return keys


def write(lake: DataLake, uid: str, text: str = "sound") -> None:
    with File(uid, lake=lake).open("w") as handle:
        handle.write(text)


def _dead_writer_token() -> str:
    """The token of a process of this machine (and PID namespace) that has ended."""
    child = subprocess.run(
        [sys.executable, "-c", "from radops import writers; print(writers.current())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return child.stdout.strip()


def _upload_unrecorded(lake: DataLake, uid: str, writer: str) -> None:
    """Upload ``uid`` as a creation of ``writer`` would, without recording it."""
    data = b"half made"
    tmp = lake.local.temp_path(uid)
    tmp.write_bytes(data)
    lake.store.put_new(
        tmp,
        uid,
        sha256=hashlib.sha256(data).hexdigest(),
        metadata={RUN_KEY: str(uuid7()), writers.WRITER_KEY: writer},
    )
    tmp.unlink()


# -- keys ---------------------------------------------------------------------------------------


def test_ls_lists_every_key_escaped_and_names_the_invalid_ones(
    lake: DataLake, cli_env: dict[str, str], request: pytest.FixtureRequest, report: Any
) -> None:
    """`datalake ls` lists radops' files and every planted key, each on one line, escaped;
    the keys that are not uids are named on stderr, and marked in --json."""
    files = {"good.txt": "sound", "zz/good.txt": "sound too"}
    for uid, text in files.items():
        write(lake, uid, text)
    keys = plant(lake, request)
    invalid = [key for key in keys if uid_problem(key)]
    checks = Checks()

    plain = checks.run(cli_env, "datalake", "ls")
    checks.expect(
        "ls lists each key once, escaped, one per line",
        sorted(plain.stdout.splitlines()) == sorted([*map(shown, keys), *files]),
    )
    checks.expect("a valid uid that is not printable is quoted", shown(BIDI) in plain.stdout)
    for key in invalid:
        checks.expect(
            f"ls names {shown(key)} as no uid", f"{shown(key)} is not a valid uid" in plain.stderr
        )
    as_json = checks.run(cli_env, "datalake", "ls", "--json")
    entries = [json.loads(line) for line in as_json.stdout.splitlines()]
    checks.expect("ls --json lists every key", {each["uid"] for each in entries} == {*keys, *files})
    checks.expect(
        "ls --json marks the keys that are not uids",
        {each["uid"] for each in entries if "invalid" in each} == set(invalid),
    )
    checks.lake_kept(lake, keys, files)
    checks.report(
        report,
        "hostile keys: datalake ls",
        lake,
        f"{len(keys)} keys planted ({len(invalid)} not uids) beside {len(files)} files; "
        f"{checks.commands} commands",
    )


def test_verify_all_skips_the_invalid_keys_and_verifies_the_rest(
    lake: DataLake, cli_env: dict[str, str], request: pytest.FixtureRequest, report: Any
) -> None:
    """`datalake verify --all` names each key that is not a uid as skipped, and hashes every
    other file, those listed after the bad keys included; exit 0 (nothing is corrupted)."""
    files = {"good.txt": "sound", "zz/good.txt": "sound too"}
    for uid, text in files.items():
        write(lake, uid, text)
    keys = plant(lake, request)
    invalid = [key for key in keys if uid_problem(key)]
    checks = Checks()

    result = checks.run(cli_env, "datalake", "verify", "--all")
    lines = result.stdout.splitlines()
    for uid in files:
        checks.expect(f"{uid} verified", f"{uid}  lake ok  local ok" in lines)
    checks.expect(
        "the bidi key verified (planted: no sha256)",
        f"{shown(BIDI)}  lake unverifiable  local absent" in lines,
    )
    for key in invalid:
        checks.expect(
            f"{shown(key)} skipped",
            any(line.startswith(f"{shown(key)}  skipped: not a valid uid (") for line in lines),
        )
    checks.expect("one line per key", len(lines) == len(keys) + len(files))
    checks.expect(
        "the summary counts the skipped keys",
        f"{len(invalid)} key(s) that are not valid uids skipped" in result.stderr,
    )
    as_json = checks.run(cli_env, "datalake", "verify", "--all", "--json")
    entries = [json.loads(line) for line in as_json.stdout.splitlines()]
    checks.expect(
        "verify --json marks the skipped keys",
        {each["uid"] for each in entries if "skipped" in each} == set(invalid),
    )
    checks.expect(
        "verify --json verifies the rest",
        {each["uid"]: each["remote"] for each in entries if "remote" in each}
        == {**dict.fromkeys(files, "ok"), BIDI: "unverifiable"},
    )
    checks.lake_kept(lake, keys, files)
    checks.report(
        report,
        "hostile keys: datalake verify --all",
        lake,
        f"{len(keys)} keys planted ({len(invalid)} not uids, skipped) beside {len(files)} "
        f"files, verified; {checks.commands} commands",
    )


def test_repair_skips_the_invalid_keys_removes_what_it_must_and_keeps_them(
    lake: DataLake, cli_env: dict[str, str], request: pytest.FixtureRequest, report: Any
) -> None:
    """`datalake repair` lists the keys that are not uids as skipped, still removes an
    abandoned object of a dead writer, and leaves every planted key in the lake."""
    files = {"good.txt": "sound"}
    write(lake, "good.txt", "sound")
    keys = plant(lake, request)
    invalid = [key for key in keys if uid_problem(key)]
    _upload_unrecorded(lake, "zz/abandoned.txt", _dead_writer_token())
    checks = Checks()

    dry = json.loads(checks.run(cli_env, "datalake", "repair", "--dry-run", "--json").stdout)
    checks.expect(
        "--dry-run --json lists the keys that are not uids",
        sorted(dry["invalid"]) == sorted(invalid),
    )
    checks.expect("--dry-run finds the abandoned object", dry["abandoned"] == ["zz/abandoned.txt"])
    result = checks.run(cli_env, "datalake", "repair")
    lines = result.stdout.splitlines()
    checks.expect(
        "repair removes the abandoned object",
        "removed zz/abandoned.txt: its creation was never recorded" in lines
        and lake.head("zz/abandoned.txt") is None,
    )
    for key in invalid:
        checks.expect(
            f"{shown(key)} skipped",
            any(line.startswith(f"skipped {shown(key)}: not a valid uid (") for line in lines),
        )
    checks.expect(
        "the summary counts them", f"{len(invalid)} not valid uid(s) skipped" in result.stderr
    )
    checks.run(cli_env, "datalake", "repair", "--json")
    checks.expect(
        "the lake holds the planted keys and radops' file, nothing else",
        sorted(meta.key for meta in lake.files()) == sorted([*keys, *files]),
    )
    checks.lake_kept(lake, keys, files)
    checks.report(
        report,
        "hostile keys: datalake repair",
        lake,
        f"{len(keys)} keys planted ({len(invalid)} not uids, skipped and kept); 1 abandoned "
        f"object of a dead writer removed; {checks.commands} commands",
    )


def test_local_commands_go_on_past_invalid_names(
    lake: DataLake, cli_env: dict[str, str], request: pytest.FixtureRequest, report: Any
) -> None:
    """`rm-local --all` frees radops' files and keeps a hostile name put in local storage by
    hand; `ls` reports it; single-uid commands refuse the bad keys with one escaped line."""
    write(lake, "good.txt", "sound")
    keys = plant(lake, request)
    hand_made = lake.local.root / f"evil{OSC_TITLE}.txt"
    hand_made.write_bytes(b"by hand")
    checks = Checks()

    listed = checks.run(cli_env, "datalake", "ls")
    checks.expect(
        "ls names the hand-made local name",
        f"local file {hand_made.name!r} is out of sync: not a valid uid" in listed.stderr,
    )
    freed = checks.run(cli_env, "datalake", "rm-local", "--all")
    checks.expect("rm-local --all frees radops' file", "freed 1 file(s)" in freed.stderr)
    checks.expect(
        "rm-local --all keeps the hand-made name",
        "it is not a valid uid" in freed.stderr and hand_made.exists(),
    )
    for key in [key for key in keys if uid_problem(key)]:
        for command in (["info"], ["verify"], ["download"], ["rm", "-y"], ["lineage"]):
            refused = checks.run(cli_env, "datalake", *command, key, code=1)
            checks.expect(
                f"{command[0]} {shown(key)}: one line, invalid uid",
                refused.stderr.startswith("error: invalid uid ")
                and len(refused.stderr.splitlines()) == 1,
            )
    checks.lake_kept(lake, keys, {"good.txt": "sound"})
    checks.report(
        report,
        "hostile keys: rm-local --all, and single-uid commands on them",
        lake,
        f"{len(keys)} keys planted, 1 hand-made local name; {checks.commands} commands",
    )


# -- metadata and lineage -------------------------------------------------------------------------

HOSTILE_JOB = f"job{OSC_TITLE}\u202e"
HOSTILE_EMAIL = f"mallory{OSC_TITLE}@example.com"
HOSTILE_PARAMETERS = {f"p{OSC_TITLE}": f"v{OSC_TITLE}", "bidi": "\u202eabc", "c1": "\x9b2J"}


def _hostile_creation(lake: DataLake, uid: str, inputs: list[str]) -> None:
    """Create ``uid`` as a hostile writer with radops would: metadata, job name, e-mail,
    parameters and an extra output that hold control characters, recorded in the lake."""
    run_id = str(uuid7())
    creation = Creation(
        run_id=run_id,
        job_namespace=lake.settings.namespace,
        job_name=HOSTILE_JOB,
        email=HOSTILE_EMAIL,
        radops_version=f"9{OSC_TITLE}",
        parameters=HOSTILE_PARAMETERS,
        inputs=[lake.dataset_ref(each) for each in inputs],
    )
    data = b"made by mallory"
    tmp = lake.local.temp_path(uid)
    tmp.write_bytes(data)
    sha256 = hashlib.sha256(data).hexdigest()
    lake.lineage.emit(creation, "START")
    lake.commit(
        uid,
        tmp,
        sha256,
        metadata={RUN_KEY: run_id, "originator": HOSTILE_EMAIL, "note": f"a\nb{OSC_TITLE}"},
    )
    namespace, name = lake.store.dataset("ghost")
    outputs = [
        lake.dataset_ref(uid, sha256=sha256, size=len(data)),
        DatasetRef(namespace, name + "#x", f"ghost{OSC_TITLE}#x"),  # no file radops can make
    ]
    lake.lineage.emit(attrs.evolve(creation, outputs=outputs), "COMPLETE")


def test_metadata_and_lineage_from_the_lake_are_escaped_in_every_command(
    lake: DataLake, cli_env: dict[str, str], report: Any
) -> None:
    """info, lineage (boxes, --depth, --downstream, mermaid, dot, html, --json), lineage export
    and rm print the hostile values escaped; rm skips the output that is not a uid."""
    write(lake, "good.txt", "sound")
    _hostile_creation(lake, "made.txt", ["good.txt"])
    escaped = "\\u001b]0;pwned\\u0007\\u001b[2J"
    checks = Checks()

    info = checks.run(cli_env, "datalake", "info", "made.txt").stdout
    checks.expect("info: the originator", f"mallory{escaped}@example.com" in info)
    checks.expect("info: a metadata value, quoted on one line", f'"a\\nb{escaped}"' in info)
    checks.expect("info: the job", f"job{escaped}\\u202e (run " in info)
    info_json = json.loads(checks.run(cli_env, "datalake", "info", "made.txt", "--json").stdout)
    checks.expect("info --json keeps the data", info_json["created_by"]["job"] == HOSTILE_JOB)

    boxes = checks.run(cli_env, "datalake", "lineage", "made.txt", "--depth", "2").stdout
    checks.expect("lineage: the job", f"function job{escaped}\\u202e" in boxes)
    checks.expect("lineage: the originator", f"originator mallory{escaped}@example.com" in boxes)
    checks.expect("lineage: a parameter", f'p{escaped} = "v{escaped}"' in boxes)
    checks.expect(
        "lineage: C1 and bidi parameters",
        'c1 = "\\u009b2J"' in boxes and 'bidi = "\\u202eabc"' in boxes,
    )
    checks.expect("lineage: the radops version", f"radops version: 9{escaped}" in boxes)
    downstream = checks.run(cli_env, "datalake", "lineage", "good.txt", "--downstream").stdout
    checks.expect("lineage --downstream", "  made.txt" in downstream.splitlines())
    for picture in ("mermaid", "dot", "html"):
        drawn = checks.run(cli_env, "datalake", "lineage", "made.txt", "--format", picture).stdout
        checks.expect(f"lineage --format {picture}", "u001b" in drawn and "pwned" in drawn)
    checks.run(cli_env, "datalake", "lineage", "made.txt", "--json")
    exported = checks.run(cli_env, "lineage", "export").stdout.splitlines()
    checks.expect(
        "lineage export keeps the data",
        any(json.loads(line)["job"]["name"] == HOSTILE_JOB for line in exported),
    )
    removed = checks.run(cli_env, "datalake", "rm", "good.txt", "-y").stderr
    checks.expect("rm deletes", "deleted good.txt" in removed)
    checks.expect(
        "rm names what was made from it, not the output that is no uid",
        "made from good.txt now have a missing input: made.txt" in removed
        and "ghost" not in removed,
    )
    checks.lake_kept(lake, [], {"made.txt": "made by mallory"})
    checks.report(
        report,
        "hostile metadata and lineage fields: info, lineage, export, rm",
        lake,
        "control characters and a bidi override in the job, e-mail, parameters, metadata, "
        f"radops version and an output; {checks.commands} commands",
    )


def test_the_code_link_and_note_of_a_creation_are_escaped() -> None:
    """The lines under the boxes (code link, its note, radops version) are escaped too."""
    from rich.console import Console

    from radops.cli.render import CreationSummary, render_creation

    summary = CreationSummary(
        run_id="r",
        job=HOSTILE_JOB,
        event_time="2026-01-01T00:00:00+00:00",
        originator=HOSTILE_EMAIL,
        radops_version=f"9{OSC_TITLE}",
        inputs=[f"in{OSC_TITLE}"],
        external_inputs=[f"https://example.com/{OSC_TITLE}"],
        outputs=[f"out{OSC_TITLE}"],
        parameters=HOSTILE_PARAMETERS,
        code_url=f"https://example.com/code{OSC_TITLE}",
        code_warning=f"note{OSC_TITLE}\u202e",
        deleted=False,
    )
    console = Console(file=io.StringIO(), width=200, force_terminal=False)
    render_creation(console, summary, f"out{OSC_TITLE}")
    drawn = console.file.getvalue()  # type: ignore[attr-defined]
    for name, raw in RAW.items():
        assert raw.decode() not in drawn, name
    escaped = "\\u001b]0;pwned\\u0007\\u001b[2J"
    assert f"creation method code: https://example.com/code{escaped}" in drawn
    assert f"note: note{escaped}\\u202e" in drawn
    assert f"uid out{escaped}" in drawn and f"in{escaped}" in drawn


class _Refusing(http.server.BaseHTTPRequestHandler):
    """A lineage consumer that refuses every event with an answer full of control bytes."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = f"refused{OSC_TITLE}\u202e".encode()
        self.send_response(400)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
def test_lineage_rejected_escapes_the_event_and_the_answer(
    make_lake: MakeLake, cli_env: dict[str, str]
) -> None:
    """`lineage rejected` lists a refused event's job name and the consumer's answer escaped."""
    with serving(_Refusing) as url:
        env = {**cli_env, "RADOPS_MARQUEZ_URL": url}
        lake = make_lake("machine-a", marquez_url=url)
        _hostile_creation(lake, "made.txt", [])
        lake.lineage.outbox.close()
        lake.lineage.outbox.wait(60)
        invoke(env, "lineage", "flush")
        listed = invoke(env, "lineage", "rejected").stdout
    assert "HTTP 400 from" in listed and "refused" in listed  # its control bytes: not raw
    assert '"job\\u001b]0;pwned\\u0007\\u001b[2J\\u202e"' in listed


# -- FIFOs --------------------------------------------------------------------------------------


@contextlib.contextmanager
def fifo_trap(path: Path, patience: float = 5.0) -> Iterator[list[str]]:
    """A FIFO at ``path`` for the block; yields a list naming every reader that blocked on it.

    Opening a FIFO to read waits for a writer. After ``patience`` seconds a thread opens it
    to write whenever someone waits on it (which releases the reader, who reads nothing) and
    notes it in the list; the test then fails instead of hanging.
    """
    os.mkfifo(path)
    caught: list[str] = []
    done = threading.Event()

    def release() -> None:
        if done.wait(patience):
            return
        while not done.is_set():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:  # ENXIO: nobody is reading
                if exc.errno != errno.ENXIO:
                    raise
                time.sleep(0.05)
                continue
            caught.append(f"a reader blocked on {path}")
            os.close(fd)

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    try:
        yield caught
    finally:
        done.set()
        thread.join()
    assert Path(path).is_fifo(), "the FIFO was removed or replaced"


def _leaving_uids(lake: DataLake, fifo: Path) -> list[str]:
    """uids that lead from local storage or the lake's directory to ``fifo``."""
    uids = ["../../fifo", "a/../../../fifo", str(fifo), "../fifo", "./../../fifo"]
    for root in (lake.local.root, Path(lake.settings.remote)):
        if not lake.settings.remote.startswith("s3://") or root == lake.local.root:
            uids.append(os.path.relpath(fifo, root))
    return uids


def test_uids_that_lead_to_a_fifo_are_refused_before_any_path(
    lake: DataLake, tmp_path: Path, report: Any
) -> None:
    """Every library entry point refuses a uid leading out of local storage or the lake with
    InvalidUidError before it opens, stats or removes anything: the FIFO is never opened."""
    write(lake, "real.txt", "real")  # local storage and the lake exist
    fifo = tmp_path / "fifo"
    tmp = tmp_path / "dest.bin"
    tally = Tally()
    with fifo_trap(fifo) as caught:
        for uid in _leaving_uids(lake, fifo):
            entry_points = {
                "File": lambda uid=uid: File(uid, lake=lake),
                "open_for_reading": lambda uid=uid: lake.open_for_reading(uid, "rb").__enter__(),
                "local_path": lambda uid=uid: lake.local_path(uid),
                "exists_locally": lambda uid=uid: lake.exists_locally(uid),
                "download": lambda uid=uid: lake.download(uid),
                "verify": lambda uid=uid: lake.verify(uid),
                "remove_local": lambda uid=uid: lake.remove_local(uid),
                "head": lambda uid=uid: lake.head(uid),
                "delete": lambda uid=uid: lake.delete(uid),
                "ensure_absent": lambda uid=uid: lake.ensure_absent(uid),
                "local.open_trusted": lambda uid=uid: lake.local.open_trusted(uid),
                "local.path": lambda uid=uid: lake.local.path(uid),
                "local.stat": lambda uid=uid: lake.local.stat(uid),
                "local.remove": lambda uid=uid: lake.local.remove(uid),
                "store.head": lambda uid=uid: lake.store.head(uid),
                "store.get": lambda uid=uid: lake.store.get(uid, tmp),
                "store.delete": lambda uid=uid: lake.store.delete(uid),
            }
            for name, call in entry_points.items():
                trial = tally.trial(f"{name}({uid!r})")
                try:
                    call()
                except InvalidUidError as exc:
                    if not str(exc).startswith("invalid uid "):
                        trial.fail(f"refused as {exc}")
                except Exception as exc:  # noqa: BLE001 - anything else is the finding
                    trial.fail(f"raised {exc!r}, not InvalidUidError")
                else:
                    trial.fail("accepted the uid")
                if caught:
                    trial.fail("opened the FIFO")
                    caught.clear()
    last = tally.trial("afterwards")
    if tmp.exists():
        last.fail(f"{tmp} was written")
    with File("real.txt", lake=lake).open("r") as handle:
        if handle.read() != "real":
            last.lose_data("real.txt", "it reads back different bytes")
    report(
        fault="FIFO at ../../fifo-style uids: library entry points",
        remote=remote_kind(lake),
        **tally.figures(),
        notes=f"{len(_leaving_uids(lake, fifo))} uids x {len(entry_points)} entry points, "
        "each refused before any path is opened",
    )
    assert tally.failures == 0, tally.problems()


def test_the_cli_refuses_uids_that_lead_to_a_fifo(
    lake: DataLake, cli_env: dict[str, str], tmp_path: Path, report: Any
) -> None:
    """Every command that takes a uid ends at once with one escaped `error: invalid uid` line."""
    write(lake, "real.txt", "real")
    checks = Checks()
    with fifo_trap(tmp_path / "fifo") as caught:
        for uid in _leaving_uids(lake, tmp_path / "fifo"):
            for command in ("info", "download", "local-path", "verify", "rm-local", "lineage"):
                refused = checks.run(cli_env, "datalake", command, uid, code=1)
                checks.expect(
                    f"{command} {uid}: invalid uid",
                    refused.stderr.startswith("error: invalid uid "),
                )
            checks.run(cli_env, "datalake", "rm", uid, "-y", code=1)
            checks.run(cli_env, "datalake", "add", str(tmp_path / "fifo"), uid, code=1)
        checks.expect("the FIFO was never opened", caught == [])
    checks.lake_kept(lake, [], {"real.txt": "real"})
    checks.report(
        report,
        "FIFO at ../../fifo-style uids: CLI",
        lake,
        f"{len(_leaving_uids(lake, tmp_path / 'fifo'))} uids x 8 commands "
        "(info, download, local-path, verify, rm-local, lineage, rm, add)",
    )


def test_a_fifo_in_place_of_a_cached_file_is_replaced_by_the_lake_copy(
    make_lake: MakeLake,
) -> None:
    """A FIFO where local storage keeps a file is not that file: reads, verify and ls do not
    wait on it, and a read replaces it with the verified copy from the lake."""
    write(make_lake("machine-a"), "data/planted.txt", "from the lake")
    other = make_lake("machine-b")
    (other.local.root / "data").mkdir(parents=True)
    with fifo_trap(other.local.root / "data" / "planted.txt") as caught:
        assert not other.exists_locally("data/planted.txt")
        result = other.verify("data/planted.txt")
        assert (result.remote, result.local) == ("ok", "absent")
        assert caught == []
    # The trap is gone (its check passed): the same FIFO again, now read through.
    path = other.local.root / "data" / "planted.txt"
    path.unlink()
    os.mkfifo(path)
    with File("data/planted.txt", lake=other).open("r") as handle:
        assert handle.read() == "from the lake"
    assert path.is_file() and not path.is_fifo()


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
def test_a_fifo_in_a_directory_lake_is_no_object(lake: DataLake, cli_env: dict[str, str]) -> None:
    """A FIFO under a key of a directory lake, or in place of an object's metadata, is never
    waited on: it is no object, and an object without its metadata is unverifiable."""
    write(lake, "sound.txt")
    root = Path(lake.settings.remote)
    meta = root / ".radops" / "meta" / "sound.txt"
    meta.unlink()
    with fifo_trap(root / "pipe.txt") as caught, fifo_trap(meta) as caught_meta:
        assert lake.head("pipe.txt") is None
        with pytest.raises(FileNotInLakeError):
            lake.store.get("pipe.txt", lake.local.temp_path())
        with pytest.raises(FileNotInLakeError):
            File("pipe.txt", lake=lake).open("rb").__enter__()
        head = lake.head("sound.txt")
        assert head is not None and head.sha256 is None
        assert invoke(cli_env, "datalake", "ls").stdout.splitlines() == ["sound.txt"]
        verified = invoke(cli_env, "datalake", "verify", "--all").stdout
        assert verified.startswith("sound.txt  lake unverifiable")
        invoke(cli_env, "datalake", "repair")
        assert caught == caught_meta == []


# -- writers in other PID namespaces --------------------------------------------------------------


class _Writer:
    """tests/reliability/namespaced_writer.py, run in a new user and PID namespace."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process

    def started(self) -> tuple[str, Path]:
        """(token, temp file) it reports once its object is uploaded and unrecorded."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline().split()
        if not line or line[0] != "uploaded":
            self.process.kill()
            _, stderr = self.process.communicate()
            pytest.fail(f"the namespaced writer did not start: {line} {stderr}")
        return line[1], Path(line[2])

    def finish(self, command: str) -> None:
        """Send ``record`` or ``exit``; the writer must then end well."""
        _, stderr = self.process.communicate(command + "\n", timeout=60)
        assert self.process.returncode == 0, stderr


@contextlib.contextmanager
def namespaced_writer(lake: DataLake, uid: str, own_proc: bool) -> Iterator[_Writer]:
    """The writer of ``uid`` in another PID namespace, on the lake and in the RADOPS_HOME of
    ``lake`` (two containers sharing a volume); killed if the block leaves it running."""
    command = ["unshare", "--user", "--map-root-user", "--pid", "--fork"]
    if own_proc:  # as in a container: /proc numbers the processes of its namespace
        command.append("--mount-proc")
    command += [sys.executable, "-m", "tests.reliability.namespaced_writer", uid]
    with subprocess.Popen(
        command,
        cwd=ROOT,
        env=process_env(lake),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            yield _Writer(process)
        finally:
            if process.poll() is None:
                process.kill()


@pytest.mark.parametrize("own_proc", [True, False], ids=["own-proc", "parent-proc"])
def test_a_live_writer_in_another_pid_namespace_is_never_removed(
    request: pytest.FixtureRequest,
    lake: DataLake,
    cli_env: dict[str, str],
    own_proc: bool,
    report: Any,
) -> None:
    """A writer in another PID namespace, between its upload and its record, is under way for
    repair, for an add of the same uid and for the sweep of local temp files; then it records
    its creation, and the file is whole."""
    need(request.config, "userns")
    uid = "shared/out.txt"
    checks = Checks()
    with namespaced_writer(lake, uid, own_proc) as writer:
        token, temp = writer.started()
        mine = writers.current().split(":")
        checks.expect(
            "the writer's token names another PID namespace, and pid 1",
            token.split(":")[2].split("-")[0] != mine[2].split("-")[0]
            and token.split(":")[3] == "1",
        )
        checks.expect(
            "its creation is under way", lake.creation_state(uid) is CreationState.UNDER_WAY
        )
        repaired = checks.run(cli_env, "datalake", "repair")
        checks.expect(
            "repair leaves it alone", f"{uid}: creation under way, left alone" in repaired.stdout
        )
        source = lake.settings.home / "source.txt"
        source.write_text("mine")
        try:
            lake.add_file(source, uid)
        except FileExistsInLakeError:
            checks.expect("an add of the same uid waits for it", True)
        else:
            checks.expect("an add of the same uid waits for it", False)
        checks.expect("repair kept the writer's temp file", temp.exists())
        writer.finish("record")
    checks.expect("it recorded its creation", lake.creation_state(uid) is CreationState.RECORDED)
    checks.lake_kept(lake, [], {uid: "written in another PID namespace"})
    checks.report(
        report,
        "writer alive in another PID namespace "
        + ("(its own /proc)" if own_proc else "(the parent's /proc)"),
        lake,
        "unshare --user --map-root-user --pid --fork"
        + (" --mount-proc" if own_proc else "")
        + "; same RADOPS_HOME; repair, add of its uid and the temp sweep while it waits",
    )


def test_a_dead_writer_in_another_pid_namespace_waits_for_stale_after(
    request: pytest.FixtureRequest, make_lake: MakeLake, report: Any
) -> None:
    """A writer in another PID namespace that died unrecorded cannot be proven dead from here:
    its object is under way until RADOPS_STALE_AFTER, then abandoned and removed."""
    need(request.config, "userns")
    lake = make_lake("machine-a")
    with namespaced_writer(lake, "gone.txt", own_proc=True) as writer:
        writer.started()
        writer.finish("exit")
    checks = Checks()
    checks.expect("repair waits for it", repair(lake).under_way == ("gone.txt",))
    impatient = make_lake("machine-b", stale_after=1.0)
    time.sleep(2.2)  # S3 times objects to the second
    checks.expect(
        "stale after 1 s, it is abandoned",
        impatient.creation_state("gone.txt") is CreationState.ABANDONED,
    )
    checks.expect("and removed", repair(impatient).abandoned == ("gone.txt",))
    checks.expect("it is gone", lake.head("gone.txt") is None)
    checks.report(
        report,
        "writer dead in another PID namespace",
        lake,
        "not provably dead from here: under way until RADOPS_STALE_AFTER (1 s here), then "
        "removed by repair",
    )


def test_a_dead_writer_of_this_namespace_is_still_proven_dead(lake: DataLake) -> None:
    """The proof still works where it holds: same boot, same PID namespace, pid gone."""
    _upload_unrecorded(lake, "half.txt", _dead_writer_token())
    assert lake.creation_state("half.txt") is CreationState.ABANDONED
    # Tokens this radops cannot read (an older format, damaged ones) prove nothing.
    for token in ("host:0123abcd:4242:999", "", "a:b:c:d:e", 42):
        assert not writers.is_dead(token)  # type: ignore[arg-type]
