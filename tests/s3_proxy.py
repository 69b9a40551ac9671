"""A proxy in front of the real SeaweedFS: it counts S3 requests by operation, whichever
client sent them (boto3 or the fast path), and can lose one answer.

Requests are forwarded with their headers as they came (a SigV4 signature covers the Host
header, which stays the proxy's), and SeaweedFS's answers are returned as they are. The only
fault it adds is the one a killed server or a dropped connection shows: a request that
reached the store, whose answer never comes back.
"""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# Hop-by-hop headers: the proxy answers with a whole body of known length.
_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


def operation(method: str, path: str) -> str:
    """The S3 operation of a request, named as boto3 names it."""
    query = parse_qs(urlsplit(path).query, keep_blank_values=True)
    if method == "GET" and "list-type" in query:
        return "ListObjectsV2"
    if method == "PUT" and "partNumber" in query:
        return "UploadPart"
    if method == "POST" and "uploads" in query:
        return "CreateMultipartUpload"
    if method == "POST" and "uploadId" in query:
        return "CompleteMultipartUpload"
    return {"GET": "GetObject", "PUT": "PutObject", "HEAD": "HeadObject"}.get(
        method, "DeleteObject" if method == "DELETE" else method
    )


class S3Proxy:
    """A running proxy on a free loopback port, forwarding to ``upstream`` (``http://h:p``)."""

    def __init__(self, upstream: str) -> None:
        split = urlsplit(upstream)
        self._upstream = (split.hostname or "127.0.0.1", split.port or 80)
        self.counts: Counter[str] = Counter()
        self.continued: Counter[str] = Counter()  # requests that asked for 100-continue
        self.listed: list[str] = []  # the prefixes listed
        self.lost: list[str] = []
        self._lose: str | None = None
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()

    def lose_answer(self, path_part: str) -> None:
        """Forward the next PUT whose path contains ``path_part``, then drop its connection
        without an answer (once)."""
        with self._lock:
            self._lose = path_part

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self.continued.clear()
            self.listed.clear()

    def _forward(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self._upstream, timeout=120)
        try:
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() not in ("expect", "connection", "transfer-encoding"):
                    connection.putheader(name, value)
            if "content-length" not in {name.lower() for name, _ in headers}:
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            answer = connection.getresponse()
            data = b"" if method == "HEAD" else answer.read()
            kept = [(k, v) for k, v in answer.getheaders() if k.lower() not in _HOP]
            if method == "HEAD":
                kept.append(("Content-Length", answer.getheader("Content-Length", "0")))
            return answer.status, answer.reason, kept, data
        finally:
            connection.close()


def _handler(proxy: S3Proxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length", 0) or 0)
            return self.rfile.read(length) if length else b""

        def _serve(self) -> None:
            method = self.command
            body = self._body()
            name = operation(method, self.path)
            with proxy._lock:
                proxy.counts[name] += 1
                if self.headers.get("Expect", "").lower() == "100-continue":
                    proxy.continued[name] += 1
                if name == "ListObjectsV2":
                    query = parse_qs(urlsplit(self.path).query)
                    proxy.listed.append(query.get("prefix", [""])[0])
                lose = method == "PUT" and proxy._lose is not None and proxy._lose in self.path
                if lose:
                    proxy._lose = None
            status, reason, headers, data = proxy._forward(
                method, self.path, list(self.headers.items()), body
            )
            if lose:
                with proxy._lock:
                    proxy.lost.append(f"{method} {self.path} {status}")
                self.close_connection = True
                self.connection.close()  # as a server killed before it answered
                return
            self.send_response(status, reason)
            for header, value in headers:
                self.send_header(header, value)
            if method != "HEAD":
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _serve

    return Handler
