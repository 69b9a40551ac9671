"""URLs without their secrets: fit to print, log or record in lineage.

A URL may carry a password (``https://user:secret@host``) or a signature in its query string
(a presigned URL). Every URL radops shows in a message or records passes through
:func:`redact_url` first, and an error message that may repeat one through :func:`redact_in`.
At the ground: settings, stores, lineage delivery and the CLI all show URLs.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["redact_in", "redact_url"]


def redact_url(url: str) -> str:
    """``url`` fit to print or record: no password, token or signed query string.

    Keeps the user name of ``user:password@``; drops the query and fragment, where presigned
    URLs carry their signatures.
    """
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    try:
        host = parts.hostname or ""
        if ":" in host:  # IPv6
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:  # a port that is not a number: keep what follows the credentials
        netloc = parts.netloc.rpartition("@")[2]
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def redact_in(text: str, url: str) -> str:
    """``text`` (an error message, say) without the secrets of ``url`` it may repeat: the
    URL becomes its :func:`redact_url` form, and its password, query and fragment, wherever
    else they appear, ``***``."""
    parts = urlsplit(url)
    text = text.replace(url, redact_url(url))
    for secret in (parts.password, parts.query, parts.fragment):
        if secret:
            text = text.replace(secret, "***")
    return text
