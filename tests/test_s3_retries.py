"""A store that does not answer: radops says so at once, retries for a bounded time, gives up.

The endpoint is a loopback port nothing listens on (connections are refused at once), so no
server is needed and nothing leaves the machine.
"""

from __future__ import annotations

import itertools
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from radops.errors import StoreError
from radops.stores.s3 import GIVE_UP_AFTER, S3Store


def stderr_lines(process: subprocess.Popen[str], seconds: float) -> Iterator[tuple[float, str]]:
    """The lines ``process`` writes on stderr within ``seconds``, each with when it came."""
    assert process.stderr is not None
    started = time.monotonic()
    with selectors.DefaultSelector() as selector:
        selector.register(process.stderr, selectors.EVENT_READ)
        while (left := started + seconds - time.monotonic()) > 0:
            if not selector.select(timeout=left):
                return
            line = process.stderr.readline()
            if not line:
                return
            yield time.monotonic() - started, line.rstrip("\n")


@pytest.mark.parametrize("command", [["ls"], ["add", "__file__", "x.txt"]])
def test_an_unreachable_store_is_announced_within_two_seconds(
    tmp_path: Path, closed_endpoint: str, command: list[str]
) -> None:
    """``ls`` and ``add`` say on stderr, at once, that the store is not answering, that radops
    retries and until when, rather than staying silent for most of a minute."""
    source = tmp_path / "s.txt"
    source.write_text("data\n")
    args = [str(source) if arg == "__file__" else arg for arg in command]
    env = {
        **os.environ,
        "RADOPS_HOME": str(tmp_path / "home"),
        "RADOPS_REMOTE": "s3://lake/x",
        "RADOPS_S3_ENDPOINT_URL": closed_endpoint,
        "RADOPS_EMAIL": "tester@example.com",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "radops", "datalake", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen = list(itertools.islice(stderr_lines(process, seconds=8), 1))
    finally:
        process.kill()
        process.wait()
        assert process.stderr is not None
        process.stderr.close()
    assert seen, "nothing on stderr within 8 s"
    when, line = seen[0]
    assert when < 2.5, seen  # the interpreter's start-up included
    assert "is not answering" in line, line
    assert closed_endpoint in line
    assert "retrying until" in line
    assert f"({GIVE_UP_AFTER:.0f} s)" in line


def test_retries_end_after_the_time_given_with_an_error_saying_how_long(
    closed_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The retries are bounded in time, not only in number: the error comes once the time
    is up (plus at most one backoff), and says how long radops tried."""
    store = S3Store("s3://lake/x", endpoint_url=closed_endpoint, give_up_after=2.0)
    started = time.monotonic()
    with pytest.raises(StoreError, match=r"gave up after \d+ attempts in \d+ s") as raised:
        list(store.list())
    elapsed = time.monotonic() - started
    assert 2.0 <= elapsed < 2.0 + 4.0, elapsed
    assert "is unreachable" in str(raised.value)
    notices = [r.getMessage() for r in caplog.records if "is not answering" in r.getMessage()]
    assert len(notices) == 1, notices
    store.close()
