"""Boxes of a CMAF header: ftyp/styp, free/skip, moov and what it holds (ISO/IEC 14496-12 §8).

The sample tables of a fragmented file (stts, stsc, stsz, stco) are empty; their entries are kept as
raw bytes. Sample entries live in ``sample_entries``.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.shared.media.box import CHILD_FIELDS, Box, ContainerBox, register
from services.shared.media.fields import (
    CSTRING,
    FOURCC,
    FOURCC_LIST,
    I16,
    I32,
    REST,
    U16,
    U32,
    Field,
    Raw,
    full_box,
    versioned,
)

UNITY_MATRIX = bytes.fromhex("00010000" + "00000000" * 3 + "00010000" + "00000000" * 3 + "40000000")
TKHD_ENABLED_IN_MOVIE = 0x000003  # track_enabled | track_in_movie


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class FileTypeBox(Box):
    """ftyp (4.3) and styp (8.16.2): brands of a file or segment."""

    BOX_TYPES = ("ftyp", "styp")
    FIELDS = (
        Field("major_brand", FOURCC),
        Field("minor_version", U32),
        Field("compatible_brands", FOURCC_LIST),
    )

    box_type: str = "ftyp"
    major_brand: str = "isom"
    minor_version: int = 0
    compatible_brands: tuple[str, ...] = ()

    @property
    def brands(self) -> tuple[str, ...]:
        """major_brand followed by the compatible brands."""
        return (self.major_brand, *self.compatible_brands)


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class FreeSpaceBox(Box):
    """free / skip (8.1.2): ignorable bytes."""

    BOX_TYPES = ("free", "skip")
    FIELDS = (Field("payload", REST),)

    box_type: str = "free"
    payload: bytes = b""


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class MovieBox(ContainerBox):
    BOX_TYPES = ("moov",)
    box_type: str = "moov"


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class TrackBox(ContainerBox):
    BOX_TYPES = ("trak",)
    box_type: str = "trak"


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class MediaBox(ContainerBox):
    BOX_TYPES = ("mdia",)
    box_type: str = "mdia"


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class MediaInformationBox(ContainerBox):
    BOX_TYPES = ("minf",)
    box_type: str = "minf"


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class DataInformationBox(ContainerBox):
    BOX_TYPES = ("dinf",)
    box_type: str = "dinf"


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class SampleTableBox(ContainerBox):
    BOX_TYPES = ("stbl",)
    box_type: str = "stbl"


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class MovieExtendsBox(ContainerBox):
    BOX_TYPES = ("mvex",)
    box_type: str = "mvex"


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class UserDataBox(ContainerBox):
    BOX_TYPES = ("udta",)
    box_type: str = "udta"


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class MovieHeaderBox(Box):
    """mvhd (8.2.2)."""

    BOX_TYPES = ("mvhd",)
    FIELDS = (
        *full_box(1),
        *versioned("creation_time"),
        *versioned("modification_time"),
        Field("timescale", U32),
        *versioned("duration"),
        Field("rate", I32),
        Field("volume", I16),
        Field("reserved", Raw(10)),
        Field("matrix", Raw(36)),
        Field("pre_defined", Raw(24)),
        Field("next_track_id", U32),  # next_track_ID
    )

    box_type: str = "mvhd"
    version: int = 0
    flags: int = 0
    creation_time: int = 0
    modification_time: int = 0
    timescale: int = 1000
    duration: int = 0
    rate: int = 0x00010000  # 16.16, 1.0
    volume: int = 0x0100  # 8.8, 1.0
    reserved: bytes = bytes(10)
    matrix: bytes = UNITY_MATRIX
    pre_defined: bytes = bytes(24)
    next_track_id: int = 2


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class TrackHeaderBox(Box):
    """tkhd (8.3.2)."""

    BOX_TYPES = ("tkhd",)
    FIELDS = (
        *full_box(1),
        *versioned("creation_time"),
        *versioned("modification_time"),
        Field("track_id", U32),  # track_ID
        Field("reserved_1", U32),
        *versioned("duration"),
        Field("reserved_2", Raw(8)),
        Field("layer", I16),
        Field("alternate_group", I16),
        Field("volume", I16),
        Field("reserved_3", U16),
        Field("matrix", Raw(36)),
        Field("width", U32),  # 16.16 fixed point
        Field("height", U32),  # 16.16 fixed point
    )

    box_type: str = "tkhd"
    version: int = 0
    flags: int = TKHD_ENABLED_IN_MOVIE
    creation_time: int = 0
    modification_time: int = 0
    track_id: int = 1
    reserved_1: int = 0
    duration: int = 0
    reserved_2: bytes = bytes(8)
    layer: int = 0
    alternate_group: int = 0
    volume: int = 0
    reserved_3: int = 0
    matrix: bytes = UNITY_MATRIX
    width: int = 0
    height: int = 0


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class MediaHeaderBox(Box):
    """mdhd (8.4.2)."""

    BOX_TYPES = ("mdhd",)
    FIELDS = (
        *full_box(1),
        *versioned("creation_time"),
        *versioned("modification_time"),
        Field("timescale", U32),
        *versioned("duration"),
        Field("language", U16),  # pad bit + three 5-bit letters (ISO-639-2/T)
        Field("pre_defined", U16),
    )

    box_type: str = "mdhd"
    version: int = 0
    flags: int = 0
    creation_time: int = 0
    modification_time: int = 0
    timescale: int = 90000
    duration: int = 0
    language: int = 0x55C4  # "und"
    pre_defined: int = 0

    @property
    def language_code(self) -> str | None:
        """The ISO-639-2/T code, or None for "und" or a value that is not three letters."""
        letters = [chr(((self.language >> shift) & 0x1F) + 0x60) for shift in (10, 5, 0)]
        code = "".join(letters)
        if code == "und" or not all("a" <= c <= "z" for c in code):
            return None
        return code


def pack_language(code: str) -> int:
    """The mdhd ``language`` value of a three-letter ISO-639-2/T code."""
    if len(code) != 3 or not all("a" <= c <= "z" for c in code):
        raise ValueError(f"language {code!r} is not three lowercase letters")
    return (ord(code[0]) - 0x60) << 10 | (ord(code[1]) - 0x60) << 5 | (ord(code[2]) - 0x60)


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class HandlerBox(Box):
    """hdlr (8.4.3)."""

    BOX_TYPES = ("hdlr",)
    FIELDS = (
        *full_box(),
        Field("pre_defined", U32),
        Field("handler_type", FOURCC),
        Field("reserved", Raw(12)),
        Field("name", REST),  # null-terminated UTF-8 in the spec; kept raw, some muxers omit the null
    )

    box_type: str = "hdlr"
    version: int = 0
    flags: int = 0
    pre_defined: int = 0
    handler_type: str = "vide"
    reserved: bytes = bytes(12)
    name: bytes = b"\0"


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class VideoMediaHeaderBox(Box):
    """vmhd (12.1.2)."""

    BOX_TYPES = ("vmhd",)
    FIELDS = (*full_box(), Field("graphicsmode", U16), Field("opcolor", Raw(6)))

    box_type: str = "vmhd"
    version: int = 0
    flags: int = 1
    graphicsmode: int = 0
    opcolor: bytes = bytes(6)


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class SoundMediaHeaderBox(Box):
    """smhd (12.2.2)."""

    BOX_TYPES = ("smhd",)
    FIELDS = (*full_box(), Field("balance", I16), Field("reserved", U16))

    box_type: str = "smhd"
    version: int = 0
    flags: int = 0
    balance: int = 0
    reserved: int = 0


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class DataReferenceBox(Box):
    """dref (8.7.2): an entry count and data entry boxes."""

    BOX_TYPES = ("dref",)
    FIELDS = (
        *full_box(),
        Field("entry_count", U32, derive=lambda values: len(values["children"])),
        *CHILD_FIELDS,
    )

    box_type: str = "dref"
    version: int = 0
    flags: int = 0
    children: tuple[Box, ...] = ()
    padding: bytes = b""


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class DataEntryUrlBox(Box):
    """url  (8.7.2); flags 1 means the media is in the same file and location is empty."""

    BOX_TYPES = ("url ",)
    FIELDS = (*full_box(), Field("location", REST))

    box_type: str = "url "
    version: int = 0
    flags: int = 1
    location: bytes = b""


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class SampleTableEntriesBox(Box):
    """stts, stsc, stco, stss, ctts (8.6, 8.7): entry_count and entries, kept raw (empty in CMAF)."""

    BOX_TYPES = ("stts", "stsc", "stco", "stss", "ctts")
    FIELDS = (*full_box(1), Field("entry_count", U32), Field("entries", REST))

    box_type: str = "stts"
    version: int = 0
    flags: int = 0
    entry_count: int = 0
    entries: bytes = b""


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class SampleSizeBox(Box):
    """stsz (8.7.3.2): sample_size, sample_count and entries kept raw (empty in CMAF)."""

    BOX_TYPES = ("stsz",)
    FIELDS = (*full_box(), Field("sample_size", U32), Field("sample_count", U32), Field("entries", REST))

    box_type: str = "stsz"
    version: int = 0
    flags: int = 0
    sample_size: int = 0
    sample_count: int = 0
    entries: bytes = b""


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class MovieExtendsHeaderBox(Box):
    """mehd (8.8.2)."""

    BOX_TYPES = ("mehd",)
    FIELDS = (*full_box(1), *versioned("fragment_duration"))

    box_type: str = "mehd"
    version: int = 0
    flags: int = 0
    fragment_duration: int = 0


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class TrackExtendsBox(Box):
    """trex (8.8.3): per-track defaults for movie fragments."""

    BOX_TYPES = ("trex",)
    FIELDS = (
        *full_box(),
        Field("track_id", U32),  # track_ID
        Field("default_sample_description_index", U32),
        Field("default_sample_duration", U32),
        Field("default_sample_size", U32),
        Field("default_sample_flags", U32),
    )

    box_type: str = "trex"
    version: int = 0
    flags: int = 0
    track_id: int = 1
    default_sample_description_index: int = 1
    default_sample_duration: int = 0
    default_sample_size: int = 0
    default_sample_flags: int = 0


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class KindBox(Box):
    """kind (8.10.4): a role, e.g. scheme urn:mpeg:dash:role:2011 value "main"."""

    BOX_TYPES = ("kind",)
    FIELDS = (*full_box(), Field("scheme_uri", CSTRING), Field("value", CSTRING))

    box_type: str = "kind"
    version: int = 0
    flags: int = 0
    scheme_uri: str = "urn:mpeg:dash:role:2011"
    value: str = "main"
