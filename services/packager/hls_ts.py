"""HLS with MPEG-TS segments (``/live/{ch}/hls-ts/``): multivariant and media playlists. Pure.

Each video track is a variant whose segments carry its video and the channel's default audio (the
first audio track) muxed together; the default audio is also a variant of its own, audio only. A
variant is named after the track whose segments it follows, so its media playlist lists that
track's CMAF segments under the same start ticks (``../ts/{variant}/{t}.ts``), with the same
EXTINF, media sequence numbers and program date times as the CMAF playlists (``hls`` builds those
lines). No EXT-X-MAP: every TS segment starts with its PAT and PMT.

BANDWIDTH / AVERAGE-BANDWIDTH estimate the TS bit rate from the CMAF one without muxing: the payload
plus per-access-unit headers (PES header, PCR field, AUD or ADTS header, half a packet of stuffing per
PES on average), the PAT/PMT pairs and the continuity padding of a segment, all in 188/184 packets.
"""

from __future__ import annotations

from fractions import Fraction

from services.packager import hls
from services.packager.views import Bitrates, ChannelView, TrackView
from services.shared.media.ts.muxer import PSI_PERIOD
from services.shared.media.ts.packets import BODY_SIZE, PACKET_SIZE
from services.shared.media.ts.timestamps import SYSTEM_CLOCK_HZ

MEDIA_PLAYLIST_VERSION = 3  # decimal EXTINF; nothing newer is used
VIDEO_AU_OVERHEAD = 19 + 8 + 6 + BODY_SIZE // 2  # PES header with DTS, PCR field, AUD, stuffing
AUDIO_FRAME_OVERHEAD = 7 + (14 + 2 + BODY_SIZE // 2) // 4  # ADTS header, a quarter of a PES's overhead
SEGMENT_OVERHEAD = 2 * 8 * PACKET_SIZE  # continuity padding: 7.5 packets per PID on average, 2 PIDs
PSI_BYTES_PER_S = 2 * PACKET_SIZE * SYSTEM_CLOCK_HZ // PSI_PERIOD


def default_audio(channel: ChannelView) -> TrackView | None:
    audio = channel.audio_tracks
    return audio[0] if audio else None


def multivariant_playlist(channel: ChannelView, *, query: str = "") -> str:
    """``/live/{ch}/hls-ts/index.m3u8``: a variant per video track, then the default audio alone."""
    query = hls.encode_query(query)
    audio = default_audio(channel)
    audio_codecs = (audio.info.codec,) if audio else ()
    variants = []
    for track in channel.video_tracks:
        rates = ts_bitrates(track, audio)
        attributes = [
            f"BANDWIDTH={rates.peak}",
            f"AVERAGE-BANDWIDTH={rates.average}",
            f'CODECS="{",".join((track.info.codec, *audio_codecs))}"',
        ]
        if track.info.width and track.info.height:
            attributes.append(f"RESOLUTION={track.info.width}x{track.info.height}")
        if (rate := track.frame_rate) is not None:
            attributes.append(f"FRAME-RATE={hls.decimal_3(rate.numerator, rate.denominator)}")
        variants.append(hls.Variant(bandwidth=rates.peak, track=track, attributes=attributes))
    if audio is not None:
        rates = ts_bitrates(None, audio)
        attributes = [
            f"BANDWIDTH={rates.peak}",
            f"AVERAGE-BANDWIDTH={rates.average}",
            f'CODECS="{audio.info.codec}"',
        ]
        variants.append(hls.Variant(bandwidth=rates.peak, track=audio, attributes=attributes))
    return hls.playlist_text(["#EXTM3U", "#EXT-X-INDEPENDENT-SEGMENTS", *hls.variant_lines(variants, query)])


def media_playlist(channel: ChannelView, track: TrackView, *, query: str = "") -> str:
    """``/live/{ch}/hls-ts/{variant}.m3u8``: the segments of ``track`` the caller chose."""
    del query  # segment URIs are immutable and never carry it
    extinfs = hls.extinf_units(track)
    lines = hls.media_header_lines(track, hls.channel_target_s(channel), version=MEDIA_PLAYLIST_VERSION)
    lines += hls.segment_lines(channel, track, extinfs, prefix=f"../ts/{track.name}/", suffix=".ts")
    if track.ended:
        lines.append("#EXT-X-ENDLIST")
    return hls.playlist_text(lines)


def ts_bitrates(video: TrackView | None, audio: TrackView | None) -> Bitrates:
    """Estimated TS bit rates of a variant: ``video`` with ``audio`` muxed in, or ``audio`` alone."""
    if video is None:
        assert audio is not None
        return _estimate(audio, None)
    return _estimate(video, audio)


def _estimate(driving: TrackView, audio: TrackView | None) -> Bitrates:
    """Per segment of ``driving``: its TS bytes (plus ``audio`` at its peak rate) over its duration."""
    audio_rates = audio.bitrates if audio else Bitrates(peak=0, average=0)
    audio_frames_per_s = _frames_per_s(audio) if audio else Fraction(0)
    per_frame = AUDIO_FRAME_OVERHEAD if not driving.info.is_video else VIDEO_AU_OVERHEAD
    peak = total_bits = 0
    total_s = Fraction(0)
    for segment in driving.segments:
        seconds = Fraction(segment.duration_ticks, driving.timescale)
        frames = sum(f.sample_count for f in segment.fragments)
        size = segment.size + per_frame * frames + SEGMENT_OVERHEAD + PSI_BYTES_PER_S * seconds
        size += (Fraction(audio_rates.peak, 8) + AUDIO_FRAME_OVERHEAD * audio_frames_per_s) * seconds
        bits = size * 8 * Fraction(PACKET_SIZE, BODY_SIZE)
        peak = max(peak, -int(-bits // seconds))
        total_bits += int(bits)
        total_s += seconds
    average = -int(-total_bits // total_s) if total_s else 0
    return Bitrates(peak=peak, average=min(average, peak))


def _frames_per_s(track: TrackView) -> Fraction:
    frames = sum(f.sample_count for s in track.segments for f in s.fragments)
    ticks = sum(s.duration_ticks for s in track.segments)
    return Fraction(frames * track.timescale, ticks) if ticks else Fraction(0)
