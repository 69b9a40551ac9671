"""One of the processes the concurrency tests start together. Configured by RADOPS_*.

``python -m tests.reliability.race_child same SIZE TAG BARRIER``: call ``step(SIZE, TAG)``,
whose two implicit outputs every process shares (same function, same parameters), with data
unique to the process. BARRIER ``before``: say ``ready`` and wait for a line on stdin before
the call; ``inside``: say ``staged`` once the outputs are written and wait there, so that all
processes reach the upload together. Prints one JSON line: what the call returned and read.

``python -m tests.reliability.race_child distinct FIRST COUNT``: create COUNT files with
distinct uids ``many/<n>.txt`` from FIRST on, after ``ready`` and a line on stdin.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

from radops.data_lake import File, file_creator

_BARRIER = {"mode": "before"}


def _wait(word: str) -> None:
    print(word, flush=True)
    sys.stdin.readline()


@file_creator
def step(size: int, tag: str) -> list[File]:
    """Data unique to this process (its pid leads), and a summary naming its sha256."""
    block = f"{tag} written by {os.getpid()}\n".encode().ljust(1024, b".")
    data = (block * (size // len(block) + 1))[:size]
    out = File(suffix=".bin")
    with out.open("wb") as handle:
        for start in range(0, size, 1 << 20):
            handle.write(data[start : start + (1 << 20)])
    summary = File(suffix=".txt")
    with summary.open("w") as handle:
        handle.write(hashlib.sha256(data).hexdigest())
    if _BARRIER["mode"] == "inside":
        _wait("staged")
    return [out, summary]


def _sha256_of(file: File) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def same(size: int, tag: str, barrier: str) -> None:
    _BARRIER["mode"] = barrier
    if barrier == "before":
        _wait("ready")
    outputs = step(size, tag)
    with outputs[1].open("r") as handle:
        summary = handle.read()
    result = {
        "uids": [f.uid for f in outputs],
        "data_sha256": _sha256_of(outputs[0]),
        "summary": summary,
    }
    print(json.dumps(result), flush=True)


def distinct(first: int, count: int) -> None:
    _wait("ready")
    for n in range(first, first + count):
        with File(f"many/{n}.txt").open("w") as handle:
            handle.write(f"file {n}\n")
    print(json.dumps({"created": count}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "same":
        same(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        distinct(int(sys.argv[2]), int(sys.argv[3]))
