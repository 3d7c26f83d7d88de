"""The box model: a base class, opaque and container boxes, the type registry, parse and serialize.

Every box is a frozen dataclass whose ``FIELDS`` (see ``fields``) describe its payload; ``parse_box_at``
and ``serialize`` are generic over them. Types without a registered class parse as ``UnknownBox`` and
keep their payload bytes, so any box serializes back to exactly the bytes it came from — including a
64-bit ``largesize`` header, recorded in ``large_size``.

Import ``services.shared.media.boxes`` rather than this module: it registers every box class.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

from services.shared.media.errors import MalformedBox, Truncated
from services.shared.media.fields import REST, BoxReader, Field, FieldSpec, Values, read_fields, write_fields

MAX_DEPTH = 16  # containers nested deeper than this are malformed (guards the recursion)
_HEADER = struct.Struct(">I4s")
_LARGE_HEADER = struct.Struct(">I4sQ")
_LARGESIZE = struct.Struct(">Q")
_MAX_SIZE32 = 0xFFFFFFFF

B = TypeVar("B", bound="Box")


@dataclass(frozen=True, slots=True, kw_only=True)
class Box:
    """Base of every box (ISO/IEC 14496-12 4.2)."""

    FIELDS: ClassVar[tuple[FieldSpec, ...]] = ()
    BOX_TYPES: ClassVar[tuple[str, ...]] = ()

    box_type: str
    large_size: bool = False  # header used size == 1 and a 64-bit largesize


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownBox(Box):
    """A box kept as opaque bytes (types without a class, e.g. edts, colr, mfra, uuid)."""

    FIELDS = (Field("payload", REST),)

    payload: bytes = b""


class _Children:
    """Child boxes up to the end of the parent (fewer than 8 bytes left are padding, kept as is)."""

    def read(self, r: BoxReader, values: Values) -> tuple[Box, ...]:
        if r.depth >= MAX_DEPTH:
            raise MalformedBox(r.box_type, "children", f"boxes nested more than {MAX_DEPTH} deep")
        children: list[Box] = []
        pos = r.pos
        while r.end - pos >= _HEADER.size:
            child, pos = parse_box_at(r.buf, pos, r.end, depth=r.depth + 1, parent=r.box_type)
            children.append(child)
        r.pos = pos
        return tuple(children)

    def write(self, out: bytearray, value: tuple[Box, ...], values: Values) -> None:
        for child in value:
            out += serialize(child)


CHILDREN = _Children()
CHILD_FIELDS: tuple[Field, ...] = (Field("children", CHILDREN), Field("padding", REST))


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerBox(Box):
    """A box holding only boxes (moov, trak, moof, traf, ...)."""

    FIELDS = CHILD_FIELDS

    children: tuple[Box, ...] = ()
    padding: bytes = b""  # trailing bytes too short to be a box (QuickTime's udta terminator)

    def first(self, cls: type[B], box_type: str | None = None) -> B | None:
        """The first child of class ``cls`` (and of ``box_type`` if given), or None."""
        for child in self.children:
            if isinstance(child, cls) and (box_type is None or child.box_type == box_type):
                return child
        return None

    def all(self, cls: type[B]) -> list[B]:
        return [child for child in self.children if isinstance(child, cls)]

    def require(self, cls: type[B], box_type: str) -> B:
        """The first child of ``cls``; MalformedBox naming ``box_type`` if there is none."""
        child = self.first(cls)
        if child is None:
            raise MalformedBox(self.box_type, box_type, f"has no {box_type} box")
        return child


_REGISTRY: dict[str, type[Box]] = {}


def register(cls: type[B]) -> type[B]:
    """Class decorator: parse the box types in ``cls.BOX_TYPES`` with ``cls``."""
    for box_type in cls.BOX_TYPES:
        _REGISTRY[box_type] = cls
    return cls


@dataclass(frozen=True, slots=True)
class BoxHeader:
    """Where a box is and how big: its type, total size and header length."""

    box_type: str
    size: int  # whole box, header included
    header_size: int  # 8, or 16 with a largesize
    large: bool


def read_box_header(buf: memoryview | bytes, pos: int, end: int, *, parent: str = "file") -> BoxHeader:
    """Parse the box header at ``pos``; the box must end by ``end``."""
    if end - pos < _HEADER.size:
        raise Truncated(parent, "size", f"{end - pos} bytes left, too few for a box header")
    size, raw_type = _HEADER.unpack_from(buf, pos)
    box_type = raw_type.decode("latin-1")
    header_size = _HEADER.size
    if size == 1:
        if end - pos < _LARGE_HEADER.size:
            raise Truncated(box_type, "largesize", "box header cut inside the 64-bit largesize")
        size = _LARGESIZE.unpack_from(buf, pos + 8)[0]
        header_size = _LARGE_HEADER.size
    check_box_size(box_type, size, header_size)
    if size > end - pos:
        raise Truncated(box_type, "size", f"declares {size} bytes but only {end - pos} remain in {parent}")
    return BoxHeader(box_type, size, header_size, header_size == _LARGE_HEADER.size)


def check_box_size(box_type: str, size: int, header_size: int) -> None:
    if size == 0:
        raise MalformedBox(box_type, "size", "size 0 (box extends to end of file) is not allowed")
    if size < header_size:
        raise MalformedBox(box_type, "size", f"size {size} is smaller than its {header_size}-byte header")


def parse_box_at(
    buf: memoryview, pos: int, end: int, *, depth: int = 0, parent: str = "file"
) -> tuple[Box, int]:
    """Parse the box at ``pos`` (ending by ``end``); return it and the position after it."""
    header = read_box_header(buf, pos, end, parent=parent)
    box_end = pos + header.size
    return parse_payload(header, buf, pos + header.header_size, box_end, depth=depth), box_end


def parse_payload(header: BoxHeader, buf: memoryview, start: int, end: int, *, depth: int = 0) -> Box:
    """Build the box described by ``header`` from its payload ``buf[start:end]``."""
    cls = _REGISTRY.get(header.box_type, UnknownBox)
    reader = BoxReader(buf, start=start, end=end, box_type=header.box_type, depth=depth)
    values = read_fields(cls.FIELDS, reader)
    return cls(box_type=header.box_type, large_size=header.large, **values)


def parse_boxes(data: bytes | memoryview) -> list[Box]:
    """Parse a sequence of top-level boxes that must fill ``data`` exactly."""
    view = memoryview(data)
    boxes: list[Box] = []
    pos = 0
    while pos < len(view):
        box, pos = parse_box_at(view, pos, len(view))
        boxes.append(box)
    return boxes


def serialize(box: Box) -> bytes:
    """The exact bytes of ``box``: header (32-bit size, or largesize when set or needed) and payload."""
    payload = write_fields(type(box).FIELDS, _values(box), box.box_type)
    try:
        raw_type = box.box_type.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise MalformedBox(box.box_type, "type", "box type is not four latin-1 characters") from exc
    if len(raw_type) != 4:
        raise MalformedBox(box.box_type, "type", "box type is not four characters")
    size = _HEADER.size + len(payload)
    if box.large_size or size > _MAX_SIZE32:
        return _LARGE_HEADER.pack(1, raw_type, size + 8) + payload
    return _HEADER.pack(size, raw_type) + payload


def _values(box: Box) -> dict[str, Any]:
    return {name: getattr(box, name) for name in _field_names(type(box))}


_FIELD_NAMES: dict[type[Box], tuple[str, ...]] = {}


def _field_names(cls: type[Box]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names
