"""Chunked cache objects (EVCache-style), pure: cache keys, splitting, metadata, verified joining.

One cached object is stored as data chunks plus one metadata item::

    <hashed key>:m                        metadata (written last): versions, sizes, CRC32s
    <hashed key>:<object version>:<i>     data chunk i, raw bytes (i = 0 .. chunk_count - 1)

The object version is a random 64-bit id drawn per write and embedded in every chunk key, so chunks
of two writes never share a key: a rewrite stores new-version chunks and only then flips the
metadata, and a reader that got one metadata item can only assemble the chunks it names. Every chunk
is checked (size and CRC32) and so is the whole object (total size and CRC32): a missing, extra,
reordered, truncated or corrupted chunk makes ``join`` return None — a miss, never an error.

Metadata layout (big endian)::

    magic "HWC" · format u8 · object_version u64 · total_size u64 · whole_crc32 u32 · chunk_count u32
    chunk_count x (size u32 · crc32 u32) · crc32 u32 of everything before it
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

FORMAT_VERSION = 1
#: memcached's longest key, in bytes (text protocol).
MAX_KEY_BYTES = 250
#: memcached's default item limit (-I 1m) covers key, value and item header: stay well below it.
MAX_CHUNK_BYTES = 1024 * 1024 - 4096
#: Bounds the metadata item (8 bytes per chunk): 8192 chunks of 512 KiB = 4 GiB, far above any object.
MAX_CHUNKS = 8192

_MAGIC = b"HWC"
_HEADER = struct.Struct(">3sBQQII")
_CHUNK = struct.Struct(">II")
_TRAILER = struct.Struct(">I")
_KEY_PREFIX = "hw"
_READABLE_CHARS = 48
_UNREADABLE = re.compile(r"[^A-Za-z0-9._/\-]+")
_DIGEST_BYTES = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkInfo:
    size: int  # bytes in this chunk
    crc32: int  # zlib.crc32 of its bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectMeta:
    """What the metadata item records about one stored object."""

    object_version: int  # random 64-bit id of the write that stored it; part of every chunk key
    total_size: int
    whole_crc32: int  # zlib.crc32 of the whole value
    chunks: tuple[ChunkInfo, ...]


# -- keys -------------------------------------------------------------------------------------------


def cache_key(key: str) -> str:
    """The memcached key base for a caller's key: ``hw:<readable part>:<blake2b-160 hex>``.

    Any ``str`` works (lone surrogates included). The readable part is a sanitized prefix of the
    key, for people reading ``stats cachedump``; the digest of the whole key makes it unique.
    """
    raw = key.encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(raw, digest_size=_DIGEST_BYTES).hexdigest()
    readable = _UNREADABLE.sub("_", key[:_READABLE_CHARS])
    return f"{_KEY_PREFIX}:{readable}:{digest}"


def meta_key(hashed_key: str) -> str:
    return f"{hashed_key}:m"


def chunk_key(hashed_key: str, object_version: int, index: int) -> str:
    return f"{hashed_key}:{object_version:016x}:{index}"


def chunk_keys(hashed_key: str, meta: ObjectMeta) -> list[str]:
    return [chunk_key(hashed_key, meta.object_version, i) for i in range(len(meta.chunks))]


# -- split and join ---------------------------------------------------------------------------------


def chunk_count(total_size: int, chunk_bytes: int) -> int:
    return -(-total_size // chunk_bytes)


def split(value: bytes, *, chunk_bytes: int, object_version: int) -> tuple[ObjectMeta, list[bytes]]:
    """Cut ``value`` into chunks of at most ``chunk_bytes`` (none for b"") and describe them."""
    if not 0 < chunk_bytes <= MAX_CHUNK_BYTES:
        raise ValueError(f"chunk_bytes must be in 1..{MAX_CHUNK_BYTES}, not {chunk_bytes}")
    if not 0 <= object_version < 1 << 64:
        raise ValueError("object_version must be an unsigned 64-bit integer")
    chunks = [value[at : at + chunk_bytes] for at in range(0, len(value), chunk_bytes)]
    infos = tuple(ChunkInfo(size=len(c), crc32=zlib.crc32(c)) for c in chunks)
    meta = ObjectMeta(
        object_version=object_version,
        total_size=len(value),
        whole_crc32=_whole_crc32(value, infos),
        chunks=infos,
    )
    return meta, chunks


def join(meta: ObjectMeta, chunks: Sequence[bytes | None]) -> bytes | None:
    """The value the chunks make, or None if any is missing, extra, reordered or damaged."""
    if len(chunks) != len(meta.chunks):
        return None
    verified: list[bytes] = []
    for info, chunk in zip(meta.chunks, chunks, strict=True):
        if chunk is None or len(chunk) != info.size or zlib.crc32(chunk) != info.crc32:
            return None
        verified.append(chunk)
    value = verified[0] if len(verified) == 1 else b"".join(verified)
    if len(value) != meta.total_size or _whole_crc32(value, meta.chunks) != meta.whole_crc32:
        return None
    return value


def _whole_crc32(value: bytes, chunks: tuple[ChunkInfo, ...]) -> int:
    # One chunk is the whole value: its (already checked) CRC is the whole CRC, no second pass.
    return chunks[0].crc32 if len(chunks) == 1 else zlib.crc32(value)


# -- metadata item ----------------------------------------------------------------------------------


def encode_meta(meta: ObjectMeta) -> bytes:
    if len(meta.chunks) > MAX_CHUNKS:
        raise ValueError(f"{len(meta.chunks)} chunks is over the limit of {MAX_CHUNKS}")
    header = _HEADER.pack(
        _MAGIC, FORMAT_VERSION, meta.object_version, meta.total_size, meta.whole_crc32, len(meta.chunks)
    )
    body = header + b"".join(_CHUNK.pack(c.size, c.crc32) for c in meta.chunks)
    return body + _TRAILER.pack(zlib.crc32(body))


def decode_meta(data: bytes) -> ObjectMeta | None:
    """The metadata in ``data``, or None if it is not a well-formed item of this format version."""
    if len(data) < _HEADER.size + _TRAILER.size:
        return None
    body, (crc,) = data[: -_TRAILER.size], _TRAILER.unpack(data[-_TRAILER.size :])
    if zlib.crc32(body) != crc:
        return None
    magic, version, object_version, total_size, whole_crc32, count = _HEADER.unpack_from(body)
    if magic != _MAGIC or version != FORMAT_VERSION or len(body) != _HEADER.size + count * _CHUNK.size:
        return None
    chunks = tuple(
        ChunkInfo(size=size, crc32=chunk_crc) for size, chunk_crc in _CHUNK.iter_unpack(body[_HEADER.size :])
    )
    if sum(c.size for c in chunks) != total_size:
        return None
    return ObjectMeta(
        object_version=object_version, total_size=total_size, whole_crc32=whole_crc32, chunks=chunks
    )


# -- expiry -----------------------------------------------------------------------------------------

#: memcached reads an exptime over 30 days as an absolute Unix time, not as seconds from now.
MAX_RELATIVE_EXPTIME_S = 30 * 24 * 3600


def memcached_exptime(ttl_s: int, *, now_unix_s: float) -> int:
    """The memcached exptime field for an item that should live ``ttl_s`` (≥ 1) seconds."""
    if ttl_s < 1:
        raise ValueError(f"ttl_s must be at least 1, not {ttl_s}")  # 0 would mean "never expires"
    return ttl_s if ttl_s <= MAX_RELATIVE_EXPTIME_S else int(now_unix_s) + ttl_s
