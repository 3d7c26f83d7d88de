"""The reader and box layer on real FFmpeg output, checked against what ffprobe reports."""

from __future__ import annotations

import random
from itertools import pairwise
from pathlib import Path

import pytest

from services.shared.media.boxes import parse_boxes, serialize
from services.shared.media.models import CmafFragment, CmafHeader
from services.shared.media.reader import CmafReader, Event, FragmentReceived, HeaderReceived
from tests.media.conftest import Encoded

H264_PROFILES = {"Baseline": 0x42, "Constrained Baseline": 0x42, "Main": 0x4D, "High": 0x64}
HEVC_PROFILES = {"Main": 1, "Main 10": 2}
AAC_PROFILES = {"LC": 2, "HE-AAC": 5, "HE-AACv2": 29}


def feed_in_random_splits(data: bytes, seed: int, *, reader: CmafReader | None = None) -> list[Event]:
    rng = random.Random(seed)
    reader = reader or CmafReader()
    events: list[Event] = []
    pos = 0
    while pos < len(data):
        step = rng.choice([1, 7, 188, 1000, 4096, 65536])
        events += reader.feed(data[pos : pos + step])
        pos += step
    reader.close()
    return events


def read(data: bytes) -> tuple[CmafHeader, list[CmafFragment]]:
    reader = CmafReader()
    events = reader.feed(data)
    reader.close()
    header = events[0]
    assert isinstance(header, HeaderReceived)
    frags = [e.fragment for e in events[1:] if isinstance(e, FragmentReceived)]
    assert len(frags) == len(events) - 1
    return header.header, frags


def assert_continuous(frags: list[CmafFragment]) -> None:
    for previous, fragment in pairwise(frags):
        assert fragment.decode_time == previous.decode_time + previous.duration_ticks
        assert fragment.sequence_number == previous.sequence_number + 1


def assert_reassembles(encoded: Encoded, header: CmafHeader, frags: list[CmafFragment]) -> None:
    """Header plus fragments are the file minus the trailing mfra that FFmpeg appends."""
    kept = [box for box in parse_boxes(encoded.data) if box.box_type != "mfra"]
    assert header.data + b"".join(f.data for f in frags) == b"".join(serialize(box) for box in kept)


@pytest.mark.parametrize("name", ["h264_cmaf", "aac_cmaf", "hevc_cmaf", "prft_cmaf"])
def test_every_box_of_real_files_round_trips(name: str, request: pytest.FixtureRequest) -> None:
    encoded: Encoded = request.getfixturevalue(name)
    boxes = parse_boxes(encoded.data)
    assert b"".join(serialize(box) for box in boxes) == encoded.data


@pytest.mark.parametrize("name", ["h264_cmaf", "aac_cmaf", "hevc_cmaf", "prft_cmaf"])
def test_random_splits_give_the_same_events(name: str, request: pytest.FixtureRequest) -> None:
    encoded: Encoded = request.getfixturevalue(name)
    reader = CmafReader()
    whole = reader.feed(encoded.data)
    reader.close()
    for seed in range(3):
        assert feed_in_random_splits(encoded.data, seed) == whole


def test_h264(h264_cmaf: Encoded) -> None:
    header, frags = read(h264_cmaf.data)
    (track,) = header.tracks
    (stream,) = h264_cmaf.streams
    assert (track.handler, track.sample_entry, track.width, track.height) == ("vide", "avc1", 320, 180)
    assert (
        track.codec
        == f"avc1.{H264_PROFILES[stream['profile']]:02x}{track.decoder_config[2]:02x}{stream['level']:02x}"
    )
    assert "cmfc" in header.compatible_brands
    assert len(frags) == 4  # 4 s, a keyframe (and so a fragment) every 25 frames
    assert all(f.starts_with_keyframe and f.sample_count == 25 for f in frags)
    assert all(not s.is_sync for f in frags for s in f.samples[1:])
    assert frags[0].decode_time == 0
    assert sum(f.duration_ticks for f in frags) == 4 * track.timescale
    assert_continuous(frags)
    assert_reassembles(h264_cmaf, header, frags)


def test_aac(aac_cmaf: Encoded) -> None:
    header, frags = read(aac_cmaf.data)
    (track,) = header.tracks
    (stream,) = aac_cmaf.streams
    assert track.codec == f"mp4a.40.{AAC_PROFILES[stream['profile']]}"
    assert (track.sample_rate, track.channels) == (int(stream["sample_rate"]), stream["channels"])
    assert track.timescale == 48000
    assert len(track.decoder_config) >= 2
    assert len(frags) >= 4
    assert all(f.starts_with_keyframe for f in frags)
    durations = [s.duration_ticks for f in frags for s in f.samples]
    assert set(durations[:-1]) == {1024}  # AAC frames; FFmpeg trims the last one to the input's end
    assert_continuous(frags)
    assert_reassembles(aac_cmaf, header, frags)


def test_hevc(hevc_cmaf: Encoded) -> None:
    header, frags = read(hevc_cmaf.data)
    (track,) = header.tracks
    (stream,) = hevc_cmaf.streams
    assert track.sample_entry == "hvc1"
    profile = HEVC_PROFILES[stream["profile"]]
    assert track.codec.startswith(f"hvc1.{profile}.")
    assert f".L{stream['level']}" in track.codec
    assert (track.width, track.height) == (320, 180)
    assert len(frags) == 2
    assert all(f.starts_with_keyframe for f in frags)
    assert_continuous(frags)
    assert_reassembles(hevc_cmaf, header, frags)


def test_prft(prft_cmaf: Encoded) -> None:
    header, frags = read(prft_cmaf.data)
    assert len(frags) == 2
    for fragment in frags:
        assert fragment.prft is not None
        assert fragment.data[4:8] == b"prft"
        assert 1_600_000_000_000 < fragment.prft.wallclock_ms < 4_000_000_000_000
    assert_reassembles(prft_cmaf, header, frags)


def test_dash_segments_with_a_seeded_header(dash_output: Path) -> None:
    for stream in ("stream0", "stream1"):
        init = (dash_output / f"init-{stream}.m4s").read_bytes()
        (event,) = CmafReader().feed(init)
        assert isinstance(event, HeaderReceived)
        frags: list[CmafFragment] = []
        for path in sorted(dash_output.glob(f"chunk-{stream}-*.m4s")):
            segment = path.read_bytes()
            events = feed_in_random_splits(segment, seed=1, reader=CmafReader(header=event.header))
            segment_frags = [e.fragment for e in events if isinstance(e, FragmentReceived)]
            assert b"".join(f.data for f in segment_frags) == segment  # styp and sidx stay in the data
            assert segment_frags[0].brands[0] == "msdh"
            frags += segment_frags
        assert len(frags) >= 2
        assert_continuous(frags)
