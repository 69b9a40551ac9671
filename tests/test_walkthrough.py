"""The README walkthrough, end to end, run the way a user runs it: commands in a git repository.

Everything goes through subprocesses (``python pipeline.py``, ``python -m radops ...``) on both
remotes, and a second machine (another ``RADOPS_HOME``) reuses what the first one made.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from radops.lineage.events import function_of
from tests.conftest import TEST_EMAIL

ROOT = Path(__file__).parents[1]
ORIGIN = "git@github.com:acme/radops-demo.git"

PIPELINE = textwrap.dedent(
    '''\
    """The walkthrough pipeline: one step that appends a line to a data-lake file."""

    from radops.data_lake import File, file_creator


    @file_creator
    def process(f: File, output_uid: str) -> File:
        with f.open("r") as handle:
            data = handle.read()
        out = File(output_uid)
        with out.open("w") as handle:
            handle.write(data + "\\nadditional data")
        return out


    if __name__ == "__main__":
        f_out = process(f=File("name_in_datalake.txt"), output_uid="processed_file.txt")
        with f_out.open("r") as handle:
            print(handle.read())
    '''
)

PARAMETERS_ONLY = textwrap.dedent(
    """\
    from radops.data_lake import File, file_creator


    @file_creator
    def count_to(n: int, output_uid: str) -> File:
        out = File(output_uid)
        with out.open("w") as handle:
            handle.write(" ".join(str(i) for i in range(1, n + 1)))
        return out


    if __name__ == "__main__":
        with count_to(n=3, output_uid="numbers.txt").open() as handle:
            print(handle.read())
    """
)


def _environment(cli_env: dict[str, str], **extra: str) -> dict[str, str]:
    """The user's environment: the test's own, radops configured, this checkout importable."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("GIT_", "PYTEST_", "COV_"))
        and name not in {"NO_COLOR", "FORCE_COLOR", "COLUMNS", "TERM"}
    }
    env.update(cli_env)
    env["PYTHONPATH"] = str(ROOT)
    # Like the test session: a warning in radops (or in how it uses a library) is an error.
    env["PYTHONWARNINGS"] = "error"
    env.update(extra)
    return env


