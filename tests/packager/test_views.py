"""The builders' input model: validation and the facts both formats render (bit rates, frame rate, time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.packager.views import ChannelView, TrackView, utc_iso8601
from services.shared.channels import ChannelConfig
from services.shared.errors import InvalidName

from .streams import EPOCH_MS, audio, audio_info, channel, run, timeline, video_720, video_info, view


def test_bitrates_are_measured_over_the_window() -> None:
    frags = run(0, 4, duration_ticks=90_000, sample_count=25, size=100_000)  # 2 segments of 2 fragments
    track = view("v", video_info(), timeline(frags, target_ticks=180_000))
    sizes = [s.size for s in track.segments]
    assert len(sizes) == 1  # the second segment is still in progress
    assert track.bitrates.peak == -(-sizes[0] * 8 // 2)
    assert track.bitrates.average == track.bitrates.peak


def test_peak_is_the_largest_segment_and_average_ignores_gaps() -> None:
    frags = run(0, 2, duration_ticks=90_000, sample_count=25, size=100_000)
    frags += run(10 * 90_000, 3, duration_ticks=90_000, sample_count=25, size=300_000)  # after a gap
    track = view("v", video_info(), timeline(frags, target_ticks=180_000))
    first, second = track.segments
    assert track.bitrates.peak == -(-second.size * 8 // 2)
    assert track.bitrates.average == -(-(first.size + second.size) * 8 // 4)  # 4 s of media, not 12


def test_btrt_average_is_preferred_but_never_above_peak() -> None:
    frags = run(0, 3, duration_ticks=90_000, sample_count=25, size=100_000)
    declared = view("v", video_info(bitrate=500_000), timeline(frags, target_ticks=180_000))
    assert declared.bitrates.average == 500_000
    inflated = view("v", video_info(bitrate=9_000_000), timeline(frags, target_ticks=180_000))
    assert inflated.bitrates.average == inflated.bitrates.peak


def test_bitrates_without_segments_come_from_btrt() -> None:
    empty = TrackView(name="v", info=video_info(bitrate=1_000, max_bitrate=2_000), segments=(), ended=False)
    assert (empty.bitrates.peak, empty.bitrates.average) == (2_000, 1_000)
    avg_only = TrackView(name="v", info=video_info(bitrate=1_000), segments=(), ended=False)
    assert (avg_only.bitrates.peak, avg_only.bitrates.average) == (1_000, 1_000)
    unknown = TrackView(name="v", info=video_info(), segments=(), ended=False)
    assert (unknown.bitrates.peak, unknown.bitrates.average) == (0, 0)


def test_frame_rate_is_exact() -> None:
    assert video_720().frame_rate == 25
    ntsc = run(0, 3, duration_ticks=60 * 3003, sample_count=60, size=1)  # 30000/1001 at 90 kHz
    track = view("v", video_info(), timeline(ntsc, target_ticks=180_000))
    assert track.frame_rate == Fraction(30_000, 1001)
    assert audio("a", "eng").frame_rate is None


def test_wallclock_rounds_down() -> None:
    ch = channel()
    assert ch.wallclock_ms(90_000, 90_000) == EPOCH_MS + 1000
    assert ch.wallclock_ms(89, 90_000) == EPOCH_MS  # 0.99 ms
    assert ch.wallclock_ms(44_101, 44_100) == EPOCH_MS + 1000


def test_utc_iso8601() -> None:
    assert utc_iso8601(EPOCH_MS) == "2023-11-14T22:13:20.000Z"
    assert utc_iso8601(0) == "1970-01-01T00:00:00.000Z"
    assert utc_iso8601(951_868_799_999) == "2000-02-29T23:59:59.999Z"


@settings(database=None)
@given(st.integers(min_value=-(10**12), max_value=4 * 10**12))
def test_utc_iso8601_agrees_with_datetime(unix_ms: int) -> None:
    expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=unix_ms)
    assert utc_iso8601(unix_ms) == expected.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_track_view_validation() -> None:
    with pytest.raises(InvalidName):
        TrackView(name='a"b', info=video_info(), segments=(), ended=False)
    with pytest.raises(ValueError, match="timescale"):
        TrackView(name="v", info=video_info(timescale=0), segments=(), ended=False)
    segments = video_720().segments
    with pytest.raises(ValueError, match="overlaps"):
        TrackView(name="v", info=video_info(), segments=(segments[1], segments[0]), ended=False)


def test_channel_view_validation_and_ended() -> None:
    with pytest.raises(ValueError, match="unique"):
        channel(audio("a", "eng"), audio("a", "fra"))
    with pytest.raises(InvalidName):
        ChannelView(name="../x", config=ChannelConfig(name="x"), tracks=(), epoch_ms=0, now_ms=0)
    assert not channel().ended
    assert not channel(audio("a", "eng", ended=True), audio("b", "fra")).ended
    assert channel(audio("a", "eng", ended=True), audio("b", "fra", ended=True)).ended


def test_tracks_by_kind_keep_the_callers_order() -> None:
    ch = channel(audio("a2", "fra"), video_720(), audio("a1", "eng"))
    assert [t.name for t in ch.video_tracks] == ["v720"]
    assert [t.name for t in ch.audio_tracks] == ["a2", "a1"]
    assert audio_info().is_audio
