"""A proxy in front of the real Marquez server: it records, and injects the faults Marquez
cannot be made to show on demand.

Every request is forwarded to Marquez and Marquez's answer returned as it is, so what radops
reads is what Marquez answers. The proxy only adds what a real deployment puts in front of
Marquez or suffers from: an authenticating proxy that wants ``Authorization: Bearer <key>``
(Marquez has no authentication of its own), slow answers, and server errors (answered the way
Dropwizard, Marquez's framework, answers them). When Marquez's OpenAPI spec is present, every
exchange is also validated against it (:mod:`tests.marquez_spec`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs

from tests.marquez_spec import spec_missing, validate_exchange


@attrs.define
class Exchange:
    """One request through the proxy and the answer it got."""

    method: str
    path: str  # with its query string
    authorization: str | None
    status: int
    body: bytes


class MarquezProxy:
    """A running proxy on a free loopback port.

    ``mode``: ``"pass"`` (forward), ``"fail"`` (answer 500 without forwarding), ``"slow"``
    (wait ``delay`` seconds, then forward). ``require_key``: answer 401 to requests without
    that bearer token, as an authenticating proxy does.
    """

    def __init__(self, upstream: str, *, require_key: str | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.require_key = require_key
        self.mode = "pass"
        self.delay = 0.0
        self.exchanges: list[Exchange] = []
        self.invalid: list[str] = []
        self._lock = threading.Lock()
        self._validate = spec_missing() is None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()

    def seen(self, method: str | None = None) -> list[Exchange]:
        """The exchanges so far (of one method, if given)."""
        with self._lock:
            return [e for e in self.exchanges if method is None or e.method == method]

    def events(self) -> Iterator[dict[str, Any]]:
        """The events POSTed through the proxy that Marquez accepted."""
        for exchange in self.seen("POST"):
            if exchange.status < 300 and exchange.path.startswith("/api/v1/lineage"):
                yield json.loads(exchange.body)

    def _answer(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, str, bytes]:
        import requests

        if self.require_key and headers.get("Authorization") != f"Bearer {self.require_key}":
            return 401, "application/json", b'{"code":401,"message":"missing or wrong API key"}'
        if self.mode == "fail":
            return 500, "application/json", _SERVER_ERROR
        if self.mode == "slow":
            time.sleep(self.delay)
        forwarded = {k: v for k, v in headers.items() if k.lower() == "content-type"}
        answer = requests.request(
            method, self.upstream + path, data=body or None, headers=forwarded, timeout=120
        )
        kind = answer.headers.get("Content-Type", "application/json")
        return answer.status_code, kind, answer.content


# What Dropwizard answers for an unexpected exception (Marquez's own 500 looks like this).
_SERVER_ERROR = (
    b'{"code":500,"message":"There was an error processing your request. '
    b'It has been logged (ID 0123456789abcdef)."}'
)


def _handler(proxy: MarquezProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length", 0) or 0)
            body = self.rfile.read(length) if length else b""
            headers = dict(self.headers.items())
            status, kind, answer = proxy._answer(method, self.path, headers, body)
            split = urlsplit(self.path)
            with proxy._lock:
                proxy.exchanges.append(
                    Exchange(method, self.path, headers.get("Authorization"), status, body)
                )
            if proxy._validate and proxy.mode == "pass" and status != 401:
                try:
                    validate_exchange(
                        method,
                        split.path,
                        dict(parse_qsl(split.query)),
                        body or None,
                        status,
                        answer or None,
                    )
                except Exception as exc:  # noqa: BLE001 - recorded; the test asserts none
                    with proxy._lock:
                        proxy.invalid.append(f"{method} {self.path} -> {status}: {exc}")
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

    return Handler
