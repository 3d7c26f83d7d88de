"""Packager service: from stored tracks and timelines to manifests and segments, just in time.

Everything a response carries is derived from the stored timeline (never from process memory), so
any packager process renders the same bytes for the same data. Renders and assembled segments are
cached in-process, keyed by the timeline versions they were made from; concurrent misses of one key
share a single store read (single-flight). Manifests are rendered here; media objects come from
``segments.CmafSegments`` (init segments, segments, parts) and ``ts_cache.TsSegments`` (TS).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Callable

from services.packager import dash, hls, hls_ts, llhls
from services.packager.errors import BadRequest, NotYetAvailable, StaleChannel, Unavailable
from services.packager.llhls import Directives
from services.packager.segments import CmafSegments
from services.packager.state import ChannelState, Rendered, content_etag, cors_headers
from services.packager.ts_cache import TsSegments
from services.packager.ts_output import TrackSource, default_audio, listable_segments
from services.packager.views import ChannelView, TrackView
from services.packager.window import TimeWindow, check_window, select_segments
from services.shared.asgi import Headers
from services.shared.cache import LruCache, SingleFlight
from services.shared.channels import ChannelConfig, validate_name
from services.shared.errors import NotFound
from services.shared.metrics import Metrics
from services.shared.signal import Signal
from services.shared.store.base import Store
from services.shared.timeline import Segment, TrackTimeline

CT_M3U8 = b"application/vnd.apple.mpegurl"
CT_MPD = b"application/dash+xml"
IMMUTABLE = b"public, max-age=1209600, immutable"
NO_DIRECTIVES = Directives()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class PackagerService:
    def __init__(
        self,
        *,
        store: Store,
        signal: Signal,
        metrics: Metrics,
        clock_ms: Callable[[], int] = _now_ms,
        cache_bytes: int = 256 * 1024 * 1024,
        max_state_age_ms: int = 1000,
    ) -> None:
        self.store = store
        self.signal = signal
        self.metrics = metrics
        self.clock_ms = clock_ms
        self.max_state_age_ms = max_state_age_ms  # bounds staleness if a change was never signalled
        self._states: dict[str, ChannelState] = {}
        self._objects: LruCache[Rendered] = LruCache(cache_bytes, lambda r: len(r.body))
        self._flight: SingleFlight[Rendered] = SingleFlight()
        self.ts = TsSegments(  # TS segments: this LRU, then the cluster's cache, then the remux
            store=store,
            objects=self._objects,
            flight=self._flight,
            metrics=metrics,
            clock_ms=clock_ms,
            cache_control=IMMUTABLE,
        )
        self.cmaf = CmafSegments(  # init segments, segments and parts: this LRU, then the store
            store=store,
            signal=signal,
            metrics=metrics,
            objects=self._objects,
            flight=self._flight,
            state=self.state,
            cache_control=IMMUTABLE,
        )

    # state -------------------------------------------------------------------------------------

    async def state(self, channel: str) -> ChannelState:
        """The channel's snapshot: reused until the next signal for it (or ``max_state_age_ms``)."""
        now = self.clock_ms()
        version = self.signal.version(channel)
        cached = self._states.get(channel)
        if (
            cached is not None
            and cached.signal_version == version
            and now - cached.built_ms < self.max_state_age_ms
        ):
            return cached
        validate_name("channel", channel)
        config = await self.store.get_channel(channel)
        if config is None:
            raise NotFound(f"no channel {channel!r}")
        epoch = await self.store.get_epoch(channel)
        records = await self.store.get_tracks(channel)
        tracks = tuple([(r, await self.store.get_timeline(channel, r.name)) for r in records])
        if epoch is None or not any(t.last for _, t in tracks):
            raise NotYetAvailable(f"channel {channel!r} has no media yet")
        state = ChannelState.build(
            config=config, epoch_ms=epoch, tracks=tracks, signal_version=version, built_ms=now
        )
        if len(self._states) > 4096:
            self._states.clear()
        self._states[channel] = state
        return state

    async def access(self, channel: str) -> tuple[ChannelConfig | None, Headers]:
        """The channel's config (for auth) and CORS headers, from its snapshot when there is one."""
        state = self._states.get(channel)
        if state is not None:
            return state.config, state.cors
        config = await self.store.get_channel(channel) if channel else None
        return config, cors_headers(config.cors_allow_origin if config else "*")

    def _check_live(self, state: ChannelState, window: TimeWindow) -> None:
        now = self.clock_ms()
        config = state.config
        if window.is_live and not state.ended and now - state.last_ingest_ms > config.stale_after_s * 1000:
            raise StaleChannel(
                f"channel {config.name!r} is stale: no new fragment for {config.stale_after_s:g} s",
                config.failover_status,
            )
        if not window.is_live:
            check_window(window, edge_ms=state.edge_ms, dvr_window_s=config.dvr_window_s, now_ms=now)

    def _view(self, state: ChannelState, window: TimeWindow) -> ChannelView:
        edge = state.edge_ms
        views = []
        for record, timeline in state.tracks:
            segments = select_segments(
                timeline,
                epoch_ms=state.epoch_ms,
                timescale=record.info.timescale,
                edge_ms=edge,
                dvr_window_s=state.config.dvr_window_s,
                window=window,
            )
            if not segments:  # nothing listable yet (or an orphan header): leave the track out
                continue
            past_end = window.end_ms is not None and window.end_ms <= self.clock_ms()
            views.append(
                TrackView(
                    name=record.name,
                    info=record.info,
                    segments=segments,
                    ended=timeline.ended or past_end,
                    partial=_in_progress(timeline, segments[-1]) if window.is_live else None,
                )
            )
        return ChannelView(
            name=state.config.name,
            config=state.config,
            tracks=tuple(views),
            epoch_ms=state.epoch_ms,
            now_ms=state.last_ingest_ms,
            live=window.is_live,
        )

    # manifests ---------------------------------------------------------------------------------

    async def manifest(
        self,
        channel: str,
        kind: str,
        track: str | None,
        window: TimeWindow,
        query: str,
        *,
        directives: Directives = NO_DIRECTIVES,
    ) -> Rendered:
        """kind: "hls" / "hls-ts" (multivariant), "hls-media" / "hls-ts-media" (one track's or TS
        variant's playlist), "dash" (MPD). ``directives``: LL-HLS delivery directives of a CMAF
        media playlist (blocking reload, delta update)."""
        state = await self.state(channel)
        self._check_live(state, window)
        if kind != "hls-media" or not window.is_live:
            return self._rendered(state, window, kind, track, query, skip=False)
        if directives.blocking:
            return await self._blocking_playlist(
                channel, state, track or "", window=window, query=query, directives=directives
            )
        return self._rendered(state, window, kind, track, query, skip=directives.skip)

    def _rendered(
        self, state: ChannelState, window: TimeWindow, kind: str, track: str | None, query: str, *, skip: bool
    ) -> Rendered:
        key = (kind, track, window, query, skip)
        cached = state.renders.get(key)
        if cached is not None:
            self.metrics.cache_hits += 1
            return cached
        self.metrics.cache_misses += 1
        view = state.views.get(window)
        if view is None:
            view = state.views[window] = self._view(state, window)
        text, ctype, schedule = self._render(state, view, kind, track, query, skip=skip)
        body = text.encode()
        if schedule is not None:
            max_age = 1  # LL-HLS playlists change every part (contract)
        elif kind == "dash" and dash.low_latency(view) is not None:
            max_age = 1  # an LL-DASH MPD lists a new segment one chunk after it starts
        else:
            max_age = max(1, state.config.segment_duration_ms // 2000)
        rendered = Rendered(
            body=body,
            content_type=ctype,
            etag=content_etag(body),
            last_modified_ms=state.last_ingest_ms,
            cache_control=f"public, max-age={max_age}".encode(),
        )
        state.renders[key] = rendered
        return rendered

    async def _blocking_playlist(
        self,
        channel: str,
        state: ChannelState,
        track: str,
        *,
        window: TimeWindow,
        query: str,
        directives: Directives,
    ) -> Rendered:
        """RFC 8216bis 6.2.5.2: hold until the playlist holds the asked segment/part; 400 when it
        asks too far ahead, 503 after 3 target durations."""
        deadline: float | None = None
        while True:
            view = state.views.get(window)
            if view is None:
                view = state.views[window] = self._view(state, window)
            track_view = next((t for t in view.tracks if t.name == track), None)
            if track_view is None:
                state.track(track)  # 404 for an unknown track
                raise NotYetAvailable(f"track {track!r} has no complete segment in the window yet")
            target_s = hls.channel_target_s(view)
            schedule = llhls.part_schedule(view, target_s)
            verdict = llhls.reload_state(track_view, directives, schedule)
            if verdict is llhls.ReloadState.TOO_FAR:
                msn, part = llhls.last_part(track_view)
                raise BadRequest(
                    f"_HLS_msn={directives.msn} _HLS_part={directives.part} is too far ahead of the "
                    f"playlist's last part ({msn}.{part})"
                )
            if verdict is llhls.ReloadState.READY:
                rendered = self._rendered(state, window, "hls-media", track, query, skip=directives.skip)
                max_age = llhls.BLOCKING_MAX_AGE_TARGETS * target_s
                return dataclasses.replace(rendered, cache_control=f"public, max-age={max_age}".encode())
            now = time.monotonic()
            if deadline is None:
                deadline = now + llhls.BLOCK_TARGETS * target_s
            if now >= deadline:
                raise Unavailable(
                    f"segment {directives.msn} part {directives.part} of {track!r} did not appear "
                    f"within {llhls.BLOCK_TARGETS} target durations"
                )
            if self.signal.version(channel) == state.signal_version:
                await self.signal.wait(channel, deadline - now)
            state = await self.state(channel)
            self._check_live(state, window)

    def _render(
        self, state: ChannelState, view: ChannelView, kind: str, track: str | None, query: str, *, skip: bool
    ) -> tuple[str, bytes, llhls.PartSchedule | None]:
        """The text, its content type and, for a CMAF media playlist, its LL-HLS schedule."""
        if kind == "hls":
            return hls.multivariant_playlist(view, query=query), CT_M3U8, None
        if kind == "hls-ts":
            return hls_ts.multivariant_playlist(view, query=query), CT_M3U8, None
        if kind in ("hls-media", "hls-ts-media"):
            state.track(track or "")
            track_view = next((t for t in view.tracks if t.name == track), None)
            if track_view is None:
                raise NotYetAvailable(f"track {track!r} has no complete segment in the window yet")
            if kind == "hls-media":
                playlist = hls.media_playlist(view, track_view, query=query, skip=skip)
                return playlist.text, CT_M3U8, playlist.schedule
            ts_track = self._ts_variant(state, track_view)
            return hls_ts.media_playlist(view, ts_track, query=query), CT_M3U8, None
        return dash.dash_manifest(view, time_url="time"), CT_MPD, None

    def _ts_variant(self, state: ChannelState, track: TrackView) -> TrackView:
        """A TS variant's playlist lists the segments whose muxed audio is stored too."""
        if not track.info.is_video:
            return track
        segments = listable_segments(track.segments, timescale=track.timescale, audio=_default_audio(state))
        return dataclasses.replace(track, segments=segments)

    # media -------------------------------------------------------------------------------------

    async def init_segment(self, channel: str, track: str) -> Rendered:
        """A track's init segment (``CmafSegments.init_segment``)."""
        return await self.cmaf.init_segment(channel, track)

    async def media_segment(self, channel: str, track: str, start_time: int) -> Rendered:
        """A track's complete CMAF segment (``CmafSegments.media_segment``)."""
        return await self.cmaf.media_segment(channel, track, start_time)

    async def segment_progress(
        self, channel: str, track: str, start_time: int
    ) -> tuple[bytes, AsyncIterator[bytes]] | None:
        """LL-DASH: a segment while it is being written (``CmafSegments.segment_progress``)."""
        return await self.cmaf.segment_progress(channel, track, start_time)

    async def part(self, channel: str, track: str, decode_time: int) -> Rendered:
        """An LL-HLS Partial Segment (``CmafSegments.part``)."""
        return await self.cmaf.part(channel, track, decode_time)

    async def ts_segment(self, channel: str, variant: str, start_time: int) -> Rendered:
        """A variant's MPEG-TS segment (variants are named after their video track, or audio track)."""
        validate_name("channel", channel)
        validate_name("track", variant)
        return await self.ts.get(await self.state(channel), variant, start_time)


def _in_progress(timeline: TrackTimeline, newest_complete: Segment) -> Segment | None:
    """The segment after ``newest_complete`` while it is being written (its fragments so far)."""
    last = timeline.last
    if last is None or last.segment_number <= newest_complete.number or last.last:
        return None
    return timeline.segment_at(last.segment_start)


def _default_audio(state: ChannelState) -> TrackSource | None:
    """The channel's default audio (its first audio track), muxed into every TS video variant."""
    return default_audio(state.tracks)
