"""LL-DASH MPD: low-latency attributes only for a chunked live edge, their values, the in-progress S.

Low latency applies to the live-edge view (``ChannelView.live``) of a channel whose every track has a
segment of 2+ fragments among its newest complete ones; anything else renders exactly as before
(golden files).
"""

from __future__ import annotations

import dataclasses
import itertools
import xml.etree.ElementTree as ET

from hypothesis import given, settings
from hypothesis import strategies as st

from services.packager import dash, llhls
from services.packager.views import ChannelView, TrackView
from services.shared.channels import ChannelConfig

from .streams import (
    AAC_FRAGMENT,
    AUDIO_START,
    TIME_URL,
    VIDEO_START,
    Frag,
    assert_golden,
    audio,
    audio_info,
    channel,
    golden_channel,
    run,
    timeline,
    video_360,
    video_720,
    video_info,
    view,
)
from .test_dash import NS, expand, parse, representation, template

LL_ONLY_MPD = {"ServiceDescription"}
LL_ONLY_TEMPLATE = {"availabilityTimeOffset", "availabilityTimeComplete"}


def live(ch: ChannelView) -> ChannelView:
    return dataclasses.replace(ch, live=True)


def render(ch: ChannelView) -> ET.Element:
    return parse(dash.dash_manifest(ch, time_url=TIME_URL))


def unchunked_channel() -> ChannelView:
    """One fragment per segment (GOP-sized fragments): 7 complete segments and one in progress."""
    v = run(VIDEO_START, 8, duration_ticks=180_000, sample_count=50, size=300_000)
    a = run(AUDIO_START, 8, duration_ticks=2 * AAC_FRAGMENT, sample_count=94, size=30_000)
    return channel(
        view("v", video_info(), timeline(v, target_ticks=180_000)),
        view("a", audio_info("eng"), timeline(a, target_ticks=96_000)),
    )


def chunked_video(name: str = "v", *, chunks: int, chunk_ticks: int = 45_000, gop: int = 4) -> TrackView:
    """``chunks`` video chunks from the epoch-hour, a keyframe every ``gop`` of them (2 s segments)."""
    frags = [
        Frag(
            decode_time=VIDEO_START + k * chunk_ticks,
            duration_ticks=chunk_ticks,
            sample_count=chunk_ticks // 3600,
            size=20_000 + k,
            independent=k % gop == 0,
        )
        for k in range(chunks)
    ]
    return view(name, video_info(), timeline(frags, target_ticks=180_000))


