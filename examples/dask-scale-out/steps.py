"""What the Dask workers run: two ``@file_creator`` steps and the tasks that call them.

The steps live in a module of their own, not in the script that starts the cluster: workers
import them by name (``steps.summarize``), so each worker process runs the same code, and
radops records the same job name (``steps.summarize``) and source whichever worker ran it.

Tasks receive uids (plain strings), never ``File`` handles or a ``DataLake``: each worker
process opens the lake its own settings describe (``RADOPS_*`` in its environment, or the
lake set up by :class:`OwnHome`), exactly as any radops program resolves its settings once, at
its own entry point.
"""

from __future__ import annotations

import csv
import json
import random
import statistics
from dataclasses import dataclass
from pathlib import Path

from distributed import Worker, get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from radops.data_lake import DataLake, File, file_creator, reporting_calls, set_default_lake

# -- the steps ----------------------------------------------------------------------------------


@file_creator
def simulate_day(day: int, output_uid: str) -> File:
    """A day of temperature readings, one every 5 minutes (seeded by the day: reproducible)."""
    rng = random.Random(day)  # noqa: S311 - simulated data, not secrets
    out = File(output_uid)
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["minute", "celsius"])
        for minute in range(0, 24 * 60, 5):
            daily_swing = 6 * (1 - abs(minute - 840) / 840)  # warmest at 14:00
            writer.writerow([minute, round(12 + daily_swing + rng.gauss(0, 1.5), 2)])
    return out


@file_creator
def summarize(readings: File, threshold: float) -> File:
    """Daily statistics of one day's readings, and the minutes spent above ``threshold``."""
    with readings.open("r", newline="") as handle:
        celsius = [float(row["celsius"]) for row in csv.DictReader(handle)]
    summary = {
        "readings": len(celsius),
        "mean": round(statistics.fmean(celsius), 3),
        "min": min(celsius),
        "max": max(celsius),
        "minutes_above": 5 * sum(value > threshold for value in celsius),
    }
    out = File(suffix=".json")  # implicit uid: the same call makes the same uid on any worker
    with out.open("w") as handle:
        json.dump(summary, handle, indent=2)
    return out


# -- the tasks: one step call each, and what happened --------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One task's result, sent back to the client: which worker, and ran or skipped."""

    worker: str
    output: str
    skipped: bool


def simulate_task(day: int) -> Outcome:
    """Make (or find) ``readings/day-NN.csv`` on this worker."""
    with reporting_calls() as calls:
        out = simulate_day(day, output_uid=f"readings/day-{day:02d}.csv")
    return Outcome(str(get_worker().name), out.uid, calls[-1].outcome == "skipped")


def summarize_task(readings_uid: str, threshold: float) -> Outcome:
    """Summarize one day on this worker; the readings are downloaded only if the step runs."""
    with reporting_calls() as calls:
        out = summarize(File(readings_uid), threshold=threshold)
    return Outcome(str(get_worker().name), out.uid, calls[-1].outcome == "skipped")


# -- several workers on one machine, each with a home of its own ---------------------------------


class OwnHome(WorkerPlugin):
    """Give each worker its own RADOPS_HOME (local storage and state), on the shared lake.

    On a real cluster each worker is on its own machine with its own home, and needs nothing
    of this. For a LocalCluster it makes the workers behave like separate machines: a worker
    finds out what exists from the lake, not from a cache it shares with the others. Every
    other setting still comes from the worker's environment (inherited from the client).
    """

    def __init__(self, base: Path, remote: str) -> None:
        self.base = base
        self.remote = remote  # pinned: a home's default lake would be a directory inside it

    def setup(self, worker: Worker) -> None:
        home = self.base / f"worker-{worker.name}"
        set_default_lake(DataLake.from_env(home=home, remote=self.remote))
