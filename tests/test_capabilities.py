"""A fault test that needs a capability the machine lacks skips, fails when it is required, and
has a row saying so in the reliability report either way.

The machine is made to lack ``userns`` for real: a nested pytest runs with a PATH on which
there is no ``unshare``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.reliability.render import render

ROOT = Path(__file__).resolve().parents[1]
ONE_FAULT_TEST = "tests/reliability/test_local_disk.py::test_a_full_local_disk_fails_cleanly"
MISSING = "needs unshare (util-linux) on PATH"


def _pytest_without_unshare(
    tmp_path: Path, *args: str, require: str | None = None
) -> subprocess.CompletedProcess[str]:
    empty = tmp_path / "bin"
    empty.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "RADOPS_"))}
    env["PATH"] = str(empty)
    if require is not None:
        env["RADOPS_TEST_REQUIRE"] = require
    inner = ["-p", "no:xdist", "-p", "no:cacheprovider", "-q", "--basetemp", str(tmp_path / "in")]
    return subprocess.run(
        [sys.executable, "-m", "pytest", *inner, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def _statuses(report: Path) -> list[dict[str, str]]:
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    return [line for line in lines if "status" in line]


def test_a_missing_capability_skips_and_the_report_shows_it(tmp_path: Path) -> None:
    """Not required: the test is skipped, naming what is missing; its report row says so."""
    report = tmp_path / "r.jsonl"
    done = _pytest_without_unshare(
        tmp_path, f"{ONE_FAULT_TEST}[directory-write]", "--reliability-report", str(report), "-rs"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 skipped" in done.stdout
    assert MISSING in done.stdout
    [status] = _statuses(report)
    assert status["status"] == "skipped"
    assert status["reason"].startswith(MISSING)
    assert "RADOPS_TEST_REQUIRE=userns" in status["reason"]
    table = render(report)
    assert "| `test_a_full_local_disk_fails_cleanly[directory-write]` | - |" in table
    assert f"| skipped: {MISSING}" in table
    assert table.endswith("Fault tests: 1 skipped.\n")


def test_a_required_capability_that_is_missing_fails_the_run(tmp_path: Path) -> None:
    """RADOPS_TEST_REQUIRE=userns: the same test fails with its one-line reason."""
    report = tmp_path / "r.jsonl"
    done = _pytest_without_unshare(
        tmp_path,
        f"{ONE_FAULT_TEST}[directory-write]",
        "--reliability-report",
        str(report),
        require="userns",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 error" in done.stdout
    assert "skipped" not in done.stdout
    assert f"{MISSING} (required: RADOPS_TEST_REQUIRE=userns)" in done.stdout
    [status] = _statuses(report)
    assert status["status"] == "error"
    assert status["reason"] == f"Failed: {MISSING} (required: RADOPS_TEST_REQUIRE=userns)"
    assert render(report).endswith("Fault tests: 1 error.\n")


def test_an_unknown_capability_is_a_usage_error(tmp_path: Path) -> None:
    """A misspelt capability would require nothing: pytest refuses to start."""
    done = _pytest_without_unshare(tmp_path, ONE_FAULT_TEST, require="userns,usrns")
    assert done.returncode == 4, done.stdout + done.stderr
    assert "unknown capability usrns" in done.stderr
