"""Stored fragments to sample columns: the same samples the media core resolves, views of the data."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.shared.media.errors import MalformedBox
from services.shared.media.header import parse_header
from services.shared.media.reader import CmafReader, FragmentReceived, HeaderReceived
from services.shared.media.synthetic import make_fragment, make_header, payload_of
from services.shared.media.ts.cmaf import concatenate, fragment_samples

from ..conftest import Encoded
from .cmaf_input import read_track


def assert_matches_the_reader(header: bytes, fragment: bytes) -> None:
    events = CmafReader().feed(header + fragment)
    received = next(e.fragment for e in events if isinstance(e, FragmentReceived))
    samples = fragment_samples(fragment, parse_header(header).tracks[0])
    resolved = received.samples
    assert samples.durations == tuple(s.duration_ticks for s in resolved)
    assert samples.sync == tuple(s.is_sync for s in resolved)
    assert [len(d) for d in samples.data] == [s.size for s in resolved]
    offsets = tuple(c - d for c, d in zip(samples.composition_times, samples.decode_times, strict=True))
    assert offsets == tuple(s.composition_offset_ticks for s in resolved)
    assert samples.decode_times[0] == received.decode_time
    assert samples.end_time == received.decode_time + received.duration_ticks


@settings(max_examples=40, deadline=None)
@given(
    durations=st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=40),
    offsets=st.lists(st.integers(min_value=-3000, max_value=3000), max_size=40),
    decode_time=st.integers(min_value=0, max_value=1 << 60),
    keyframe_first=st.booleans(),
)
def test_columns_agree_with_the_reader(
    durations: list[int], offsets: list[int], decode_time: int, keyframe_first: bool
) -> None:
    sizes = [(d * 7) % 300 + 1 for d in durations]
    composition = offsets[: len(durations)] if len(offsets) >= len(durations) else []
    fragment = make_fragment(
        decode_time=decode_time,
        sample_durations=durations,
        sample_sizes=sizes,
        composition_offsets=composition,
        keyframe_first=keyframe_first,
    )
    assert_matches_the_reader(make_header(track_id=1, timescale=90_000), fragment)
    samples = fragment_samples(fragment, parse_header(make_header()).tracks[0])
    assert b"".join(bytes(d) for d in samples.data) == payload_of(sum(sizes), seed=1)


def test_ffmpeg_fragments_agree_with_the_reader(h264_cmaf: Encoded, aac_cmaf: Encoded) -> None:
    for encoded in (h264_cmaf, aac_cmaf):
        events = CmafReader().feed(encoded.data)
        header = next(e.header.data for e in events if isinstance(e, HeaderReceived))
        track = read_track(encoded.data)
        for fragment in track.fragments:
            assert_matches_the_reader(header, fragment)


def test_take_and_concatenate(aac_cmaf: Encoded) -> None:
    track = read_track(aac_cmaf.data)
    whole = track.all_samples()
    assert len(whole) == sum(len(track.samples(i)) for i in range(len(track.fragments)))
    assert whole.take([2, 3, 4]).decode_times == whole.decode_times[2:5]
    assert whole.take([0, 5]).data == (whole.data[0], whole.data[5])
    assert len(concatenate([whole.take([])])) == 0


def test_fragment_without_moof_or_of_another_track_is_malformed() -> None:
    info = parse_header(make_header()).tracks[0]
    with pytest.raises(MalformedBox):
        fragment_samples(b"\x00\x00\x00\x08free", info)
    with pytest.raises(MalformedBox):
        fragment_samples(make_fragment(track_id=2), info)
