"""``radops lineage``: the OpenLineage events of the lake."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator

import typer

from radops.cli._common import abort, err, handle_errors, lake

app = typer.Typer(help="OpenLineage events: delivery, export and replay.", no_args_is_help=True)


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
        None,
        "--since",
        metavar="TIME",
        help="Only events at or after this ISO time (UTC unless it says).",
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


@app.command("replay")
@handle_errors
def replay(
    ctx: typer.Context,
    to: str = typer.Option(
        None,
        "--to",
        metavar="URL",
        help="A Marquez (or OpenLineage HTTP) URL; default: the configured consumer.",
    ),
) -> None:
    """Send every event stored in the lake to a consumer, to backfill a new Marquez or catalog.

    Idempotent: events keep their runIds, and consumers such as Marquez update a run rather
    than add one, so replaying twice creates no duplicate runs.
    """
    from radops.lineage.delivery import http_transport

    data_lake = lake(ctx)
    settings = data_lake.settings
    if to:
        transport = http_transport(
            to, api_key=settings.marquez_api_key, timeout=settings.lineage_timeout
        )
    else:
        transport = data_lake.lineage.outbox.transport
        if transport is None:
            abort("no lineage consumer is configured: pass --to URL or set RADOPS_MARQUEZ_URL")
    data_lake.lineage.sync()
    names = list(data_lake.lineage.records.names())
    sent = 0
    with _counter(f"replaying {len(names)} event(s)", len(names)) as advance:
        for name in names:
            event = data_lake.lineage.records.read(name)
            if event is None:
                continue
            try:
                transport.emit(event)
            except Exception as exc:  # noqa: BLE001 - any transport failure is reported the same
                abort(f"replay stopped after {sent} event(s): the consumer failed: {exc}")
            sent += 1
            advance()
    err().print(f"replayed {sent} event(s) from {data_lake.store.url}", markup=False)


@contextlib.contextmanager
def _counter(description: str, total: int) -> Iterator[Callable[[], None]]:
    """A rich progress bar on stderr when it is a terminal; a no-op otherwise."""
    console = err()
    if not console.is_terminal:
        yield lambda: None
        return
    from rich.progress import Progress

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)
