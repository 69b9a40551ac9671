"""Listing the lake: every key, in order, across S3's 1,000-key pages."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from radops.data_lake import File
from radops.lake import DataLake
from radops.settings import Settings
from radops.stores.s3 import S3Store


@pytest.fixture(scope="module")
def big_s3_lake(seaweed, tmp_path_factory):
    """A lake on a fresh SeaweedFS prefix holding 1,050 radops objects, written directly."""
    tmp_path = tmp_path_factory.mktemp("listing")
    prefix = f"listing-{tmp_path.name}"
    client = seaweed.client()
    body = b"x"
    sha = hashlib.sha256(body).hexdigest()

    def put(i: int) -> None:
        client.put_object(
            Bucket="lake", Key=f"{prefix}/f/{i:05d}", Body=body, Metadata={"sha256": sha}
        )

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(1050)))
    client.put_object(Bucket="lake", Key=f"{prefix}/.radops/records/x", Body=b"{}")
    settings = Settings.load(
        env={},
        home=tmp_path / "home",
        remote=f"s3://lake/{prefix}",
        s3_endpoint_url=seaweed.endpoint,
        email="t@example.com",
    )
    return DataLake(settings)


def test_listing_crosses_s3_pages_in_key_order(big_s3_lake):
    """All 1,050 keys come back, sorted, although S3 pages hold at most 1,000."""
    keys = [meta.key for meta in big_s3_lake.files()]
    assert keys == [f"f/{i:05d}" for i in range(1050)]


def test_listing_hides_the_lake_records_and_honours_the_prefix(big_s3_lake):
    """The reserved .radops/ area is never listed, and a prefix narrows the listing."""
    assert all(not meta.key.startswith(".radops") for meta in big_s3_lake.files())
    assert [meta.key for meta in big_s3_lake.files("f/0104")] == [f"f/0104{i}" for i in range(10)]


def test_store_prefix_is_normalised(seaweed):
    """s3://bucket/prefix/ and s3://bucket/prefix address the same keys."""
    assert S3Store("s3://lake/a/b/").url == S3Store("s3://lake/a/b").url == "s3://lake/a/b"
    assert S3Store("s3://lake").prefix == ""


def test_listing_order_follows_the_store(lake):
    """A directory remote lists in S3's byte order ('a-b' before 'a/b'); S3 in its own order.

    AWS S3 sorts keys by their UTF-8 bytes; SeaweedFS lists folders depth-first, so on S3 only
    the set of keys is checked.
    """
    uids = ["a/b", "a-b", "a0", "b"]
    for uid in uids:
        with File(uid, lake=lake).open("w") as handle:
            handle.write(uid)
    keys = [meta.key for meta in lake.files()]
    if lake.settings.remote.startswith("s3://"):
        assert sorted(keys) == sorted(uids)
    else:
        assert keys == ["a-b", "a/b", "a0", "b"]


def test_listed_times_are_read_fast_and_as_botocore_reads_them(big_s3_lake):
    """S3's ISO 8601 times skip dateutil; every other form is still botocore's to read, and
    each gives the datetime botocore would."""
    from botocore.utils import parse_timestamp

    from radops.stores.s3 import _parse_timestamp

    for value in (
        "2024-05-01T12:00:00.000Z",
        "2024-05-01T12:00:00Z",
        "2024-05-01T14:00:00.123+02:00",
        "Wed, 01 May 2024 12:00:00 GMT",  # a HEAD's Last-Modified
        "1714564800",  # epoch seconds
        "2024-05-01T12:00:00",  # no zone: botocore's to read
    ):
        ours, theirs = _parse_timestamp(value), parse_timestamp(value)
        assert ours == theirs and ours.utcoffset() == theirs.utcoffset(), value
        assert (ours.tzinfo is None) == (theirs.tzinfo is None), value
    created = [meta.created for meta in big_s3_lake.files("f/0000")]
    assert created and all(when is not None and when.tzinfo is not None for when in created)
