"""Shared fixtures: a real SeaweedFS S3 server, a real Marquez server, and lakes on S3 and in a
directory.

Every behaviour test that takes ``lake`` runs twice: against the directory remote (the embedded
default) and against SeaweedFS through boto3, on a fresh prefix of a bucket. Tests that take
``marquez`` talk to the real Marquez API server (``tests/marquez_server.py``).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from radops.lake import DataLake
from radops.settings import Settings

# Imported now, at collection: they read where the specs are (RADOPS_OPENLINEAGE_SPEC,
# RADOPS_MARQUEZ_SPEC) before _isolated_environment removes every RADOPS_* variable.
from tests import capabilities, marquez_spec, olschema  # noqa: F401
from tests.capabilities import REQUIRE_ENV, parse_required
from tests.marquez_server import MarquezServer, MarquezUnavailable, marquez_version, start_marquez
from tests.seaweed import SeaweedServer, start_seaweed

TEST_EMAIL = "tester@example.com"


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No RADOPS_* or AWS setting of the machine leaks into the tests."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(("RADOPS_", "AWS_", "OPENLINEAGE")):
                mp.delenv(name)
        empty = tmp_path_factory.mktemp("aws") / "none"
        mp.setenv("AWS_CONFIG_FILE", str(empty))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        mp.setenv("AWS_ACCESS_KEY_ID", SeaweedServer.access_key)
        mp.setenv("AWS_SECRET_ACCESS_KEY", SeaweedServer.secret_key)
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        # A home that no test asked for must never be the developer's ~/.radops.
        mp.setenv("HOME", str(tmp_path_factory.mktemp("home")))
        yield


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """A SeaweedFS server (``weed mini``) on free loopback ports, for the whole session."""
    server = start_seaweed(tmp_path_factory.mktemp("seaweed"))
    try:
        server.create_bucket("lake")
        yield server
    finally:
        server.stop()


def pytest_report_header(config: pytest.Config) -> str:
    return (
        f"marquez: the real server, io.github.marquezproject:marquez-api:{marquez_version()} "
        "(tests/marquez/pom.xml) with deploy/marquez.yml, on PostgreSQL, started for the tests "
        "that need it"
    )


@pytest.fixture(scope="session")
def marquez_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MarquezServer]:
    """The real Marquez API server on a throw-away PostgreSQL, for the whole session."""
    try:
        server = start_marquez(tmp_path_factory.mktemp("marquez"))
    except MarquezUnavailable as exc:
        pytest.fail(f"the real Marquez server is needed: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()
        server.postgres.remove()


@pytest.fixture
def marquez(marquez_server: MarquezServer) -> MarquezServer:
    """The real Marquez, running: started again if an earlier test killed it."""
    if marquez_server.process is None or marquez_server.process.poll() is not None:
        marquez_server.start()
    return marquez_server


@pytest.fixture
def lineage_namespace() -> str:
    """A job namespace of the test's own, so that tests sharing one Marquez never meet."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["directory", "s3"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The lake's location: a directory, or a fresh prefix in the SeaweedFS bucket."""
    if request.param == "directory":
        return str(tmp_path / "remote")
    request.getfixturevalue("seaweed")
    return f"s3://lake/{request.node.name.replace('/', '_')[:60]}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def endpoint(request: pytest.FixtureRequest, remote: str) -> str | None:
    """The S3 endpoint when the remote is on S3."""
    if remote.startswith("s3://"):
        server: SeaweedServer = request.getfixturevalue("seaweed")
        return server.endpoint
    return None


@pytest.fixture
def closed_endpoint() -> str:
    """``http://127.0.0.1:PORT`` where nothing listens: every connection is refused at once,
    and nothing leaves the machine."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


MakeLake = Callable[..., DataLake]
REPO_ROOT = Path(__file__).resolve().parents[1]


