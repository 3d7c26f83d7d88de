"""Byte round trips of the header boxes, plus spec-layout checks against hand-packed bytes."""

from __future__ import annotations

import struct
from dataclasses import replace

import pytest

from services.shared.media.boxes import (
    Box,
    DataEntryUrlBox,
    DataInformationBox,
    DataReferenceBox,
    FileTypeBox,
    FreeSpaceBox,
    HandlerBox,
    KindBox,
    MediaBox,
    MediaHeaderBox,
    MediaInformationBox,
    MovieBox,
    MovieExtendsBox,
    MovieExtendsHeaderBox,
    MovieHeaderBox,
    SampleSizeBox,
    SampleTableBox,
    SampleTableEntriesBox,
    SoundMediaHeaderBox,
    TrackBox,
    TrackExtendsBox,
    TrackHeaderBox,
    UnknownBox,
    UserDataBox,
    VideoMediaHeaderBox,
    parse_boxes,
    serialize,
)
from services.shared.media.movie_boxes import pack_language

BOXES: list[Box] = [
    FileTypeBox(major_brand="cmf2", minor_version=512, compatible_brands=("cmfc", "iso6", "dash")),
    FileTypeBox(box_type="styp", major_brand="msdh", compatible_brands=("msdh", "msix", "lmsg")),
    FileTypeBox(),
    FreeSpaceBox(payload=b"IsoMedia File Produced by Headwater"),
    FreeSpaceBox(box_type="skip"),
    MovieHeaderBox(timescale=1000, duration=5000, next_track_id=3, creation_time=1, modification_time=2),
    MovieHeaderBox(version=1, creation_time=1 << 40, modification_time=1 << 41, duration=1 << 33),
    TrackHeaderBox(track_id=2, width=1280 << 16, height=720 << 16, duration=7, alternate_group=1),
    TrackHeaderBox(version=1, track_id=9, duration=1 << 35, volume=0x100),
    MediaHeaderBox(timescale=48000, language=pack_language("eng")),
    MediaHeaderBox(version=1, timescale=90000, duration=1 << 40),
    HandlerBox(handler_type="soun", name=b"SoundHandler\0"),
    HandlerBox(name=b"no terminator"),
    VideoMediaHeaderBox(),
    SoundMediaHeaderBox(balance=-2),
    DataReferenceBox(children=(DataEntryUrlBox(),)),
    DataEntryUrlBox(flags=0, location=b"http://x\0"),
    DataInformationBox(children=(DataReferenceBox(children=(DataEntryUrlBox(),)),)),
    SampleTableEntriesBox(box_type="stts"),
    SampleTableEntriesBox(box_type="stsc", entry_count=1, entries=bytes(12)),
    SampleTableEntriesBox(box_type="stco"),
    SampleSizeBox(sample_size=4, sample_count=10),
    SampleTableBox(children=(SampleTableEntriesBox(box_type="stts"), SampleSizeBox())),
    MovieExtendsHeaderBox(fragment_duration=1234),
    MovieExtendsHeaderBox(version=1, fragment_duration=1 << 40),
    TrackExtendsBox(
        track_id=2, default_sample_duration=1024, default_sample_size=5, default_sample_flags=0x10000
    ),
    KindBox(scheme_uri="urn:mpeg:dash:role:2011", value="alternate"),
    UserDataBox(children=(KindBox(),)),
    MediaInformationBox(children=(VideoMediaHeaderBox(), UnknownBox(box_type="sthd", payload=b""))),
    MediaBox(children=(MediaHeaderBox(), HandlerBox())),
    TrackBox(children=(TrackHeaderBox(), UnknownBox(box_type="edts", payload=bytes(28)))),
    MovieBox(children=(MovieHeaderBox(), MovieExtendsBox(children=(TrackExtendsBox(),)))),
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


def test_ftyp_layout() -> None:
    raw = struct.pack(">I4s4sI4s4s", 24, b"ftyp", b"iso6", 512, b"iso6", b"cmfc")
    assert parse_boxes(raw) == [
        FileTypeBox(major_brand="iso6", minor_version=512, compatible_brands=("iso6", "cmfc"))
    ]


def test_ftyp_with_a_partial_brand_is_malformed() -> None:
    raw = struct.pack(">I4s4sI", 19, b"ftyp", b"iso6", 0) + b"cmf"
    with pytest.raises(Exception, match="compatible_brands"):
        parse_boxes(raw)


def test_mvhd_version_1_layout() -> None:
    payload = struct.pack(">B3sQQIQ", 1, bytes(3), 5, 6, 1000, 1 << 34)
    payload += struct.pack(">ih", 0x10000, 0x100) + bytes(10) + bytes(36) + bytes(24) + struct.pack(">I", 4)
    (mvhd,) = parse_boxes(struct.pack(">I4s", 8 + len(payload), b"mvhd") + payload)
    assert isinstance(mvhd, MovieHeaderBox)
    assert (mvhd.creation_time, mvhd.timescale, mvhd.duration, mvhd.next_track_id) == (5, 1000, 1 << 34, 4)


def test_tkhd_layout() -> None:
    payload = struct.pack(">B3sIIIII", 0, b"\0\0\3", 0, 0, 7, 0, 100) + bytes(8)
    payload += struct.pack(">hhhH", 0, 0, 0, 0) + bytes(36) + struct.pack(">II", 640 << 16, 360 << 16)
    (tkhd,) = parse_boxes(struct.pack(">I4s", 8 + len(payload), b"tkhd") + payload)
    assert isinstance(tkhd, TrackHeaderBox)
    assert (tkhd.track_id, tkhd.duration, tkhd.width >> 16, tkhd.height >> 16) == (7, 100, 640, 360)


@pytest.mark.parametrize(("packed", "code"), [(0x15C7, "eng"), (0x55C4, None), (0, None), (0x1A41, "fra")])
def test_mdhd_language(packed: int, code: str | None) -> None:
    assert MediaHeaderBox(language=packed).language_code == code


def test_pack_language() -> None:
    assert pack_language("eng") == 0x15C7
    assert pack_language("und") == 0x55C4
    with pytest.raises(ValueError, match="three lowercase"):
        pack_language("EN")


def test_trex_layout() -> None:
    payload = struct.pack(">IIIIII", 0, 2, 1, 1024, 0, 0x02000000)
    (trex,) = parse_boxes(struct.pack(">I4s", 8 + len(payload), b"trex") + payload)
    assert trex == TrackExtendsBox(track_id=2, default_sample_duration=1024, default_sample_flags=0x02000000)


def test_kind_strings_must_be_terminated_and_utf8() -> None:
    good = serialize(KindBox(value="commentary"))
    with pytest.raises(Exception, match=r"kind\.value"):
        parse_boxes(good[:-1].replace(good[:4], struct.pack(">I", len(good) - 1)))
    bad_utf8 = struct.pack(">I4sI", 16, b"kind", 0) + b"\xff\0a\0"
    with pytest.raises(Exception, match="UTF-8"):
        parse_boxes(bad_utf8)
