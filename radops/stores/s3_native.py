"""The fast path of :class:`~radops.stores.s3.S3Store`: objects below the multipart size,
radops' records, and the listings of a bulk add (which keys exist, which records are new).

botocore spends about a millisecond of Python per request (its event hooks, endpoint rules,
serialisers and parsers) and holds the interpreter lock meanwhile: for a folder of thousands
of small files, that, not the network, sets the pace. obstore (Rust's ``object_store``) sends
the same requests with a tenth of the CPU and without the lock. Measured on one SeaweedFS,
2,000 objects of 4 KB from 10 threads: 0.8 s to create and 0.4 s to read them, against
2.0 s and 2.1 s with boto3.

It is only a fast path, never the authority: it carries the same conditional create
(``If-None-Match: *``), the same metadata and the same credentials (boto3's, asked again
when they expire), and makes a single attempt. Whatever it does not settle (an error of any
kind but "already exists", a store it cannot reach, a missing library) is redone by boto3,
whose retries, messages and error translation are radops' tested behaviour. A create whose
answer was lost is therefore retried by boto3 and answered 412, which ``S3Store`` already
recognises as its own upload (same sha256, same run).
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.credentials import Credentials
    from obstore.store import S3Credential
    from obstore.store import S3Store as ObstoreS3

log = logging.getLogger("radops")

# Credentials boto3 refreshes (roles, SSO) are asked for again this often.
_CREDENTIALS_TTL = datetime.timedelta(minutes=5)
# Headers obstore reports among an object's attributes that are not user metadata.
_STANDARD_ATTRIBUTES = frozenset(
    {"content-type", "content-encoding", "content-language", "content-disposition", "cache-control"}
)


class AlreadyExists(Exception):
    """The conditional create found an object at the key (HTTP 412)."""


class Unsettled(Exception):
    """The fast path failed for any other reason: boto3 is to do the request again."""


class BodyError(Exception):
    """The body of an answer broke off while it was read (too late for boto3 to redo)."""


class _Credentials:
    """obstore credential provider: boto3's credentials, frozen at each call."""

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def __call__(self) -> S3Credential:
        frozen = self._credentials.get_frozen_credentials()
        if not frozen.access_key or not frozen.secret_key:
            raise ValueError("incomplete credentials")  # the request fails; boto3 explains
        refreshing = hasattr(self._credentials, "refresh_needed")
        expires = datetime.datetime.now(datetime.timezone.utc) + _CREDENTIALS_TTL
        return {
            "access_key_id": frozen.access_key,
            "secret_access_key": frozen.secret_key,
            "token": frozen.token,
            "expires_at": expires if refreshing else None,
        }


