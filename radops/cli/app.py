"""The root ``radops`` command: resolves settings once and mounts the command groups."""

from __future__ import annotations

import typer

from radops.cli import config, datalake, lineage

app = typer.Typer(
    name="radops",
    help="A data lake of immutable files with lineage.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals can hold credentials
    add_completion=False,
)
app.add_typer(datalake.app, name="datalake")
app.add_typer(config.app, name="config")
app.add_typer(lineage.app, name="lineage")


def _version(value: bool) -> None:
    if value:
        from radops import __version__

        typer.echo(__version__)
        raise typer.Exit


@app.callback()
def root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print radops' version."
    ),
) -> None:
    """radops: files in an S3 data lake, cached locally, with their lineage."""
    from radops.cli._common import abort, setup_logging
    from radops.errors import ConfigError
    from radops.settings import Settings

    try:
        settings = Settings.load()
    except ConfigError as exc:
        abort(str(exc))
    ctx.obj = {"settings": settings}
    setup_logging(settings.log_level)


def main() -> None:
    """Entry point of the ``radops`` console script."""
    app()
