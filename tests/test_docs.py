"""The docs site builds with --strict, documents every command, and its quickstart is true."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main

from radops.cli.app import app
from radops.settings import SETTING_NAMES

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "docs" / "quickstart.md"
WALKTHROUGH = ROOT / "examples" / "walkthrough"
EMAIL = "you@example.com"  # the originator in the quickstart: it sets the width of the boxes


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built as CI and `mkdocs build --strict` build it."""
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        # Not --quiet: it hides the warnings that --strict counts, and the build then passes.
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # Material's banner about MkDocs 2
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return out


def test_site_builds_strict_with_its_key_pages(site: Path) -> None:
    """Every page of the nav that users land on is built."""
    for page in ("", "quickstart", "concepts", "troubleshooting", "cli-reference", "api"):
        assert (site / page / "index.html").is_file(), page
    api = (site / "api" / "index.html").read_text()
    assert all(name in api for name in ("file_creator", "FileExistsInLakeError", "Settings"))


def commands(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command of the click tree under ``command``, with its path, the groups included."""
    yield path, command
    ctx = command.make_context(path[-1], [], resilient_parsing=True)
    for name in getattr(command, "list_commands", lambda _ctx: [])(ctx):
        sub = command.get_command(ctx, name)
        if not sub.hidden:
            yield from commands(sub, (*path, name))


def test_cli_reference_documents_every_command_and_option(site: Path) -> None:
    """The generated reference has a section for each command, listing each of its options."""
    reference = (site / "cli-reference" / "index.html").read_text()
    for path, command in commands(typer.main.get_command(app), ("radops",)):
        heading = rf'<h[23] id="[^"]*"><code>{re.escape(" ".join(path))}</code>'
        assert re.search(heading, reference), path
        options = [opt for param in command.params for opt in param.opts if opt.startswith("-")]
        assert [opt for opt in options if opt not in reference] == [], path


def documented_commands() -> Iterator[tuple[Path, str]]:
    """Every `radops ...` command line shown in the docs, the README and the examples' READMEs."""
    pages = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *ROOT.glob("examples/*/README.md")]
    for page in sorted(pages):
        text = page.read_text()
        for line in re.findall(r"^\$ (radops .*)$", "\n".join(fenced(text, "console")), re.M):
            yield page, line
        for line in re.findall(r"^(radops .*)$", "\n".join(fenced(text, "bash")), re.M):
            yield page, line


def fenced(text: str, language: str) -> list[str]:
    """The bodies of the ```language blocks of a Markdown text."""
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.DOTALL | re.MULTILINE)


def test_documented_commands_and_options_exist() -> None:
    """Each command line shown in the docs names a real command and only its real options."""
    wrong = []
    for page, line in documented_commands():
        command = typer.main.get_command(app)
        ctx = command.make_context("radops", [], resilient_parsing=True)
        # Up to a pipe or redirection: what follows is another program (possibly multi-line).
        words = shlex.split(re.split(r"\s[|>;&]", line, maxsplit=1)[0], comments=True)[1:]
        while words and hasattr(command, "get_command") and command.get_command(ctx, words[0]):
            command = command.get_command(ctx, words[0])
            ctx = command.make_context(words.pop(0), [], parent=ctx, resilient_parsing=True)
        known = {opt for param in command.get_params(ctx) for opt in param.opts}
        unknown = [w for w in words if w.startswith("-") and w.split("=")[0] not in known]
        if hasattr(command, "list_commands") or unknown:  # a group alone is not a command
            wrong.append(f"{page.relative_to(ROOT)}: {line}")
    assert wrong == []


def test_configuration_reference_lists_every_setting() -> None:
    """docs/configuration.md has a row for every setting, with its environment variable."""
    page = (ROOT / "docs" / "configuration.md").read_text()
    for name in (*SETTING_NAMES, "marquez_api_key"):
        assert f"| {name} | `RADOPS_{name.upper()}` |" in page, name


