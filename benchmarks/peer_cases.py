"""The peer cases of issue 14: radops against DVC and joblib, on the same SeaweedFS, in one run.

- 14: publish and fetch one large file (500 MB; quick: 16 MB): ``radops datalake add`` vs
  ``dvc add`` + ``dvc push``; ``radops datalake download`` on a fresh home vs ``dvc pull`` in
  a fresh clone; time and peak memory of each.
- 15: the same for many small files (2,000 x 4 KB; quick: 100): ``radops datalake add DIR
  --prefix`` vs ``dvc add DIR`` + ``dvc push``; fetching the prefix vs ``dvc pull``.
- 16: a cached step in process (directory lake, 1 KB in and out): a first-run
  ``file_creator`` call vs a ``joblib.Memory`` miss, a skipped call vs a hit.
- 17: a cached step as a process: a script calling a ``file_creator`` step vs ``dvc repro``
  of a one-stage pipeline doing the same, run and skipped (compared, no target).

Each tool is used as its documentation recommends, from the command line, each command a
subprocess. What DVC needs before its first command (``git init``, ``dvc init``, the remote
and its credentials, ``git commit`` and ``git clone`` for the second machine) is set up
outside the timing, as radops' fresh ``RADOPS_HOME`` is. Each trial is run by a small
wrapper process of its own that times its commands and reports
``getrusage(RUSAGE_CHILDREN).ru_maxrss``: the peak resident memory of the largest process
of the trial (the commands run one after the other; DVC's analytics and updater daemons are
off). The tools alternate which goes first from trial to trial, and a row gives the median
of the trials' ratios.

dvc-s3 (through s3fs and aiobotocore) pins a botocore older than radops' boto3 wants, so DVC
usually lives in a virtual environment of its own: ``python -m benchmarks --install-dvc``
makes one (see :data:`DVC_VENV`), or pass ``--dvc PATH``. Cases 14, 15 and 17 refuse to
start without DVC.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import (
    BUCKET,
    EMAIL,
    Context,
    Row,
    info_row,
    radops_command,
    ratio_row,
    seconds,
)
from radops.data_lake import File, file_creator, set_default_lake
from radops.integrity import sha256_file

__all__ = [
    "DVC_VENV",
    "NEEDS_DVC",
    "PEER_CASES",
    "DvcMissingError",
    "case_14",
    "case_15",
    "case_16",
    "case_17",
    "find_dvc",
    "install_dvc",
    "missing_dvc",
]

#: The versions the peer table was measured with (also the ``bench`` extra's pins).
DVC_VERSION = "3.67.1"
DVC_S3_VERSION = "3.3.0"
#: Where ``--install-dvc`` puts DVC: a virtual environment of its own, because dvc-s3's
#: aiobotocore pins a botocore that radops' boto3 does not accept.
DVC_VENV = Path.home() / ".cache" / "radops-bench" / "dvc-venv"
#: The cases that run DVC.
NEEDS_DVC = ("14", "15", "17")

MB = 1000**2
# (size, trials) of the one-file case and (count, size, trials) of the many-files one.
BIG_QUICK, BIG_FULL = (16 * MB, 2), (500 * MB, 3)
MANY_QUICK, MANY_FULL = (100, 4096, 2), (2_000, 4096, 3)


class DvcMissingError(RuntimeError):
    """A case that needs DVC was chosen and no ``dvc`` executable was found."""


def missing_dvc(cases: Sequence[str]) -> str:
    """The one line saying that ``cases`` need DVC and how to install it."""
    named = f"case {cases[0]} needs" if len(cases) == 1 else f"cases {', '.join(cases)} need"
    return (
        f"{named} DVC, which is not installed: run `python -m benchmarks --install-dvc` "
        f"(DVC in a venv of its own, {DVC_VENV}), or `pip install -e '.[bench]'` in a venv of "
        "its own and pass --dvc PATH"
    )


def find_dvc(explicit: Path | None = None) -> Path | None:
    """The ``dvc`` executable: ``explicit``, else the one beside this Python (the ``bench``
    extra installed here), else the one ``--install-dvc`` made; None if there is none."""
    candidates = (
        [explicit] if explicit else [Path(sys.executable).parent / "dvc", DVC_VENV / "bin" / "dvc"]
    )
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def install_dvc() -> Path:
    """Create :data:`DVC_VENV` with the pinned DVC and dvc-s3 (pip, from the package index);
    return its ``dvc``."""
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(DVC_VENV)], check=True)
    subprocess.run(
        [
            str(DVC_VENV / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            f"dvc=={DVC_VERSION}",
            f"dvc-s3=={DVC_S3_VERSION}",
        ],
        check=True,
    )
    return DVC_VENV / "bin" / "dvc"


def dvc_description(dvc: Path) -> str:
    """DVC's version and those of the S3 stack it uploads with, read from its environment."""
    script = (
        "from importlib.metadata import version\n"
        "print(', '.join(f'{n} {version(n)}' for n in "
        "('dvc', 'dvc-s3', 's3fs', 'aiobotocore', 'botocore')))"
    )
    python = dvc.parent / "python"
    found = subprocess.run(
        [str(python), "-I", "-c", script], capture_output=True, text=True, check=False
    )
    return found.stdout.strip() or f"unknown ({dvc})"