def chunked_audio(name: str = "a", *, chunks: int, chunk_ticks: int = 24 * 1024) -> TrackView:
    frags = run(AUDIO_START, chunks, duration_ticks=chunk_ticks, sample_count=chunk_ticks // 1024, size=3000)
    return view(name, audio_info("eng"), timeline(frags, target_ticks=96_000))


# --- when low latency applies ---------------------------------------------------------------------


def test_golden_ll_mpd() -> None:
    """0.5 s video chunks and 0.512 s audio chunks, 2 s segments, each track one segment in progress."""
    ch = live(channel(chunked_video(chunks=14), chunked_audio(chunks=13)))
    assert_golden("manifest_ll.mpd", dash.dash_manifest(ch, time_url=TIME_URL))


def test_unchunked_live_mpd_is_unchanged() -> None:
    """Generated before LL-DASH existed: the live edge of an unchunked channel renders byte for byte so."""
    text = dash.dash_manifest(live(unchunked_channel()), time_url=TIME_URL)
    assert_golden("manifest_live_unchunked.mpd", text)


def test_a_lost_chunk_keeps_low_latency_and_is_bridged() -> None:
    """0.5 s chunks, each a keyframe; chunk 9 never came: the segment it was in ends after one chunk
    and the next starts after the hole. Low latency stays on (LL-DASH and LL-HLS alike) and the MPD
    lists the short segment up to the next one's start."""
    chunk = 45_000
    frags = [
        Frag(decode_time=VIDEO_START + k * chunk, duration_ticks=chunk, sample_count=12, size=20_000 + k)
        for k in range(14)
        if k != 9
    ]
    video = view("v", video_info(), timeline(frags, target_ticks=180_000))
    assert [(s.start_time - VIDEO_START) // chunk for s in video.segments] == [0, 4, 8]
    assert len(video.segments[-1].fragments) == 1  # the newest complete segment: cut short by the hole
    assert video.partial is not None and video.partial.start_time == VIDEO_START + 10 * chunk
    ch = live(channel(video, chunked_audio(chunks=13)))
    assert dash.low_latency(ch) is not None
    assert llhls.part_schedule(ch, 2) is not None
    pairs = expand(representation(render(ch), "v"))
    assert all(a + d == b for (a, d), (b, _) in itertools.pairwise(pairs))  # no gap left in the MPD
    assert pairs[2] == (VIDEO_START + 8 * chunk, 2 * chunk)  # the short segment reaches the next one


def test_low_latency_needs_the_live_edge_and_every_track_chunked() -> None:
    chunked = channel(chunked_video(chunks=14), chunked_audio(chunks=13))
    assert dash.low_latency(live(chunked)) == dash.LowLatency(chunk_ms=512, target_ms=2000)
    assert dash.low_latency(chunked) is None  # a time-shifted view
    assert dash.low_latency(live(unchunked_channel())) is None
    one_unchunked = channel(chunked_video(chunks=14), audio("a", "eng"))  # audio: 1 s fragments, 2 s segments
    assert dash.low_latency(live(one_unchunked)) is not None
    mixed = channel(chunked_video(chunks=14), unchunked_channel().tracks[1])
    assert dash.low_latency(live(mixed)) is None
    only_partial = channel(chunked_video(chunks=3))  # no complete segment yet
    assert dash.low_latency(live(only_partial)) is None
    # the golden channel (1 s fragments in 2 s segments) is chunked too, but only at the live edge
    assert dash.low_latency(live(golden_channel())) == dash.LowLatency(chunk_ms=1003, target_ms=2000)


def test_ll_attributes_appear_only_in_low_latency() -> None:
    for ch in (golden_channel(), live(unchunked_channel()), channel(video_720(ended=True))):
        root = render(ch)
        assert not {c.tag.split("}")[1] for c in root} & LL_ONLY_MPD
        assert not root.findall(".//mpd:ProducerReferenceTime", NS)
        for rep in root.iterfind(".//mpd:Representation", NS):
            assert not set(template(rep).attrib) & LL_ONLY_TEMPLATE
    root = render(live(golden_channel()))
    children = [c.tag.split("}")[1] for c in root]
    assert children == ["ServiceDescription", "Period", "UTCTiming"]  # schema order
    for rep in root.iterfind(".//mpd:Representation", NS):
        assert set(template(rep).attrib) >= LL_ONLY_TEMPLATE


# --- values ---------------------------------------------------------------------------------------


def test_ll_values() -> None:
    ch = live(channel(chunked_video(chunks=14), chunked_audio(chunks=13)))
    root = render(ch)
    assert root.get("minimumUpdatePeriod") == "PT1S"
    assert root.get("suggestedPresentationDelay") == "PT8S"  # for players that ignore ServiceDescription
    assert root.get("maxSegmentDuration") == "PT2.048S"  # the audio's listed in-progress segment: 4 x 0.512 s
    (description,) = root.findall("mpd:ServiceDescription", NS)
    assert description.attrib == {"id": "0"}
    (latency,) = description.findall("mpd:Latency", NS)
    # target = chunk + 2 x update period + 0.5 s, rounded up to 100 ms
    assert latency.attrib == {"referenceId": "0", "target": "3100", "max": "6200", "min": "1512"}
    (rate,) = description.findall("mpd:PlaybackRate", NS)
    assert rate.attrib == {"min": "0.96", "max": "1.04"}
    for rep in root.iterfind(".//mpd:Representation", NS):
        attributes = template(rep).attrib
        assert attributes["availabilityTimeOffset"] == "1.488"  # 2 s - 0.512 s, the same everywhere
        assert attributes["availabilityTimeComplete"] == "false"
    for adaptation_set in root.iterfind(".//mpd:AdaptationSet", NS):
        reference = adaptation_set[0]  # schema order: before Role and the Representations
        assert reference.tag == f"{{{dash.MPD_NAMESPACE}}}ProducerReferenceTime"
        assert reference.attrib == {
            "id": "0",
            "type": "encoder",
            "wallClockTime": root.attrib["availabilityStartTime"],
            "presentationTime": "0",
        }
        (timing,) = reference.findall("mpd:UTCTiming", NS)
        assert timing.attrib == {"schemeIdUri": dash.UTC_TIMING_SCHEME, "value": TIME_URL}


def test_latency_follows_chunk_and_target() -> None:
    assert dash.LowLatency(chunk_ms=40, target_ms=2000).latency_target_ms == 2600
    assert dash.LowLatency(chunk_ms=500, target_ms=2000).latency_target_ms == 3000
    short = dash.LowLatency(chunk_ms=100, target_ms=800)
    assert (short.update_period_ms, short.availability_offset_ms, short.latency_target_ms) == (800, 700, 2200)
    assert dash.LowLatency(chunk_ms=2500, target_ms=2000).availability_offset_ms == 0
    assert [dash.seconds_ms(ms) for ms in (1488, 1500, 2000, 0, 40)] == ["1.488", "1.5", "2", "0", "0.04"]


def test_in_progress_segment_is_listed_last_with_its_expected_duration() -> None:
    video = chunked_video(chunks=13)  # 3 complete segments, one in progress with 1 chunk (0.5 s)
    ch = live(channel(video))
    assert video.partial is not None and len(video.partial.fragments) == 1
    pairs = expand(representation(render(ch), "v"))
    complete = [(s.start_time, s.duration_ticks) for s in video.segments]
    assert pairs == [*complete, (video.partial.start_time, 180_000)]
    # without low latency the segment in progress is not listed
    assert expand(representation(render(channel(video)), "v")) == complete


def test_listed_duration_is_never_below_target_previous_or_written() -> None:
    # 1.92 s GOPs (48 frames at 25 fps) in 0.48 s chunks: segments of 1.92 s, listed as 2 s
    gop_192 = chunked_video(chunks=9, chunk_ticks=43_200)
    assert gop_192.segments[-1].duration_ticks == 172_800
    assert dash.listed_duration(gop_192, 2000) == 180_000
    # a 2.5 s GOP: the previous segment's 2.5 s
    long_gop = chunked_video(chunks=11, chunk_ticks=45_000, gop=5)
    assert dash.listed_duration(long_gop, 2000) == 225_000
    # already longer than both (a keyframe missing): what is written so far
    frags = [
        Frag(decode_time=k * 45_000, duration_ticks=45_000, sample_count=1, size=1, independent=k in (0, 4))
        for k in range(11)
    ]
    stuck = view("v", video_info(), timeline(frags, target_ticks=180_000))
    assert stuck.partial is not None and stuck.partial.duration_ticks == 7 * 45_000
    assert dash.listed_duration(stuck, 2000) == 7 * 45_000


def test_config_target_drives_ll_values() -> None:
    config = ChannelConfig(name="demo", segment_duration_ms=4000)
    frags = [
        Frag(decode_time=k * 90_000, duration_ticks=90_000, sample_count=25, size=1, independent=k % 4 == 0)
        for k in range(10)
    ]
    track = view("v", video_info(), timeline(frags, target_ticks=360_000))
    root = render(live(channel(track, config=config)))
    assert root.get("minimumUpdatePeriod") == "PT1S"
    assert template(representation(root, "v")).get("availabilityTimeOffset") == "3"
    assert expand(representation(root, "v"))[-1] == (720_000, 360_000)


def test_ll_output_is_deterministic() -> None:
    ch = live(channel(chunked_video(chunks=14), chunked_audio(chunks=13), video_360()))
    assert dash.dash_manifest(ch, time_url=TIME_URL) == dash.dash_manifest(ch, time_url=TIME_URL)


@settings(database=None, max_examples=200)
@given(
    st.integers(min_value=2, max_value=8),  # chunks per GOP
    st.integers(min_value=1, max_value=40),  # chunks
    st.sampled_from([3600, 40_000, 45_000, 22_500]),  # chunk ticks
)
def test_timeline_expands_to_complete_segments_then_the_one_in_progress(
    gop: int, chunks: int, chunk_ticks: int
) -> None:
    track = chunked_video(chunks=chunks, chunk_ticks=chunk_ticks, gop=gop)
    ch = live(channel(track))
    root = render(ch)
    if dash.low_latency(ch) is None:
        assert root.findall("mpd:ServiceDescription", NS) == []
        return
    pairs = expand(representation(root, "v"))
    assert pairs[:-1] == [(s.start_time, s.duration_ticks) for s in track.segments]
    assert track.partial is not None
    assert pairs[-1] == (track.partial.start_time, dash.listed_duration(track, 2000))
    assert pairs[-1][1] >= max(180_000, track.partial.duration_ticks)
    for (t, d), (next_t, _) in itertools.pairwise(pairs):
        assert next_t == t + d  # contiguous: nothing overlaps the listed in-progress segment
