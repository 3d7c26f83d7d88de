"""The generic box layer: headers (32-bit, largesize), opaque and container boxes, bad sizes."""

from __future__ import annotations

import struct

import pytest

from services.shared.media.boxes import (
    Box,
    FreeSpaceBox,
    MediaDataBox,
    MovieBox,
    MovieFragmentBox,
    MovieFragmentHeaderBox,
    SampleDescriptionBox,
    TrackBox,
    UnknownBox,
    UserDataBox,
    parse_box_at,
    parse_boxes,
    read_box_header,
    serialize,
)
from services.shared.media.errors import MalformedBox, Truncated


def box_bytes(box_type: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), box_type) + payload


def large_box_bytes(box_type: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4sQ", 1, box_type, 16 + len(payload)) + payload


def assert_round_trip(raw: bytes) -> list[Box]:
    boxes = parse_boxes(raw)
    assert b"".join(serialize(box) for box in boxes) == raw
    return boxes


def test_unknown_box_is_kept_as_opaque_bytes() -> None:
    raw = box_bytes(b"colr", b"nclx\x00\x01\x00\x01\x00\x01\x00")
    (box,) = assert_round_trip(raw)
    assert box == UnknownBox(box_type="colr", payload=b"nclx\x00\x01\x00\x01\x00\x01\x00")


def test_uuid_box_keeps_its_usertype_in_the_payload() -> None:
    raw = box_bytes(b"uuid", bytes(range(16)) + b"data")
    (box,) = assert_round_trip(raw)
    assert isinstance(box, UnknownBox)
    assert box.payload[:16] == bytes(range(16))


def test_largesize_header_round_trips_and_is_recorded() -> None:
    raw = large_box_bytes(b"mdat", b"abc")
    (box,) = assert_round_trip(raw)
    assert box == MediaDataBox(payload=b"abc", large_size=True)
    header = read_box_header(raw, 0, len(raw))
    assert (header.size, header.header_size, header.large) == (19, 16, True)


def test_largesize_on_a_parsed_box_inside_a_container() -> None:
    mfhd = struct.pack(">I4sQ", 1, b"mfhd", 24) + struct.pack(">II", 0, 7)
    (moof,) = assert_round_trip(box_bytes(b"moof", mfhd))
    assert isinstance(moof, MovieFragmentBox)
    assert moof.children == (MovieFragmentHeaderBox(sequence_number=7, large_size=True),)


def test_serialize_writes_largesize_when_asked() -> None:
    raw = serialize(FreeSpaceBox(payload=b"xy", large_size=True))
    assert raw == large_box_bytes(b"free", b"xy")


@pytest.mark.parametrize(
    ("raw", "error", "field"),
    [
        (struct.pack(">I4s", 0, b"free"), MalformedBox, "size"),
        (struct.pack(">I4s", 4, b"free"), MalformedBox, "size"),
        (struct.pack(">I4sQ", 1, b"free", 12), MalformedBox, "size"),
        (struct.pack(">I4s", 1, b"free") + b"\0\0", Truncated, "largesize"),
        (struct.pack(">I4s", 20, b"free") + b"abc", Truncated, "size"),
        (b"\0\0\0", Truncated, "size"),
    ],
    ids=[
        "size-0",
        "size-below-header",
        "largesize-below-header",
        "cut-largesize",
        "beyond-end",
        "cut-header",
    ],
)
def test_bad_box_sizes(raw: bytes, error: type[Exception], field: str) -> None:
    with pytest.raises(error) as excinfo:
        parse_boxes(raw)
    assert isinstance(excinfo.value, MalformedBox)
    assert excinfo.value.field == field


def test_child_overrunning_its_parent_is_truncated() -> None:
    child = struct.pack(">I4s", 100, b"trak") + bytes(4)
    with pytest.raises(Truncated) as excinfo:
        parse_boxes(box_bytes(b"moov", child))
    assert excinfo.value.box_type == "trak"


def test_field_past_the_end_of_its_box_names_box_and_field() -> None:
    with pytest.raises(Truncated) as excinfo:
        parse_boxes(box_bytes(b"mfhd", b"\0\0\0\0\0\1"))
    assert (excinfo.value.box_type, excinfo.value.field) == ("mfhd", "sequence_number")


def test_unexpected_bytes_after_the_last_field() -> None:
    with pytest.raises(MalformedBox, match="unexpected bytes"):
        parse_boxes(box_bytes(b"mfhd", bytes(8) + b"!"))


def test_undefined_version_is_malformed() -> None:
    with pytest.raises(MalformedBox) as excinfo:
        parse_boxes(box_bytes(b"mfhd", b"\x05\0\0\0" + bytes(4)))
    assert excinfo.value.field == "version"


def test_entry_count_must_match_the_entries() -> None:
    stsd = box_bytes(b"stsd", struct.pack(">II", 0, 2) + box_bytes(b"vp09", b""))
    with pytest.raises(MalformedBox) as excinfo:
        parse_boxes(stsd)
    assert (excinfo.value.box_type, excinfo.value.field) == ("stsd", "entry_count")
    (good,) = assert_round_trip(box_bytes(b"stsd", struct.pack(">II", 0, 1) + box_bytes(b"vp09", b"")))
    assert isinstance(good, SampleDescriptionBox)


def test_container_keeps_trailing_padding() -> None:
    raw = box_bytes(b"udta", box_bytes(b"name", b"x") + bytes(4))
    (udta,) = assert_round_trip(raw)
    assert isinstance(udta, UserDataBox)
    assert udta.padding == bytes(4)


def test_containers_nested_too_deep_are_malformed() -> None:
    raw = b""
    for _ in range(40):
        raw = box_bytes(b"moov", raw)
    with pytest.raises(MalformedBox, match="nested"):
        parse_boxes(raw)


def test_container_helpers() -> None:
    trak = TrackBox(children=(UnknownBox(box_type="edts"), UserDataBox()))
    moov = MovieBox(children=(trak,))
    assert moov.first(TrackBox) is trak
    assert trak.first(UnknownBox, "edts") is not None
    assert trak.first(UnknownBox, "tref") is None
    assert moov.all(TrackBox) == [trak]
    with pytest.raises(MalformedBox, match="no mvhd"):
        moov.require(UnknownBox, "mvhd")


def test_parse_box_at_returns_the_next_position() -> None:
    raw = box_bytes(b"free", b"a") + box_bytes(b"skip", b"bc")
    view = memoryview(raw)
    first, pos = parse_box_at(view, 0, len(raw))
    second, end = parse_box_at(view, pos, len(raw))
    assert (first.box_type, second.box_type, end) == ("free", "skip", len(raw))


def test_serialize_rejects_values_that_do_not_fit() -> None:
    with pytest.raises(MalformedBox) as excinfo:
        serialize(MovieFragmentHeaderBox(sequence_number=1 << 32))
    assert (excinfo.value.box_type, excinfo.value.field) == ("mfhd", "sequence_number")
    with pytest.raises(MalformedBox, match="type"):
        serialize(UnknownBox(box_type="toolong"))
