"""Boxes of a CMAF fragment and segment: moof/mfhd/traf/tfhd/tfdt/trun, mdat, prft, emsg, sidx.

ISO/IEC 14496-12 §8.8, §8.16, and ISO/IEC 23009-1 5.10.3.3 for emsg.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from services.shared.media.box import Box, ContainerBox, register
from services.shared.media.errors import MalformedBox, Truncated
from services.shared.media.fields import (
    CSTRING,
    I32,
    REST,
    U16,
    U32,
    U64,
    BoxReader,
    Field,
    StructArray,
    Values,
    full_box,
    has_flag,
    is_version,
    versioned,
)

# tfhd flags (8.8.7.1)
TFHD_BASE_DATA_OFFSET = 0x000001
TFHD_SAMPLE_DESCRIPTION_INDEX = 0x000002
TFHD_DEFAULT_SAMPLE_DURATION = 0x000008
TFHD_DEFAULT_SAMPLE_SIZE = 0x000010
TFHD_DEFAULT_SAMPLE_FLAGS = 0x000020
TFHD_DURATION_IS_EMPTY = 0x010000
TFHD_DEFAULT_BASE_IS_MOOF = 0x020000

# trun flags (8.8.8.1)
TRUN_DATA_OFFSET = 0x000001
TRUN_FIRST_SAMPLE_FLAGS = 0x000004
TRUN_SAMPLE_DURATION = 0x000100
TRUN_SAMPLE_SIZE = 0x000200
TRUN_SAMPLE_FLAGS = 0x000400
TRUN_SAMPLE_COMPOSITION_TIME_OFFSET = 0x000800

# sample_flags (8.8.3.1)
SAMPLE_IS_NON_SYNC = 0x00010000  # sample_is_non_sync_sample
SAMPLE_DEPENDS_ON_NONE = 0x02000000  # sample_depends_on = 2: an I-frame
SAMPLE_DEPENDS_ON_OTHERS = 0x01000000  # sample_depends_on = 1
KEYFRAME_FLAGS = SAMPLE_DEPENDS_ON_NONE
NON_KEYFRAME_FLAGS = SAMPLE_DEPENDS_ON_OTHERS | SAMPLE_IS_NON_SYNC


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class MovieFragmentBox(ContainerBox):
    BOX_TYPES = ("moof",)
    box_type: str = "moof"


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class TrackFragmentBox(ContainerBox):
    BOX_TYPES = ("traf",)
    box_type: str = "traf"


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class MovieFragmentHeaderBox(Box):
    """mfhd (8.8.5)."""

    BOX_TYPES = ("mfhd",)
    FIELDS = (*full_box(), Field("sequence_number", U32))

    box_type: str = "mfhd"
    version: int = 0
    flags: int = 0
    sequence_number: int = 1


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class TrackFragmentHeaderBox(Box):
    """tfhd (8.8.7): which track, and defaults that override trex for this fragment."""

    BOX_TYPES = ("tfhd",)
    FIELDS = (
        *full_box(),
        Field("track_id", U32),  # track_ID
        Field("base_data_offset", U64, when=has_flag(TFHD_BASE_DATA_OFFSET)),
        Field("sample_description_index", U32, when=has_flag(TFHD_SAMPLE_DESCRIPTION_INDEX)),
        Field("default_sample_duration", U32, when=has_flag(TFHD_DEFAULT_SAMPLE_DURATION)),
        Field("default_sample_size", U32, when=has_flag(TFHD_DEFAULT_SAMPLE_SIZE)),
        Field("default_sample_flags", U32, when=has_flag(TFHD_DEFAULT_SAMPLE_FLAGS)),
    )

    box_type: str = "tfhd"
    version: int = 0
    flags: int = TFHD_DEFAULT_BASE_IS_MOOF
    track_id: int = 1
    base_data_offset: int | None = None
    sample_description_index: int | None = None
    default_sample_duration: int | None = None
    default_sample_size: int | None = None
    default_sample_flags: int | None = None


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class TrackFragmentDecodeTimeBox(Box):
    """tfdt (8.8.12)."""

    BOX_TYPES = ("tfdt",)
    FIELDS = (*full_box(1), *versioned("base_media_decode_time"))

    box_type: str = "tfdt"
    version: int = 1
    flags: int = 0
    base_media_decode_time: int = 0  # baseMediaDecodeTime


_TRUN_COLUMNS = (
    (TRUN_SAMPLE_DURATION, "sample_durations"),
    (TRUN_SAMPLE_SIZE, "sample_sizes"),
    (TRUN_SAMPLE_FLAGS, "sample_flags"),
    (TRUN_SAMPLE_COMPOSITION_TIME_OFFSET, "sample_composition_time_offsets"),
)


class _TrunTable:
    """The per-sample rows of a trun, read with one ``struct`` call into one tuple per column."""

    derived_name = None

    def _layout(self, values: Values) -> tuple[list[str], str]:
        names = [name for mask, name in _TRUN_COLUMNS if values["flags"] & mask]
        # the composition offset is signed in version 1 only
        codes = ["i" if name.endswith("offsets") and values["version"] == 1 else "I" for name in names]
        return names, "".join(codes)

    def read(self, r: BoxReader, values: dict[str, Any]) -> None:
        names, row = self._layout(values)
        count: int = values["sample_count"]
        if not names:
            return
        r.field = names[0]
        size = 4 * len(row) * count
        if size > r.remaining:
            raise Truncated("trun", "sample_count", f"{count} samples need {size} bytes, {r.remaining} left")
        flat = struct.unpack_from(">" + row * count, r.buf, r.advance(size))
        for i, name in enumerate(names):
            values[name] = flat[i :: len(names)]

    def write(self, out: bytearray, values: Values, box_type: str) -> None:
        names, row = self._layout(values)
        count = values["sample_count"]
        for mask, name in _TRUN_COLUMNS:
            present = bool(values["flags"] & mask)
            if len(values[name]) != (count if present else 0):
                raise MalformedBox(box_type, name, f"has {len(values[name])} values for {count} samples")
        if names:
            rows = zip(*(values[name] for name in names), strict=True)
            try:
                out += struct.pack(">" + row * count, *(v for sample in rows for v in sample))
            except struct.error as exc:
                raise MalformedBox(box_type, "samples", f"cannot encode: {exc}") from exc


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class TrackRunBox(Box):
    """trun (8.8.8): a run of samples; columns absent from ``flags`` are empty tuples."""

    BOX_TYPES = ("trun",)
    FIELDS = (
        *full_box(1),
        Field("sample_count", U32),
        Field("data_offset", I32, when=has_flag(TRUN_DATA_OFFSET)),
        Field("first_sample_flags", U32, when=has_flag(TRUN_FIRST_SAMPLE_FLAGS)),
        _TrunTable(),
    )

    box_type: str = "trun"
    version: int = 0
    flags: int = 0
    sample_count: int = 0
    data_offset: int | None = None
    first_sample_flags: int | None = None
    sample_durations: tuple[int, ...] = ()
    sample_sizes: tuple[int, ...] = ()
    sample_flags: tuple[int, ...] = ()
    sample_composition_time_offsets: tuple[int, ...] = ()

    @classmethod
    def build(
        cls,
        *,
        sample_count: int,
        data_offset: int | None = None,
        first_sample_flags: int | None = None,
        sample_durations: tuple[int, ...] = (),
        sample_sizes: tuple[int, ...] = (),
        sample_flags: tuple[int, ...] = (),
        sample_composition_time_offsets: tuple[int, ...] = (),
    ) -> TrackRunBox:
        """A trun whose flags and version follow from the values given (version 1 if any offset < 0)."""
        columns = (sample_durations, sample_sizes, sample_flags, sample_composition_time_offsets)
        flags = (TRUN_DATA_OFFSET if data_offset is not None else 0) | (
            TRUN_FIRST_SAMPLE_FLAGS if first_sample_flags is not None else 0
        )
        for (mask, _name), column in zip(_TRUN_COLUMNS, columns, strict=True):
            flags |= mask if column else 0
        return cls(
            version=1 if any(v < 0 for v in sample_composition_time_offsets) else 0,
            flags=flags,
            sample_count=sample_count,
            data_offset=data_offset,
            first_sample_flags=first_sample_flags,
            sample_durations=sample_durations,
            sample_sizes=sample_sizes,
            sample_flags=sample_flags,
            sample_composition_time_offsets=sample_composition_time_offsets,
        )


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class MediaDataBox(Box):
    """mdat (8.1.1). The reader never builds one: it slices the payload out of the stream instead."""

    BOX_TYPES = ("mdat",)
    FIELDS = (Field("payload", REST),)

    box_type: str = "mdat"
    payload: bytes = b""


NTP_UNIX_OFFSET_S = 2_208_988_800  # seconds from 1900-01-01 (NTP epoch) to 1970-01-01


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class ProducerReferenceTimeBox(Box):
    """prft (8.16.5): the producer's NTP wall clock for ``media_time`` of the next fragment."""

    BOX_TYPES = ("prft",)
    FIELDS = (
        *full_box(1),
        Field("reference_track_id", U32),  # reference_track_ID
        Field("ntp_timestamp", U64),
        *versioned("media_time"),
    )

    box_type: str = "prft"
    version: int = 1
    flags: int = 0
    reference_track_id: int = 1
    ntp_timestamp: int = 0
    media_time: int = 0

    @property
    def wallclock_ms(self) -> int:
        """``ntp_timestamp`` (32.32 fixed point seconds since 1900) as Unix milliseconds."""
        seconds, fraction = self.ntp_timestamp >> 32, self.ntp_timestamp & 0xFFFFFFFF
        return (seconds - NTP_UNIX_OFFSET_S) * 1000 + ((fraction * 1000) >> 32)


