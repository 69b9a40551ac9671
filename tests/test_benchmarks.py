"""The benchmark suite runs: ``python -m benchmarks --quick`` completes with a row per case.

Its timings are not checked here (a benchmark, not a timed test): see docs/benchmarks.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.cases import CASES

ROOT = Path(__file__).resolve().parents[1]


# About 50 s on 2 idle cores; a machine shared with other test runs has needed over 280 s.
@pytest.mark.timeout(900)
def test_the_quick_benchmark_suite_runs_every_case(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(results)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-5000:]
    rows = json.loads(results.read_text())["rows"]
    assert {row["case"] for row in rows} == set(CASES)
    for row in rows:
        assert row["radops"], row
        assert row["target"] or row["passed"] is None, row
    # The printed table has a line for every row, with its verdict.
    for row in rows:
        assert row["name"].strip()[:30] in completed.stdout, row["name"]
    assert "radops benchmarks (quick mode" in completed.stdout
