from __future__ import annotations

import pytest

from services.shared.media.boxes import FileTypeBox, FreeSpaceBox, parse_boxes
from services.shared.media.errors import MalformedBox
from services.shared.media.writer import build_ftyp, build_styp, serialize, serialize_all


def test_build_ftyp() -> None:
    raw = build_ftyp("cmf2", ("cmf2", "cmfc", "iso6"))
    assert raw == b"\x00\x00\x00\x1cftypcmf2\x00\x00\x00\x00cmf2cmfciso6"
    assert parse_boxes(raw) == [FileTypeBox(major_brand="cmf2", compatible_brands=("cmf2", "cmfc", "iso6"))]


def test_build_styp_of_a_last_segment() -> None:
    raw = build_styp("cmfs", ("cmfs", "lmsg"), minor_version=1)
    (styp,) = parse_boxes(raw)
    assert isinstance(styp, FileTypeBox)
    assert (styp.box_type, styp.minor_version, styp.brands) == ("styp", 1, ("cmfs", "cmfs", "lmsg"))


@pytest.mark.parametrize("brand", ["abc", "abcde", "ab\x00c", "é123"])
def test_bad_brands(brand: str) -> None:
    with pytest.raises(MalformedBox):
        build_styp("cmfs", (brand,))


def test_serialize_all() -> None:
    boxes = [FreeSpaceBox(payload=b"a"), FreeSpaceBox(box_type="skip")]
    assert serialize_all(boxes) == serialize(boxes[0]) + serialize(boxes[1])
