"""Input model of the manifest builders: one channel's tracks, already cut to the window. Pure; no I/O.

The caller reads the timelines and the channel config, keeps each track's *complete* segments inside
the DVR window (and, for LL-HLS later, the in-progress segment as ``partial``) and hands a
``ChannelView`` to ``hls`` / ``dash``. Facts that both formats render (bit rates, frame rate, wall
clock) are derived here once, so an HLS variant and its DASH Representation never disagree.

Times stay integer ticks of the track's timescale; the only conversions are here and in the
renderers, all in integer arithmetic (no float rounding, so output is byte-stable).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date
from fractions import Fraction

from services.shared.channels import ChannelConfig, validate_name
from services.shared.media.models import TrackInfo
from services.shared.timeline import Segment

_MS_PER_DAY = 86_400_000
_UNIX_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


@dataclass(frozen=True, slots=True, kw_only=True)
class Bitrates:
    """A track's bit rates in bits/s (EXT-X-STREAM-INF BANDWIDTH / AVERAGE-BANDWIDTH, DASH @bandwidth).

    peak: the largest segment bit rate in the window; with no segment, btrt maxBitrate, else avgBitrate.
    average: btrt avgBitrate, else measured over the window's segments; never above ``peak``.
    """

    peak: int
    average: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackView:
    """One track as a manifest shows it."""

    name: str  # URI path component; DASH Representation@id
    info: TrackInfo  # from the CMAF header
    segments: tuple[Segment, ...]  # complete segments in the window, in decode order
    ended: bool  # the track's last fragment carried lmsg (EXT-X-ENDLIST; MPD turns static)
    partial: Segment | None = None  # the segment in progress at the live edge (LL-HLS parts, LL-DASH)

    def __post_init__(self) -> None:
        validate_name("track", self.name)
        if self.info.timescale <= 0:
            raise ValueError(f"track {self.name}: timescale must be positive")
        previous_end: int | None = None
        for segment in self.segments:
            if not segment.fragments or segment.duration_ticks <= 0:
                raise ValueError(f"track {self.name}: segment {segment.number} is empty")
            if previous_end is not None and segment.start_time < previous_end:
                raise ValueError(f"track {self.name}: segment {segment.number} overlaps its predecessor")
            previous_end = segment.end_time

    @property
    def timescale(self) -> int:
        return self.info.timescale

    @property
    def bitrates(self) -> Bitrates:
        """Peak and average bit rate, from one pass over the window (the property recomputes: keep it)."""
        peak = total_bytes = total_ticks = 0
        timescale = self.timescale
        for segment in self.segments:
            size, ticks = segment.size, segment.duration_ticks
            peak = max(peak, _ceil_div(size * 8 * timescale, ticks))
            total_bytes += size
            total_ticks += ticks  # gaps carry no bytes and count for nothing
        info = self.info
        if not self.segments:
            peak = info.max_bitrate or info.bitrate or 0
        average = info.bitrate or (_ceil_div(total_bytes * 8 * timescale, total_ticks) if total_ticks else 0)
        return Bitrates(peak=peak, average=min(average, peak) if peak else average)

    @property
    def frame_rate(self) -> Fraction | None:
        """Samples per second over the first segment (exact, e.g. 30000/1001); None without one."""
        if not self.segments or not self.info.is_video:
            return None
        first = self.segments[0]
        samples = sum(f.sample_count for f in first.fragments)
        return Fraction(samples * self.timescale, first.duration_ticks) if samples else None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelView:
    """A channel as the builders see it. ``now_ms`` is an argument, never read from a clock."""

    name: str
    config: ChannelConfig
    tracks: tuple[TrackView, ...]  # in the caller's order: the first audio track is the default
    epoch_ms: int  # Unix ms of media time 0 for every track (MPD@availabilityStartTime)
    now_ms: int  # Unix ms of this render (MPD@publishTime)
    live: bool = False  # the live-edge view (no time-shift): in-progress segments and LL apply

    def __post_init__(self) -> None:
        validate_name("channel", self.name)
        names = [t.name for t in self.tracks]
        if len(set(names)) != len(names):
            raise ValueError(f"channel {self.name}: track names must be unique")

    @property
    def video_tracks(self) -> tuple[TrackView, ...]:
        return tuple(t for t in self.tracks if t.info.is_video)

    @property
    def audio_tracks(self) -> tuple[TrackView, ...]:
        return tuple(t for t in self.tracks if t.info.is_audio)

    @property
    def ended(self) -> bool:
        """Every track has ended (and there is at least one)."""
        return bool(self.tracks) and all(t.ended for t in self.tracks)

    def wallclock_ms(self, ticks: int, timescale: int) -> int:
        """Unix ms of media time ``ticks``: epoch + ticks/timescale, rounded down."""
        return self.epoch_ms + ticks * 1000 // timescale


@functools.lru_cache(maxsize=16)
def _utc_date(day: int) -> str:
    return date.fromordinal(_UNIX_EPOCH_ORDINAL + day).isoformat()


def utc_iso8601(unix_ms: int) -> str:
    """``2023-11-14T22:13:20.000Z``: ISO 8601 UTC with milliseconds, from integer Unix ms.

    Integer-only and cached per day: a playlist formats one of these per listed date-time.
    """
    day, ms_of_day = divmod(unix_ms, _MS_PER_DAY)
    seconds, millis = divmod(ms_of_day, 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{_utc_date(day)}T{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}Z"
