"""A small pipeline that the crash and concurrency tests run in subprocesses (and kill).

``python -m tests.reliability.crash_pipeline TRIAL SIZE CALLS`` makes, for each of CALLS seeds,
two implicit outputs (SIZE bytes of deterministic data and a text summary), then one explicit
output that combines the summaries. Configured by RADOPS_* like any user's script. Prints
``ready`` once imports are done, then the uids of every output (a JSON list), then ``done``.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys

from radops.data_lake import File, file_creator

_BLOCK = 1024 * 1024


def data(seed: int, size: int) -> bytes:
    """The bytes ``make(seed, size)`` writes: a random block of the seed, repeated."""
    block = random.Random(seed).randbytes(min(size, _BLOCK))
    return (block * (size // len(block) + 1))[:size]


def summary(seed: int, size: int) -> str:
    """The text ``make(seed, size)`` writes beside its data."""
    return f"seed {seed} size {size} sha256 {hashlib.sha256(data(seed, size)).hexdigest()}\n"


@file_creator
def make(seed: int, size: int) -> list[File]:
    """Two implicit outputs: the data, then its summary."""
    out = File(suffix=".bin")
    with out.open("wb") as handle:
        payload = data(seed, size)
        for start in range(0, size, _BLOCK):
            handle.write(payload[start : start + _BLOCK])
    text = File(suffix=".txt")
    with text.open("w") as handle:
        handle.write(summary(seed, size))
    return [out, text]


@file_creator
def combine(summaries: list[File], output_uid: str) -> File:
    """One explicit output: the summaries, concatenated."""
    out = File(output_uid)
    with out.open("w") as handle:
        for each in summaries:
            with each.open("r") as part:
                handle.write(part.read())
    return out


def seeds(trial: int, calls: int) -> list[int]:
    """The seeds of one trial's calls."""
    return [trial * 1000 + n for n in range(calls)]


def combined_uid(trial: int) -> str:
    """The explicit output of one trial."""
    return f"crash/combined-{trial}.txt"


def run(trial: int, size: int, calls: int) -> list[File]:
    """Every call of one trial; returns every output: each call's two, then the combined one."""
    made = [file for seed in seeds(trial, calls) for file in make(seed, size)]
    return [*made, combine(made[1::2], output_uid=combined_uid(trial))]


def expected(trial: int, size: int, calls: int) -> list[bytes]:
    """The bytes of each output :func:`run` returns, in the same order."""
    texts = [summary(seed, size) for seed in seeds(trial, calls)]
    made = [
        part
        for seed, text in zip(seeds(trial, calls), texts, strict=True)
        for part in (data(seed, size), text.encode())
    ]
    return [*made, "".join(texts).encode()]


if __name__ == "__main__":
    trial, size, calls = (int(arg) for arg in sys.argv[1:4])
    print("ready", flush=True)
    outputs = run(trial, size, calls)
    print(json.dumps([file.uid for file in outputs]), flush=True)
    print("done", flush=True)
