"""Writing boxes: the helpers the packager uses. Every box class serializes with ``serialize``.

build_styp("cmfs", ("cmfs", "cmfc", "lmsg")) + fragment.data   # a last segment
single_track_header(header, track_id=2)                      # an init segment for one track
"""

from __future__ import annotations

from collections.abc import Iterable

from services.shared.media.box import Box, serialize
from services.shared.media.errors import MalformedBox
from services.shared.media.header import single_track_header
from services.shared.media.movie_boxes import FileTypeBox

__all__ = ["build_ftyp", "build_styp", "serialize", "serialize_all", "single_track_header"]


def build_ftyp(major: str, compatible: tuple[str, ...], *, minor_version: int = 0) -> bytes:
    """An ftyp box (ISO/IEC 14496-12 4.3)."""
    return _file_type("ftyp", major, compatible, minor_version)


def build_styp(major: str, compatible: tuple[str, ...], *, minor_version: int = 0) -> bytes:
    """An styp box (ISO/IEC 14496-12 8.16.2), e.g. with "lmsg" among the brands of a last segment."""
    return _file_type("styp", major, compatible, minor_version)


def _file_type(box_type: str, major: str, compatible: tuple[str, ...], minor_version: int) -> bytes:
    for brand in (major, *compatible):
        if len(brand) != 4 or not brand.isascii() or not brand.isprintable():
            raise MalformedBox(box_type, "brand", f"brand {brand!r} is not four printable ASCII characters")
    box = FileTypeBox(
        box_type=box_type, major_brand=major, minor_version=minor_version, compatible_brands=compatible
    )
    return serialize(box)


def serialize_all(boxes: Iterable[Box]) -> bytes:
    """The boxes one after another."""
    return b"".join(serialize(box) for box in boxes)
