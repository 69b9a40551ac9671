"""Hostile input: oversized, truncated, slow and redirected downloads, and extreme parameters.

The URL tests run against a local HTTP server on 127.0.0.1 whose paths misbehave on purpose;
nothing that fails may be added or leave a temp file behind.
"""

from __future__ import annotations

import http.server
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from radops.canonical import MAX_DEPTH, ParameterError
from radops.cli.app import app
from radops.data_lake import File, file_creator
from radops.lake import DataLake
from radops.urls import DownloadError
from tests.conftest import MakeLake
from tests.local_http import serving

BODY = b"0123456789" * 200  # 2000 bytes


class _Hostile(http.server.BaseHTTPRequestHandler):
    """Answers each path with one kind of misbehaviour."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _head(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def do_GET(self) -> None:
        if self.path == "/ok":
            self._head(200, {"Content-Length": str(len(BODY))})
            self.wfile.write(BODY)
        elif self.path == "/unannounced-big":  # no Content-Length: the body runs until close
            self._head(200, {"Connection": "close"})
            for _ in range(50):
                self.wfile.write(BODY)
            self.close_connection = True
        elif self.path == "/to-file":
            self._head(302, {"Location": "file:///etc/passwd", "Content-Length": "0"})
        elif self.path == "/to-ok":
            self._head(302, {"Location": "/ok", "Content-Length": "0"})
        elif self.path == "/short":
            self._head(200, {"Content-Length": "100", "Connection": "close"})
            self.wfile.write(b"x" * 10)
            self.wfile.flush()
            self.close_connection = True
        elif self.path == "/stall":
            self._head(200, {"Content-Length": "100", "Connection": "close"})
            self.wfile.write(b"x" * 10)
            self.wfile.flush()
            time.sleep(2)
            self.close_connection = True
        else:
            self._head(404, {"Content-Length": "0"})


@pytest.fixture
def hostile() -> Iterator[str]:
    """A local HTTP server with misbehaving paths; yields its base URL."""
    with serving(_Hostile) as url:
        yield url


def _assert_nothing_added(lake: DataLake, uid: str) -> None:
    """``uid`` is neither in the lake nor in local storage, and no temp file is left."""
    assert lake.head(uid) is None
    assert not lake.local.path(uid).exists()
    tmp = lake.settings.tmp_dir
    assert not tmp.exists() or [p for p in tmp.rglob("*") if p.is_file()] == []


# -- add URL ----------------------------------------------------------------------------------


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
def test_a_body_within_the_limit_is_added(make_lake: MakeLake, hostile: str) -> None:
    """A body of exactly download_max_bytes is added, through a same-scheme redirect too."""
    lake = make_lake(download_max_bytes=len(BODY))
    lake.add_url(f"{hostile}/to-ok", "ok.bin")
    with File("ok.bin", lake=lake).open("rb") as handle:
        assert handle.read() == BODY


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
def test_an_announced_oversized_body_is_refused(make_lake: MakeLake, hostile: str) -> None:
    """A Content-Length over download_max_bytes aborts before any byte is stored."""
    lake = make_lake(download_max_bytes=len(BODY) - 1)
    with pytest.raises(DownloadError, match="announced, more than download_max_bytes"):
        lake.add_url(f"{hostile}/ok", "big.bin")
    _assert_nothing_added(lake, "big.bin")


def test_an_unannounced_oversized_body_is_cut_off(make_lake: MakeLake, hostile: str) -> None:
    """A body without Content-Length is aborted once it passes download_max_bytes."""
    lake = make_lake(download_max_bytes=5000)
    with pytest.raises(DownloadError, match="download_max_bytes"):
        lake.add_url(f"{hostile}/unannounced-big", "big.bin")
    _assert_nothing_added(lake, "big.bin")


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
def test_the_download_limit_comes_from_the_environment(
    lake: DataLake, cli_env: dict[str, str], hostile: str
) -> None:
    """RADOPS_DOWNLOAD_MAX_BYTES reaches `datalake add URL`, which fails and adds nothing."""
    env = {**cli_env, "RADOPS_DOWNLOAD_MAX_BYTES": "1KB"}
    result = CliRunner().invoke(app, ["datalake", "add", f"{hostile}/ok", "ok.bin"], env=env)
    assert result.exit_code == 1
    assert "download_max_bytes" in result.stderr
    _assert_nothing_added(lake, "ok.bin")


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
def test_a_redirect_to_a_file_url_is_refused(lake: DataLake, hostile: str) -> None:
    """A 302 to file:///etc/passwd is not followed."""
    with pytest.raises(DownloadError, match="only http and https"):
        lake.add_url(f"{hostile}/to-file", "passwd")
    _assert_nothing_added(lake, "passwd")


