"""What every command shares: the two consoles, the error path, the lake, progress bars."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer

from radops.errors import RadopsError

if TYPE_CHECKING:
    from rich.console import Console

    from radops.lake import DataLake
    from radops.settings import Settings
    from radops.stores import Progress

F = TypeVar("F", bound=Callable[..., Any])


@functools.cache
def out() -> Console:
    """Console for data (stdout)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


@functools.cache
def err() -> Console:
    """Console for messages (stderr)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def abort(message: str, code: int = 1) -> NoReturn:
    """Print one line ``error: message`` on stderr and exit with ``code``."""
    err().print(f"error: {message}", markup=False, style="red")
    raise typer.Exit(code)


def warn(message: str) -> None:
    """Print ``warning: message`` on stderr."""
    err().print(f"warning: {message}", markup=False, style="yellow")


def handle_errors(func: F) -> F:
    """Turn radops' errors (and missing local files) into one line on stderr and exit 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (RadopsError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            abort(str(exc) if isinstance(exc, RadopsError) else _os_message(exc))
        except KeyboardInterrupt:
            err().print("interrupted", style="red")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _os_message(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


def settings(ctx: typer.Context) -> Settings:
    """The settings resolved once by the root command."""
    from radops.settings import Settings

    root = ctx.find_root()
    if not isinstance(root.obj, dict) or "settings" not in root.obj:
        root.obj = {"settings": Settings.load()}
    value: Settings = root.obj["settings"]
    return value


def lake(ctx: typer.Context) -> DataLake:
    """The lake the settings name, built once per command."""
    from radops.lake import DataLake

    root = ctx.find_root()
    settings(ctx)
    if "lake" not in root.obj:
        root.obj["lake"] = DataLake(root.obj["settings"])
    value: DataLake = root.obj["lake"]
    return value


def setup_logging(level: str) -> None:
    """Send radops' log records to stderr as ``radops: message``."""
    # Fix: this used a StreamHandler bound to the sys.stderr of the first command run in the
    # process and turned propagation off, so later commands run in the same process (CliRunner,
    # an embedding application) logged into a closed stream and hid radops' records from the
    # application's own handlers. The library's handler follows the current sys.stderr.
    from radops.logs import configure_logging

    configure_logging(level, cli=True)


@contextlib.contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Progress | None]:
    """A rich progress bar on stderr while bytes move; nothing when stderr is not a terminal."""
    console = err()
    if not console.is_terminal:
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
