"""Small objects go through the fast path (obstore), which changes no answer radops gives.

Each test uses the real SeaweedFS. To show which path carried a request, one of the two
clients is pointed at a loopback port where nothing listens: whatever still succeeds went
through the other one.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import time
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.credentials import Credentials, RefreshableCredentials

from radops.errors import FileExistsInLakeError, FileNotInLakeError
from radops.stores.s3 import SMALL_BODY_BYTES, S3Store, TransferSettings
from radops.stores.s3_native import NativeS3, _Credentials
from tests.s3_proxy import S3Proxy
from tests.seaweed import SeaweedServer

MiB = 1024 * 1024


@pytest.fixture
def url() -> str:
    return f"s3://lake/native-{uuid.uuid4().hex[:8]}"


def store_at(seaweed: SeaweedServer, url: str, **options: object) -> S3Store:
    return S3Store(url, endpoint_url=seaweed.endpoint, give_up_after=2.0, **options)  # type: ignore[arg-type]


def file_of(tmp_path: Path, data: bytes, name: str = "src.bin") -> tuple[Path, str]:
    path = tmp_path / name
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def without_boto3(store: S3Store, closed_endpoint: str) -> S3Store:
    """``store`` with its fast path as built, and a boto3 client that reaches nothing."""
    assert store.native is not None  # built against the real server, before boto3's client
    store._client = boto3.session.Session().client(
        "s3",
        endpoint_url=closed_endpoint,
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1),
    )
    return store


def test_small_objects_are_created_and_read_without_boto3(
    seaweed: SeaweedServer, url: str, tmp_path: Path, closed_endpoint: str
) -> None:
    """The whole life of a small object, create then verified read, goes through the fast
    path; boto3 then finds the very object, metadata (non-ASCII too) included."""
    data = os.urandom(4096)
    src, sha256 = file_of(tmp_path, data)
    metadata = {"radops-run": "r-1", "note": "café ☕"}
    fast = without_boto3(store_at(seaweed, url), closed_endpoint)

    created = fast.put_new(src, "a/b.bin", sha256=sha256, metadata=metadata)
    read = fast.get("a/b.bin", tmp_path / "read.bin")

    assert (tmp_path / "read.bin").read_bytes() == data
    assert (read.size, read.sha256) == (4096, sha256)
    assert read.metadata["note"] == "café ☕"
    seen = store_at(seaweed, url, native=False).head("a/b.bin")
    assert seen is not None
    assert (seen.size, seen.sha256, seen.etag) == (4096, sha256, created.etag)
    assert {k: seen.metadata[k] for k in metadata} == metadata


def test_boto3_redoes_what_the_fast_path_cannot(
    seaweed: SeaweedServer, url: str, tmp_path: Path, closed_endpoint: str
) -> None:
    """A fast path that reaches nothing costs one failed attempt: boto3 creates and reads."""
    store = store_at(seaweed, url)
    store.client  # noqa: B018 - built against the real server
    store._native = NativeS3.build(
        "lake",
        endpoint_url=closed_endpoint,
        region="us-east-1",
        credentials=Credentials(seaweed.access_key, seaweed.secret_key),
        connect_timeout=1,
        read_timeout=1,
    )
    src, sha256 = file_of(tmp_path, b"small\n")

    store.put_new(src, "k.txt", sha256=sha256)
    read = store.get("k.txt", tmp_path / "read.txt")
    store.put_record("r/2026-12-04/one", b"record")

    assert (tmp_path / "read.txt").read_bytes() == b"small\n"
    assert read.sha256 == sha256
    assert list(store.keys("")) == ["k.txt"]
    assert store.list_record_folders("r/") == ("2026-12-04",)
    assert list(store.list_records("r/2026-12-04/")) == ["r/2026-12-04/one"]
    assert store.get_record("r/2026-12-04/one") == b"record"


def test_a_bulk_add_s_listings_and_records_go_through_the_fast_path(
    seaweed: SeaweedServer, url: str, tmp_path: Path, closed_endpoint: str
) -> None:
    """Which keys are under a folder, which records are new, and writing a record need no
    boto3, and answer as boto3 does: any uid, records after a given one. Only a folder marker
    (a key ending in '/', never a uid) is named without its '/'."""
    plain = store_at(seaweed, url, native=False)  # boto3 alone: the reference
    fast = without_boto3(store_at(seaweed, url), closed_endpoint)
    uids = ["f/a b.txt", "f/café ☕.bin", "f/100%.csv", "f/a+b", "f/sub/x.bin"]
    for uid in uids:
        src, sha256 = file_of(tmp_path, uid.encode())
        plain.put_new(src, uid, sha256=sha256)
    plain.client.put_object(Bucket="lake", Key=f"{plain.prefix}f/marker/", Body=b"")
    plain.put_record("f/not-a-uid-but-a-record", b"{}")  # records are never keys

    assert sorted(plain.keys("f/")) == sorted([*uids, "f/marker/"])
    assert sorted(fast.keys("f/")) == sorted([*uids, "f/marker"])
    assert list(fast.keys("g/")) == []

    for name, data in [("d/2026-12-01/r1", b"one"), ("d/2026-12-02/r2", b"two")]:
        fast.put_record(name, data)
    plain.put_record("d/2026-12-02/r3", b"three")
    assert fast.list_record_folders("d/") == plain.list_record_folders("d/")
    assert fast.list_record_folders("d/") == ("2026-12-01", "2026-12-02")
    after = ("d/2026-12-02/", "d/2026-12-02/r2")
    assert list(fast.list_records(*after)) == list(plain.list_records(*after))
    assert list(fast.list_records(*after)) == ["d/2026-12-02/r3"]
    assert list(fast.list_records("d/2026-12-01/")) == ["d/2026-12-01/r1"]
    assert plain.get_record("d/2026-12-02/r2") == b"two"


def test_a_record_is_created_once(seaweed: SeaweedServer, url: str) -> None:
    """The same bytes again are taken for this writer's own write, retried after its answer
    was lost; other bytes under the same name are refused, through either client."""
    for store in (store_at(seaweed, url), store_at(seaweed, url, native=False)):
        name = f"once/{'fast' if store.native else 'boto3'}"
        store.put_record(name, b"first")
        store.put_record(name, b"first")
        with pytest.raises(FileExistsInLakeError, match="already exists"):
            store.put_record(name, b"second")
        assert store.get_record(name) == b"first"


def test_the_fast_create_is_conditional(seaweed: SeaweedServer, url: str, tmp_path: Path) -> None:
    """A second writer of other bytes is refused; the same upload repeated (its first answer
    lost) is recognised as the one that made the object."""
    store = store_at(seaweed, url)
    assert store.native is not None
    mine, sha_mine = file_of(tmp_path, b"mine\n", "mine")
    theirs, sha_theirs = file_of(tmp_path, b"theirs\n", "theirs")
    metadata = {"radops-run": "run-a"}
    first = store.put_new(mine, "x.txt", sha256=sha_mine, metadata=metadata)

    with pytest.raises(FileExistsInLakeError, match="already exists"):
        store.put_new(theirs, "x.txt", sha256=sha_theirs, metadata={"radops-run": "run-b"})
    again = store.put_new(mine, "x.txt", sha256=sha_mine, metadata=metadata)

    assert again.etag == first.etag
    store.get("x.txt", tmp_path / "read.txt")
    assert (tmp_path / "read.txt").read_bytes() == b"mine\n"


def test_an_empty_object_and_a_missing_one_are_answered_as_before(
    seaweed: SeaweedServer, url: str, tmp_path: Path
) -> None:
    """An empty object has no first byte for the fast path's range: boto3 reads it. A missing
    key is boto3's FileNotInLakeError."""
    store = store_at(seaweed, url)
    assert store.native is not None
    src, sha256 = file_of(tmp_path, b"")
    store.put_new(src, "empty", sha256=sha256)

    assert store.get("empty", tmp_path / "read").size == 0
    with pytest.raises(FileNotInLakeError):
        store.get("absent", tmp_path / "absent")


