"""Byte round trips of stsd, the sample entries and their configuration boxes."""

from __future__ import annotations

import struct
from dataclasses import replace

import pytest

from services.shared.media.boxes import (
    AudioSampleEntry,
    BitRateBox,
    Box,
    CodecConfigurationBox,
    ElementaryStreamDescriptorBox,
    PixelAspectRatioBox,
    SampleDescriptionBox,
    UnknownBox,
    VisualSampleEntry,
    parse_boxes,
    serialize,
)
from services.shared.media.synthetic import (
    ASC_AAC_LC_48K_STEREO,
    AVCC_HIGH_31,
    HVCC_MAIN_L93,
    audio_entry,
    esds_for,
    video_entry,
)

BOXES: list[Box] = [
    video_entry(),
    video_entry(sample_entry="avc3", width=1920, height=1080, bitrate=5_000_000, par=(4, 3)),
    video_entry(sample_entry="hvc1"),
    video_entry(sample_entry="hev1"),
    audio_entry(),
    audio_entry(channels=6, sample_rate=44100, bitrate=128000),
    AudioSampleEntry(entry_version=1, quicktime_v1=bytes(range(16)), children=(UnknownBox(box_type="wave"),)),
    CodecConfigurationBox(payload=AVCC_HIGH_31),
    CodecConfigurationBox(box_type="hvcC", payload=HVCC_MAIN_L93),
    ElementaryStreamDescriptorBox(descriptors=esds_for(ASC_AAC_LC_48K_STEREO)),
    BitRateBox(buffer_size_db=1, max_bitrate=2, avg_bitrate=3),
    PixelAspectRatioBox(h_spacing=16, v_spacing=11),
    SampleDescriptionBox(children=(video_entry(),)),
    SampleDescriptionBox(children=(UnknownBox(box_type="vp09", payload=bytes(78)),)),
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


def test_visual_sample_entry_layout() -> None:
    payload = (
        bytes(6)
        + struct.pack(">H", 1)
        + bytes(16)
        + struct.pack(">HHIIIH", 640, 360, 0x480000, 0x480000, 0, 1)
    )
    payload += bytes(32) + struct.pack(">Hh", 24, -1)
    (entry,) = parse_boxes(struct.pack(">I4s", 8 + len(payload), b"avc1") + payload)
    assert isinstance(entry, VisualSampleEntry)
    assert (entry.width, entry.height, entry.children) == (640, 360, ())


def test_audio_sample_entry_layout() -> None:
    payload = bytes(6) + struct.pack(">H", 1) + bytes(8) + struct.pack(">HHHHI", 6, 16, 0, 0, 44100 << 16)
    (entry,) = parse_boxes(struct.pack(">I4s", 8 + len(payload), b"mp4a") + payload)
    assert isinstance(entry, AudioSampleEntry)
    assert (entry.channelcount, entry.samplerate >> 16, entry.quicktime_v1) == (6, 44100, None)
