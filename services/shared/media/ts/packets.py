"""Transport stream packets (ISO/IEC 13818-1 2.4.3.2): 4-byte headers, adaptation fields, payload layout,
and the assembly of many packets at once.

Every packet is a 4-byte header and 184 bytes of "body": an optional adaptation_field, then payload.
A run of packets is therefore described by its headers and by one byte stream of bodies whose length
is 184 times the number of packets. ``assemble`` interleaves the two without a Python loop per packet:
the bodies are cut with one cached ``struct`` format (C), headers are shared precomputed ``bytes``
(``PidHeaders``), and one ``bytes.join`` writes the packets. That keeps a 2 s 720p segment (~5000
packets) well under a millisecond.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.shared.media.ts.timestamps import TIMESTAMP_MODULUS

PACKET_SIZE = 188
HEADER_SIZE = 4
BODY_SIZE = PACKET_SIZE - HEADER_SIZE  # 184: adaptation_field + payload
SYNC_BYTE = 0x47
NULL_PID = 0x1FFF
MAX_PID = 0x1FFE
AFC_PAYLOAD = 0x10  # adaptation_field_control '01': payload only
AFC_ADAPTATION = 0x20  # '10': adaptation field only (continuity_counter does not advance)
AFC_BOTH = 0x30  # '11': adaptation field, then payload
RANDOM_ACCESS_FLAG = 0x40  # random_access_indicator
PCR_FLAG = 0x10
PCR_FIELD_SIZE = 6
_CYCLE_PACKETS = 16 * 512  # precomputed continuation headers per PID (longer runs repeat the cycle)
_SPLIT_BLOCKS = (1024, 256, 64, 16, 4, 1)  # body counts with a cached struct format each
_STUFFING = b"\xff" * BODY_SIZE
# adaptation_field_length, flags, then the PCR: program_clock_reference_base bits 32..1, then bit 0,
# 6 reserved bits and a zero program_clock_reference_extension
_FIELD_WITH_PCR = struct.Struct(">BBIH")
_PCR_LOW = 0x3F << 9

Buffer = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True, kw_only=True)
class PidHeaders:
    """The 4-byte packet headers of one PID for each continuity_counter, built once and shared."""

    pid: int
    payload: tuple[bytes, ...] = field(init=False, repr=False)  # '01', by continuity_counter
    adapted: tuple[bytes, ...] = field(init=False, repr=False)  # '11'
    start: tuple[bytes, ...] = field(init=False, repr=False)  # '01' + payload_unit_start_indicator
    start_adapted: tuple[bytes, ...] = field(init=False, repr=False)  # '11' + payload_unit_start_indicator
    adaptation_only: tuple[bytes, ...] = field(init=False, repr=False)  # '10'
    cycle: tuple[bytes, ...] = field(init=False, repr=False)  # ``payload`` repeated, for slicing runs

    def __post_init__(self) -> None:
        if not 0 <= self.pid <= MAX_PID:
            raise ValueError(f"PID {self.pid} is outside 0..{MAX_PID}")

        def headers(flags: int, control: int) -> tuple[bytes, ...]:
            return tuple(
                bytes((SYNC_BYTE, flags | self.pid >> 8, self.pid & 0xFF, control | cc)) for cc in range(16)
            )

        payload = headers(0, AFC_PAYLOAD)
        for name, value in (
            ("payload", payload),
            ("adapted", headers(0, AFC_BOTH)),
            ("start", headers(0x40, AFC_PAYLOAD)),
            ("start_adapted", headers(0x40, AFC_BOTH)),
            ("adaptation_only", headers(0, AFC_ADAPTATION)),
            ("cycle", payload * (_CYCLE_PACKETS // 16)),
        ):
            object.__setattr__(self, name, value)

    def run(self, first_cc: int, count: int) -> Sequence[bytes]:
        """Headers of ``count`` payload-only packets whose first continuity_counter is ``first_cc``."""
        start = first_cc & 0x0F
        if start + count <= len(self.cycle):
            return self.cycle[start : start + count]
        return (self.payload * (count // 16 + 2))[start : start + count]


@functools.cache
def stuffing_field(size: int) -> bytes:
    """An adaptation field of ``size`` bytes that only stuffs (size 1 is the lone length byte 0)."""
    if size < 1 or size > BODY_SIZE:
        raise ValueError(f"no adaptation field of {size} bytes")
    if size == 1:
        return b"\x00"
    return bytes((size - 1, 0)) + b"\xff" * (size - 2)


def adaptation_field(size: int, *, pcr_base: int | None = None, random_access: bool = False) -> bytes:
    """An adaptation field of exactly ``size`` bytes (adaptation_field_length included).

    ``pcr_base`` sets PCR_flag and the program_clock_reference (90 kHz base, extension 0);
    ``random_access`` sets random_access_indicator. The rest is 0xFF stuffing.
    """
    if pcr_base is None:
        if not random_access:
            return stuffing_field(size)
        if size < 2:
            raise ValueError(f"a random_access_indicator needs an adaptation field of 2 bytes, not {size}")
        return bytes((size - 1, RANDOM_ACCESS_FLAG)) + _STUFFING[: size - 2]
    if size < 2 + PCR_FIELD_SIZE:
        raise ValueError(f"a PCR needs an adaptation field of {2 + PCR_FIELD_SIZE} bytes, not {size}")
    base = pcr_base % TIMESTAMP_MODULUS
    flags = PCR_FLAG | (RANDOM_ACCESS_FLAG if random_access else 0)
    head = _FIELD_WITH_PCR.pack(size - 1, flags, base >> 1, (base & 1) << 15 | _PCR_LOW)
    return head + _STUFFING[: size - 2 - PCR_FIELD_SIZE]


def adaptation_field_minimum(*, pcr: bool, random_access: bool) -> int:
    """Bytes the first packet of a PES must give its adaptation field for these flags (0: none)."""
    if not pcr and not random_access:
        return 0
    return 2 + (PCR_FIELD_SIZE if pcr else 0)


def packets_needed(length: int, first_reserved: int) -> int:
    """Fewest packets for a ``length``-byte PES whose first packet reserves ``first_reserved`` bytes."""
    return max(1, -(-(length + first_reserved) // BODY_SIZE))


def payload_layout(
    length: int, packets: int, first_reserved: int, *, first_minimum: int = 1
) -> tuple[tuple[int, ...], int]:
    """How a ``length``-byte PES fills exactly ``packets`` packets: (head payload sizes, full tail count).

    The tail packets carry 184 payload bytes each, so they need no adaptation field; the head
    packets carry the rest, each at least one byte (a packet without payload would not advance the
    continuity_counter), the first at most ``184 - first_reserved`` and at least ``first_minimum``
    (the PES header, so that it never straddles two packets; unless the PES is too short to give
    every other packet a byte after it). With the fewest packets the head is one packet, or two when
    the header would not fit; more packets (to round a PID's count up) spread the head thinner.
    """
    if packets < packets_needed(length, first_reserved) or packets > length:
        raise ValueError(f"a {length}-byte PES cannot fill {packets} packets")
    first_minimum = min(first_minimum, length - (packets - 1))
    tail = min(packets - 1, (length - packets) // (BODY_SIZE - 1))
    capacity = BODY_SIZE - first_reserved
    while tail and min(capacity, length - BODY_SIZE * tail - (packets - tail - 1)) < first_minimum:
        tail -= 1
    heads = packets - tail
    remaining = length - BODY_SIZE * tail
    sizes = []
    for index in range(heads):
        size = min(capacity if index == 0 else BODY_SIZE, remaining - (heads - index - 1))
        sizes.append(size)
        remaining -= size
    return tuple(sizes), tail


@functools.cache
def _body_struct(count: int) -> struct.Struct:
    return struct.Struct(f"{BODY_SIZE}s" * count)


def split_bodies(data: bytes) -> list[bytes]:
    """``data`` (a multiple of 184 bytes) cut into 184-byte bodies, in C, a cached format per block size."""
    bodies: list[bytes] = []
    remaining, offset = divmod(len(data), BODY_SIZE)
    if offset:
        raise ValueError(f"{len(data)} body bytes are not a whole number of packets")
    for block in _SPLIT_BLOCKS:
        if remaining < block:
            continue
        layout = _body_struct(block)
        while remaining >= block:
            bodies += layout.unpack_from(data, offset)
            offset += layout.size
            remaining -= block
    return bodies


def assemble(headers: Sequence[bytes], bodies: Sequence[Buffer]) -> bytes:
    """Packets from their 4-byte ``headers`` and the concatenation of their 184-byte bodies."""
    data = b"".join(bodies)
    if len(data) != BODY_SIZE * len(headers):
        raise ValueError(f"{len(data)} body bytes for {len(headers)} packets")
    items: list[bytes] = [b""] * (2 * len(headers))
    items[0::2] = headers
    items[1::2] = split_bodies(data)
    return b"".join(items)