def test_a_large_object_comes_in_parts_after_a_fast_first_request(
    seaweed: SeaweedServer, url: str, tmp_path: Path
) -> None:
    """Above the multipart size only the first request is the fast path's; the parts come
    through boto3's transfer manager, and the whole is verified."""
    transfer = TransferSettings(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    store = store_at(seaweed, url, transfer=transfer)
    data = os.urandom(11 * MiB)
    src, sha256 = file_of(tmp_path, data)
    store.put_new(src, "big.bin", sha256=sha256)

    read = store.get("big.bin", tmp_path / "read.bin")

    assert read.size == len(data)
    assert hashlib.sha256((tmp_path / "read.bin").read_bytes()).hexdigest() == sha256


def test_where_there_is_no_fast_path(seaweed: SeaweedServer, url: str, tmp_path: Path) -> None:
    """None is built when not wanted, for a client given by the caller, or for an endpoint
    whose URL holds a password (its errors would show it); boto3 then does all."""
    assert store_at(seaweed, url, native=False).native is None
    given = boto3.session.Session().client("s3", endpoint_url=seaweed.endpoint)
    assert S3Store(url, endpoint_url=seaweed.endpoint, client=given).native is None
    assert S3Store(url, endpoint_url="http://alice:secret@127.0.0.1:1").native is None
    store = store_at(seaweed, url, native=False)
    src, sha256 = file_of(tmp_path, b"boto3 only\n")
    store.put_new(src, "b.txt", sha256=sha256)
    assert store.get("b.txt", tmp_path / "read.txt").sha256 == sha256


def test_boto3_waits_for_a_go_ahead_only_before_a_large_body(
    seaweed: SeaweedServer, url: str, tmp_path: Path
) -> None:
    """botocore asks every upload to wait for ``100 Continue``: radops drops that round trip
    for a body up to 1 MiB, and keeps it above, where it spares sending a refused body."""
    proxy = S3Proxy(seaweed.endpoint)
    try:
        store = S3Store(url, endpoint_url=proxy.endpoint, native=False)
        small, sha_small = file_of(tmp_path, os.urandom(SMALL_BODY_BYTES), "small")
        large, sha_large = file_of(tmp_path, os.urandom(SMALL_BODY_BYTES + 1), "large")
        store.put_new(small, "small", sha256=sha_small)
        assert (proxy.counts["PutObject"], proxy.continued["PutObject"]) == (1, 0)
        store.put_new(large, "large", sha256=sha_large)
        assert (proxy.counts["PutObject"], proxy.continued["PutObject"]) == (2, 1)
        assert store.get("large", tmp_path / "read").sha256 == sha_large
    finally:
        proxy.stop()


def test_a_warm_up_makes_the_fast_path_s_first_request_in_the_background(
    seaweed: SeaweedServer, url: str, tmp_path: Path
) -> None:
    """Before many transfers, the fast path lists an empty folder of ``.radops/`` (its HTTP
    client is set up on its first request); a store without a fast path sends nothing."""
    proxy = S3Proxy(seaweed.endpoint)
    try:
        S3Store(url, endpoint_url=proxy.endpoint, native=False).warm_up()
        time.sleep(0.5)
        assert sum(proxy.counts.values()) == 0
        store = S3Store(url, endpoint_url=proxy.endpoint)
        store.warm_up()
        deadline = time.monotonic() + 10
        while not proxy.listed and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proxy.listed == [f"{store.prefix}.radops/warm-up/"]
        src, sha256 = file_of(tmp_path, b"after the warm-up\n")
        store.put_new(src, "w.txt", sha256=sha256)
        assert store.get("w.txt", tmp_path / "read").sha256 == sha256
    finally:
        proxy.stop()


def test_the_fast_path_goes_where_boto3_goes(
    seaweed: SeaweedServer, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """To the configured endpoint, or to AWS itself; an endpoint only boto3 knows of (found in
    ``AWS_ENDPOINT_URL_S3`` or a profile), or a CA bundle given to boto3 for https, is left to
    boto3 alone. A CA bundle has no say over a plain http endpoint."""
    assert S3Store("s3://any-bucket/x").native is not None  # AWS: built, nothing sent
    with monkeypatch.context() as patched:
        patched.setenv("AWS_CA_BUNDLE", str(tmp_path / "ca.pem"))
        assert S3Store("s3://any-bucket/x").native is None
        assert S3Store(url, endpoint_url="https://s3.example.com").native is None
        assert seaweed.endpoint.startswith("http://")
        plain = S3Store(url, endpoint_url=seaweed.endpoint)
        assert plain.native is not None
        src, sha256 = file_of(tmp_path, b"a bundle is for https\n")
        plain.put_new(src, "plain.txt", sha256=sha256)
        assert plain.get("plain.txt", tmp_path / "plain").sha256 == sha256
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", seaweed.endpoint)
    store = S3Store(url)
    assert store.client.meta.endpoint_url == seaweed.endpoint
    assert store.native is None
    src, sha256 = file_of(tmp_path, b"boto3 found the endpoint\n")
    store.put_new(src, "env.txt", sha256=sha256)
    assert store.get("env.txt", tmp_path / "read").sha256 == sha256


def test_credentials_that_boto3_refreshes_are_asked_for_again() -> None:
    """Static credentials never expire for the fast path; refreshable ones (roles, SSO) are
    taken again from boto3 within minutes."""
    static = _Credentials(Credentials("AKID", "SECRET", "TOKEN"))()
    assert (static["access_key_id"], static["token"], static["expires_at"]) == (
        "AKID",
        "TOKEN",
        None,
    )
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    role = RefreshableCredentials.create_from_metadata(
        {"access_key": "A2", "secret_key": "S2", "token": "T2", "expiry_time": later.isoformat()},
        refresh_using=dict,
        method="test",
    )
    refreshed = _Credentials(role)()
    assert refreshed["access_key_id"] == "A2"
    expires = refreshed["expires_at"]
    assert expires is not None
    assert (
        datetime.timedelta(0)
        < expires - datetime.datetime.now(datetime.timezone.utc)
        <= (datetime.timedelta(minutes=5))
    )
