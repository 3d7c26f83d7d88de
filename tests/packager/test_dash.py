"""DASH MPD: golden files, then every output parsed with ElementTree and its SegmentTimeline expanded."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import given, settings

from services.packager import dash
from services.packager.views import TrackView
from services.shared.channels import ChannelConfig

from .streams import (
    TIME_URL,
    Frag,
    assert_golden,
    audio,
    channel,
    golden_channel,
    timeline,
    tracks,
    video,
    video_360,
    video_720,
    video_info,
    view,
)

NS = {"mpd": dash.MPD_NAMESPACE}


def parse(text: str) -> ET.Element:
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    root = ET.fromstring(text)
    assert root.tag == f"{{{dash.MPD_NAMESPACE}}}MPD"
    return root


def representation(root: ET.Element, name: str) -> ET.Element:
    (found,) = [r for r in root.iterfind(".//mpd:Representation", NS) if r.get("id") == name]
    return found


def template(representation: ET.Element) -> ET.Element:
    (found,) = representation.findall("mpd:SegmentTemplate", NS)
    return found


def expand(representation: ET.Element) -> list[tuple[int, int]]:
    """SegmentTimeline -> (t, d) of every segment, as a player computes them."""
    pairs: list[tuple[int, int]] = []
    time = 0
    for s in representation.iterfind("mpd:SegmentTemplate/mpd:SegmentTimeline/mpd:S", NS):
        time = int(s.get("t", time))
        duration = int(s.attrib["d"])
        for _ in range(int(s.get("r", "0")) + 1):
            pairs.append((time, duration))
            time += duration
    return pairs


def expected(track: TrackView, target_ms: int = ChannelConfig(name="x").target_ms) -> list[tuple[int, int]]:
    """Each segment's (start, duration), a duration reaching over a gap of up to one target to the next
    segment's start (a lost chunk: players look for the next segment at start + d)."""
    listed = [(s.start_time, s.duration_ticks) for s in track.segments]
    bridge = target_ms * track.timescale // 1000
    for index in range(len(listed) - 1):
        start, duration = listed[index]
        following = listed[index + 1][0]
        if start + duration < following <= start + duration + bridge:
            listed[index] = (start, following - start)
    return listed


# --- golden files ---------------------------------------------------------------------------------


def test_golden_dynamic_mpd() -> None:
    assert_golden("manifest.mpd", dash.dash_manifest(golden_channel(), time_url=TIME_URL))


def test_golden_static_mpd() -> None:
    ch = channel(video_720(ended=True), audio("aud_en", "eng", ended=True))
    assert_golden("manifest_ended.mpd", dash.dash_manifest(ch, time_url=TIME_URL))


# --- MPD ------------------------------------------------------------------------------------------


def test_dynamic_mpd_attributes() -> None:
    root = parse(dash.dash_manifest(golden_channel(), time_url=TIME_URL))
    assert root.attrib == {
        "profiles": "urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019",
        "type": "dynamic",
        "availabilityStartTime": "2023-11-14T22:13:20.000Z",
        "publishTime": "2023-11-14T23:13:32.345Z",
        "minimumUpdatePeriod": "PT2S",
        "timeShiftBufferDepth": "PT300S",
        "suggestedPresentationDelay": "PT8S",
        "maxSegmentDuration": "PT2.006S",  # the AAC segments: 2.00533 s
        "minBufferTime": "PT2S",
    }
    (period,) = root.findall("mpd:Period", NS)
    assert period.attrib == {"id": "0", "start": "PT0S"}
    (timing,) = root.findall("mpd:UTCTiming", NS)
    assert timing.attrib == {"schemeIdUri": "urn:mpeg:dash:utc:http-iso:2014", "value": TIME_URL}  # unescaped
    assert [child.tag.split("}")[1] for child in root] == ["Period", "UTCTiming"]  # schema order


def test_config_drives_mpd_durations() -> None:
    config = ChannelConfig(name="demo", segment_duration_ms=1500, dvr_window_s=3600)
    root = parse(dash.dash_manifest(channel(video_360(), config=config), time_url="/time"))
    assert root.get("minimumUpdatePeriod") == "PT1.500S"
    assert root.get("suggestedPresentationDelay") == "PT6S"
    assert root.get("timeShiftBufferDepth") == "PT3600S"
    assert root.get("maxSegmentDuration") == "PT2S"


def test_timelines_expand_to_the_segments() -> None:
    ch = golden_channel()
    root = parse(dash.dash_manifest(ch, time_url=TIME_URL))
    for track in ch.tracks:
        assert expand(representation(root, track.name)) == expected(track)
    gapped = representation(root, "v720").findall(".//mpd:S", NS)
    assert [s.attrib for s in gapped] == [
        {"t": "324000000", "d": "180000", "r": "2"},
        {"t": "324900000", "d": "180000", "r": "1"},  # t again after the hole
    ]


