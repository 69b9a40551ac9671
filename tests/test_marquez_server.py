"""Where the real Marquez cannot be had, the tests that need it say so in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

PROBE = (
    "from tests.marquez_server import MarquezUnavailable, resolve_marquez\n"
    "try:\n"
    "    resolve_marquez()\n"
    "except MarquezUnavailable as exc:\n"
    "    print(exc)\n"
)


def _probe(tmp_path: Path, path: str) -> str:
    env = {
        **os.environ,
        "PATH": path,
        "PYTHONPATH": str(REPO_ROOT),
        "RADOPS_TEST_CACHE": str(tmp_path / "cache"),  # empty: Maven would have to resolve
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def test_without_maven_the_reason_names_it_and_how_to_install(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    said = _probe(tmp_path, str(empty))
    assert said.count("\n") == 1  # one line
    assert said.startswith("Maven is missing (mvn not on PATH): apt-get install ")
    assert "maven" in said and "openjdk-17-jre-headless" in said and "postgresql" in said


def test_without_java_the_reason_names_it(tmp_path: Path) -> None:
    only_maven = tmp_path / "bin"
    only_maven.mkdir()
    (only_maven / "mvn").symlink_to("/bin/true")
    said = _probe(tmp_path, str(only_maven))
    assert said.startswith("Java is missing (java not on PATH): apt-get install ")
