"""``radops config``: show and set settings."""

from __future__ import annotations

import json

import typer

from radops.cli._common import err, handle_errors, out, print_rows, settings
from radops.cli._help import examples
from radops.settings import write_config_value

app = typer.Typer(help="Show and change radops' settings.", no_args_is_help=True)


@app.command("show")
@handle_errors
def show(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of lines."),
) -> None:
    """Print the effective settings and where each one comes from.

    One line per setting: name, value ("-" when unset) and source, in aligned columns.
    """
    rows = settings(ctx).describe()
    if as_json:
        data = {name: {"value": value, "source": source} for name, value, source in rows}
        out().print_json(json.dumps(data))
        return
    print_rows([(name, "-" if value is None else value, source) for name, value, source in rows])


@app.command(
    "set",
    epilog=examples(
        ("use a lake on S3", "radops config set remote s3://my-bucket/lake"),
        ("remove a setting", 'radops config set cache_max_bytes ""'),
    ),
)
@handle_errors
def set_(
    ctx: typer.Context,
    key: str = typer.Argument(
        ...,
        help="remote, s3_endpoint_url, email, cache_max_bytes, log_level, namespace, "
        "marquez_url, lineage_timeout, download_max_bytes or download_timeout.",
    ),
    value: str = typer.Argument(..., help="The value; an empty string removes the setting."),
) -> None:
    """Store a setting in $RADOPS_HOME/config.toml (environment variables still win)."""
    path = write_config_value(settings(ctx), key, value)
    err().print(f"{key} saved in {path}", markup=False)
