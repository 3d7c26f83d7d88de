"""WriteThroughStore on real servers: Cassandra (the session's node) and three memcached daemons behind
the real ChunkedCache. Commit order, read-through with single flight, versioned keys, cache outages."""

from __future__ import annotations

import asyncio
import os
import time

from services.shared.channels import ChannelConfig, TrackRecord
from services.shared.media.models import TrackInfo
from services.shared.store.base import CommitResult, Store
from services.shared.store.write_through import fragment_key, init_key
from services.shared.timeline import FragmentEntry
from tests.integration.conftest import WriteThroughFactory
from tests.integration.servers import MemcachedServer
from tests.integration.test_memcache import flip_byte, holders

INFO = TrackInfo(
    track_id=1,
    handler="soun",
    sample_entry="mp4a",
    codec="mp4a.40.2",
    timescale=48000,
    decoder_config=b"\x11\x90",
    par=None,
)
SECOND = 48000


def entry(t: int, *, size: int, filler: bool = False) -> FragmentEntry:
    return FragmentEntry(
        decode_time=t,
        duration_ticks=SECOND,
        sample_count=47,
        independent=True,
        segment_number=t // (2 * SECOND),
        segment_start=t - t % (2 * SECOND),
        part_number=(t // SECOND) % 2,
        size=size,
        ingest_time_ms=time.time_ns() // 1_000_000,
        filler=filler,
    )


async def test_a_commit_is_durable_and_cached_before_it_is_visible(
    write_through_stores: WriteThroughFactory,
) -> None:
    store, cache = await write_through_stores()
    checked: Store = store  # the Protocol, checked by mypy
    data = os.urandom(1_500_000)  # chunked in both Cassandra and memcached
    fragment = entry(0, size=len(data))
    assert await checked.commit_fragment("ch", "a", fragment, data, ttl_s=600) is CommitResult.STORED
    assert (await store.get_timeline("ch", "a")).find(0) == fragment
    assert await cache.get(fragment_key("ch", "a", fragment)) == data
    assert await store.durable.get_fragment("ch", "a", 0) == data
    assert await store.commit_fragment("ch", "a", fragment, b"other", ttl_s=600) is CommitResult.DUPLICATE
    assert await store.get_fragment("ch", "a", 0) == data
    assert cache.stats.hits >= 2


async def test_concurrent_cold_reads_load_once_and_fill_the_cache(
    write_through_stores: WriteThroughFactory,
) -> None:
    store, cache = await write_through_stores()
    await store.put_channel(ChannelConfig(name="ch"))
    data = os.urandom(700_000)
    fragment = entry(SECOND, size=len(data))
    # Committed past the cache (as another process whose cache write failed would have).
    await store.durable.commit_fragment("ch", "a", fragment, data, ttl_s=600)
    results = await asyncio.gather(*(store.get_fragment("ch", "a", SECOND) for _ in range(20)))
    assert results == [data] * 20
    assert (cache.stats.misses, cache.stats.sets) == (1, 1)  # one flight: one miss, one backfill
    assert await store.get_fragment("ch", "a", SECOND) == data
    assert cache.stats.hits == 1
    assert await store.get_fragment("ch", "a", 99 * SECOND) is None  # not in the timeline


async def test_a_replaced_filler_and_a_resent_header_get_new_cache_keys(
    write_through_stores: WriteThroughFactory,
) -> None:
    store, cache = await write_through_stores()
    slate = entry(0, size=5, filler=True)
    await store.commit_fragment("ch", "a", slate, b"slate", ttl_s=600)
    assert await store.get_fragment("ch", "a", 0) == b"slate"
    real = entry(0, size=4)
    assert await store.commit_fragment("ch", "a", real, b"real", ttl_s=600) is CommitResult.REPLACED_FILLER
    assert fragment_key("ch", "a", real) != fragment_key("ch", "a", slate)
    assert await store.get_fragment("ch", "a", 0) == b"real"

    first = TrackRecord(channel="ch", name="a", info=INFO, created_ms=1)
    await store.put_track(first, b"INIT-1", ttl_s=600)
    assert await cache.get(init_key(first)) == b"INIT-1"
    assert await store.get_init("ch", "a") == b"INIT-1"
    resent = TrackRecord(channel="ch", name="a", info=INFO, created_ms=2)
    await store.put_track(resent, b"INIT-2", ttl_s=600)
    assert await store.get_init("ch", "a") == b"INIT-2"
    assert await store.get_init("ch", "nope") is None

    # A restarted process reads the same objects through the cache.
    again, again_cache = await write_through_stores()
    assert await again.get_init("ch", "a") == b"INIT-2"
    assert await again.get_fragment("ch", "a", 0) == b"real"
    assert again_cache.stats.hits == 2


async def test_commits_and_reads_carry_on_while_memcached_is_down(
    write_through_stores: WriteThroughFactory, memcached_nodes: list[MemcachedServer]
) -> None:
    store, cache = await write_through_stores()
    data = os.urandom(300_000)
    for node in memcached_nodes:
        node.kill()
    try:
        fragment = entry(0, size=len(data))
        assert await store.commit_fragment("ch", "a", fragment, data, ttl_s=600) is CommitResult.STORED
        assert (await store.get_timeline("ch", "a")).find(0) == fragment
        assert await store.get_fragment("ch", "a", 0) == data  # from Cassandra
        assert cache.stats.sets == 0
    finally:
        for node in memcached_nodes:
            node.start()
    await asyncio.sleep(0.3)  # past retry_down_after_s: the next request probes the nodes again
    assert await store.get_fragment("ch", "a", 0) == data  # backfilled
    assert await cache.get(fragment_key("ch", "a", fragment)) == data


async def test_a_chunk_corrupted_in_memcached_is_served_correctly_from_cassandra(
    write_through_stores: WriteThroughFactory, memcached_nodes: list[MemcachedServer]
) -> None:
    store, cache = await write_through_stores()
    data = os.urandom(700_000)  # two cache chunks
    e = entry(0, size=len(data))
    await store.commit_fragment("ch", "v", e, data, ttl_s=60)
    key = fragment_key("ch", "v", e)
    for node in holders(memcached_nodes, key):  # every cached copy damaged, one byte each
        flip_byte(node, key, chunk=1)
    before = cache.stats
    assert await store.get_fragment("ch", "v", 0) == data  # from Cassandra
    assert cache.stats.corrupt - before.corrupt == 2 and cache.stats.misses - before.misses == 1
    assert await cache.get(key) == data  # and the cache was backfilled with good bytes
