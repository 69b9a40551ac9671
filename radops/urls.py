"""Fetching an http(s) URL into a temp file, hashing it on the way (``radops datalake add URL``)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urljoin, urlsplit

from radops.errors import RadopsError
from radops.integrity import HashingSink
from radops.lineage.naming import safe_namespace
from radops.redact import redact_in, redact_url
from radops.stores import Progress

__all__ = ["DownloadError", "fetch_url", "is_url", "public_url"]

_ALLOWED_SCHEMES = ("http", "https")
_MAX_REDIRECTS = 10


class DownloadError(RadopsError):
    """A URL could not be downloaded completely."""


def public_url(url: str) -> tuple[str, str]:
    """(namespace, name) of a URL as an OpenLineage dataset: ``scheme://host[:port]``, path."""
    parts = urlsplit(redact_url(url))
    host = parts.netloc.rsplit("@", 1)[-1]
    # An IPv6 host's brackets are not namespace characters: Marquez could not answer for it.
    return safe_namespace(f"{parts.scheme}://{host}"), parts.path or "/"


def is_url(source: str) -> bool:
    """True if ``source`` looks like a URL rather than a local path."""
    return "://" in source


def fetch_url(
    url: str,
    dest: Path,
    *,
    timeout: float = 60.0,
    max_bytes: int | None = None,
    progress: Progress | None = None,
) -> str:
    """Download ``url`` into the new file ``dest`` and return its sha256.

    Only http and https are followed, redirects included. A body shorter than the announced
    ``Content-Length`` is an error, so a download that ends early is never added; so is a body
    (or an announced ``Content-Length``) larger than ``max_bytes``. ``timeout`` bounds the
    connection and each wait for more bytes. ``dest`` does not exist after an error.

    Raises:
        DownloadError: another scheme, an HTTP error, a network error, a truncated body or a
            body over ``max_bytes``.
    """
    existed = dest.exists()
    try:
        return _fetch(url, dest, timeout=timeout, max_bytes=max_bytes, progress=progress)
    except BaseException:
        if not existed:
            dest.unlink(missing_ok=True)
        raise


def _fetch(
    url: str, dest: Path, *, timeout: float, max_bytes: int | None, progress: Progress | None
) -> str:
    import requests
    import urllib3.exceptions

    shown = redact_url(url)
    _check_scheme(url)
    try:
        with requests.Session() as session:
            response = session.get(url, stream=True, timeout=timeout, allow_redirects=False)
            for _ in range(_MAX_REDIRECTS + 1):
                if not response.is_redirect:
                    break
                target = urljoin(response.url, response.headers["location"])
                _check_scheme(target)
                response.close()
                response = session.get(target, stream=True, timeout=timeout, allow_redirects=False)
            else:
                raise DownloadError(
                    f"cannot download {shown}: more than {_MAX_REDIRECTS} redirects"
                )
            with response:
                if response.status_code >= 400:
                    raise DownloadError(f"cannot download {shown}: HTTP {response.status_code}")
                expected = response.headers.get("content-length")
                if expected is not None and not expected.strip().isdigit():
                    raise DownloadError(
                        f"cannot download {shown}: malformed Content-Length {expected[:40]!r}"
                    )
                if max_bytes is not None and expected is not None and int(expected) > max_bytes:
                    raise DownloadError(
                        f"cannot download {shown}: {int(expected)} bytes announced, more than "
                        f"download_max_bytes ({max_bytes})"
                    )
                with dest.open("xb") as target_file:
                    sink = HashingSink(target_file)
                    for chunk in response.raw.stream(1024 * 1024, decode_content=True):
                        sink.write(chunk)
                        if max_bytes is not None and sink.size > max_bytes:
                            raise DownloadError(
                                f"cannot download {shown}: more than download_max_bytes "
                                f"({max_bytes}) bytes"
                            )
                        if progress:
                            progress(len(chunk))
                encoded = response.headers.get("content-encoding", "identity") != "identity"
                if expected is not None and not encoded and sink.size != int(expected):
                    raise DownloadError(
                        f"download of {shown} ended early: {sink.size} of {expected} bytes"
                    )
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        raise DownloadError(f"cannot download {shown}: {_redacted(exc, url)}") from exc
    return sink.hexdigest()


def _redacted(exc: BaseException, url: str) -> str:
    """The message of ``exc`` without the secrets of ``url`` it may repeat."""
    return redact_in(str(exc), url)


def _check_scheme(url: str) -> None:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _ALLOWED_SCHEMES:
        raise DownloadError(f"refusing {redact_url(url)!r}: only http and https URLs can be added")
