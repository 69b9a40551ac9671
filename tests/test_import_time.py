"""Importing radops stays light: heavy dependencies load only when they are first used."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("boto3", "botocore", "s3transfer", "openlineage", "rich", "requests")

_PROBE = """
import json, sys
import radops, radops.data_lake
from radops.data_lake import File, DataLake
from radops.settings import Settings
File("a/b.txt")
print(json.dumps(sorted(sys.modules)))
"""


def test_importing_radops_loads_no_heavy_dependency() -> None:
    """import radops, radops.data_lake and making a File load no boto3, openlineage or rich."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    modules = json.loads(result.stdout)
    assert "radops.data_lake" in modules
    loaded = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert loaded == []


_DIRECTORY_LAKE = """
import json, sys
from pathlib import Path
from radops.data_lake import DataLake, File
from radops.settings import Settings
root = Path(sys.argv[1])
lake = DataLake(Settings.load(env={}, home=root / "home", remote=str(root / "lake"), email="e@x"))
with File("a.txt", lake=lake).open("w") as handle:
    handle.write("x")
with File("a.txt", lake=lake).open() as handle:
    assert handle.read() == "x"
lake.local.close()
print(json.dumps(sorted(sys.modules)))
"""


def test_a_directory_lake_never_loads_boto3(tmp_path: Path) -> None:
    """Writing and reading on a directory remote works without importing boto3 at all."""
    result = subprocess.run(
        [sys.executable, "-c", _DIRECTORY_LAKE, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    modules = json.loads(result.stdout)
    assert sorted(m for m in modules if m.split(".")[0] in ("boto3", "botocore")) == []