# -- one trial: commands run by a wrapper process that times them and reports their peak ---------

_TRIAL = """
import json, resource, subprocess, sys, time
steps = json.loads(sys.argv[1])
out = ""
start = time.perf_counter()
for argv, cwd in steps:
    done = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if done.returncode != 0:
        sys.stderr.write(f"{' '.join(argv)} exited with {done.returncode}:\\n")
        sys.stderr.write(done.stderr.decode(errors="replace")[-4000:])
        sys.exit(1)
    out = done.stdout.decode(errors="replace")
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({"seconds": elapsed, "peak": peak, "stdout": out}))
"""


@dataclass
class Trial:
    """What one trial's commands took: wall seconds, the peak memory of the largest process,
    and the last command's standard output."""

    seconds: float
    peak: int
    stdout: str


def _trial(steps: Sequence[tuple[Sequence[str], Path | None]], env: dict[str, str]) -> Trial:
    """Run ``steps`` (argv, working directory) one after the other in a fresh wrapper process
    (``-I -S``: stdlib only, a few MB, so that its own size is not what ``ru_maxrss`` sees)."""
    payload = json.dumps([[list(argv), str(cwd) if cwd else None] for argv, cwd in steps])
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", _TRIAL, payload],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark trial failed:\n{done.stderr[-5000:]}")
    found = json.loads(done.stdout)
    return Trial(found["seconds"], found["peak"], found["stdout"])


def _run(argv: Sequence[str], cwd: Path | None, env: dict[str, str]) -> str:
    """A set-up command (not timed): its stdout; raise with its stderr if it fails."""
    done = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {done.returncode}:\n{done.stderr}")
    return done.stdout


# -- the two users: radops' environment and DVC's -------------------------------------------------


