"""Which segments a manifest lists: the live DVR window, or a ``?start=&end=`` time-shift window. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from services.packager.errors import BadRequest, OutsideWindow
from services.shared.timeline import Segment, TrackTimeline

_NUMBER = re.compile(r"\d+(\.\d+)?")


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeWindow:
    """Wall-clock bounds in Unix ms; None = open."""

    start_ms: int | None = None
    end_ms: int | None = None

    @property
    def is_live(self) -> bool:
        return self.start_ms is None and self.end_ms is None


def parse_instant(value: str) -> int:
    """Unix seconds (``1700000000`` or with fraction) or ISO 8601 → Unix ms."""
    if _NUMBER.fullmatch(value):
        return round(float(value) * 1000)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"time {value!r} is neither Unix seconds nor ISO 8601") from None
    if parsed.tzinfo is None:
        raise BadRequest(f"time {value!r} has no time zone")
    return round(parsed.timestamp() * 1000)


def parse_window(start: str | None, end: str | None) -> TimeWindow:
    window = TimeWindow(
        start_ms=parse_instant(start) if start else None, end_ms=parse_instant(end) if end else None
    )
    if window.start_ms is not None and window.end_ms is not None and window.end_ms <= window.start_ms:
        raise BadRequest("end must be after start")
    return window


def wall_ms(epoch_ms: int, ticks: int, timescale: int) -> int:
    return epoch_ms + ticks * 1000 // timescale


def check_window(window: TimeWindow, *, edge_ms: int, dvr_window_s: int, now_ms: int) -> None:
    """404 (OutsideWindow) for a time-shift request that reaches outside the DVR window."""
    oldest = edge_ms - dvr_window_s * 1000
    if window.start_ms is not None and (window.start_ms < oldest or window.start_ms > now_ms):
        raise OutsideWindow("start is outside the channel's DVR window")
    if window.end_ms is not None and window.end_ms < oldest:
        raise OutsideWindow("end is outside the channel's DVR window")


def select_segments(
    timeline: TrackTimeline,
    *,
    epoch_ms: int,
    timescale: int,
    edge_ms: int,
    dvr_window_s: int,
    window: TimeWindow,
) -> tuple[Segment, ...]:
    """Complete segments inside the DVR window (ending after edge - window) and the time-shift bounds."""
    oldest = edge_ms - dvr_window_s * 1000
    chosen: list[Segment] = []
    for segment in timeline.segments():
        if not segment.complete:
            continue
        start = wall_ms(epoch_ms, segment.start_time, timescale)
        end = wall_ms(epoch_ms, segment.end_time, timescale)
        if start < oldest:
            continue
        if window.start_ms is not None and end <= window.start_ms:
            continue
        if window.end_ms is not None and start >= window.end_ms:
            continue
        chosen.append(segment)
    return tuple(chosen)
