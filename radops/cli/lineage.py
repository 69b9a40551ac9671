"""``radops lineage``: the OpenLineage events of the lake."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import typer

from radops.cli._common import abort, err, handle_errors, lake, print_rows

if TYPE_CHECKING:
    from radops.lineage.marquez import MarquezClient

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
    api_key_env: str = typer.Option(
        None,
        "--api-key-env",
        metavar="NAME",
        help="With --to: send the bearer token held by this environment variable.",
    ),
    everything: bool = typer.Option(
        False, "--all", help="Send every event, even those Marquez already has."
    ),
) -> None:
    """Send the events stored in the lake to a consumer, to backfill a new Marquez or catalog.

    To Marquez (--to or RADOPS_MARQUEZ_URL), an event whose run Marquez already holds
    in the state the event gives is not sent again (one GET per run), so replaying twice sends
    nothing the second time. Other consumers cannot be asked: every event is sent. The key of
    RADOPS_MARQUEZ_API_KEY goes only to the configured Marquez, never to a --to URL.
    """
    import os

    from radops.errors import InvalidRecordError
    from radops.lineage.delivery import DeliveryError, http_transport, send
    from radops.lineage.marquez import MarquezClient

    data_lake = lake(ctx)
    settings = data_lake.settings
    marquez: MarquezClient | None = None
    if api_key_env and not to:
        abort("--api-key-env goes with --to URL", code=2)
    if to:
        key = None
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                abort(f"--api-key-env {api_key_env}: that environment variable is not set")
        transport = http_transport(to, api_key=key, timeout=settings.lineage_timeout)
        marquez = MarquezClient(to, api_key=key, timeout=settings.lineage_timeout)
    else:
        transport = data_lake.lineage.outbox.transport
        if transport is None:
            abort("no lineage consumer is configured: pass --to URL or set RADOPS_MARQUEZ_URL")
        if settings.marquez_url:
            marquez = MarquezClient(
                settings.marquez_url,
                api_key=settings.marquez_api_key,
                timeout=settings.lineage_timeout,
            )
    if everything:
        marquez = None
    data_lake.lineage.sync()
    names = list(data_lake.lineage.records.names())
    sent = known = 0
    with _counter(f"replaying {len(names)} event(s)", len(names)) as advance:
        for name in names:
            try:
                event = data_lake.lineage.records.read(name)
            except InvalidRecordError:
                event = None  # the sync above warned about it, once
            advance()
            if event is None:
                continue
            if marquez is not None and _marquez_has(marquez, event):
                known += 1
                continue
            try:
                send(transport, event)
            except DeliveryError as failure:
                abort(f"replay stopped after {sent} event(s): {failure.answer}")
            sent += 1
    already = f", {known} already there" if known else ""
    err().print(f"replayed {sent} event(s) from {data_lake.store.url}{already}", markup=False)


_MARQUEZ_STATES = {"COMPLETE": "COMPLETED", "FAIL": "FAILED", "ABORT": "ABORTED"}


def _marquez_has(marquez: MarquezClient, event: Mapping[str, Any]) -> bool:
    """True if Marquez holds the event's run in the state the event gives (it took it)."""
    from radops.lineage.marquez import MarquezError

    wanted = _MARQUEZ_STATES.get(str(event.get("eventType")))
    run_id = event.get("run", {}).get("runId")
    if wanted is None or not isinstance(run_id, str):
        return False
    try:
        run = marquez.run(run_id)
    except MarquezError:
        return False  # cannot tell: send it
    return run is not None and run.get("state") == wanted


@app.command("rejected")
@handle_errors
def rejected(ctx: typer.Context) -> None:
    """List the events the lineage consumer refused, set aside so that others go on."""
    items = lake(ctx).lineage.outbox.rejected()
    if not items:
        err().print("no event was refused", markup=False)
        return
    rows = [["name", "event", "job", "run", "answer"]]
    for item in items:
        rows.append(
            [
                item.name,
                str(item.event.get("eventType", "?")),
                str(item.event.get("job", {}).get("name", "?")),
                item.run_id,
                item.answer,
            ]
        )
    print_rows(rows)


@app.command("retry")
@handle_errors
def retry(
    ctx: typer.Context,
    names: list[str] = typer.Argument(  # noqa: B008 - typer reads its defaults this way
        None, help="Names from `radops lineage rejected`."
    ),
    everything: bool = typer.Option(False, "--all", help="Every refused event."),
) -> None:
    """Queue refused events again (after fixing the consumer) and send them."""
    if not names and not everything:
        abort("name the events to retry (see `radops lineage rejected`), or pass --all", code=2)
    outbox = lake(ctx).lineage.outbox
    moved = outbox.retry(None if everything else names)
    result = outbox.flush()
    err().print(
        f"queued {moved} event(s) again; delivered {result.delivered}, "
        f"{result.rejected} refused again, {result.remaining} still queued",
        markup=False,
    )
    if result.failed or result.rejected:
        raise typer.Exit(1)


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
