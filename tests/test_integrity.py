"""sha256 while bytes flow: the sink's digest is the digest of exactly what it forwarded."""

from __future__ import annotations

import hashlib
import io
import os
import random
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radops.integrity import CHUNK_SIZE, HashingSink, InOrderHasher, copy_and_hash

CHUNKS = st.lists(st.binary(min_size=0, max_size=70_000), max_size=40)


@settings(max_examples=40, deadline=None)
@given(chunks=CHUNKS, background=st.booleans(), as_views=st.booleans())
def test_the_sink_hashes_and_forwards_every_byte_in_order(
    chunks: list[bytes], background: bool, as_views: bool
) -> None:
    target = io.BytesIO()
    buffer = bytearray()
    with HashingSink(target, background=background) as sink:
        for chunk in chunks:
            if as_views:
                # A reused buffer, as a network library would pass: the sink must copy it
                # before the background hash reads it.
                buffer[:] = chunk
                sink.write(memoryview(buffer))
                buffer[:] = b"\0" * len(chunk)
            else:
                sink.write(chunk)
        digest = sink.hexdigest()
    data = b"".join(chunks)
    assert target.getvalue() == data
    assert digest == hashlib.sha256(data).hexdigest()
    assert sink.size == len(data)


@pytest.mark.parametrize(
    "size", [0, 1, 4096, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 5]
)
def test_a_copy_is_hashed_whole_whether_in_line_or_beside_it(size: int) -> None:
    """Small files (one chunk) are hashed in line, larger ones in a thread: either way the
    copy has every byte, the digest and size are the source's, progress counts every byte,
    and no hashing thread is left behind."""
    data = random.Random(size).randbytes(size)
    target = io.BytesIO()
    counted: list[int] = []
    threads_before = threading.active_count()
    digest, copied = copy_and_hash(io.BytesIO(data), target, counted.append)
    assert (digest, copied) == (hashlib.sha256(data).hexdigest(), size)
    assert target.getvalue() == data
    assert sum(counted) == size
    assert threading.active_count() == threads_before


def test_closing_a_background_sink_ends_its_hashing_thread() -> None:
    """A download that fails half-way closes the sink without asking for the digest."""
    before = {t.ident for t in threading.enumerate() if t.name == "radops-sha256"}
    sink = HashingSink(io.BytesIO(), background=True)
    sink.write(b"x" * 100_000)
    sink.close()
    running = {t.ident for t in threading.enumerate() if t.name == "radops-sha256"}
    assert running <= before


@settings(max_examples=40, deadline=None)
@given(
    data=st.binary(min_size=0, max_size=300_000),
    part_size=st.integers(min_value=1, max_value=80_000),
    chunk_size=st.integers(min_value=1, max_value=30_000),
    order=st.randoms(use_true_random=False),
    retried=st.sets(st.integers(min_value=0, max_value=20), max_size=3),
)
def test_parts_written_out_of_order_are_hashed_in_order(
    tmp_path_factory: pytest.TempPathFactory,
    data: bytes,
    part_size: int,
    chunk_size: int,
    order: random.Random,
    retried: set[int],
) -> None:
    """As boto3 writes a parallel download: parts in any order, each in chunks at its offset,
    some parts written twice (a retry). The digest is the sha256 of the whole file."""
    parts = [(start, data[start : start + part_size]) for start in range(0, len(data), part_size)]
    order.shuffle(parts)
    retries = [parts[i] for i in sorted(retried) if i < len(parts)]
    path = tmp_path_factory.mktemp("parts") / "download.bin"
    with path.open("x+b") as target, InOrderHasher(os.dup(target.fileno())) as sink:
        for start, part in parts + retries:
            for offset in range(0, len(part), chunk_size):
                sink.seek(start + offset)
                sink.write(part[offset : offset + chunk_size])
        digest = sink.hexdigest()
    assert path.read_bytes() == data
    assert digest == hashlib.sha256(data).hexdigest()
    assert sink.size == len(data)


def test_bytes_already_hashed_are_never_rewritten(tmp_path: Path) -> None:
    """A retried part whose bytes differ (the object changed between two requests) cannot
    make the file differ from what was hashed: the first bytes stay, the digest matches them."""
    path = tmp_path / "download.bin"
    with path.open("x+b") as target, InOrderHasher(os.dup(target.fileno())) as sink:
        sink.write(b"first part|")
        sink.seek(0)
        sink.write(b"FIRST PART|second")
        digest = sink.hexdigest()
    assert path.read_bytes() == b"first part|second"
    assert digest == hashlib.sha256(b"first part|second").hexdigest()


def test_a_missing_part_leaves_the_size_short(tmp_path: Path) -> None:
    """A hole (a part never written) stops the hash at the hole: the size check catches it."""
    path = tmp_path / "download.bin"
    with path.open("x+b") as target, InOrderHasher(os.dup(target.fileno())) as sink:
        sink.write(b"a" * 10)
        sink.seek(20)
        sink.write(b"c" * 10)
        sink.hexdigest()
    assert sink.size == 10
    assert os.path.getsize(path) == 30


def test_a_file_that_cannot_be_read_back_is_an_error(tmp_path: Path) -> None:
    """Opened write-only, the file cannot be hashed: hexdigest raises, never a wrong digest."""
    path = tmp_path / "download.bin"
    with path.open("xb") as target:
        sink = InOrderHasher(os.dup(target.fileno()))
        sink.write(b"data")
        with pytest.raises(OSError, match="Bad file descriptor"):
            sink.hexdigest()


def test_a_part_arriving_after_the_download_was_given_up_is_refused(tmp_path: Path) -> None:
    """Interrupted (Ctrl-C), a download closes its file while boto3 may still be writing a
    part: that write fails; it never lands in whatever file reuses the descriptor number."""
    path = tmp_path / "download.bin"
    with path.open("x+b") as target:
        sink = InOrderHasher(os.dup(target.fileno()))
        sink.write(b"first")
        sink.close()
    other = tmp_path / "other.bin"
    with other.open("x+b"), pytest.raises(ValueError, match="closed"):
        sink.write(b"late part")
    assert other.read_bytes() == b""
    assert path.read_bytes() == b"first"
