"""Several processes on one keyspace (the session's Cassandra node, from conftest.py), each a store of
its own: announcements over real UDP on loopback, refresh when a datagram is lost, entries committed
out of order, channels discovered on demand, and ingest nodes taking turns on one track."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import pytest

from services.node import Node, create_app
from services.settings import Settings
from services.shared.announce import AnnounceSender, listen
from services.shared.channels import ChannelConfig, TrackRecord
from services.shared.follow import AnnouncingSignal, FollowedStore, Follower
from services.shared.media.synthetic import make_fragment, make_header
from services.shared.signal import LocalSignal
from services.shared.store.cassandra import CassandraStore
from services.shared.store.index import Learned
from services.shared.store.write_through import WriteThroughStore
from services.shared.timeline import FragmentEntry
from tests.asgi import call
from tests.integration.conftest import StoreFactory
from tests.integration.servers import CassandraServer
from tests.shared.entries import INFO

SECOND = 90000  # ticks


def entry(n: int) -> FragmentEntry:
    """The n-th 1 s fragment of a track with 2 s segments."""
    return FragmentEntry(
        decode_time=n * SECOND,
        duration_ticks=SECOND,
        sample_count=25,
        independent=True,
        segment_number=n // 2,
        segment_start=(n - n % 2) * SECOND,
        part_number=n % 2,
        size=2,
        ingest_time_ms=time.time_ns() // 1_000_000,
    )


async def commit(store: CassandraStore, n: int, signal: AnnouncingSignal | None = None) -> FragmentEntry:
    fragment = entry(n)
    await store.commit_fragment("ch", "v", fragment, b"f%d" % n, ttl_s=600)
    if signal is not None:
        signal.committed("ch", "v", fragment)
    return fragment


async def times(store: CassandraStore, channel: str = "ch") -> list[int]:
    return [e.decode_time // SECOND for e in (await store.get_timeline(channel, "v")).entries()]


async def eventually(check: Callable[[], Awaitable[bool]], *, within_s: float, what: str) -> float:
    """Poll ``check`` until it holds; how long that took. Fails after ``within_s``."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < within_s, f"{what}: not after {within_s} s"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def setup_channel(store: CassandraStore, channel: str = "ch") -> None:
    await store.put_channel(ChannelConfig(name=channel, segment_ttl_s=600))
    await store.put_track(TrackRecord(channel=channel, name="v", info=INFO, created_ms=1), b"INIT", ttl_s=600)
    await store.set_epoch_if_absent(channel, 1_000)


@dataclasses.dataclass
class Pair:
    """A writing process that announces to a following process."""

    writer: CassandraStore
    signal: AnnouncingSignal
    reader: CassandraStore
    local: LocalSignal
    follower: Follower


@contextlib.asynccontextmanager
async def announcing(
    writer: CassandraStore, reader: CassandraStore, *, tick_s: float = 0.2
) -> AsyncIterator[Pair]:
    local = LocalSignal()
    follower = Follower(reader, local, sender=2, tick_s=tick_s)
    endpoint = await listen("127.0.0.1", 0, follower.handle)
    sender = AnnounceSender([f"127.0.0.1:{endpoint.port}"], sender=1)
    await sender.open()
    try:
        yield Pair(writer, AnnouncingSignal(LocalSignal(), sender), reader, local, follower)
    finally:
        await follower.close()
        endpoint.close()
        sender.close()


# announcements and their losses -------------------------------------------------------------------


async def test_an_announced_commit_is_learned_without_a_read(cassandra_stores: StoreFactory) -> None:
    writer = await cassandra_stores()
    await setup_channel(writer)
    await commit(writer, 0)
    reader = await cassandra_stores()  # loads the channel with entry 0
    async with announcing(writer, reader) as pair:
        woke = asyncio.create_task(pair.local.wait("ch", 5))
        await asyncio.sleep(0)
        await commit(writer, 1, pair.signal)
        assert await woke
        assert await times(reader) == [0, 1]
        assert (pair.follower.applied, pair.follower.reloads) == (1, 0)


async def test_a_dropped_datagram_is_made_up_for(cassandra_stores: StoreFactory) -> None:
    writer = await cassandra_stores()
    await setup_channel(writer)
    await commit(writer, 0)
    reader = await cassandra_stores()
    async with announcing(writer, reader) as pair:
        await commit(writer, 1)  # its datagram is "lost"
        await commit(writer, 2, pair.signal)  # shows the gap: the track is reloaded at once

        async def caught_up(n: int) -> bool:
            return await times(reader) == list(range(n + 1))

        await eventually(lambda: caught_up(2), within_s=5, what="reload after a gap")
        assert pair.follower.reloads == 1

        # The last datagram of a burst lost: nothing shows a gap; the safety net refreshes requested
        # channels every tick (0.2 s here), so the entry arrives within about two ticks.
        pair.follower.touch("ch")
        pair.follower.start()
        await asyncio.sleep(0.3)  # let a tick pass, as in a running packager
        await commit(writer, 3)
        took = await eventually(lambda: caught_up(3), within_s=5, what="safety-net refresh")
        assert took < 1.0


