"""HLS playlists: golden files, then every output read back with ``m3u8`` and checked for its meaning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import m3u8
from hypothesis import given, settings
from hypothesis import strategies as st

from services.packager import hls
from services.packager.views import ChannelView, TrackView
from services.shared.channels import ChannelConfig
from services.shared.timeline import Segment

from .streams import (
    assert_golden,
    audio,
    channel,
    golden_channel,
    single_segment,
    tracks,
    video,
    video_360,
    video_info,
)

# --- golden files ---------------------------------------------------------------------------------


def test_golden_multivariant() -> None:
    assert_golden("multivariant.m3u8", hls.multivariant_playlist(golden_channel()))


def test_golden_media_playlist() -> None:
    ch = golden_channel()
    assert_golden("media_v720.m3u8", hls.media_playlist(ch, ch.tracks[0]).text)


def test_media_playlist_without_chunks_has_no_low_latency_schedule() -> None:
    ch = golden_channel()
    assert hls.media_playlist(ch, ch.tracks[0]).schedule is None


def test_golden_ended_media_playlist() -> None:
    ch = channel(audio("aud_en", "eng", ended=True))
    assert_golden("media_aud_en_ended.m3u8", hls.media_playlist(ch, ch.tracks[0]).text)


# --- multivariant ---------------------------------------------------------------------------------


def test_multivariant_variants_and_audio_group() -> None:
    ch = golden_channel()
    playlist = m3u8.loads(hls.multivariant_playlist(ch))
    assert playlist.is_variant and playlist.is_independent_segments
    audio_peak = max(t.bitrates.peak for t in ch.audio_tracks)
    audio_average = max(t.bitrates.average for t in ch.audio_tracks)
    variants = {p.uri: p.stream_info for p in playlist.playlists}
    assert [p.uri for p in playlist.playlists] == ["v720.m3u8", "v360.m3u8"]  # highest bandwidth first
    for track in ch.video_tracks:
        info = variants[f"{track.name}.m3u8"]
        assert info.bandwidth == track.bitrates.peak + audio_peak
        assert info.average_bandwidth == track.bitrates.average + audio_average
        assert info.codecs == f"{track.info.codec},mp4a.40.2"
        assert info.resolution == (track.info.width, track.info.height)
        assert info.frame_rate == 25.0
        assert info.audio == "audio"
    media = [(m.type, m.group_id, m.name, m.language, m.default, m.autoselect, m.uri) for m in playlist.media]
    assert media == [
        ("AUDIO", "audio", "aud_en", "eng", "YES", "YES", "aud_en.m3u8"),
        ("AUDIO", "audio", "aud_fr", "fra", "NO", "YES", "aud_fr.m3u8"),
    ]


def test_multivariant_bandwidth_order_is_by_peak() -> None:
    playlist = m3u8.loads(hls.multivariant_playlist(channel(video_360(), video("big", size=10**6))))
    assert [p.uri for p in playlist.playlists] == ["big.m3u8", "v360.m3u8"]
    assert [p.stream_info.audio for p in playlist.playlists] == [None, None]  # no audio, no group
    assert not playlist.media


def test_multivariant_query_is_appended_and_encoded() -> None:
    ch = golden_channel()
    text = hls.multivariant_playlist(ch, query='start=2023-11-14T22:13:20Z&x="a b"')
    playlist = m3u8.loads(text)
    expected = "?start=2023-11-14T22:13:20Z&x=%22a%20b%22"
    assert [p.uri for p in playlist.playlists] == [f"v720.m3u8{expected}", f"v360.m3u8{expected}"]
    assert [m.uri for m in playlist.media] == [f"aud_en.m3u8{expected}", f"aud_fr.m3u8{expected}"]
    assert "start=1700000000" in hls.multivariant_playlist(ch, query="start=1700000000")


def test_audio_only_channel_has_audio_variants() -> None:
    ch = channel(audio("aud_en", "eng"), audio("aud_fr", "fra", role="dub"))
    playlist = m3u8.loads(hls.multivariant_playlist(ch))
    assert not playlist.media
    assert [(p.uri, p.stream_info.codecs, p.stream_info.audio) for p in playlist.playlists] == [
        ("aud_en.m3u8", "mp4a.40.2", None),
        ("aud_fr.m3u8", "mp4a.40.2", None),
    ]
    assert playlist.playlists[0].stream_info.resolution is None


def test_multivariant_lists_every_audio_codec() -> None:
    ac3 = audio("ac3", "eng", codec="ac-3", sample_entry="ac-3")
    ch = channel(video_360(), audio("aac", "eng"), ac3)
    playlist = m3u8.loads(hls.multivariant_playlist(ch))
    assert playlist.playlists[0].stream_info.codecs == "avc1.4d401e,mp4a.40.2,ac-3"


def test_frame_rate_has_three_decimals() -> None:
    ntsc = video("ntsc", frames=30, frame_ticks=3003)
    assert ",FRAME-RATE=29.970\n" in hls.multivariant_playlist(channel(ntsc))
    p60 = video("p60", frames=60, frame_ticks=1001, timescale=60_000)
    assert ",FRAME-RATE=59.940\n" in hls.multivariant_playlist(channel(p60))
    assert ",FRAME-RATE=25.000\n" in hls.multivariant_playlist(channel(video("pal")))


# --- media playlists ------------------------------------------------------------------------------


def test_media_playlists_read_back() -> None:
    ch = golden_channel()
    for track in ch.tracks:
        check_media_playlist(ch, track, hls.media_playlist(ch, track).text)


def test_pdt_on_first_segment_and_after_a_gap_only() -> None:
    ch = golden_channel()
    text = hls.media_playlist(ch, ch.tracks[0]).text
    playlist = m3u8.loads(text)
    with_pdt = [s.uri for s in playlist.segments if s.program_date_time is not None]
    assert with_pdt == ["../media/v720/324000000.m4s", "../media/v720/324900000.m4s"]  # 5 s hole before it
    assert text.count("#EXT-X-PROGRAM-DATE-TIME:") == 2


def test_ended_track_gets_endlist() -> None:
    ch = channel(audio("a", "eng", ended=True), audio("b", "fra"))
    assert m3u8.loads(hls.media_playlist(ch, ch.tracks[0]).text).is_endlist
    assert not m3u8.loads(hls.media_playlist(ch, ch.tracks[1]).text).is_endlist


def test_target_duration_rounds_each_extinf_to_nearest() -> None:
    def target(duration_ticks: int, config_ms: int = 2000) -> int:
        track = single_segment(duration_ticks)
        ch = channel(track, config=ChannelConfig(name="demo", segment_duration_ms=config_ms))
        return int(m3u8.loads(hls.media_playlist(ch, track).text).target_duration)

    assert target(224_999) == 2  # 2.49999 s rounds to 2
    assert target(225_000) == 3  # 2.5 s rounds (half up) to 3
    assert target(269_999) == 3
    assert target(90_000, config_ms=1500) == 2  # the config target is rounded up
    assert target(90_000, config_ms=6000) == 6


def test_extinf_sum_is_exact_over_contiguous_segments() -> None:
    track = audio("a", "eng")
    units = hls.extinf_units(track)
    assert set(units) == {200_533, 200_534}  # 2.0053333 s, boundaries rounded on the timeline
    first, last = track.segments[0], track.segments[-1]
    span = Decimal(last.end_time - first.start_time) / 48_000
    assert abs(Decimal(sum(units)) / 100_000 - span) <= Decimal("0.00001")


def test_empty_track_renders_a_valid_playlist() -> None:
    empty = TrackView(name="v", info=video_info(), segments=(), ended=False)
    ch = channel(empty)
    playlist = m3u8.loads(hls.media_playlist(ch, empty).text)
    assert (playlist.media_sequence, playlist.target_duration, len(playlist.segments)) == (0, 2, 0)
    assert "BANDWIDTH=0" in hls.multivariant_playlist(ch)


def test_output_is_deterministic() -> None:
    one, two = golden_channel(), golden_channel()
    assert hls.multivariant_playlist(one) == hls.multivariant_playlist(one) == hls.multivariant_playlist(two)
    for a, b in zip(one.tracks, two.tracks, strict=True):
        assert (
            hls.media_playlist(one, a).text
            == hls.media_playlist(one, a).text
            == hls.media_playlist(two, b).text
        )


# --- properties -----------------------------------------------------------------------------------


@settings(database=None, max_examples=300)
@given(tracks(), st.integers(min_value=1, max_value=10_000))
def test_media_playlist_properties(track: TrackView, target_ms: int) -> None:
    ch = channel(track, config=ChannelConfig(name="demo", segment_duration_ms=target_ms))
    check_media_playlist(ch, track, hls.media_playlist(ch, track).text)


def check_media_playlist(ch: ChannelView, track: TrackView, text: str) -> None:
    """What a player relies on, read back with m3u8."""
    playlist = m3u8.loads(text)
    segments = track.segments
    assert len(playlist.segments) == len(segments)
    assert (playlist.version, playlist.discontinuity_sequence) == (7, 0)
    assert playlist.media_sequence == segments[0].number  # Segment.number, never counted by the builder
    assert playlist.segment_map[0].uri == f"../media/{track.name}/init.mp4"
    assert [s.uri for s in playlist.segments] == [
        f"../media/{track.name}/{s.start_time}.m4s" for s in segments
    ]
    assert playlist.is_endlist == track.ended
    # RFC 8216bis 4.4.3.1: every EXTINF rounded to the nearest integer is at most the target, and the
    # target is the config's rounded up unless a segment needs more.
    extinfs = [Decimal(line[8:].rstrip(",")) for line in text.splitlines() if line.startswith("#EXTINF:")]
    nearest = [int(x.quantize(Decimal(1), rounding=ROUND_HALF_UP)) for x in extinfs]
    assert playlist.target_duration == max(-(-ch.config.target_ms // 1000), *nearest)
    # Each EXTINF is within 10 us of its segment; over a contiguous run, the sum is the span.
    timescale = Decimal(track.timescale)
    for extinf, segment in zip(extinfs, segments, strict=True):
        assert abs(extinf - segment.duration_ticks / timescale) <= Decimal("0.00001")
    for run in contiguous_runs(segments):
        span = (run[-1].end_time - run[0].start_time) / timescale
        assert abs(sum(extinfs[segments.index(s)] for s in run) - span) <= Decimal("0.00001")
    # PDT = epoch + start/timescale (ms, rounded down), stated or extrapolated by the player.
    for parsed, segment in zip(playlist.segments, segments, strict=True):
        wallclock_ms = ch.wallclock_ms(segment.start_time, track.timescale)
        expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=wallclock_ms)
        assert abs(parsed.current_program_date_time - expected) <= timedelta(milliseconds=1)


def contiguous_runs(segments: tuple[Segment, ...]) -> list[list[Segment]]:
    runs: list[list[Segment]] = []
    previous_end = None
    for segment in segments:
        if segment.start_time != previous_end:
            runs.append([])
        runs[-1].append(segment)
        previous_end = segment.end_time
    return runs
