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


# -- passwords in the URLs of settings --------------------------------------------------------

PASSWORD = "fake-url-password-TUV852"


def _invoke(env: dict[str, str], *args: str, code: int) -> str:
    """``radops ARGS`` in-process: exit ``code`` without a traceback; stdout and stderr."""
    from typer.testing import CliRunner

    from radops.cli.app import app

    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **env})
    output = result.stdout + result.stderr
    assert not isinstance(result.exception, Exception), f"{result.exception!r}\n{output}"
    assert result.exit_code == code, output
    assert "Traceback" not in output
    return output


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
def test_an_unreachable_marquez_never_shows_its_password(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """The warning that Marquez is unreachable names it without the password of its URL,
    and so does a flush of the events waiting for it."""
    env = {
        **cli_env,
        "RADOPS_MARQUEZ_URL": f"http://alice:{PASSWORD}@127.0.0.1:{_closed_port()}",
        "RADOPS_LINEAGE_TIMEOUT": "1",
    }
    source = tmp_path / "kept.txt"
    source.write_text("kept")
    _invoke(env, "datalake", "add", str(source), code=0)  # its events wait in the outbox
    shown = _invoke(env, "datalake", "lineage", "kept.txt", code=0)
    assert "is unreachable" in shown and "http://alice@127.0.0.1:" in shown
    flushed = _invoke(env, "lineage", "flush", code=1)
    for output in (shown, flushed):
        assert PASSWORD not in output


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("RADOPS_MARQUEZ_URL", f"http://alice:{PASSWORD}@"),  # no host: requests repeats it
        ("RADOPS_MARQUEZ_URL", f"http://alice:{PASSWORD}@127.0.0.1:99999"),  # no such port
        ("RADOPS_MARQUEZ_URL", f"ftp://alice:{PASSWORD}@example.org"),
        ("RADOPS_S3_ENDPOINT_URL", f"http://alice:{PASSWORD}@127.0.0.1:port"),
        ("RADOPS_REMOTE", f"https://alice:{PASSWORD}@example.org/lake"),
    ],
)
@pytest.mark.parametrize("remote", ["directory"], indirect=True)
def test_a_malformed_url_is_one_error_without_its_password(
    cli_env: dict[str, str], setting: str, value: str
) -> None:
    """A URL setting that cannot work is one `error:` line naming it, its password hidden;
    `config set` refuses it the same way."""
    env = {**cli_env, setting: value}
    for command in (["config", "show"], ["datalake", "ls"]):
        output = _invoke(env, *command, code=1)
        assert output.startswith("error: ") and len(output.splitlines()) == 1, output
        assert "alice@" in output and PASSWORD not in output
    if setting != "RADOPS_REMOTE":
        name = setting.removeprefix("RADOPS_").lower()
        output = _invoke(cli_env, "config", "set", name, value, code=1)
        assert "alice@" in output and PASSWORD not in output


def test_an_s3_endpoint_with_a_password_is_never_shown(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Errors of the store name its endpoint without the password of its URL, also where
    botocore repeats the URL, and `config show` hides it."""
    endpoint = request.getfixturevalue("seaweed").endpoint
    with_password = endpoint.replace("://", f"://alice:{PASSWORD}@", 1)
    env = {
        "RADOPS_HOME": str(tmp_path / "home"),
        "RADOPS_REMOTE": "s3://no-such-bucket-for-secrets/lake",
        "RADOPS_EMAIL": TEST_EMAIL,
        "RADOPS_S3_ENDPOINT_URL": with_password,
    }
    missing = _invoke(env, "datalake", "ls", code=1)
    assert "alice@" in missing and PASSWORD not in missing
    shown = _invoke(env, "config", "show", code=0)
    assert "alice@" in shown and PASSWORD not in shown
    # An unreachable endpoint takes minutes of retries: its error, made as radops makes it.
    from botocore.exceptions import EndpointConnectionError

    from radops.stores.s3 import S3Store

    store = S3Store("s3://lake/x", endpoint_url=f"http://alice:{PASSWORD}@127.0.0.1:1")
    unreachable = EndpointConnectionError(endpoint_url=store.endpoint_url)
    failure = store._fail("list", "the lake", unreachable)
    assert "alice@127.0.0.1:1" in str(failure) and PASSWORD not in str(failure)
    assert PASSWORD not in repr(store)
