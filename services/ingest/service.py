"""Ingest service: which channel and track a request feeds, and the commit of headers and fragments.

No HTTP here: ``app.IngestApp`` feeds request bytes through a ``CmafReader`` and hands the events to a
``TrackWriter``, which validates them against the stored timeline and commits them one by one.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from services.ingest.errors import BadTimeline, Forbidden, NotCmafTrack, TooManyRequests, UnknownChannel
from services.ingest.manifest import IngestManifest, parse_ingest_manifest
from services.shared.auth import Credentials, may_ingest
from services.shared.cache import LruCache
from services.shared.channels import ChannelConfig, TrackRecord, validate_name
from services.shared.media.errors import MediaError, MissingHeader
from services.shared.media.header import parse_header
from services.shared.media.models import CmafFragment, CmafHeader, TrackInfo
from services.shared.media.reader import CmafReader
from services.shared.metrics import Metrics
from services.shared.ratelimit import RateLimiter
from services.shared.signal import Signal
from services.shared.store.base import CommitResult, Store
from services.shared.timeline import FragmentEntry, Placement, place_fragment

MANIFEST_META_KEY = "ingest.mpd"
INIT_BY_PATH_PREFIX = "init-path:"  # headers remembered by request path, for MPDs that arrive later
_STREAMS = re.compile(r"Streams\(([^)/]*)\)")
_MEDIA_EXTENSIONS = (".cmfv", ".cmfa", ".cmft", ".cmfm", ".mp4", ".m4s", ".m4v", ".m4a", ".isml", ".ismv")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _strip_extension(name: str) -> str:
    for ext in _MEDIA_EXTENSIONS:
        if name.lower().endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)]
    return name


def track_from_path(path: str, manifest: IngestManifest | None) -> str:
    """Track name of a request: ``Streams(<name>)``, else the posted MPD's match, else dir or stem."""
    streams = _STREAMS.search(path)
    if streams:
        return validate_name("track", _strip_extension(streams.group(1)))
    if manifest is not None:
        rep = manifest.track_for(path)
        if rep is not None:
            return validate_name("track", rep)
    directory, _, filename = path.rpartition("/")
    if directory:
        return validate_name("track", directory.rsplit("/", 1)[-1])
    return validate_name("track", _strip_extension(filename).split(".", 1)[0])


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestSettings:
    auto_create: bool = True  # create a channel on its first ingest (only without auth)
    idle_timeout_s: float = 10.0  # a sender silent this long mid-body is cut off (408)
    # A fragment whose track has no header yet waits this long for its init or MPD (sent at the same
    # time on another connection, maybe to another ingest node) before the 412.
    header_wait_s: float = 2.0
    header_poll_s: float = 0.05


