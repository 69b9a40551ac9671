"""examples/dask-scale-out runs as written: two worker processes on S3, racing, then skipping."""

from __future__ import annotations

import json
import re
from collections import Counter

from radops.lineage.events import function_of
from tests.example_runs import EXAMPLES, run, s3_user_env

SCRIPT = EXAMPLES / "dask-scale-out" / "scale_out.py"
DAYS, DUPLICATES = 10, 4


def per_worker(stdout: str, stage: str) -> dict[str, tuple[int, int, int]]:
    """The stage's table: worker -> (calls, ran, skipped)."""
    table = stdout.split(f"\n{stage}: ", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^(\S+) +(\d+) +(\d+) +(\d+)$", table, re.MULTILINE)
    return {worker: (int(calls), int(ran), int(skipped)) for worker, calls, ran, skipped in rows}


def test_dask_workers_race_safely_rerun_skips_everywhere_and_lineage_is_complete(seaweed, tmp_path):
    """Two workers make every output once (twins race), a rerun skips on both, all recorded."""
    env = s3_user_env(seaweed, tmp_path / "client-home", "dask-scale-out")
    command = ["python", str(SCRIPT), "--days", str(DAYS), "--duplicates", str(DUPLICATES)]
    command += ["--worker-homes", str(tmp_path / "workers")]

    first = run(command, env, tmp_path, timeout=120).stdout
    assert f"lake: {env['RADOPS_REMOTE']}\n" in first
    assert "cluster: LocalCluster, 2 worker processes x 1 thread(s)" in first
    made = per_worker(first, "simulate_day")
    assert sum(calls for calls, _, _ in made.values()) == DAYS
    assert all(ran == calls for calls, ran, _ in made.values())
    summarized = per_worker(first, "summarize")
    assert set(summarized) == {"0", "1"}  # both workers summarized days, in parallel
    n_calls = DAYS + DUPLICATES
    assert sum(c for c, _, _ in summarized.values()) == n_calls
    n_ran = sum(r for _, r, _ in summarized.values())
    assert DAYS <= n_ran <= n_calls  # each output made once; a twin lost the race or skipped
    lost = n_ran - DAYS
    assert (
        f"summarize: {n_ran} of {n_calls} calls ran and made {DAYS} outputs; {lost} call(s) lost "
        "the race to a twin" in first
    )
    assert f"lineage: {2 * DAYS} of {2 * DAYS} outputs have their creation recorded" in first

    # A rerun, on new worker processes: every call on every worker is skipped.
    second = run(command, env, tmp_path, timeout=120)
    for stage, expected_calls in (("simulate_day", DAYS), ("summarize", n_calls)):
        table = per_worker(second.stdout, stage)
        assert set(table) == {"0", "1"}, second.stdout
        assert sum(c for c, _, _ in table.values()) == expected_calls
        assert all(ran == 0 and skipped == calls for calls, ran, skipped in table.values())
    assert f"summarize: all {n_calls} calls were skipped" in second.stdout
    skips = re.findall(r"^radops: steps\.(\w+) skipped: ", second.stderr, re.MULTILINE)
    assert Counter(skips) == {"simulate_day": DAYS, "summarize": n_calls}

    # What the lake recorded, read as any user can: one COMPLETE event per output (the twins
    # that lost recorded ABORT), no failure, and every file in the lake is one of them.
    events = [
        json.loads(line)
        for line in run(["radops", "lineage", "export"], env, tmp_path).stdout.splitlines()
    ]
    completes = Counter(
        uid
        for event in events
        if event["eventType"] == "COMPLETE"
        for uid in event["run"]["facets"]["radops_run"]["outputs"]
    )
    assert len(completes) == 2 * DAYS and set(completes.values()) == {1}
    states = Counter((function_of(event), event["eventType"]) for event in events)
    assert states == {
        ("steps.simulate_day", "COMPLETE"): DAYS,
        ("steps.summarize", "COMPLETE"): DAYS,
        **({("steps.summarize", "ABORT"): lost} if lost else {}),
    }
    listing = run(["radops", "datalake", "ls", "--json"], env, tmp_path).stdout.splitlines()
    assert {json.loads(line)["uid"] for line in listing} == set(completes)
    summary = next(uid for uid in completes if uid.startswith("steps.summarize/"))
    local = run(["radops", "datalake", "local-path", summary], env, tmp_path).stdout.strip()
    with open(local, encoding="utf-8") as handle:
        assert json.load(handle)["readings"] == 288
