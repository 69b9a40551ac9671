"""radops' log messages on stderr, visible by default when a script runs.

radops logs to the ``radops`` logger. Unless the application configured logging itself (the
root logger has handlers), a handler of radops' own prints records on stderr as
``radops: LEVEL: message``, at ``RADOPS_LOG_LEVEL`` (INFO by default). Standard ``logging``
configuration therefore always wins.

In a Jupyter kernel the root logger's handlers may be the environment's rather than the
user's (older ipykernel versions and some hosted notebooks write them to the kernel's terminal,
or at WARNING), and a cell would then not say that a step was skipped. There radops' handler
steps aside only for a root handler that shows the record in the cell (it writes to the
cell's stdout or stderr, at the record's level); otherwise it prints the record itself.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TextIO

__all__ = ["configure_logging"]


class _Formatter(logging.Formatter):
    """``radops: message`` for information, ``radops: warning: message`` otherwise.

    The message is escaped (:func:`radops.escape.escape`): it may quote keys and metadata
    read from the lake, and nothing in them may act on the terminal.
    """

    def format(self, record: logging.LogRecord) -> str:
        from radops.escape import escape

        message = escape(record.getMessage())
        if record.exc_info and record.levelno >= logging.ERROR:
            message += "\n" + self.formatException(record.exc_info)
        if record.levelno == logging.INFO:
            return f"radops: {message}"
        return f"radops: {record.levelname.lower()}: {message}"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the current ``sys.stderr``, and steps aside once the application logs."""

    def __init__(self, always: bool) -> None:
        super().__init__()
        self.always = always
        self.setFormatter(_Formatter())

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # always the current sys.stderr (so redirections and pytest capture work)

    def emit(self, record: logging.LogRecord) -> None:
        handlers = logging.getLogger().handlers
        if not self.always and handlers:
            if not _in_notebook():
                return  # the application configured logging: its handlers get the record
            if any(_shows_in_cell(handler, record) for handler in handlers):
                return  # the notebook's own logging shows it in the cell already
        super().emit(record)


def _in_notebook() -> bool:
    """True in a Jupyter (ipykernel) kernel: ``sys.stderr`` is the cell's output stream."""
    return "ipykernel" in sys.modules and type(sys.stderr).__module__.startswith("ipykernel.")


def _shows_in_cell(handler: logging.Handler, record: logging.LogRecord) -> bool:
    """Whether ``handler`` (a root handler) prints ``record`` in the running cell."""
    stream = getattr(handler, "stream", None)
    return stream in (sys.stderr, sys.stdout) and handler.level <= record.levelno


def configure_logging(level: str, *, cli: bool = False) -> Callable[[], None]:
    """Attach radops' stderr handler (once) and set the ``radops`` logger's level.

    ``cli=True`` (the ``radops`` command) prints even if some library configured root logging.
    Returns a function that takes back what ``cli=True`` changed.
    """
    logger = logging.getLogger("radops")
    handler = next((h for h in logger.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler(always=cli)
        logger.addHandler(handler)
    previous = handler.always
    handler.always = handler.always or cli
    logger.setLevel(level)

    def undo() -> None:
        handler.always = previous

    return undo