@dataclass(slots=True, kw_only=True)
class TrackWriter:
    """Commits one track's CMAF header and fragments, validated against the stored timeline."""

    store: Store
    signal: Signal
    metrics: Metrics
    channel: ChannelConfig
    track: str
    header: CmafHeader | None
    source_path: str = ""  # request path; per-segment headers are also remembered under it
    clock_ms: Callable[[], int] = _now_ms
    committed: int = 0
    duplicates: int = 0
    _record: TrackRecord | None = field(default=None)

    def reader(self) -> CmafReader:
        return CmafReader(max_box_bytes=self.channel.max_object_bytes, header=self.header)

    async def on_header(self, header: CmafHeader) -> None:
        if len(header.tracks) != 1:
            raise NotCmafTrack(f"a CMAF header carries exactly one track; this moov has {len(header.tracks)}")
        record = TrackRecord(
            channel=self.channel.name, name=self.track, info=header.tracks[0], created_ms=self.clock_ms()
        )
        await self.store.put_track(record, header.data, ttl_s=self.channel.init_ttl_s)
        if self.source_path and not _STREAMS.search(self.source_path):
            key = INIT_BY_PATH_PREFIX + self.source_path
            await self.store.put_meta(self.channel.name, key, header.data, ttl_s=self.channel.init_ttl_s)
        self.header, self._record = header, record
        self.signal.changed(self.channel.name, self.track)

    async def on_fragment(self, fragment: CmafFragment, received_ns: int) -> CommitResult:
        info = self._track_info()
        if fragment.track_id != info.track_id:
            raise BadTimeline(f"traf track_ID {fragment.track_id} is not the header's {info.track_id}")
        if not fragment.samples:
            raise BadTimeline("trun carries no samples")
        timeline = await self.store.get_timeline(self.channel.name, self.track)
        existing = timeline.find(fragment.decode_time)
        last = timeline.last
        refresh = getattr(self.store, "refresh_timeline", None)  # shared stores only
        follows = last is not None and fragment.decode_time == last.end_time
        if refresh is not None and existing is None and not follows:
            # The previous fragment may have been committed by another ingest node (a front
            # spreading per-segment PUTs): learn it first, so this one is placed and numbered after
            # it. A fragment that follows this node's own last entry costs no query.
            await refresh(self.channel.name, self.track)
            timeline = await self.store.get_timeline(self.channel.name, self.track)
            existing = timeline.find(fragment.decode_time)
        if existing is not None and not (existing.filler and not fragment.is_filler):
            self.duplicates += 1
            return CommitResult.DUPLICATE
        entry = self._entry(fragment, existing, timeline.last, info.timescale)
        await self._ensure_epoch(fragment, info.timescale)
        result = await self.store.commit_fragment(
            self.channel.name, self.track, entry, fragment.data, ttl_s=self.channel.segment_ttl_s
        )
        if result is CommitResult.DUPLICATE:
            self.duplicates += 1
        else:
            self.committed += 1
            self.signal.committed(self.channel.name, self.track, entry)
            self.metrics.observe_publish(time.perf_counter_ns() - received_ns, fragment.size)
        return result

    def _track_info(self) -> TrackInfo:
        if self.header is None:
            raise MissingHeader(
                f"no CMAF header received for track {self.track!r}: send the init segment first"
            )
        return self.header.tracks[0]

    def _entry(
        self,
        fragment: CmafFragment,
        existing: FragmentEntry | None,
        last: FragmentEntry | None,
        timescale: int,
    ) -> FragmentEntry:
        if existing is not None:  # a real fragment replacing "slat" filler keeps its place
            if fragment.duration_ticks != existing.duration_ticks:
                raise BadTimeline(
                    f"fragment replacing filler at tfdt {fragment.decode_time} lasts "
                    f"{fragment.duration_ticks} ticks, the filler {existing.duration_ticks}"
                )
            placement = Placement(
                segment_number=existing.segment_number,
                segment_start=existing.segment_start,
                part_number=existing.part_number,
            )
        else:
            if last is not None and fragment.decode_time < last.end_time:
                raise BadTimeline(
                    f"tfdt baseMediaDecodeTime {fragment.decode_time} overlaps or goes back: "
                    f"the track's last fragment ends at {last.end_time}"
                )
            placement = place_fragment(
                last,
                decode_time=fragment.decode_time,
                duration_ticks=fragment.duration_ticks,
                independent=fragment.starts_with_keyframe,
                target_ticks=self.channel.segment_duration_ms * timescale // 1000,
            )
        return FragmentEntry(
            decode_time=fragment.decode_time,
            duration_ticks=fragment.duration_ticks,
            sample_count=fragment.sample_count,
            independent=fragment.starts_with_keyframe,
            segment_number=placement.segment_number,
            segment_start=placement.segment_start,
            part_number=placement.part_number,
            size=fragment.size,
            ingest_time_ms=self.clock_ms(),
            last=fragment.is_last,
            filler=fragment.is_filler,
        )

    async def _ensure_epoch(self, fragment: CmafFragment, timescale: int) -> None:
        if fragment.prft is not None:
            epoch = fragment.prft.wallclock_ms - fragment.prft.media_time * 1000 // timescale
        else:
            end = fragment.decode_time + fragment.duration_ticks
            epoch = self.clock_ms() - end * 1000 // timescale
        await self.store.set_epoch_if_absent(self.channel.name, epoch)


