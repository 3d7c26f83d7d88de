"""summarize_moof: the structure a CMAF moof must have, and the sample cap."""

from __future__ import annotations

import pytest

from services.shared.media.boxes import (
    Box,
    MovieFragmentBox,
    MovieFragmentHeaderBox,
    TrackFragmentBox,
    TrackFragmentDecodeTimeBox,
    TrackFragmentHeaderBox,
    TrackRunBox,
)
from services.shared.media.errors import MalformedBox
from services.shared.media.fragment import (
    MAX_SAMPLES_PER_FRAGMENT,
    MoofSummary,
    check_sample_data,
    summarize_moof,
)
from services.shared.media.models import TrackInfo

TRACK = TrackInfo(track_id=1, handler="vide", sample_entry="avc1", codec="avc1.64001f", timescale=90000)
TFHD = TrackFragmentHeaderBox(track_id=1)
TFDT = TrackFragmentDecodeTimeBox(base_media_decode_time=900)
TRUN = TrackRunBox.build(sample_count=2, data_offset=100, sample_sizes=(10, 20), sample_durations=(1, 2))


def moof(*traf_children: Box, mfhd: bool = True) -> MovieFragmentBox:
    traf = TrackFragmentBox(children=tuple(traf_children))
    children = (MovieFragmentHeaderBox(sequence_number=4), traf) if mfhd else (traf,)
    return MovieFragmentBox(children=children)


def test_summary() -> None:
    summary = summarize_moof(moof(TFHD, TFDT, TRUN), moof_offset=1000, tracks={1: TRACK})
    assert (summary.track_id, summary.sequence_number, summary.decode_time) == (1, 4, 900)
    assert [s.size for s in summary.samples] == [10, 20]
    assert summary.data_ranges == ((1100, 1130),)


def test_base_data_offset_is_a_stream_offset() -> None:
    tfhd = TrackFragmentHeaderBox(flags=0x1, track_id=1, base_data_offset=5000)
    summary = summarize_moof(moof(tfhd, TFDT, TRUN), moof_offset=1000, tracks={1: TRACK})
    assert summary.data_ranges == ((5100, 5130),)


@pytest.mark.parametrize(
    ("box", "field", "children", "mfhd"),
    [
        ("moof", "mfhd", (TFHD, TFDT, TRUN), False),
        ("traf", "tfhd", (TFDT, TRUN), True),
        ("traf", "tfdt", (TFHD, TRUN), True),
        ("traf", "trun", (TFHD, TFDT), True),
    ],
)
def test_required_boxes(box: str, field: str, children: tuple[Box, ...], mfhd: bool) -> None:
    with pytest.raises(MalformedBox) as excinfo:
        summarize_moof(moof(*children, mfhd=mfhd), moof_offset=0, tracks={1: TRACK})
    assert (excinfo.value.box_type, excinfo.value.field) == (box, field)


def test_sample_cap() -> None:
    trun = TrackRunBox.build(sample_count=MAX_SAMPLES_PER_FRAGMENT + 1)
    with pytest.raises(MalformedBox, match="samples"):
        summarize_moof(moof(TFHD, TFDT, trun), moof_offset=0, tracks={1: TRACK})


def test_check_sample_data() -> None:
    summary = MoofSummary(track_id=1, sequence_number=1, decode_time=0, samples=(), data_ranges=((10, 20),))
    check_sample_data(summary, payload_start=10, payload_end=20)
    with pytest.raises(MalformedBox, match="data_offset"):
        check_sample_data(summary, payload_start=11, payload_end=30)
    with pytest.raises(MalformedBox, match="sample_size"):
        check_sample_data(summary, payload_start=0, payload_end=19)
