"""``radops datalake``: list, add, inspect, download, verify and free data-lake files."""

from __future__ import annotations

import json
import posixpath
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from radops.cli._common import (
    abort,
    err,
    handle_errors,
    lake,
    out,
    print_rows,
    progress_bar,
    warn,
)

if TYPE_CHECKING:
    from radops.lake import DataLake

app = typer.Typer(help="Files in the data lake and in local storage.", no_args_is_help=True)

_BOLD, _ITALIC, _RESET = "\x1b[1m", "\x1b[3m", "\x1b[0m"


class Picture(str, Enum):
    """The formats of ``radops datalake lineage``."""

    text = "text"
    mermaid = "mermaid"
    dot = "dot"
    html = "html"


@app.command("ls")
@handle_errors
def ls(
    ctx: typer.Context,
    prefix: str = typer.Argument("", help="Only uids starting with this prefix."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """List every file in the lake: local ones bold, remote-only ones italic.

    Warns on stderr about local files that are out of sync with the lake.
    """
    data_lake = lake(ctx)
    local = {uid for uid in data_lake.local.uids() if uid.startswith(prefix)}
    console = out()
    styled = console.is_terminal and not console.no_color and not as_json
    seen = {}
    write = sys.stdout.write
    batch: list[str] = []
    for meta in data_lake.files(prefix):
        is_local = meta.key in local
        if is_local:
            seen[meta.key] = meta
        if as_json:
            batch.append(
                json.dumps(
                    {
                        "uid": meta.key,
                        "size": meta.size,
                        "local": is_local,
                        "created": meta.created.isoformat() if meta.created else None,
                    }
                )
            )
        elif styled:
            batch.append(f"{_BOLD if is_local else _ITALIC}{meta.key}{_RESET}")
        else:
            batch.append(meta.key)
        if len(batch) >= 1000:
            write("\n".join(batch) + "\n")
            batch.clear()
    if batch:
        write("\n".join(batch) + "\n")
    sys.stdout.flush()
    for problem in data_lake.local_problems(seen, only=local):
        warn(f"local file {problem.uid!r} is out of sync: {problem.problem}")


@app.command("add")
@handle_errors
def add(
    ctx: typer.Context,
    source: str = typer.Argument(
        ..., help="A local file or directory, or an http(s):// URL to download."
    ),
    uid: Optional[str] = typer.Argument(  # noqa: UP045 - typer
        None, help="The uid to give it (default: its name); not for a directory."
    ),
    prefix: str = typer.Option(
        "", "--prefix", help="A folder in the lake to add under, e.g. raw/2024/."
    ),
    copy: bool = typer.Option(False, "--copy", help="Copy the file into local storage (default)."),
    move: bool = typer.Option(False, "--move", help="Move the file into local storage."),
    delete_stale: bool = typer.Option(
        False,
        "--delete-stale",
        help="If a uid was deleted and files made from its old bytes remain, delete them "
        "(recorded) instead of refusing.",
    ),
) -> None:
    """Add a local file, every file of a directory, or a URL to the data lake.

    The uid is PREFIX/UID, or PREFIX/<name> without UID; a directory's files keep their
    paths relative to it. Symlinks inside a directory are skipped, never followed. A uid that
    was deleted takes other bytes only once nothing made from its old bytes is left.
    """
    from radops.sources import join_prefix, url_name
    from radops.urls import is_url

    if copy and move:
        abort("--copy and --move exclude each other", code=2)
    data_lake = lake(ctx)
    if is_url(source):
        if copy or move:
            abort("--copy and --move do not apply to a URL", code=2)
        from radops.urls import redact_url

        target = join_prefix(prefix, uid or url_name(source))
        with progress_bar(f"downloading {redact_url(source)}", None) as progress:
            meta = data_lake.add_url(source, target, progress=progress, delete_stale=delete_stale)
        err().print(f"added {target} ({meta.size} bytes) to {data_lake.store.url}", markup=False)
        return
    path = Path(source)
    if path.is_dir() and not path.is_symlink():
        if uid is not None:
            abort("a directory is added under --prefix, not as one UID", code=2)
        _add_directory(data_lake, path, prefix, move, delete_stale)
        return
    target = join_prefix(prefix, uid or path.name)
    size = path.stat().st_size if path.is_file() else None
    with progress_bar(f"uploading {target}", size) as progress:
        meta = data_lake.add_file(
            path, target, move=move, progress=progress, delete_stale=delete_stale
        )
    err().print(f"added {target} ({meta.size} bytes) to {data_lake.store.url}", markup=False)


def _add_directory(
    data_lake: DataLake, source: Path, prefix: str, move: bool, delete_stale: bool
) -> None:
    """Add every regular file under ``source``: all uids checked free before the first upload."""
    from radops.sources import plan_directory

    planned = plan_directory(source, prefix)
    for each in planned:
        if each.skipped:
            warn(f"skipped {each.path}: {each.skipped}")
    files = [(each.path, each.uid) for each in planned if each.uid is not None]
    taken = _in_the_lake(data_lake, [uid for _, uid in files])
    if taken:
        abort(
            f"{len(taken)} of the files already exist in the data lake "
            f"({', '.join(taken[:5])}{', ...' if len(taken) > 5 else ''}): nothing added"
        )
    total = 0
    for path, uid in files:
        with progress_bar(f"uploading {uid}", path.stat().st_size) as progress:
            meta = data_lake.add_file(
                path, uid, move=move, progress=progress, delete_stale=delete_stale
            )
        total += meta.size
        sys.stdout.write(f"{uid}\n")
    err().print(
        f"added {len(files)} file(s) ({total} bytes) from {source} to {data_lake.store.url}",
        markup=False,
    )


def _in_the_lake(data_lake: DataLake, uids: list[str]) -> list[str]:
    """Those of ``uids`` the lake has: one listing of their common folder (a request per 1,000
    keys, not one per file), or a HEAD each when they share no folder (the whole lake could be
    far larger than the directory)."""
    if not uids:
        return []
    folder = posixpath.commonpath([uid.rpartition("/")[0] for uid in uids])
    if not folder:
        return [uid for uid in uids if data_lake.head(uid) is not None]
    present = {meta.key for meta in data_lake.store.list(f"{folder}/")}
    return [uid for uid in uids if uid in present]


@app.command("info")
@handle_errors
def info(
    ctx: typer.Context,
    uid: str = typer.Argument(..., help="The file's uid."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show a file's size, sha256, creation time, where it is and its metadata.

    One ``key  value`` line each; the file's metadata (originator, radops-version...) follows.
    """
    data_lake = lake(ctx)
    file = data_lake.file(uid)
    details = file.info
    event = details.creation
    summary = None
    made = None
    if event is not None:
        from radops.cli.render import summarize

        made = summarize(event)
        summary = {
            "job": made.job,
            "run_id": made.run_id,
            "time": made.event_time,
            "originator": made.originator,
            "inputs": made.inputs + made.external_inputs,
            "parameters": made.parameters,
            "code": made.code_url,
        }
    data = {
        "uid": details.uid,
        "size": details.size,
        "sha256": details.sha256,
        "created": details.created.isoformat() if details.created else None,
        "local": details.local,
        "remote": details.remote,
        "lake": details.lake,
        "local_path": str(file.lake.local.path(uid)) if details.local else None,
        "metadata": dict(details.metadata),
        "created_by": summary,
    }
    if as_json:
        out().print_json(json.dumps(data))
        return
    rows = [
        (key, "-" if value is None else str(value))
        for key, value in data.items()
        if key not in ("metadata", "created_by")
    ]
    rows += sorted(details.metadata.items())
    if made is None:
        rows.append(("created_by", "no creation record"))
    else:
        rows.append(("created_by", f"{made.job} (run {made.run_id})"))
        rows.append(("inputs", ", ".join(made.inputs + made.external_inputs) or "none"))
        if made.parameters:
            rows.append(("parameters", json.dumps(made.parameters, sort_keys=True)))
        rows.append(("code", made.code_url or "not recorded"))
        rows.append(("lineage", f"radops datalake lineage {uid}"))
    print_rows(rows)


@app.command("download")
@handle_errors
def download(ctx: typer.Context, uid: str = typer.Argument(..., help="The file's uid.")) -> None:
    """Download a file into local storage (verified); print its local path."""
    data_lake = lake(ctx)
    meta = data_lake.head(uid)
    with progress_bar(f"downloading {uid}", meta.size if meta else None) as progress:
        path = data_lake.local_path(uid, progress=progress)
    typer.echo(str(path))


@app.command("local-path")
@handle_errors
def local_path(ctx: typer.Context, uid: str = typer.Argument(..., help="The file's uid.")) -> None:
    """Print the path of a file's local copy, downloading it first if needed."""
    typer.echo(str(lake(ctx).local_path(uid)))


@app.command("rm-local")
@handle_errors
def rm_local(
    ctx: typer.Context,
    uid: Optional[str] = typer.Argument(None, help="The file's uid."),  # noqa: UP045 - typer
    all_: bool = typer.Option(False, "--all", help="Free every file in local storage."),
) -> None:
    """Remove files from local storage to free space; the lake keeps them."""
    if (uid is None) == (not all_):
        abort("give a UID or --all (not both)", code=2)
    data_lake = lake(ctx)
    if all_:
        local = list(data_lake.local.uids())
        # One listing of the lake (paginated) rather than a request per local file.
        in_lake = {meta.key for meta in data_lake.files()} if local else set()
        uids = [each for each in local if each in in_lake]
        kept = [each for each in local if each not in in_lake]
        for each in uids:
            data_lake.remove_local(each)
        err().print(f"freed {len(uids)} file(s) from local storage", markup=False)
        for each in kept:
            warn(f"kept {each!r}: it is not in the data lake, removing it would lose it")
        return
    if uid is None:  # unreachable after the check above; keeps the type checker informed
        return
    if data_lake.head(uid) is None and data_lake.exists_locally(uid):
        abort(f"{uid!r} is not in the data lake: removing the local copy would lose it")
    if not data_lake.remove_local(uid):
        abort(f"{uid!r} is not in local storage")
    err().print(f"removed {uid} from local storage", markup=False)


@app.command("verify")
@handle_errors
def verify(
    ctx: typer.Context,
    uid: Optional[str] = typer.Argument(None, help="The file's uid."),  # noqa: UP045 - typer
    all_: bool = typer.Option(False, "--all", help="Verify every file in the lake."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Hash a file in the lake and its local copy in full; replace a corrupted local copy.

    Prints one line per file and a summary on stderr; exits 1 if anything is corrupted or missing.
    """
    if (uid is None) == (not all_):
        abort("give a UID or --all (not both)", code=2)
    data_lake = lake(ctx)
    # --all: one listing of the lake (paginated) names the files; each is then checked.
    uids = [meta.key for meta in data_lake.files()] if all_ or uid is None else [uid]
    counts: dict[str, int] = {}
    failed = replaced = 0
    for each in uids:
        result = data_lake.verify(each)
        counts[result.remote] = counts.get(result.remote, 0) + 1
        failed += not result.ok
        replaced += result.replaced
        if as_json:
            line = json.dumps(result.as_dict())
        else:
            local = result.local
            if result.local == "corrupted":
                local += ", replaced" if result.replaced else ", removed"
            line = f"{result.uid}  lake {result.remote}  local {local}"
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        for detail in result.details if not result.ok else ():
            warn(f"{each}: {detail}")
    lake_summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none"
    err().print(
        f"verified {len(uids)} file(s) in the lake: {lake_summary}; "
        f"{replaced} corrupted local copy(ies) replaced; {failed} with problems",
        markup=False,
    )
    if failed:
        raise typer.Exit(1)


@app.command("lineage")
@handle_errors
def lineage(
    ctx: typer.Context,
    uid: str = typer.Argument(..., help="The file's uid."),
    depth: int = typer.Option(1, "--depth", min=1, help="Levels of creations to follow upstream."),
    downstream: bool = typer.Option(False, "--downstream", help="Show what was made from it."),
    as_json: bool = typer.Option(False, "--json", help="Print the OpenLineage events."),
    fmt: Picture = typer.Option(  # noqa: B008 - typer reads the Enum default
        "text",
        "--format",
        help="text (boxes), or a picture: mermaid, dot (Graphviz) or html (one offline page).",
    ),
) -> None:
    """Show how a file was made: input files -> creation method -> output."""
    from radops.cli.render import render_creation, summarize
    from radops.lake import radops_outputs

    if as_json and fmt is not Picture.text:
        abort("--json and --format exclude each other", code=2)
    data_lake = lake(ctx)
    data_lake.lineage.prepare()
    event = data_lake.lineage.creation_of(uid)
    if event is None:
        if data_lake.head(uid) is None:
            abort(f"{uid!r} is not in the data lake {data_lake.store.url}")
        abort(f"{uid!r} has no creation record in {data_lake.store.url}")
    if fmt is not Picture.text:
        from radops.cli.pictures import render
        from radops.lineage.graph import build_graph

        graph = build_graph(
            uid,
            data_lake.lineage.creation_of,
            data_lake.lineage.runs_using,
            depth=depth,
            downstream=downstream,
        )
        sys.stdout.write(render(graph, fmt.value))
        sys.stdout.flush()
        return
    events = [event]
    level = [event]
    for _ in range(depth - 1):
        parents = []
        for child in level:
            for parent_uid in summarize(child).inputs:
                parent = data_lake.lineage.creation_of(parent_uid)
                if parent is not None and parent not in events:
                    parents.append(parent)
                    events.append(parent)
        level = parents
    made_from = data_lake.downstream(uid) if downstream else []
    if as_json:
        payload: dict[str, object] = {"uid": uid, "events": events}
        if downstream:
            payload["downstream"] = [
                {"uid": each, "event": data_lake.lineage.creation_of(each)} for each in made_from
            ]
        typer.echo(json.dumps(payload, indent=2, sort_keys=True))
        return
    console = out()
    for i, each in enumerate(events):
        if i:
            outputs = ", ".join(radops_outputs(each))
            console.print(f"\n{outputs} was made by:", markup=False, style="bold")
        render_creation(console, summarize(each), uid if i == 0 else None)
    if downstream:
        console.print(
            f"\nmade from {uid}:" if made_from else f"\nnothing was made from {uid}",
            markup=False,
            style="bold",
        )
        for made in made_from:
            console.print(f"  {made}", markup=False)


@app.command("repair")
@handle_errors
def repair(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="Report only; change nothing."),
    as_json: bool = typer.Option(False, "--json", help="The report as one JSON object."),
) -> None:
    """Fix what crashed writers left: objects without a creation record, lost files, temps.

    An object whose creation was never recorded is removed once its writer is known dead (on
    this machine) or older than RADOPS_STALE_AFTER; a recorded file missing from the lake gets
    its deletion recorded. Creations still under way are left alone. Lineage records that fail
    radops' checks (too large, not JSON, missing fields) are listed, never removed.
    """
    from radops.repair import repair as repair_lake

    report = repair_lake(lake(ctx), dry_run=dry_run)
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict()) + "\n")
        return
    verb = "would remove" if dry_run else "removed"
    for uid in report.abandoned:
        sys.stdout.write(f"{verb} {uid}: its creation was never recorded\n")
    recorded = "would record" if dry_run else "recorded"
    for uid in report.lost:
        sys.stdout.write(f"{uid} is missing from the lake: {recorded} its deletion\n")
    for what in report.swept:
        sys.stdout.write(f"swept {what}\n")
    for uid in report.under_way:
        sys.stdout.write(f"{uid}: creation under way, left alone\n")
    for key, reason in report.ignored_records:
        sys.stdout.write(f"ignored lineage record {key}: {reason}\n")
    for key in report.future_records:
        sys.stdout.write(f"lineage record {key} is named for a later time: read once it comes\n")
    ignored = len(report.ignored_records)
    err().print(
        f"checked {report.checked} file(s): {len(report.abandoned)} unrecorded, "
        f"{len(report.lost)} lost, {len(report.swept)} leftover(s) swept, "
        f"{len(report.under_way)} under way; {ignored} lineage record(s) ignored",
        markup=False,
    )


@app.command("rm")
@handle_errors
def rm(
    ctx: typer.Context,
    uid: str = typer.Argument(..., help="The file's uid."),
    cascade: bool = typer.Option(False, "--cascade", help="Also remove what was made from it."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a file from the lake and local storage; the deletion is recorded in lineage."""
    data_lake = lake(ctx)
    if data_lake.head(uid) is None:
        abort(f"{uid!r} is not in the data lake {data_lake.store.url}")
    data_lake.lineage.sync()
    made_from = [each for each in data_lake.downstream(uid) if data_lake.head(each) is not None]
    targets = [uid]
    if cascade and made_from:
        err().print(f"these files were made from {uid} and will be deleted too:", markup=False)
        for each in made_from:
            err().print(f"  {each}", markup=False)
        if not yes and not typer.confirm(f"delete {len(made_from) + 1} file(s)?", err=True):
            abort("nothing deleted")
        targets += made_from
    for each in reversed(targets):  # downstream first, so no file outlives its input's record
        data_lake.delete(each)
        err().print(f"deleted {each}", markup=False)
    if made_from and not cascade:
        warn(
            f"{len(made_from)} file(s) made from {uid} now have a missing input: "
            f"{', '.join(made_from)} (use --cascade to delete them too)"
        )
