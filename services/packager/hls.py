"""HLS playlists (RFC 8216bis) for CMAF (fMP4) tracks: multivariant and media playlists. Pure.

Builders take a ``ChannelView`` and return the playlist text (the media playlist's together with the
low-latency schedule it was rendered with); routes only send it.

Rendered with plain string building, not the ``m3u8`` library's model (``m3u8`` stays the parser
the tests read every output back with). The model cannot say what we need, and is slower:
- EXT-X-PROGRAM-DATE-TIME goes through ``datetime.isoformat`` (``+00:00``, not ``Z``);
- EXTINF is ``auto`` (trailing zeros trimmed), 3 or 6 decimals; we want a fixed 5-decimal form;
- EXT-X-MEDIA-SEQUENCE:0 and EXT-X-DISCONTINUITY-SEQUENCE:0 are silently dropped;
- FRAME-RATE goes through ``%g`` (``25``, not ``25.000``);
- speed: building ``m3u8.M3U8`` + ``Segment`` objects and calling ``dumps()`` for a 150-segment media
  playlist took 0.6-0.8 ms (one PDT) and 1.1-1.9 ms (a PDT per segment), against 0.22-0.35 ms here
  (CPU time on the shared 2-core dev machine).

Time rules (all integer ticks until the last step):
- EXTINF: segment boundaries are rounded to 10 µs on the track's absolute timeline and each EXTINF is
  the difference of its rounded boundaries. Each is within 10 µs of exact and the sum over a run
  of contiguous segments equals the rounded span exactly, so PDT extrapolation never drifts.
- EXT-X-TARGETDURATION: the config target rounded up, raised until every EXTINF rounded to the
  nearest integer (half up) fits (RFC 8216bis 4.4.3.1).
- EXT-X-PROGRAM-DATE-TIME: on the first segment and on every segment that does not start where the
  previous one ended (a time gap: the encoder skipped media). Segment numbers stay contiguous across
  such a gap by construction (``place_fragment``), so there is no EXT-X-DISCONTINUITY and no EXT-X-GAP
  yet; the PDT re-anchors the wall clock and the fMP4 ``tfdt`` carries the jump.
- EXT-X-MEDIA-SEQUENCE is ``Segment.number`` of the first listed segment, never counted here.

- EXT-X-TARGETDURATION is channel-wide (6.2.4: every media playlist of a multivariant has the same).

Low-latency playlists (EXT-X-PART, PRELOAD-HINT, SERVER-CONTROL, SKIP, RENDITION-REPORT) come from
``llhls``; this module places their lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from services.packager import llhls
from services.packager.views import ChannelView, TrackView, utc_iso8601

MEDIA_PLAYLIST_VERSION = 7  # EXT-X-MAP outside I-frame playlists needs >= 6
DELTA_PLAYLIST_VERSION = 9  # EXT-X-SKIP needs >= 9
AUDIO_GROUP_ID = "audio"
_EXTINF_UNITS_PER_S = 100_000  # EXTINF precision: 5 decimals
_QUERY_SAFE = "-._~%!$&'()*+,;=:@/?"  # RFC 3986 query characters besides letters and digits


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaPlaylist:
    """A rendered media playlist and the LL-HLS schedule it follows (None: not low-latency)."""

    text: str
    schedule: llhls.PartSchedule | None  # the service picks the playlist's Cache-Control from it


@dataclass(frozen=True, slots=True, kw_only=True)
class Variant:
    bandwidth: int  # sort key: highest first (then track name, for a stable order)
    track: TrackView
    attributes: list[str]  # EXT-X-STREAM-INF attribute list


def multivariant_playlist(channel: ChannelView, *, query: str = "") -> str:
    """The multivariant playlist of ``/live/{ch}/hls/index.m3u8``.

    Video tracks become variants (highest BANDWIDTH first) that share one audio rendition group;
    without video, each audio track is a variant of its own. ``query`` (without ``?``, e.g.
    ``start=1700000000``) is appended to every media playlist URI; characters that may not appear in
    a URI query (quotes, spaces, line breaks) are percent-encoded, existing escapes are kept.
    """
    query = encode_query(query)
    lines = ["#EXTM3U", "#EXT-X-INDEPENDENT-SEGMENTS"]
    video, audio = channel.video_tracks, channel.audio_tracks
    if video:
        lines += _audio_rendition_lines(audio, query)
        lines += _video_variant_lines(video, audio, query)
    else:
        lines += _audio_variant_lines(audio, query)
    return playlist_text(lines)


def media_playlist(
    channel: ChannelView, track: TrackView, *, query: str = "", skip: bool = False
) -> MediaPlaylist:
    """The media playlist of one track, ``/live/{ch}/hls/{track}.m3u8``; low-latency when the
    channel is (``llhls.part_schedule``), a delta update when ``skip`` (``_HLS_skip``) is asked for.

    ``query`` is the time-shift query the playlist was requested with; rendition reports carry it.
    Segment, part and init URIs are immutable and never carry it.
    """
    extinfs = extinf_units(track)
    target_s = channel_target_s(channel)
    schedule = llhls.part_schedule(channel, target_s)
    if schedule is None:
        lines = _media_header(track, target_s, version=MEDIA_PLAYLIST_VERSION)
        lines += _segment_lines(channel, track, extinfs)
    else:
        skipped = llhls.skipped_segments(track, schedule) if skip and not track.ended else 0
        version = DELTA_PLAYLIST_VERSION if skipped else MEDIA_PLAYLIST_VERSION
        extra = [schedule.server_control(), schedule.part_inf()]
        lines = _media_header(track, target_s, version=version, extra=extra)
        if skipped:
            lines.append(f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}")
        lines += segment_lines(
            channel,
            track,
            extinfs,
            prefix=f"../media/{track.name}/",
            suffix=".m4s",
            parts=llhls.listed_parts(track, target_s),
            skip=skipped,
        )
        lines += llhls.tail_lines(channel, track, query=encode_query(query))
    if track.ended:
        lines.append("#EXT-X-ENDLIST")
    return MediaPlaylist(text=playlist_text(lines), schedule=schedule)


def channel_target_s(channel: ChannelView) -> int:
    """EXT-X-TARGETDURATION for every media playlist of the channel (RFC 8216bis 6.2.4)."""
    target_ms = channel.config.target_ms
    return max((target_duration_s(target_ms, extinf_units(t)) for t in channel.tracks), default=1)


# --- multivariant ---------------------------------------------------------------------------------


def _audio_rendition_lines(audio: tuple[TrackView, ...], query: str) -> list[str]:
    lines = []
    for index, track in enumerate(audio):
        attributes = [f'TYPE=AUDIO,GROUP-ID="{AUDIO_GROUP_ID}",NAME="{track.name}"']
        if track.info.language:
            attributes.append(f'LANGUAGE="{track.info.language}"')
        attributes.append("DEFAULT=YES,AUTOSELECT=YES" if index == 0 else "DEFAULT=NO,AUTOSELECT=YES")
        if track.info.channels:
            attributes.append(f'CHANNELS="{track.info.channels}"')
        attributes.append(f'URI="{_playlist_uri(track, query)}"')
        lines.append("#EXT-X-MEDIA:" + ",".join(attributes))
    return lines


def _video_variant_lines(video: tuple[TrackView, ...], audio: tuple[TrackView, ...], query: str) -> list[str]:
    # The group's worst case rides on every variant (RFC 8216bis 4.4.6.2: BANDWIDTH covers any rendition).
    audio_rates = [t.bitrates for t in audio]
    audio_peak = max((r.peak for r in audio_rates), default=0)
    audio_average = max((r.average for r in audio_rates), default=0)
    audio_codecs = unique(t.info.codec for t in audio)
    variants = []
    for track in video:
        rates, info = track.bitrates, track.info
        bandwidth = rates.peak + audio_peak
        attributes = [
            f"BANDWIDTH={bandwidth}",
            f"AVERAGE-BANDWIDTH={rates.average + audio_average}",
            f'CODECS="{",".join((info.codec, *audio_codecs))}"',
        ]
        if info.width and info.height:
            attributes.append(f"RESOLUTION={info.width}x{info.height}")
        if (rate := track.frame_rate) is not None:
            attributes.append(f"FRAME-RATE={decimal_3(rate.numerator, rate.denominator)}")
        if audio:
            attributes.append(f'AUDIO="{AUDIO_GROUP_ID}"')
        variants.append(Variant(bandwidth=bandwidth, track=track, attributes=attributes))
    return variant_lines(variants, query)


def _audio_variant_lines(audio: tuple[TrackView, ...], query: str) -> list[str]:
    variants = []
    for track in audio:
        rates = track.bitrates
        attributes = [
            f"BANDWIDTH={rates.peak}",
            f"AVERAGE-BANDWIDTH={rates.average}",
            f'CODECS="{track.info.codec}"',
        ]
        variants.append(Variant(bandwidth=rates.peak, track=track, attributes=attributes))
    return variant_lines(variants, query)


def variant_lines(variants: list[Variant], query: str) -> list[str]:
    """EXT-X-STREAM-INF and URI lines, highest BANDWIDTH first (then by name)."""
    lines = []
    for variant in sorted(variants, key=lambda v: (-v.bandwidth, v.track.name)):
        lines.append("#EXT-X-STREAM-INF:" + ",".join(variant.attributes))
        lines.append(_playlist_uri(variant.track, query))
    return lines


def _playlist_uri(track: TrackView, query: str) -> str:
    """Relative to ``/live/{ch}/hls/index.m3u8``."""
    return f"{track.name}.m3u8?{query}" if query else f"{track.name}.m3u8"


# --- media playlist -------------------------------------------------------------------------------


def _media_header(track: TrackView, target_s: int, *, version: int, extra: Sequence[str] = ()) -> list[str]:
    lines = media_header_lines(track, target_s, version=version, extra=extra)
    lines.append(f'#EXT-X-MAP:URI="../media/{track.name}/init.mp4"')
    return lines


def media_header_lines(
    track: TrackView, target_s: int, *, version: int, extra: Sequence[str] = ()
) -> list[str]:
    """The tags that open a media playlist, up to EXT-X-INDEPENDENT-SEGMENTS (shared with HLS-TS);
    ``extra`` (LL-HLS server control and part info) goes after the target duration."""
    first = track.segments[0].number if track.segments else 0
    return [
        "#EXTM3U",
        f"#EXT-X-VERSION:{version}",
        f"#EXT-X-TARGETDURATION:{target_s}",
        *extra,
        f"#EXT-X-MEDIA-SEQUENCE:{first}",
        "#EXT-X-DISCONTINUITY-SEQUENCE:0",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]


def _segment_lines(channel: ChannelView, track: TrackView, extinfs: list[int]) -> list[str]:
    return segment_lines(channel, track, extinfs, prefix=f"../media/{track.name}/", suffix=".m4s")


def segment_lines(
    channel: ChannelView,
    track: TrackView,
    extinfs: list[int],
    *,
    prefix: str,
    suffix: str,
    parts: Mapping[int, list[str]] | None = None,
    skip: int = 0,
) -> list[str]:
    """PDT (first listed and after gaps), EXTINF and ``{prefix}{start tick}{suffix}`` of each segment
    after the first ``skip``; a segment's EXT-X-PART lines (``parts``, by number) go before its EXTINF.
    The in-progress segment's parts follow (LL-HLS) when the track has one."""
    timescale = track.timescale
    lines: list[str] = []
    previous_end: int | None = None
    for segment, units in zip(track.segments[skip:], extinfs[skip:], strict=True):
        start = segment.start_time
        if start != previous_end:  # first segment, or after a time gap
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{utc_iso8601(channel.wallclock_ms(start, timescale))}")
        if parts:
            lines += parts.get(segment.number, ())
        seconds, fraction = divmod(units, _EXTINF_UNITS_PER_S)
        lines.append(f"#EXTINF:{seconds}.{fraction:05d},")
        lines.append(f"{prefix}{start}{suffix}")
        previous_end = segment.end_time
    partial = track.partial
    if parts is not None and partial is not None and partial.start_time != previous_end:
        wallclock = channel.wallclock_ms(partial.start_time, timescale)
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{utc_iso8601(wallclock)}")
    return lines


