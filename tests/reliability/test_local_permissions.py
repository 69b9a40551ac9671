"""Owner-only local state: RADOPS_HOME, its state and temp directories, indexes and outbox."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from radops.data_lake import File
from radops.lake import DataLake
from tests.conftest import MakeLake


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask of 000, so only radops' own modes keep local state private."""
    previous = os.umask(0)
    yield
    os.umask(previous)


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
@pytest.mark.usefixtures("open_umask")
def test_local_state_is_owner_only(make_lake: MakeLake) -> None:
    """Home, state/ and tmp/ are 0700; SQLite files, the outbox and its events are 0600."""
    lake: DataLake = make_lake(
        "private", marquez_url=f"http://127.0.0.1:{_closed_port()}", lineage_timeout=1
    )
    with File("nested/raw.txt", lake=lake).open("w") as handle:
        handle.write("hello")
    lake.lineage.sync()
    home = lake.settings.home
    for directory in (home, lake.settings.state_dir, lake.settings.tmp_dir, home / "storage"):
        assert _mode(directory) == 0o700, directory
    assert _mode(home / "storage" / "nested") == 0o700
    outbox = lake.settings.state_dir / "outbox"
    assert _mode(outbox) == 0o700
    queued = [path for path in outbox.iterdir() if path.suffix == ".json"]
    assert queued, "with the consumer down the events wait in the outbox"
    databases = list(lake.settings.state_dir.glob("*.sqlite*"))
    assert {path.name for path in databases} >= {"cache.sqlite", "cache.sqlite-wal"}
    assert any(path.name.startswith("lineage-") for path in databases)
    for path in [*databases, *queued, lake.settings.state_dir / "cache.lock"]:
        if path.exists():
            assert _mode(path) & 0o077 == 0, f"{path} is {oct(_mode(path))}"
    lake.lineage.close()
