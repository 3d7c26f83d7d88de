"""Declarative field specs: one list per box drives both parsing and serialization.

A box class lists its payload layout in ``FIELDS``. ``read_fields`` walks the list over a ``BoxReader``
and collects the values; ``write_fields`` walks the same list to emit bytes. A field that depends on the
box's version or flags carries a ``when`` predicate, evaluated against the values read so far (or the
box's own values when writing). A field whose value follows from others (an entry count) carries
``derive``: it is checked on reading and computed on writing, and is not a constructor argument.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from services.shared.media.errors import MalformedBox, Truncated

Values = Mapping[str, Any]
Predicate = Callable[[Values], bool]

_ENCODE_ERRORS = (struct.error, ValueError, OverflowError)


class BoxReader:
    """A cursor over one box payload; every read is bounds-checked and names the box and field."""

    __slots__ = ("box_type", "buf", "depth", "end", "field", "pos")

    def __init__(self, buf: memoryview, *, start: int, end: int, box_type: str, depth: int = 0) -> None:
        self.buf = buf
        self.pos = start
        self.end = end
        self.box_type = box_type
        self.depth = depth
        self.field = "payload"

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def advance(self, n: int) -> int:
        """Reserve ``n`` bytes and return where they start; Truncated if fewer are left."""
        pos = self.pos
        if n > self.end - pos:
            raise Truncated(self.box_type, self.field, f"needs {n} bytes, {self.end - pos} left in the box")
        self.pos = pos + n
        return pos

    def take(self, n: int) -> bytes:
        pos = self.advance(n)
        return bytes(self.buf[pos : pos + n])


class Codec(Protocol):
    """How one value is laid out on the wire."""

    def read(self, r: BoxReader, values: Values) -> Any: ...

    def write(self, out: bytearray, value: Any, values: Values) -> None: ...


class Int:
    """A big-endian integer of a ``struct`` format character."""

    __slots__ = ("_struct",)

    def __init__(self, fmt: str) -> None:
        self._struct = struct.Struct(">" + fmt)

    def read(self, r: BoxReader, values: Values) -> int:
        value: int = self._struct.unpack_from(r.buf, r.advance(self._struct.size))[0]
        return value

    def write(self, out: bytearray, value: int, values: Values) -> None:
        out += self._struct.pack(value)


class UInt24:
    """The 24-bit ``flags`` of a FullBox."""

    def read(self, r: BoxReader, values: Values) -> int:
        pos = r.advance(3)
        return int.from_bytes(r.buf[pos : pos + 3], "big")

    def write(self, out: bytearray, value: int, values: Values) -> None:
        out += value.to_bytes(3, "big")


class Version:
    """A FullBox ``version`` byte; versions above ``highest`` are rejected."""

    __slots__ = ("highest",)

    def __init__(self, highest: int) -> None:
        self.highest = highest

    def read(self, r: BoxReader, values: Values) -> int:
        version = r.buf[r.advance(1)]
        if version > self.highest:
            raise MalformedBox(r.box_type, "version", f"version {version} is not defined")
        return version

    def write(self, out: bytearray, value: int, values: Values) -> None:
        out.append(value)


class FourCC:
    """A four-character code (box type, brand, handler type)."""

    def read(self, r: BoxReader, values: Values) -> str:
        pos = r.advance(4)
        return bytes(r.buf[pos : pos + 4]).decode("latin-1")

    def write(self, out: bytearray, value: str, values: Values) -> None:
        out += encode_fourcc(value)


class FourCCList:
    """Four-character codes up to the end of the box (ftyp/styp compatible_brands)."""

    def read(self, r: BoxReader, values: Values) -> tuple[str, ...]:
        if r.remaining % 4:
            raise MalformedBox(r.box_type, r.field, f"{r.remaining} bytes is not a whole number of brands")
        raw = r.take(r.remaining).decode("latin-1")
        return tuple(raw[i : i + 4] for i in range(0, len(raw), 4))

    def write(self, out: bytearray, value: tuple[str, ...], values: Values) -> None:
        for item in value:
            out += encode_fourcc(item)


class Raw:
    """Exactly ``size`` bytes kept as they are (reserved fields, matrices)."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size

    def read(self, r: BoxReader, values: Values) -> bytes:
        return r.take(self.size)

    def write(self, out: bytearray, value: bytes, values: Values) -> None:
        if len(value) != self.size:
            raise ValueError(f"needs exactly {self.size} bytes, got {len(value)}")
        out += value


class Rest:
    """All bytes up to the end of the box."""

    def read(self, r: BoxReader, values: Values) -> bytes:
        return r.take(r.remaining)

    def write(self, out: bytearray, value: bytes, values: Values) -> None:
        out += value


