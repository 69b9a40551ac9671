"""The pipeline the shared-lake tests run on fresh machines (subprocesses), next to planted records.

``python -m tests.reliability.shared_lake_pipeline INPUT OUTPUT`` reads the text file INPUT,
makes its upper-case copy (an implicit output) and a line count of that copy (the declared
output OUTPUT), and prints ``{"upper": ..., "count": ..., "upper_uid": ...}`` (JSON) on stdout:
what the pipeline returned, read back from the files. Configured by RADOPS_* like any user's
script; radops' messages go to stderr. A radops error ends it with ``error: MESSAGE`` and exit
code 1, as a careful script would: any traceback is therefore an error radops did not mean.
"""

from __future__ import annotations

import json
import sys

from radops.data_lake import File, file_creator
from radops.errors import RadopsError


def expected(text: str) -> dict[str, str]:
    """What the pipeline must print for an input holding ``text`` (uids aside)."""
    upper = text.upper()
    return {"upper": upper, "count": f"{len(upper.splitlines())} line(s)\n"}


@file_creator
def shout(source: File) -> File:
    """The input in upper case, as an implicit output."""
    out = File(suffix=".txt")
    with source.open("r") as handle, out.open("w") as target:
        target.write(handle.read().upper())
    return out


@file_creator
def count(text: File, output_uid: str) -> File:
    """How many lines ``text`` has, as the declared output ``output_uid``."""
    out = File(output_uid)
    with text.open("r") as handle, out.open("w") as target:
        target.write(f"{len(handle.read().splitlines())} line(s)\n")
    return out


def main(source: str, output: str) -> None:
    upper = shout(File(source))
    counted = count(upper, output_uid=output)
    with upper.open("r") as first, counted.open("r") as second:
        result = {"upper": first.read(), "count": second.read(), "upper_uid": upper.uid}
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    try:
        main(sys.argv[1], sys.argv[2])
    except RadopsError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(1)
