"""Chunked cache objects: split/join round trips, damage detection, metadata bytes, memcached keys."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from services.shared.store import chunking
from services.shared.store.chunking import ChunkInfo, ObjectMeta

U64 = st.integers(min_value=0, max_value=2**64 - 1)
CHUNK_BYTES = st.integers(min_value=1, max_value=64)


@st.composite
def objects(draw: st.DrawFn, min_size: int = 0) -> tuple[int, bytes]:
    """A chunk size and a value of 0 .. 3 x chunk size + 1 bytes."""
    chunk_bytes = draw(CHUNK_BYTES)
    size = draw(st.integers(min_value=min_size, max_value=3 * chunk_bytes + 1))
    return chunk_bytes, draw(st.binary(min_size=size, max_size=size))


def stored(chunk_bytes: int, value: bytes, version: int = 7) -> tuple[ObjectMeta, list[bytes]]:
    """What a reader gets back: the metadata through its encoding, and the chunks."""
    meta, chunks = chunking.split(value, chunk_bytes=chunk_bytes, object_version=version)
    decoded = chunking.decode_meta(chunking.encode_meta(meta))
    assert decoded == meta
    return decoded, chunks


# -- round trips ------------------------------------------------------------------------------------


@given(objects(), U64)
def test_split_join_round_trip(obj: tuple[int, bytes], version: int) -> None:
    chunk_bytes, value = obj
    meta, chunks = stored(chunk_bytes, value, version)
    assert chunking.join(meta, chunks) == value
    assert meta.object_version == version
    assert meta.total_size == len(value)
    assert len(chunks) == chunking.chunk_count(len(value), chunk_bytes)
    assert all(0 < len(c) <= chunk_bytes for c in chunks)
    assert meta.whole_crc32 == zlib.crc32(value)


@pytest.mark.parametrize("size", [0, 1, 512 * 1024 - 1, 512 * 1024, 512 * 1024 + 1, 3 * 512 * 1024 + 1])
def test_default_chunk_size_boundaries(size: int) -> None:
    value = bytes(i % 251 for i in range(size))
    meta, chunks = stored(512 * 1024, value)
    assert [len(c) for c in chunks] == [c.size for c in meta.chunks]
    assert len(chunks) == -(-size // (512 * 1024))
    assert chunking.join(meta, chunks) == value


def test_empty_value_is_metadata_only() -> None:
    meta, chunks = stored(16, b"")
    assert chunks == []
    assert meta.chunks == ()
    assert chunking.chunk_keys("hw:x:00", meta) == []
    assert chunking.join(meta, []) == b""


@pytest.mark.parametrize("chunk_bytes", [0, -1, chunking.MAX_CHUNK_BYTES + 1])
def test_chunk_size_must_fit_an_item(chunk_bytes: int) -> None:
    with pytest.raises(ValueError, match="chunk_bytes"):
        chunking.split(b"x", chunk_bytes=chunk_bytes, object_version=1)


# -- damage is a miss -------------------------------------------------------------------------------


@given(objects(min_size=1), st.data())
def test_any_corrupted_byte_is_detected(obj: tuple[int, bytes], data: st.DataObject) -> None:
    chunk_bytes, value = obj
    meta, chunks = stored(chunk_bytes, value)
    index = data.draw(st.integers(0, len(chunks) - 1))
    at = data.draw(st.integers(0, len(chunks[index]) - 1))
    flip = data.draw(st.integers(1, 255))
    damaged = bytearray(chunks[index])
    damaged[at] ^= flip
    chunks[index] = bytes(damaged)
    assert chunking.join(meta, chunks) is None


@given(objects(min_size=1), st.data())
def test_missing_or_truncated_chunk_is_detected(obj: tuple[int, bytes], data: st.DataObject) -> None:
    chunk_bytes, value = obj
    meta, chunks = stored(chunk_bytes, value)
    index = data.draw(st.integers(0, len(chunks) - 1))
    absent: list[bytes | None] = [*chunks[:index], None, *chunks[index + 1 :]]
    assert chunking.join(meta, absent) is None
    assert chunking.join(meta, chunks[:index] + chunks[index + 1 :]) is None
    truncated = [*chunks[:index], chunks[index][:-1], *chunks[index + 1 :]]
    assert chunking.join(meta, truncated) is None


@given(objects(), st.binary(max_size=8))
def test_extra_chunk_is_detected(obj: tuple[int, bytes], extra: bytes) -> None:
    chunk_bytes, value = obj
    meta, chunks = stored(chunk_bytes, value)
    assert chunking.join(meta, [*chunks, extra]) is None


@given(objects(min_size=2), st.data())
def test_reordered_chunks_are_detected(obj: tuple[int, bytes], data: st.DataObject) -> None:
    chunk_bytes, value = obj
    meta, chunks = stored(chunk_bytes, value)
    reordered = data.draw(st.permutations(chunks))
    assume(reordered != chunks)  # swapping equal chunks changes nothing
    assert chunking.join(meta, reordered) is None


@given(objects(min_size=1), st.binary(min_size=1, max_size=200))
def test_chunks_of_another_write_are_detected(obj: tuple[int, bytes], other: bytes) -> None:
    chunk_bytes, value = obj
    assume(other != value)
    meta, _ = stored(chunk_bytes, value)
    _, other_chunks = stored(chunk_bytes, other)
    assert chunking.join(meta, other_chunks) is None


# -- metadata item ----------------------------------------------------------------------------------


@st.composite
def metas(draw: st.DrawFn) -> ObjectMeta:
    sizes = draw(st.lists(st.integers(0, 2**32 - 1), max_size=40))
    crcs = draw(st.lists(st.integers(0, 2**32 - 1), min_size=len(sizes), max_size=len(sizes)))
    return ObjectMeta(
        object_version=draw(U64),
        total_size=sum(sizes),
        whole_crc32=draw(st.integers(0, 2**32 - 1)),
        chunks=tuple(ChunkInfo(size=s, crc32=c) for s, c in zip(sizes, crcs, strict=True)),
    )


@given(metas())
def test_metadata_round_trip(meta: ObjectMeta) -> None:
    assert chunking.decode_meta(chunking.encode_meta(meta)) == meta


@given(metas(), st.data())
def test_damaged_metadata_is_rejected(meta: ObjectMeta, data: st.DataObject) -> None:
    item = bytearray(chunking.encode_meta(meta))
    at = data.draw(st.integers(0, len(item) - 1))
    item[at] ^= data.draw(st.integers(1, 255))
    assert chunking.decode_meta(bytes(item)) is None
    cut = data.draw(st.integers(0, len(item) - 1))
    assert chunking.decode_meta(chunking.encode_meta(meta)[:cut]) is None


@given(st.binary(max_size=300))
def test_garbage_metadata_is_rejected_not_raised(item: bytes) -> None:
    assert chunking.decode_meta(item) is None


def test_metadata_whose_sizes_do_not_add_up_is_rejected() -> None:
    meta = ObjectMeta(object_version=1, total_size=5, whole_crc32=0, chunks=(ChunkInfo(size=4, crc32=0),))
    assert chunking.decode_meta(chunking.encode_meta(meta)) is None


def test_metadata_of_too_many_chunks_is_refused() -> None:
    chunks = (ChunkInfo(size=1, crc32=0),) * (chunking.MAX_CHUNKS + 1)
    meta = ObjectMeta(object_version=1, total_size=len(chunks), whole_crc32=0, chunks=chunks)
    with pytest.raises(ValueError, match="chunks"):
        chunking.encode_meta(meta)


# -- keys and expiry --------------------------------------------------------------------------------

ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=400)


def memcached_safe(key: str) -> bool:
    """memcached's text protocol: at most 250 bytes, no whitespace or control characters."""
    return len(key.encode()) <= chunking.MAX_KEY_BYTES and all(33 <= ord(c) <= 126 for c in key)


