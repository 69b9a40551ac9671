"""The root ``radops`` command: ``--version`` and the command groups."""

from __future__ import annotations

import typer
from typer.core import TyperCommand

from radops.cli import config, datalake, lineage
from radops.cli._help import CONTEXT_SETTINGS, HelpCommand, HelpGroup, examples

app = typer.Typer(
    name="radops",
    help="A data lake of immutable files with lineage.",
    epilog=examples(
        ("add a file to the lake", "radops datalake add data.csv"),
        ("list the lake", "radops datalake ls"),
        ("see how a file was made", "radops datalake lineage processed.csv"),
        ("the settings in effect and where each comes from", "radops config show"),
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals can hold credentials
    add_completion=False,
    cls=HelpGroup,
    context_settings=CONTEXT_SETTINGS,
    # Plain help and plain usage errors (click's "Usage: ... Error: ..."), like git, gh and uv;
    # radops.cli._help formats the help.
    rich_markup_mode=None,
)
for _group in (datalake.app, config.app, lineage.app):
    # Every command prints its help through radops.cli._help, whichever module defines it.
    for _command in _group.registered_commands:
        if _command.cls in (None, TyperCommand):
            _command.cls = HelpCommand
app.add_typer(datalake.app, name="datalake", cls=HelpGroup)
app.add_typer(config.app, name="config", cls=HelpGroup)
app.add_typer(lineage.app, name="lineage", cls=HelpGroup)


def _version(value: bool) -> None:
    if value:
        from radops import __version__

        typer.echo(__version__)
        raise typer.Exit


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print radops' version."
    ),
) -> None:
    """A data lake of immutable files with lineage."""
    # Settings load when a command first needs them (radops.cli._common.settings), so that
    # --help works even when the environment holds a malformed RADOPS_* value.


def main() -> None:
    """Entry point of the ``radops`` console script."""
    app()
