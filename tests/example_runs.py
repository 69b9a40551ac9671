"""Running an example as a user would: a subprocess on the SeaweedFS lake, radops on PATH."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from tests.conftest import REPO_ROOT, TEST_EMAIL
from tests.seaweed import SeaweedServer

EXAMPLES = REPO_ROOT / "examples"


def s3_user_env(seaweed: SeaweedServer, home: Path, name: str) -> dict[str, str]:
    """The environment of a user whose lake is a fresh prefix of the test bucket.

    This venv's bin comes first on PATH (``radops``, ``python``), and PYTHONPATH names this
    checkout, so its radops runs even when the venv's editable install points at another.
    The AWS credentials are those the session fixture put in the environment.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "PYTHON"}
    }
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(REPO_ROOT),
        RADOPS_HOME=str(home),
        RADOPS_REMOTE=f"s3://lake/{name}-{uuid.uuid4().hex[:8]}",
        RADOPS_S3_ENDPOINT_URL=seaweed.endpoint,
        RADOPS_EMAIL=TEST_EMAIL,
    )
    return env


def run(
    command: Sequence[str], env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` and check that it passed, showing its output if it did not."""
    result = subprocess.run(
        list(command),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result