class NativeS3:
    """Single-attempt creates and reads of small objects in one bucket."""

    def __init__(self, store: ObstoreS3) -> None:
        self._store = store

    @classmethod
    def build(
        cls,
        bucket: str,
        *,
        endpoint_url: str | None,
        region: str | None,
        credentials: Credentials | None,
        connect_timeout: float,
        read_timeout: float,
    ) -> NativeS3 | None:
        """The fast path for ``bucket``, or None where it cannot stand in for boto3 (obstore
        not installed, no credentials found, a configuration it refuses)."""
        if credentials is None:
            return None  # boto3 then says which credentials it looked for
        if endpoint_url and "@" in endpoint_url.partition("//")[2].partition("/")[0]:
            return None  # a password in the URL: only the code that redacts it sees it
        try:
            from obstore.store import S3Store as ObstoreS3
        except ImportError:
            return None
        config: dict[str, Any] = {"region": region or "us-east-1"}
        client: dict[str, Any] = {
            "connect_timeout": datetime.timedelta(seconds=connect_timeout),
            "timeout": datetime.timedelta(seconds=read_timeout),
        }
        if endpoint_url:
            # As boto3 is configured for a custom endpoint: path-style addressing.
            config.update(endpoint=endpoint_url, virtual_hosted_style_request=False)
            client["allow_http"] = endpoint_url.startswith("http://")
        try:
            store = ObstoreS3(
                bucket,
                config=config,  # type: ignore[arg-type]
                client_options=client,  # type: ignore[arg-type]
                retry_config={"max_retries": 0},  # one attempt: boto3 does the retrying
                credential_provider=_Credentials(credentials),
            )
        except Exception:
            log.debug("the native S3 path is not available; boto3 does it all", exc_info=True)
            return None
        return cls(store)

    def warm_up(self, prefix: str) -> None:
        """Make the first request, a listing of ``prefix`` (one page at most), in a thread of
        its own: the HTTP client is set up on the first request, not before."""

        def first_request() -> None:
            import obstore

            try:
                next(iter(obstore.list(self._store, prefix, chunk_size=1)), None)
            except Exception as exc:  # noqa: BLE001 - only a head start: the real request says
                log.debug("warming up the fast path failed (%s)", type(exc).__name__)

        threading.Thread(target=first_request, name="radops-warm-up", daemon=True).start()

    def keys(self, prefix: str, offset: str = "") -> list[str]:
        """Every key under the folder ``prefix`` (ending in '/'), after ``offset`` if given.

        A key that ends in '/' (a folder marker, never a uid or a record) comes without its
        '/': object_store drops it. Listed whole before it returns, so that a failure midway
        is redone from the start, not resumed.

        Raises:
            Unsettled: any failure, for the caller to list again with boto3.
        """
        import obstore

        try:
            listing = obstore.list(self._store, prefix, offset=offset or None, chunk_size=1000)
            return [meta["path"] for chunk in listing for meta in chunk]
        except Exception as exc:
            raise Unsettled(type(exc).__name__) from exc

    def folders(self, prefix: str) -> list[str]:
        """The names of the folders directly under the folder ``prefix`` (ending in '/'),
        without their '/'.

        Raises:
            Unsettled: any failure, for the caller to list again with boto3.
        """
        import obstore

        try:
            found = obstore.list_with_delimiter(self._store, prefix)["common_prefixes"]
        except Exception as exc:
            raise Unsettled(type(exc).__name__) from exc
        return [folder.rstrip("/")[len(prefix) :] for folder in found]

    def put_bytes_new(self, key: str, data: bytes) -> None:
        """Create ``key`` with ``data`` unless it exists.

        Raises:
            AlreadyExists: an object is at ``key`` (it may be this very write's, see above).
            Unsettled: anything else, for the caller to redo with boto3.
        """
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        try:
            obstore.put(self._store, key, data, mode="create", use_multipart=False)
        except (AlreadyExistsError, PreconditionError) as exc:
            raise AlreadyExists(key) from exc
        except Exception as exc:
            raise Unsettled(type(exc).__name__) from exc

    def put_new(self, key: str, src: Path, metadata: Mapping[str, str]) -> str | None:
        """Create ``key`` from the file ``src`` unless it exists; its ETag.

        Raises:
            AlreadyExists: an object is at ``key`` (it may be this very upload's, see above).
            Unsettled: anything else, for the caller to redo with boto3.
        """
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        try:
            result = obstore.put(
                self._store,
                key,
                src,
                mode="create",
                attributes=dict(metadata),  # any other name is sent as x-amz-meta-<name>
                use_multipart=False,
            )
        except (AlreadyExistsError, PreconditionError) as exc:
            raise AlreadyExists(key) from exc
        except Exception as exc:
            raise Unsettled(type(exc).__name__) from exc
        return result.get("e_tag")

    def get(self, key: str, first: int) -> dict[str, Any]:
        """A GET of the first ``first`` bytes of ``key`` (all of a smaller object), shaped as
        boto3's ``get_object`` answer (``Metadata``, ``ContentRange``, ``ContentLength``,
        ``ETag``, ``LastModified``, ``Body``). It returns once the headers are in.

        Raises:
            Unsettled: any failure (a missing key, the store unreachable...), for the caller
                to redo with boto3.
        """
        import obstore
        from obstore.exceptions import NotFoundError

        try:
            try:
                result = obstore.get(self._store, key, options={"range": (0, first)})
            except NotFoundError:
                raise
            except Exception:  # noqa: BLE001 - an empty object has no byte 0: a refused range
                result = obstore.get(self._store, key)
        except Exception as exc:  # whatever it is, boto3 does it again
            raise Unsettled(type(exc).__name__) from exc
        meta = result.meta
        start, end = result.range
        return {
            "Metadata": {
                name: value
                for name, value in result.attributes.items()
                if name.lower() not in _STANDARD_ATTRIBUTES and isinstance(value, str)
            },
            "ContentRange": f"bytes {start}-{end - 1}/{meta['size']}",
            "ContentLength": end - start,
            "ETag": meta.get("e_tag"),
            "LastModified": meta.get("last_modified"),
            "Body": NativeBody(result),
        }


class NativeBody:
    """The body of :meth:`NativeS3.get`'s answer, read as botocore's StreamingBody is."""

    def __init__(self, result: Any) -> None:
        self._result = result

    def iter_chunks(self, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        try:
            for chunk in self._result.stream(min_chunk_size=chunk_size):
                yield bytes(chunk)
        except Exception as exc:  # obstore's errors: the connection, a timeout
            raise BodyError(f"the answer broke off: {type(exc).__name__}") from exc

    def close(self) -> None:
        self._result = None
