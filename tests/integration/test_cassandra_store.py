"""CassandraStore against a real Cassandra 5.0 node (the session's, from conftest.py): round trips,
chunking, TTLs, the commit rule, restart and cross-process refresh, timeline buckets, deletes, outages."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from functools import partial

import pytest
from cassandra.cluster import Session

from services.shared.channels import ChannelConfig, TrackRecord
from services.shared.errors import StoreError, StoreUnavailable
from services.shared.store import cassandra_schema as schema
from services.shared.store.base import CommitResult, Store
from services.shared.store.cassandra import CassandraStore
from services.shared.store.codec import to_json
from services.shared.timeline import FragmentEntry
from tests.integration.conftest import StoreFactory
from tests.integration.servers import CassandraServer
from tests.shared.entries import INFO

HOUR_MS = 3_600_000
SECOND = 90000  # ticks


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def entry(t: int, *, size: int, ingest_ms: int | None = None, filler: bool = False) -> FragmentEntry:
    return FragmentEntry(
        decode_time=t,
        duration_ticks=SECOND,
        sample_count=25,
        independent=True,
        segment_number=t // (2 * SECOND),
        segment_start=t - t % (2 * SECOND),
        part_number=(t // SECOND) % 2,
        size=size,
        ingest_time_ms=now_ms() if ingest_ms is None else ingest_ms,
        filler=filler,
    )


async def commit(
    store: CassandraStore,
    t: int,
    data: bytes,
    *,
    ttl_s: int = 600,
    ingest_ms: int | None = None,
    filler: bool = False,
) -> CommitResult:
    fragment = entry(t, size=len(data), ingest_ms=ingest_ms, filler=filler)
    return await store.commit_fragment("ch", "v", fragment, data, ttl_s=ttl_s)


async def eventually(check: Callable[[], Awaitable[bool]], *, within_s: float, what: str) -> None:
    """Poll ``check`` until it holds; fail after ``within_s``."""
    deadline = time.monotonic() + within_s
    while not await check():
        assert time.monotonic() < deadline, f"{what}: not after {within_s} s"
        await asyncio.sleep(0.2)


async def add_track(store: CassandraStore) -> None:
    """Track "v" of channel "ch": a restart loads the timelines of the tracks it finds."""
    await store.put_track(TrackRecord(channel="ch", name="v", info=INFO, created_ms=1), b"INIT", ttl_s=600)


def chunk_rows(cql: Session, store: CassandraStore, t: int) -> list[tuple[int, int]]:
    rows = cql.execute(
        f"SELECT generation, chunk FROM {store.keyspace}.objects WHERE channel = %s AND track = %s"
        " AND decode_time = %s",
        ("ch", "v", t),
    )
    return [(r.generation, r.chunk) for r in rows if r.chunk is not None]


# -- pure helpers ---------------------------------------------------------------------------------


def test_buckets_cover_the_range_newest_first() -> None:
    assert schema.bucket_of(HOUR_MS - 1) == 0
    assert schema.bucket_of(HOUR_MS) == 1
    assert schema.buckets_covering(HOUR_MS - 1, 3 * HOUR_MS) == [3, 2, 1, 0]
    assert schema.buckets_covering(5, 10) == [0]


def test_names_and_replication_are_checked_before_they_reach_cql() -> None:
    with pytest.raises(ValueError, match="keyspace"):
        schema.keyspace_name("bad-name")
    with pytest.raises(ValueError, match="replication"):
        schema.keyspace_ddl("ks", {"class": "SimpleStrategy'; DROP", "replication_factor": 1})
    ddl = schema.keyspace_ddl("ks", {"class": "NetworkTopologyStrategy", "dc1": 3, "dc2": 3})
    assert "{'class': 'NetworkTopologyStrategy', 'dc1': '3', 'dc2': '3'}" in ddl


def test_sync_reads_are_prepared_under_names_of_their_own() -> None:
    assert not set(schema.statements("ks")) & set(schema.sync_statements("ks"))  # the merge overrides none


def test_a_filler_and_its_replacement_in_two_buckets_load_as_the_replacement() -> None:
    filler, real, next_one = entry(0, size=1, filler=True), entry(0, size=2), entry(SECOND, size=3)
    rows = [(to_json(next_one), 50), (to_json(real), 60), (to_json(filler), 40)]
    assert schema.merge_entries(rows) == [(real, 60), (next_one, 50)]
    assert schema.merge_entries(list(reversed(rows))) == [(real, 60), (next_one, 50)]


# -- round trips ----------------------------------------------------------------------------------


async def test_fragments_from_0_bytes_to_10_mb_round_trip_in_chunks(
    cassandra_stores: StoreFactory, cql: Session
) -> None:
    store = await cassandra_stores()
    checked: Store = store  # the Protocol, checked by mypy
    chunk = store.chunk_bytes
    sizes = [0, 1, chunk - 1, chunk, chunk + 1, 500 * 1024, 10 * 1024 * 1024]
    payloads = {i * SECOND: os.urandom(size) for i, size in enumerate(sizes)}
    for t, data in payloads.items():
        assert await commit(store, t, data) is CommitResult.STORED
    for t, data in payloads.items():
        assert await checked.get_fragment("ch", "v", t) == data
        assert len(chunk_rows(cql, store, t)) == -(-len(data) // chunk)
    assert len(chunk_rows(cql, store, 6 * SECOND)) == 40  # 10 MiB in 256 KiB chunks
    assert await store.get_fragment("ch", "v", 99 * SECOND) is None


async def test_config_init_epoch_and_meta_round_trip(cassandra_stores: StoreFactory) -> None:
    store, other = await cassandra_stores(), await cassandra_stores()
    config = ChannelConfig(name="ch", dvr_window_s=60, segment_ttl_s=120)
    await store.put_channel(config)
    assert await store.get_channel("ch") == config
    assert await store.list_channels() == [config]
    record = TrackRecord(channel="ch", name="v", info=INFO, created_ms=5)
    await store.put_track(record, b"INIT", ttl_s=600)
    assert await store.get_tracks("ch") == [record]
    assert await store.get_init("ch", "v") == b"INIT"
    assert await store.get_init("ch", "nope") is None
    # Two processes race for the first commit: one epoch wins, both see it.
    first, second = await asyncio.gather(
        store.set_epoch_if_absent("ch", 1234), other.set_epoch_if_absent("ch", 9999)
    )
    assert first == second
    assert await store.set_epoch_if_absent("ch", 5) == first
    assert await other.get_epoch("ch") == first
    await store.put_meta("ch", "mpd", b"<MPD/>", ttl_s=600)
    assert await store.get_meta("ch", "mpd") == b"<MPD/>"
    assert await store.get_meta("ch", "other") is None
    await store.ping()


async def test_meta_and_fragments_expire_with_their_ttl(cassandra_stores: StoreFactory) -> None:
    store = await cassandra_stores()
    await store.put_meta("ch", "short", b"x", ttl_s=2)
    await commit(store, 0, b"short-lived fragment", ttl_s=2)
    assert await store.get_fragment("ch", "v", 0) == b"short-lived fragment"

    async def gone() -> bool:
        return await store.get_meta("ch", "short") is None and await store.get_fragment("ch", "v", 0) is None

    await eventually(gone, within_s=10, what="TTL 2 s")
    # Cassandra dropped the rows; the sweep drops the in-memory entry once its TTL ran out here too
    # (Cassandra counts TTLs in whole seconds, so its rows may go up to a second earlier).
    swept: list[int] = []

    async def trimmed() -> bool:
        swept.append(await store.sweep())
        return len(await store.get_timeline("ch", "v")) == 0

    await eventually(trimmed, within_s=3, what="sweep")
    assert sum(swept) == 1


async def test_duplicates_are_not_stored_and_filler_is_replaced(
    cassandra_stores: StoreFactory, cql: Session
) -> None:
    store = await cassandra_stores(chunk_bytes=4)
    await add_track(store)
    assert await commit(store, 0, b"first") is CommitResult.STORED
    assert await commit(store, 0, b"second") is CommitResult.DUPLICATE
    assert await store.get_fragment("ch", "v", 0) == b"first"
    # Filler of 3 chunks replaced by a real fragment of 2: new generation, old rows ignored.
    filler_ms = now_ms()
    assert (
        await commit(store, SECOND, b"slate-slate", filler=True, ingest_ms=filler_ms) is CommitResult.STORED
    )
    real = await commit(store, SECOND, b"realreal", ingest_ms=filler_ms + HOUR_MS)
    assert real is CommitResult.REPLACED_FILLER
    assert await commit(store, SECOND, b"again!!!") is CommitResult.DUPLICATE
    assert await store.get_fragment("ch", "v", SECOND) == b"realreal"
    assert len(chunk_rows(cql, store, SECOND)) == 5  # 3 filler + 2 real, until their TTL
    found = (await store.get_timeline("ch", "v")).find(SECOND)
    assert found is not None and not found.filler
    reloaded = await cassandra_stores()
    assert [e.filler for e in (await reloaded.get_timeline("ch", "v")).entries()] == [False, False]
    assert await reloaded.get_fragment("ch", "v", SECOND) == b"realreal"


async def test_damaged_objects_are_errors_not_misses(cassandra_stores: StoreFactory, cql: Session) -> None:
    store = await cassandra_stores(chunk_bytes=4)
    await commit(store, 0, b"0123456789")
    await commit(store, SECOND, b"abcdefghij")
    ks = store.keyspace
    generation, _ = chunk_rows(cql, store, 0)[0]
    cql.execute(
        f"DELETE FROM {ks}.objects WHERE channel = 'ch' AND track = 'v' AND decode_time = 0"
        " AND generation = %s AND chunk = 1",
        (generation,),
    )
    with pytest.raises(StoreError, match="1 of 3 chunks missing"):
        await store.get_fragment("ch", "v", 0)
    generation, _ = chunk_rows(cql, store, SECOND)[0]
    cql.execute(
        f"UPDATE {ks}.objects SET data = 0x41424344 WHERE channel = 'ch' AND track = 'v'"
        " AND decode_time = %s AND generation = %s AND chunk = 0",
        (SECOND, generation),
    )
    with pytest.raises(StoreError, match="CRC32"):
        await store.get_fragment("ch", "v", SECOND)


# -- the commit rule ------------------------------------------------------------------------------


async def test_bytes_without_their_entry_are_never_visible(
    cassandra_stores: StoreFactory, cql: Session
) -> None:
    """A commit cut off between bytes and entry (here: cancelled while chunks are being written, and
    a process that wrote only the bytes) leaves nothing visible, now or after a restart."""
    store = await cassandra_stores()
    await add_track(store)
    big = os.urandom(10 * 1024 * 1024)
    task = asyncio.create_task(commit(store, 0, big))
    deadline = time.monotonic() + 10
    while not chunk_rows(cql, store, 0):
        assert time.monotonic() < deadline and not task.done(), "no chunk written"
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await store.get_timeline("ch", "v")).find(0) is None

    await store.put_fragment_bytes("ch", "v", SECOND, b"durable, not visible", ttl_s=600)
    await store.close()  # "crash" before put_timeline_entry

    again = await cassandra_stores()
    assert len(await again.get_timeline("ch", "v")) == 0
    assert await again.refresh_timeline("ch", "v") == 0
    assert await again.get_fragment("ch", "v", 0) in (None, big)  # None unless the header made it
    # A retry commits normally: the writes are idempotent and the half-written rows are ignored.
    assert await commit(again, 0, big) is CommitResult.STORED
    assert await again.get_fragment("ch", "v", 0) == big


# -- restart, other processes, buckets ------------------------------------------------------------


async def test_a_new_store_reloads_everything(cassandra_stores: StoreFactory) -> None:
    store = await cassandra_stores()
    config = ChannelConfig(name="ch", segment_ttl_s=600)
    record = TrackRecord(channel="ch", name="v", info=INFO, created_ms=7)
    await store.put_channel(config)
    await store.put_track(record, b"INIT", ttl_s=600)
    await store.set_epoch_if_absent("ch", 42)
    for i in range(5):
        await commit(store, i * SECOND, b"frag%d" % i)
    await store.close()

    again = await cassandra_stores()
    assert await again.list_channels() == [config]
    assert await again.get_tracks("ch") == [record]
    assert await again.get_epoch("ch") == 42
    assert (await again.get_timeline("ch", "v")).entries() == (await store.get_timeline("ch", "v")).entries()
    assert await again.get_fragment("ch", "v", 4 * SECOND) == b"frag4"


async def test_refresh_timeline_picks_up_another_processes_commits(cassandra_stores: StoreFactory) -> None:
    writer, reader = await cassandra_stores(), await cassandra_stores()
    for i in range(3):
        await commit(writer, i * SECOND, b"a%d" % i)
    assert await reader.refresh_timeline("ch", "v") == 3
    for i in range(3, 5):
        await commit(writer, i * SECOND, b"b%d" % i)
    assert await reader.refresh_timeline("ch", "v") == 2
    assert await reader.refresh_timeline("ch", "v") == 0
    assert (await reader.get_timeline("ch", "v")).entries() == (
        await writer.get_timeline("ch", "v")
    ).entries()


async def test_timeline_buckets_across_an_hour_boundary(cassandra_stores: StoreFactory, cql: Session) -> None:
    boundary = 500_000 * HOUR_MS  # an hour boundary in 2027
    clock = [boundary - 1_500]
    writer = await cassandra_stores(clock_ms=lambda: clock[0])
    await writer.put_channel(ChannelConfig(name="ch", segment_ttl_s=3900))
    await add_track(writer)
    ingest_times = [boundary - 1_000, boundary - 1, boundary, boundary + 1_000]
    for i, ingest_ms in enumerate(ingest_times):
        clock[0] = ingest_ms
        await commit(writer, i * SECOND, b"x%d" % i, ingest_ms=ingest_ms)
    rows = cql.execute(f"SELECT bucket, decode_time FROM {writer.keyspace}.timeline")
    by_bucket = sorted((r.bucket - boundary // HOUR_MS, r.decode_time // SECOND) for r in rows)
    assert by_bucket == [(-1, 0), (-1, 1), (0, 2), (0, 3)]

    async def loaded_at(clock_ms: int) -> list[int]:
        store = await cassandra_stores(clock_ms=lambda: clock_ms)
        return [e.decode_time // SECOND for e in (await store.get_timeline("ch", "v")).entries()]

    # A restart reads the buckets that the 65 min segment TTL covers, and only those.
    assert await loaded_at(boundary + 5_000) == [0, 1, 2, 3]
    assert await loaded_at(boundary + 2 * HOUR_MS) == [2, 3]
    assert await loaded_at(boundary + 3 * HOUR_MS) == []

    # Another process goes on writing in the next hour: refresh crosses the boundary.
    reader = await cassandra_stores(clock_ms=lambda: clock[0])
    clock[0] = boundary + HOUR_MS + 10
    await commit(writer, 4 * SECOND, b"x4", ingest_ms=clock[0])
    assert await reader.refresh_timeline("ch", "v") == 1
    assert len(await reader.get_timeline("ch", "v")) == 5


# -- deletes --------------------------------------------------------------------------------------


async def test_delete_track_and_channel(cassandra_stores: StoreFactory) -> None:
    store = await cassandra_stores()
    await store.put_channel(ChannelConfig(name="ch"))
    await store.set_epoch_if_absent("ch", 1)
    await store.put_meta("ch", "k", b"v", ttl_s=600)
    for name in ("v", "a"):
        await store.put_track(TrackRecord(channel="ch", name=name, info=INFO, created_ms=1), b"I", ttl_s=600)
        await store.commit_fragment("ch", name, entry(0, size=1), b"F", ttl_s=600)

    await store.delete_track("ch", "a")
    assert [r.name for r in await store.get_tracks("ch")] == ["v"]
    assert await store.get_init("ch", "a") is None
    assert await store.get_fragment("ch", "a", 0) is None
    assert len(await store.get_timeline("ch", "a")) == 0
    assert [r.name for r in await (await cassandra_stores()).get_tracks("ch")] == ["v"]

    # Another process adds a track after this one loaded: the channel delete takes it too.
    other = await cassandra_stores()
    await other.put_track(TrackRecord(channel="ch", name="x", info=INFO, created_ms=1), b"I", ttl_s=600)
    await other.commit_fragment("ch", "x", entry(0, size=1), b"X", ttl_s=600)

    await store.delete_channel("ch")
    assert await store.get_channel("ch") is None
    assert await store.get_fragment("ch", "x", 0) is None
    assert await store.get_epoch("ch") is None
    assert await store.get_meta("ch", "k") is None
    assert await store.get_fragment("ch", "v", 0) is None
    assert await store.get_init("ch", "v") is None
    again = await cassandra_stores()
    assert await again.list_channels() == []
    assert await again.get_tracks("ch") == []
    assert await again.get_epoch("ch") is None
    assert len(await again.get_timeline("ch", "v")) == 0
    assert await again.refresh_timeline("ch", "x") == 0
    assert await again.set_epoch_if_absent("ch", 2) == 2  # a new channel of that name starts over


# -- outage ---------------------------------------------------------------------------------------


async def test_store_unavailable_while_cassandra_is_down(
    cassandra_stores: StoreFactory, cassandra_server: CassandraServer
) -> None:
    store = await cassandra_stores(request_timeout_s=1.0)
    await add_track(store)
    assert await commit(store, 0, b"before") is CommitResult.STORED
    await store.put_fragment_bytes("ch", "v", SECOND, b"bytes made it", ttl_s=600)
    await asyncio.to_thread(cassandra_server.stop)
    try:
        with pytest.raises(StoreUnavailable):
            await store.put_timeline_entry("ch", "v", entry(SECOND, size=13), ttl_s=600)
        assert [e.decode_time for e in (await store.get_timeline("ch", "v")).entries()] == [0]
        calls: list[Callable[[], Awaitable[object]]] = [
            store.ping,
            partial(store.get_fragment, "ch", "v", 0),
            partial(commit, store, 2 * SECOND, b"during"),
            partial(store.put_channel, ChannelConfig(name="ch")),
        ]
        for call in calls:
            with pytest.raises(StoreUnavailable):
                await call()
        fresh = CassandraStore(contact_points=[cassandra_server.contact_point], port=cassandra_server.port)
        with pytest.raises(StoreUnavailable):
            await fresh.open()
    finally:
        await asyncio.to_thread(cassandra_server.start)

    async def back() -> bool:
        try:
            await store.ping()
        except StoreUnavailable:
            return False
        return True

    await eventually(back, within_s=30, what="driver reconnect")
    assert await commit(store, SECOND, b"bytes made it") is CommitResult.STORED  # the retry
    assert await store.get_fragment("ch", "v", 0) == b"before"
    assert (await (await cassandra_stores()).get_timeline("ch", "v")).find(SECOND) is not None


# -- timing ---------------------------------------------------------------------------------------


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