def _radops_env(ctx: Context, name: str, remote: str) -> dict[str, str]:
    """A new machine (its own ``RADOPS_HOME``) on ``remote``, configured as the docs say:
    ``RADOPS_*`` settings, S3 credentials from the usual AWS variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADOPS_")}
    env.update(
        RADOPS_HOME=str(ctx.root / "homes" / ctx.unique(name)),
        RADOPS_REMOTE=remote,
        RADOPS_EMAIL=EMAIL,
        RADOPS_LOG_LEVEL="WARNING",
    )
    if remote.startswith("s3://"):
        env["RADOPS_S3_ENDPOINT_URL"] = ctx.server.endpoint
    return env


def _dvc_env(ctx: Context) -> dict[str, str]:
    """DVC's environment: no radops or Python path settings, no AWS keys (the remote's
    credentials are in ``.dvc/config.local``, as DVC's docs recommend), a global and site
    configuration of its own (analytics and update checks off: daemons outside the work)."""
    strip = ("RADOPS_", "PYTHON", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    env = {k: v for k, v in os.environ.items() if not k.startswith(strip)}
    config = ctx.root / "dvc-config"
    if not (config / "global" / "config").exists():
        for scope in ("global", "system"):
            (config / scope).mkdir(parents=True, exist_ok=True)
        (config / "global" / "config").write_text(
            "[core]\n    analytics = false\n    check_update = false\n", encoding="utf-8"
        )
    # botocore (aiobotocore's) refuses /dev/null as its config file: an empty one instead,
    # so that no AWS profile of the machine leaks in either.
    empty = config / "aws-config"
    empty.touch()
    env.update(
        AWS_CONFIG_FILE=str(empty),
        AWS_SHARED_CREDENTIALS_FILE=str(empty),
        DVC_NO_ANALYTICS="1",
        DVC_GLOBAL_CONFIG_DIR=str(config / "global"),
        DVC_SYSTEM_CONFIG_DIR=str(config / "system"),
        DVC_SITE_CACHE_DIR=str(ctx.root / "dvc-site"),
        GIT_AUTHOR_NAME="bench",
        GIT_AUTHOR_EMAIL=EMAIL,
        GIT_COMMITTER_NAME="bench",
        GIT_COMMITTER_EMAIL=EMAIL,
    )
    return env


def _dvc(ctx: Context) -> str:
    if ctx.dvc is None:
        raise DvcMissingError(missing_dvc(NEEDS_DVC))
    return str(ctx.dvc)


def _dvc_credentials(ctx: Context, repo: Path, env: dict[str, str]) -> None:
    dvc = _dvc(ctx)
    for key, value in (
        ("access_key_id", ctx.server.access_key),
        ("secret_access_key", ctx.server.secret_key),
    ):
        _run([dvc, "remote", "modify", "--local", "storage", key, value], repo, env)


def _dvc_repo(ctx: Context, repo: Path, env: dict[str, str], *, remote: bool = True) -> None:
    """``git init``, ``dvc init`` and, with ``remote``, a default S3 remote on the server under
    a new prefix, with its endpoint and credentials: the steps of DVC's get-started guide."""
    dvc = _dvc(ctx)
    repo.mkdir(parents=True)
    _run(["git", "init", "-q"], repo, env)
    _run([dvc, "init", "-q"], repo, env)
    if remote:
        url = f"s3://{BUCKET}/{ctx.unique('dvc')}"
        _run([dvc, "remote", "add", "-d", "storage", url], repo, env)
        _run([dvc, "remote", "modify", "storage", "endpointurl", ctx.server.endpoint], repo, env)
        _dvc_credentials(ctx, repo, env)


def _dvc_second_machine(ctx: Context, repo: Path, clone: Path, env: dict[str, str]) -> None:
    """What a colleague has before ``dvc pull``: the commit of the ``.dvc`` files, cloned, with
    their own credentials and an empty cache."""
    _run(["git", "add", "-A"], repo, env)
    _run(["git", "commit", "-q", "-m", "publish"], repo, env)
    _run(["git", "clone", "-q", str(repo), str(clone)], None, env)
    _dvc_credentials(ctx, clone, env)


# -- rows -----------------------------------------------------------------------------------------


def _median_ratio(pairs: Sequence[tuple[float, float]]) -> float:
    return statistics.median(ours / theirs for ours, theirs in pairs)


def _time_row(
    case: str, name: str, pairs: Sequence[tuple[float, float]], limit: float | None, note: str
) -> Row:
    """radops' and DVC's median times and the median of the trials' ratios, against ``limit``
    (None: compared, no target)."""
    ratio = _median_ratio(pairs)
    ours = statistics.median(p[0] for p in pairs)
    theirs = statistics.median(p[1] for p in pairs)
    each = ", ".join(f"{ours / theirs:.2f}" for ours, theirs in pairs)
    note = "; ".join(filter(None, [note, f"median of {len(pairs)} trials' ratios ({each})"]))
    if limit is None:
        return info_row(
            case, name, seconds(ours), note, baseline=seconds(theirs), ratio=f"{ratio:.2f}x"
        )
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


def _times(pairs: Sequence[tuple[Trial, Trial]]) -> list[tuple[float, float]]:
    """(radops, peer) seconds of each trial."""
    return [(a.seconds, b.seconds) for a, b in pairs]


def _peaks(pairs: Sequence[tuple[Trial, Trial]]) -> list[tuple[int, int]]:
    """(radops, peer) peak memory of each trial."""
    return [(a.peak, b.peak) for a, b in pairs]


