"""The real Marquez API server for the tests and benchmarks, on a throw-away PostgreSQL.

Marquez (``io.github.marquezproject:marquez-api``, the version ``tests/marquez/pom.xml`` names)
and its runtime dependencies are resolved with Maven into a cache outside the repository
(``$RADOPS_TEST_CACHE``, default ``~/.cache/radops-tests``). A PostgreSQL cluster is made with
``initdb`` in a temporary folder, listening on loopback only, and Marquez is started on free
loopback ports with ``deploy/marquez.yml``, the configuration users deploy (its ports and
database address come from the environment), then waited for on its healthcheck.

When Java, Maven, PostgreSQL or Marquez itself cannot be had, :class:`MarquezUnavailable` says
in one line what is missing and how to install it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import attrs

REPO = Path(__file__).resolve().parents[1]
POM = REPO / "tests" / "marquez" / "pom.xml"
CONFIG = REPO / "deploy" / "marquez.yml"
# Read now, at import: the suite's autouse fixture gives every test a HOME of its own, and the
# Maven repository and the cache must stay the user's.
_HOME = Path(os.path.expanduser("~"))
CACHE = Path(os.environ.get("RADOPS_TEST_CACHE") or _HOME / ".cache" / "radops-tests")
MAVEN_REPOSITORY = Path(os.environ.get("RADOPS_TEST_MAVEN_REPO") or _HOME / ".m2" / "repository")
INSTALL = "apt-get install openjdk-17-jre-headless maven postgresql"
_UNPRIVILEGED = "nobody"  # PostgreSQL refuses to run as root


class MarquezUnavailable(RuntimeError):
    """Marquez cannot be started here; the message says what is missing, in one line."""


def marquez_version() -> str:
    """The Marquez version ``tests/marquez/pom.xml`` asks for."""
    found = re.search(r"<marquez\.version>([^<]+)</marquez\.version>", POM.read_text())
    if found is None:
        raise MarquezUnavailable(f"{POM} names no <marquez.version>")
    return found.group(1)


def _need(program: str, what: str) -> str:
    found = shutil.which(program)
    if found is None:
        raise MarquezUnavailable(f"{what} is missing ({program} not on PATH): {INSTALL}")
    return found


def resolve_marquez(timeout: float = 900.0) -> Path:
    """The folder of Marquez's jars, resolved with Maven on first use (then reused)."""
    version = marquez_version()
    lib = CACHE / f"marquez-{version}" / "lib"
    if (lib / f"marquez-api-{version}.jar").is_file():
        return lib
    mvn = _need("mvn", "Maven")
    _need("java", "Java")
    lib.parent.mkdir(parents=True, exist_ok=True)
    with (lib.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # pytest-xdist workers resolve it once between them
        if (lib / f"marquez-api-{version}.jar").is_file():
            return lib
        staging = Path(tempfile.mkdtemp(prefix="lib-", dir=lib.parent))
        try:
            result = subprocess.run(
                [
                    mvn,
                    "-q",
                    "-B",
                    "-f",
                    str(POM),
                    f"-Dmaven.repo.local={MAVEN_REPOSITORY}",
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={staging}",
                    "-DincludeScope=runtime",
                ],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if result.returncode != 0:
                missing = re.search(r"Could not (?:find|resolve)[^\n]*", result.stdout)
                reason = missing.group(0) if missing else result.stdout.strip()[-300:]
                raise MarquezUnavailable(
                    f"Maven could not resolve io.github.marquezproject:marquez-api:{version} "
                    f"from Maven Central ({reason.strip()}); it is needed from Maven Central, or "
                    f"installed in {MAVEN_REPOSITORY}"
                )
            staging.rename(lib)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return lib


def postgres_bindir() -> Path:
    """The folder of PostgreSQL's server programs (Debian keeps them out of PATH)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    if found is None:
        raise MarquezUnavailable(f"PostgreSQL is missing (no initdb): {INSTALL}")
    return Path(found).resolve().parent


def free_port() -> int:
    """A free loopback port (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_postgres_user() -> dict[str, object]:
    """``subprocess`` arguments that run PostgreSQL as an unprivileged user when we are root."""
    if os.geteuid() != 0:
        return {}
    return {"user": _UNPRIVILEGED, "group": "nogroup"}


@attrs.define
class Postgres:
    """A throw-away PostgreSQL cluster on a loopback port."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes]
    bindir: Path

    @classmethod
    def start(cls, timeout: float = 60.0) -> Postgres:
        bindir = postgres_bindir()
        # Not under pytest's temporary folder: that one is private to root, and PostgreSQL
        # runs as an unprivileged user when the tests run as root.
        directory = Path(tempfile.mkdtemp(prefix="radops-marquez-pg-"))
        data = directory / "data"
        run_as = _as_postgres_user()
        if run_as:
            shutil.chown(directory, _UNPRIVILEGED, "nogroup")
        initdb = subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "marquez",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            capture_output=True,
            text=True,
            check=False,
            **run_as,  # type: ignore[call-overload]
        )
        if initdb.returncode != 0:
            shutil.rmtree(directory, ignore_errors=True)
            raise MarquezUnavailable(f"initdb failed: {initdb.stderr.strip().splitlines()[-1:]}")
        port = free_port()
        with (directory / "postgres.log").open("ab") as log:
            process = subprocess.Popen(
                [
                    str(bindir / "postgres"),
                    "-D",
                    str(data),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"port={port}",
                    "-c",
                    f"unix_socket_directories={directory}",
                    # A throw-away cluster: durability buys nothing here and costs seconds.
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **run_as,  # type: ignore[call-overload]
            )
        server = cls(directory, port, process, bindir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                server.remove()
                raise MarquezUnavailable(f"PostgreSQL exited with {process.returncode}")
            ready = subprocess.run(
                [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"],
                check=False,
            )
            if ready.returncode == 0:
                break
            time.sleep(0.1)
        else:
            server.remove()
            raise MarquezUnavailable(f"PostgreSQL did not start within {timeout} s")
        server.create_database("marquez")
        return server

    def _client(self, program: str) -> list[str]:
        return [
            str(self.bindir / program),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "marquez",
        ]

    def create_database(self, name: str) -> None:
        subprocess.run([*self._client("createdb"), name], check=True, capture_output=True)

    def sql(self, query: str, database: str = "marquez", **values: str) -> str:
        """Run ``query`` with psql; its unaligned, tuples-only output.

        ``values`` are psql variables, quoted by psql where the query says ``:'name'``.
        """
        variables = [f"--variable={name}={value}" for name, value in values.items()]
        result = subprocess.run(
            [*self._client("psql"), "-d", database, "-A", "-t", "-X", *variables],
            input=query,  # variables are substituted in scripts, not in -c commands
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout.strip()

    def remove(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


@attrs.define
class MarquezServer:
    """A running Marquez API server: its URLs, its database, and how to stop or restart it."""

    version: str
    lib: Path
    postgres: Postgres
    database: str
    port: int
    admin_port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The API's base URL (what ``RADOPS_MARQUEZ_URL`` is set to)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def _environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "MARQUEZ_BIND_HOST": "127.0.0.1",
            "MARQUEZ_PORT": str(self.port),
            "MARQUEZ_ADMIN_PORT": str(self.admin_port),
            "POSTGRES_HOST": "127.0.0.1",
            "POSTGRES_PORT": str(self.postgres.port),
            "POSTGRES_DB": self.database,
            "POSTGRES_USER": "marquez",
            "POSTGRES_PASSWORD": "unused-trust-authentication",
        }

    def start(self, timeout: float = 180.0) -> None:
        """Start Marquez (its migrations run first) and wait for its healthcheck."""
        java = _need("java", "Java")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [java, "-Xmx768m", "-cp", f"{self.lib}/*", "marquez.MarquezApp", "server", CONFIG],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._environment(),
                cwd=self.log.parent,
                start_new_session=True,
            )
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise MarquezUnavailable(
                    f"Marquez {self.version} exited with {self.process.returncode}: "
                    + " | ".join(tail.strip().splitlines()[-5:])
                )
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.admin_url}/healthcheck", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        self.kill()
        raise MarquezUnavailable(f"Marquez {self.version} was not healthy within {timeout} s")

    def kill(self) -> None:
        """Kill the Java process (SIGKILL): an outage; :meth:`start` brings it back."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """Stop Marquez gracefully."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def sql(self, query: str, **values: str) -> str:
        """A query on Marquez's own database (psql, unaligned, tuples only)."""
        return self.postgres.sql(query, self.database, **values)


def start_marquez(directory: Path, postgres: Postgres | None = None) -> MarquezServer:
    """Resolve Marquez, start PostgreSQL (unless given) and Marquez on free loopback ports.

    ``directory`` holds Marquez's log. With ``postgres``, a new database of that cluster is
    used, so the server starts empty.
    """
    lib = resolve_marquez()
    owned = postgres is None
    cluster = Postgres.start() if postgres is None else postgres
    database = "marquez"
    if not owned:
        database = f"marquez_{os.urandom(4).hex()}"
        cluster.create_database(database)
    directory.mkdir(parents=True, exist_ok=True)
    server = MarquezServer(
        version=marquez_version(),
        lib=lib,
        postgres=cluster,
        database=database,
        port=free_port(),
        admin_port=free_port(),
        log=directory / "marquez.log",
    )
    try:
        server.start()
    except BaseException:
        if owned:
            cluster.remove()
        raise
    return server