def test_segment_template_per_representation() -> None:
    root = parse(dash.dash_manifest(golden_channel(), time_url=TIME_URL))
    for rep in root.iterfind(".//mpd:Representation", NS):
        assert template(rep).attrib == {
            "timescale": "90000" if rep.get("id", "").startswith("v") else "48000",
            "presentationTimeOffset": "0",
            "initialization": "../media/$RepresentationID$/init.mp4",
            "media": "../media/$RepresentationID$/$Time$.m4s",
        }
    assert not root.findall(".//mpd:AdaptationSet/mpd:SegmentTemplate", NS)


def test_adaptation_sets() -> None:
    root = parse(dash.dash_manifest(golden_channel(), time_url=TIME_URL))
    sets = root.findall("mpd:Period/mpd:AdaptationSet", NS)
    assert [(s.get("id"), s.get("contentType"), s.get("mimeType"), s.get("lang")) for s in sets] == [
        ("0", "video", "video/mp4", None),
        ("1", "audio", "audio/mp4", "eng"),
        ("2", "audio", "audio/mp4", "fra"),
    ]
    video_set = sets[0]
    assert [r.get("id") for r in video_set.findall("mpd:Representation", NS)] == ["v720", "v360"]
    assert (video_set.get("maxWidth"), video_set.get("maxHeight"), video_set.get("par")) == (
        "1280",
        "720",
        "16:9",
    )
    assert (video_set.get("segmentAlignment"), video_set.get("startWithSAP")) == ("true", "1")
    roles = [[r.attrib for r in s.findall("mpd:Role", NS)] for s in sets]
    assert roles == [[{"schemeIdUri": dash.ROLE_SCHEME, "value": "main"}]] * 2 + [[]]


def test_representation_attributes() -> None:
    ch = golden_channel()
    root = parse(dash.dash_manifest(ch, time_url=TIME_URL))
    v720 = representation(root, "v720")
    assert v720.attrib == {
        "id": "v720",
        "bandwidth": str(ch.tracks[0].bitrates.peak),
        "codecs": "avc1.64001f",
        "width": "1280",
        "height": "720",
        "frameRate": "25",
        "sar": "1:1",
    }
    aud = representation(root, "aud_en")
    assert aud.get("audioSamplingRate") == "48000" and aud.get("codecs") == "mp4a.40.2"
    (channels,) = aud.findall("mpd:AudioChannelConfiguration", NS)
    assert channels.attrib == {"schemeIdUri": dash.AUDIO_CHANNEL_SCHEME, "value": "2"}
    assert [child.tag.split("}")[1] for child in aud] == ["AudioChannelConfiguration", "SegmentTemplate"]


def test_frame_rate_fraction_sar_and_par() -> None:
    ntsc = video("ntsc", frames=30, frame_ticks=3003)
    pal_sd = video("sd", width=720, height=576, par=(16, 15), codec="avc1.4d401e")
    root = parse(dash.dash_manifest(channel(ntsc, pal_sd), time_url=TIME_URL))
    assert representation(root, "ntsc").get("frameRate") == "30000/1001"
    assert representation(root, "sd").get("sar") == "16:15"
    sets = root.findall(".//mpd:AdaptationSet", NS)
    assert [s.get("par") for s in sets] == [None]  # 16:9 and 4:3 disagree: no par
    only_sd = parse(dash.dash_manifest(channel(pal_sd), time_url=TIME_URL))
    assert [s.get("par") for s in only_sd.iterfind(".//mpd:AdaptationSet", NS)] == ["4:3"]


def test_codec_families_and_languages_split_sets() -> None:
    hevc = video("hevc", codec="hvc1.1.6.L93.B0", role="main")
    avc3 = video("avc3", codec="avc3.64001f", role="main")
    commentary = audio("en_c", "eng", role="commentary")
    ch = channel(
        video_360(),
        hevc,
        avc3,
        audio("en", "eng"),
        commentary,
        audio("en_ac3", "eng", codec="ac-3", sample_entry="ac-3"),
    )
    root = parse(dash.dash_manifest(ch, time_url=TIME_URL))
    sets = [
        [r.get("id") for r in s.findall("mpd:Representation", NS)]
        for s in root.iterfind(".//mpd:AdaptationSet", NS)
    ]
    assert sets == [["v360", "avc3"], ["hevc"], ["en"], ["en_c"], ["en_ac3"]]