def extinf_units(track: TrackView) -> list[int]:
    """Each segment's EXTINF in 10 µs units: the difference of its boundaries, each rounded (half up)
    on the track's absolute timeline. One pass; a shared boundary is rounded once."""
    timescale = track.timescale
    scale, divisor = 2 * _EXTINF_UNITS_PER_S, 2 * timescale
    units: list[int] = []
    end_ticks, end_units = None, 0
    for segment in track.segments:
        start = segment.start_time
        start_units = end_units if start == end_ticks else (start * scale + timescale) // divisor
        end_ticks = segment.end_time
        end_units = (end_ticks * scale + timescale) // divisor
        units.append(end_units - start_units)
    return units


def target_duration_s(target_ms: int, extinfs: list[int]) -> int:
    """EXT-X-TARGETDURATION: the config target rounded up, raised so that every EXTINF (10 µs units,
    from ``extinf_units``) rounded to the nearest integer (half up) is at most it (RFC 8216bis 4.4.3.1)."""
    longest = max(extinfs, default=0)
    return max(1, -(-target_ms // 1000), (longest + _EXTINF_UNITS_PER_S // 2) // _EXTINF_UNITS_PER_S)


# --- shared ---------------------------------------------------------------------------------------


def decimal_3(numerator: int, denominator: int) -> str:
    """A positive ratio with exactly three decimals, rounded half up: 30000/1001 -> ``29.970``."""
    millis = (numerator * 2000 + denominator) // (2 * denominator)
    return f"{millis // 1000}.{millis % 1000:03d}"


def unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))  # first-seen order


def encode_query(query: str) -> str:
    return quote(query, safe=_QUERY_SAFE)


def playlist_text(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"
