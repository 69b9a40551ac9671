"""A radops step mapped over many inputs on a Dask cluster: parallel, race-safe, skippable.

    python scale_out.py                                 # a LocalCluster: 2 worker processes
    python scale_out.py --scheduler tcp://host:8786     # a running cluster

Stage 1 makes one file of readings per day (explicit uids), stage 2 summarizes each day
(implicit uids). A few stage-2 calls are submitted twice, so that two workers make the same
output at the same moment: radops lets exactly one of them create it, and the other returns
the winner's file. Run it again and every call, on every worker, is skipped. At the end the
client checks that every output has its creation recorded in the lake.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from distributed import Client, LocalCluster
from steps import Outcome, OwnHome, simulate_task, summarize_task

from radops.data_lake import File, default_lake


@contextlib.contextmanager
def connect(args: argparse.Namespace) -> Iterator[Client]:
    """A client of the cluster at ``--scheduler``, or of a new LocalCluster."""
    if args.scheduler:
        # Workers elsewhere: they need this example's steps.py (pip install your pipeline's
        # package on them, or client.upload_file("steps.py")) and their own RADOPS_* settings.
        with Client(args.scheduler) as client:
            client.wait_for_workers(1)
            print(f"cluster: {args.scheduler}, {len(client.scheduler_info()['workers'])} workers")
            yield client
        return
    lake = default_lake()  # the client's settings: RADOPS_* variables, config.toml, defaults
    homes = Path(args.worker_homes or lake.settings.home / "workers")
    # Worker processes inherit this process's environment, hence its RADOPS_* settings.
    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=args.threads,
            processes=True,
            dashboard_address=None,  # the dashboard needs bokeh, which this example does not
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(OwnHome(homes, lake.settings.remote))
        client.wait_for_workers(args.workers)
        print(
            f"cluster: LocalCluster, {args.workers} worker processes x {args.threads} thread(s), "
            f"each with its own RADOPS_HOME under {homes}"
        )
        yield client


def report(stage: str, outcomes: Sequence[Outcome], seconds: float) -> None:
    """Print, per worker, how many calls ran and how many were skipped."""
    print(f"\n{stage}: {len(outcomes)} calls in {seconds:.1f} s")
    print(f"{'worker':<10} {'calls':>5} {'ran':>5} {'skipped':>7}")
    for worker in sorted({o.worker for o in outcomes}):
        mine = [o for o in outcomes if o.worker == worker]
        skipped = sum(o.skipped for o in mine)
        print(f"{worker:<10} {len(mine):>5} {len(mine) - skipped:>5} {skipped:>7}")


def check_lineage(uids: Sequence[str]) -> list[str]:
    """The uids whose creation is not recorded as the run that made the object in the lake."""
    problems = []
    for uid in uids:
        info = File(uid).info
        creation: dict[str, Any] = dict(info.creation or {})
        run_id = creation.get("run", {}).get("runId")
        if creation.get("eventType") != "COMPLETE" or info.metadata.get("radops-run-id") != run_id:
            problems.append(uid)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheduler", help="address of a running scheduler, tcp://host:8786")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    parser.add_argument("--threads", type=int, default=1, help="threads per LocalCluster worker")
    parser.add_argument("--worker-homes", help="LocalCluster: where the workers' homes go")
    parser.add_argument("--days", type=int, default=12, help="inputs to map the step over")
    parser.add_argument("--duplicates", type=int, default=4, help="calls submitted twice")
    parser.add_argument("--threshold", type=float, default=17.0, help="summarize's parameter")
    args = parser.parse_args(argv)
    print(f"lake: {default_lake().settings.remote}")

    with connect(args) as client:
        days = list(range(1, args.days + 1))
        start = time.monotonic()
        # pure=False: each call is a task of its own (Dask would otherwise merge equal calls).
        made = client.gather(client.map(simulate_task, days, pure=False))
        report("simulate_day", made, time.monotonic() - start)

        # The first days twice, side by side, so that both workers run the same call at once.
        readings = [o.output for o in made]
        calls = [uid for uid in readings[: args.duplicates] for _ in range(2)]
        calls += readings[args.duplicates :]
        start = time.monotonic()
        summaries = client.gather(
            client.map(summarize_task, calls, threshold=args.threshold, pure=False)
        )
        report("summarize", summaries, time.monotonic() - start)

    ran = [o for o in summaries if not o.skipped]
    made_by_ran = {o.output for o in ran}
    if ran:
        # Both twins ran when they started together; only one could create the output.
        print(
            f"\nsummarize: {len(ran)} of {len(calls)} calls ran and made {len(made_by_ran)} "
            f"outputs; {len(ran) - len(made_by_ran)} call(s) lost the race to a twin, discarded "
            "their own output and returned the winner's (radops recorded them as ABORT)"
        )
    else:
        print(f"\nsummarize: all {len(calls)} calls were skipped: their outputs were in the lake")

    outputs = sorted({o.output for o in made} | {o.output for o in summaries})
    problems = check_lineage(outputs)
    print(
        f"lineage: {len(outputs) - len(problems)} of {len(outputs)} outputs have their creation "
        "recorded (a COMPLETE event of the run that made the object)"
    )
    for uid in problems:
        print(f"  no creation record: {uid}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
