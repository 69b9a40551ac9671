"""A writer held between its upload and its record, for ``test_hostile_keys.py``.

``python -m tests.reliability.namespaced_writer UID``, started by the test in another PID
namespace, with the lake and RADOPS_HOME of the environment. It creates UID as
``File(uid).open("w")`` does (START recorded, the object uploaded with this process's writer
token and run id), plus a temp file in local storage standing for its next output, and prints
``uploaded TOKEN TEMP``. Then it waits for a line on stdin: ``record`` records the creation
(COMPLETE) and exits; ``exit`` exits without recording it, as a killed writer would leave it.
"""

from __future__ import annotations

import hashlib
import sys

import attrs

from radops import writers
from radops.lake import DataLake
from radops.lineage.events import uuid7
from radops.lineage.naming import WRITE_JOB
from radops.objects import RUN_KEY

DATA = b"written in another PID namespace"


def main(uid: str) -> None:
    lake = DataLake.from_env()
    run_id = str(uuid7())
    creation = lake.command_creation(WRITE_JOB, run_id, uid)
    with writers.running(run_id):
        lake.lineage.emit(creation, "START")
        tmp = lake.local.temp_path(uid)
        tmp.write_bytes(DATA)
        sha256 = hashlib.sha256(DATA).hexdigest()
        lake.commit(uid, tmp, sha256, metadata={RUN_KEY: run_id})
        following = lake.local.temp_path("next.txt")
        following.write_bytes(b"the next output, still being written")
        print("uploaded", writers.current(), following, flush=True)
        if sys.stdin.readline().strip() != "record":
            return
        output = lake.dataset_ref(uid, sha256=sha256, size=len(DATA))
        lake.lineage.emit(attrs.evolve(creation, outputs=[output]), "COMPLETE")
        following.unlink()
    lake.local.close()


if __name__ == "__main__":
    main(sys.argv[1])
