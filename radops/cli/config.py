"""``radops config``: show and set settings."""

from __future__ import annotations

import json

import typer

from radops.cli._common import err, handle_errors, out, print_rows, settings, warn
from radops.cli._help import examples
from radops.settings import SETTABLE_NAMES

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
        ("remove a setting, back to its default", 'radops config set cache_max_bytes ""'),
    ),
)
@handle_errors
def set_(
    key: str = typer.Argument(
        ..., help=f"The setting: {', '.join(SETTABLE_NAMES[:-1])} or {SETTABLE_NAMES[-1]}."
    ),
    value: str = typer.Argument(..., help="The value; an empty string removes the setting."),
) -> None:
    """Store a setting in $RADOPS_HOME/config.toml (environment variables still win).

    The value is checked before it is written. Only RADOPS_HOME is read first, so that a bad
    value already in the file can be replaced. `radops config show` lists the settings, and
    the configuration reference of the documentation says what each one does.
    """
    from radops.errors import ConfigError
    from radops.settings import Settings, config_file, unset_config_value, write_config_value

    path = config_file()
    if value == "":
        path, removed = unset_config_value(path, key)
        name = key.lower().replace("-", "_")
        if removed:
            err().print(f"{name} removed from {path}", markup=False)
        else:
            err().print(f"{name} was not set in {path}: nothing to remove", markup=False)
    else:
        write_config_value(path, key, value)
        err().print(f"{key} saved in {path}", markup=False)
    try:
        loaded = Settings.load()
    except ConfigError as exc:
        warn(f"the settings are still not usable: {exc}")
        return
    source = loaded.sources.get(key.lower().replace("-", "_"), "")
    if source.startswith("env "):
        warn(f"{source.removeprefix('env ')} is set and wins over config.toml")
