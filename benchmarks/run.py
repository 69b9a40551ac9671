"""Run the benchmark suite: ``python -m benchmarks [--quick] [--only CASE] [--peers]``.

Starts its own SeaweedFS (``weed mini``) on free loopback ports, runs each case (radops and
its baseline in the same run, interleaved, after a warm-up), and prints one table row per
measurement: radops' median, the baseline's median, their ratio, the target, pass or MISS.
``--write-doc`` puts the table and the machine description into ``docs/benchmarks.md``.

The peer cases (radops against DVC and joblib, :mod:`benchmarks.peer_cases`) run only when
named, with ``--peers`` or ``--only``: DVC is not among the test dependencies.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.harness import BUCKET, Context, Row, machine_description

if TYPE_CHECKING:
    from tests.seaweed import SeaweedServer

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
START = "<!-- results: start (written by python -m benchmarks --write-doc) -->"
END = "<!-- results: end -->"
PEER_START = "<!-- peer results: start (written by python -m benchmarks --write-doc) -->"
PEER_END = "<!-- peer results: end -->"
HEADERS = ("case", "measurement", "radops", "baseline", "ratio", "target", "result", "note")


def _environment() -> None:
    """No AWS or RADOPS setting of the machine leaks in; boto3 gets the test server's keys."""
    from tests.seaweed import SeaweedServer

    for name in list(os.environ):
        if name.startswith(("RADOPS_", "AWS_", "OPENLINEAGE")):
            del os.environ[name]
    # Subprocesses (the radops console script, python -c ...) import this checkout's radops,
    # not whatever an editable install elsewhere points at.
    root = str(Path(__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    os.environ.update(
        AWS_ACCESS_KEY_ID=SeaweedServer.access_key,
        AWS_SECRET_ACCESS_KEY=SeaweedServer.secret_key,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )


def _warm_server(server: SeaweedServer) -> None:
    """Let SeaweedFS set up its storage before anything is timed: the first writes to a new
    server wait about a second while it grows its volumes (a one-off of this server, not of S3),
    and would be charged to whichever tool happened to write first."""
    from concurrent.futures import ThreadPoolExecutor

    client = server.client()
    keys = [f"warm-up/{n}" for n in range(16)]
    with ThreadPoolExecutor(len(keys)) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=BUCKET, Key=key, Body=b"x"), keys))
    for key in keys:
        client.delete_object(Bucket=BUCKET, Key=key)


def _cells(row: Row) -> list[str]:
    return [
        row.case,
        row.name,
        row.radops,
        row.baseline,
        row.ratio,
        row.target,
        row.verdict,
        row.note,
    ]


