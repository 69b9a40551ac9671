"""Progress of ``datalake add``: it moves with the bytes in every phase and names the phase.

Adding a file is two passes over its bytes: copying it into local storage while hashing it,
then uploading it. Each is reported as it goes, on both remotes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from radops.cli.app import app
from radops.integrity import CHUNK_SIZE
from radops.lake import DataLake

SIZE = 9 * CHUNK_SIZE + 123  # over the 8 MiB multipart threshold: S3 uploads it in parts


class Recorder:
    """A progress callback that keeps, per phase, the byte counts it was given."""

    def __init__(self) -> None:
        self.phases: list[tuple[str, list[int]]] = []

    def phase(self, name: str) -> None:
        self.phases.append((name, []))

    def __call__(self, n: int) -> None:
        assert self.phases, "bytes reported before any phase was named"
        self.phases[-1][1].append(n)


@pytest.fixture
def big(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(SIZE))
    return path


@pytest.mark.parametrize("move", [False, True], ids=["copy", "move"])
def test_add_reports_hashing_then_uploading_as_the_bytes_move(
    lake: DataLake, big: Path, move: bool
) -> None:
    """Each phase counts up to the file's size in many steps, not once at its end."""
    progress = Recorder()
    lake.add_file(big, "big.bin", move=move, progress=progress)
    assert [name for name, _ in progress.phases] == ["hashing", "uploading"]
    for name, counts in progress.phases:
        assert sum(counts) == SIZE, name
        assert len(counts) > 2, (name, counts)  # it moved while the bytes moved


def test_a_plain_callback_still_counts_the_upload_only(lake: DataLake, big: Path) -> None:
    """A progress function without phases sees the upload, as before: no double count."""
    counts: list[int] = []
    lake.add_file(big, "big.bin", progress=counts.append)
    assert sum(counts) == SIZE


@pytest.mark.parametrize("remote", ["directory"], indirect=True)  # the bar is the same on S3
def test_the_bar_on_a_terminal_names_each_phase(cli_env: dict[str, str], big: Path) -> None:
    """On a terminal, the bar's description says hashing, then uploading."""
    env = {**cli_env, "COLUMNS": "120", "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"}
    result = CliRunner().invoke(app, ["datalake", "add", str(big), "big.bin"], env=env)
    assert result.exit_code == 0, result.output
    assert "hashing big.bin" in result.stderr
    assert "uploading big.bin" in result.stderr
    assert "added big.bin" in result.stderr
