"""DASH MPD (ISO/IEC 23009-1, DASH-IF IOP) for CMAF tracks: SegmentTemplate + SegmentTimeline. Pure.

``dash_manifest`` takes a ``ChannelView`` and returns the MPD text; routes only send it. Built with
``xml.etree.ElementTree`` (escaping for free; attribute order is insertion order, so output is stable).

Timing model:
- dynamic: MPD@availabilityStartTime is the channel epoch (wall clock of media time 0); Period start
  0 and presentationTimeOffset 0, so a segment at ``t`` ticks is presented at AST + t/timescale, the
  same instant HLS gives it in EXT-X-PROGRAM-DATE-TIME.
- static (every track ended): a self-contained presentation of the window. Presentation time 0 is
  the window's earliest start (``origin_ms``, rounded down to ms); each Representation gets
  presentationTimeOffset = origin in its own ticks (rounded down, so never after its first segment),
  and mediaPresentationDuration runs to the latest end (rounded up). Keeping media time 0 there would
  give encoders with Unix-epoch ``tfdt`` (DASH-IF ingest's recommendation) a 50-year seek bar.
- suggestedPresentationDelay is 4 x the target duration. dash.js plays at live edge minus this value
  when the MPD has it (``useSuggestedPresentationDelay``; its own default is 4 segments). A segment
  is listed only once complete, and it is complete only when the next fragment has arrived (up to one
  more target after its end); then a player sees it up to one minimumUpdatePeriod (1 target) plus the
  CDN's manifest max-age (0.5 target) later. 3 targets left dash.js a stall 2 s after starting in a CI
  run (a 0.3 s 'waiting'); 4 keep about one segment buffered in that worst case.
- minBufferTime is one target: a player holding one segment can start. maxSegmentDuration is the
  longest segment in the window (ms, rounded up), at least one target.

Low latency (LL-DASH, DASH-IF IOP low-latency modes), for the live-edge view of a channel whose
fragments (CMAF chunks) are shorter than its segments: every track has, among its
``LL_RECENT_SEGMENTS`` newest complete segments, one of two or more fragments (the LL-HLS condition
too; one segment cut short by a lost chunk does not turn low latency off). Then, as the DASH-IF
reference (livesim2) does for SegmentTimeline:
- a hole of up to one target between segments (a chunk the encoder lost) is bridged: the segment
  before it is listed up to the next one's start. dash.js looks for the next segment at start + d
  (+ 10 ms) of the segment it loaded, so across an unbridged hole it finds none and waits; across a
  bridged one it finds the next segment (or, once, the bridged one again) and its gap controller
  jumps the hole in the media. A longer gap (an outage) keeps its explicit ``t``;
- the segment in progress is listed as soon as its first chunk is committed, with the duration it is
  expected to reach (``listed_duration``); the next MPD states the real one. dash.js 5 never
  extrapolates a SegmentTimeline (only ``S@r="-1"``, which we do not use), so a segment it is to fetch
  while being written must be in the timeline. It asks for the segment after one at
  ``start + d + 10 ms`` of the refreshed timeline, so an over-estimate is safe and one above 10 ms too
  short makes it fetch that segment twice: the listed duration is at least the target and at least
  the previous segment's;
- SegmentTemplate@availabilityTimeOffset = target - chunk (the same in every Representation, so each
  AdaptationSet has one availability window) and @availabilityTimeComplete="false": a segment may be
  requested once its first chunk is out, and the origin sends it chunk by chunk as chunks are
  committed (``progressive``). dash.js turns its low-latency mode on from availabilityTimeComplete=
  "false" and then loads such segments with fetch(), appending every complete moof + mdat at once;
- minimumUpdatePeriod is 1 s (at most the target): the in-progress segment appears in the MPD one
  chunk after it starts, and players only learn of it by polling (dash.js polls at most once a
  second);
- a ServiceDescription: Latency@target = chunk + 2 x the update period (player poll + CDN max-age of
  the MPD) + 0.5 s, rounded up to 100 ms; @max twice that (dash.js seeks back to the edge past
  max - target + 0.5 s of drift), @min chunk + update period. PlaybackRate 0.96-1.04 (livesim2's:
  a slow, inaudible catch-up). dash.js takes Latency@target as its live delay over
  suggestedPresentationDelay, which stays for players that ignore ServiceDescription;
- a ProducerReferenceTime per AdaptationSet, referenced by Latency@referenceId: media time 0 at
  availabilityStartTime (the channel epoch, from the encoder's prft when it sends one). dash.js 5.2
  applies PRT offsets only to SegmentTemplate without SegmentTimeline, and the offset here is 0
  anyway; it is for DVB/DASH-IF players that anchor the latency target to it.
A time-shifted view, a static MPD or an unchunked channel renders exactly as without low latency.

Grouping: video tracks share an AdaptationSet per codec family (avc1/avc3, hvc1/hev1, ...) and role;
audio tracks one per language (and codec family and role, which cannot switch seamlessly either).
Every Representation has its own SegmentTemplate, since tracks of one set may have different
timelines. A track without segments yet is left out (a SegmentTimeline needs at least one S).
"""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from math import gcd

