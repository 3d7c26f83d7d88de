"""Video access units for MPEG-TS: ISO/IEC 14496-15 length-prefixed NAL units to Annex B byte streams.

In CMAF the parameter sets live in the sample entry (avcC / hvcC) and each NAL unit is prefixed by its
length; in a transport stream (ITU-T H.264 / H.265 Annex B, ISO/IEC 13818-1 2.14) every NAL unit
follows a start code, each access unit starts with an access unit delimiter, and a decoder joining
at any IDR needs the parameter sets in band. So ``AnnexB.access_unit`` writes: AUD (unless the sample
has one), then for a sync sample the parameter sets of the decoder configuration record (unless the
sample carries its own), then the sample's NAL units. The NAL unit bytes are not copied: the parts
returned are views of the sample.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from services.shared.media.errors import MalformedBox
from services.shared.media.ts.packets import Buffer

START_CODE = b"\x00\x00\x00\x01"
H264_AUD = START_CODE + b"\x09\xf0"  # nal_unit_type 9, primary_pic_type 7 (any slice types)
HEVC_AUD = START_CODE + b"\x46\x01\x50"  # nal_unit_type 35, nuh_temporal_id_plus1 1, pic_type 2
H264_NAL_AUD, H264_NAL_SPS = 9, 7
HEVC_NAL_AUD, HEVC_NAL_VPS, HEVC_NAL_SPS = 35, 32, 33
_LENGTH_FORMATS = {1: struct.Struct(">B"), 2: struct.Struct(">H"), 4: struct.Struct(">I")}


@dataclass(frozen=True, slots=True, kw_only=True)
class AnnexB:
    """How to turn one track's samples into Annex B access units (from its avcC or hvcC)."""

    hevc: bool  # NAL unit header layout: H.265 (2 bytes, type in bits 1-6) or H.264 (type in bits 0-4)
    length_size: int  # lengthSizeMinusOne + 1: bytes of each NALUnitLength
    parameter_sets: bytes  # the record's parameter sets (and SEI arrays of an hvcC), start codes included

    def access_unit(self, sample: Buffer, *, sync: bool) -> list[Buffer]:
        """The Annex B parts of one sample, in order."""
        nals = split_nal_units(memoryview(sample), self.length_size)
        types = [self._nal_type(nal) for nal in nals[:4]]  # AUD, VPS/SPS come first if present at all
        parts: list[Buffer] = []
        aud_type, parameter_types = (
            (HEVC_NAL_AUD, (HEVC_NAL_VPS, HEVC_NAL_SPS)) if self.hevc else (H264_NAL_AUD, (H264_NAL_SPS,))
        )
        if not types or types[0] != aud_type:
            parts.append(HEVC_AUD if self.hevc else H264_AUD)
        if sync and not any(t in parameter_types for t in types):
            parts.append(self.parameter_sets)
        for nal in nals:
            parts.append(START_CODE)
            parts.append(nal)
        return parts

    def _nal_type(self, nal: memoryview) -> int:
        return (nal[0] >> 1) & 0x3F if self.hevc else nal[0] & 0x1F


def split_nal_units(sample: memoryview, length_size: int) -> list[memoryview]:
    """The NAL units of a length-prefixed sample (empty ones dropped)."""
    nals: list[memoryview] = []
    position, size = 0, len(sample)
    length_format = _LENGTH_FORMATS.get(length_size)
    while position < size:
        if position + length_size > size:
            raise MalformedBox("mdat", "NALUnitLength", f"a sample ends inside a {length_size}-byte length")
        if length_format is not None:
            (length,) = length_format.unpack_from(sample, position)
        else:
            length = int.from_bytes(sample[position : position + length_size], "big")
        start = position + length_size
        position = start + length
        if position > size:
            raise MalformedBox("mdat", "NALUnitLength", f"a {length}-byte NAL unit overruns its sample")
        if length:
            nals.append(sample[start:position])
    return nals


def _records(data: bytes, position: int, count: int, record: str) -> tuple[list[bytes], int]:
    """``count`` 16-bit-length-prefixed NAL units from ``position``; returns them and the end."""
    units = []
    for _ in range(count):
        if position + 2 > len(data):
            raise MalformedBox(record, "nalUnitLength", "the record ends inside its parameter sets")
        length = int.from_bytes(data[position : position + 2], "big")
        position += 2
        if position + length > len(data):
            raise MalformedBox(record, "nalUnit", "a parameter set overruns the record")
        units.append(data[position : position + length])
        position += length
    return units, position


def _annex_b(units: list[bytes]) -> bytes:
    return b"".join(START_CODE + unit for unit in units if unit)


def avc_annex_b(avcc: bytes) -> AnnexB:
    """From an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1): SPS then PPS."""
    if len(avcc) < 7 or avcc[0] != 1:
        raise MalformedBox("avcC", "configurationVersion", "not an AVCDecoderConfigurationRecord")
    sps, position = _records(avcc, 6, avcc[5] & 0x1F, "avcC")
    if position >= len(avcc):
        raise MalformedBox("avcC", "numOfPictureParameterSets", "the record ends before its PPS count")
    pps, _ = _records(avcc, position + 1, avcc[position], "avcC")
    return AnnexB(hevc=False, length_size=(avcc[4] & 0x03) + 1, parameter_sets=_annex_b(sps + pps))


def hevc_annex_b(hvcc: bytes) -> AnnexB:
    """From an HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1): every array, in order."""
    if len(hvcc) < 23 or hvcc[0] != 1:
        raise MalformedBox("hvcC", "configurationVersion", "not an HEVCDecoderConfigurationRecord")
    units: list[bytes] = []
    position = 23
    for _ in range(hvcc[22]):  # numOfArrays
        if position + 3 > len(hvcc):
            raise MalformedBox("hvcC", "numNalus", "the record ends inside its arrays")
        count = int.from_bytes(hvcc[position + 1 : position + 3], "big")
        array, position = _records(hvcc, position + 3, count, "hvcC")
        units += array
    return AnnexB(hevc=True, length_size=(hvcc[21] & 0x03) + 1, parameter_sets=_annex_b(units))
