from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.shared.media.bytequeue import ByteQueue


def test_take_of_exactly_one_chunk_does_not_copy() -> None:
    queue = ByteQueue()
    chunk = bytes(10_000)
    queue.append(chunk)
    assert queue.take(10_000) is chunk
    assert len(queue) == 0


def test_small_chunks_are_merged() -> None:
    queue = ByteQueue()
    for byte in b"abcdef":
        queue.append(bytes([byte]))
    assert len(queue) == 6
    assert queue.peek(2, 3) == b"cde"
    assert queue.take(4) == b"abcd"
    assert queue.peek(0, 10) == b"ef"


def test_peek_take_and_drop_across_chunks() -> None:
    queue = ByteQueue()
    for part in (b"a" * 5000, b"b" * 5000, b"c" * 5000):
        queue.append(part)
    assert queue.peek(4998, 4) == b"aabb"
    queue.drop(4999)
    assert queue.take(2) == b"ab"
    assert queue.peek(0, 1) == b"b"
    assert len(queue) == 15000 - 5001
    assert queue.take(len(queue)) == b"b" * 4999 + b"c" * 5000
    assert queue.take(0) == b""


@given(st.lists(st.binary(max_size=5000), max_size=20), st.lists(st.integers(0, 6000), max_size=20))
def test_queue_behaves_like_one_bytes_string(chunks: list[bytes], takes: list[int]) -> None:
    queue = ByteQueue()
    model = b""
    for chunk in chunks:
        queue.append(chunk)
        model += chunk
    for wanted in takes:
        count = min(wanted, len(model))
        assert queue.peek(count // 2, count) == model[count // 2 : count // 2 + count]
        if count % 2:
            queue.drop(count)
        else:
            assert queue.take(count) == model[:count]
        model = model[count:]
        assert len(queue) == len(model)
