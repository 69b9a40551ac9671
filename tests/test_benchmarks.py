"""The benchmark suite runs: ``python -m benchmarks --quick`` completes with a row per case.

Its timings are not checked here (a benchmark, not a timed test): see docs/benchmarks.md.
The peer cases that run DVC (14, 15, 17) are not run here: DVC is in the ``bench`` extra,
not among the test dependencies, and the suite runs them only when they are named.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import run
from benchmarks.cases import CASES
from benchmarks.harness import Row
from benchmarks.peer_cases import NEEDS_DVC, PEER_CASES

ROOT = Path(__file__).resolve().parents[1]
# Every case that needs no DVC: the default suite and the in-process peer case (16).
WITHOUT_DVC = [*CASES, *(case for case in PEER_CASES if case not in NEEDS_DVC)]


# About 50 s on 2 idle cores; a machine shared with other test runs has needed over 280 s.
@pytest.mark.timeout(900)
def test_the_quick_benchmark_suite_runs_every_case(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    only = [arg for case in WITHOUT_DVC for arg in ("--only", case)]
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", *only, "--json", str(results)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-5000:]
    rows = json.loads(results.read_text())["rows"]
    assert {row["case"] for row in rows} == set(WITHOUT_DVC)
    for row in rows:
        assert row["radops"], row
        assert row["target"] or row["passed"] is None, row
    # The printed table has a line for every row, with its verdict.
    for row in rows:
        assert row["name"].strip()[:30] in completed.stdout, row["name"]
    assert "radops benchmarks (quick mode" in completed.stdout


def test_a_dvc_case_without_dvc_stops_at_once_saying_how_to_install_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dvc"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "14", "--dvc", str(missing)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 1
    assert completed.stdout == ""
    assert len(completed.stderr.splitlines()) == 1, completed.stderr
    assert "case 14 needs DVC" in completed.stderr
    assert "pip install -e '.[bench]'" in completed.stderr
    assert "--install-dvc" in completed.stderr


def test_write_doc_puts_peer_rows_in_their_own_section_and_keeps_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(
        f"# Benchmarks\n\nintro\n\n{run.START}\nold results\n{run.END}\n\nmiddle\n\n"
        f"{run.PEER_START}\nold peers\n{run.PEER_END}\n\nend\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(run, "DOC", doc)
    peer = Row("14", "publish 16 MB", "1.00 s", "2.00 s", "0.50x", "<= 0.75x", True)

    run.write_doc([peer], {"CPU": "test"}, "quick", 1.0, "python -m benchmarks --only 14")

    text = doc.read_text(encoding="utf-8")
    assert "old results" in text  # a run of peer cases only leaves the main table alone
    assert "old peers" not in text
    peers = text[text.index(run.PEER_START) : text.index(run.PEER_END)]
    assert "| 14 | publish 16 MB | 1.00 s | 2.00 s | 0.50x | <= 0.75x | pass |" in peers
    assert "`python -m benchmarks --only 14`" in peers
    assert text.startswith("# Benchmarks\n\nintro") and text.endswith("\n\nend\n")
    assert text.index("middle") < text.index(run.PEER_START)

    main = Row("4", "cached read", "1 µs", "1 µs", "1.00x", "<= 1.2x", True)
    run.write_doc([main, peer], {"CPU": "test"}, "full", 1.0, "python -m benchmarks --peers")

    text = doc.read_text(encoding="utf-8")
    results = text[text.index(run.START) : text.index(run.END)]
    assert "| 4 | cached read |" in results and "| 14 |" not in results
    assert "| 14 | publish 16 MB |" in text[text.index(run.PEER_START) :]
