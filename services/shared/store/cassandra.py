"""The durable store on Apache Cassandra, with every index held in memory (like ``embedded.py``).

Cassandra is the source of truth; reads of channels, epochs, tracks and timelines are served from
the in-memory ``StoreIndex``, loaded at ``open()`` (timelines: the buckets of the last segment TTL)
and kept current by this process's own writes. Other processes' writes come in through
``cassandra_sync.py``: channels discovered on demand (a miss of ``get_channel``, ``get_tracks`` or
``get_epoch``), announced entries (``learn_entry``), reloads and timeline refreshes. Fragment bytes,
init segments and metadata are read from Cassandra. Schema and the reasons for it:
``cassandra_schema.py``; driver plumbing and error translation: ``cql.py``.

The commit rule: ``commit_fragment`` = ``put_fragment_bytes`` (chunks, then the header that commits
them, each acknowledged at the configured consistency) then ``put_timeline_entry`` (the timeline
row, then the in-memory timeline). A timeline entry is therefore never visible, here or in
Cassandra, before its bytes are durable. The halves are public so that the write-through store can
put its cache write between them. Every write is idempotent (fixed keys and values, except the
epoch's lightweight transaction), so the driver may retry it safely.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import Any

from services.shared.channels import ChannelConfig, TrackRecord
from services.shared.errors import StoreUnavailable
from services.shared.store import cassandra_schema as schema
from services.shared.store import cassandra_sync
from services.shared.store.base import CommitResult
from services.shared.store.cassandra_sync import IndexSync
from services.shared.store.codec import from_json, to_json
from services.shared.store.cql import DDL_PROFILE, LWT_PROFILE, Cql, CqlSettings, bounded_gather
from services.shared.store.index import ExpiryQueue, KeyedLocks, Learned, StoreIndex
from services.shared.timeline import FragmentEntry, TrackTimeline

DEFAULT_REPLICATION: dict[str, object] = {"class": "SimpleStrategy", "replication_factor": 1}
#: Used to size the timeline load of a track whose channel config is unknown.
DEFAULT_SEGMENT_TTL_S = cassandra_sync.DEFAULT_SEGMENT_TTL_S
#: Requests in flight per store operation (chunks of one object, partitions of one delete).
_CONCURRENCY = 16
#: Rows per page when reading an object: pages of about 4 MiB, whatever the chunk size.
_PAGE_BYTES = 4 * 1024 * 1024
_MAX_CHUNK_BYTES = 4 * 1024 * 1024
#: Objects from this size on are checksummed (and joined) in a worker thread, not on the event loop.
_OFF_LOOP_BYTES = 1024 * 1024


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class CassandraStore:
    """``Store`` on a Cassandra keyspace (created, with its tables, on ``open()`` if absent, unless
    ``create_schema=False``: then ``create_schema()`` of one process, e.g. a deployment's job, made it)."""

    def __init__(
        self,
        *,
        contact_points: Sequence[str],
        port: int = 9042,
        keyspace: str = "headwater",
        replication: dict[str, object] | None = None,
        consistency: str = "LOCAL_QUORUM",
        chunk_bytes: int = 256 * 1024,
        request_timeout_s: float = 2.0,
        local_dc: str | None = None,
        clock_ms: Callable[[], int] = _now_ms,
        create_schema: bool = True,
    ) -> None:
        if not 0 < chunk_bytes <= _MAX_CHUNK_BYTES:
            raise ValueError(f"chunk_bytes must be in 1..{_MAX_CHUNK_BYTES}, not {chunk_bytes}")
        self._keyspace = schema.keyspace_name(keyspace)
        self._replication = dict(replication or DEFAULT_REPLICATION)
        self._chunk_bytes = chunk_bytes
        self._clock_ms = clock_ms
        self._create_schema = create_schema
        self._cql = Cql(
            CqlSettings(
                contact_points=tuple(contact_points),
                port=port,
                consistency=consistency,
                request_timeout_s=request_timeout_s,
                local_dc=local_dc,
            )
        )
        self._st: dict[str, Any] = {}
        self._index = StoreIndex()
        self._expiry = ExpiryQueue()
        self._commits = KeyedLocks()
        self._sync = IndexSync(run=self._run, index=self._index, expiry=self._expiry, clock_ms=clock_ms)

    @property
    def keyspace(self) -> str:
        return self._keyspace

    @property
    def chunk_bytes(self) -> int:
        return self._chunk_bytes

    # lifecycle ---------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, create the keyspace and tables if absent (``create_schema``), prepare statements
        (a ``StoreError`` naming the table when the schema is missing), load the index."""
        await self._cql.connect()
        try:
            if self._create_schema:
                await self._execute_ddl()
            self._st = await self._cql.prepare(
                schema.statements(self._keyspace) | schema.sync_statements(self._keyspace),
                not_idempotent=schema.NOT_IDEMPOTENT,
            )
            self._st["get_object"].fetch_size = max(1, _PAGE_BYTES // self._chunk_bytes)
            await self._load()
        except BaseException:
            await self._cql.close()
            raise

    async def close(self) -> None:
        await self._cql.close()

    async def create_schema(self) -> None:
        """Connect, create the keyspace and tables if absent, disconnect (``headwater schema``)."""
        await self._cql.connect()
        try:
            await self._execute_ddl()
        finally:
            await self._cql.close()

    async def _execute_ddl(self) -> None:
        # One DDL statement at a time: concurrent schema changes can disagree across nodes.
        await self._cql.execute(schema.keyspace_ddl(self._keyspace, self._replication), profile=DDL_PROFILE)
        for ddl in schema.tables_ddl(self._keyspace):
            await self._cql.execute(ddl, profile=DDL_PROFILE)

    async def ping(self) -> None:
        await self._run("ping")

    async def _run(self, name: str, *params: object) -> list[Any]:
        return await self._cql.execute(self._statement(name), params)

    async def _run_lwt(self, name: str, *params: object) -> list[Any]:
        """A lightweight transaction: rows as dicts (``[applied]`` and the current values)."""
        return await self._cql.execute(self._statement(name), params, profile=LWT_PROFILE)

    def _statement(self, name: str) -> Any:
        statement = self._st.get(name)
        if statement is None:
            raise StoreUnavailable("cassandra store is not open")
        return statement

    async def _load(self) -> None:
        now = self._clock_ms()
        for (config,) in await self._run("all_channels"):
            self._index.put_channel(from_json(ChannelConfig, config))
        for channel, epoch_ms in await self._run("all_epochs"):
            self._index.set_epoch(channel, epoch_ms)
        records = [from_json(TrackRecord, record) for (record,) in await self._run("all_tracks")]
        for record in records:
            self._index.put_track(record)
        await bounded_gather(
            [partial(self.refresh_timeline, r.channel, r.name, now_ms=now) for r in records],
            limit=_CONCURRENCY,
        )

    # channels ----------------------------------------------------------------------------------

    async def put_channel(self, config: ChannelConfig) -> None:
        await self._run("put_channel", config.name, to_json(config))
        self._index.put_channel(config)

    async def get_channel(self, name: str) -> ChannelConfig | None:
        config = self._index.get_channel(name)
        if config is None:  # another process may have created it: discovered on demand
            await self._sync.discover(name)
            config = self._index.get_channel(name)
        return config

    async def list_channels(self) -> list[ChannelConfig]:
        """Every channel of the cluster, read from Cassandra: other nodes create and delete them."""
        configs = [from_json(ChannelConfig, config) for (config,) in await self._run("all_channels")]
        for config in configs:
            self._index.put_channel(config)
        return sorted(configs, key=lambda config: config.name)

    async def delete_channel(self, name: str) -> None:
        """Contents first, the channel row last: a delete cut short can simply be repeated."""
        tracks = {track for (track,) in await self._run("channel_tracks", name)}  # any process's
        tracks.update(r.name for r in self._index.get_tracks(name))
        tracks.update(track for (channel, track), _ in self._index.timelines() if channel == name)
        for track in sorted(tracks):
            await self._delete_track_rows(name, track)
        await self._run("delete_tracks", name)
        await self._run("delete_meta", name)
        await self._run_lwt("delete_epoch", name)
        await self._run("delete_channel", name)
        self._index.drop_channel(name)
        self._expiry.drop(name)

    async def set_epoch_if_absent(self, channel: str, epoch_ms: int) -> int:
        current = self._index.get_epoch(channel)
        if current is not None:
            return current
        # Lightweight transaction: of concurrent first commits (any process), exactly one sets it.
        rows = await self._run_lwt("set_epoch", channel, epoch_ms)
        row = rows[0]
        return self._index.set_epoch(channel, epoch_ms if row["[applied]"] else row["epoch_ms"])

    async def get_epoch(self, channel: str) -> int | None:
        epoch = self._index.get_epoch(channel)
        if epoch is None:
            await self._sync.discover(channel)
            epoch = self._index.get_epoch(channel)
        return epoch

    async def put_meta(self, channel: str, key: str, value: bytes, *, ttl_s: int) -> None:
        await self._run("put_meta", channel, key, value, ttl_s)

    async def get_meta(self, channel: str, key: str) -> bytes | None:
        rows = await self._run("get_meta", channel, key)
        return schema.first_blob(rows)

    # tracks ------------------------------------------------------------------------------------

    async def put_track(self, record: TrackRecord, init: bytes, *, ttl_s: int) -> None:
        await self._run("put_track", record.channel, record.name, to_json(record), init, ttl_s)
        self._index.put_track(record)

    async def get_tracks(self, channel: str) -> list[TrackRecord]:
        tracks = self._index.get_tracks(channel)
        if not tracks:
            await self._sync.discover(channel)
            tracks = self._index.get_tracks(channel)
        return tracks

    async def delete_track(self, channel: str, track: str) -> None:
        await self._delete_track_rows(channel, track)
        await self._run("delete_track", channel, track)
        self._index.drop_track(channel, track)
        self._expiry.drop(channel, track)

    async def _delete_track_rows(self, channel: str, track: str) -> None:
        """Partition deletes: the timeline buckets first (then nothing points at the bytes), then
        the objects their entries (any process's) and this process's index name."""
        timeline = self._index.find_timeline(channel, track)
        entries = timeline.entries() if timeline is not None else ()
        buckets = set(self._sync.buckets(channel, self._clock_ms()))
        buckets.update(schema.bucket_of(e.ingest_time_ms) for e in entries)
        pages = await bounded_gather(
            [partial(self._run, "bucket_times", channel, track, b) for b in sorted(buckets)],
            limit=_CONCURRENCY,
        )
        times = {t for page in pages for (t,) in page} | {e.decode_time for e in entries}
        await bounded_gather(
            [partial(self._run, "delete_bucket", channel, track, b) for b in sorted(buckets)],
            limit=_CONCURRENCY,
        )
        await bounded_gather(
            [partial(self._run, "delete_object", channel, track, t) for t in sorted(times)],
            limit=_CONCURRENCY,
        )

    async def get_init(self, channel: str, track: str) -> bytes | None:
        return schema.first_blob(await self._run("get_init", channel, track))

    # fragments ---------------------------------------------------------------------------------

    async def commit_fragment(
        self, channel: str, track: str, entry: FragmentEntry, data: bytes, *, ttl_s: int
    ) -> CommitResult:
        async with self.committing(channel, track, entry.decode_time):
            if self.classify(channel, track, entry) is CommitResult.DUPLICATE:
                return CommitResult.DUPLICATE
            await self.put_fragment_bytes(channel, track, entry.decode_time, data, ttl_s=ttl_s)
            return await self.put_timeline_entry(channel, track, entry, ttl_s=ttl_s)

    def committing(self, channel: str, track: str, decode_time: int) -> AbstractAsyncContextManager[None]:
        """Async context held around one commit: commits of the same object take turns, so a
        redundant encoder's copy is classified DUPLICATE instead of racing the first one."""
        return self._commits.hold((channel, track, decode_time))

    def classify(self, channel: str, track: str, entry: FragmentEntry) -> CommitResult:
        """What committing ``entry`` would do now (DUPLICATE: nothing to write)."""
        return self._index.classify(channel, track, entry)

    async def put_fragment_bytes(
        self, channel: str, track: str, decode_time: int, data: bytes, *, ttl_s: int
    ) -> None:
        """Make the bytes durable: every chunk acknowledged, then the header that commits them. A
        fragment of one chunk is written with its header in one row write (atomic): one round trip."""
        generation = time.time_ns()  # real clock: unique per write even under an injected clock_ms
        step = self._chunk_bytes
        chunks = [data[at : at + step] for at in range(0, len(data), step)]
        crc = zlib.crc32(data) if len(data) < _OFF_LOOP_BYTES else await asyncio.to_thread(zlib.crc32, data)
        key = (channel, track, decode_time, generation)
        header = (generation, len(chunks), len(data), crc, ttl_s)
        if len(chunks) == 1:
            await self._run("put_chunk_with_header", *key, 0, data, *header)
            return
        await bounded_gather(
            [partial(self._run, "put_chunk", *key, i, c, ttl_s) for i, c in enumerate(chunks)],
            limit=_CONCURRENCY,
        )
        await self._run("put_object_header", channel, track, decode_time, *header)

    async def put_timeline_entry(
        self, channel: str, track: str, entry: FragmentEntry, *, ttl_s: int
    ) -> CommitResult:
        """Make ``entry`` visible: the timeline row, then the in-memory timeline. Call only once
        ``put_fragment_bytes`` returned for the same fragment."""
        result = self.classify(channel, track, entry)
        if result is CommitResult.DUPLICATE:
            return result
        timeline = self._index.timeline(channel, track)
        # An entry before the last one is inserted in its place (another ingest node may have
        # committed a later fragment first); ingest has checked that it overlaps nothing it knew.
        # A real fragment replacing filler overwrites the filler's row, in the filler's bucket.
        placed = timeline.find(entry.decode_time) or entry
        bucket = schema.bucket_of(placed.ingest_time_ms)
        await self._run("put_entry", channel, track, bucket, entry.decode_time, to_json(entry), ttl_s)
        result = self._index.apply(channel, track, entry)
        if result is not CommitResult.DUPLICATE:
            self._expiry.add(channel, track, entry.decode_time, self._clock_ms() + ttl_s * 1000)
        return result

    async def get_timeline(self, channel: str, track: str) -> TrackTimeline:
        return self._index.find_timeline(channel, track) or TrackTimeline()

    async def get_fragment(self, channel: str, track: str, decode_time: int) -> bytes | None:
        """The committed bytes; None if never committed or expired; StoreError if damaged."""
        rows = await self._run("get_object", channel, track, decode_time)
        what = f"{channel}/{track}@{decode_time}"
        if len(rows) * self._chunk_bytes < _OFF_LOOP_BYTES:
            return schema.assemble(rows, what=what)
        return await asyncio.to_thread(schema.assemble, rows, what=what)  # join + CRC: milliseconds

    # other processes' writes (cassandra_sync.py) ----------------------------------------------

    async def refresh_timeline(self, channel: str, track: str, *, now_ms: int | None = None) -> int:
        """Add the entries other processes committed that this one does not know; return how many."""
        return await self._sync.refresh_timeline(channel, track, now_ms=now_ms)

    async def refresh_channel(self, channel: str) -> int:
        """``refresh_timeline`` for every track of the channel; how many entries were added."""
        return await self._sync.refresh_channel(channel)

    async def reload_tracks(self, channel: str) -> None:
        """Take the channel's track records as stored (a new or re-sent header elsewhere)."""
        await self._sync.reload_tracks(channel)

    async def reload_channel(self, channel: str) -> bool:
        """Reload the channel as stored (config, epoch, tracks, timelines); False if it is gone."""
        return await self._sync.reload_channel(channel)

    def learn_entry(self, channel: str, track: str, entry: FragmentEntry) -> Learned:
        """Record an entry another process committed and announced, if it follows on (no I/O)."""
        return self._sync.learn(channel, track, entry)

    def known_tracks(self, channel: str) -> list[str] | None:
        """Names of the channel's tracks loaded here; None if the channel is not (no I/O)."""
        if self._index.get_channel(channel) is None and not self._index.get_tracks(channel):
            return None
        return [r.name for r in self._index.get_tracks(channel)]

    # retention ---------------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Trim in-memory timelines of expired entries (Cassandra expires the rows itself)."""
        removed = 0
        for (channel, track), newest_gone in self._expiry.pop_expired(self._clock_ms()).items():
            timeline = self._index.find_timeline(channel, track)
            if timeline is not None:
                entry = timeline.find(newest_gone)
                removed += timeline.drop_before(entry.end_time if entry else newest_gone + 1)
        return removed