def print_table(rows: list[Row], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for header in HEADERS:
        table.add_column(header, overflow="fold")
    for row in rows:
        style = {"pass": "green", "MISS": "bold red"}.get(row.verdict)
        table.add_row(*_cells(row), style=style)
    Console(width=200).print(table)


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for row in rows:
        cells = [cell.replace("|", "\\|") for cell in _cells(row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _section(
    rows: list[Row], machine: dict[str, str], mode: str, elapsed: float, command: str
) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    described = "\n".join(f"- {key}: {value}" for key, value in machine.items())
    return (
        f"Measured {when}, {mode} mode, in {elapsed:.0f} s, with `{command}`.\n\n"
        f"{described}\n\n{markdown_table(rows)}"
    )


def write_doc(
    rows: list[Row], machine: dict[str, str], mode: str, elapsed: float, command: str
) -> None:
    """Put the rows into their sections of the page: the peer cases' (14-17) into the peer
    results, the others into the results; a section without rows in this run is kept."""
    from benchmarks.peer_cases import PEER_CASES

    text = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
    groups = (
        ([r for r in rows if r.case not in PEER_CASES], START, END),
        ([r for r in rows if r.case in PEER_CASES], PEER_START, PEER_END),
    )
    for group, start, end in groups:
        if not group:
            continue
        section = f"{start}\n\n{_section(group, machine, mode, elapsed, command)}\n\n{end}"
        if start in text and end in text:
            pattern = re.escape(start) + ".*?" + re.escape(end)
            text = re.sub(pattern, lambda _, new=section: new, text, count=1, flags=re.S)
        else:
            text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    from benchmarks.cases import CASES
    from benchmarks.peer_cases import (
        DVC_VENV,
        NEEDS_DVC,
        PEER_CASES,
        dvc_description,
        find_dvc,
        install_dvc,
        missing_dvc,
    )

    every = {**CASES, **PEER_CASES}
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats (CI)")
    parser.add_argument(
        "--only",
        action="append",
        choices=list(every),
        metavar="CASE",
        help="run this case only (repeatable): " + ", ".join(every),
    )
    parser.add_argument(
        "--peers",
        action="store_true",
        help="also run the peer cases (" + ", ".join(PEER_CASES) + "): radops vs DVC and joblib",
    )
    parser.add_argument(
        "--dvc",
        type=Path,
        metavar="PATH",
        help=f"the dvc executable of the peer cases (default: beside this Python, or {DVC_VENV})",
    )
    parser.add_argument(
        "--install-dvc",
        action="store_true",
        help=f"install the pinned DVC and dvc-s3 into {DVC_VENV} (a venv of their own) first",
    )
    parser.add_argument("--write-doc", action="store_true", help=f"write the results to {DOC}")
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="also write the rows to FILE, as JSON"
    )
    parser.add_argument(
        "--profile", action="store_true", help="print where the radops side spends its time"
    )
    parser.add_argument(
        "--profile-sort",
        default="cumulative",
        metavar="KEY",
        help="order of --profile's lines: a pstats key (cumulative, tottime...)",
    )
    args = parser.parse_args(argv)
    if args.install_dvc:
        print(f"installed {install_dvc()}", file=sys.stderr, flush=True)
        if not (args.only or args.peers):
            return 0
    chosen = args.only or [*CASES, *(PEER_CASES if args.peers else [])]
    dvc = None
    if any(case in NEEDS_DVC for case in chosen):
        dvc = find_dvc(args.dvc)
        if dvc is None:
            needing = [case for case in chosen if case in NEEDS_DVC]
            print(f"python -m benchmarks: {missing_dvc(needing)}", file=sys.stderr)
            return 1

    _environment()
    from tests.seaweed import start_seaweed

    started = time.monotonic()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="radops-bench-") as scratch:
        root = Path(scratch)
        (root / "seaweed").mkdir()
        server = start_seaweed(root / "seaweed")
        ctx = Context(
            server,
            root,
            quick=args.quick,
            profile=args.profile,
            profile_sort=args.profile_sort,
            dvc=dvc,
        )
        try:
            server.create_bucket(BUCKET)
            _warm_server(server)
            machine = machine_description(server)
            if any(case in PEER_CASES for case in chosen):
                import joblib

                machine["joblib"] = joblib.__version__
            if dvc is not None:
                machine["DVC"] = dvc_description(dvc)
            for case in chosen:
                began = time.monotonic()
                print(f"case {case}...", file=sys.stderr, flush=True)
                found = every[case](ctx)
                rows.extend(found)
                for row in found:
                    print(
                        f"  {row.name}: {row.radops} vs {row.baseline} {row.ratio} "
                        f"{row.target} {row.verdict}",
                        file=sys.stderr,
                        flush=True,
                    )
                print(f"  ({time.monotonic() - began:.1f} s)", file=sys.stderr, flush=True)
            marquez = ctx.marquez_description()
            if marquez is not None:
                machine["Marquez"] = marquez
        finally:
            ctx.close()
            server.stop()
    elapsed = time.monotonic() - started
    mode = "quick" if args.quick else "full"
    print_table(rows, f"radops benchmarks ({mode} mode, {elapsed:.0f} s)")
    for text in ctx.profiles:
        print(text)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"mode": mode, "machine": machine, "rows": [asdict(r) for r in rows]}, indent=2
            ),
            encoding="utf-8",
        )
    if args.write_doc:
        shown = argv if argv is not None else sys.argv[1:]
        write_doc(rows, machine, mode, elapsed, " ".join(["python -m benchmarks", *shown]))
        print(f"written to {DOC}")
    return 0