def _memory_row(
    case: str, name: str, pairs: Sequence[tuple[int, int]], limit: float | None, note: str
) -> Row:
    floats = [(float(a), float(b)) for a, b in pairs]
    row = _time_row(case, name, floats, limit, note)
    row.radops = f"{statistics.median(p[0] for p in pairs) / 1e6:.0f} MB"
    row.baseline = f"{statistics.median(p[1] for p in pairs) / 1e6:.0f} MB"
    return row


#: A trial to run: its steps (argv, working directory) and its environment.
Job = tuple[Sequence[tuple[Sequence[str], Path | None]], dict[str, str]]


def _alternate(i: int, ours: Job, theirs: Job) -> tuple[Trial, Trial]:
    """Run both, radops first on even trials and DVC first on odd ones."""
    if i % 2 == 0:
        mine = _trial(*ours)
        return mine, _trial(*theirs)
    other = _trial(*theirs)
    return _trial(*ours), other


def _write_random(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    chunk = os.urandom(8 * 1024 * 1024)
    with path.open("wb") as handle:
        written = 0
        while written < size:
            part = chunk[: min(len(chunk), size - written)]
            handle.write(part)
            written += len(part)


def _sha256(path: Path) -> str:
    return sha256_file(path)[0]


# -- 14. publish and fetch one large file ---------------------------------------------------------


def case_14(ctx: Context) -> list[Row]:
    size, trials = BIG_QUICK if ctx.quick else BIG_FULL
    label = f"{size / MB:.0f} MB"
    dvc = _dvc(ctx)
    denv = _dvc_env(ctx)
    source = ctx.root / "c14" / "big.bin"
    _write_random(source, size)
    expected = _sha256(source)
    publish: list[tuple[Trial, Trial]] = []
    fetch: list[tuple[Trial, Trial]] = []
    for i in range(trials):
        work = ctx.root / "c14" / f"trial-{i}"
        remote = f"s3://{BUCKET}/{ctx.unique('c14')}"
        ours_env = _radops_env(ctx, "c14-publish", remote)
        theirs_repo = work / "repo"
        _dvc_repo(ctx, theirs_repo, denv)
        # Both start from a copy just written, in the page cache, synced to disk.
        ours_source = work / "big.bin"
        shutil.copyfile(source, ours_source)
        shutil.copyfile(source, theirs_repo / "big.bin")
        _run(["sync"], None, denv)

        add = [*radops_command(), "datalake", "add", str(ours_source), "big.bin"]
        publish.append(
            _alternate(
                i,
                ([(add, None)], ours_env),
                ([([dvc, "add", "big.bin"], theirs_repo), ([dvc, "push"], theirs_repo)], denv),
            )
        )

        clone = work / "clone"
        _dvc_second_machine(ctx, theirs_repo, clone, denv)
        fetch_env = _radops_env(ctx, "c14-fetch", remote)
        download = [*radops_command(), "datalake", "download", "big.bin"]
        ours, theirs = _alternate(
            i, ([(download, None)], fetch_env), ([([dvc, "pull"], clone)], denv)
        )
        fetch.append((ours, theirs))
        got = {
            "radops": _sha256(Path(ours.stdout.strip().splitlines()[-1])),
            "dvc": _sha256(clone / "big.bin"),
        }
        for tool, sha in got.items():
            if sha != expected:
                raise RuntimeError(f"case 14: {tool} fetched other bytes ({sha} != {expected})")
        shutil.rmtree(work)
        for env in (ours_env, fetch_env):
            shutil.rmtree(env["RADOPS_HOME"], ignore_errors=True)

    return [
        _time_row(
            "14",
            f"publish {label} (datalake add)",
            _times(publish),
            0.75,
            "vs dvc add + dvc push",
        ),
        _time_row(
            "14",
            f"fetch {label}, fresh machine (datalake download)",
            _times(fetch),
            0.6,
            "vs dvc pull in a fresh clone; both verified against the source's sha256",
        ),
        _memory_row(
            "14", f"  peak memory, publish {label}", _peaks(publish), 0.5, "largest process"
        ),
        _memory_row("14", f"  peak memory, fetch {label}", _peaks(fetch), 0.5, "largest process"),
    ]


# -- 15. publish and fetch many small files -------------------------------------------------------


# A reference for case 15: what moving the same files costs in raw boto3 from a fresh Python
# process, with radops' thread count and nothing else (no hash, no local copy, no record). It
# was the floor radops could not go below while its small objects went through botocore; they
# now go through obstore (radops/stores/s3_native.py), and this row shows what that saves.
_FLOOR = """
import os, sys
from concurrent.futures import ThreadPoolExecutor
import boto3
mode, root, bucket, prefix, endpoint, threads = sys.argv[1:7]
client = boto3.client("s3", endpoint_url=endpoint)
if mode == "put":
    paths = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]
    def put(path):
        key = prefix + os.path.relpath(path, root)
        with open(path, "rb") as body:
            client.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
    work, items = put, paths
else:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    def get(key):
        path = os.path.join(root, os.path.relpath(key, prefix))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as out:
            out.write(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    work, items = get, keys
with ThreadPoolExecutor(int(threads)) as pool:
    list(pool.map(work, items))
print(len(items))
"""


def _files_under(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by path relative to it."""
    return {
        path.relative_to(root).as_posix(): _sha256(path)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def case_15(ctx: Context) -> list[Row]:
    from radops.lake import DataLake
    from radops.settings import Settings

    count, size, trials = MANY_QUICK if ctx.quick else MANY_FULL
    label = f"{count:,} x {size // 1024} KB"
    dvc = _dvc(ctx)
    denv = _dvc_env(ctx)
    source = ctx.root / "c15" / "data"
    source.mkdir(parents=True)
    for n in range(count):
        # Folders of 100, as a data set of images or shards would be laid out.
        path = source / f"d{n // 100:03d}" / f"f{n:05d}.bin"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(os.urandom(size))
    expected = _files_under(source)
    fetch_ours = [*radops_command(), "datalake", "download", "data/"]
    publish: list[tuple[Trial, Trial]] = []
    fetch: list[tuple[Trial, Trial]] = []
    floor_put: list[Trial] = []
    floor_get: list[Trial] = []
    threads = Settings.load(env={}).transfer_threads
    spent: list[Path] = []
    for i in range(trials):
        work = ctx.root / "c15" / f"trial-{i}"
        remote = f"s3://{BUCKET}/{ctx.unique('c15')}"
        ours_env = _radops_env(ctx, "c15-publish", remote)
        theirs_repo = work / "repo"
        _dvc_repo(ctx, theirs_repo, denv)
        ours_source = work / "data"
        shutil.copytree(source, ours_source)
        shutil.copytree(source, theirs_repo / "data")
        _run(["sync"], None, denv)
        add = [*radops_command(), "datalake", "add", str(ours_source), "--prefix", "data/"]
        publish.append(
            _alternate(
                i,
                ([(add, None)], ours_env),
                ([([dvc, "add", "data"], theirs_repo), ([dvc, "push"], theirs_repo)], denv),
            )
        )
        clone = work / "clone"
        _dvc_second_machine(ctx, theirs_repo, clone, denv)
        fetch_env = _radops_env(ctx, "c15-fetch", remote)
        fetch.append(
            _alternate(i, ([(fetch_ours, None)], fetch_env), ([([dvc, "pull"], clone)], denv))
        )
        floor_prefix = f"{ctx.unique('c15-floor')}/"
        floor_args = [BUCKET, floor_prefix, ctx.server.endpoint, str(threads)]
        floor_put.append(
            _trial(
                [([sys.executable, "-c", _FLOOR, "put", str(source), *floor_args], None)], ours_env
            )
        )
        floor_get.append(
            _trial(
                [([sys.executable, "-c", _FLOOR, "get", str(work / "floor"), *floor_args], None)],
                ours_env,
            )
        )
        # Count what each side fetched, and check its bytes.
        theirs_got = _files_under(clone / "data")
        lake = DataLake(
            Settings.load(
                env={},
                home=Path(fetch_env["RADOPS_HOME"]),
                remote=remote,
                s3_endpoint_url=ctx.server.endpoint,
                email=EMAIL,
                log_level="WARNING",
            )
        )
        try:
            ours_got = {}
            for rel in expected:
                uid = f"data/{rel}"
                if lake.exists_locally(uid):
                    ours_got[rel] = _sha256(lake.local_path(uid))
        finally:
            lake.local.close()
            lake.lineage.close()
        for tool, got in (("radops", ours_got), ("dvc", theirs_got)):
            if got != expected:
                missing = len(set(expected) - set(got))
                raise RuntimeError(
                    f"case 15: {tool} fetched {len(got)} of {len(expected)} files "
                    f"({missing} missing, or other bytes)"
                )
        spent += [work, Path(ours_env["RADOPS_HOME"]), Path(fetch_env["RADOPS_HOME"])]
    # Removed only now: on a file system without a journal (ext4 here), creating files is
    # several times slower for about a minute after thousands were deleted (the kernel skips
    # recently freed inodes), which charged one trial's cleanup to the next trial's tools.
    for path in spent:
        shutil.rmtree(path, ignore_errors=True)

    return [
        _time_row(
            "15",
            f"publish {label} (datalake add DIR --prefix)",
            _times(publish),
            0.5,
            "vs dvc add DIR + dvc push",
        ),
        _time_row(
            "15",
            f"fetch {label}, fresh machine",
            _times(fetch),
            0.5,
            f"radops: datalake download data/; vs dvc pull in a fresh clone; "
            f"{count:,} files checked each side",
        ),
        _time_row(
            "15",
            "  boto3 alone: put_object of each file",
            [(f.seconds, b.seconds) for f, (_, b) in zip(floor_put, publish, strict=True)],
            None,
            f"a Python process, {threads} threads, nothing else; vs DVC's publish",
        ),
        _time_row(
            "15",
            "  boto3 alone: get_object of each file",
            [(f.seconds, b.seconds) for f, (_, b) in zip(floor_get, fetch, strict=True)],
            None,
            f"a Python process, {threads} threads, nothing else; vs DVC's fetch",
        ),
        _memory_row("15", f"  peak memory, publish {label}", _peaks(publish), None, ""),
        _memory_row("15", f"  peak memory, fetch {label}", _peaks(fetch), None, ""),
    ]


# -- 16. a cached step in process: file_creator vs joblib.Memory ---------------------------------


@file_creator
def peer_step(source: File, n: int) -> File:
    """1 KB in, 1 KB out: the step of cases 16 and 17."""
    with source.open("r") as handle:
        data = handle.read()
    out = File(suffix=".txt")
    with out.open("w") as handle:
        handle.write((str(n) + data)[:1024])
    return out


def joblib_step(data: str, n: int) -> str:
    """The same step for ``joblib.Memory``: its input and output are values it pickles."""
    return (str(n) + data)[:1024]


def case_16(ctx: Context) -> list[Row]:
    import joblib

    # The cases before wrote gigabytes: their writeback must not land in this one's fsyncs.
    os.sync()
    lake = ctx.lake("c16", s3=False)
    set_default_lake(lake)
    rows = []
    try:
        with File("in.txt", lake=lake).open("w") as handle:
            handle.write("x" * 1024)
        plain = ctx.root / "c16-in.txt"
        plain.write_text("x" * 1024)
        memory = joblib.Memory(ctx.root / "c16-joblib", verbose=0)
        cached = memory.cache(joblib_step)
        calls = itertools.count(1)

        def ours_first() -> None:
            peer_step(File("in.txt"), next(calls))

        def theirs_first() -> None:
            cached(plain.read_text(), next(calls))

        mine, raw = ctx.compare("16 first-run file_creator", ours_first, theirs_first)
        rows.append(
            Row(
                "16",
                "first-run file_creator, 1 KB in and out (directory)",
                seconds(mine),
                "",
                "",
                "<= 5 ms",
                mine <= 5e-3,
                "a new parameter each call, so each call runs and records",
            )
        )
        rows.append(
            ratio_row(
                "16",
                "first-run file_creator vs a joblib miss",
                mine,
                raw,
                15.0,
                "joblib.Memory: hashes the arguments, pickles the result to disk",
            )
        )
        peer_step(File("in.txt"), 0)
        cached(plain.read_text(), 0)
        mine, raw = ctx.compare(
            "16 skipped file_creator",
            lambda: peer_step(File("in.txt"), 0),
            lambda: cached(plain.read_text(), 0),
            inner=10,
        )
        rows.append(
            ratio_row(
                "16",
                "skipped file_creator vs a joblib hit",
                mine,
                raw,
                3.0,
                "the same call again (case 3's target)",
            )
        )
    finally:
        set_default_lake(None)
    return rows


# -- 17. a cached step as a process: a script calling the step vs dvc repro -----------------------

# The step of case 16, in a script of its own (a pipeline step run as a process). It imports
# only radops: the lake is the one RADOPS_* configure.
_RADOPS_SCRIPT = """
import sys
from radops.data_lake import File, file_creator

@file_creator
def peer_step(source: File, n: int) -> File:
    with source.open("r") as handle:
        data = handle.read()
    out = File(suffix=".txt")
    with out.open("w") as handle:
        handle.write((str(n) + data)[:1024])
    return out

peer_step(File("in.txt"), int(sys.argv[1]))
"""

# DVC's stage: the same step as a command; ``n`` comes from params.yaml, DVC's way.
_DVC_STEP = """
import sys
data = open("in.txt").read()
with open("out.txt", "w") as handle:
    handle.write((sys.argv[1] + data)[:1024])
"""

_DVC_YAML = """
stages:
  step:
    cmd: {python} step.py ${{n}}
    deps:
      - step.py
      - in.txt
    params:
      - n
    outs:
      - out.txt
"""


def case_17(ctx: Context) -> list[Row]:
    from radops.settings import Settings

    trials = 3 if ctx.quick else 7
    dvc = _dvc(ctx)
    denv = _dvc_env(ctx)
    remote = str(ctx.root / "lakes" / ctx.unique("c17"))
    renv = _radops_env(ctx, "c17", remote)
    lake = ctx.lake_of(
        Settings.load(env={}, home=Path(renv["RADOPS_HOME"]), remote=remote, email=EMAIL)
    )
    with File("in.txt", lake=lake).open("w") as handle:
        handle.write("x" * 1024)
    script = ctx.root / "c17-step.py"
    script.write_text(textwrap.dedent(_RADOPS_SCRIPT))
    repo = ctx.root / "c17-repo"
    _dvc_repo(ctx, repo, denv, remote=False)
    (repo / "in.txt").write_text("x" * 1024)
    (repo / "step.py").write_text(textwrap.dedent(_DVC_STEP))
    (repo / "dvc.yaml").write_text(_DVC_YAML.format(python=sys.executable))
    params = repo / "params.yaml"
    repro: Job = ([([dvc, "repro"], repo)], denv)

    first: list[tuple[Trial, Trial]] = []
    skipped: list[tuple[Trial, Trial]] = []
    for i in range(-1, trials):  # trial -1: the warm-up
        n = i + 2
        ours: Job = ([([sys.executable, str(script), str(n)], None)], renv)
        params.write_text(f"n: {n}\n")  # a new parameter: the stage is out of date
        pair = _alternate(i, ours, repro)
        again = _alternate(i, ours, repro)
        if i >= 0:
            first.append(pair)
            skipped.append(again)
        out = (repo / "out.txt").read_text()
        if out != (str(n) + "x" * 1024)[:1024]:
            raise RuntimeError(f"case 17: dvc repro left {out[:20]!r}... in out.txt")
    # A script's functions are named after its path: <path, dotted>.peer_step/<digest>-0.txt.
    made = [meta.key for meta in lake.files() if ".peer_step/" in meta.key]
    if len(made) != trials + 1:
        raise RuntimeError(f"case 17: radops made {len(made)} outputs in {trials + 1} runs")

    return [
        _time_row(
            "17",
            "a step as a process, first run",
            _times(first),
            None,
            "python script calling the file_creator step vs dvc repro of a changed param",
        ),
        _time_row(
            "17",
            "a step as a process, skipped",
            _times(skipped),
            None,
            "the same again vs dvc repro with nothing changed",
        ),
        _memory_row("17", "  peak memory, first run", _peaks(first), None, "largest process"),
    ]


PEER_CASES: dict[str, Callable[[Context], list[Row]]] = {
    "14": case_14,
    "15": case_15,
    "16": case_16,
    "17": case_17,
}