def process_env(lake: DataLake, home: Path | None = None, **settings: str) -> dict[str, str]:
    """The environment of a subprocess that uses ``lake`` (its remote; ``home`` or its home).

    ``settings``: more RADOPS_* variables, by setting name (``log_level="WARNING"``).
    """
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),  # so that `python -m tests...` finds the test modules
        "RADOPS_HOME": str(home or lake.settings.home),
        "RADOPS_REMOTE": lake.settings.remote,
        "RADOPS_EMAIL": TEST_EMAIL,
        **{f"RADOPS_{name.upper()}": value for name, value in settings.items()},
    }
    if lake.settings.s3_endpoint_url:
        env["RADOPS_S3_ENDPOINT_URL"] = lake.settings.s3_endpoint_url
    return env


@pytest.fixture
def make_lake(tmp_path: Path, remote: str, endpoint: str | None) -> Iterator[MakeLake]:
    """Build a machine: a new RADOPS_HOME on the shared remote. Call it twice for two machines."""
    made: list[DataLake] = []

    def make(name: str | None = None, **overrides: object) -> DataLake:
        home = tmp_path / (name or f"home-{len(made)}")
        settings = Settings.load(
            env={},
            home=home,
            remote=remote,
            **{"s3_endpoint_url": endpoint, "email": TEST_EMAIL, **overrides},  # type: ignore[arg-type]
        )
        lake = DataLake(settings)
        made.append(lake)
        return lake

    yield make
    for lake in made:
        lake.local.close()


@pytest.fixture
def lake(make_lake: MakeLake) -> DataLake:
    """One machine on the lake."""
    return make_lake("machine-a")


@pytest.fixture
def cli_env(tmp_path: Path, remote: str, endpoint: str | None) -> dict[str, str]:
    """Environment for running the CLI as a user configured for ``remote`` would."""
    env = {
        "RADOPS_HOME": str(tmp_path / "machine-a"),
        "RADOPS_REMOTE": remote,
        "RADOPS_EMAIL": TEST_EMAIL,
    }
    if endpoint:
        env["RADOPS_S3_ENDPOINT_URL"] = endpoint
    return env


# -- reliability: trial counts and the figures the fault tests report ---------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("radops reliability")
    group.addoption(
        "--trials",
        type=int,
        default=None,
        help="trials per fault test in tests/reliability (default: each test's CI count)",
    )
    group.addoption(
        "--reliability-report",
        default=None,
        metavar="FILE",
        help="append one JSON line per fault test (trials, failures, data and events lost)",
    )
    group.addoption(
        "--require",
        type=parse_required,
        default=os.environ.get(REQUIRE_ENV, ""),
        metavar="CAPABILITIES",
        help=f"fail, instead of skipping, the tests that need these capabilities of the "
        f"machine when it lacks them (comma-separated: userns, specs); default ${REQUIRE_ENV}",
    )


def pytest_configure(config: pytest.Config) -> None:
    capabilities.configure(config)


@pytest.fixture
def trials(request: pytest.FixtureRequest) -> Callable[[int], int]:
    """``trials(default)``: the number of trials to run, ``--trials`` if given."""
    chosen: int | None = request.config.getoption("--trials")
    return lambda default: chosen if chosen is not None else default


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[..., None]:
    """``report(fault=..., trials=..., failures=..., data_lost=..., events_lost=..., **more)``.

    Rows go to ``--reliability-report FILE`` (JSON lines, appended: safe under xdist) and to the
    test's report properties; ``python -m tests.reliability.render FILE`` makes the doc's table.
    """
    import json

    target: str | None = request.config.getoption("--reliability-report")

    def add(**row: object) -> None:
        row.setdefault("test", request.node.nodeid)
        for key, value in row.items():
            request.node.user_properties.append((key, value))
        if target:
            line = json.dumps(row, sort_keys=True, default=str) + "\n"
            fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode("utf-8"))  # one write with O_APPEND: never interleaved
            finally:
                os.close(fd)

    return add