def test_a_download_that_ends_early_is_not_added(lake: DataLake, hostile: str) -> None:
    """Content-Length 100 with 10 bytes and a closed connection is a DownloadError."""
    with pytest.raises(DownloadError):
        lake.add_url(f"{hostile}/short", "short.bin")
    _assert_nothing_added(lake, "short.bin")


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
def test_a_stalled_download_times_out(make_lake: MakeLake, hostile: str) -> None:
    """A server that stops sending for longer than download_timeout fails the download."""
    lake = make_lake(download_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(DownloadError):
        lake.add_url(f"{hostile}/stall", "stall.bin")
    assert time.monotonic() - started < 1.8
    _assert_nothing_added(lake, "stall.bin")


def test_download_settings_have_defaults(tmp_path: Path) -> None:
    """download_max_bytes defaults to 10 GiB and download_timeout to 60 seconds."""
    from radops.settings import Settings

    settings = Settings.load(env={}, home=tmp_path)
    assert settings.download_max_bytes == 10 * 1024**3
    assert settings.download_timeout == 60.0
    loaded = Settings.load(
        env={"RADOPS_DOWNLOAD_MAX_BYTES": "2MiB", "RADOPS_DOWNLOAD_TIMEOUT": "7.5"}, home=tmp_path
    )
    assert loaded.download_max_bytes == 2 * 1024**2
    assert loaded.download_timeout == 7.5


# -- parameters -------------------------------------------------------------------------------


@file_creator
def echo_length(text: Any) -> File:
    out = File(suffix=".txt")
    with out.open("w") as handle:
        handle.write(str(len(str(text))))
    return out


@pytest.fixture
def default_lake(lake: DataLake) -> Iterator[DataLake]:
    """``lake`` as the default lake, for steps without File inputs."""
    from radops.lake import set_default_lake

    set_default_lake(lake)
    yield lake
    set_default_lake(None)


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
def test_a_one_megabyte_string_parameter_works(default_lake: DataLake) -> None:
    """Two distinct 1 MB strings give two distinct implicit uids; the same one is skipped."""
    first = "a" * 1_000_000
    second = "a" * 999_999 + "b"
    one = echo_length(first)
    two = echo_length(second)
    assert one.uid != two.uid
    assert echo_length(first).uid == one.uid
    with one.open() as handle:
        assert handle.read() == "1000000"


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
def test_nesting_too_deep_is_a_parameter_error(default_lake: DataLake) -> None:
    """A value nested deeper than MAX_DEPTH raises ParameterError naming it, not RecursionError."""
    with pytest.raises(ParameterError, match=r"^parameter 'text' is nested"):
        echo_length(_nested(MAX_DEPTH + 1))
    with pytest.raises(ParameterError, match=r"^parameter 'text' is nested"):
        echo_length(_nested(50_000))


@pytest.mark.parametrize("remote", ["directory"], indirect=True)
def test_nesting_just_under_the_limit_works(default_lake: DataLake) -> None:
    """A value nested MAX_DEPTH levels deep is accepted and recorded."""
    out = echo_length(_nested(MAX_DEPTH))
    assert default_lake.head(out.uid) is not None
