"""The examples run as a user would run them: scripts in a subprocess, radops on PATH."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

WALKTHROUGH = Path(__file__).resolve().parent.parent / "examples" / "walkthrough" / "run.sh"


def run_walkthrough(
    extra_env: Mapping[str, str], cwd: Path, unset: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run run.sh with bash from ``cwd``, this venv's bin first on PATH, and check it passed."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "PYTHON", *unset}
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # This checkout's radops, even when the venv's editable install points at another one.
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    env.update(extra_env)
    result = subprocess.run(
        ["bash", str(WALKTHROUGH)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def check_walkthrough_output(result: subprocess.CompletedProcess[str]) -> None:
    """The commands are echoed, the file is listed and described, and Python reads it back."""
    out = result.stdout
    for command in (
        "$ radops datalake add sample.txt name_in_datalake.txt --copy",
        "$ radops datalake ls",
        "$ radops datalake info name_in_datalake.txt",
        "$ python read_file.py",
    ):
        assert f"\n{command}\n" in out
    listing = out.split("$ radops datalake ls\n")[1].split("\n\n")[0]
    assert listing == "name_in_datalake.txt"
    assert re.search(r"^uid +name_in_datalake\.txt$", out, re.MULTILINE)
    assert re.search(r"^size +18$", out, re.MULTILINE)
    assert re.search(r"^remote +True$", out, re.MULTILINE)
    assert "$ python read_file.py\nthis is some data\n" in out
    runs = out.split("$ python pipeline.py\n")
    assert len(runs) == 3  # the step runs, then is skipped on the second call
    assert all(run.startswith("this is some data\nadditional data\n") for run in runs[1:])
    assert (
        "examples.walkthrough.pipeline.process skipped: its outputs are already in the data lake"
        in result.stderr
    )
    lineage = out.split("$ radops datalake lineage processed_file.txt\n")[1]
    for expected in (
        "input files",
        "creation method",
        "function examples.walkthrough.pipeline.process",
        "uid processed_file.txt",
        "name_in_datalake.txt",
        "radops version: ",
    ):
        assert expected in lineage
    assert "added name_in_datalake.txt (18 bytes)" in result.stderr


def test_walkthrough_runs_on_the_configured_lake(cli_env, tmp_path):
    """run.sh adds, lists, describes and reads back a file on the lake the environment names."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    result = run_walkthrough(cli_env, cwd)
    check_walkthrough_output(result)
    assert f"radops home: {cli_env['RADOPS_HOME']}" in result.stdout
    if cli_env["RADOPS_REMOTE"].startswith("s3://"):
        assert re.search(rf"^lake +{re.escape(cli_env['RADOPS_REMOTE'])}$", result.stdout, re.M)
    assert list(cwd.iterdir()) == []  # nothing left in the directory it ran from


def test_walkthrough_defaults_to_a_fresh_embedded_lake_and_reruns(tmp_path):
    """Without RADOPS_* settings, each run gets a new home whose directory lake starts empty,
    and removes it when it ends: nothing is left in the temporary directory."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {"TMPDIR": str(scratch)}
    unset = ("RADOPS_HOME", "RADOPS_REMOTE", "RADOPS_EMAIL", "RADOPS_S3_ENDPOINT_URL")
    homes = []
    for _ in range(2):
        result = run_walkthrough(env, tmp_path, unset=unset)
        check_walkthrough_output(result)
        home = Path(re.search(r"^radops home: (.+)$", result.stdout, re.M).group(1))
        assert home.parent == scratch
        assert re.search(rf"^lake +{re.escape(str(home / 'lake'))}$", result.stdout, re.M)
        assert not home.exists()
        assert list(scratch.iterdir()) == []
        homes.append(home)
    assert homes[0] != homes[1]


def test_walkthrough_with_marquez_shows_every_file_in_its_lineage_graph(
    cli_env, tmp_path, marquez, lineage_namespace
):
    """With RADOPS_MARQUEZ_URL set, the walkthrough's files each have their full lineage in
    Marquez's graph (what its web UI draws): the step, its input, the add and its local file."""
    from radops.lake import DataLake
    from radops.lineage.marquez import MarquezClient
    from radops.settings import Settings
    from tests.conftest import TEST_EMAIL
    from tests.marquez_graph import missing_from_graph

    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {**cli_env, "RADOPS_MARQUEZ_URL": marquez.url, "RADOPS_NAMESPACE": lineage_namespace}
    check_walkthrough_output(run_walkthrough(env, cwd))
    flushed = subprocess.run(
        [sys.executable, "-m", "radops", "lineage", "flush"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert flushed.returncode == 0, flushed.stderr
    reader = DataLake(  # no Marquez: the lake's own records are the expected answer
        Settings.load(
            env={},
            home=tmp_path / "reader",
            remote=cli_env["RADOPS_REMOTE"],
            s3_endpoint_url=cli_env.get("RADOPS_S3_ENDPOINT_URL"),
            email=TEST_EMAIL,
        )
    )
    try:
        client = MarquezClient(marquez.url)
        for uid in ("name_in_datalake.txt", "processed_file.txt"):
            assert missing_from_graph(reader, client, uid) == set()
    finally:
        reader.local.close()


def test_walkthrough_keeps_a_home_the_user_gave(tmp_path):
    """A RADOPS_HOME set by the user is theirs: run.sh leaves it, with the file it added."""
    home = tmp_path / "mine"
    env = {"RADOPS_HOME": str(home), "TMPDIR": str(tmp_path)}
    unset = ("RADOPS_REMOTE", "RADOPS_S3_ENDPOINT_URL")
    check_walkthrough_output(run_walkthrough(env, tmp_path, unset=unset))
    assert (home / "storage" / "name_in_datalake.txt").is_file()