from services.packager.views import ChannelView, TrackView, utc_iso8601

MPD_NAMESPACE = "urn:mpeg:dash:schema:mpd:2011"
PROFILES = "urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019"
UTC_TIMING_SCHEME = "urn:mpeg:dash:utc:http-iso:2014"
ROLE_SCHEME = "urn:mpeg:dash:role:2011"
AUDIO_CHANNEL_SCHEME = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011"
PRESENTATION_DELAY_TARGETS = 4
LL_UPDATE_PERIOD_MS = 1000
LL_LATENCY_MARGIN_MS = 500
LL_PLAYBACK_RATES = ("0.96", "1.04")  # ServiceDescription PlaybackRate min, max
LL_RECENT_SEGMENTS = 8  # segments (per track) whose fragments decide the chunk duration
_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
_CODEC_FAMILIES = {"avc1": "avc", "avc3": "avc", "hvc1": "hevc", "hev1": "hevc"}


@dataclass(frozen=True, slots=True, kw_only=True)
class _SetKey:
    content_type: str  # AdaptationSet@contentType: "video" | "audio"
    codec_family: str
    language: str | None  # AdaptationSet@lang
    role: str | None  # Role@value


@dataclass(frozen=True, slots=True, kw_only=True)
class LowLatency:
    """A channel's LL-DASH values (see the module docstring); durations in ms."""

    chunk_ms: int  # the longest recent fragment of any track, rounded up
    target_ms: int  # the channel's target segment duration

    @property
    def availability_offset_ms(self) -> int:  # SegmentTemplate@availabilityTimeOffset
        return max(0, self.target_ms - self.chunk_ms)

    @property
    def update_period_ms(self) -> int:  # MPD@minimumUpdatePeriod
        return min(self.target_ms, LL_UPDATE_PERIOD_MS)

    @property
    def latency_target_ms(self) -> int:  # ServiceDescription Latency@target
        exact = self.chunk_ms + 2 * self.update_period_ms + LL_LATENCY_MARGIN_MS
        return -(-exact // 100) * 100


def low_latency(channel: ChannelView) -> LowLatency | None:
    """The channel's LL-DASH values, or None when its MPD is not low-latency."""
    if not channel.live or channel.ended or not channel.tracks:
        return None
    longest = 0
    for track in channel.tracks:
        recent_complete = track.segments[-LL_RECENT_SEGMENTS:]
        if not any(len(segment.fragments) >= 2 for segment in recent_complete):
            return None
        recent = [*recent_complete, *([track.partial] if track.partial else [])]
        for segment in recent:
            for fragment in segment.fragments:
                longest = max(longest, -(-fragment.duration_ticks * 1000 // track.timescale))
    return LowLatency(chunk_ms=longest, target_ms=channel.config.target_ms)


def listed_duration(track: TrackView, target_ms: int) -> int:
    """Ticks the in-progress segment is listed with: what it has already, and at least the target
    and the previous segment's duration (see the module docstring). Requires ``track.partial``."""
    partial = track.partial
    if partial is None:
        raise ValueError(f"track {track.name} has no segment in progress")
    previous = track.segments[-1].duration_ticks if track.segments else 0
    return max(target_ms * track.timescale // 1000, previous, partial.duration_ticks)


def dash_manifest(channel: ChannelView, *, time_url: str) -> str:
    """The MPD of ``/live/{ch}/dash/manifest.mpd``; ``time_url`` is the origin's own UTC time endpoint."""
    static = channel.ended
    origin_ms = _origin_ms(channel) if static else 0
    ll = None if static else low_latency(channel)
    attributes = _static_attributes(channel, origin_ms) if static else _live_attributes(channel, ll)
    mpd = ET.Element("MPD", attributes)
    if ll is not None:
        _service_description(mpd, ll)
    period = ET.SubElement(mpd, "Period", {"id": "0", "start": "PT0S"})
    for index, (key, tracks) in enumerate(_adaptation_groups(channel)):
        adaptation_set = _adaptation_set(period, index, key, tracks)
        if ll is not None:
            _producer_reference_time(adaptation_set, channel, time_url)
        for track in tracks:
            _representation(adaptation_set, track, origin_ms, ll, channel.config.target_ms)
    if not static:
        ET.SubElement(mpd, "UTCTiming", {"schemeIdUri": UTC_TIMING_SCHEME, "value": time_url})
    ET.indent(mpd, space="  ")
    return _XML_DECLARATION + ET.tostring(mpd, encoding="unicode") + "\n"


# --- MPD ------------------------------------------------------------------------------------------


def _live_attributes(channel: ChannelView, ll: LowLatency | None) -> dict[str, str]:
    target_ms = channel.config.target_ms
    return {
        "xmlns": MPD_NAMESPACE,
        "profiles": PROFILES,
        "type": "dynamic",
        "availabilityStartTime": utc_iso8601(channel.epoch_ms),
        "publishTime": utc_iso8601(channel.now_ms),
        "minimumUpdatePeriod": duration_ms(target_ms if ll is None else ll.update_period_ms),
        "timeShiftBufferDepth": duration_ms(channel.config.dvr_window_s * 1000),
        "suggestedPresentationDelay": duration_ms(PRESENTATION_DELAY_TARGETS * target_ms),
        "maxSegmentDuration": duration_ms(max(target_ms, _longest_segment_ms(channel, ll))),
        "minBufferTime": duration_ms(target_ms),
    }


def _longest_segment_ms(channel: ChannelView, ll: LowLatency | None) -> int:
    longest = 0
    for track in channel.tracks:
        durations = [s.duration_ticks for s in track.segments]
        if ll is not None and track.partial is not None:
            durations.append(listed_duration(track, ll.target_ms))
        longest = max([longest, *(-(-d * 1000 // track.timescale) for d in durations)])
    return longest


def _service_description(mpd: ET.Element, ll: LowLatency) -> None:
    target = ll.latency_target_ms
    description = ET.SubElement(mpd, "ServiceDescription", {"id": "0"})
    ET.SubElement(
        description,
        "Latency",
        {
            "referenceId": "0",
            "target": str(target),
            "max": str(2 * target),
            "min": str(ll.chunk_ms + ll.update_period_ms),
        },
    )
    slowest, fastest = LL_PLAYBACK_RATES
    ET.SubElement(description, "PlaybackRate", {"min": slowest, "max": fastest})


def _static_attributes(channel: ChannelView, origin_ms: int) -> dict[str, str]:
    ends = (-(-s.end_time * 1000 // t.timescale) for t in channel.tracks for s in t.segments[-1:])
    end_ms = max(ends, default=origin_ms)
    return {
        "xmlns": MPD_NAMESPACE,
        "profiles": PROFILES,
        "type": "static",
        "publishTime": utc_iso8601(channel.now_ms),
        "mediaPresentationDuration": duration_ms(end_ms - origin_ms),
        "minBufferTime": duration_ms(channel.config.target_ms),
    }


def _origin_ms(channel: ChannelView) -> int:
    """Media time (ms, rounded down) of the earliest segment in the window; 0 without any."""
    starts = [t.segments[0].start_time * 1000 // t.timescale for t in channel.tracks if t.segments]
    return min(starts, default=0)


# --- AdaptationSet --------------------------------------------------------------------------------


def _adaptation_groups(channel: ChannelView) -> list[tuple[_SetKey, list[TrackView]]]:
    """Video sets first, then audio; each in order of first appearance (no hash-order dependence)."""
    groups: dict[_SetKey, list[TrackView]] = {}
    for track in (*channel.video_tracks, *channel.audio_tracks):
        if track.segments:
            groups.setdefault(_set_key(track), []).append(track)
    return list(groups.items())


def _set_key(track: TrackView) -> _SetKey:
    info = track.info
    family = _CODEC_FAMILIES.get(info.sample_entry, info.sample_entry)
    if info.is_video:
        return _SetKey(content_type="video", codec_family=family, language=None, role=info.role)
    return _SetKey(content_type="audio", codec_family=family, language=info.language, role=info.role)


def _producer_reference_time(adaptation_set: ET.Element, channel: ChannelView, time_url: str) -> None:
    """Media time 0 at the channel epoch; first child (schema order: before Role)."""
    reference = ET.Element(
        "ProducerReferenceTime",
        {
            "id": "0",
            "type": "encoder",
            "wallClockTime": utc_iso8601(channel.epoch_ms),
            "presentationTime": "0",
        },
    )
    ET.SubElement(reference, "UTCTiming", {"schemeIdUri": UTC_TIMING_SCHEME, "value": time_url})
    adaptation_set.insert(0, reference)


def _adaptation_set(period: ET.Element, index: int, key: _SetKey, tracks: list[TrackView]) -> ET.Element:
    attributes = {"id": str(index), "contentType": key.content_type, "mimeType": f"{key.content_type}/mp4"}
    if key.language:
        attributes["lang"] = key.language
    attributes |= {"segmentAlignment": "true", "startWithSAP": "1"}
    if key.content_type == "video":
        attributes |= _video_set_attributes(tracks)
    adaptation_set = ET.SubElement(period, "AdaptationSet", attributes)
    if key.role:
        ET.SubElement(adaptation_set, "Role", {"schemeIdUri": ROLE_SCHEME, "value": key.role})
    return adaptation_set


def _video_set_attributes(tracks: list[TrackView]) -> dict[str, str]:
    attributes: dict[str, str] = {}
    widths = [t.info.width for t in tracks if t.info.width]
    heights = [t.info.height for t in tracks if t.info.height]
    if widths and heights:
        attributes = {"maxWidth": str(max(widths)), "maxHeight": str(max(heights))}
    aspect_ratios = {_picture_aspect_ratio(t) for t in tracks}
    if len(aspect_ratios) == 1 and (par := aspect_ratios.pop()):
        attributes["par"] = par  # only when every Representation agrees
    return attributes


def _picture_aspect_ratio(track: TrackView) -> str | None:
    info = track.info
    if not info.width or not info.height:
        return None
    h_spacing, v_spacing = info.par or (1, 1)
    width, height = info.width * h_spacing, info.height * v_spacing
    divisor = gcd(width, height)
    return f"{width // divisor}:{height // divisor}"


# --- Representation -------------------------------------------------------------------------------


def _representation(
    adaptation_set: ET.Element, track: TrackView, origin_ms: int, ll: LowLatency | None, target_ms: int
) -> None:
    info = track.info
    attributes = {"id": track.name, "bandwidth": str(track.bitrates.peak), "codecs": info.codec}
    if info.is_video:
        attributes |= _video_attributes(track)
    elif info.sample_rate:
        attributes["audioSamplingRate"] = str(info.sample_rate)
    representation = ET.SubElement(adaptation_set, "Representation", attributes)
    if info.is_audio and info.channels:
        ET.SubElement(
            representation,
            "AudioChannelConfiguration",
            {"schemeIdUri": AUDIO_CHANNEL_SCHEME, "value": str(info.channels)},
        )
    _segment_template(representation, track, origin_ms * track.timescale // 1000, ll, target_ms)


def _video_attributes(track: TrackView) -> dict[str, str]:
    info = track.info
    attributes: dict[str, str] = {}
    if info.width and info.height:
        attributes = {"width": str(info.width), "height": str(info.height)}
    if (rate := track.frame_rate) is not None:
        attributes["frameRate"] = str(rate)  # Fraction: "25" or "30000/1001"
    h_spacing, v_spacing = info.par or (1, 1)
    attributes["sar"] = f"{h_spacing}:{v_spacing}"
    return attributes


def _segment_template(
    representation: ET.Element, track: TrackView, offset_ticks: int, ll: LowLatency | None, target_ms: int
) -> None:
    attributes = {
        "timescale": str(track.timescale),
        "presentationTimeOffset": str(offset_ticks),
        "initialization": "../media/$RepresentationID$/init.mp4",
        "media": "../media/$RepresentationID$/$Time$.m4s",
    }
    in_progress = None
    if ll is not None:
        attributes["availabilityTimeOffset"] = seconds_ms(ll.availability_offset_ms)
        attributes["availabilityTimeComplete"] = "false"
        if track.partial is not None:
            in_progress = (track.partial.start_time, listed_duration(track, ll.target_ms))
    template = ET.SubElement(representation, "SegmentTemplate", attributes)
    timeline = ET.SubElement(template, "SegmentTimeline")
    bridge = target_ms * track.timescale // 1000
    for start, duration, repeat in timeline_runs(track, in_progress=in_progress, bridge_ticks=bridge):
        attributes = {} if start is None else {"t": str(start)}
        attributes["d"] = str(duration)
        if repeat:
            attributes["r"] = str(repeat)
        ET.SubElement(timeline, "S", attributes)


def timeline_runs(
    track: TrackView, *, in_progress: tuple[int, int] | None = None, bridge_ticks: int = 0
) -> list[tuple[int | None, int, int]]:
    """SegmentTimeline S entries as (t, d, r): ``t`` only on the first and after a gap; equal,
    contiguous durations folded into ``r`` (number of repeats after the first). ``in_progress``:
    (start, listed duration) of a segment being written, listed last. A gap of at most
    ``bridge_ticks`` is bridged: the segment before it is listed up to the next one's start."""
    listed = [(s.start_time, s.duration_ticks) for s in track.segments]
    listed += [in_progress] if in_progress else []
    pairs = [
        (start, following - start if 0 < following - start - duration <= bridge_ticks else duration)
        for (start, duration), (following, _) in itertools.pairwise(listed)
    ] + listed[-1:]
    runs: list[tuple[int | None, int, int]] = []
    expected_start: int | None = None
    for start, duration in pairs:
        contiguous = start == expected_start
        if contiguous and runs[-1][1] == duration:
            t, d, r = runs[-1]
            runs[-1] = (t, d, r + 1)
        else:
            runs.append((None if contiguous else start, duration, 0))
        expected_start = start + duration
    return runs


def seconds_ms(milliseconds: int) -> str:
    """xs:double seconds from ms, shortest exact form: ``1.5``, ``1.96``, ``2``."""
    seconds, millis = divmod(milliseconds, 1000)
    return f"{seconds}.{millis:03d}".rstrip("0").rstrip(".")


def duration_ms(milliseconds: int) -> str:
    """xs:duration in seconds with millisecond precision: ``PT2S``, ``PT2.500S``, ``PT300S``."""
    seconds, millis = divmod(milliseconds, 1000)
    return f"PT{seconds}S" if not millis else f"PT{seconds}.{millis:03d}S"
