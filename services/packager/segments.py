"""CMAF media objects of one packager: init segments, media segments and LL-HLS parts, all immutable
once served, and LL-DASH segments streamed while they are being written.

Immutable objects are kept in the packager's LRU (shared with its rendered TS segments) and loaded
once however many ask at once (single-flight). They are read straight from the store; only parts and
in-progress segments need the channel's snapshot (``state``), for the track's record and config.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from services.packager import llhls, progressive
from services.packager.errors import Gone, NotYetAvailable
from services.packager.state import ChannelState, Rendered, content_etag
from services.packager.ts_output import complete_segment
from services.shared.cache import LruCache, SingleFlight
from services.shared.channels import TrackRecord, validate_name
from services.shared.errors import NotFound
from services.shared.metrics import Metrics
from services.shared.signal import Signal
from services.shared.store.base import Store
from services.shared.timeline import TrackTimeline


class CmafSegments:
    """The CMAF objects a packager serves; ``state`` gives a channel's snapshot (``PackagerService``)."""

    def __init__(
        self,
        *,
        store: Store,
        signal: Signal,
        metrics: Metrics,
        objects: LruCache[Rendered],
        flight: SingleFlight[Rendered],
        state: Callable[[str], Awaitable[ChannelState]],
        cache_control: bytes,
    ) -> None:
        self.store = store
        self.signal = signal
        self.metrics = metrics
        self.state = state
        self._objects = objects
        self._flight = flight
        self._cache_control = cache_control  # every object here is immutable

    async def init_segment(self, channel: str, track: str) -> Rendered:
        """A track's init segment, as stored with its header (a re-sent header is a new object)."""
        validate_name("channel", channel)
        validate_name("track", track)
        record = next((r for r in await self.store.get_tracks(channel) if r.name == track), None)
        if record is None:
            raise NotFound(f"channel {channel!r} has no track {track!r}")
        key = ("init", channel, track, record.created_ms)  # a re-sent header gets a fresh entry
        cached = self._objects.get(key)
        if cached is not None:
            return cached

        async def load() -> Rendered:
            data = await self.store.get_init(channel, track)
            if data is None:
                raise NotFound(f"no init segment for {channel}/{track}")
            rendered = Rendered(
                body=data,
                content_type=b"video/mp4" if record.info.is_video else b"audio/mp4",
                etag=content_etag(data),
                last_modified_ms=record.created_ms,
                cache_control=self._cache_control,
            )
            self._objects.put(key, rendered)
            return rendered

        return await self._flight.do(key, load)

    async def media_segment(self, channel: str, track: str, start_time: int) -> Rendered:
        """A track's complete CMAF segment at ``start_time``: its fragments' bytes, concatenated."""
        validate_name("channel", channel)
        validate_name("track", track)
        key = ("seg", channel, track, start_time)
        return await self._immutable(key, lambda: self._load_segment(channel, track, start_time, key))

    async def segment_progress(
        self, channel: str, track: str, start_time: int
    ) -> tuple[bytes, AsyncIterator[bytes]] | None:
        """LL-DASH: the segment at ``start_time`` while it is being written, as (content type, its
        fragments' bytes as they are committed); None when ``media_segment`` answers instead
        (complete, or no segment). The segment right after the track's last fragment is waited for
        up to one target duration, else ``NotYetAvailable``. See ``progressive``."""
        validate_name("channel", channel)
        validate_name("track", track)
        if self._objects.get(("seg", channel, track, start_time)) is not None:
            return None
        timeline = await self.store.get_timeline(channel, track)
        if progressive.candidacy(timeline, start_time) is progressive.Candidacy.NO:
            return None  # the common case, decided without a channel snapshot
        state = await self.state(channel)
        record, _ = state.track(track)
        target_s = state.config.target_ms / 1000
        feed = progressive.SegmentFeed(
            store=self.store,
            signal=self.signal,
            channel=channel,
            track=track,
            start_time=start_time,
            idle_timeout_s=progressive.IDLE_TARGETS * target_s,
        )
        if not await progressive.in_progress(feed, wait_s=target_s):
            return None
        return (b"video/mp4" if record.info.is_video else b"audio/mp4"), progressive.segment_chunks(feed)

    async def part(self, channel: str, track: str, decode_time: int) -> Rendered:
        """An LL-HLS Partial Segment starting at ``decode_time`` (``llhls.parts_of``). A request for
        the preload-hinted part (the one being written, or the next after the track's last) is held
        until that part is complete."""
        validate_name("channel", channel)
        validate_name("track", track)
        key = ("part", channel, track, decode_time)
        cached = self._objects.get(key)
        if cached is not None:
            self.metrics.cache_hits += 1
            return cached
        state = await self.state(channel)
        record, _ = state.track(track)
        part = await self._complete_part(state, record.info.timescale, track, decode_time)
        return await self._immutable(key, lambda: self._load_part(channel, record, part, key))

    async def _complete_part(
        self, state: ChannelState, timescale: int, track: str, decode_time: int
    ) -> llhls.Part:
        channel = state.config.name
        deadline = time.monotonic() + llhls.BLOCK_TARGETS * max(1.0, state.config.target_ms / 1000)
        while True:
            version = self.signal.version(channel)
            timeline = await self.store.get_timeline(channel, track)
            part = _part_at(timeline, timescale, decode_time)
            if part is not None and part.complete:
                return part
            if part is None and not _is_next(timeline, decode_time):
                first = timeline.first
                if first is not None and decode_time < first.decode_time:
                    raise Gone(f"part {decode_time} of {track} is behind the window or expired")
                raise NotYetAvailable(f"no part of {track} starts at {decode_time}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NotYetAvailable(f"part {decode_time} of {track} was not completed in time")
            if self.signal.version(channel) == version:
                await self.signal.wait(channel, remaining)

    async def _load_part(self, channel: str, record: TrackRecord, part: llhls.Part, key: object) -> Rendered:
        track = record.name
        bodies = await asyncio.gather(
            *(self.store.get_fragment(channel, track, f.decode_time) for f in part.fragments)
        )
        if any(body is None for body in bodies):
            raise Gone(f"part {part.start_time} of {track} has expired")
        body = b"".join(b for b in bodies if b is not None)
        ingest_ms = part.fragments[-1].ingest_time_ms
        rendered = Rendered(
            body=body,
            content_type=b"video/mp4" if record.info.is_video else b"audio/mp4",
            etag=f'"p{part.start_time:x}-{len(body):x}-{ingest_ms:x}"'.encode(),
            last_modified_ms=ingest_ms,
            cache_control=self._cache_control,
        )
        self._objects.put(key, rendered)
        return rendered

    async def _immutable(self, key: tuple[object, ...], load: Callable[[], Awaitable[Rendered]]) -> Rendered:
        """An immutable object from the in-process LRU, else loaded once however many ask at once."""
        cached = self._objects.get(key)
        if cached is not None:
            self.metrics.cache_hits += 1
            return cached
        self.metrics.cache_misses += 1
        return await self._flight.do(key, load)

    async def _load_segment(self, channel: str, track: str, start_time: int, key: object) -> Rendered:
        records = {r.name: r for r in await self.store.get_tracks(channel)}
        record = records.get(track)
        if record is None:
            raise NotFound(f"channel {channel!r} has no track {track!r}")
        timeline = await self.store.get_timeline(channel, track)
        segment = complete_segment(timeline, track, start_time)
        parts = await asyncio.gather(  # per-frame chunks make up to ~50 reads: issue them together
            *(self.store.get_fragment(channel, track, f.decode_time) for f in segment.fragments)
        )
        if any(part is None for part in parts):
            raise Gone(f"segment {start_time} of {track} has expired")
        body = b"".join(part for part in parts if part is not None)
        etag = f'"{start_time:x}-{len(body):x}-{segment.ingest_time_ms:x}"'.encode()
        rendered = Rendered(
            body=body,
            content_type=b"video/mp4" if record.info.is_video else b"audio/mp4",
            etag=etag,
            last_modified_ms=segment.ingest_time_ms,
            cache_control=self._cache_control,
        )
        self._objects.put(key, rendered)
        return rendered


def _part_at(timeline: TrackTimeline, timescale: int, decode_time: int) -> llhls.Part | None:
    """The part of ``timeline`` that starts at ``decode_time``, if one does (complete or not)."""
    entry = timeline.find(decode_time)
    if entry is None:
        return None
    segment = timeline.segment_at(entry.segment_start)
    if segment is None:
        return None
    return next((p for p in llhls.parts_of(segment, timescale) if p.start_time == decode_time), None)


def _is_next(timeline: TrackTimeline, decode_time: int) -> bool:
    """``decode_time`` is where the track's next fragment will start (the preload hint's part)."""
    last = timeline.last
    return last is not None and not last.last and last.end_time == decode_time
