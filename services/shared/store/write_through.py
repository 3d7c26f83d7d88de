"""Cassandra (durable, the source of truth) with a memcached object cache in front of its bytes.

Everything is the durable store's except fragment and init bytes, which go through the cache:

- ``commit_fragment``: bytes durable in Cassandra, then cached (best effort: a cache failure never
  fails a commit), then the timeline entry is written and becomes visible. So when a packager sees
  an entry, the bytes are durable and, normally, already in the cache.
- ``get_fragment`` / ``get_init``: cache, else Cassandra, then backfill the cache. Concurrent reads of
  one object in this process share one load (``SingleFlight``).

Cache keys name one version of an object, so a changed object can never be served stale: a fragment's
key holds the size and ingest time of its timeline entry (a real fragment replacing filler gets a new
key), an init segment's the ``created_ms`` of its track record (a re-sent header gets a new key).
Objects this process has not indexed have no such version: they are read from Cassandra directly.
Packagers share what they make from those objects (TS segments) through the cache alone, under their
own versioned keys (``get_packaged`` / ``put_packaged``, ``packaged.PackagedCache``).
Deletes leave cached copies to expire: no index points at their keys any more.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Protocol

from services.shared.cache import SingleFlight
from services.shared.channels import ChannelConfig, TrackRecord
from services.shared.store.base import CommitResult
from services.shared.store.cassandra import DEFAULT_SEGMENT_TTL_S, CassandraStore
from services.shared.store.index import Learned
from services.shared.timeline import FragmentEntry, TrackTimeline

log = logging.getLogger(__name__)

DEFAULT_INIT_TTL_S = ChannelConfig(name="default").init_ttl_s


class CacheLike(Protocol):
    """What this store needs of a cache (``memcache.ChunkedCache``): failures are misses."""

    async def set(self, key: str, value: bytes, *, ttl_s: int) -> bool: ...

    async def get(self, key: str) -> bytes | None: ...

    async def delete(self, key: str) -> None: ...

    async def close(self) -> None: ...


def fragment_key(channel: str, track: str, entry: FragmentEntry) -> str:
    return f"frag/{channel}/{track}/{entry.decode_time}/{entry.size}/{entry.ingest_time_ms}"


def init_key(record: TrackRecord) -> str:
    return f"init/{record.channel}/{record.name}/{record.created_ms}"


def packaged_key(key: str) -> str:
    """A packager's key (``packaged.PackagedCache``), apart from this store's own keys."""
    return f"pkg/{key}"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class WriteThroughStore:
    """``Store``: ``durable`` for everything, ``cache`` in front of fragment and init bytes."""

    def __init__(
        self,
        durable: CassandraStore,
        cache: CacheLike,
        *,
        cache_timeout_s: float = 2.0,
        clock_ms: Callable[[], int] = _now_ms,
    ) -> None:
        self._durable = durable
        self._cache = cache
        self._cache_timeout_s = cache_timeout_s  # a backstop: the cache has its own timeouts
        self._clock_ms = clock_ms
        self._flight: SingleFlight[bytes | None] = SingleFlight()

    @property
    def durable(self) -> CassandraStore:
        return self._durable

    # lifecycle ---------------------------------------------------------------------------------

    async def open(self) -> None:
        await self._durable.open()

    async def close(self) -> None:
        try:
            await self._cache.close()
        finally:
            await self._durable.close()

    async def ping(self) -> None:
        await self._durable.ping()  # the cache is optional: a cache outage is not unreadiness

    # channels (durable only) -------------------------------------------------------------------

    async def put_channel(self, config: ChannelConfig) -> None:
        await self._durable.put_channel(config)

    async def get_channel(self, name: str) -> ChannelConfig | None:
        return await self._durable.get_channel(name)

    async def list_channels(self) -> list[ChannelConfig]:
        return await self._durable.list_channels()

    async def delete_channel(self, name: str) -> None:
        await self._durable.delete_channel(name)

    async def set_epoch_if_absent(self, channel: str, epoch_ms: int) -> int:
        return await self._durable.set_epoch_if_absent(channel, epoch_ms)

    async def get_epoch(self, channel: str) -> int | None:
        return await self._durable.get_epoch(channel)

    async def put_meta(self, channel: str, key: str, value: bytes, *, ttl_s: int) -> None:
        await self._durable.put_meta(channel, key, value, ttl_s=ttl_s)

    async def get_meta(self, channel: str, key: str) -> bytes | None:
        return await self._durable.get_meta(channel, key)

    # tracks and init segments ------------------------------------------------------------------

    async def put_track(self, record: TrackRecord, init: bytes, *, ttl_s: int) -> None:
        await self._durable.put_track(record, init, ttl_s=ttl_s)
        await self._cache_set(init_key(record), init, ttl_s=ttl_s)

    async def get_tracks(self, channel: str) -> list[TrackRecord]:
        return await self._durable.get_tracks(channel)

    async def delete_track(self, channel: str, track: str) -> None:
        await self._durable.delete_track(channel, track)

    async def get_init(self, channel: str, track: str) -> bytes | None:
        record = next((r for r in await self._durable.get_tracks(channel) if r.name == track), None)
        if record is None:
            return await self._durable.get_init(channel, track)
        config = await self._durable.get_channel(channel)
        ttl_s = config.init_ttl_s if config else DEFAULT_INIT_TTL_S
        load = partial(self._durable.get_init, channel, track)
        key = init_key(record)
        return await self._flight.do(key, partial(self._read_through, key, load, record.created_ms, ttl_s))

    # fragments ---------------------------------------------------------------------------------

    async def commit_fragment(
        self, channel: str, track: str, entry: FragmentEntry, data: bytes, *, ttl_s: int
    ) -> CommitResult:
        durable = self._durable
        async with durable.committing(channel, track, entry.decode_time):
            if durable.classify(channel, track, entry) is CommitResult.DUPLICATE:
                return CommitResult.DUPLICATE
            # durable write and cache write run side by side; only the entry waits for both
            await asyncio.gather(
                durable.put_fragment_bytes(channel, track, entry.decode_time, data, ttl_s=ttl_s),
                self._cache_set(fragment_key(channel, track, entry), data, ttl_s=ttl_s),
            )
            return await durable.put_timeline_entry(channel, track, entry, ttl_s=ttl_s)

    async def get_timeline(self, channel: str, track: str) -> TrackTimeline:
        return await self._durable.get_timeline(channel, track)

    async def get_fragment(self, channel: str, track: str, decode_time: int) -> bytes | None:
        entry = (await self._durable.get_timeline(channel, track)).find(decode_time)
        if entry is None:
            return await self._durable.get_fragment(channel, track, decode_time)
        config = await self._durable.get_channel(channel)
        ttl_s = config.segment_ttl_s if config else DEFAULT_SEGMENT_TTL_S
        load = partial(self._durable.get_fragment, channel, track, decode_time)
        key = fragment_key(channel, track, entry)
        read = partial(self._read_through, key, load, entry.ingest_time_ms, ttl_s, size=entry.size)
        return await self._flight.do(key, read)

    # other processes' writes (durable only: the cache holds bytes, not the index) --------------

    async def refresh_timeline(self, channel: str, track: str) -> int:
        return await self._durable.refresh_timeline(channel, track)

    async def refresh_channel(self, channel: str) -> int:
        return await self._durable.refresh_channel(channel)

    async def reload_tracks(self, channel: str) -> None:
        await self._durable.reload_tracks(channel)

    async def reload_channel(self, channel: str) -> bool:
        return await self._durable.reload_channel(channel)

    def learn_entry(self, channel: str, track: str, entry: FragmentEntry) -> Learned:
        return self._durable.learn_entry(channel, track, entry)

    def known_tracks(self, channel: str) -> list[str] | None:
        return self._durable.known_tracks(channel)

    async def sweep(self) -> int:
        return await self._durable.sweep()

    # packaged outputs (``packaged.PackagedCache``): the cache only, best effort ----------------

    async def get_packaged(self, key: str) -> bytes | None:
        return await self._cache_get(packaged_key(key))

    async def put_packaged(self, key: str, data: bytes, *, ttl_s: int) -> None:
        await self._cache_set(packaged_key(key), data, ttl_s=ttl_s)

    # cache -------------------------------------------------------------------------------------

    async def _read_through(
        self,
        key: str,
        load: Callable[[], Awaitable[bytes | None]],
        written_ms: int,
        ttl_s: int,
        *,
        size: int | None = None,
    ) -> bytes | None:
        """Cached value (of the expected size), else ``load()``, cached for what is left of its TTL."""
        cached = await self._cache_get(key)
        if cached is not None and (size is None or len(cached) == size):
            return cached
        data = await load()
        left_s = ttl_s - (self._clock_ms() - written_ms) // 1000
        if data is not None and left_s >= 1:
            await self._cache_set(key, data, ttl_s=left_s)
        return data

    async def _cache_get(self, key: str) -> bytes | None:
        try:
            async with asyncio.timeout(self._cache_timeout_s):
                return await self._cache.get(key)
        except Exception as exc:  # best effort by design: any cache failure is a miss
            log.warning("cache get %s failed: %r", key, exc)
            return None

    async def _cache_set(self, key: str, value: bytes, *, ttl_s: int) -> None:
        try:
            async with asyncio.timeout(self._cache_timeout_s):
                stored = await self._cache.set(key, value, ttl_s=ttl_s)
        except Exception as exc:  # best effort by design: a commit never fails on the cache
            log.warning("cache set %s failed: %r", key, exc)
            return
        if not stored:
            log.debug("cache did not store %s", key)
