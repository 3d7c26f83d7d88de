"""ChunkedCache against three real memcached daemons (replicas=2): round trips, TTLs, damaged and
half-written objects, killed and stalled nodes. Damage is done with a raw pymemcache client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from pymemcache.client.base import Client

from services.shared.store import chunking
from services.shared.store.chunking import ObjectMeta
from services.shared.store.memcache import CacheStats, ChunkedCache
from tests.integration.servers import MemcachedServer, free_ports

MiB = 1024 * 1024
CHUNK_BYTES = 512 * 1024
RETRY_DOWN_AFTER_S = 5.0
HANG_BOUND_S = 2.0  # not a performance target: a request must never wait on a dead node for long


class ManualClock:
    """The cache's clock for down-node retries, moved by the test (memcached timeouts stay real)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def cache(memcached_addresses: list[str], clock: ManualClock) -> AsyncIterator[ChunkedCache]:
    cache = ChunkedCache(memcached_addresses, replicas=2, retry_down_after_s=RETRY_DOWN_AFTER_S, clock=clock)
    yield cache
    await cache.close()


@pytest.fixture(autouse=True)
def nodes_back_up(memcached_nodes: list[MemcachedServer]) -> Iterator[None]:
    """Whatever a test did to a node, the next test finds all three running."""
    yield
    for node in memcached_nodes:
        if node.pid is not None:
            os.kill(node.pid, signal.SIGCONT)
        if not node.is_running():
            node.start()


# -- raw access to what the cache stored ----------------------------------------------------------


@contextlib.contextmanager
def raw(node: MemcachedServer) -> Iterator[Client]:
    client = Client(node.address, connect_timeout=2, timeout=2, default_noreply=False)
    try:
        yield client
    finally:
        client.close()


def holders(nodes: list[MemcachedServer], key: str) -> list[MemcachedServer]:
    """The nodes that hold the object's metadata item."""
    meta_key = chunking.meta_key(chunking.cache_key(key))
    found = []
    for node in nodes:
        with raw(node) as client:
            if client.get(meta_key) is not None:
                found.append(node)
    return found


def stored_meta(node: MemcachedServer, key: str) -> ObjectMeta:
    with raw(node) as client:
        item = client.get(chunking.meta_key(chunking.cache_key(key)))
    assert item is not None
    meta = chunking.decode_meta(item)
    assert meta is not None
    return meta