def ntp_from_unix_ms(unix_ms: int) -> int:
    """The 64-bit NTP timestamp of a Unix time in milliseconds."""
    seconds, ms = divmod(unix_ms, 1000)
    return (seconds + NTP_UNIX_OFFSET_S) << 32 | -((-ms << 32) // 1000)


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class EventMessageBox(Box):
    """emsg (ISO/IEC 23009-1 5.10.3.3): version 0 has a time delta, version 1 an absolute time."""

    BOX_TYPES = ("emsg",)
    FIELDS = (
        *full_box(1),
        Field("scheme_id_uri", CSTRING, when=is_version(0)),
        Field("value", CSTRING, when=is_version(0)),
        Field("timescale", U32),
        Field("presentation_time_delta", U32, when=is_version(0)),
        Field("presentation_time", U64, when=is_version(1)),
        Field("event_duration", U32),
        Field("id", U32),
        Field("scheme_id_uri", CSTRING, when=is_version(1)),
        Field("value", CSTRING, when=is_version(1)),
        Field("message_data", REST),
    )

    box_type: str = "emsg"
    version: int = 1
    flags: int = 0
    scheme_id_uri: str = ""
    value: str = ""
    timescale: int = 1000
    presentation_time_delta: int | None = None  # version 0
    presentation_time: int | None = None  # version 1
    event_duration: int = 0
    id: int = 0
    message_data: bytes = b""


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class SegmentIndexBox(Box):
    """sidx (8.16.3); each reference is (reference_type<<31 | referenced_size, duration, SAP word)."""

    BOX_TYPES = ("sidx",)
    FIELDS = (
        *full_box(1),
        Field("reference_id", U32),  # reference_ID
        Field("timescale", U32),
        *versioned("earliest_presentation_time"),
        *versioned("first_offset"),
        Field("reserved", U16),
        Field("reference_count", U16, derive=lambda values: len(values["references"])),
        Field("references", StructArray("III", count="reference_count")),
    )

    box_type: str = "sidx"
    version: int = 0
    flags: int = 0
    reference_id: int = 1
    timescale: int = 90000
    earliest_presentation_time: int = 0
    first_offset: int = 0
    reserved: int = 0
    references: tuple[tuple[int, int, int], ...] = ()