def test_tracks_without_segments_are_left_out() -> None:
    empty = TrackView(name="late", info=video_info(), segments=(), ended=False)
    root = parse(dash.dash_manifest(channel(empty, audio("en", "eng")), time_url=TIME_URL))
    assert [r.get("id") for r in root.iterfind(".//mpd:Representation", NS)] == ["en"]
    assert [s.get("contentType") for s in root.iterfind(".//mpd:AdaptationSet", NS)] == ["audio"]


def test_static_mpd_once_every_track_ended() -> None:
    ch = channel(video_720(ended=True), audio("aud_en", "eng", ended=True))
    root = parse(dash.dash_manifest(ch, time_url=TIME_URL))
    assert root.get("type") == "static"
    for absent in (
        "minimumUpdatePeriod",
        "timeShiftBufferDepth",
        "suggestedPresentationDelay",
        "maxSegmentDuration",
    ):
        assert root.get(absent) is None
    assert root.findall("mpd:UTCTiming", NS) == []
    # Presentation time 0 is the window's start (3600 s of media time), in each track's own ticks.
    offsets = [template(r).get("presentationTimeOffset") for r in root.iterfind(".//mpd:Representation", NS)]
    assert offsets == [str(3600 * 90_000), str(3600 * 48_000)]
    # The video ends at 3614 s, the audio at 3612.032 s: 14 s from the origin.
    assert root.get("mediaPresentationDuration") == "PT14S"
    for track in ch.tracks:
        assert expand(representation(root, track.name)) == expected(track)
    one_live = channel(video_720(ended=True), audio("aud_en", "eng"))
    assert parse(dash.dash_manifest(one_live, time_url=TIME_URL)).get("type") == "dynamic"


def test_duration_format() -> None:
    assert [dash.duration_ms(ms) for ms in (0, 2000, 2500, 1001, 300_000, 40)] == [
        "PT0S",
        "PT2S",
        "PT2.500S",
        "PT1.001S",
        "PT300S",
        "PT0.040S",
    ]


def test_timeline_runs_fold_repeats_and_restate_t_after_gaps() -> None:
    assert dash.timeline_runs(video_720()) == [(324_000_000, 180_000, 2), (324_900_000, 180_000, 1)]
    assert dash.timeline_runs(audio("a", "eng")) == [(172_800_000, 96_256, 4)]
    assert dash.timeline_runs(TrackView(name="x", info=video_info(), segments=(), ended=False)) == []


def test_a_hole_of_up_to_one_target_is_bridged() -> None:
    """A lost 0.48 s chunk: the segment before the hole is listed up to the next one's start (dash.js
    asks for the next segment at start + d); a 5 s outage keeps its gap and restates t."""
    chunk = 43_200  # 0.48 s at 90 kHz, a keyframe each: a hole starts a new segment
    starts = [0, chunk, 2 * chunk, 4 * chunk, 5 * chunk, 6 * chunk, 7 * chunk, 7 * chunk + 5 * 90_000 + chunk]
    frags = [Frag(decode_time=t, duration_ticks=chunk, sample_count=12, size=1) for t in starts]
    track = view("v", video_info(), timeline(frags, target_ticks=180_000))
    assert [(s.start_time, s.duration_ticks) for s in track.segments] == [
        (0, 3 * chunk), (4 * chunk, 4 * chunk)
    ]  # fmt: skip
    assert dash.timeline_runs(track, bridge_ticks=180_000) == [(0, 4 * chunk, 1)]
    assert dash.timeline_runs(track) == [(0, 3 * chunk, 0), (4 * chunk, 4 * chunk, 0)]
    # the segment in progress (listed at its expected 2 s) after the 5 s outage: not bridged
    in_progress = (starts[-1], 180_000)
    assert dash.timeline_runs(track, in_progress=in_progress, bridge_ticks=180_000) == [
        (0, 4 * chunk, 1), (starts[-1], 180_000, 0)
    ]  # fmt: skip


def test_output_is_deterministic() -> None:
    one = dash.dash_manifest(golden_channel(), time_url=TIME_URL)
    assert one == dash.dash_manifest(golden_channel(), time_url=TIME_URL)


@settings(database=None, max_examples=300)
@given(tracks())
def test_timeline_expansion_equals_segments(track: TrackView) -> None:
    root = parse(dash.dash_manifest(channel(track), time_url=TIME_URL))
    assert expand(representation(root, track.name)) == expected(track)
    assert root.get("type") == "static"  # tracks() always ends the track
    live = TrackView(name=track.name, info=track.info, segments=track.segments, ended=False)
    root = parse(dash.dash_manifest(channel(live), time_url=TIME_URL))
    assert expand(representation(root, track.name)) == expected(track)
