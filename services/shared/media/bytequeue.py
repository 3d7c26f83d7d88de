"""A FIFO of fed byte chunks that reads ahead without copying and hands bytes out with one copy.

The reader keeps a whole fragment (styp … mdat) queued until its mdat ends, then takes it out as one
``bytes``: the chunks are joined once (or, when one chunk is exactly the fragment, not copied at all).
"""

from __future__ import annotations

from collections import deque

# Chunks smaller than this are merged on arrival, so feeding one byte at a time does not grow the deque
# (and every peek that walks it) by one entry per byte.
_SMALL_CHUNK = 4096


class ByteQueue:
    """Bytes appended in pieces, consumed from the front."""

    __slots__ = ("_chunks", "_head", "_size")

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        self._head = 0  # bytes of _chunks[0] already consumed
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def append(self, data: bytes) -> None:
        if not data:
            return
        chunks = self._chunks
        if chunks and len(data) < _SMALL_CHUNK and len(chunks[-1]) < _SMALL_CHUNK:
            chunks[-1] += data
        else:
            chunks.append(data)
        self._size += len(data)

    def peek(self, offset: int, count: int) -> bytes:
        """Up to ``count`` bytes starting ``offset`` bytes from the front (fewer at the end)."""
        pieces: list[bytes] = []
        pos = offset + self._head
        for chunk in self._chunks:
            if pos >= len(chunk):
                pos -= len(chunk)
                continue
            piece = chunk[pos : pos + count]
            pieces.append(piece)
            count -= len(piece)
            pos = 0
            if count <= 0:
                break
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def take(self, count: int) -> bytes:
        """Remove and return the first ``count`` bytes (``count`` must not exceed the length)."""
        if count == 0:
            return b""
        chunks = self._chunks
        first = chunks[0]
        if self._head == 0 and len(first) == count:
            chunks.popleft()
            self._size -= count
            return first
        pieces: list[memoryview] = []
        remaining = count
        while remaining:
            chunk = chunks[0]
            available = len(chunk) - self._head
            if available <= remaining:
                pieces.append(memoryview(chunk)[self._head :])
                chunks.popleft()
                self._head = 0
                remaining -= available
            else:
                pieces.append(memoryview(chunk)[self._head : self._head + remaining])
                self._head += remaining
                remaining = 0
        self._size -= count
        return b"".join(pieces)

    def drop(self, count: int) -> None:
        """Remove the first ``count`` bytes without copying them."""
        self._size -= count
        chunks = self._chunks
        count += self._head
        while chunks and count >= len(chunks[0]):
            count -= len(chunks.popleft())
        self._head = count