@dataclass(slots=True, kw_only=True)
class IngestService:
    store: Store
    signal: Signal
    metrics: Metrics
    settings: IngestSettings = field(default_factory=IngestSettings)
    clock_ms: Callable[[], int] = _now_ms
    limiter: RateLimiter = field(default_factory=RateLimiter)
    _manifests: dict[bytes, IngestManifest] = field(default_factory=dict)
    _headers: LruCache[CmafHeader] = field(default_factory=lambda: LruCache(4096))

    def authorize(self, channel: ChannelConfig, creds: Credentials) -> None:
        """403 without a read-write key (when the channel has keys); 429 over its request limit."""
        if not may_ingest(channel.auth, creds):
            raise Forbidden(f"channel {channel.name!r} needs a read-write key for ingest")
        if not self.limiter.allow(channel.name, channel.requests_per_s):
            self.metrics.throttles += 1
            raise TooManyRequests(f"channel {channel.name!r} is over {channel.requests_per_s:g} requests/s")

    async def channel(self, name: str) -> ChannelConfig:
        validate_name("channel", name)
        config = await self.store.get_channel(name)
        if config is not None:
            return config
        if not self.settings.auto_create:
            raise UnknownChannel(f"channel {name!r} does not exist and auto-create is off")
        config = ChannelConfig(name=name)
        await self.store.put_channel(config)
        return config

    async def accept_manifest(self, channel: ChannelConfig, body: bytes) -> IngestManifest:
        manifest = parse_ingest_manifest(body)
        await self.store.put_meta(channel.name, MANIFEST_META_KEY, body, ttl_s=channel.init_ttl_s)
        self._manifests[body] = manifest
        for rep in manifest.representations:
            if await self.store.get_init(channel.name, rep.representation_id) is None:
                await self._adopt(channel, manifest, rep.representation_id)
        return manifest

    async def _manifest(self, channel: str) -> IngestManifest | None:
        raw = await self.store.get_meta(channel, MANIFEST_META_KEY)
        if raw is None:
            return None
        manifest = self._manifests.get(raw)
        if manifest is None:
            manifest = self._manifests[raw] = parse_ingest_manifest(raw)
            if len(self._manifests) > 256:
                self._manifests.pop(next(iter(self._manifests)))
        return manifest

    async def track_name(self, channel: str, path: str) -> str:
        """Validated track name for a request path (before any channel is created for it)."""
        validate_name("channel", channel)
        if _STREAMS.search(path):
            return track_from_path(path, None)
        return track_from_path(path, await self._manifest(channel))

    async def writer(self, channel: ChannelConfig, track: str, path: str = "") -> TrackWriter:
        """A writer seeded with the track's stored header, if one was received before.

        FFmpeg's DASH muxer may PUT an init segment before the MPD that names its representation;
        such a header was remembered by path, and is adopted here once the MPD maps it.
        """
        header = await self._stored_header(channel, track)
        writer = TrackWriter(
            store=self.store,
            signal=self.signal,
            metrics=self.metrics,
            channel=channel,
            track=track,
            header=header,
            source_path=path,
            clock_ms=self.clock_ms,
        )
        if header is None and path and not _STREAMS.search(path):
            manifest = await self._manifest(channel.name)
            if manifest is not None:
                writer.header = await self._adopt(channel, manifest, track)
        return writer

    async def writer_once_headed(self, channel: ChannelConfig, path: str, writer: TrackWriter) -> TrackWriter:
        """A writer with a header for a per-segment request whose body starts with a fragment.

        An encoder sends its init segment, its MPD and its first segment on separate connections
        (FFmpeg's DASH muxer does not wait for answers), so behind a round-robin front the segment
        can reach a node before the MPD that names its track, or the header, is stored. Such a
        request waits up to ``header_wait_s`` for them, re-resolving the track name from the MPD;
        after that the writer without a header answers 412 as before.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.header_wait_s
        while writer.header is None and loop.time() < deadline:
            await asyncio.sleep(self.settings.header_poll_s)
            track = await self.track_name(channel.name, path)
            writer = await self.writer(channel, track, path)
        return writer

    async def _stored_header(self, channel: ChannelConfig, track: str) -> CmafHeader | None:
        """The track's CMAF header, parsed once per version (a re-sent header bumps ``created_ms``)."""
        record = next((r for r in await self.store.get_tracks(channel.name) if r.name == track), None)
        reload_tracks = getattr(self.store, "reload_tracks", None)  # shared stores only
        if record is None and reload_tracks is not None:
            await reload_tracks(channel.name)  # the header may have come in through another node
            record = next((r for r in await self.store.get_tracks(channel.name) if r.name == track), None)
        if record is None:
            return None
        key = (channel.name, track, record.created_ms)
        header = self._headers.get(key)
        if header is None:
            init = await self.store.get_init(channel.name, track)
            header = _parse_header(init, channel) if init is not None else None
            if header is not None:
                self._headers.put(key, header)
        return header

    async def _adopt(self, channel: ChannelConfig, manifest: IngestManifest, track: str) -> CmafHeader | None:
        rep = manifest.representation(track)
        if rep is None or rep.initialization_path is None:
            return None
        init = await self.store.get_meta(channel.name, INIT_BY_PATH_PREFIX + rep.initialization_path)
        header = _parse_header(init, channel) if init is not None else None
        if header is None:
            return None
        adopter = TrackWriter(
            store=self.store,
            signal=self.signal,
            metrics=self.metrics,
            channel=channel,
            track=track,
            header=None,
            clock_ms=self.clock_ms,
        )
        await adopter.on_header(header)
        orphan = track_from_path(rep.initialization_path, None)
        if orphan != track and not await self.store.get_timeline(channel.name, orphan):
            await self.store.delete_track(channel.name, orphan)
        return header


def _parse_header(init: bytes, channel: ChannelConfig) -> CmafHeader | None:
    """A stored CMAF header (validated when it was received) parsed back into its model."""
    if len(init) > channel.max_object_bytes:
        return None
    try:
        return parse_header(init)
    except MediaError:
        return None
