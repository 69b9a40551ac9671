"""``--help`` reads like a well-kept CLI: a description, the usage, arguments, options, examples.

Every command and group is rendered as a user sees it, at the 80 columns of typer's CliRunner.
"""

from __future__ import annotations

import itertools
import re
import shlex
from collections.abc import Iterator
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from radops.cli.app import app

WIDTH = 80  # typer's CliRunner renders help at 80 columns, whatever COLUMNS says
ENV = {"FORCE_COLOR": None, "NO_COLOR": None, "TTY_COMPATIBLE": None}


def command_paths(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of every command and group of the CLI, the root included."""
    yield path
    ctx = command.make_context(path[-1] if path else "radops", [], resilient_parsing=True)
    for name in getattr(command, "list_commands", lambda _ctx: [])(ctx):
        yield from command_paths(command.get_command(ctx, name), (*path, name))


PATHS = list(command_paths(typer.main.get_command(app)))


def show_help(*path: str) -> str:
    """``radops PATH --help`` as printed on stdout (exit 0)."""
    result = CliRunner().invoke(app, [*path, "--help"], env=ENV)
    assert result.exit_code == 0, result.output
    return result.stdout


def section(text: str, title: str) -> list[str]:
    """The lines of the ``title:`` section of a help text (up to the next blank line)."""
    lines = text.splitlines()
    start = lines.index(f"{title}:") + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


@pytest.mark.parametrize("path", PATHS, ids=lambda path: " ".join(path) or "radops")
def test_help_shows_no_type_placeholders_braces_or_markup(path: tuple[str, ...]) -> None:
    """No ``<bool>``/``<str>`` metavars, no ``{arg}`` in the usage, no RST or rich markup."""
    text = show_help(*path)
    assert re.search(r"<(bool|str|int|float|text)>", text) is None, text
    usage = next(line for line in text.splitlines() if line.startswith("Usage: "))
    assert "{" not in usage, usage
    assert "``" not in text, text
    assert "╭" not in text, text  # plain text, like git, gh and uv: no panels


@pytest.mark.parametrize("path", PATHS, ids=lambda path: " ".join(path) or "radops")
def test_help_starts_with_the_description_then_the_usage(path: tuple[str, ...]) -> None:
    """The help opens with what the command does; the usage follows after a blank line."""
    lines = show_help(*path).splitlines()
    usage = next(i for i, line in enumerate(lines) if line.startswith("Usage: "))
    assert usage >= 2, lines[:3]
    assert all(line and not line.startswith(" ") for line in lines[: usage - 1]), lines[:usage]
    assert lines[usage - 1] == ""
    assert lines[usage].startswith(f"Usage: {' '.join(('radops', *path))} "), lines[usage]


def test_usage_names_arguments_in_capitals_optional_ones_bracketed() -> None:
    """``add``'s usage reads ``SOURCE [UID]``, as the guide writes it."""
    text = show_help("datalake", "add")
    assert "Usage: radops datalake add [OPTIONS] SOURCE [UID]" in text
    assert section(text, "Arguments")[0].split()[0] == "SOURCE"


def test_flags_have_no_metavar_and_options_name_their_value() -> None:
    """``--json`` stands alone; ``--prefix`` and ``--depth`` say what value they take."""
    ls_options = section(show_help("datalake", "ls"), "Options")
    assert any(re.match(r"\s+--json\s{2,}One JSON object per line", line) for line in ls_options)
    add_options = section(show_help("datalake", "add"), "Options")
    assert any(re.match(r"\s+--prefix PREFIX\s{2,}A folder", line) for line in add_options)
    lineage_options = section(show_help("datalake", "lineage"), "Options")
    assert any(re.match(r"\s+--depth N\s{2,}Levels", line) for line in lineage_options)
    export_options = section(show_help("lineage", "export"), "Options")
    assert any(re.match(r"\s+--since TIME\s{2,}Only events", line) for line in export_options)


def prose(text: str) -> list[list[str]]:
    """The paragraphs between the usage line and the first section, as lists of lines."""
    lines = text.splitlines()
    usage = next(i for i, line in enumerate(lines) if line.startswith("Usage: "))
    end = next(i for i, line in enumerate(lines) if line.endswith(":") and i > usage)
    body = lines[usage + 1 : end]
    paragraphs: list[list[str]] = [[]]
    for line in body:
        if line.strip():
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    return [paragraph for paragraph in paragraphs if paragraph]


@pytest.mark.parametrize(
    "path", [("datalake", "add"), ("datalake", "repair"), ("lineage", "replay")]
)
def test_paragraphs_are_wrapped_to_the_width_not_at_the_docstring_line_breaks(
    path: tuple[str, ...],
) -> None:
    """A line of a paragraph ends only where the next word would not fit (greedy wrapping)."""
    paragraphs = prose(show_help(*path))
    assert paragraphs, path
    for paragraph in paragraphs:
        for line, following in itertools.pairwise(paragraph):
            next_word = following.split()[0]
            assert len(line) + 1 + len(next_word) > WIDTH, paragraph


def test_info_describes_its_output_without_markup() -> None:
    """``info --help`` says what it prints in plain words."""
    text = show_help("datalake", "info")
    assert "``" not in text
    assert "key" in " ".join(line for paragraph in prose(text) for line in paragraph)


def examples(text: str) -> list[str]:
    """The example command lines of a help text."""
    return [
        line.strip() for line in section(text, "Examples") if line.strip().startswith("radops ")
    ]


@pytest.mark.parametrize("command", ["add", "ls", "lineage"])
def test_main_commands_show_examples(command: str) -> None:
    """``add``, ``ls`` and ``lineage`` end with examples of themselves."""
    shown = examples(show_help("datalake", command))
    assert shown, command
    assert all(line.startswith(f"radops datalake {command}") for line in shown), shown


def test_every_example_names_a_real_command_and_real_options() -> None:
    """An example that no longer parses would teach a user something wrong."""
    shown = [
        line
        for path in PATHS
        if "Examples:" in (text := show_help(*path))
        for line in examples(text)
    ]
    assert len(shown) >= 6
    for line in shown:
        words = shlex.split(line.split(">")[0])[1:]
        command = typer.main.get_command(app)
        ctx = command.make_context("radops", [], resilient_parsing=True)
        while words and hasattr(command, "get_command") and command.get_command(ctx, words[0]):
            command = command.get_command(ctx, words[0])
            ctx = command.make_context(words.pop(0), [], parent=ctx, resilient_parsing=True)
        known = {opt for param in command.get_params(ctx) for opt in param.opts}
        assert not hasattr(command, "list_commands"), line
        assert [w for w in words if w.startswith("-") and w not in known] == [], line


def test_short_help_flag_works_like_long() -> None:
    """``-h`` is ``--help``, as in git, gh and uv."""
    result = CliRunner().invoke(app, ["datalake", "add", "-h"], env=ENV)
    assert result.exit_code == 0
    assert result.stdout == show_help("datalake", "add")
