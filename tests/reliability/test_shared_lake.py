"""Fault 9: a shared lake holding what radops did not write, on both remotes.

Anyone with write access to the bucket (another machine, another radops version, another tool,
a mistake, an attacker) can put anything under ``.radops/events/`` and beside the files. Here
the test is that writer: it plants each case with boto3 (SeaweedFS) or plain file writes
(directory lake), then fresh machines (subprocesses with a home of their own) run a pipeline
and the CLI. Per trial it checks, and counts:

- nothing stops: the pipeline, ``datalake lineage``, ``datalake verify --all``, ``datalake
  repair --dry-run`` and ``lineage export`` exit 0, without a traceback;
- the pipeline returns what its code computes from the bytes its input holds now (never a
  planted file, never results of deleted bytes);
- a record that fails the checks is named by one warning per machine (not one per call) and
  listed by ``repair --dry-run``;
- memory (peak RSS of the subprocess, from ``os.wait4``) and the index stay under the bounds
  stated below, however large the planted record.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest

from radops.lake import DataLake
from radops.lineage.events import RADOPS_FACET, radops_facet, uuid7
from radops.lineage.validate import RECORD_MAX_BYTES
from radops.objects import DIGEST_KEY, RUN_KEY
from tests.conftest import MakeLake, process_env
from tests.reliability import shared_lake_pipeline as pipeline
from tests.reliability.tally import Tally, Trial

ROOT = Path(__file__).resolve().parents[2]

#: Peak RSS of any radops process (a CLI command or the pipeline) on a lake holding a 300 MB
#: record, in MiB: twice what one takes on a clean lake (measured on the CI machine: about
#: 40 MiB on a directory lake, 65 MiB on S3, where boto3 is loaded). Before the size limit, a
#: 300 MB record took `datalake lineage` from 65 MB to 1.29 GB.
PEAK_RSS_MB = 128
#: The same, once a record of the largest accepted size in the shape that takes the most memory
#: to parse is there too (4 MiB of empty JSON arrays: about 25 bytes of objects per byte read);
#: measured up to about 180 MiB, by `lineage export`, which holds every event of the index.
PEAK_RSS_WORST_MB = 300
#: The lineage index of a machine that synced them, in MiB (the 4 MiB record is indexed).
INDEX_MB = 16
HUGE_RECORD = 300 * 1024 * 1024
_COMMANDS = {"datalake", "lineage", "verify", "repair", "export", "--json", "--dry-run"}


# -- the other writer: boto3 or plain files -------------------------------------------------------


class Writer:
    """Write access to the lake's bucket or directory, without radops."""

    def __init__(self, lake: DataLake) -> None:
        self.remote = lake.settings.remote
        self.s3 = self.remote.startswith("s3://")
        if self.s3:
            import boto3

            self.client = boto3.client(
                "s3", endpoint_url=lake.settings.s3_endpoint_url, region_name="us-east-1"
            )
            self.bucket, _, prefix = self.remote[len("s3://") :].partition("/")
            self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        else:
            self.root = Path(self.remote)

    @property
    def kind(self) -> str:
        return "s3" if self.s3 else "directory"

    def put(self, key: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        """Write ``key`` (relative to the lake: a uid, or ``.radops/...``), overwriting."""
        if self.s3:
            self.client.put_object(
                Bucket=self.bucket, Key=self.prefix + key, Body=data, Metadata=metadata or {}
            )
            return
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.chmod(0o644)
        path.write_bytes(data)

    def put_stream(self, key: str, head: bytes, fill: bytes, size: int, tail: bytes) -> None:
        """Write ``key``: ``head``, ``fill`` repeated, ``tail``: ``size`` bytes in all (never
        all in memory)."""
        body = size - len(head) - len(tail)
        if self.s3:
            import io

            class Stream(io.RawIOBase):
                def __init__(self) -> None:
                    self.sent = 0

                def readable(self) -> bool:
                    return True

                def readinto(self, buffer: Any) -> int:
                    if self.sent >= size:
                        return 0
                    if self.sent == 0:
                        chunk = head
                    elif self.sent >= size - len(tail):
                        chunk = tail
                    else:
                        left = size - len(tail) - self.sent
                        chunk = (fill * (len(buffer) // len(fill) + 1))[: min(len(buffer), left)]
                    buffer[: len(chunk)] = chunk
                    self.sent += len(chunk)
                    return len(chunk)

            self.client.upload_fileobj(io.BufferedReader(Stream()), self.bucket, self.prefix + key)
            return
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            handle.write(head)
            written = 0
            block = fill * (1024 * 1024 // len(fill))
            while written < body:
                piece = block[: body - written]
                handle.write(piece)
                written += len(piece)
            handle.write(tail)

    def put_file(self, uid: str, data: bytes, metadata: dict[str, str]) -> None:
        """A file under ``uid`` that looks like radops': bytes, sha256 and ``metadata``."""
        import hashlib

        sha256 = hashlib.sha256(data).hexdigest()
        if self.s3:
            self.put(uid, data, {"sha256": sha256, **metadata})
            return
        sidecar = {
            "sha256": sha256,
            "size": len(data),
            "created": datetime.now(timezone.utc).isoformat(),
            "metadata": metadata,
        }
        self.put(f".radops/meta/{uid}", json.dumps(sidecar).encode())
        self.put(uid, data)

    def get(self, key: str) -> bytes:
        if self.s3:
            return bytes(
                self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()
            )
        return (self.root / key).read_bytes()

    def records(self) -> list[str]:
        """The keys of every event record in the lake (``.radops/events/...``)."""
        if self.s3:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + ".radops/events/"
            )
            return sorted(
                item["Key"][len(self.prefix) :]
                for page in pages
                for item in page.get("Contents", [])
            )
        folder = self.root / ".radops" / "events"
        return sorted(str(p.relative_to(self.root)) for p in folder.rglob("*.json"))


def record_key(moment: datetime | None = None) -> str:
    """A record name as radops writes them, for now (or ``moment``)."""
    if moment is None:
        return f".radops/events/{datetime.now(timezone.utc):%Y-%m-%d}/{uuid7()}.json"
    millis = int(moment.timestamp() * 1000)
    hex_time = f"{millis:012x}"
    tail = uuid.uuid4().hex
    made = f"{hex_time[:8]}-{hex_time[8:]}-7{tail[:3]}-8{tail[3:6]}-{tail[6:18]}"
    return f".radops/events/{moment:%Y-%m-%d}/{made}.json"


# -- machines: fresh homes running radops in subprocesses ---------------------------------------


@attrs.frozen
class Ran:
    """One radops process: how it ended, what it printed, its peak memory."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str
    peak_mb: float

    @property
    def label(self) -> str:
        """``pipeline``, or the radops command (``datalake lineage``)."""
        if self.args[1] != "radops":
            return "pipeline"
        words = [arg for arg in self.args[2:] if arg in _COMMANDS]
        return " ".join(words)

    def problems(self, code: int = 0) -> list[str]:
        """What went wrong with this process, if anything."""
        found = []
        name = " ".join(self.args[:3])
        if self.code != code:
            found.append(f"{name} exited {self.code}: {self.stderr.strip()[-400:]}")
        if "Traceback" in self.stdout + self.stderr:
            found.append(f"{name} printed a traceback: {self.stderr.strip()[-400:]}")
        return found


# Runs argv[2:], writes its peak RSS (ru_maxrss from wait4) to argv[1], exits with its code.
_MEASURE = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as peak:
    peak.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


@attrs.define
class Machine:
    """A RADOPS_HOME of its own on the shared lake."""

    home: Path
    env: dict[str, str]
    runs: list[Ran] = attrs.Factory(list)

    def run(self, *args: str) -> Ran:
        """``python ARGS`` with this machine's environment, and its peak RSS."""
        with (
            tempfile.TemporaryFile() as out,
            tempfile.TemporaryFile() as err,
            tempfile.NamedTemporaryFile("r") as peak,
        ):
            # Started by a small Python process, not by pytest: a child's ru_maxrss counts the
            # pages it shared with its parent when it was forked, pytest's hundreds of MiB.
            code = subprocess.run(
                [sys.executable, "-c", _MEASURE, peak.name, sys.executable, *args],
                stdout=out,
                stderr=err,
                env=self.env,
                cwd=ROOT,
                check=False,
            ).returncode
            out.seek(0)
            err.seek(0)
            ran = Ran(
                tuple(args),
                code,
                out.read().decode("utf-8", "replace"),
                err.read().decode("utf-8", "replace"),
                int(peak.read() or 0) / 1024,  # ru_maxrss: KiB on Linux
            )
        self.runs.append(ran)
        return ran

    def radops(self, *args: str) -> Ran:
        return self.run("-m", "radops", *args)

    def pipeline(self, source: str, output: str) -> Ran:
        return self.run("-m", "tests.reliability.shared_lake_pipeline", source, output)

    def index_bytes(self) -> int:
        return sum(p.stat().st_size for p in (self.home / "state").glob("lineage-*.sqlite*"))


@pytest.fixture
def machines(make_lake: MakeLake, tmp_path: Path) -> Iterator[Callable[[], Machine]]:
    """``machines()``: a fresh machine on the test's lake."""
    base = make_lake("observer")
    made = 0

    def fresh() -> Machine:
        nonlocal made
        made += 1
        home = tmp_path / f"machine-{made}"
        return Machine(home, process_env(base, home=home, log_level="INFO"))

    yield fresh


@pytest.fixture
def writer(make_lake: MakeLake) -> Writer:
    return Writer(make_lake("writer"))


def check_result(trial: Trial, ran: Ran, text: str, source: str) -> dict[str, str] | None:
    """The pipeline ran, and returned what its code computes from ``text``."""
    for problem in ran.problems():
        trial.fail(problem)
    if ran.code != 0:
        return None
    try:
        got = json.loads(ran.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        trial.fail(f"the pipeline printed no result: {ran.stdout[-200:]!r}")
        return None
    want = pipeline.expected(text)
    if {key: got.get(key) for key in want} != want:
        trial.lose_data(source, f"the pipeline returned {got!r}, not what {text!r} gives")
    return dict(got)


def warnings_naming(ran: Ran, key: str) -> int:
    """How many warning lines of ``ran`` name ``key``."""
    return sum(1 for line in ran.stderr.splitlines() if "warning" in line and key in line)


def cli_checks(trial: Trial, machine: Machine, uid: str, *, code: int = 0) -> None:
    """``datalake lineage``, ``verify --all``, ``repair --dry-run`` and ``lineage export``
    end cleanly on ``machine``."""
    for args in (
        ("datalake", "lineage", uid),
        ("datalake", "lineage", uid, "--json", "--depth", "3", "--downstream"),
        ("datalake", "verify", "--all"),
        ("datalake", "repair", "--dry-run"),
        ("lineage", "export"),
    ):
        for problem in machine.radops(*args).problems(code):
            trial.fail(problem)


def input_text(trial: int, label: str) -> str:
    return f"trial {trial} of {label}\nsecond line\n"


# -- 1. malformed records ----------------------------------------------------------------------

MALFORMED: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "not JSON": lambda _: b"not json {",
    "not UTF-8": lambda _: b'{"eventType": "COMPLETE", "x": "\xff\xfe"}',
    "a JSON array": lambda _: b"[1, 2, 3]",
    "nested 100,000 deep": lambda _: b"[" * 100_000 + b"]" * 100_000,
    "missing run and job": lambda e: json.dumps(
        {k: v for k, v in e.items() if k not in ("run", "job")}
    ).encode(),
    "missing eventTime": lambda e: json.dumps(
        {k: v for k, v in e.items() if k != "eventTime"}
    ).encode(),
    "runId a number": lambda e: json.dumps({**e, "run": {**e["run"], "runId": 12}}).encode(),
    "outputs a string": lambda e: json.dumps(_with_facet(e, outputs="evil.txt")).encode(),
    "radops facet a list": lambda e: json.dumps(
        {**e, "run": {**e["run"], "facets": {RADOPS_FACET: ["x"]}}}
    ).encode(),
    "an output uid escaping the lake": lambda e: json.dumps(
        _with_facet(e, outputs=["../x"])
    ).encode(),
    "callDigest an object": lambda e: json.dumps(_with_facet(e, callDigest={"a": 1})).encode(),
    "eventTime not a time": lambda e: json.dumps({**e, "eventTime": "tomorrow"}).encode(),
}


def _with_facet(event: dict[str, Any], **fields: Any) -> dict[str, Any]:
    copied = json.loads(json.dumps(event))
    copied["run"]["facets"][RADOPS_FACET].update(fields)
    return copied


def a_record(writer: Writer) -> dict[str, Any]:
    """A COMPLETE record of a creation, as read from the lake (to copy and damage)."""
    for key in reversed(writer.records()):
        try:
            event = json.loads(writer.get(key))
            digest = radops_facet(event).get("callDigest")
        except (ValueError, AttributeError):
            continue  # one of the test's plantings
        if event.get("eventType") == "COMPLETE" and digest:
            return dict(event)
    raise AssertionError("no COMPLETE record of a call in the lake")


def test_a_malformed_record_stops_nothing(
    machines: Callable[[], Machine], writer: Writer, trials: Callable[[int], int], report: Any
) -> None:
    """Every kind of malformed record, planted beside a real lake: fresh machines run the
    pipeline (first run, then a skip) and the CLI; one warning per machine names each record.

    A trial plants one record of each kind, then a new input.
    """
    tally = Tally()
    writer.put_file("seed.txt", b"x\n", {})  # added without radops: lakes are not radops-only
    first = machines().pipeline("seed.txt", "seed-count.txt")
    assert first.code == 0, first.stderr
    event = a_record(writer)
    warned = 0
    for n in range(trials(2)):
        trial = tally.trial(f"trial {n}")
        keys = {kind: record_key() for kind in MALFORMED}
        for kind, make in MALFORMED.items():
            writer.put(keys[kind], make(event))
        text = input_text(n, "malformed")
        source = f"in/malformed-{n}.txt"
        writer.put_file(source, text.encode(), {})
        computing, skipping = machines(), machines()
        check_result(trial, computing.pipeline(source, f"{source}.count"), text, source)
        got = check_result(trial, skipping.pipeline(source, f"{source}.count"), text, source)
        if got is None:
            continue
        if "skipped" not in skipping.runs[0].stderr:
            trial.fail("the second machine ran the pipeline again instead of skipping it")
        cli_checks(trial, skipping, got["upper_uid"])
        dry = skipping.runs[-2]  # repair --dry-run
        for kind, key in keys.items():
            for machine in (computing, skipping):
                named = sum(warnings_naming(each, key) for each in machine.runs)
                warned += named
                if named != 1:
                    trial.fail(f"{kind}: {machine.home.name} warned {named} times about {key}")
            if key not in dry.stdout:
                trial.fail(f"{kind}: repair --dry-run does not list {key}")
    report(
        fault=f"shared lake: malformed records ({len(MALFORMED)} kinds)",
        remote=writer.kind,
        **tally.figures(),
        notes=(
            f"{len(MALFORMED)} kinds planted per trial beside real records; {warned} warnings "
            "naming a record, one per record and machine; each record listed by repair --dry-run"
        ),
    )
    assert tally.data_lost == 0, tally.problems()
    assert tally.failures == 0, tally.problems()


# -- 2. a huge record, and the largest one accepted ---------------------------------------------


def test_a_huge_record_is_refused_unread(
    machines: Callable[[], Machine], writer: Writer, trials: Callable[[int], int], report: Any
) -> None:
    """A 300 MB record is refused from its size, unread; then a record at the limit in the
    shape that takes the most memory to parse is read within a bound. Per fresh machine: the
    peak RSS of each radops process (pipeline and CLI) and the size of its index."""
    tally = Tally()
    writer.put_file("seed.txt", b"x\n", {})
    seeded = machines().pipeline("seed.txt", "seed-count.txt")
    assert seeded.code == 0, seeded.stderr
    upper = json.loads(seeded.stdout.strip().splitlines()[-1])["upper_uid"]
    before = machines().radops("datalake", "lineage", upper)
    assert before.code == 0, before.stderr
    event = a_record(writer)

    huge = record_key()  # a whole event, with 300 MB of padding in a string
    head = json.dumps(event).encode()[:-1] + b', "padding": "'
    writer.put_stream(huge, head, b"x", HUGE_RECORD, b'"}')
    peaks: dict[str, dict[str, float]] = {"huge": {}, "worst": {}}
    index_mb = {"huge": 0.0, "worst": 0.0}
    count = trials(1)
    for phase, bound in (("huge", PEAK_RSS_MB), ("worst", PEAK_RSS_WORST_MB)):
        if phase == "worst":  # every event field valid, padded with 4 MiB of empty arrays
            worst = record_key()
            start = json.dumps({**event, "padding": []}).encode()[:-2]  # ..."padding": [
            room = RECORD_MAX_BYTES - len(start) - 10
            writer.put(worst, start + b"[]," * (room // 3) + b"[]]}")
        for n in range(count):
            trial = tally.trial(f"{phase} {n}")
            machine = machines()
            text = input_text(n, phase)
            source = f"in/{phase}-{n}.txt"
            writer.put_file(source, text.encode(), {})
            got = check_result(trial, machine.pipeline(source, f"{source}.count"), text, source)
            if got is not None:
                cli_checks(trial, machine, got["upper_uid"])
            for ran in machine.runs:
                peaks[phase][ran.label] = max(peaks[phase].get(ran.label, 0.0), ran.peak_mb)
                if ran.peak_mb > bound:
                    trial.fail(f"{ran.label}: peak RSS {ran.peak_mb:.0f} MiB > {bound} MiB")
            if warnings_naming(machine.runs[0], huge) != 1:
                trial.fail(f"the pipeline did not warn once about {huge}")
            index_mb[phase] = max(index_mb[phase], machine.index_bytes() / 2**20)
            if index_mb[phase] > INDEX_MB:
                trial.fail(f"the lineage index is {index_mb[phase]:.1f} MiB > {INDEX_MB} MiB")

    def shown(phase: str) -> str:
        return ", ".join(f"{label} {mb:.0f}" for label, mb in sorted(peaks[phase].items()))

    report(
        fault="shared lake: a 300 MB record, then a 4 MiB one of empty arrays",
        remote=writer.kind,
        **tally.figures(),
        notes=(
            f"peak RSS in MiB, before planting: datalake lineage {before.peak_mb:.0f}; with the "
            f"300 MB record (bound {PEAK_RSS_MB}): {shown('huge')}; index "
            f"{index_mb['huge']:.1f} MiB; with the 4 MiB record too (bound "
            f"{PEAK_RSS_WORST_MB}): {shown('worst')}; index {index_mb['worst']:.1f} MiB "
            f"(bound {INDEX_MB})"
        ),
    )
    assert tally.failures == 0, tally.problems()
    assert tally.data_lost == 0, tally.problems()


# -- 3. forged records -------------------------------------------------------------------------

ATTACKER_DATA = b"ATTACKER DATA\n"


@attrs.frozen
class Legit:
    """A pipeline run by an honest machine: its input and what it made."""

    source: str
    text: str
    upper: str  # the implicit output's uid
    record: dict[str, Any]  # the COMPLETE record of the shout call that made it
    key: str  # that record's key

    @property
    def written(self) -> datetime:
        """When its record was written, by its name."""
        millis = int(self.key.rsplit("/", 1)[1].replace("-", "")[:12], 16)
        return datetime.fromtimestamp(millis / 1000, tz=timezone.utc)


def legit_run(machine: Machine, writer: Writer, source: str, text: str) -> Legit:
    writer.put_file(source, text.encode(), {})
    ran = machine.pipeline(source, f"{source}.count")
    assert ran.code == 0, ran.stderr
    upper = json.loads(ran.stdout.strip().splitlines()[-1])["upper_uid"]
    for key in writer.records():
        try:
            event = json.loads(writer.get(key))
            facet = radops_facet(event)
        except (ValueError, AttributeError):
            continue  # one of the test's plantings
        if event.get("eventType") == "COMPLETE" and facet.get("outputs") == [upper]:
            return Legit(source, text, upper, event, key)
    raise AssertionError(f"no record of {upper}")


def digest_of(source: str) -> str:
    """The call digest of ``shout(File(source))``, computed as anyone can from the call."""
    from radops.canonical import call_digest

    return call_digest(pipeline.__name__, "shout", {"source": {"radops.File": source}})


@attrs.frozen
class Forgery:
    """One forged record: what it points at, whether it keeps the copied run id, its date."""

    points_at: str  # "planted file", "planted file as return value", "another call's file",
    #                 or "the real outputs" (a new run claiming them, with a lying lineage)
    same_run: bool
    when: str  # "2099", "1970", "2099 folder" (a record named in 2099), or "first" (dated
    #            2099, named 1 ms before the real record: the first written of the two)

    def __str__(self) -> str:
        run = "same run id" if self.same_run else "new run id"
        return f"-> {self.points_at}, {run}, dated {self.when}"


FORGERIES = (
    Forgery("planted file", True, "2099"),
    Forgery("planted file", False, "2099"),
    Forgery("planted file", False, "1970"),
    Forgery("planted file as return value", True, "first"),
    Forgery("another call's file", False, "1970"),
    Forgery("the real outputs", False, "1970"),
    Forgery("planted file", False, "2099 folder"),
)


def forge(
    template: dict[str, Any],
    source: str,
    text: str,
    forgery: Forgery,
    target: str,
    evil: str,
    legit: Legit | None,
) -> tuple[dict[str, Any], str]:
    """A copy of the COMPLETE record ``template``, made to claim the call on ``source`` and
    altered as ``forgery`` says (``target``: the other call's file); with the key to plant
    it under."""
    import hashlib

    event = json.loads(json.dumps(template))
    facet = event["run"]["facets"][RADOPS_FACET]
    facet["callDigest"] = digest_of(source)
    facet["inputs"] = [source]
    facet["inputSha256"] = {source: hashlib.sha256(text.encode()).hexdigest()}
    if not forgery.same_run:
        event["run"]["runId"] = str(uuid7())
    year = "1970-01-02" if forgery.when == "1970" else "2099-01-01"
    event["eventTime"] = f"{year}T00:00:00+00:00"
    claimed = {"planted file": evil, "another call's file": target}.get(forgery.points_at)
    if claimed is not None:
        facet["outputs"] = [claimed]
        facet["returned"] = {"radops.File": claimed}
        dataset = {**event["outputs"][0], "name": f"/{claimed}"}
        event["outputs"] = [dataset]
    elif forgery.points_at == "planted file as return value":
        facet["returned"] = {"radops.File": evil}
    else:  # the real outputs, under a new run that lies about who made them and from what
        facet["email"] = "attacker@example.com"
        facet["parameters"] = {"planted": True}
        facet["inputSha256"] = {source: "0" * 64}
    when = datetime(2099, 1, 1, tzinfo=timezone.utc) if forgery.when == "2099 folder" else None
    if forgery.when == "first" and legit is not None:
        when = legit.written - timedelta(milliseconds=1)
    return event, record_key(when)


def test_a_forged_record_never_makes_a_step_return_other_data(
    machines: Callable[[], Machine], writer: Writer, trials: Callable[[int], int], report: Any
) -> None:
    """Records copied from real ones and altered (event time 2099 or 1970, outputs or return
    value pointing at a planted file whose metadata names the record's run and the call's
    digest, another call's output, the real outputs under a new run, a 2099 folder), planted
    beside the call's real record or before the call ever ran: a fresh machine returns what
    the pipeline computes from its input, and each file's lineage is its real run's."""
    tally = Tally()
    honest = machines()
    forged_runs = 0
    for n in range(trials(1)):
        other = legit_run(honest, writer, f"in/other-{n}.txt", input_text(n, "other"))
        assert digest_of(other.source) == radops_facet(other.record)["callDigest"]
        for k, forgery in enumerate(FORGERIES):
            for setting in ("beside the real record", "before the call ever ran"):
                if setting.startswith("before") and forgery.points_at == "the real outputs":
                    continue  # there are no real outputs to claim yet
                trial = tally.trial(f"{forgery}, {setting} #{n}")
                source, text = f"in/forged-{n}-{k}-{setting[:6]}.txt", input_text(n, str(forgery))
                evil = f"evil/{n}-{k}-{setting[:6]}.txt"
                legit = None
                if setting.startswith("beside"):
                    legit = legit_run(honest, writer, source, text)
                else:
                    writer.put_file(source, text.encode(), {})
                # Beside its real record, a copy of it; before any run, another call's
                # record made to claim this call (its digest computed as anyone can).
                template = legit.record if legit is not None else other.record
                event, key = forge(template, source, text, forgery, other.upper, evil, legit)
                digest = radops_facet(event)["callDigest"]
                writer.put_file(
                    evil, ATTACKER_DATA, {RUN_KEY: event["run"]["runId"], DIGEST_KEY: digest}
                )
                writer.put(key, json.dumps(event).encode())
                forged_runs += 1
                machine = machines()
                ran = machine.pipeline(source, f"{source}.count")
                got = check_result(trial, ran, text, source)
                if "ATTACKER" in ran.stdout or re.search(r"skipped.*(evil|other-)", ran.stderr):
                    trial.lose_data(source, "the step returned the forged record's file")
                if got is None:
                    continue
                upper = got["upper_uid"]
                if not upper.startswith(f"{pipeline.__name__}.shout/{digest[:32]}-"):
                    trial.lose_data(source, f"the step returned {upper}, not its own output")
                if legit is not None and "skipped" not in ran.stderr:
                    trial.fail("the step ran again although its real record holds")
                shown = machine.radops("datalake", "lineage", upper, "--json")
                for problem in shown.problems():
                    trial.fail(problem)
                if shown.code == 0:
                    made_by = json.loads(shown.stdout)["events"][0]
                    if made_by["run"]["runId"] == event["run"]["runId"] and made_by == event:
                        trial.lose_event(upper, "its lineage is the forged record")
                    if legit is not None and made_by != legit.record:
                        trial.lose_event(upper, f"its lineage is run {made_by['run']['runId']}")
        # Records written after the forgeries (one named in 2099 among them) still sync.
        watcher = machines()
        trial = tally.trial(f"a record written after them #{n}")
        for problem in watcher.radops("datalake", "repair", "--dry-run").problems():
            trial.fail(problem)
        later = legit_run(honest, writer, f"in/later-{n}.txt", input_text(n, "later"))
        seen = watcher.radops("datalake", "lineage", later.upper, "--json")
        for problem in seen.problems():
            trial.fail(problem)
        if seen.code == 0 and json.loads(seen.stdout)["events"][0] != later.record:
            trial.lose_event(later.upper, "a machine that synced the forgeries does not see it")
    report(
        fault=f"shared lake: forged records ({len(FORGERIES)} kinds, 2 settings)",
        remote=writer.kind,
        **tally.figures(),
        notes=(
            f"{forged_runs} forged COMPLETE records planted, copied from real ones: outputs or "
            "return value -> a planted file carrying the record's run id and the call's digest, "
            "another call's output, the real outputs under a new run; dated 2099 or 1970 or "
            "named in 2099; beside the call's real record or before the call ever ran; then a "
            "record written after them still syncs"
        ),
    )
    assert tally.data_lost == 0, tally.problems()
    assert tally.events_lost == 0, tally.problems()
    assert tally.failures == 0, tally.problems()


# -- 4. a deleted input added again with other bytes ---------------------------------------------


@attrs.define
class Steps:
    """The user's commands of one trial, on one machine; what went wrong goes to ``trial``."""

    trial: Trial
    user: Machine
    source: str
    doing: str = ""

    def radops(self, *args: str, code: int = 0) -> Ran:
        ran = self.user.radops(*args)
        for problem in ran.problems(code):
            self.trial.fail(f"{self.doing}: {problem}")
        return ran

    def expect(self, ran: Ran, text: str) -> dict[str, str] | None:
        return check_result(self.trial, ran, text, f"{self.source} ({self.doing})")


def test_other_bytes_under_a_deleted_uid_never_give_old_results(
    machines: Callable[[], Machine],
    writer: Writer,
    tmp_path: Path,
    trials: Callable[[int], int],
    report: Any,
) -> None:
    """``datalake rm`` an input, add other bytes under its uid: refused while results of the
    old bytes remain, allowed for the same bytes, and with ``--delete-stale`` (then the
    pipeline computes from the new bytes, also on a machine that cached the old ones). Bytes put
    there without radops never make a step return results of the old ones either."""
    tally = Tally()
    user = machines()
    for n in range(trials(1)):
        source = f"in/reused-{n}.txt"
        steps = Steps(tally.trial(f"trial {n}"), user, source)
        texts = [f"version {v} of trial {n}\nline\n" + "more\n" * v for v in (1, 2, 3)]
        files = [tmp_path / f"v{v}-{n}.txt" for v in (1, 2, 3)]
        for path, text in zip(files, texts, strict=True):
            path.write_text(text)
        count = f"{source}.count"

        steps.doing = "first add"
        steps.radops("datalake", "add", str(files[0]), source)
        made = steps.expect(machines().pipeline(source, count), texts[0])
        cached = machines()  # a machine with the old bytes in its local storage
        cached.radops("datalake", "download", source)
        steps.doing = "rm"
        steps.radops("datalake", "rm", source)
        steps.doing = "add other bytes"
        refused = steps.radops("datalake", "add", str(files[1]), source, code=1)
        if made is not None and made["upper_uid"] not in refused.stderr:
            steps.trial.fail(f"the refusal does not name the stale file: {refused.stderr}")
        steps.doing = "add the same bytes again"
        steps.radops("datalake", "add", str(files[0]), source)
        again = machines().pipeline(source, count)
        steps.expect(again, texts[0])
        if "skipped" not in again.stderr:
            steps.trial.fail("restoring the same bytes did not keep the results")
        steps.doing = "rm, add with --delete-stale"
        steps.radops("datalake", "rm", source)
        steps.radops("datalake", "add", str(files[1]), source, "--delete-stale")
        steps.expect(machines().pipeline(source, count), texts[1])
        steps.doing = "--delete-stale, on the machine that cached the old bytes"
        steps.expect(cached.pipeline(source, count), texts[1])

        steps.doing = "bytes put without radops"
        steps.radops("datalake", "rm", source)
        writer.put_file(source, texts[2].encode(), {})
        blocked = machines().pipeline(source, count)
        if blocked.code == 0:
            got = json.loads(blocked.stdout.strip().splitlines()[-1])
            if got.get("upper") != texts[2].upper():
                steps.trial.lose_data(source, "the step returned results of the deleted bytes")
        elif "stale" not in blocked.stderr or "Traceback" in blocked.stderr:
            steps.trial.fail(f"the pipeline stopped without saying why: {blocked.stderr[-300:]}")
        steps.doing = "rm --cascade of the stale results, as the message says"
        steps.radops("datalake", "rm", made["upper_uid"] if made else source, "--cascade", "-y")
        steps.expect(machines().pipeline(source, count), texts[2])
        steps.doing = "after the cascade, on the machine that cached old bytes"
        steps.expect(cached.pipeline(source, count), texts[2])
    report(
        fault="shared lake: a deleted input added again with other bytes",
        remote=writer.kind,
        **tally.figures(),
        notes=(
            "per trial: add refused while results of the old bytes remain (named), same bytes "
            "restored and skipped on, --delete-stale then a rerun from the new bytes (also on a "
            "machine that cached the old ones), bytes put without radops: the step stops, "
            "naming the stale results, and reruns once they are deleted"
        ),
    )
    assert tally.data_lost == 0, tally.problems()
    assert tally.failures == 0, tally.problems()


# -- 5. a real record damaged in place ------------------------------------------------------------

DAMAGES: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "garbage, no run id readable": lambda _: b"\x00garbage",
    "wrong types, its run id readable": lambda e: json.dumps(
        _with_facet(e, outputs={"not": "a list"})
    ).encode(),
}


def test_a_damaged_record_never_costs_its_files(
    machines: Callable[[], Machine], writer: Writer, trials: Callable[[int], int], report: Any
) -> None:
    """The real COMPLETE record of a step, overwritten in place: its objects now look
    unrecorded, but ``datalake repair`` (with a stale-after of 1 s, so that they are long
    abandoned by age) keeps them, and lists the record; the step does not skip on objects it
    cannot tie to input bytes, and stops naming them instead of returning them."""
    tally = Tally()
    honest = machines()
    kept = 0
    for n in range(trials(1)):
        for k, (kind, damage) in enumerate(DAMAGES.items()):
            trial = tally.trial(f"{kind} #{n}")
            legit = legit_run(honest, writer, f"in/damaged-{n}-{k}.txt", input_text(n, kind))
            writer.put(legit.key, damage(legit.record))
            machine = machines()
            machine.env["RADOPS_STALE_AFTER"] = "1"
            fixed = machine.radops("datalake", "repair")
            for problem in fixed.problems():
                trial.fail(problem)
            if legit.key not in fixed.stdout:
                trial.fail(f"repair does not list the damaged record {legit.key}")
            if writer_has(writer, legit.upper):
                kept += 1
            else:
                trial.lose_data(legit.upper, "repair removed a file whose record was damaged")
            ran = machine.pipeline(legit.source, f"{legit.source}.count")
            if ran.code == 0:
                check_result(trial, ran, legit.text, legit.source)
            elif "Traceback" in ran.stderr or legit.upper not in ran.stderr:
                trial.fail(f"the step stopped without naming the file: {ran.stderr[-300:]}")
            if not writer_has(writer, legit.upper):
                trial.lose_data(legit.upper, "the step removed a file whose record was damaged")
    report(
        fault="shared lake: a real record damaged in place",
        remote=writer.kind,
        **tally.figures(),
        notes=(
            f"{kept} files whose record was overwritten (garbage, or wrong types with the run "
            "id readable) kept by repair with RADOPS_STALE_AFTER=1; the step stops naming "
            "them rather than skip on them or remove them"
        ),
    )
    assert tally.data_lost == 0, tally.problems()
    assert tally.failures == 0, tally.problems()


def writer_has(writer: Writer, uid: str) -> bool:
    """True if the lake holds ``uid`` (asked without radops)."""
    if writer.s3:
        from botocore.exceptions import ClientError

        try:
            writer.client.head_object(Bucket=writer.bucket, Key=writer.prefix + uid)
        except ClientError:
            return False
        return True
    return (writer.root / uid).is_file()