def test_config_show_examples_look_like_its_output() -> None:
    """Every ``$ radops config show`` shown in the docs prints what the command prints: one
    line per setting, starting with its name (no header row); "..." may shorten it."""
    known = {*SETTING_NAMES, "marquez_api_key", "openlineage"}
    shown = 0
    for page in sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")]):
        for block in fenced(page.read_text(), "console"):
            for output in re.findall(r"^\$ radops config show\n((?:(?!\$ ).*\n)*)", block, re.M):
                rows = [line for line in output.splitlines() if line.strip() not in ("", "...")]
                assert rows, page
                assert [row.split()[0] for row in rows if row.split()[0] not in known] == [], page
                shown += 1
    assert shown >= 2


def console_blocks(text: str, region: str) -> str:
    """The ```console blocks between the markers ``<!-- region: start`` and ``end -->``."""
    inside = text.split(f"<!-- {region}: start")[1].split(f"<!-- {region}: end -->")[0]
    return "\n".join(fenced(inside, "console"))


def normalize(transcript: str, **paths: Path | str) -> list[str]:
    """The lines of a transcript without what changes from run to run or checkout to checkout.

    Times, run ids, writer tokens and versions change at every run; paths, the code link and
    the note about it depend on the machine and on the clone's git remote.
    """
    for name, path in paths.items():
        transcript = transcript.replace(str(path), f"<{name}>")
    rules = [
        (r"\S*/tmp\.\w{10}\b", "<scratch>"),  # run.sh's mktemp -d
        (r"\d{4}-\d\d-\d\dT[\d:.]+\+00:00", "<time>"),
        (r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<run id>"),
        (r"^(radops-writer +)\S+", r"\1<writer>"),
        (r"^(radops-version +|radops version: )\S+", r"\1<version>"),
        (r"^(creation method code: ).*", r"\1<code link>"),
    ]
    for pattern, replacement in rules:
        transcript = re.sub(pattern, replacement, transcript, flags=re.MULTILINE)
    skipped = ("radops home:", "radops: warning:", "  note:")
    return [
        line.rstrip()
        for line in transcript.splitlines()
        if line.strip() and not line.startswith(skipped)
    ]


def user_env(tmp_path: Path) -> dict[str, str]:
    """A user's shell: this venv's radops and python first on PATH, no RADOPS_* of ours.

    Nothing that changes rich's output either (colours, width): the page shows it plain.
    """
    unset = {"COLUMNS", "PYTHON", "FORCE_COLOR", "TTY_COMPATIBLE"}
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("RADOPS_", "OPENLINEAGE")) and name not in unset
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)  # this checkout's radops, whatever the venv points at
    env["TMPDIR"] = str(tmp_path)
    env["RADOPS_EMAIL"] = EMAIL
    env["RADOPS_REMOTE"] = str(tmp_path / "lake")
    return env


def test_quickstart_shows_what_the_walkthrough_prints(tmp_path: Path) -> None:
    """The quickstart's transcripts are run.sh's output and the second machine's, modulo paths."""
    page = QUICKSTART.read_text()
    env = user_env(tmp_path)
    first = subprocess.run(
        ["bash", str(WALKTHROUGH / "run.sh")],
        env={**env, "RADOPS_HOME": str(tmp_path / "machine-a")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # interleaved as in a terminal, like the page shows
        text=True,
        timeout=120,
        check=True,
    )
    ran = normalize(first.stdout, home=tmp_path / "machine-a", lake=tmp_path / "lake")
    documented = console_blocks(page, "run.sh transcript")
    shown = normalize(documented, home="/tmp/radops-demo/machine-a", lake="/tmp/radops-demo/lake")
    assert ran == shown

    # The second machine: run each documented command where the page runs it.
    shown = console_blocks(page, "second machine")
    second = []
    for command in re.findall(r"^\$ (.*)$", shown, re.MULTILINE):
        result = subprocess.run(
            shlex.split(command),
            cwd=WALKTHROUGH,
            env={**env, "RADOPS_HOME": str(tmp_path / "machine-b")},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=60,
            check=True,
        )
        second.append(f"$ {command}\n{result.stdout}")
    assert normalize("".join(second)) == normalize(shown)
