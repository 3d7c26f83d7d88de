"""Elementary-stream formats: Annex B access units from avcC/hvcC, ADTS headers from AudioSpecificConfig."""

from __future__ import annotations

import pytest

from services.shared.media.errors import MalformedBox, UnsupportedCodec
from services.shared.media.synthetic import AVCC_HIGH_31
from services.shared.media.ts.adts import adts_for
from services.shared.media.ts.annexb import H264_AUD, HEVC_AUD, START_CODE, avc_annex_b, hevc_annex_b

SPS = b"\x67\x64\x00\x1f\xac"
PPS = b"\x68\xee\x3c\x80"
AVCC = (
    bytes([1, 0x64, 0x00, 0x1F, 0xFF, 0xE1])
    + len(SPS).to_bytes(2, "big")
    + SPS
    + b"\x01"
    + len(PPS).to_bytes(2, "big")
    + PPS
)


def nal(payload: bytes, length_size: int = 4) -> bytes:
    return len(payload).to_bytes(length_size, "big") + payload


def joined(parts: list[bytes | bytearray | memoryview]) -> bytes:
    return b"".join(bytes(p) for p in parts)


def test_idr_gets_aud_and_parameter_sets() -> None:
    annex_b = avc_annex_b(AVCC)
    sample = nal(b"\x06\x05sei") + nal(b"\x65idr")
    assert joined(annex_b.access_unit(sample, sync=True)) == (
        H264_AUD + START_CODE + SPS + START_CODE + PPS + START_CODE + b"\x06\x05sei" + START_CODE + b"\x65idr"
    )
    assert joined(annex_b.access_unit(nal(b"\x41p"), sync=False)) == H264_AUD + START_CODE + b"\x41p"


def test_in_band_aud_and_parameter_sets_are_not_repeated() -> None:
    annex_b = avc_annex_b(AVCC)
    sample = nal(b"\x09\xf0") + nal(SPS) + nal(PPS) + nal(b"\x65idr")
    assert joined(annex_b.access_unit(sample, sync=True)) == b"".join(
        START_CODE + unit for unit in (b"\x09\xf0", SPS, PPS, b"\x65idr")
    )


def test_real_avcc_and_short_length_fields() -> None:
    annex_b = avc_annex_b(AVCC_HIGH_31)
    assert annex_b.length_size == 4 and annex_b.parameter_sets.count(START_CODE) == 2
    two = avc_annex_b(AVCC[:4] + b"\xfd" + AVCC[5:])  # lengthSizeMinusOne 1
    assert joined(two.access_unit(nal(b"\x41p", 2), sync=False)) == H264_AUD + START_CODE + b"\x41p"


def test_hevc_arrays_in_order() -> None:
    vps, sps, pps = b"\x40\x01v", b"\x42\x01s", b"\x44\x01p"
    arrays = b"".join(
        bytes([0x80 | t]) + b"\x00\x01" + len(u).to_bytes(2, "big") + u
        for t, u in ((32, vps), (33, sps), (34, pps))
    )
    hvcc = bytes([1]) + bytes(20) + b"\x0f" + b"\x03" + arrays
    annex_b = hevc_annex_b(hvcc)
    idr = b"\x26\x01idr"  # nal_unit_type 19 (IDR_W_RADL)
    assert joined(annex_b.access_unit(nal(idr), sync=True)) == (
        HEVC_AUD + START_CODE + vps + START_CODE + sps + START_CODE + pps + START_CODE + idr
    )


@pytest.mark.parametrize(
    "record",
    [b"", b"\x02" + AVCC[1:], AVCC[:7], AVCC[:-2]],
)
def test_broken_avcc_is_malformed(record: bytes) -> None:
    with pytest.raises(MalformedBox):
        avc_annex_b(record)


def test_nal_length_overrun_is_malformed() -> None:
    with pytest.raises(MalformedBox):
        avc_annex_b(AVCC).access_unit(b"\x00\x00\x00\x09\x65", sync=True)


def test_adts_header_fields() -> None:
    adts = adts_for(bytes.fromhex("1190"))  # AAC-LC, 48 kHz (index 3), stereo
    header = adts.header(300)
    bits = int.from_bytes(header, "big")
    assert bits >> 44 == 0xFFF and (bits >> 40) & 0xF == 0x1  # syncword, MPEG-4, layer 0, no CRC
    assert (bits >> 38) & 0x3 == 1 and (bits >> 34) & 0xF == 3 and (bits >> 30) & 0x7 == 2
    assert (bits >> 13) & 0x1FFF == 307 and (bits >> 2) & 0x7FF == 0x7FF and bits & 0x3 == 0


def test_he_aac_travels_as_its_lc_core() -> None:
    adts = adts_for(bytes.fromhex("2b118800"))  # explicit SBR: AOT 5, core 24 kHz, stereo, ext 48 kHz
    bits = int.from_bytes(adts.header(10), "big")
    assert (bits >> 38) & 0x3 == 1 and (bits >> 34) & 0xF == 6  # LC profile, 24 kHz


@pytest.mark.parametrize(
    "config", ["1180", "f8ee0000", "1980"]
)  # no channel config (PCE), AOT 31 escape, 1 s
def test_what_adts_cannot_carry_is_unsupported(config: str) -> None:
    with pytest.raises((UnsupportedCodec, MalformedBox)):
        adts_for(bytes.fromhex(config))
