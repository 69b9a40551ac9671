"""Secrets never leak: not to stdout or stderr, lineage events, the outbox or the local index.

A pipeline and the CLI run as real subprocesses with recognisable fake secrets in their
environment and a Marquez URL on a closed port (so events wait in the outbox); then every byte
they printed or wrote is searched for the secrets.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from radops.data_lake import File, file_creator
from tests.conftest import TEST_EMAIL

REPO = Path(__file__).resolve().parents[2]
SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "fake-aws-secret-ABC987",
    "RADOPS_MARQUEZ_API_KEY": "fake-api-key-XYZ123",
    "OPENLINEAGE__TRANSPORT__AUTH__APIKEY": "fake-ol-token-QRS456",
}
URL_SECRETS = ("fake-url-password-MNO654", "fake-sig-JKL321")


@file_creator
def shout(src: File, output_uid: str) -> File:
    with src.open() as handle:
        text = handle.read()
    out = File(output_uid)
    with out.open("w") as handle:
        handle.write(text.upper())
    return out


PIPELINE = (
    "from radops.data_lake import File\n"
    "from tests.reliability.test_secrets import shout\n"
    "raw = File('raw.txt')\n"
    "with raw.open('w') as handle:\n"
    "    handle.write('hello')\n"
    "print(shout(raw, output_uid='loud.txt').uid)\n"
)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(env: dict[str, str], *args: str, ok: bool | None = True) -> str:
    """Run ``python *args`` from the repository; return its stdout and stderr together."""
    done = subprocess.run(
        [sys.executable, *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ok is None or (done.returncode == 0) == ok, (
        f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout + done.stderr


def _files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
def test_secrets_appear_nowhere(tmp_path: Path, remote: str) -> None:
    """No fake secret is printed or stored, and no event records environment variables."""
    home = tmp_path / "home"
    env = {
        **os.environ,
        **SECRETS,
        "PYTHONPATH": str(REPO),
        "RADOPS_HOME": str(home),
        "RADOPS_REMOTE": remote,
        "RADOPS_EMAIL": TEST_EMAIL,
        "RADOPS_MARQUEZ_URL": f"http://127.0.0.1:{_closed_port()}",
        "RADOPS_LINEAGE_TIMEOUT": "1",
        "COLUMNS": "200",
    }
    output = [_run(env, "-c", PIPELINE)]
    cli = ["-m", "radops"]
    for command in (
        ["config", "show"],
        ["config", "show", "--json"],
        ["datalake", "ls", "--json"],
        ["datalake", "info", "loud.txt", "--json"],
        ["datalake", "lineage", "loud.txt", "--json"],
        ["lineage", "export"],
        ["lineage", "flush"],
    ):
        output.append(_run(env, *cli, *command, ok=None if "flush" in command else True))
    output.append(_run(env, *cli, "datalake", "info", "missing.txt", ok=False))
    debug = {**env, "RADOPS_LOG_LEVEL": "DEBUG"}
    output.append(_run(debug, *cli, "lineage", "flush", ok=None))
    url = "http://alice:fake-url-password-MNO654@127.0.0.1:1/x?X-Amz-Signature=fake-sig-JKL321"
    output.append(_run(debug, *cli, "datalake", "add", url, "x.bin", ok=False))

    assert "loud.txt" in output[0]
    assert "(set, hidden)" in output[1]
    outbox = _files(home / "state" / "outbox")
    assert outbox, "with Marquez down the events wait in the outbox"
    indexes = list((home / "state").glob("*.sqlite*"))
    assert indexes
    events = _files(Path(remote) / ".radops")
    assert events
    for secret in (*SECRETS.values(), *URL_SECRETS):
        for text in output:
            assert secret not in text
        for path in [*_files(home), *_files(Path(remote))]:
            assert secret.encode() not in path.read_bytes(), path
    for path in [*events, *outbox]:
        assert b"environmentVariables" not in path.read_bytes(), path
    exported = [json.loads(line) for line in output[6].splitlines() if line.startswith("{")]
    assert exported
    for event in exported:
        assert "environmentVariables" not in json.dumps(event)
