"""How a ``CassandraStore`` learns what other processes wrote: discovery, reloads, timeline refresh.

With several ingest and packager processes on one keyspace, no process's in-memory index sees every
write by itself. What fills the gaps, from cheapest to dearest:

- ``learn``: an entry another process announced (``services/shared/announce.py``) is recorded
  directly when it continues the known timeline. It is durable already (the commit rule), so no
  read is needed; anything else (a gap, an unknown track) is left to the reloads below.
- ``refresh_timeline``: the track's timeline rows from one bucket before its last known entry on,
  looking back ``LOOKBACK_S`` of media before that entry, because two ingest nodes committing
  adjacent fragments at once can make an earlier fragment visible after a later one: such an
  entry is inserted in its place, not skipped. Rows already known are skipped before their JSON
  is parsed, so a refresh that finds nothing new costs the queries and little else.
- ``reload_tracks``: the channel's track records (a new or re-sent CMAF header).
- ``reload_channel`` / ``discover``: config, epoch, track records and timelines of one channel; a
  process asked about a channel it has not loaded discovers it on demand, once per channel at a
  time (single flight), and does not ask again for ``NEGATIVE_TTL_S`` (a 404 flood for unknown
  names costs Cassandra one read per name per second, not one per request).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from services.shared.cache import SingleFlight
from services.shared.channels import ChannelConfig, TrackRecord
from services.shared.store import cassandra_schema as schema
from services.shared.store.codec import from_json
from services.shared.store.cql import bounded_gather
from services.shared.store.index import ExpiryQueue, Learned, StoreIndex
from services.shared.timeline import FragmentEntry

#: Used to size the timeline load of a track whose channel config is unknown.
DEFAULT_SEGMENT_TTL_S = ChannelConfig(name="default").segment_ttl_s
#: Media before the last known entry that a refresh reads again, for entries committed out of order.
LOOKBACK_S = 10
#: After a discovery, the same channel is not looked up again for this long (whatever it found).
NEGATIVE_TTL_S = 1.0
#: Requests in flight per operation (tracks of one channel, buckets of one track).
_CONCURRENCY = 16
#: Discoveries remembered at most (a flood of made-up names must not grow memory without bound).
_MAX_LOOKED = 10_000

#: Runs a prepared statement by name; the names here are ``cassandra_schema.sync_statements``.
Run = Callable[..., Awaitable[list[Any]]]


class IndexSync:
    """Reads other processes' writes into ``index`` (and their expiries into ``expiry``)."""

    def __init__(
        self,
        *,
        run: Run,
        index: StoreIndex,
        expiry: ExpiryQueue,
        clock_ms: Callable[[], int],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._run = run
        self._index = index
        self._expiry = expiry
        self._clock_ms = clock_ms
        self._monotonic = monotonic
        self._looked: dict[str, float] = {}  # channel -> when it was last discovered
        self._flight: SingleFlight[bool] = SingleFlight()

    # announced entries ---------------------------------------------------------------------------

    def learn(self, channel: str, track: str, entry: FragmentEntry) -> Learned:
        """Record an announced entry if it follows on (see ``StoreIndex.learn``)."""
        learned = self._index.learn(channel, track, entry)
        if learned is Learned.APPLIED:
            config = self._index.get_channel(channel)
            ttl_s = config.segment_ttl_s if config else DEFAULT_SEGMENT_TTL_S
            self._expiry.add(channel, track, entry.decode_time, entry.ingest_time_ms + ttl_s * 1000)
        elif learned is Learned.UNKNOWN_CHANNEL:
            self._looked.pop(channel, None)  # it exists now: the next request discovers it at once
        return learned

    # channels ------------------------------------------------------------------------------------

    async def discover(self, channel: str) -> None:
        """Load a channel this process does not know, unless it was looked up just now."""
        now = self._monotonic()
        if now - self._looked.get(channel, -NEGATIVE_TTL_S) < NEGATIVE_TTL_S:
            return
        await self._flight.do(channel, partial(self._discover, channel))

    async def _discover(self, channel: str) -> bool:
        try:
            return await self.reload_channel(channel, forget_if_gone=False)
        finally:
            if len(self._looked) >= _MAX_LOOKED:
                cutoff = self._monotonic() - NEGATIVE_TTL_S
                self._looked = {c: t for c, t in self._looked.items() if t > cutoff}
            self._looked[channel] = self._monotonic()

    async def reload_channel(self, channel: str, *, forget_if_gone: bool = True) -> bool:
        """Config, epoch, tracks and timelines of ``channel`` as stored; False if it has neither config
        nor tracks, and then forgotten here too unless ``forget_if_gone`` is False (a discovery: what
        this process wrote itself stays)."""
        config_rows, epoch_rows, record_rows = await bounded_gather(
            [
                partial(self._run, "channel_config", channel),
                partial(self._run, "channel_epoch", channel),
                partial(self._run, "channel_records", channel),
            ],
            limit=3,
        )
        records = [from_json(TrackRecord, record) for (record,) in record_rows]
        if not config_rows and not records:
            if forget_if_gone:
                self._index.drop_channel(channel)
                self._expiry.drop(channel)
            return False
        if config_rows:
            self._index.put_channel(from_json(ChannelConfig, config_rows[0][0]))
        self._index.put_epoch(channel, epoch_rows[0][0] if epoch_rows else None)
        self._set_tracks(channel, records)
        await self.refresh_channel(channel)
        return True

    async def reload_tracks(self, channel: str) -> None:
        """The channel's track records as stored; timelines of tracks new here are loaded too."""
        if self._index.get_channel(channel) is None and not self._index.get_tracks(channel):
            return  # not loaded here: discovery loads everything when it is first asked for
        records = [from_json(TrackRecord, r) for (r,) in await self._run("channel_records", channel)]
        new = self._set_tracks(channel, records)
        now = self._clock_ms()
        await bounded_gather(
            [partial(self.refresh_timeline, channel, name, now_ms=now) for name in new], limit=_CONCURRENCY
        )

    def _set_tracks(self, channel: str, records: list[TrackRecord]) -> list[str]:
        """Replace the channel's track records; the names of tracks that had no timeline loaded."""
        new = [r.name for r in records if self._index.find_timeline(channel, r.name) is None]
        known = {r.name for r in self._index.get_tracks(channel)}
        for name in known - {r.name for r in records}:
            self._expiry.drop(channel, name)
        self._index.set_tracks(channel, records)
        return new

    async def refresh_channel(self, channel: str) -> int:
        """Refresh the timeline of every track of ``channel``; how many entries were added."""
        now = self._clock_ms()
        counts = await bounded_gather(
            [
                partial(self.refresh_timeline, channel, r.name, now_ms=now)
                for r in self._index.get_tracks(channel)
            ],
            limit=_CONCURRENCY,
        )
        return sum(counts)

    # timelines -----------------------------------------------------------------------------------

    async def refresh_timeline(self, channel: str, track: str, *, now_ms: int | None = None) -> int:
        """Add the entries other processes committed that this one does not know; how many."""
        now = self._clock_ms() if now_ms is None else now_ms
        last = self._index.timeline(channel, track).last
        if last is None:
            buckets = self.buckets(channel, now)
            queries = [partial(self._run, "timed_entries", channel, track, b) for b in buckets]
        else:  # from one bucket before the last entry's: writers' clocks may differ a little
            buckets = schema.buckets_covering(last.ingest_time_ms - schema.BUCKET_MS, now + schema.BUCKET_MS)
            record = self._index.get_track(channel, track)
            if record is None:  # no timescale to measure the look-back in: whole buckets
                queries = [partial(self._run, "timed_entries", channel, track, b) for b in buckets]
            else:
                after = last.decode_time - LOOKBACK_S * record.info.timescale
                queries = [
                    partial(self._run, "timed_entries_after", channel, track, b, after) for b in buckets
                ]
        pages = await bounded_gather(queries, limit=_CONCURRENCY)
        return self._merge(channel, track, [row for page in pages for row in page], now)

    def buckets(self, channel: str, now_ms: int) -> list[int]:
        """Buckets that may hold live entries: the channel's segment TTL back, one bucket ahead."""
        config = self._index.get_channel(channel)
        ttl_ms = (config.segment_ttl_s if config else DEFAULT_SEGMENT_TTL_S) * 1000
        return schema.buckets_covering(now_ms - ttl_ms, now_ms + schema.BUCKET_MS)

    def _merge(self, channel: str, track: str, rows: list[Any], now_ms: int) -> int:
        """Rows (decode_time, entry JSON, TTL left) into the timeline: new entries appended or
        inserted in place, filler replaced by the real fragment; known ones skipped unparsed."""
        timeline = self._index.timeline(channel, track)
        fresh = []
        for decode_time, text, ttl_left in rows:
            known = timeline.find(decode_time)
            if known is None or known.filler:
                fresh.append((text, ttl_left))
        added = 0
        for entry, ttl_left in schema.merge_entries(fresh):
            known, last = timeline.find(entry.decode_time), timeline.last
            if known is not None:
                if entry.filler:
                    continue
                timeline.replace(entry)
            elif last is None or entry.decode_time > last.decode_time:
                timeline.append(entry)
            else:
                timeline.insert(entry)
            added += 1
            if ttl_left is not None:
                self._expiry.add(channel, track, entry.decode_time, now_ms + ttl_left * 1000)
        return added
