"""What every command shares: the two consoles, the error path, the lake, progress bars."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer

from radops.errors import RadopsError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

    from radops.lake import DataLake
    from radops.settings import Settings
    from radops.stores import Progress

F = TypeVar("F", bound=Callable[..., Any])


def out() -> Console:
    """Console for data (stdout).

    Built on each call, so it follows the current ``sys.stdout`` and environment (FORCE_COLOR,
    NO_COLOR, COLUMNS) even when several commands run in one process.
    """
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True, emoji=False)


def err() -> Console:
    """Console for messages (stderr), built on each call like :func:`out`."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def print_rows(rows: Sequence[Sequence[str]]) -> None:
    """Print rows on stdout as aligned columns: no truncation, no trailing spaces.

    Every column but the last is padded to its widest cell; the first is bold on a terminal.
    Cells holding characters that are not printable (a newline in metadata, an escape
    sequence in a key) are printed JSON-quoted (:func:`radops.escape.shown`), so that each
    row stays on one line and nothing in a cell acts on the terminal.
    """
    from rich.cells import cell_len
    from rich.text import Text

    from radops.escape import shown

    cells = [[shown(cell) for cell in row] for row in rows]
    widths: dict[int, int] = {}
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths.get(i, 0), cell_len(cell))
    console = out()
    for row in cells:
        line = Text()
        for i, cell in enumerate(row):
            line.append(cell, style="bold" if i == 0 else "")
            if i < len(row) - 1:
                line.append(" " * (widths[i] - cell_len(cell) + 2))
        line.rstrip()
        console.print(line)


def abort(message: str, code: int = 1) -> NoReturn:
    """Print one line ``error: message`` on stderr and exit with ``code``.

    ``code=2`` is a usage error: it is printed as click prints its own (a missing argument,
    an unknown option), the usage line and the pointer to ``--help`` first, so that every
    usage error looks the same. Characters that are not printable (from a key or an answer
    quoted in the message) are escaped: the line stays one line, and nothing in it acts on the
    terminal.
    """
    from radops.escape import escape

    if code == 2:
        from typer._click.exceptions import UsageError
        from typer._click.globals import get_current_context

        raise UsageError(escape(message), get_current_context(silent=True))
    err().print(f"error: {escape(message)}", markup=False, style="red")
    raise typer.Exit(code)


def warn(message: str) -> None:
    """Print ``warning: message`` on stderr, escaped like :func:`abort`'s."""
    from radops.escape import escape

    err().print(f"warning: {escape(message)}", markup=False, style="yellow")


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
    """The settings, resolved once per command; radops' logging is set up with them.

    A malformed setting ends the command: one ``error:`` line naming it, exit 1.
    """
    from radops.errors import ConfigError
    from radops.settings import Settings

    root = ctx.find_root()
    if not isinstance(root.obj, dict):
        root.obj = {}
    if "settings" not in root.obj:
        try:
            loaded = Settings.load()
        except ConfigError as exc:
            abort(str(exc))
        root.obj["settings"] = loaded
        root.call_on_close(setup_logging(loaded.log_level))
    value: Settings = root.obj["settings"]
    return value


def lake(ctx: typer.Context) -> DataLake:
    """The lake the settings name, built once per command."""
    from radops.lake import DataLake

    root = ctx.find_root()
    loaded = settings(ctx)
    if "lake" not in root.obj:
        data_lake = DataLake(loaded)
        root.obj["lake"] = data_lake
        root.call_on_close(functools.partial(_close, data_lake))
    value: DataLake = root.obj["lake"]
    return value


def _close(data_lake: DataLake) -> None:
    """Release what a command's lake holds: the local index, the store's transfer threads."""
    data_lake.local.close()
    store = data_lake._store  # only if it was built: closing must not build (and import) it
    close = getattr(store, "close", None)
    if close is not None:
        close()


def setup_logging(level: str) -> Callable[[], None]:
    """Print radops' log records on stderr (``radops: message``); return the undo.

    The handler is the library's (:mod:`radops.logs`), which follows the current
    ``sys.stderr``; :func:`settings` runs the undo when the command ends, so running commands
    in-process (tests, notebooks) leaves the ``radops`` logger as it found it.
    """
    from radops.logs import configure_logging

    logger = logging.getLogger("radops")
    previous_level = logger.level
    undo_handler = configure_logging(level, cli=True)

    def restore() -> None:
        undo_handler()
        logger.setLevel(previous_level)

    return restore


class _Bar:
    """What :func:`progress_bar` yields: a :class:`~radops.stores.PhasedProgress` drawing one
    rich task, whose description is the current phase and the file."""

    def __init__(self, bar: RichProgress, task: TaskID, subject: str) -> None:
        self._bar = bar
        self._task = task
        self._subject = subject

    def __call__(self, n: int) -> None:
        self._bar.advance(self._task, n)

    def phase(self, name: str) -> None:
        # reset, not update: the speed and time left start again with the phase.
        self._bar.reset(self._task, description=f"{name} {self._subject}")
        # Drawn now, not at the next tick: a phase shorter than a tick is still seen.
        self._bar.refresh()


@contextlib.contextmanager
def progress_bar(phase: str, subject: str, total: int | None) -> Iterator[Progress | None]:
    """A rich progress bar on stderr while bytes move; nothing when stderr is not a terminal.

    It reads ``PHASE SUBJECT`` (``uploading raw/data.csv``); the library names the next
    phases as the work moves on (``hashing``, then ``uploading``), each counted from zero.
    """
    from radops.escape import escape

    subject = escape(subject)  # it may name a uid: never markup, never raw
    with _rich_bar() as bar:
        if bar is None:
            yield None
            return
        task = bar.add_task(f"{phase} {subject}", total=total)
        yield _Bar(bar, task, subject)


@contextlib.contextmanager
def _rich_bar() -> Iterator[RichProgress | None]:
    """A transient rich progress display on stderr (description, bar, bytes, speed, time
    left), or None when stderr is not a terminal."""
    console = err()
    if not console.is_terminal:
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.progress import Progress as RichProgress

    columns = (
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with RichProgress(*columns, console=console, transient=True) as bar:
        yield bar


class _FilesBar:
    """What :func:`files_bar` yields: a :class:`radops.bulk.FilesProgress` drawing one rich
    task for many files, ``PHASE DONE/FILES files`` with their bytes. Called from the
    threads of a bulk transfer: rich's task updates take its lock, the file count takes ours."""

    def __init__(self, bar: RichProgress, task: TaskID) -> None:
        import threading

        self._bar = bar
        self._task = task
        self._lock = threading.Lock()
        self._phase = ""
        self._files = 0
        self._done = 0

    def __call__(self, n: int) -> None:
        self._bar.advance(self._task, n)

    def begin(self, phase: str, files: int, size: int | None) -> None:
        with self._lock:
            self._phase, self._files, self._done = phase, files, 0
            self._bar.reset(self._task, total=size, description=self._description())
        self._bar.refresh()

    def file_done(self) -> None:
        with self._lock:
            self._done += 1
            self._bar.update(self._task, description=self._description())

    def _description(self) -> str:
        return f"{self._phase} {self._done}/{self._files} files"


@contextlib.contextmanager
def files_bar() -> Iterator[_FilesBar | None]:
    """One rich progress bar on stderr for many files (files done, bytes, speed); nothing when
    stderr is not a terminal. The library names each phase as it begins."""
    with _rich_bar() as bar:
        yield None if bar is None else _FilesBar(bar, bar.add_task("", total=None))
