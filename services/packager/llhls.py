"""Low-Latency HLS (RFC 8216bis): partial segments, preload hints, delta updates, blocking reload. Pure.

A channel's media playlists turn low-latency when its fragments (CMAF chunks) are shorter than its
segments: every track has, among its ``RECENT_SEGMENTS`` newest complete segments, one of two or
more parts (one short segment, e.g. cut by a chunk the encoder lost, does not turn low latency off
and on again under a player's feet). A Partial Segment is a run
of consecutive fragments of one segment lasting at least ``MIN_PART_MS`` (so 0.25-0.5 s chunks are one
part each, while per-frame chunks are grouped into ~0.2 s parts instead of 40 ms ones), or the
segment's last run. Grouping is a pure function of the stored timeline, so every packager (and every
restart) cuts and numbers parts identically. A part is addressed by its first fragment's ``tfdt``
(``../media/{track}/part-{t}.m4s``): its URI never changes and it is immutable once listed. A part is
listed once complete; the one being written is the preload hint.

Channel-wide values (RFC 8216bis 6.2.4: EXT-X-SERVER-CONTROL must be the same in every media
playlist of a multivariant playlist, and so must the target duration):
- PART-TARGET: the longest recent fragment of any track, rounded up to 10 µs, so no part exceeds it.
- PART-HOLD-BACK: 3 x PART-TARGET (the RFC's SHOULD; hls.js aims its latency at it).
- CAN-SKIP-UNTIL: 6 x the target duration (the RFC's minimum) — delta playlists (``_HLS_skip``).
- Parts are listed for segments that end within 3 target durations of the playlist's end (6.2.2).

Blocking reload (6.2.5.2) is decided here (``reload_state``) and waited for by the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from urllib.parse import parse_qs

from services.packager.errors import BadRequest
from services.packager.views import ChannelView, TrackView
from services.shared.timeline import FragmentEntry, Segment

UNITS_PER_S = 100_000  # 10 µs, as EXTINF
PART_HOLD_BACK_PARTS = 3
SKIP_TARGETS = 6  # CAN-SKIP-UNTIL, in target durations (RFC minimum)
PART_LIST_TARGETS = 3  # parts are listed for segments this close to the playlist's end
RECENT_SEGMENTS = 8  # segments (per track) whose fragments decide PART-TARGET
BLOCK_TARGETS = 3  # a blocking reload gives up (503) after this many target durations
BLOCKING_MAX_AGE_TARGETS = 6  # Cache-Control of a blocking response: its URL names one state
MIN_PART_MS = 200  # shortest part but a segment's last (Apple's guidance: 0.2-1 s parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class Part:
    """A Partial Segment: consecutive fragments of one segment."""

    index: int  # Part Index within its parent segment (EXT-X-RENDITION-REPORT LAST-PART, _HLS_part)
    fragments: tuple[FragmentEntry, ...]
    complete: bool  # long enough, or its segment is complete: listed and servable

    @property
    def start_time(self) -> int:
        return self.fragments[0].decode_time

    @property
    def end_time(self) -> int:
        return self.fragments[-1].end_time

    @property
    def independent(self) -> bool:
        return self.fragments[0].independent


def parts_of(segment: Segment, timescale: int) -> list[Part]:
    """``segment`` cut into parts (the last one incomplete while the segment is being written)."""
    shortest = MIN_PART_MS * timescale // 1000
    parts: list[Part] = []
    group: list[FragmentEntry] = []
    for fragment in segment.fragments:
        group.append(fragment)
        if group[-1].end_time - group[0].decode_time >= shortest:
            parts.append(Part(index=len(parts), fragments=tuple(group), complete=True))
            group = []
    if group:
        parts.append(Part(index=len(parts), fragments=tuple(group), complete=segment.complete))
    return parts


def complete_parts(track: TrackView, segment: Segment) -> list[Part]:
    return [p for p in parts_of(segment, track.timescale) if p.complete]


@dataclass(frozen=True, slots=True, kw_only=True)
class PartSchedule:
    """The channel-wide low-latency values, all in 10 µs units except ``target_s``."""

    part_target: int
    target_s: int  # EXT-X-TARGETDURATION shared by every media playlist

    @property
    def part_hold_back(self) -> int:
        return PART_HOLD_BACK_PARTS * self.part_target

    @property
    def can_skip_until(self) -> int:
        return SKIP_TARGETS * self.target_s * UNITS_PER_S

    @property
    def advance_part_limit(self) -> int:
        """RFC 8216bis 6.2.5.2: 3 / PART-TARGET (in s) when it is under 1 s, else 3."""
        if self.part_target >= UNITS_PER_S:
            return 3
        return -(-3 * UNITS_PER_S // self.part_target)

    def server_control(self) -> str:
        return (
            f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={seconds(self.part_hold_back)},"
            f"CAN-SKIP-UNTIL={seconds(self.can_skip_until)}"
        )

    def part_inf(self) -> str:
        return f"#EXT-X-PART-INF:PART-TARGET={seconds(self.part_target)}"


def part_schedule(channel: ChannelView, target_s: int) -> PartSchedule | None:
    """The channel's LL-HLS values, or None when it is not low-latency (see the module docstring)."""
    if not channel.live or not channel.tracks:
        return None
    longest = 0
    for track in channel.tracks:
        recent_complete = track.segments[-RECENT_SEGMENTS:]
        if not any(len(parts_of(segment, track.timescale)) >= 2 for segment in recent_complete):
            return None
        recent = [*recent_complete, *([track.partial] if track.partial else [])]
        timescale = track.timescale
        for segment in recent:
            for part in complete_parts(track, segment):
                ticks = part.end_time - part.start_time
                longest = max(longest, -(-ticks * UNITS_PER_S // timescale))
    return PartSchedule(part_target=longest, target_s=target_s)


def seconds(units: int) -> str:
    whole, fraction = divmod(units, UNITS_PER_S)
    return f"{whole}.{fraction:05d}"


def part_uri(track: TrackView, decode_time: int) -> str:
    return f"../media/{track.name}/part-{decode_time}.m4s"


def _units(ticks: int, timescale: int) -> int:
    return (ticks * 2 * UNITS_PER_S + timescale) // (2 * timescale)


def part_lines(track: TrackView, segment: Segment) -> list[str]:
    """One EXT-X-PART per complete part; DURATION from boundaries rounded on the track's timeline."""
    timescale = track.timescale
    lines = []
    for part in complete_parts(track, segment):
        duration = _units(part.end_time, timescale) - _units(part.start_time, timescale)
        independent = ",INDEPENDENT=YES" if part.independent else ""
        uri = part_uri(track, part.start_time)
        lines.append(f'#EXT-X-PART:DURATION={seconds(duration)},URI="{uri}"{independent}')
    return lines


def listed_parts(track: TrackView, target_s: int) -> dict[int, list[str]]:
    """EXT-X-PART lines of the complete segments near the end, by segment number."""
    end = playlist_end(track)
    horizon = PART_LIST_TARGETS * target_s * track.timescale
    return {
        segment.number: part_lines(track, segment)
        for segment in track.segments
        if end - segment.end_time < horizon
    }


def playlist_end(track: TrackView) -> int:
    """Decode time where the track's listed media (segments and complete parts) ends: where the
    next part (the preload hint) starts."""
    if track.partial is not None:
        parts = complete_parts(track, track.partial)
        return parts[-1].end_time if parts else track.partial.start_time
    return track.segments[-1].end_time if track.segments else 0


def tail_lines(channel: ChannelView, track: TrackView, *, query: str) -> list[str]:
    """After the last segment: the in-progress segment's parts, the preload hint, rendition reports."""
    lines: list[str] = []
    if track.partial is not None:
        lines += part_lines(track, track.partial)
    if not track.ended:
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{part_uri(track, playlist_end(track))}"')
    for other in channel.tracks:
        if other.name == track.name:
            continue
        msn, part = last_part(other)
        uri = f"{other.name}.m3u8?{query}" if query else f"{other.name}.m3u8"
        lines.append(f'#EXT-X-RENDITION-REPORT:URI="{uri}",LAST-MSN={msn},LAST-PART={part}')
    return lines


def last_part(track: TrackView) -> tuple[int, int]:
    """(media sequence number, part index) of the newest part the track's playlist lists."""
    if track.partial is not None and (parts := complete_parts(track, track.partial)):
        return track.partial.number, parts[-1].index
    if not track.segments:
        return -1, -1
    newest = track.segments[-1]
    return newest.number, len(parts_of(newest, track.timescale)) - 1


def skipped_segments(track: TrackView, schedule: PartSchedule) -> int:
    """How many leading segments a delta update replaces with EXT-X-SKIP: those that end more than
    CAN-SKIP-UNTIL before the playlist's end."""
    end = playlist_end(track)
    boundary = schedule.can_skip_until * track.timescale // UNITS_PER_S
    count = 0
    for segment in track.segments:
        if end - segment.end_time <= boundary:
            break
        count += 1
    return count


# --- delivery directives (RFC 8216bis 6.2.5) ------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Directives:
    msn: int | None = None
    part: int | None = None
    skip: bool = False

    @property
    def blocking(self) -> bool:
        return self.msn is not None


def parse_directives(query_string: bytes) -> Directives:
    """``_HLS_msn``, ``_HLS_part``, ``_HLS_skip`` from a playlist URI's query (400 when malformed)."""
    if b"_HLS_" not in query_string:
        return Directives()
    params = parse_qs(query_string.decode("latin-1"))

    def number(name: str) -> int | None:
        values = params.get(name)
        if not values:
            return None
        if not values[0].isdigit() or len(values[0]) > 18:
            raise BadRequest(f"{name} must be a decimal integer, not {values[0]!r}")
        return int(values[0])

    msn, part = number("_HLS_msn"), number("_HLS_part")
    if part is not None and msn is None:
        raise BadRequest("_HLS_part needs _HLS_msn (RFC 8216bis 6.2.5.2)")
    skip = params.get("_HLS_skip", [""])[0] in ("YES", "v2")
    return Directives(msn=msn, part=part, skip=skip)


class ReloadState(Enum):
    READY = "ready"
    WAIT = "wait"
    TOO_FAR = "too-far"


def reload_state(track: TrackView, directives: Directives, schedule: PartSchedule | None) -> ReloadState:
    """Whether a blocking reload can be answered now (6.2.5.2), must wait, or asks too far ahead."""
    msn, part = directives.msn, directives.part
    if msn is None or track.ended:
        return ReloadState.READY
    last_complete = track.segments[-1].number if track.segments else -1
    if msn > last_complete + 2:
        return ReloadState.TOO_FAR
    if part is None or schedule is None:  # no parts: wait for the whole segment
        return ReloadState.READY if last_complete >= msn else ReloadState.WAIT
    newest_msn, newest_part = last_part(track)
    if newest_msn > msn or (newest_msn == msn and newest_part >= part):
        return ReloadState.READY
    limit = schedule.advance_part_limit
    if (msn == newest_msn and part - newest_part > limit) or (msn > newest_msn and part + 1 > limit):
        return ReloadState.TOO_FAR
    return ReloadState.WAIT
