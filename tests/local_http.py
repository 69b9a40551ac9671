"""Local HTTP servers for tests that download: ``datalake add URL``, the ML example's data."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


class QuietFiles(http.server.SimpleHTTPRequestHandler):
    """Serves files like ``python -m http.server``, without a request log on stderr."""

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving(handler: Callable[..., Any]) -> Iterator[str]:
    """A threaded HTTP server on 127.0.0.1 with ``handler`` for the block; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def serving_folder(folder: Path) -> contextlib.AbstractContextManager[str]:
    """The files of ``folder`` over HTTP for the block; yields the base URL."""
    return serving(functools.partial(QuietFiles, directory=str(folder)))