async def test_changes_are_announced_and_reloaded(cassandra_stores: StoreFactory) -> None:
    writer = await cassandra_stores()
    await setup_channel(writer)
    reader = await cassandra_stores()
    async with announcing(writer, reader) as pair:
        await writer.put_channel(ChannelConfig(name="ch", segment_duration_ms=4000))
        pair.signal.changed("ch", None)

        async def config_is(duration_ms: int) -> bool:
            config = await reader.get_channel("ch")
            return config is not None and config.segment_duration_ms == duration_ms

        await eventually(lambda: config_is(4000), within_s=5, what="config change")

        resent = TrackRecord(channel="ch", name="v", info=INFO, created_ms=2)
        await writer.put_track(resent, b"INIT2", ttl_s=600)
        audio = TrackRecord(
            channel="ch", name="a", info=dataclasses.replace(INFO, handler="soun"), created_ms=3
        )
        await writer.put_track(audio, b"INIT3", ttl_s=600)
        pair.signal.changed("ch", "a")

        async def tracks_are_new() -> bool:
            return await reader.get_tracks("ch") == [audio, resent]

        await eventually(tracks_are_new, within_s=5, what="track change")

        await writer.delete_channel("ch")
        pair.signal.changed("ch", None)

        async def gone() -> bool:
            return reader.known_tracks("ch") is None

        await eventually(gone, within_s=5, what="channel delete")


# out of order, discovery ------------------------------------------------------------------------


async def test_entries_committed_out_of_order_are_inserted(cassandra_stores: StoreFactory) -> None:
    first, second = await cassandra_stores(), await cassandra_stores()
    await setup_channel(first)
    await commit(first, 0)
    await commit(first, 1)
    await commit(second, 3)  # a second ingest node committed the later fragment first
    reader = await cassandra_stores()
    assert await times(reader) == [0, 1, 3]
    version = (await reader.get_timeline("ch", "v")).version
    late = await commit(first, 2)
    # Announced, it does not follow the last known entry (3): a reload, which inserts it.
    assert reader.learn_entry("ch", "v", late) is Learned.GAP
    assert await reader.refresh_timeline("ch", "v") == 1
    timeline = await reader.get_timeline("ch", "v")
    assert await times(reader) == [0, 1, 2, 3] and timeline.version > version
    assert [(s.number, len(s.fragments)) for s in timeline.segments()] == [(0, 2), (1, 2)]
    assert await reader.refresh_timeline("ch", "v") == 0
    # The writer that knew only 3 learns 0..2 the same way.
    assert await second.refresh_timeline("ch", "v") == 3
    assert await times(second) == [0, 1, 2, 3]


async def test_an_unknown_channel_is_discovered_on_demand(cassandra_stores: StoreFactory) -> None:
    reader = await cassandra_stores()  # opened before the channel exists
    writer = await cassandra_stores()
    await setup_channel(writer)
    for n in range(3):
        await commit(writer, n)
    config = await reader.get_channel("ch")
    assert config is not None and config.segment_ttl_s == 600
    assert await reader.get_epoch("ch") == 1_000
    assert [r.name for r in await reader.get_tracks("ch")] == ["v"]
    assert await times(reader) == [0, 1, 2]
    assert await reader.get_fragment("ch", "v", 2 * SECOND) == b"f2"


async def test_every_node_lists_every_channel(cassandra_stores: StoreFactory) -> None:
    """The control API's channel list is the cluster's, whichever node answers."""
    lister = await cassandra_stores()  # opened before the channels exist
    creator = await cassandra_stores()
    for name in ("b", "a"):
        await creator.put_channel(ChannelConfig(name=name))
    assert [c.name for c in await lister.list_channels()] == ["a", "b"]
    await creator.delete_channel("b")
    assert [c.name for c in await lister.list_channels()] == ["a"]