@given(ANY_TEXT, U64)
def test_keys_are_memcached_safe_for_any_unicode_key(key: str, version: int) -> None:
    hashed = chunking.cache_key(key)
    assert memcached_safe(chunking.meta_key(hashed))
    assert memcached_safe(chunking.chunk_key(hashed, version, chunking.MAX_CHUNKS - 1))
    assert chunking.cache_key(key) == hashed


@given(ANY_TEXT, ANY_TEXT)
def test_distinct_keys_get_distinct_cache_keys(a: str, b: str) -> None:
    assume(a != b)
    assert chunking.cache_key(a) != chunking.cache_key(b)


def test_cache_key_keeps_a_readable_prefix() -> None:
    assert chunking.cache_key("frag/demo/video 1").startswith("hw:frag/demo/video_1:")


def test_chunk_keys_embed_the_object_version() -> None:
    meta, _ = chunking.split(b"abcdef", chunk_bytes=4, object_version=0xABC)
    assert chunking.chunk_keys("hw:k:ff", meta) == [
        "hw:k:ff:0000000000000abc:0",
        "hw:k:ff:0000000000000abc:1",
    ]
    assert chunking.meta_key("hw:k:ff") == "hw:k:ff:m"


def test_memcached_exptime() -> None:
    thirty_days = chunking.MAX_RELATIVE_EXPTIME_S
    assert chunking.memcached_exptime(1, now_unix_s=1e9) == 1
    assert chunking.memcached_exptime(thirty_days, now_unix_s=1e9) == thirty_days
    assert chunking.memcached_exptime(thirty_days + 1, now_unix_s=1e9 + 0.5) == 10**9 + thirty_days + 1
    with pytest.raises(ValueError, match="ttl_s"):
        chunking.memcached_exptime(0, now_unix_s=1e9)
