"""``radops lineage``: the OpenLineage events of the lake."""

from __future__ import annotations

import json

import typer

from radops.cli._common import abort, err, handle_errors, lake

app = typer.Typer(help="OpenLineage events: delivery and export.", no_args_is_help=True)


@app.command("flush")
@handle_errors
def flush(ctx: typer.Context) -> None:
    """Send the events queued for the lineage consumer (Marquez or OpenLineage transport)."""
    outbox = lake(ctx).lineage.outbox
    if not outbox.enabled:
        pending = len(outbox.pending())
        err().print(f"no lineage consumer is configured; {pending} event(s) queued", markup=False)
        return
    result = outbox.flush()
    err().print(
        f"delivered {result.delivered} event(s), {result.remaining} still queued", markup=False
    )
    if result.failed:
        raise typer.Exit(1)


@app.command("export")
@handle_errors
def export(
    ctx: typer.Context,
    since: str = typer.Option(
        None, "--since", help="Only events at or after this ISO time (UTC unless it says)."
    ),
) -> None:
    """Print every event stored in the lake as NDJSON (one event per line)."""
    data_lake = lake(ctx)
    data_lake.lineage.sync()
    for event in data_lake.lineage.index.events(_utc_iso(since) if since else None):
        typer.echo(json.dumps(event, sort_keys=True))


def _utc_iso(text: str) -> str:
    """``text`` (ISO 8601) in the form radops stores event times: UTC ``isoformat()``.

    Fix: the index compares event times as strings, so ``--since`` given with a ``Z`` suffix
    or another offset (``...T10:00:00+02:00``) selected the wrong events.
    """
    from datetime import datetime, timezone

    try:
        moment = datetime.fromisoformat(text.strip().removesuffix("Z").removesuffix("z"))
    except ValueError:
        abort(f"--since {text!r} is not an ISO 8601 time (like 2025-01-31T12:00:00Z)", code=2)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat()