async def test_unknown_names_cost_one_lookup_per_second(
    cassandra_stores: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = await cassandra_stores()
    writer = await cassandra_stores()
    queries: list[object] = []
    execute = reader._cql.execute

    async def counted(*args: Any, **kwargs: Any) -> list[Any]:
        queries.append(args[0])
        return await execute(*args, **kwargs)

    monkeypatch.setattr(reader._cql, "execute", counted)
    results = await asyncio.gather(*(reader.get_channel("late") for _ in range(50)))
    assert results == [None] * 50
    assert len(queries) == 3  # one discovery (config, epoch, tracks), shared by all 50
    assert await reader.get_channel("late") is None and len(queries) == 3  # answered from the cache

    await setup_channel(writer, "late")
    assert await reader.get_channel("late") is None  # still cached: up to a second late
    await asyncio.sleep(1.05)
    assert await reader.get_channel("late") is not None

    # An announcement for a channel that was not there a moment ago drops that cached answer.
    assert await reader.get_channel("later") is None
    await setup_channel(writer, "later")
    announced = await writer.commit_fragment("later", "v", entry(0), b"x", ttl_s=600)
    assert announced.value == "stored"
    assert reader.learn_entry("later", "v", entry(0)) is Learned.UNKNOWN_CHANNEL
    assert await reader.get_channel("later") is not None
    assert await times(reader, "later") == [0]


# ingest nodes taking turns --------------------------------------------------------------------------

TS, SAMPLE, FRAMES = 90000, 3600, 25  # 1 s fragments at 25 fps; segments of 2 s


def fragment(n: int) -> bytes:
    return make_fragment(
        track_id=1,
        sequence_number=n + 1,
        decode_time=n * SAMPLE * FRAMES,
        sample_durations=(SAMPLE,) * FRAMES,
    )


@contextlib.asynccontextmanager
async def running(app: Node) -> AsyncIterator[Node]:
    """Run the node's lifespan (store, announcement socket, safety net) around the block."""
    inbox: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()

    async def send(message: MutableMapping[str, Any]) -> None:
        await outbox.put(message)

    task = asyncio.create_task(app({"type": "lifespan"}, inbox.get, send))
    await inbox.put({"type": "lifespan.startup"})
    started = await asyncio.wait_for(outbox.get(), 60)
    assert started["type"] == "lifespan.startup.complete", started
    try:
        yield app
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(outbox.get(), 30)
        await task


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_ingest_nodes_take_turns_on_one_track(cassandra_server: CassandraServer, keyspace: str) -> None:
    base = Settings(
        store="cassandra",
        cassandra_hosts=(cassandra_server.contact_point,),
        cassandra_port=cassandra_server.port,
        cassandra_keyspace=keyspace,
    )
    port = free_udp_port()
    packager = dataclasses.replace(base, role="packager", port=port, packagers=(f"127.0.0.1:{port}",))
    ingest = dataclasses.replace(base, role="ingest", packagers=(f"127.0.0.1:{port}",))
    async with (
        running(create_app(ingest)) as a,
        running(create_app(ingest)) as b,
        running(create_app(packager)) as c,
    ):
        path = "/ingest/ch/Streams(v.cmfv)"
        header = make_header(track_id=1, timescale=TS)
        assert (await call(a, "POST", path, [header, fragment(0), fragment(1), fragment(2)])).status == 200
        playlist = await call(c, "GET", "/live/ch/hls/v.m3u8")  # the packager discovers the channel
        assert playlist.status == 200, playlist.text
        assert (await call(b, "PUT", path, [fragment(3)])).status == 200  # B never saw the header
        assert (await call(b, "PUT", path, [fragment(4)])).status == 200
        assert (await call(a, "PUT", path, [fragment(5)])).status == 200  # A knew only 0..2
        assert (await call(c, "PUT", path, [fragment(6)])).text.strip() == "this node has no ingest role"
        assert (await call(a, "GET", "/live/ch/hls/v.m3u8")).text.strip() == "this node has no packager role"

        expected = [(n, n // 2, n % 2, (n - n % 2)) for n in range(6)]  # (n, segment, part, start)

        async def placed(node: Node) -> list[tuple[int, int, int, int]]:
            timeline = await node.store.get_timeline("ch", "v")
            return [
                (e.decode_time // TS, e.segment_number, e.part_number, e.segment_start // TS)
                for e in timeline.entries()
            ]

        assert await placed(a) == expected
        await eventually(lambda: _equals(placed(c), expected), within_s=5, what="packager caught up")
        assert c.cluster is not None and c.cluster.follower.applied >= 3  # announced, no reads
        playlist = await call(c, "GET", "/live/ch/hls/v.m3u8")
        assert playlist.status == 200, playlist.text
        assert playlist.text.count("#EXTINF") == 2  # segments 0 and 1 complete, 2 still growing


async def _equals(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


# the write-through store ----------------------------------------------------------------------------


class DictCache:
    """A cache that always works (the write-through store's cache side is not what is tested here)."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}

    async def set(self, key: str, value: bytes, *, ttl_s: int) -> bool:
        self.values[key] = value
        return True

    async def get(self, key: str) -> bytes | None:
        return self.values.get(key)

    async def delete(self, key: str) -> None:
        self.values.pop(key, None)

    async def close(self) -> None:
        pass


async def test_the_write_through_store_follows_like_its_durable_store(cassandra_stores: StoreFactory) -> None:
    writer = await cassandra_stores()
    await setup_channel(writer)
    await commit(writer, 0)
    reader = WriteThroughStore(await cassandra_stores(), DictCache())
    assert isinstance(reader, FollowedStore)
    assert reader.known_tracks("ch") == ["v"] and reader.known_tracks("nope") is None
    await commit(writer, 1)
    assert reader.learn_entry("ch", "v", entry(1)) is Learned.APPLIED
    await commit(writer, 2)
    await commit(writer, 3)
    assert await reader.refresh_channel("ch") == 2
    await writer.put_track(TrackRecord(channel="ch", name="a", info=INFO, created_ms=5), b"A", ttl_s=600)
    await reader.reload_tracks("ch")
    assert reader.known_tracks("ch") == ["a", "v"]
    assert await reader.get_fragment("ch", "v", 3 * SECOND) == b"f3"
    await writer.delete_channel("ch")
    assert await reader.reload_channel("ch") is False
    assert reader.known_tracks("ch") is None