def _run(
    args: list[str], cwd: Path, env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check:
        assert result.returncode == 0, (
            f"{args} exited with {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def _git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=30
    )
    return result.stdout.strip()


def _project(tmp_path: Path) -> Path:
    """A fresh git repository with an origin on GitHub, as the walkthrough starts."""
    project = tmp_path / "radops-demo"
    project.mkdir()
    _git(project, "init", "-q", "-b", "main")
    _git(project, "config", "user.email", "dev@example.com")
    _git(project, "config", "user.name", "Dev")
    _git(project, "config", "commit.gpgsign", "false")
    _git(project, "remote", "add", "origin", ORIGIN)
    return project


def _commit(project: Path, name: str, text: str) -> str:
    (project / name).write_text(text)
    _git(project, "add", name)
    _git(project, "commit", "-q", "-m", f"add {name}")
    return _git(project, "rev-parse", "HEAD")


def _validate(event: dict) -> None:
    from tests.olschema import validate_event

    validate_event(event)


def test_walkthrough(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """Add a file, run a pipeline, read its lineage; a second machine skips the step."""
    project = _project(tmp_path)
    env_a = _environment(cli_env)

    # 1. Put a file in the data lake.
    (project / "sample.txt").write_text("this is some data")
    added = _run(
        ["-m", "radops", "datalake", "add", "sample.txt", "name_in_datalake.txt", "--copy"],
        project,
        env_a,
    )
    assert "added name_in_datalake.txt" in added.stderr
    assert (project / "sample.txt").read_text() == "this is some data"  # --copy keeps it

    # 2. A committed pipeline creates a file from it.
    commit = _commit(project, "pipeline.py", PIPELINE)
    ran = _run(["pipeline.py"], project, env_a)
    assert ran.stdout == "this is some data\nadditional data\n"
    assert "warning" not in ran.stderr.lower(), ran.stderr

    # 3. Its lineage: input files -> creation method -> output, and a link to the code.
    shown = _run(["-m", "radops", "datalake", "lineage", "processed_file.txt"], project, env_a)
    text = shown.stdout
    for expected in (
        "╭",
        "╰",
        "input files",
        "creation method",
        "output",
        "->",
        "name_in_datalake.txt",
        "function pipeline.process",
        "uid processed_file.txt",
        f"originator {TEST_EMAIL}",
        "radops version: ",
    ):
        assert expected in text, f"{expected!r} missing from:\n{text}"
    assert text.count("╭") == 3, text
    code = re.search(r"^creation method code: (\S+)$", text, re.MULTILINE)
    assert code is not None, text
    lines = PIPELINE.splitlines()
    decorator_line = lines.index("@file_creator") + 1
    assert code.group(1) in {
        f"https://github.com/acme/radops-demo/blob/{commit}/pipeline.py#L{line}"
        for line in (decorator_line, decorator_line + 1)  # the decorator or the def line
    }, code.group(1)
    assert shown.stderr == ""

    as_json = _run(
        ["-m", "radops", "datalake", "lineage", "processed_file.txt", "--json"], project, env_a
    )
    payload = json.loads(as_json.stdout)
    assert payload["uid"] == "processed_file.txt"
    [event] = payload["events"]
    assert event["eventType"] == "COMPLETE"
    assert function_of(event) == "pipeline.process"
    facet = event["run"]["facets"]["radops_run"]
    assert facet["inputs"] == ["name_in_datalake.txt"]
    assert facet["outputs"] == ["processed_file.txt"]
    assert facet["email"] == TEST_EMAIL
    assert event["job"]["facets"]["sourceCodeLocation"]["version"] == commit
    assert event["outputs"][0]["name"].endswith("processed_file.txt")
    assert event["inputs"][0]["name"].endswith("name_in_datalake.txt")
    _validate(event)

    # 4. Another machine on the same lake: the step is skipped, only the output is fetched.
    home_b = tmp_path / "machine-b"
    env_b = _environment(cli_env, RADOPS_HOME=str(home_b))
    again = _run(["pipeline.py"], project, env_b)
    assert again.stdout == "this is some data\nadditional data\n"
    assert "pipeline.process skipped" in again.stderr
    assert "already in the data lake" in again.stderr
    storage_b = home_b / "storage"
    assert (storage_b / "processed_file.txt").is_file()  # it was opened
    assert not (storage_b / "name_in_datalake.txt").exists()  # the skipped step's input was not

    # 5. `datalake ls` on machine B: local files bold, remote-only ones italic.
    listed = _run(["-m", "radops", "datalake", "ls"], project, {**env_b, "FORCE_COLOR": "1"})
    assert "\x1b[1mprocessed_file.txt" in listed.stdout, repr(listed.stdout)
    assert "\x1b[3mname_in_datalake.txt" in listed.stdout, repr(listed.stdout)
    assert "\x1b[1mname_in_datalake.txt" not in listed.stdout


@pytest.mark.parametrize("remote", ["directory"], indirect=True)  # the walkthrough covers S3
def test_lineage_of_a_file_made_from_parameters_only(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    """A step that takes only parameters: no input-files box, the parameters are shown."""
    project = _project(tmp_path)
    env = _environment(cli_env)
    commit = _commit(project, "count.py", PARAMETERS_ONLY)
    ran = _run(["count.py"], project, env)
    assert ran.stdout == "1 2 3\n"

    shown = _run(["-m", "radops", "datalake", "lineage", "numbers.txt"], project, env)
    text = shown.stdout
    assert "input files" not in text
    assert text.count("╭") == 2, text
    assert "creation method" in text
    assert "function count.count_to" in text
    assert "n = 3" in text
    assert "uid numbers.txt" in text
    assert f"https://github.com/acme/radops-demo/blob/{commit}/count.py#L" in text
