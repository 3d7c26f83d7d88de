"""PTS/DTS and PCR fields: exact 33-bit values, wrap, marker bits."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.shared.media.ts.timestamps import (
    DTS_PREFIX,
    PTS_PREFIX,
    TIMESTAMP_MODULUS,
    decode_pcr_base,
    decode_timestamp,
    encode_pcr,
    encode_timestamp,
    to_system_clock,
)

TIMES = st.integers(min_value=-(1 << 40), max_value=1 << 45)


@given(TIMES)
def test_timestamp_round_trips_modulo_2_33(value: int) -> None:
    field = encode_timestamp(PTS_PREFIX, value)
    assert len(field) == 5
    assert decode_timestamp(field) == value % TIMESTAMP_MODULUS
    raw = int.from_bytes(field, "big")
    assert raw >> 36 == PTS_PREFIX and raw & 1 and raw >> 16 & 1 and raw >> 32 & 1  # prefix and markers


@given(st.integers(min_value=0, max_value=TIMESTAMP_MODULUS - 1))
def test_timestamp_bit_layout(value: int) -> None:
    # ISO/IEC 13818-1 Table 2-21: '0001', DTS[32..30], marker, DTS[29..15], marker, DTS[14..0], marker
    bits = f"0001{value >> 30:03b}1{(value >> 15) & 0x7FFF:015b}1{value & 0x7FFF:015b}1"
    assert encode_timestamp(DTS_PREFIX, value) == int(bits, 2).to_bytes(5, "big")


@given(TIMES)
def test_pcr_round_trips_modulo_2_33(value: int) -> None:
    field = encode_pcr(value)
    assert len(field) == 6
    assert decode_pcr_base(field) == value % TIMESTAMP_MODULUS
    assert int.from_bytes(field, "big") & 0x7FFF == 0x7E00  # reserved bits set, extension 0


def test_conversion_to_90_khz_is_exact_for_common_timescales() -> None:
    assert to_system_clock(512, 12800) == 3600  # one 25 fps frame
    assert to_system_clock(1024, 48000) == 1920  # one AAC frame at 48 kHz
    assert to_system_clock(1_763_700_000 * 48000, 48000) == 1_763_700_000 * 90000
    assert to_system_clock(1001, 30000) == 3003
