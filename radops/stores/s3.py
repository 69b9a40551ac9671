"""A lake on S3 or any S3-compatible store (MinIO, SeaweedFS, Ceph...), through boto3.

boto3 is imported when the first store is built, never at ``import radops``.

Immutability is enforced by the server: every ``PutObject`` and ``CompleteMultipartUpload``
this store's client sends carries ``If-None-Match: *``, so the server answers 412 instead of
overwriting. The header is added by a botocore event hook, which is what lets large files go
through boto3's transfer manager (multipart, parallel) although it does not accept the
argument itself.

A multipart upload first claims its key with a small conditional ``PutObject`` of
``.radops/claims/<key>``: SeaweedFS lets several concurrent ``CompleteMultipartUpload`` calls
with ``If-None-Match: *`` succeed on one key (measured: 2 runs in 7 with 8 writers of 50 MB),
so the claim, not the completion, decides the race. A claim whose writer is known dead, or
older than ``stale_after``, is broken.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from radops import writers
from radops.errors import (
    FileExistsInLakeError,
    FileNotInLakeError,
    IntegrityError,
    InvalidRecordError,
    StoreError,
)
from radops.integrity import HashingSink, InOrderHasher
from radops.lineage.naming import dataset_name
from radops.stores.base import SHA256_KEY, ObjectMeta, Progress
from radops.stores.s3_native import AlreadyExists, BodyError, NativeS3, Unsettled
from radops.uids import RESERVED_PREFIX, uid_problem, validate_uid

if TYPE_CHECKING:
    from boto3.session import Session
    from mypy_boto3_s3 import S3Client

__all__ = ["GIVE_UP_AFTER", "S3Store", "TransferSettings"]

import attrs

log = logging.getLogger("radops")


@attrs.frozen
class TransferSettings:
    """How large files are split and how many parts move at once."""

    multipart_threshold: int = 8 * 1024 * 1024
    multipart_chunksize: int = 8 * 1024 * 1024
    max_concurrency: int = 10


_METADATA_SAFE = "@.+-_:/ "

#: A claim radops writes is about 100 bytes; anything far larger is not one of them.
_CLAIM_MAX_BYTES = 64 * 1024

# Retries: botocore's standard mode waits rand(0, 1) * min(0.05 s * 2**i, 20 s) before retry i
# (1 s instead of 0.05 s when throttled). 14 attempts ride out a store that is unreachable or
# answering 5xx for ~17 s in 999 cases out of 1000 (a restart, a failover, a load balancer
# changing hands). Alone they gave up after ~50 s on average but up to 105 s, so for a store
# that does not answer (_RetryWatch) radops waits the same backoff but never past
# GIVE_UP_AFTER seconds after a request's first failure: one StoreError comes after at most
# GIVE_UP_AFTER + CONNECT_TIMEOUT (the last attempt; a refused connection fails at once).
# For other errors botocore decides alone; its retry quota (500 tokens per client, 14 per
# retry) cuts those retries short when many requests fail at once.
MAX_ATTEMPTS = 14
GIVE_UP_AFTER = 60.0
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 60
# Uploads of bodies up to this size do not wait for a 100-continue.
SMALL_BODY_BYTES = 1024 * 1024
_BACKOFF_BASE, _THROTTLED_BACKOFF_BASE, _MAX_BACKOFF = 0.05, 1.0, 20.0
_THROTTLED = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded"})
# The error codes of a store that is down, restarting or overloaded (retried, then reported).
_UNAVAILABLE = frozenset(
    {
        "500",
        "502",
        "503",
        "504",
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "RequestTimeout",
        "RequestTimeoutException",
        "BadGateway",
        "GatewayTimeout",
    }
)


def _require_none_match(params: dict[str, Any], **_: Any) -> None:
    params["IfNoneMatch"] = "*"


def _no_continue_for_small_bodies(params: dict[str, Any], **_: Any) -> None:
    """botocore asks for ``Expect: 100-continue`` on every upload, small or not, then waits
    for the server's go-ahead and reads it a byte per system call: for a body of a few KB
    that round trip costs more than the bytes. Kept for larger bodies, where it spares
    sending them to a server that refuses (the header is not signed, so dropping it is safe).
    """
    from botocore.utils import determine_content_length

    headers = params.get("headers", {})
    if "Expect" in headers:
        size = determine_content_length(params.get("body"))
        if size is not None and size <= SMALL_BODY_BYTES:
            del headers["Expect"]


class _RetryWatch:
    """botocore ``needs-retry`` handler, called before its retry handler at every attempt.

    When an attempt got no answer (a connection error, a 5xx, throttling) it says once on
    stderr (radops' log) that the store is not answering and until when radops retries,
    instead of leaving a command silent for most of a minute; it returns the backoff of
    botocore's standard mode, cut so that no retry starts after the request's deadline, or
    False (no retry) once the deadline or MAX_ATTEMPTS is reached; and it notes on the final
    error how often and how long radops tried. botocore uses the first answer that is not None,
    so for other outcomes (None) its own handler decides as before.
    """

    def __init__(self, where: str, give_up_after: float) -> None:
        self.where = where
        self.give_up_after = give_up_after
        self._lock = threading.Lock()
        self._failing_since: float | None = None  # when the store was first seen failing

    def __call__(
        self,
        attempts: int,
        response: Any = None,
        caught_exception: BaseException | None = None,
        request_dict: dict[str, Any] | None = None,
        **_: Any,
    ) -> float | bool | None:
        unanswered = _unanswered(response, caught_exception)
        if unanswered is None:
            if caught_exception is None and response is not None:
                with self._lock:
                    if self._failing_since is not None:
                        log.info("%s answers again", self.where)
                        self._failing_since = None
            return None
        problem, throttled = unanswered
        context = request_dict.setdefault("context", {}) if request_dict is not None else {}
        now = time.monotonic()
        first = float(context.setdefault("radops_first_failure", now))
        with self._lock:
            if self._failing_since is None:
                self._failing_since = now
                until = time.strftime("%H:%M:%S", time.localtime(time.time() + self.give_up_after))
                log.warning(
                    "%s is not answering (%s): retrying until %s (%.0f s), then giving up",
                    self.where,
                    problem,
                    until,
                    self.give_up_after,
                )
        elapsed = now - first
        if elapsed >= self.give_up_after or attempts >= MAX_ATTEMPTS:
            if caught_exception is not None:
                # Read by _attempts() for the message; botocore raises this very object.
                caught_exception.radops_retried = (attempts, elapsed)  # type: ignore[attr-defined]
            return False
        base = _THROTTLED_BACKOFF_BASE if throttled else _BACKOFF_BASE
        backoff = random.random() * min(base * 2 ** (attempts - 1), _MAX_BACKOFF)  # noqa: S311
        return float(min(backoff, self.give_up_after - elapsed))


def _unanswered(response: Any, caught_exception: BaseException | None) -> tuple[str, bool] | None:
    """Why an attempt got no usable answer, and whether it was throttled; None if it got one.

    Only what botocore's standard mode retries as transient or throttled: connection and
    HTTP client errors, 500/502/503/504 and the codes of a store that is down or overloaded.
    """
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    if caught_exception is not None:
        if isinstance(caught_exception, (BotoConnectionError, HTTPClientError)):
            return str(caught_exception) or type(caught_exception).__name__, False
        return None
    if isinstance(response, tuple) and len(response) == 2 and response[0] is not None:
        status = getattr(response[0], "status_code", 200)
        error = response[1].get("Error", {}) if isinstance(response[1], dict) else {}
        code = str(error.get("Code", ""))
        if status in (500, 502, 503, 504) or code in _UNAVAILABLE or code in _THROTTLED:
            return f"{code or 'HTTP'} {status}", code in _THROTTLED
    return None


class _ProgressSubscriber:
    """s3transfer subscriber: tells the manager the size and ETag (saving a HEAD; the ETag
    also pins every part to the same version) and reports progress."""

    def __init__(
        self, size: int | None, progress: Progress | None, etag: str | None = None
    ) -> None:
        self._size = size
        self._progress = progress
        self._etag = etag

    def on_queued(self, future: Any, **_: Any) -> None:
        if self._size is not None:
            future.meta.provide_transfer_size(self._size)
        # s3transfer asks for both before it downloads without a HEAD of its own.
        if self._etag is not None and hasattr(future.meta, "provide_object_etag"):
            future.meta.provide_object_etag(self._etag)

    def on_progress(self, bytes_transferred: int, **_: Any) -> None:
        if self._progress:
            self._progress(bytes_transferred)

    def on_done(self, **_: Any) -> None:
        pass


class S3Store:
    """An :class:`~radops.stores.base.ObjectStore` in ``s3://bucket/prefix``."""

    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        client: S3Client | None = None,
        transfer: TransferSettings | None = None,
        stale_after: float = 600.0,
        give_up_after: float = GIVE_UP_AFTER,
        native: bool = True,
    ) -> None:
        if not url.startswith("s3://"):
            raise ValueError(f"not an s3:// url: {url!r}")
        self.bucket, _, prefix = url[len("s3://") :].partition("/")
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.transfer = transfer or TransferSettings()
        self.stale_after = stale_after
        self.give_up_after = give_up_after
        self._client = client
        self._manager: Any = None
        # The fast path for small objects (see radops.stores.s3_native): built with the client
        # this store builds itself, never for one given to it.
        self._native: NativeS3 | None = None
        self._native_wanted = native and client is None
        self._session: Session | None = None  # boto3's, shared by the fast path and the client
        self._native_tried = False
        self._bucket_checked = False
        # The client and the transfer manager are built on first use, which may be in several
        # threads at once (bulk transfers): built once, hooked once. A boto3 client is
        # thread-safe once built; a session is not, so each store builds its own.
        self._building = threading.Lock()

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def __repr__(self) -> str:
        return f"S3Store({self.url!r}, endpoint_url={self._endpoint()!r})"

    def _endpoint(self) -> str | None:
        """The endpoint as messages show it: never a password it may hold."""
        from radops.redact import redact_url

        return redact_url(self.endpoint_url) if self.endpoint_url else None

    @property
    def client(self) -> S3Client:
        """The boto3 client, built on first use with the conditional-create hook."""
        client = self._client
        if client is not None and getattr(client, "_radops_hooked", False):
            return client
        with self._building:
            return self._build_client()

    def _build_client(self) -> S3Client:
        if self._client is None:
            from botocore.config import Config

            config = Config(
                retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
                connect_timeout=CONNECT_TIMEOUT,
                read_timeout=READ_TIMEOUT,
                max_pool_connections=max(10, self.transfer.max_concurrency + 2),
                # S3-compatible servers on a custom endpoint rarely have wildcard DNS.
                s3={"addressing_style": "path"} if self.endpoint_url else {},
            )
            self._build_native()
            session = self._boto_session()
            self._client = session.client("s3", endpoint_url=self.endpoint_url, config=config)
            self._build_native(self._client)
        if not getattr(self._client, "_radops_hooked", False):
            events = self._client.meta.events
            for operation in ("PutObject", "CompleteMultipartUpload"):
                events.register(f"before-parameter-build.s3.{operation}", _require_none_match)
            # Last: after botocore's own handler added the header.
            events.register_last("before-call.s3", _no_continue_for_small_bodies)
            # First, so that its False can stop a retry before botocore's handler sleeps.
            watch: Any = _RetryWatch(self._where(), self.give_up_after)  # returns False or None
            events.register_first("needs-retry.s3", watch)
            self._client._radops_hooked = True  # type: ignore[attr-defined]
        return self._client

    def _build_native(self, client: S3Client | None = None) -> NativeS3 | None:
        """The fast path, built once, from boto3's session (the caller holds ``_building``).

        It goes where boto3's requests go: the configured endpoint (path-style), or AWS itself
        (known once ``client`` is built). Where boto3 found another endpoint on its own (an
        environment variable, a profile), or is given a CA bundle for an https endpoint,
        boto3 alone sends: only boto3 reads those. (obstore can only add a bundle to the
        system's certificates, where boto3 trusts the bundle alone.)
        """
        if not self._native_wanted or self._native_tried:
            return self._native
        plain_http = (self.endpoint_url or "").startswith("http://")
        if os.environ.get("AWS_CA_BUNDLE") and not plain_http:
            self._native_tried = True  # certificates only boto3 is told about
            return None
        if self.endpoint_url:
            endpoint, region = self.endpoint_url, self._boto_session().region_name
        elif client is None:
            return None  # where boto3 sends is known once its client is built
        elif (urlsplit(client.meta.endpoint_url).hostname or "").endswith(".amazonaws.com"):
            endpoint, region = None, client.meta.region_name
        else:
            self._native_tried = True
            return None
        self._native_tried = True
        self._native = NativeS3.build(
            self.bucket,
            endpoint_url=endpoint,
            region=region,
            credentials=self._boto_session().get_credentials(),
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
        )
        return self._native

    def _boto_session(self) -> Session:
        if self._session is None:
            import boto3
            import botocore.session

            core = botocore.session.get_session()
            parsers = core.get_component("response_parser_factory")
            parsers.set_parser_defaults(timestamp_parser=_parse_timestamp)
            self._session = boto3.session.Session(botocore_session=core)
        return self._session

    def warm_up(self) -> None:
        """Many transfers are about to start: set up the fast path's HTTP client (it reads
        the system's CA certificates, about 0.15 s) and first connection in the background,
        while boto3 builds its own client (as long again, in Python), by one listing of an
        empty folder of ``.radops/``."""
        with self._building:
            native = self._build_native()
        if native is not None:
            native.warm_up(f"{self.prefix}{RESERVED_PREFIX}/warm-up/")

    def _transfer_manager(self) -> Any:
        if self._manager is not None:
            return self._manager
        client = self.client
        with self._building:
            return self._build_transfer_manager(client)

    def _build_transfer_manager(self, client: S3Client) -> Any:
        if self._manager is None:
            from s3transfer.manager import TransferConfig, TransferManager

            config = TransferConfig(
                multipart_threshold=self.transfer.multipart_threshold,
                multipart_chunksize=self.transfer.multipart_chunksize,
                max_request_concurrency=self.transfer.max_concurrency,
            )
            self._manager = TransferManager(client, config)
        return self._manager

    def _check_bucket(self) -> None:
        if self._bucket_checked:
            return
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
                raise StoreError(
                    f"the bucket {self.bucket!r} does not exist at {self._where()}"
                ) from exc
            raise self._fail("look up the bucket", repr(self.bucket), exc) from exc
        except BotoCoreError as exc:
            raise self._fail("look up the bucket", repr(self.bucket), exc) from exc
        self._bucket_checked = True

    def _key(self, key: str) -> str:
        return self.prefix + validate_uid(key)

    def _fail(self, action: str, what: str, exc: Exception) -> StoreError:
        """Translate a botocore error about ``what`` (display text, e.g. a quoted uid)."""
        from botocore.exceptions import NoCredentialsError, PartialCredentialsError

        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            # Raised while signing, before any request: nothing was retried, the store was
            # never asked, and calling it unreachable sent users looking at the network.
            found = (
                "incomplete AWS credentials were found"
                if isinstance(exc, PartialCredentialsError)
                else "no AWS credentials were found"
            )
            return StoreError(
                f"cannot {action} {what} in {self.url}: {found} ({exc}). boto3 looks in "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), "
                "~/.aws/credentials, ~/.aws/config, then a container or instance role; "
                "set one of them"
            )
        code = _error_code(exc)
        if code == "NoSuchBucket":
            return StoreError(f"the bucket {self.bucket!r} does not exist at {self._where()}")
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
            return StoreError(
                f"cannot {action} {what}: access denied by {self._where()} ({code}); "
                "check the AWS credentials boto3 finds (env, profile or role)"
            )
        if code in _UNAVAILABLE:
            return StoreError(
                f"cannot {action} {what}: {self._where()} is unavailable ({code}); gave up "
                f"after {_attempts(exc)}; check that the store is up, then run again"
            )
        if code:
            return StoreError(f"cannot {action} {what} in {self.url}: {code}")
        reason = str(exc)
        if self.endpoint_url:  # botocore repeats the endpoint URL: never its password
            from radops.redact import redact_in

            reason = redact_in(reason, self.endpoint_url)
        return StoreError(
            f"cannot {action} {what}: {self._where()} is unreachable ({reason}); gave up after "
            f"{_attempts(exc)}; check that the store is up and reachable, then run again"
        )

    def _where(self) -> str:
        return f"{self.url} ({self._endpoint() or 'AWS'})"

    def head(self, key: str) -> ObjectMeta | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                # A HEAD answers a bare 404 for a missing bucket too: tell them apart once.
                self._check_bucket()
                return None
            raise self._fail("look up", repr(key), exc) from exc
        except BotoCoreError as exc:
            raise self._fail("look up", repr(key), exc) from exc
        return _meta(key, response)

    def put_new(
        self,
        src: Path,
        key: str,
        *,
        sha256: str,
        metadata: Mapping[str, str] | None = None,
        progress: Progress | None = None,
    ) -> ObjectMeta:
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        s3_key = self._key(key)
        # S3 user metadata travels in HTTP headers: ASCII only, so other text is %-encoded.
        object_metadata = {k: quote(v, safe=_METADATA_SAFE) for k, v in (metadata or {}).items()}
        object_metadata[SHA256_KEY] = sha256
        size = src.stat().st_size
        try:
            if size < self.transfer.multipart_threshold and self.native is not None:
                try:
                    etag = self.native.put_new(s3_key, src, object_metadata)
                except AlreadyExists:
                    return self._existing(key, sha256, metadata, None)
                except Unsettled as exc:  # boto3 does it again, its own way
                    _redo("upload", key, exc)
                else:
                    if progress:
                        progress(size)
                    return ObjectMeta(
                        key=key, size=size, sha256=sha256, etag=etag, metadata=dict(metadata or {})
                    )
            if size < self.transfer.multipart_threshold:
                with src.open("rb") as body:
                    response = self.client.put_object(
                        Bucket=self.bucket, Key=s3_key, Body=body, Metadata=object_metadata
                    )
                etag = response.get("ETag")
                if progress:
                    progress(size)
            else:
                self._claim(key)
                try:
                    future = self._transfer_manager().upload(
                        str(src),
                        self.bucket,
                        s3_key,
                        extra_args={"Metadata": object_metadata},
                        subscribers=[_ProgressSubscriber(None, progress)],
                    )
                    future.result()
                finally:
                    self._release(key)
                etag = None
        except (ClientError, S3UploadFailedError) as exc:
            cause = exc if isinstance(exc, ClientError) else exc.__context__
            if _error_code(cause) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return self._existing(key, sha256, metadata, exc)
            reason = cause if isinstance(cause, Exception) else exc
            raise self._fail("upload", repr(key), reason) from exc
        except BotoCoreError as exc:
            raise self._fail("upload", repr(key), exc) from exc
        return ObjectMeta(
            key=key, size=size, sha256=sha256, etag=etag, metadata=dict(metadata or {})
        )

    def _existing(
        self,
        key: str,
        sha256: str,
        metadata: Mapping[str, str] | None,
        refusal: BaseException | None,
    ) -> ObjectMeta:
        """After a conditional create was refused: the object, if this very upload made it.

        Raises:
            FileExistsInLakeError: another upload made it.
        """
        existing = self._own_object(key, sha256, metadata or {})
        if existing is not None:
            return existing
        raise FileExistsInLakeError(f"{key!r} already exists in the data lake {self.url}") from (
            refusal
        )

    @property
    def native(self) -> NativeS3 | None:
        """The fast path, or None (not wanted, or not available here)."""
        if self._native_wanted and not self._native_tried:
            if self.endpoint_url:
                with self._building:  # its own: an add of new files never needs boto3's client
                    self._build_native()
            else:
                self.client  # noqa: B018 - where boto3 sends is known once its client is built
        return self._native

    def _own_object(self, key: str, sha256: str, metadata: Mapping[str, str]) -> ObjectMeta | None:
        """The object at ``key`` if this very upload made it, else None.

        A conditional PUT that reached the server but whose answer was lost (the connection
        dropped) is retried by botocore, and the retry is answered 412. The object is ours if
        it has our sha256 and all our metadata, which names this process and run.
        """
        if not metadata:
            return None
        existing = self.head(key)
        if existing is None or existing.sha256 != sha256:
            return None
        if all(existing.metadata.get(k.lower()) == v for k, v in metadata.items()):
            return existing
        return None

    def _claim(self, key: str) -> None:
        """Claim ``key`` for a multipart upload, or raise FileExistsInLakeError."""
        name = f"claims/{key}"
        body = json.dumps({"writer": writers.current(), "time": time.time()}).encode()
        for attempt in (1, 2):
            try:
                self.put_record(name, body)
            except FileExistsInLakeError:
                if self.head(key) is not None:
                    raise FileExistsInLakeError(
                        f"{key!r} already exists in the data lake {self.url}"
                    ) from None
                if attempt == 1 and self._claim_abandoned(name):
                    self._delete_record(name)
                    continue
                raise FileExistsInLakeError(
                    f"{key!r} is being uploaded to the data lake {self.url} by another process"
                ) from None
            else:
                return

    def _claim_abandoned(self, name: str) -> bool:
        try:
            data = self.get_record(name, max_bytes=_CLAIM_MAX_BYTES)
        except InvalidRecordError:
            return True  # far larger than any claim radops writes: not one, must not block
        if data is None:
            return True  # released since
        try:
            claim = json.loads(data)
            writer, started = str(claim["writer"]), float(claim["time"])
        except (ValueError, KeyError, TypeError):
            return True  # not a claim radops wrote: unreadable claims must not block forever
        return writers.is_dead(writer) or time.time() - started > self.stale_after

    def _release(self, key: str) -> None:
        # On failure the claim stays, for the next writer or `datalake repair` to break.
        with contextlib.suppress(StoreError):
            self._delete_record(f"claims/{key}")

    def _delete_record(self, name: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._record_key(name))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("delete record", name, exc) from exc

    def sweep(self, older_than: float) -> list[str]:
        """Break abandoned claims and abort multipart uploads older than ``older_than``."""
        from botocore.exceptions import BotoCoreError, ClientError

        removed: list[str] = []
        for name in list(self.list_records("claims/")):
            key = name[len("claims/") :]
            if uid_problem(key):
                continue  # not a claim radops made (it claims valid uids only): not ours
            if self.head(key) is not None or self._claim_abandoned(name):
                self._delete_record(name)
                removed.append(f"claim of {key!r}")
        try:
            paginator = self.client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for upload in page.get("Uploads", []):
                    initiated = upload.get("Initiated")
                    if initiated is None or time.time() - initiated.timestamp() <= older_than:
                        continue
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    removed.append(f"unfinished multipart upload of {upload['Key']!r}")
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("clean up", "unfinished uploads", exc) from exc
        return removed

    def get(
        self,
        key: str,
        dest: Path,
        *,
        progress: Progress | None = None,
        meta: ObjectMeta | None = None,
        check: Callable[[ObjectMeta], None] | None = None,
    ) -> ObjectMeta:
        from botocore.exceptions import BotoCoreError, ClientError

        s3_key = self._key(key)
        sink: HashingSink | InOrderHasher
        try:
            with dest.open("x+b") as target:  # read too: InOrderHasher reads back
                response = None
                if meta is None:
                    # One request: the GET's answer carries the size, sha256 and run that a
                    # HEAD would have given. It asks for the first part only, so that a large
                    # object's answer is short: its body is then left unread, and its parts
                    # come through the transfer manager below.
                    response = self._get_first_part(s3_key)
                    meta = _meta(key, response)
                else:
                    # IfMatch pins the download to the version whose sha256 the caller read;
                    # the transfer manager does not accept it, and there the sha256 check
                    # alone protects.
                    pin: dict[str, Any] = {"IfMatch": meta.etag} if meta.etag else {}
                    if meta.sha256 is not None and meta.size < self.transfer.multipart_threshold:
                        response = self.client.get_object(Bucket=self.bucket, Key=s3_key, **pin)
                try:
                    self._check_meta(key, meta, check)
                    if response is not None and meta.size < self.transfer.multipart_threshold:
                        with HashingSink(target) as sink:
                            for chunk in response["Body"].iter_chunks(1024 * 1024):
                                sink.write(chunk)
                                if progress:
                                    progress(len(chunk))
                        response = None
                finally:
                    if response is not None:
                        _drain(response["Body"])
                if meta.size >= self.transfer.multipart_threshold:
                    # Parts land at their offsets as they arrive; a thread hashes the file
                    # in order behind them (see InOrderHasher).
                    with InOrderHasher(os.dup(target.fileno())) as sink:
                        future = self._transfer_manager().download(
                            self.bucket,
                            s3_key,
                            sink,
                            subscribers=[_ProgressSubscriber(meta.size, progress, meta.etag)],
                        )
                        future.result()
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchKey"):
                raise FileNotInLakeError(f"{key!r} is not in the data lake {self.url}") from exc
            raise self._fail("download", repr(key), exc) from exc
        except (BotoCoreError, BodyError) as exc:
            raise self._fail("download", repr(key), exc) from exc
        if sink.hexdigest() != meta.sha256 or sink.size != meta.size:
            raise IntegrityError(
                f"{key!r} in the data lake {self.url} is corrupted: its sha256 is "
                f"{sink.hexdigest()}, {meta.sha256} was recorded when it was created"
            )
        return meta

    def _get_first_part(self, s3_key: str) -> Any:
        """The GET of an object's first ``multipart_threshold`` bytes (all of a small one)."""
        from botocore.exceptions import ClientError

        if self.native is not None:
            try:
                return self.native.get(s3_key, self.transfer.multipart_threshold)
            except Unsettled as exc:  # missing, unreachable...: boto3 does it again and says
                _redo("read", s3_key, exc)
        first = f"bytes=0-{self.transfer.multipart_threshold - 1}"
        try:
            return self.client.get_object(Bucket=self.bucket, Key=s3_key, Range=first)
        except ClientError as exc:
            if _error_code(exc) not in ("416", "InvalidRange"):
                raise
            # An empty object has no byte 0 to ask for: ask for all of it.
            return self.client.get_object(Bucket=self.bucket, Key=s3_key)

    def _check_meta(
        self, key: str, meta: ObjectMeta, check: Callable[[ObjectMeta], None] | None
    ) -> None:
        """Refuse an object radops cannot verify, then let the caller refuse it."""
        if meta.sha256 is None:
            raise IntegrityError(
                f"{key!r} in {self.url} has no recorded sha256: it was not created by radops, "
                "so it cannot be verified"
            )
        if check is not None:
            check(meta)

    def list(self, prefix: str = "") -> Iterator[ObjectMeta]:
        from botocore.exceptions import BotoCoreError, ClientError

        paginator = self.client.get_paginator("list_objects_v2")
        reserved = self.prefix + RESERVED_PREFIX + "/"
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    s3_key = item["Key"]
                    if s3_key.startswith(reserved):
                        continue
                    yield ObjectMeta(
                        key=s3_key[len(self.prefix) :],
                        size=item["Size"],
                        etag=item.get("ETag"),
                        created=item.get("LastModified"),
                    )
        except ClientError as exc:
            raise self._fail("list", repr(prefix) if prefix else "the lake", exc) from exc
        except BotoCoreError as exc:
            raise self._fail("list", repr(prefix) if prefix else "the lake", exc) from exc

    def keys(self, folder: str) -> Iterator[str]:
        native = self.native
        if native is not None:
            try:
                listed = native.keys(self.prefix + folder)
            except Unsettled as exc:
                _redo("listing", folder, exc)
            else:
                reserved = self.prefix + RESERVED_PREFIX + "/"
                return iter(
                    [key[len(self.prefix) :] for key in listed if not key.startswith(reserved)]
                )
        return (meta.key for meta in self.list(folder))

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("delete", repr(key), exc) from exc

    def dataset(self, key: str) -> tuple[str, str]:
        return f"s3://{self.bucket}", dataset_name(self._key(key))

    def _record_key(self, name: str) -> str:
        return f"{self.prefix}{RESERVED_PREFIX}/{validate_uid(name)}"

    def put_record(self, name: str, data: bytes) -> None:
        refusal = self._create_record(name, data)
        if refusal is None or self.get_record(name) == data:
            return  # written; or our own write, retried after its answer was lost
        raise FileExistsInLakeError(f"record {name!r} already exists in {self.url}") from refusal

    def _create_record(self, name: str, data: bytes) -> Exception | None:
        """Create the record ``name`` (the fast path first); the refusal if it exists."""
        from botocore.exceptions import BotoCoreError, ClientError

        key = self._record_key(name)
        native = self.native
        if native is not None:
            try:
                native.put_bytes_new(key, data)
            except AlreadyExists as exc:
                return exc
            except Unsettled as exc:
                _redo("record write", name, exc)
            else:
                return None
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        except ClientError as exc:
            if _error_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return exc
            raise self._fail("write record", name, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("write record", name, exc) from exc
        return None

    def get_record(self, name: str, max_bytes: int | None = None) -> bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._record_key(name))
            body = response["Body"]
            try:
                size = response.get("ContentLength")
                if max_bytes is not None and isinstance(size, int) and size > max_bytes:
                    # Closed unread: the connection is dropped, nothing more is downloaded.
                    raise InvalidRecordError(
                        f"{size} bytes, over the limit of {max_bytes} bytes for a record"
                    )
                data: bytes = body.read() if max_bytes is None else body.read(max_bytes + 1)
            finally:
                body.close()
            if max_bytes is not None and len(data) > max_bytes:
                raise InvalidRecordError(f"over the limit of {max_bytes} bytes for a record")
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchKey"):
                return None
            raise self._fail("read record", name, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("read record", name, exc) from exc
        return data

    def list_records(self, prefix: str, start_after: str = "") -> Iterator[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        base = f"{self.prefix}{RESERVED_PREFIX}/"
        native = self.native
        if native is not None:
            try:
                listed = native.keys(base + prefix, base + start_after if start_after else "")
            except Unsettled as exc:
                _redo("listing", prefix, exc)
            else:
                names = (key[len(base) :] for key in listed)
                yield from (name for name in names if name > start_after)
                return
        options: dict[str, Any] = {"Bucket": self.bucket, "Prefix": base + prefix}
        if start_after:
            options["StartAfter"] = base + start_after
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(**options):
                for item in page.get("Contents", []):
                    name = item["Key"][len(base) :]
                    if name > start_after:
                        yield name
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("list records", prefix, exc) from exc

    def list_record_folders(self, prefix: str) -> tuple[str, ...]:
        from botocore.exceptions import BotoCoreError, ClientError

        base = f"{self.prefix}{RESERVED_PREFIX}/{prefix}"
        native = self.native
        if native is not None:
            try:
                return tuple(sorted(native.folders(base)))
            except Unsettled as exc:
                _redo("listing", prefix, exc)
        folders: list[str] = []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=base, Delimiter="/"):
                for common in page.get("CommonPrefixes", []):
                    folders.append(common["Prefix"][len(base) :].rstrip("/"))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("list records", prefix, exc) from exc
        return tuple(sorted(folders))

    def close(self) -> None:
        """Stop the transfer manager's threads."""
        if self._manager is not None:
            self._manager.shutdown()
            self._manager = None


def _attempts(exc: BaseException) -> str:
    """How hard the client tried: as _RetryWatch noted it, the attempts of a ClientError, or
    else the configured bound."""
    retried = getattr(exc, "radops_retried", None)
    if retried is not None:
        attempts, seconds = retried
        return f"{attempts} attempts in {seconds:.0f} s"
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        retries = response.get("ResponseMetadata", {}).get("RetryAttempts")
        if isinstance(retries, int):
            return f"{retries + 1} attempts"
    return f"up to {MAX_ATTEMPTS} attempts with backoff"


def _parse_timestamp(value: str) -> datetime.datetime:
    """botocore's timestamp parser, with a fast path for the ISO 8601 times of S3 listings.

    botocore hands every timestamp to ``dateutil``'s general parser: for a listing of 2,000
    objects that was two thirds of its time. ``datetime.fromisoformat`` reads S3's
    ``2024-05-01T12:00:00.000Z`` directly; anything else (HTTP dates, epoch numbers, a time
    without a zone) still goes to botocore's own parser.
    """
    if isinstance(value, str) and len(value) > 10 and value[4] == "-" and value[10] == "T":
        try:
            parsed = datetime.datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed
    from botocore.utils import parse_timestamp  # only for the other forms: once per listed time

    return parse_timestamp(value)


def _error_code(exc: BaseException | None) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _redo(action: str, key: str, exc: Unsettled) -> None:
    # Only the kind of error (Unsettled's text): the error's own text may carry the endpoint.
    log.debug("the fast %s of %r failed (%s); boto3 does it", action, key, exc)


def _drain(body: Any) -> None:
    """Read the rest of an answer's body (at most its first part) and close it: an unread
    body costs its connection, and opening another took longer than reading a part."""
    try:
        for _ in body.iter_chunks(1024 * 1024):
            pass
    except Exception:  # only the connection is at stake
        log.debug("could not read an answer to its end", exc_info=True)
    finally:
        body.close()


def _meta(key: str, response: Mapping[str, Any]) -> ObjectMeta:
    metadata = {k.lower(): unquote(v) for k, v in response.get("Metadata", {}).items()}
    sha256 = metadata.pop(SHA256_KEY, None)
    # The answer to a ranged GET gives the object's size after the slash: "bytes 0-99/1234".
    whole = str(response.get("ContentRange") or "").rpartition("/")[2]
    return ObjectMeta(
        key=key,
        size=int(whole) if whole.isdigit() else response["ContentLength"],
        sha256=sha256,
        etag=response.get("ETag"),
        created=response.get("LastModified"),
        metadata=metadata,
    )
