"""Byte round trips of the fragment boxes, plus spec-layout checks against hand-packed bytes."""

from __future__ import annotations

import struct
from dataclasses import replace

import pytest

from services.shared.media.boxes import (
    Box,
    EventMessageBox,
    MediaDataBox,
    MovieFragmentBox,
    MovieFragmentHeaderBox,
    ProducerReferenceTimeBox,
    SegmentIndexBox,
    TrackFragmentBox,
    TrackFragmentDecodeTimeBox,
    TrackFragmentHeaderBox,
    TrackRunBox,
    UnknownBox,
    parse_boxes,
    serialize,
)
from services.shared.media.errors import MalformedBox, Truncated
from services.shared.media.fragment_boxes import (
    TFHD_BASE_DATA_OFFSET,
    TFHD_DEFAULT_BASE_IS_MOOF,
    TFHD_DEFAULT_SAMPLE_DURATION,
    TFHD_DEFAULT_SAMPLE_FLAGS,
    TFHD_DEFAULT_SAMPLE_SIZE,
    TFHD_SAMPLE_DESCRIPTION_INDEX,
    ntp_from_unix_ms,
)

TRUN = TrackRunBox.build(
    sample_count=3,
    data_offset=120,
    first_sample_flags=0x02000000,
    sample_durations=(3000, 3000, 3001),
    sample_sizes=(500, 20, 30),
    sample_composition_time_offsets=(6000, 0, 3000),
)
ALL_FLAGS = (
    TFHD_BASE_DATA_OFFSET
    | TFHD_SAMPLE_DESCRIPTION_INDEX
    | TFHD_DEFAULT_SAMPLE_DURATION
    | TFHD_DEFAULT_SAMPLE_SIZE
    | TFHD_DEFAULT_SAMPLE_FLAGS
)

BOXES: list[Box] = [
    MovieFragmentHeaderBox(sequence_number=42),
    TrackFragmentHeaderBox(track_id=1),
    TrackFragmentHeaderBox(
        flags=ALL_FLAGS,
        track_id=3,
        base_data_offset=1 << 40,
        sample_description_index=1,
        default_sample_duration=1024,
        default_sample_size=7,
        default_sample_flags=0x01010000,
    ),
    TrackFragmentDecodeTimeBox(version=0, base_media_decode_time=90000),
    TrackFragmentDecodeTimeBox(version=1, base_media_decode_time=1 << 40),
    TRUN,
    TrackRunBox.build(sample_count=2, sample_composition_time_offsets=(-3000, 3000)),
    TrackRunBox.build(sample_count=4),
    TrackRunBox.build(sample_count=2, sample_flags=(0x02000000, 0x01010000), sample_sizes=(1, 2)),
    TrackRunBox(),
    MediaDataBox(payload=bytes(range(256))),
    MediaDataBox(),
    ProducerReferenceTimeBox(
        version=0, reference_track_id=1, ntp_timestamp=0xE9D3_0000_8000_0000, media_time=5
    ),
    ProducerReferenceTimeBox(version=1, reference_track_id=2, ntp_timestamp=1 << 63, media_time=1 << 40),
    EventMessageBox(
        version=0,
        scheme_id_uri="urn:scte:scte35:2013:bin",
        value="1",
        timescale=90000,
        presentation_time_delta=100,
        event_duration=900,
        id=7,
        message_data=b"\xfc\x30",
    ),
    EventMessageBox(
        version=1,
        scheme_id_uri="https://aomedia.org/emsg/ID3",
        value="",
        timescale=1000,
        presentation_time=1 << 40,
        event_duration=0xFFFFFFFF,
        id=1,
        message_data=b"ID3",
    ),
    SegmentIndexBox(
        reference_id=1, timescale=90000, references=((1000, 180000, 0x90000000), (900, 180000, 0))
    ),
    SegmentIndexBox(version=1, earliest_presentation_time=1 << 40, first_offset=1 << 33),
    MovieFragmentBox(
        children=(
            MovieFragmentHeaderBox(sequence_number=1),
            TrackFragmentBox(children=(TrackFragmentHeaderBox(), TrackFragmentDecodeTimeBox(), TRUN)),
        )
    ),
    TrackFragmentBox(children=(TrackFragmentHeaderBox(), UnknownBox(box_type="sbgp", payload=bytes(12)))),
]


@pytest.mark.parametrize("box", BOXES, ids=lambda box: box.box_type)
def test_round_trip(box: Box) -> None:
    raw = serialize(box)
    assert parse_boxes(raw) == [box]
    assert serialize(parse_boxes(raw)[0]) == raw


