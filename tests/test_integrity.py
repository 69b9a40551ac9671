"""sha256 while bytes flow: the sink's digest is the digest of exactly what it forwarded."""

from __future__ import annotations

import hashlib
import io
import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from radops.integrity import HashingSink

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


def test_closing_a_background_sink_ends_its_hashing_thread() -> None:
    """A download that fails half-way closes the sink without asking for the digest."""
    before = {t.ident for t in threading.enumerate() if t.name == "radops-sha256"}
    sink = HashingSink(io.BytesIO(), background=True)
    sink.write(b"x" * 100_000)
    sink.close()
    running = {t.ident for t in threading.enumerate() if t.name == "radops-sha256"}
    assert running <= before
