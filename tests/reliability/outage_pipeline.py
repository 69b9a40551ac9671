"""The pipeline the object-store outage test runs in a subprocess: 200 small creations.

``python -m tests.reliability.outage_pipeline COUNT PACE`` calls the ``make_item`` step COUNT
times with distinct parameters on the lake configured by the environment (RADOPS_*), sleeping
PACE seconds after each call. One line per call on stdout, flushed, so the test can see how far
it got and time the fault::

    done <index> ran|skipped <seconds the call took>
    error <index> <exception type>: <message>      (then exit code 3)
"""

from __future__ import annotations

import sys
import time

from radops.data_lake import File, file_creator

RAN: list[int] = []


def output_uid(index: int) -> str:
    return f"outage/item-{index:03d}.txt"


def content(index: int) -> str:
    """What ``make_item(index)`` writes: small, and different for every index."""
    return f"item {index}\n" + f"{index:03d}," * 32 + "\n"


@file_creator
def make_item(index: int, output_uid: str) -> File:
    RAN.append(index)
    out = File(output_uid)
    with out.open("w") as handle:
        handle.write(content(index))
    return out


def main(count: int, pace: float) -> int:
    for index in range(count):
        started = time.monotonic()
        before = len(RAN)
        try:
            make_item(index, output_uid=output_uid(index))
        except Exception as exc:  # noqa: BLE001 - reported to the test, which judges it
            message = str(exc).replace("\n", " ")
            print(f"error {index} {type(exc).__name__}: {message}", flush=True)
            return 3
        how = "ran" if len(RAN) > before else "skipped"
        print(f"done {index} {how} {time.monotonic() - started:.3f}", flush=True)
        time.sleep(pace)
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), float(sys.argv[2])))