class CString:
    """A null-terminated UTF-8 string."""

    def read(self, r: BoxReader, values: Values) -> str:
        end = bytes(r.buf[r.pos : r.end]).find(b"\0")
        if end < 0:
            raise Truncated(r.box_type, r.field, "string has no null terminator")
        raw = r.take(end + 1)[:-1]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedBox(r.box_type, r.field, "string is not UTF-8") from exc

    def write(self, out: bytearray, value: str, values: Values) -> None:
        raw = value.encode("utf-8")
        if b"\0" in raw:
            raise ValueError("string contains a null byte")
        out += raw + b"\0"


class StructArray:
    """``values[count]`` records of a ``struct`` format, as tuples of ints."""

    __slots__ = ("_struct", "count")

    def __init__(self, fmt: str, *, count: str) -> None:
        self._struct = struct.Struct(">" + fmt)
        self.count = count

    def read(self, r: BoxReader, values: Values) -> tuple[tuple[int, ...], ...]:
        count: int = values[self.count]
        size = self._struct.size
        if count * size > r.remaining:
            raise Truncated(r.box_type, r.field, f"{count} entries need {count * size} bytes")
        pos = r.advance(count * size)
        unpack = self._struct.unpack_from
        return tuple(unpack(r.buf, pos + i * size) for i in range(count))

    def write(self, out: bytearray, value: tuple[tuple[int, ...], ...], values: Values) -> None:
        for record in value:
            out += self._struct.pack(*record)


def encode_fourcc(value: str) -> bytes:
    raw = value.encode("latin-1")
    if len(raw) != 4:
        raise ValueError(f"four-character code {value!r} is not 4 characters")
    return raw


class FieldSpec(Protocol):
    """One entry of a box's ``FIELDS``: reads into and writes from a name → value mapping."""

    @property
    def derived_name(self) -> str | None: ...

    def read(self, r: BoxReader, values: dict[str, Any]) -> None: ...

    def write(self, out: bytearray, values: Values, box_type: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Field:
    """A named value with its codec, an optional presence predicate and an optional derivation."""

    name: str
    codec: Codec
    when: Predicate | None = None
    derive: Callable[[Values], Any] | None = None

    @property
    def derived_name(self) -> str | None:
        return self.name if self.derive is not None else None

    def read(self, r: BoxReader, values: dict[str, Any]) -> None:
        if self.when is None or self.when(values):
            r.field = self.name
            values[self.name] = self.codec.read(r, values)

    def write(self, out: bytearray, values: Values, box_type: str) -> None:
        if self.when is not None and not self.when(values):
            return
        value = self.derive(values) if self.derive is not None else values.get(self.name)
        if value is None:
            raise MalformedBox(box_type, self.name, "required by the box's version/flags but not set")
        try:
            self.codec.write(out, value, values)
        except _ENCODE_ERRORS as exc:
            raise MalformedBox(box_type, self.name, f"cannot encode {value!r}: {exc}") from exc


def read_fields(fields: tuple[FieldSpec, ...], r: BoxReader) -> dict[str, Any]:
    """Read a payload laid out by ``fields``; derived values are checked, then dropped."""
    values: dict[str, Any] = {}
    for spec in fields:
        spec.read(r, values)
    if r.pos != r.end:
        raise MalformedBox(r.box_type, "payload", f"{r.end - r.pos} unexpected bytes after the last field")
    for spec in fields:
        name = spec.derived_name
        if name is not None and name in values:
            _check_derived(spec, values, r.box_type)
    return values


def _check_derived(spec: FieldSpec, values: dict[str, Any], box_type: str) -> None:
    assert isinstance(spec, Field) and spec.derive is not None
    found = values.pop(spec.name)
    expected = spec.derive(values)
    if found != expected:
        raise MalformedBox(box_type, spec.name, f"says {found} but the box holds {expected}")


def write_fields(fields: tuple[FieldSpec, ...], values: Values, box_type: str) -> bytearray:
    out = bytearray()
    for spec in fields:
        spec.write(out, values, box_type)
    return out


# Shared codec instances.
U8 = Int("B")
U16 = Int("H")
I16 = Int("h")
U32 = Int("I")
I32 = Int("i")
U64 = Int("Q")
U24 = UInt24()
FOURCC = FourCC()
FOURCC_LIST = FourCCList()
REST = Rest()
CSTRING = CString()


def is_version(version: int) -> Predicate:
    return lambda values: bool(values["version"] == version)


def has_flag(mask: int) -> Predicate:
    return lambda values: bool(values["flags"] & mask)


def full_box(highest_version: int = 0) -> tuple[Field, Field]:
    """The ``version`` and ``flags`` that start every FullBox."""
    return (Field("version", Version(highest_version)), Field("flags", U24))


def versioned(name: str, v0: Codec = U32, v1: Codec = U64) -> tuple[Field, Field]:
    """A field that is 32-bit in version 0 and 64-bit in version 1 (times, durations, offsets)."""
    return (Field(name, v1, when=is_version(1)), Field(name, v0, when=lambda values: values["version"] != 1))
