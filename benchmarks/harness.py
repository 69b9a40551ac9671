"""The benchmark harness: a SeaweedFS server, lakes on it, interleaved timing, result rows.

Every comparison runs radops and its baseline in the same process, on the same server, one
after the other in alternating order (so a slow moment of the machine hits both), after a
warm-up, and reports the median of the repeats.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import itertools
import os
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radops.lake import DataLake
from radops.settings import Settings
from tests.seaweed import SeaweedServer

if TYPE_CHECKING:
    from tests.marquez_server import MarquezServer

EMAIL = "bench@example.com"
BUCKET = "bench"


@dataclass
class Row:
    """One line of the results table."""

    case: str
    name: str
    radops: str
    baseline: str
    ratio: str
    target: str
    passed: bool | None  # None: reported only, no target
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.passed is None:
            return "info"
        return "pass" if self.passed else "MISS"


@dataclass
class Context:
    """What every case gets: the server, a scratch directory, the mode, and helpers."""

    server: SeaweedServer
    root: Path
    quick: bool
    profile: bool = False
    profile_sort: str = "cumulative"
    profiles: list[str] = field(default_factory=list)
    dvc: Path | None = None  # the dvc executable of the peer cases (benchmarks.peer_cases)
    _counter: Iterator[int] = field(default_factory=itertools.count)
    _lakes: list[DataLake] = field(default_factory=list)
    _marquez: MarquezServer | None = None
    _marquez_missing: str | None = None

    @property
    def warmup(self) -> int:
        return 2 if self.quick else 5

    @property
    def repeats(self) -> int:
        return 7 if self.quick else 31

    def unique(self, stem: str) -> str:
        return f"{stem}-{next(self._counter)}"

    def settings(self, name: str, *, s3: bool, **overrides: Any) -> Settings:
        """Settings of a new machine (its own home) on a new lake (its own prefix)."""
        home = self.root / "homes" / self.unique(name)
        if s3:
            remote = f"s3://{BUCKET}/{self.unique(name)}"
            overrides.setdefault("s3_endpoint_url", self.server.endpoint)
        else:
            remote = str(self.root / "lakes" / self.unique(name))
        overrides.setdefault("log_level", "WARNING")  # no "skipped" line per call
        return Settings.load(env={}, home=home, remote=remote, email=EMAIL, **overrides)

    def lake(self, name: str, *, s3: bool, **overrides: Any) -> DataLake:
        return self.lake_of(self.settings(name, s3=s3, **overrides))

    def lake_of(self, settings: Settings) -> DataLake:
        """A lake on ``settings``, closed at the end of the run."""
        lake = DataLake(settings)
        self._lakes.append(lake)
        return lake

    def machine(self, lake: DataLake, name: str, **overrides: Any) -> DataLake:
        """Another machine (a fresh home) on the same lake, with settings ``overrides``."""
        home = self.root / "homes" / self.unique(name)
        overrides.setdefault("log_level", "WARNING")
        settings = Settings.load(
            env={},
            home=home,
            remote=lake.settings.remote,
            s3_endpoint_url=lake.settings.s3_endpoint_url,
            email=EMAIL,
            **overrides,
        )
        return self.lake_of(settings)

    def marquez(self) -> MarquezServer:
        """The real Marquez API server, started on first use (once per run), stopped by
        :meth:`close`.

        Raises:
            MarquezUnavailable: Java, Maven, PostgreSQL or Marquez is missing (said in one
                line); asked again, the same reason, without a second attempt.
        """
        from tests.marquez_server import MarquezUnavailable, start_marquez

        if self._marquez_missing is not None:
            raise MarquezUnavailable(self._marquez_missing)
        if self._marquez is None:
            try:
                self._marquez = start_marquez(self.root / "marquez")
            except MarquezUnavailable as exc:
                self._marquez_missing = str(exc)
                raise
        return self._marquez

    def marquez_description(self) -> str | None:
        """Marquez's and PostgreSQL's versions, if a case started them."""
        if self._marquez is None:
            return None
        postgres = self._marquez.sql("SHOW server_version")
        return f"{self._marquez.version} on PostgreSQL {postgres}"

    def client(self) -> Any:
        """A plain boto3 S3 client on the server: the baseline's."""
        return self.server.client()

    def cli_env(self, lake: DataLake) -> dict[str, str]:
        """The environment of a user configured for ``lake``, for subprocesses."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RADOPS_")}
        env.update(
            RADOPS_HOME=str(lake.settings.home),
            RADOPS_REMOTE=lake.settings.remote,
            RADOPS_EMAIL=EMAIL,
            RADOPS_LOG_LEVEL="WARNING",
        )
        if lake.settings.s3_endpoint_url:
            env["RADOPS_S3_ENDPOINT_URL"] = lake.settings.s3_endpoint_url
        return env

    def close(self) -> None:
        for lake in self._lakes:
            with contextlib.suppress(Exception):
                lake.lineage.outbox.close()
            with contextlib.suppress(Exception):
                lake.lineage.close()
            with contextlib.suppress(Exception):
                lake.local.close()
        if self._marquez is not None:
            try:
                self._marquez.stop()
            finally:
                self._marquez.postgres.remove()

    # -- timing --------------------------------------------------------------------------

    def compare(
        self,
        label: str,
        radops: Callable[[], object],
        baseline: Callable[[], object],
        *,
        inner: int = 1,
        warmup: int | None = None,
        repeats: int | None = None,
    ) -> tuple[float, float]:
        """Median seconds per call of ``radops`` and ``baseline``, interleaved.

        Each sample times ``inner`` calls in a row (for operations of a few microseconds).
        With ``--profile``, the radops side runs under cProfile once more afterwards.
        """
        warmup = self.warmup if warmup is None else warmup
        repeats = self.repeats if repeats is None else repeats
        for _ in range(warmup):
            radops()
            baseline()
        ours: list[float] = []
        theirs: list[float] = []
        for i in range(repeats):
            pair = ((radops, ours), (baseline, theirs))
            for func, samples in pair if i % 2 == 0 else reversed(pair):
                samples.append(_time(func, inner))
        if self.profile:
            self.profile_calls(label, radops, max(repeats * inner, 20))
        return statistics.median(ours), statistics.median(theirs)

    def measure(
        self,
        func: Callable[[], object],
        *,
        inner: int = 1,
        warmup: int | None = None,
        repeats: int | None = None,
    ) -> float:
        """Median seconds per call of ``func`` alone."""
        warmup = self.warmup if warmup is None else warmup
        repeats = self.repeats if repeats is None else repeats
        for _ in range(warmup):
            func()
        return statistics.median(_time(func, inner) for _ in range(repeats))

    def cpu_seconds(self, func: Callable[[], object]) -> float:
        """CPU seconds (user + system) one call of ``func`` costs this process and the server."""

        def server_cpu() -> float:
            fields = Path(f"/proc/{self.server.process.pid}/stat").read_text().rsplit(")", 1)[1]
            utime, stime = fields.split()[11:13]
            return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")

        server, mine = server_cpu(), time.process_time()
        func()
        return time.process_time() - mine + server_cpu() - server

    def profile_calls(self, label: str, func: Callable[[], object], calls: int) -> None:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(calls):
            func()
        profiler.disable()
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats(self.profile_sort).print_stats(30)
        self.profiles.append(f"### {label} ({calls} calls)\n{text.getvalue()}")


def _time(func: Callable[[], object], inner: int) -> float:
    start = time.perf_counter()
    for _ in range(inner):
        func()
    return (time.perf_counter() - start) / inner


def run_quietly(command: Sequence[str], env: dict[str, str] | None = None) -> None:
    """Run ``command``, its output discarded; raise with its stderr if it fails."""
    result = subprocess.run(
        list(command), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited with {result.returncode}:\n{result.stderr.decode()}"
        )


def radops_command() -> list[str]:
    """The ``radops`` console script of this Python (``python -m radops`` if missing)."""
    script = Path(sys.executable).parent / "radops"
    return [str(script)] if script.exists() else [sys.executable, "-m", "radops"]


# -- formatting ------------------------------------------------------------------------------


def seconds(value: float) -> str:
    if value < 1e-3:
        return f"{value * 1e6:.1f} µs"
    if value < 1:
        return f"{value * 1e3:.2f} ms"
    return f"{value:.2f} s"


def info_row(
    case: str, name: str, radops: str, note: str, *, baseline: str = "", ratio: str = ""
) -> Row:
    """A row without a target: a limit, a floor or a figure reported for the analysis."""
    return Row(case, name, radops, baseline, ratio, "", None, note)


def floor_row(case: str, name: str, least: float, raw: float, note: str) -> Row:
    """An info row timing a floor (raw operations radops needs) against the same baseline."""
    return info_row(
        case,
        f"  floor: {name}",
        seconds(least),
        note,
        baseline=seconds(raw),
        ratio=f"{least / raw:.2f}x",
    )


def ratio_row(
    case: str,
    name: str,
    ours: float,
    theirs: float,
    limit: float,
    note: str = "",
) -> Row:
    """A row for "radops time <= ``limit`` x baseline time"."""
    ratio = ours / theirs
    return Row(
        case,
        name,
        seconds(ours),
        seconds(theirs),
        f"{ratio:.2f}x",
        f"<= {limit:g}x",
        ratio <= limit,
        note,
    )


def throughput_row(
    case: str, name: str, size: int, ours: float, theirs: float, limit: float, note: str = ""
) -> Row:
    """A row for "radops throughput >= ``limit`` x baseline throughput"."""
    mb = size / 1e6
    ratio = (mb / ours) / (mb / theirs)
    return Row(
        case,
        name,
        f"{mb / ours:.0f} MB/s",
        f"{mb / theirs:.0f} MB/s",
        f"{ratio:.2f}x",
        f">= {limit:g}x",
        ratio >= limit,
        note,
    )


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares slope and intercept."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return slope, my - slope * mx


# -- the machine -----------------------------------------------------------------------------


def machine_description(server: SeaweedServer) -> dict[str, str]:
    """CPU, cores, RAM, OS, Python and the versions of radops, SeaweedFS and boto3."""
    import platform

    import boto3

    from radops import __version__
    from tests.seaweed import weed_binary

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
                break
    weed = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            [weed_binary(), "version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
        weed = " ".join(out.split()[:3]) or "unknown"
    commit = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = (
            subprocess.run(
                ["git", "describe", "--always", "--dirty"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
                cwd=Path(__file__).resolve().parents[1],
            ).stdout.strip()
            or "unknown"
        )
    return {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "RAM": ram,
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "radops": f"{__version__} (commit {commit})",
        "SeaweedFS": weed,
        "boto3": boto3.__version__,
    }


def peak_rss() -> int:
    """This process's peak resident memory in bytes (VmHWM: unlike ``ru_maxrss``, it does not
    carry over the parent's peak across ``exec``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
