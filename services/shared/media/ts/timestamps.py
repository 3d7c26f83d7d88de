"""The 90 kHz system clock of MPEG-2 TS: conversion from track ticks and the PTS/DTS/PCR field layouts.

Times stay unwrapped integers (they grow past 2**33 with epoch-anchored encoders) everywhere except in
the bytes written here: ``PTS``/``DTS`` and ``program_clock_reference_base`` are 33-bit fields, so they
are taken modulo 2**33 (ISO/IEC 13818-1 2.4.3.6, 2.4.3.5). Players unwrap them again.
"""

from __future__ import annotations

import struct

SYSTEM_CLOCK_HZ = 90_000  # PTS, DTS and program_clock_reference_base tick at 90 kHz
TIMESTAMP_MODULUS = 1 << 33  # PTS/DTS/PCR base are 33-bit fields
_TIMESTAMP_MASK = TIMESTAMP_MODULUS - 1
PTS_ONLY_PREFIX = 0b0010  # '0010' before a PTS when PTS_DTS_flags == '10'
PTS_PREFIX = 0b0011  # '0011' before the PTS when PTS_DTS_flags == '11'
DTS_PREFIX = 0b0001  # '0001' before the DTS
_PCR_RESERVED = 0x3F << 9  # the 6 reserved bits between program_clock_reference_base and _extension
_TIMESTAMP = struct.Struct(">BHH")  # prefix, bits 32..30, marker | bits 29..15, marker | bits 14..0, marker
_PCR = struct.Struct(">IH")  # base bits 32..1 | base bit 0, reserved, extension


def to_system_clock(ticks: int, timescale: int) -> int:
    """``ticks`` of a ``timescale`` clock in 90 kHz units, rounded down (exact when it divides)."""
    return ticks * SYSTEM_CLOCK_HZ // timescale


def timestamp_fields(prefix: int, value: int) -> tuple[int, int, int]:
    """A PTS/DTS field as (byte, 16-bit word, 16-bit word): 4-bit prefix, the value's 33 low bits in
    3/15/15-bit parts, each followed by a marker bit. ``encode_timestamp`` packs them."""
    v = value & _TIMESTAMP_MASK
    return prefix << 4 | (v >> 29) & 0x0E | 1, (v >> 14) & 0xFFFE | 1, (v << 1) & 0xFFFE | 1


def encode_timestamp(prefix: int, value: int) -> bytes:
    """The 5-byte PTS or DTS field."""
    return _TIMESTAMP.pack(*timestamp_fields(prefix, value))


def decode_timestamp(field: bytes) -> int:
    """The 33-bit value of a 5-byte PTS/DTS field (for tests and diagnostics)."""
    raw = int.from_bytes(field[:5], "big")
    return ((raw >> 33) & 0x7) << 30 | ((raw >> 17) & 0x7FFF) << 15 | (raw >> 1) & 0x7FFF


def encode_pcr(base: int) -> bytes:
    """6 bytes: program_clock_reference_base (33 bits, mod 2**33), 6 reserved bits, a zero extension.

    The extension (27 MHz remainder) is always 0: PCRs here are derived from 90 kHz decode times.
    """
    return _PCR.pack((base >> 1) & 0xFFFFFFFF, (base & 1) << 15 | _PCR_RESERVED)


def decode_pcr_base(field: bytes) -> int:
    """program_clock_reference_base of a 6-byte PCR field."""
    return int.from_bytes(field[:6], "big") >> 15
