"""``radops datalake``: list, add, inspect, download, verify and free data-lake files."""

from __future__ import annotations

import functools
import json
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from radops.cli._common import (
    abort,
    err,
    files_bar,
    handle_errors,
    lake,
    out,
    print_rows,
    progress_bar,
    warn,
)
from radops.cli._help import examples
from radops.errors import FileNotInLakeError

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


@app.command(
    "ls",
    epilog=examples(
        ("every file in the lake", "radops datalake ls"),
        (
            "the files under raw/2024/, one JSON object per line",
            "radops datalake ls raw/2024/ --json",
        ),
    ),
)
@handle_errors
def ls(
    ctx: typer.Context,
    prefix: str = typer.Argument("", help="Only uids starting with this prefix."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """List every file in the lake: local ones bold, remote-only ones italic.

    Warns on stderr about local files that are out of sync with the lake.
    """
    from radops.escape import shown
    from radops.uids import uid_problem

    data_lake = lake(ctx)
    local = {uid for uid in data_lake.local.uids() if uid.startswith(prefix)}
    console = out()
    styled = console.is_terminal and not console.no_color and not as_json
    seen = {}
    invalid: list[tuple[str, str]] = []
    write = sys.stdout.write
    batch: list[str] = []
    for meta in data_lake.files(prefix):
        key = meta.key
        is_local = key in local
        if is_local:
            seen[key] = meta
        # A key someone put in the lake without radops is listed too, marked and escaped.
        not_uid = uid_problem(key)
        if not_uid:
            invalid.append((key, not_uid))
        if as_json:
            entry = {
                "uid": key,
                "size": meta.size,
                "local": is_local,
                "created": meta.created.isoformat() if meta.created else None,
            }
            if not_uid:
                entry["invalid"] = not_uid
            batch.append(json.dumps(entry))
        elif styled:
            batch.append(f"{_BOLD if is_local else _ITALIC}{shown(key)}{_RESET}")
        else:
            batch.append(shown(key))
        if len(batch) >= 1000:
            write("\n".join(batch) + "\n")
            batch.clear()
    if batch:
        write("\n".join(batch) + "\n")
    sys.stdout.flush()
    _warn_invalid(invalid)
    for problem in data_lake.local_problems(seen, only=local):
        warn(f"local file {problem.uid!r} is out of sync: {problem.problem}")


_INVALID_SHOWN = 20


def _warn_invalid(invalid: list[tuple[str, str]]) -> None:
    """Say which keys of the lake are not valid uids, which radops' commands skip."""
    from radops.escape import shown

    for key, problem in invalid[:_INVALID_SHOWN]:
        warn(f"{shown(key)} is not a valid uid ({problem}): radops commands skip it")
    if len(invalid) > _INVALID_SHOWN:
        warn(f"{len(invalid) - _INVALID_SHOWN} more keys of the lake are not valid uids")


@app.command(
    "add",
    epilog=examples(
        ("add a file under its own name (its uid is data.csv)", "radops datalake add data.csv"),
        ("add it under a uid of your choice", "radops datalake add data.csv raw/2024/data.csv"),
        (
            "add every file of a directory under raw/images/",
            "radops datalake add images/ --prefix raw/images/",
        ),
        (
            "download a file into the lake",
            "radops datalake add https://example.com/wine.csv raw/wine.csv",
        ),
    ),
)
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
    paths relative to it. Symlinks inside a directory are skipped, never followed. A uid
    that exists already is an error: files in the lake are immutable; a uid that was deleted
    takes other bytes only once nothing made from its old bytes is left.
    """
    from radops.errors import InvalidUidError
    from radops.escape import escape
    from radops.sources import join_prefix, url_name
    from radops.urls import is_url

    if uid == "":
        # Not the file's name: an empty argument is more likely an unset shell variable.
        raise InvalidUidError("the UID is empty: give one, or leave it out to use the name")
    if copy and move:
        abort("--copy and --move exclude each other", code=2)
    data_lake = lake(ctx)
    if is_url(source):
        if copy or move:
            abort("--copy and --move do not apply to a URL", code=2)
        from radops.redact import redact_url

        target = join_prefix(prefix, uid or url_name(source))
        with progress_bar("downloading", redact_url(source), None) as progress:
            meta = data_lake.add_url(source, target, progress=progress, delete_stale=delete_stale)
        err().print(
            f"added {escape(target)} ({meta.size} bytes) to {data_lake.store.url}", markup=False
        )
        return
    path = Path(source)
    if path.is_dir() and not path.is_symlink():
        if uid is not None:
            abort("a directory is added under --prefix, not as one UID", code=2)
        _add_directory(data_lake, path, prefix, move, delete_stale)
        return
    target = join_prefix(prefix, uid or path.name)
    size = path.stat().st_size if path.is_file() else None
    with progress_bar("hashing", target, size) as progress:
        meta = data_lake.add_file(
            path, target, move=move, progress=progress, delete_stale=delete_stale
        )
    err().print(
        f"added {escape(target)} ({meta.size} bytes) to {data_lake.store.url}", markup=False
    )


def _add_directory(
    data_lake: DataLake, source: Path, prefix: str, move: bool, delete_stale: bool
) -> None:
    """Add every regular file under ``source``, as one creation: all of them or none."""
    from radops.escape import shown
    from radops.sources import plan_directory

    planned = plan_directory(source, prefix)
    for each in planned:
        if each.skipped:
            warn(f"skipped {each.path}: {each.skipped}")
    files = [(each.path, each.uid) for each in planned if each.uid is not None]
    with files_bar() as progress:
        metas = data_lake.add_files(files, move=move, progress=progress, delete_stale=delete_stale)
    sys.stdout.write("".join(f"{shown(meta.key)}\n" for meta in metas))
    err().print(
        f"added {len(metas)} file(s) ({sum(meta.size for meta in metas)} bytes) from {source} "
        f"to {data_lake.store.url}",
        markup=False,
    )


@app.command(
    "info",
    epilog=examples(
        ("what radops knows about a file", "radops datalake info raw/2024/data.csv"),
        ("the same as one JSON object", "radops datalake info raw/2024/data.csv --json"),
    ),
)
@handle_errors
def info(
    ctx: typer.Context,
    uid: str = typer.Argument(..., help="The file's uid."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show a file's size, sha256, creation time, where it is and its metadata.

    One line per field, the key then its value: uid, size, sha256, created, where the file
    is, its metadata (originator, radops-version...) and how it was made.
    """
    from radops.file import File

    file = File(uid, lake=lake(ctx))
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
            "originator": made.originator,
            "inputs": made.inputs + made.external_inputs,
            "parameters": made.parameters,
            "code": made.code_url,  # a web link, or None
            "code_note": made.code_description()[1] if made.code_url else made.code_warning,
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
        # ensure_ascii: rich writes JSON with raw non-ASCII by default, and metadata from the
        # lake may hold characters that act on a terminal.
        out().print_json(json.dumps(data), ensure_ascii=True)
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
        code, note = made.code_description()
        rows.append(("code", code))
        if note:
            rows.append(("code_note", note))
        rows.append(("lineage", f"radops datalake lineage {uid}"))
    print_rows(rows)


@app.command(
    "download",
    epilog=examples(
        ("download one file; print its local path", "radops datalake download raw/data.csv"),
        (
            "download every file under a folder, 10 at a time",
            "radops datalake download raw/2024/",
        ),
        (
            "the same, 32 at a time",
            "RADOPS_TRANSFER_THREADS=32 radops datalake download raw/2024",
        ),
    ),
)
@handle_errors
def download(
    ctx: typer.Context,
    target: str = typer.Argument(
        ..., metavar="UID_OR_FOLDER", help="A file's uid, or a folder of the lake (raw/2024/)."
    ),
) -> None:
    """Download a file, or every file under a folder, into local storage (verified).

    Prints the local path of each file, one per line. UID_OR_FOLDER names a file if the
    lake has one by that uid, otherwise the folder of that name (one ending in / is always a
    folder), like the targets of dvc pull. Files already in local storage as radops placed them are
    not downloaded again; RADOPS_TRANSFER_THREADS files move at once.
    """
    from radops.bulk import fetch

    data_lake = lake(ctx)
    folder = target.endswith("/")
    with files_bar() as progress:
        if folder:
            fetched = fetch(data_lake, target, progress)
        else:
            try:
                fetched = fetch(data_lake, [target], progress)
            except FileNotInLakeError as missing:
                # Not a file: a folder of that name, if the lake has one.
                if not any(True for _ in data_lake.files(f"{target}/")):
                    raise missing from None
                folder = True
                fetched = fetch(data_lake, f"{target}/", progress)
    sys.stdout.write("".join(f"{path}\n" for path in fetched.paths.values()))
    if folder:
        already = len(fetched.paths) - len(fetched.downloaded)
        err().print(
            f"downloaded {len(fetched.downloaded)} file(s) ({fetched.size} bytes) from "
            f"{data_lake.store.url}; {already} already in local storage",
            markup=False,
        )


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
    from radops.escape import escape

    if (uid is None) == (not all_):
        abort("give a UID or --all (not both)", code=2)
    data_lake = lake(ctx)
    if all_:
        from radops.uids import uid_problem

        local = []
        for each in data_lake.local.uids():
            if uid_problem(each):  # put there by hand: not radops' to remove
                warn(f"kept {each!r}: it is not a valid uid")
            else:
                local.append(each)
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
    err().print(f"removed {escape(uid)} from local storage", markup=False)


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
    from radops.escape import shown
    from radops.uids import uid_problem

    if (uid is None) == (not all_):
        abort("give a UID or --all (not both)", code=2)
    data_lake = lake(ctx)
    # --all: one listing of the lake (paginated) names the files; each is then checked.
    uids = [meta.key for meta in data_lake.files()] if all_ or uid is None else [uid]
    counts: dict[str, int] = {}
    failed = replaced = skipped = 0
    for each in uids:
        # A key that is not a valid uid (made without radops) cannot be checked: it is named
        # and skipped, and the other files are verified.
        problem = uid_problem(each) if all_ else None
        if problem:
            skipped += 1
            if as_json:
                line = json.dumps({"uid": each, "skipped": f"not a valid uid: {problem}"})
            else:
                line = f"{shown(each)}  skipped: not a valid uid ({problem})"
            sys.stdout.write(line + "\n")
            continue
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
            line = f"{shown(result.uid)}  lake {result.remote}  local {local}"
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        for detail in result.details if not result.ok else ():
            warn(f"{shown(each)}: {detail}")
    lake_summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none"
    not_uids = f"; {skipped} key(s) that are not valid uids skipped" if skipped else ""
    err().print(
        f"verified {len(uids) - skipped} file(s) in the lake: {lake_summary}; "
        f"{replaced} corrupted local copy(ies) replaced; {failed} with problems{not_uids}",
        markup=False,
    )
    if failed:
        raise typer.Exit(1)


@app.command(
    "lineage",
    epilog=examples(
        ("how a file was made", "radops datalake lineage processed.csv"),
        (
            "two levels of creations, and what was made from the file",
            "radops datalake lineage processed.csv --depth 2 --downstream",
        ),
        (
            "the graph as one offline web page",
            "radops datalake lineage processed.csv --format html > lineage.html",
        ),
    ),
)
@handle_errors
def lineage(
    ctx: typer.Context,
    uid: str = typer.Argument(..., help="The file's uid."),
    depth: int = typer.Option(
        1, "--depth", min=1, metavar="N", help="Levels of creations to follow upstream."
    ),
    downstream: bool = typer.Option(False, "--downstream", help="Show what was made from it."),
    as_json: bool = typer.Option(False, "--json", help="Print the OpenLineage events."),
    fmt: Picture = typer.Option(  # noqa: B008 - typer reads the Enum default
        "text",
        "--format",
        metavar="FORMAT",
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
    # Each file's creation is asked once: a walk meets a file again as the input of several
    # runs, and every question is a round trip when Marquez answers (benchmark case 12).
    creation_of = functools.cache(data_lake.lineage.creation_of)
    event = creation_of(uid)
    if event is None:
        if data_lake.head(uid) is None:
            abort(f"{uid!r} is not in the data lake {data_lake.store.url}")
        abort(f"{uid!r} has no creation record in {data_lake.store.url}")
    if fmt is not Picture.text:
        from radops.lineage.graph import build_graph
        from radops.lineage.pictures import render

        graph = build_graph(
            uid,
            creation_of,
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
                parent = creation_of(parent_uid)
                if parent is not None and parent not in events:
                    parents.append(parent)
                    events.append(parent)
        level = parents
    made_from = data_lake.downstream(uid) if downstream else []
    if as_json:
        payload: dict[str, object] = {"uid": uid, "events": events}
        if downstream:
            payload["downstream"] = [
                {"uid": each, "event": creation_of(each)} for each in made_from
            ]
        typer.echo(json.dumps(payload, indent=2, sort_keys=True))
        return
    from radops.escape import shown

    console = out()
    for i, each in enumerate(events):
        if i:
            outputs = ", ".join(shown(output) for output in radops_outputs(each))
            console.print(f"\n{outputs} was made by:", markup=False, style="bold")
        render_creation(console, summarize(each), uid if i == 0 else None)
    if downstream:
        console.print(
            f"\nmade from {shown(uid)}:" if made_from else f"\nnothing was made from {shown(uid)}",
            markup=False,
            style="bold",
        )
        for made in made_from:
            console.print(f"  {shown(made)}", markup=False)


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
    from radops.escape import escape, shown
    from radops.repair import repair as repair_lake
    from radops.uids import uid_problem

    report = repair_lake(lake(ctx), dry_run=dry_run)
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict()) + "\n")
        return
    verb = "would remove" if dry_run else "removed"
    for uid in report.abandoned:
        sys.stdout.write(f"{verb} {shown(uid)}: its creation was never recorded\n")
    recorded = "would record" if dry_run else "recorded"
    for uid in report.lost:
        sys.stdout.write(f"{shown(uid)} is missing from the lake: {recorded} its deletion\n")
    for what in report.swept:
        sys.stdout.write(f"swept {escape(what)}\n")
    for uid in report.under_way:
        sys.stdout.write(f"{shown(uid)}: creation under way, left alone\n")
    for key in report.invalid:
        sys.stdout.write(f"skipped {shown(key)}: not a valid uid ({uid_problem(key)})\n")
    for key, reason in report.ignored_records:
        sys.stdout.write(f"ignored lineage record {shown(key)}: {escape(reason)}\n")
    for key in report.future_records:
        sys.stdout.write(
            f"lineage record {shown(key)} is named for a later time: read once it comes\n"
        )
    not_uids = f", {len(report.invalid)} not valid uid(s) skipped" if report.invalid else ""
    ignored = len(report.ignored_records)
    err().print(
        f"checked {report.checked} file(s): {len(report.abandoned)} unrecorded, "
        f"{len(report.lost)} lost, {len(report.swept)} leftover(s) swept, "
        f"{len(report.under_way)} under way{not_uids}; {ignored} lineage record(s) ignored",
        markup=False,
    )


@app.command(
    "rm",
    epilog=examples(
        ("delete a file", "radops datalake rm raw/2024/data.csv"),
        (
            "delete it and every file made from it, without asking",
            "radops datalake rm raw/2024/data.csv --cascade --yes",
        ),
    ),
)
@handle_errors
def rm(
    ctx: typer.Context,
    uid: str = typer.Argument(..., help="The file's uid."),
    cascade: bool = typer.Option(False, "--cascade", help="Also remove what was made from it."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a file from the lake and local storage; the deletion is recorded in lineage."""
    from radops.escape import shown

    data_lake = lake(ctx)
    if data_lake.head(uid) is None:
        abort(f"{uid!r} is not in the data lake {data_lake.store.url}")
    data_lake.lineage.sync()
    made_from = [each for each in data_lake.downstream(uid) if data_lake.head(each) is not None]
    targets = [uid]
    if cascade and made_from:
        err().print(
            f"these files were made from {shown(uid)} and will be deleted too:", markup=False
        )
        for each in made_from:
            err().print(f"  {shown(each)}", markup=False)
        if not yes and not typer.confirm(f"delete {len(made_from) + 1} file(s)?", err=True):
            abort("nothing deleted")
        targets += made_from
    for each in reversed(targets):  # downstream first, so no file outlives its input's record
        data_lake.delete(each)
        err().print(f"deleted {shown(each)}", markup=False)
    if made_from and not cascade:
        warn(
            f"{len(made_from)} file(s) made from {shown(uid)} now have a missing input: "
            f"{', '.join(shown(each) for each in made_from)} (use --cascade to delete them too)"
        )
