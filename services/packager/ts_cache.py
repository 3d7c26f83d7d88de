"""TS segments made once per cluster: process LRU, then the cluster's cache, then the remux.

A TS segment is a pure function of the stored fragments it is made from (``ts_output``), so it is
named by them: ``product_key`` hashes (blake2b) the channel, the variant, the segment's start, the
muxer format (``TS_FORMAT``), the ``created_ms`` of each header used and the identity (decode time,
size, ingest time, filler flag) of every video and audio timeline entry used. A changed input (a real
fragment replacing filler, an entry learned late, a re-sent header, a new muxer) is a new key, so no
cache level ever needs invalidating. A request then goes:

1. the channel snapshot's memo, then the process LRU (the packager's ``LruCache``) under that key,
   found without hashing again while the timeline entries are the same objects (``_Known``): no I/O;
2. otherwise, one load per segment per process however many ask at once (``SingleFlight``):
   the cluster's cache (``PackagedCache.get_packaged``, memcached through the write-through store),
3. else read the fragments and remux, then share the result (``put_packaged``) and keep it (LRU).

The front routes a channel's requests to one packager (consistent hashing), which is therefore the one
that remuxes; a packager taking the channel over after a failover finds the owner's segments in
memcached. The share runs in the background, after the response: a ~900 KB set to two replicas took
6.6 ms p50 (11 ms p99) here, twice the remux, and awaiting it would delay the first response and
every request waiting on the same load. A maker that dies within those milliseconds loses its share;
the next packager makes the segment again, identical.

The audio muxed with a video segment is the audio presented in the segment's presentation interval,
its decode interval shifted by its first sample's composition offset, which only the video bytes tell
(``first_offset``). The packager that reads them shares the offset under a key of the video inputs
alone (``offset_key``), so another packager learns it from 8 bytes instead of a video fragment.

The remux (2-5 ms of CPU) runs in a worker thread (``asyncio.to_thread``; ``remux_in_thread``). It is
pure Python and holds the GIL there too, but the event loop then waits for the GIL at most one switch
interval (5 ms) instead of for every remux queued ahead of it. Measured with ``bench.collapse`` (a
playlist GET every 2 ms while 2 connections make the packager remux continuously, the modes taking
turns every second, on a shared 2-core machine), six runs of 10-30 s per mode: playlist p99 lower in
a thread in four runs (by 1.5-26 ms), 2-3 ms higher in two, 24 against 30 ms on average; p50 lower in
five; remux throughput the same within the noise (120-230 remuxes/s either way).

Manifests are not shared. A playlist or MPD changes with every commit (every part, with low-latency
HLS) and is rendered from the timeline index every packager holds in memory (1-2 ms for a 100-segment
window here), once per commit and memoized, by the one packager the front sends the channel to: there
is no second packager to save that work for. Sharing would cost a memcached round trip (~0.4 ms) per
render miss and a key naming the timeline versions, and would add a way to serve a playlist older than
the local timeline, to save one render per commit on a packager that just took the channel over.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from services.packager.state import ChannelState, Rendered
from services.packager.ts_output import (
    CONTENT_TYPE,
    TS_FORMAT,
    TrackSource,
    TsInputs,
    default_audio,
    first_offset,
    mux_inputs,
    read_fragments,
    select_inputs,
)
from services.shared.cache import LruCache, SingleFlight
from services.shared.metrics import Metrics
from services.shared.store.base import Store
from services.shared.store.packaged import PackagedCache, packaged_cache
from services.shared.timeline import FragmentEntry

log = logging.getLogger(__name__)

Mux = Callable[[TsInputs, Sequence[bytes], Sequence[bytes]], bytes]

SEGMENTS_REMEMBERED = 65_536  # segments whose inputs, offset and key this process knows
_DIGEST_BYTES = 20  # blake2b-160, as the memcached layer hashes its keys
_TS_PACKET = 188


def _identity(entries: Sequence[FragmentEntry]) -> str:
    return ";".join(f"{e.decode_time},{e.size},{e.ingest_time_ms},{e.filler:d}" for e in entries)


def _key(kind: str, channel: str, parts: Sequence[object]) -> str:
    text = "\n".join(str(part) for part in (TS_FORMAT, channel, *parts))
    digest = hashlib.blake2b(text.encode(), digest_size=_DIGEST_BYTES).hexdigest()
    return f"{kind}/{channel[:32]}/{digest}"  # <= 117 characters whatever the names


def offset_key(inputs: TsInputs) -> str:
    """Names the video inputs of a segment alone: what its first composition offset depends on."""
    driving = inputs.driving
    return _key(
        "tso", inputs.channel, (driving.name, driving.record.created_ms, _identity(inputs.segment.fragments))
    )


def product_key(inputs: TsInputs, audio_entries: Sequence[FragmentEntry]) -> str:
    """Names one TS segment by everything it is made from (see the module docstring)."""
    driving, audio = inputs.driving, inputs.audio
    parts: list[object] = [
        driving.name, inputs.start_time, driving.record.created_ms, _identity(inputs.segment.fragments)
    ]  # fmt: skip
    if audio is not None:
        parts += [audio.name, audio.record.created_ms, _identity(audio_entries)]
    return _key("ts", inputs.channel, parts)


def ts_inputs(state: ChannelState, variant: str, start_time: int) -> TsInputs:
    """The inputs of ``variant``'s TS segment at ``start_time`` in the channel's snapshot."""
    record, timeline = state.track(variant)
    driving = TrackSource(record=record, timeline=timeline)
    audio = default_audio(state.tracks) if record.info.is_video else None
    return select_inputs(state.config.name, driving=driving, audio=audio, start_time=start_time)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Known:
    """What this process worked out for one segment, valid while its inputs compare equal (the same
    entry objects, normally: a cheap comparison, where hashing them again would not be)."""

    headers: tuple[object, ...]
    video: tuple[FragmentEntry, ...]
    offset: int
    audio: tuple[FragmentEntry, ...]
    key: str

    def offset_for(self, inputs: TsInputs) -> int | None:
        if self.video == inputs.segment.fragments and self.headers == _headers(inputs):
            return self.offset
        return None


def _headers(inputs: TsInputs) -> tuple[object, ...]:
    audio = inputs.audio
    created = inputs.driving.record.created_ms
    return (created,) if audio is None else (created, audio.name, audio.record.created_ms)


class TsSegments:
    """The TS segments of one packager: ``get`` serves them; ``produced`` and ``shared_hits`` count
    remuxes and segments found in the cluster's cache."""

    def __init__(
        self,
        *,
        store: Store,
        objects: LruCache[Rendered],
        flight: SingleFlight[Rendered],
        metrics: Metrics,
        clock_ms: Callable[[], int],
        cache_control: bytes,
        mux: Mux = mux_inputs,
        remux_in_thread: bool = True,
        share_in_background: bool = True,
    ) -> None:
        self.store = store
        self.shared: PackagedCache | None = packaged_cache(store)
        self._objects = objects
        self._flight = flight
        self._metrics = metrics
        self._clock_ms = clock_ms
        self._cache_control = cache_control
        self._mux = mux
        self.remux_in_thread = remux_in_thread
        self.share_in_background = share_in_background
        self._sharing: set[asyncio.Task[None]] = set()
        self._known: LruCache[_Known] = LruCache(SEGMENTS_REMEMBERED)
        self.produced = 0
        self.shared_hits = 0

    async def get(self, state: ChannelState, variant: str, start_time: int) -> Rendered:
        """``variant``'s TS segment at ``start_time``, as of the channel's snapshot ``state``."""
        memo = ("ts", variant, start_time)  # a new commit is a new snapshot: its inputs are settled
        rendered = state.renders.get(memo)
        if rendered is not None:
            self._metrics.cache_hits += 1
            return rendered
        rendered = state.renders[memo] = await self._get(state, variant, start_time)
        return rendered

    async def _get(self, state: ChannelState, variant: str, start_time: int) -> Rendered:
        inputs = ts_inputs(state, variant, start_time)
        segment = (inputs.channel, variant, start_time)
        known = self._known.get(segment)
        offset = None if known is None else known.offset_for(inputs)
        if known is not None and offset is not None and inputs.audio_entries(offset) == known.audio:
            cached = self._objects.get(("ts", known.key))
            if cached is not None:
                self._metrics.cache_hits += 1
                return cached
        self._metrics.cache_misses += 1
        return await self._flight.do(("ts", *segment), lambda: self._load(state, inputs))

    async def _load(self, state: ChannelState, inputs: TsInputs) -> Rendered:
        segment = (inputs.channel, inputs.driving.name, inputs.start_time)
        ttl_s = state.config.segment_ttl_s
        first: dict[int, bytes] = {}  # the video fragment read to find the offset, kept for the remux
        known = self._known.get(segment)
        offset = None if known is None else known.offset_for(inputs)
        if offset is None:
            offset = 0 if inputs.audio is None else await self._offset(inputs, first, ttl_s)
        audio_entries = inputs.audio_entries(offset)
        key = product_key(inputs, audio_entries)
        self._known.put(
            segment,
            _Known(
                headers=_headers(inputs),
                video=inputs.segment.fragments,
                offset=offset,
                audio=audio_entries,
                key=key,
            ),
        )
        cached = self._objects.get(("ts", key))
        if cached is not None:
            return cached
        entries = (*inputs.segment.fragments, *audio_entries)
        ttl_s -= (self._clock_ms() - min(e.ingest_time_ms for e in entries)) // 1000  # the oldest expires
        body = await self._shared_get(key)
        if body is None:
            body = await self._produce(inputs, audio_entries, first)
            self.produced += 1
            await self._share(key, body, ttl_s)
        else:
            self.shared_hits += 1
        newest = max(e.ingest_time_ms for e in entries)
        rendered = Rendered(
            body=body,
            content_type=CONTENT_TYPE,
            etag=f'"ts-{inputs.start_time:x}-{len(body):x}-{newest:x}"'.encode(),
            last_modified_ms=newest,
            cache_control=self._cache_control,
        )
        self._objects.put(("ts", key), rendered)
        return rendered

    async def _offset(self, inputs: TsInputs, first: dict[int, bytes], ttl_s: int) -> int:
        """The video's first composition offset: shared by another packager, else read (and shared)."""
        key = offset_key(inputs)
        shared = await self._shared_get(key)
        if shared is not None and len(shared) == 8:
            return int.from_bytes(shared, "big", signed=True)
        entry = inputs.segment.fragments[0]
        driving = inputs.driving
        (data,) = await read_fragments(
            self.store, inputs.channel, driving.name, [entry], start_time=inputs.start_time
        )
        first[entry.decode_time] = data
        offset = first_offset(data, driving.info)
        left_s = ttl_s - (self._clock_ms() - entry.ingest_time_ms) // 1000
        await self._share(key, offset.to_bytes(8, "big", signed=True), left_s)
        return offset

    async def _produce(
        self, inputs: TsInputs, audio_entries: Sequence[FragmentEntry], first: dict[int, bytes]
    ) -> bytes:
        channel, start = inputs.channel, inputs.start_time
        driving = [e for e in inputs.segment.fragments if e.decode_time not in first]
        reads = [read_fragments(self.store, channel, inputs.driving.name, driving, start_time=start)]
        if inputs.audio is not None:
            reads.append(
                read_fragments(self.store, channel, inputs.audio.name, audio_entries, start_time=start)
            )
        parts = await asyncio.gather(*reads)  # every fragment read issued together
        fetched = first | dict(zip((e.decode_time for e in driving), parts[0], strict=True))
        video = [fetched[e.decode_time] for e in inputs.segment.fragments]
        audio = parts[1] if len(parts) > 1 else []
        if self.remux_in_thread:
            return await asyncio.to_thread(self._mux, inputs, video, audio)
        return self._mux(inputs, video, audio)

    async def _shared_get(self, key: str) -> bytes | None:
        if self.shared is None:
            return None
        value = await self.shared.get_packaged(key)
        if value is not None and key.startswith("ts/") and not _looks_like_ts(value):
            return None  # verified by the cache layer already (CRC32s): a cheap second guard
        return value

    async def _share(self, key: str, value: bytes, ttl_s: int) -> None:
        if self.shared is None or ttl_s < 1:
            return
        put = self.shared.put_packaged(key, value, ttl_s=ttl_s)
        if not self.share_in_background:
            await put
            return
        task = asyncio.create_task(put)
        self._sharing.add(task)  # held until done: the loop keeps only weak references to tasks
        task.add_done_callback(self._shared)

    def _shared(self, task: asyncio.Task[None]) -> None:
        self._sharing.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:  # put_packaged should not raise
            log.warning("sharing a TS segment failed: %r", exc)

    async def drain(self) -> None:
        """Wait until the shares in flight are done (tests and benchmarks; a share never raises)."""
        while self._sharing:
            await asyncio.gather(*self._sharing, return_exceptions=True)


def _looks_like_ts(value: bytes) -> bool:
    return bool(value) and len(value) % _TS_PACKET == 0 and value[0] == 0x47