def flip_byte(node: MemcachedServer, key: str, chunk: int) -> None:
    """Overwrite one data chunk in memcached with the same bytes but one (same length)."""
    chunk_key = chunking.chunk_keys(chunking.cache_key(key), stored_meta(node, key))[chunk]
    with raw(node) as client:
        data = bytearray(client.get(chunk_key))
        data[len(data) // 2] ^= 0x01
        assert client.set(chunk_key, bytes(data))


def item_count(node: MemcachedServer) -> int:
    with raw(node) as client:
        return int(client.stats()[b"curr_items"])


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def delta(after: CacheStats, before: CacheStats) -> dict[str, int]:
    fields = ("hits", "misses", "corrupt", "node_errors", "sets")
    return {f: getattr(after, f) - getattr(before, f) for f in fields}


# -- round trips and expiry -----------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, MiB - 1, MiB + 1, 10_000_000])
async def test_round_trip(cache: ChunkedCache, memcached_nodes: list[MemcachedServer], size: int) -> None:
    key = f"round-trip/{size}"
    value = payload(size, seed=size)
    assert await cache.set(key, value, ttl_s=60)
    assert await cache.get(key) == value
    assert len(holders(memcached_nodes, key)) == 2
    assert len(stored_meta(holders(memcached_nodes, key)[0], key).chunks) == -(-size // CHUNK_BYTES)
    assert cache.stats == CacheStats(hits=1, misses=0, corrupt=0, node_errors=0, sets=1, down_nodes=())


async def test_absent_key_is_a_miss(cache: ChunkedCache) -> None:
    assert await cache.get("never-stored") is None
    assert cache.stats.misses == 1


async def test_rewrite_replaces_the_whole_object(cache: ChunkedCache) -> None:
    assert await cache.set("rewrite", payload(3 * CHUNK_BYTES, seed=1), ttl_s=60)
    assert await cache.set("rewrite", payload(CHUNK_BYTES + 5, seed=2), ttl_s=60)
    assert await cache.get("rewrite") == payload(CHUNK_BYTES + 5, seed=2)


async def test_delete_removes_metadata_and_chunks(
    cache: ChunkedCache, memcached_nodes: list[MemcachedServer]
) -> None:
    assert await cache.set("delete-me", payload(2 * CHUNK_BYTES), ttl_s=60)
    node = holders(memcached_nodes, "delete-me")[0]
    keys = chunking.chunk_keys(chunking.cache_key("delete-me"), stored_meta(node, "delete-me"))
    await cache.delete("delete-me")
    assert await cache.get("delete-me") is None
    assert holders(memcached_nodes, "delete-me") == []
    for each in memcached_nodes:
        with raw(each) as client:
            assert client.get_many(keys) == {}


async def test_ttl_expiry(cache: ChunkedCache) -> None:
    assert await cache.set("short-lived", payload(CHUNK_BYTES + 1), ttl_s=2)
    assert await cache.get("short-lived") is not None
    deadline = time.monotonic() + 5  # memcached's clock ticks once a second
    while await cache.get("short-lived") is not None:
        assert time.monotonic() < deadline, "still cached 5 s after a 2 s TTL"
        await asyncio.sleep(0.2)


async def test_ttl_over_30_days_is_sent_as_an_absolute_time(cache: ChunkedCache) -> None:
    # Sent as is, memcached would read 40 days as a Unix time in 1970: expired on arrival.
    assert await cache.set("long-lived", b"kept", ttl_s=40 * 86_400)
    assert await cache.get("long-lived") == b"kept"


async def test_ttl_below_one_second_stores_nothing(cache: ChunkedCache) -> None:
    assert not await cache.set("no-ttl", b"x", ttl_s=0)
    assert await cache.get("no-ttl") is None


# -- damaged and half-written objects ---------------------------------------------------------------


async def test_corrupt_chunk_falls_over_to_the_replica(
    cache: ChunkedCache, memcached_nodes: list[MemcachedServer]
) -> None:
    value = payload(3 * CHUNK_BYTES - 7)
    corrupt_reads = 0
    for damaged in (0, 1):  # one round per holder: exactly one of them is the primary
        assert await cache.set("damaged", value, ttl_s=60)
        flip_byte(holders(memcached_nodes, "damaged")[damaged], "damaged", chunk=1)
        before = cache.stats
        assert await cache.get("damaged") == value
        corrupt_reads += cache.stats.corrupt - before.corrupt
    assert corrupt_reads == 1
    assert cache.stats.hits == 2
    assert cache.stats.misses == 0


async def test_corrupt_on_every_replica_is_a_miss(
    cache: ChunkedCache, memcached_nodes: list[MemcachedServer]
) -> None:
    assert await cache.set("damaged-twice", payload(2 * CHUNK_BYTES + 1), ttl_s=60)
    for node in holders(memcached_nodes, "damaged-twice"):
        flip_byte(node, "damaged-twice", chunk=2)
    before = cache.stats
    assert await cache.get("damaged-twice") is None
    assert delta(cache.stats, before) == dict(hits=0, misses=1, corrupt=2, node_errors=0, sets=0)


async def test_missing_chunk_or_bad_metadata_is_a_miss(
    cache: ChunkedCache, memcached_nodes: list[MemcachedServer]
) -> None:
    assert await cache.set("evicted", payload(2 * CHUNK_BYTES), ttl_s=60)
    assert await cache.set("garbled", payload(2 * CHUNK_BYTES), ttl_s=60)
    for node in holders(memcached_nodes, "evicted"):
        chunk_key = chunking.chunk_keys(chunking.cache_key("evicted"), stored_meta(node, "evicted"))[0]
        with raw(node) as client:
            assert client.delete(chunk_key)
    for node in holders(memcached_nodes, "garbled"):
        with raw(node) as client:
            assert client.set(chunking.meta_key(chunking.cache_key("garbled")), b"not metadata")
    assert await cache.get("evicted") is None
    assert await cache.get("garbled") is None
    assert cache.stats.corrupt == 4


async def test_chunks_without_metadata_are_a_miss(
    cache: ChunkedCache, memcached_nodes: list[MemcachedServer]
) -> None:
    """A writer that died after its chunks, before its metadata: nothing is visible."""
    hashed = chunking.cache_key("dead-writer")
    meta, chunks = chunking.split(payload(2 * CHUNK_BYTES), chunk_bytes=CHUNK_BYTES, object_version=42)
    for node in memcached_nodes:
        with raw(node) as client:
            assert client.set_many(dict(zip(chunking.chunk_keys(hashed, meta), chunks, strict=True))) == []
    assert await cache.get("dead-writer") is None
    assert cache.stats.corrupt == 0  # no metadata: simply absent


async def test_rewrite_becomes_visible_only_when_its_metadata_is_written(
    cache: ChunkedCache, memcached_nodes: list[MemcachedServer]
) -> None:
    old, new = payload(2 * CHUNK_BYTES, seed=1), payload(2 * CHUNK_BYTES, seed=2)
    assert await cache.set("flip", old, ttl_s=60)
    hashed = chunking.cache_key("flip")
    meta, chunks = chunking.split(new, chunk_bytes=CHUNK_BYTES, object_version=43)
    for node in memcached_nodes:  # the new version's chunks, as a writer that has not flipped yet
        with raw(node) as client:
            client.set_many(dict(zip(chunking.chunk_keys(hashed, meta), chunks, strict=True)))
    assert await cache.get("flip") == old
    for node in memcached_nodes:  # the flip
        with raw(node) as client:
            client.set(chunking.meta_key(hashed), chunking.encode_meta(meta))
    assert await cache.get("flip") == new


async def test_concurrent_rewrites_never_mix(cache: ChunkedCache) -> None:
    versions = [payload(3 * CHUNK_BYTES, seed=s) for s in (1, 2)]
    assert await cache.set("contended", versions[0], ttl_s=60)
    writes = [cache.set("contended", versions[i % 2], ttl_s=60) for i in range(12)]
    reads = [cache.get("contended") for _ in range(24)]
    results = await asyncio.gather(*writes, *reads)
    assert all(results[:12])
    assert all(got in versions for got in results[12:])
    assert cache.stats.corrupt == 0


# -- failed nodes -----------------------------------------------------------------------------------


async def timed_get(cache: ChunkedCache, key: str) -> bytes | None:
    began = time.monotonic()
    value = await cache.get(key)
    assert time.monotonic() - began < HANG_BOUND_S
    return value


async def test_killed_node_is_skipped_then_used_again_after_restart(
    cache: ChunkedCache, memcached_nodes: list[MemcachedServer], clock: ManualClock
) -> None:
    values = {f"survivor/{i}": payload(CHUNK_BYTES + i, seed=i) for i in range(30)}
    for key, value in values.items():
        assert await cache.set(key, value, ttl_s=60)
    dead = holders(memcached_nodes, "survivor/0")[0]
    address = f"{dead.host}:{dead.port}"
    dead.kill()

    for key, value in values.items():  # every read is served by the other replica
        assert await timed_get(cache, key) == value
    assert cache.stats.node_errors == 1  # the first call to it failed; the rest skipped it
    assert cache.stats.down_nodes == (address,)
    for i in range(10):  # writes go on with one copy
        assert await cache.set(f"while-down/{i}", b"w%d" % i, ttl_s=60)
        assert await timed_get(cache, f"while-down/{i}") == b"w%d" % i

    dead.start()  # back, empty; still skipped until its retry time has come
    assert await cache.set("while-down/again", b"x", ttl_s=60)
    assert item_count(dead) == 0
    clock.now += RETRY_DOWN_AFTER_S
    for i in range(10):
        assert await cache.set(f"after-restart/{i}", b"r%d" % i, ttl_s=60)
    assert item_count(dead) > 0
    assert not cache.stats.down_nodes
    for key, value in values.items():  # keys whose primary came back empty: read from the replica
        assert await timed_get(cache, key) == value
    assert cache.stats.node_errors == 1
    assert cache.stats.misses == 0


async def test_stalled_node_times_out_once_and_is_skipped(
    cache: ChunkedCache, memcached_nodes: list[MemcachedServer], clock: ManualClock
) -> None:
    """A node that accepts connections but never answers (SIGSTOP): one timeout, then skipped."""
    values = {f"stalled/{i}": payload(1000 + i, seed=i) for i in range(20)}
    for key, value in values.items():
        assert await cache.set(key, value, ttl_s=60)
    stalled = holders(memcached_nodes, "stalled/0")[0]
    assert stalled.pid is not None
    os.kill(stalled.pid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        for key, value in values.items():
            assert await timed_get(cache, key) == value
            assert await cache.set(key, value, ttl_s=60)
        assert time.monotonic() - began < HANG_BOUND_S
        assert cache.stats.node_errors == 1
        assert cache.stats.down_nodes == (f"{stalled.host}:{stalled.port}",)
    finally:
        os.kill(stalled.pid, signal.SIGCONT)
    clock.now += RETRY_DOWN_AFTER_S
    for key, value in values.items():
        assert await cache.set(key, value, ttl_s=60)
        assert await cache.get(key) == value
    assert not cache.stats.down_nodes
    assert len(holders(memcached_nodes, "stalled/0")) == 2


async def test_no_node_reachable_is_a_miss_without_waiting(clock: ManualClock) -> None:
    nowhere = [f"127.0.0.1:{port}" for port in free_ports(2)]  # nothing listens there
    cache = ChunkedCache(nowhere, replicas=2, clock=clock)
    try:
        assert not await cache.set("k", b"v", ttl_s=60)
        assert await timed_get(cache, "k") is None
        assert await timed_get(cache, "k") is None
        assert cache.stats == CacheStats(
            hits=0, misses=2, corrupt=0, node_errors=2, sets=0, down_nodes=tuple(nowhere)
        )
    finally:
        await cache.close()


async def test_one_node_caps_replicas(memcached_addresses: list[str]) -> None:
    cache = ChunkedCache(memcached_addresses[:1], replicas=2)
    try:
        assert await cache.set("single", b"one copy", ttl_s=60)
        assert await cache.get("single") == b"one copy"
    finally:
        await cache.close()


async def test_closed_cache_misses(memcached_addresses: list[str]) -> None:
    cache = ChunkedCache(memcached_addresses)
    assert await cache.set("before-close", b"v", ttl_s=60)
    await cache.close()
    assert await cache.get("before-close") is None
    assert not await cache.set("after-close", b"v", ttl_s=60)
    await cache.delete("before-close")