@pytest.mark.parametrize("box", BOXES, ids=lambda box: box.box_type)
def test_round_trip_with_largesize(box: Box) -> None:
    large = replace(box, large_size=True)
    raw = serialize(large)
    assert struct.unpack_from(">I", raw)[0] == 1
    assert parse_boxes(raw) == [large]
    assert serialize(parse_boxes(raw)[0]) == raw


def test_tfhd_layout_follows_flags() -> None:
    payload = struct.pack(">I", TFHD_DEFAULT_BASE_IS_MOOF | TFHD_DEFAULT_SAMPLE_SIZE) + struct.pack(
        ">II", 5, 99
    )
    (tfhd,) = parse_boxes(struct.pack(">I4s", 8 + len(payload), b"tfhd") + payload)
    assert isinstance(tfhd, TrackFragmentHeaderBox)
    assert (tfhd.track_id, tfhd.default_sample_size, tfhd.default_sample_duration) == (5, 99, None)


def test_trun_layout_is_row_major_and_v1_offsets_are_signed() -> None:
    flags = 0x000001 | 0x000100 | 0x000800
    payload = struct.pack(">I", 1 << 24 | flags) + struct.pack(">Ii", 2, 64)
    payload += struct.pack(">Ii", 1000, -500) + struct.pack(">Ii", 1001, 500)
    (trun,) = parse_boxes(struct.pack(">I4s", 8 + len(payload), b"trun") + payload)
    assert isinstance(trun, TrackRunBox)
    assert trun.data_offset == 64
    assert trun.sample_durations == (1000, 1001)
    assert trun.sample_composition_time_offsets == (-500, 500)
    assert trun.sample_sizes == ()


def test_trun_with_fewer_rows_than_sample_count_is_truncated() -> None:
    payload = struct.pack(">III", 0x000200, 1000, 5)
    with pytest.raises(Truncated) as excinfo:
        parse_boxes(struct.pack(">I4s", 8 + len(payload), b"trun") + payload)
    assert (excinfo.value.box_type, excinfo.value.field) == ("trun", "sample_count")


def test_trun_columns_must_match_flags_when_written() -> None:
    with pytest.raises(MalformedBox, match="sample_sizes"):
        serialize(TrackRunBox(sample_count=2, sample_sizes=(1,)))
    with pytest.raises(MalformedBox, match="data_offset"):
        serialize(TrackRunBox(flags=0x1, sample_count=0))


def test_trun_build_sets_flags_and_version() -> None:
    assert TRUN.flags == 0x000001 | 0x000004 | 0x000100 | 0x000200 | 0x000800
    assert TRUN.version == 0
    assert TrackRunBox.build(sample_count=1, sample_composition_time_offsets=(-1,)).version == 1


def test_emsg_version_0_layout() -> None:
    payload = b"\0\0\0\0" + b"urn:x\0" + b"v\0" + struct.pack(">IIII", 1000, 10, 20, 3) + b"msg"
    (emsg,) = parse_boxes(struct.pack(">I4s", 8 + len(payload), b"emsg") + payload)
    assert emsg == EventMessageBox(
        version=0,
        scheme_id_uri="urn:x",
        value="v",
        timescale=1000,
        presentation_time_delta=10,
        event_duration=20,
        id=3,
        message_data=b"msg",
    )


def test_emsg_version_1_layout() -> None:
    payload = b"\1\0\0\0" + struct.pack(">IQII", 1000, 1 << 33, 20, 3) + b"urn:x\0" + b"\0" + b"msg"
    (emsg,) = parse_boxes(struct.pack(">I4s", 8 + len(payload), b"emsg") + payload)
    assert isinstance(emsg, EventMessageBox)
    assert (emsg.presentation_time, emsg.scheme_id_uri, emsg.value, emsg.message_data) == (
        1 << 33,
        "urn:x",
        "",
        b"msg",
    )


def test_prft_wallclock() -> None:
    # 2023-11-14T22:13:20.500Z
    prft = ProducerReferenceTimeBox(ntp_timestamp=(1_700_000_000 + 2_208_988_800) << 32 | 1 << 31)
    assert prft.wallclock_ms == 1_700_000_000_500
    for unix_ms in (0, 1, 999, 1_700_000_000_123, 1_700_000_000_999):
        assert ProducerReferenceTimeBox(ntp_timestamp=ntp_from_unix_ms(unix_ms)).wallclock_ms == unix_ms


def test_sidx_reference_count_is_checked() -> None:
    raw = bytearray(serialize(SegmentIndexBox(references=((1, 2, 3),))))
    raw[8 + 4 + 4 + 4 + 4 + 4 + 2 + 1] = 2  # reference_count 1 -> 2
    with pytest.raises(Truncated):
        parse_boxes(bytes(raw))
