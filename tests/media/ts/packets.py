"""A small, independent reader of transport stream packet headers, for checking the muxer's output.

It reads only what the tests assert on (ISO/IEC 13818-1 2.4.3.2-2.4.3.5): PID, payload_unit_start,
adaptation field flags and PCR, continuity_counter; payloads are left to PyAV and FFmpeg.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

PACKET_SIZE = 188


@dataclass(frozen=True, slots=True, kw_only=True)
class Packet:
    pid: int
    payload_unit_start: bool
    has_payload: bool
    continuity_counter: int
    pcr_base: int | None
    random_access: bool
    discontinuity: bool
    payload: bytes


def packets(data: bytes) -> Iterator[Packet]:
    assert len(data) % PACKET_SIZE == 0, f"{len(data)} bytes is not a whole number of packets"
    for offset in range(0, len(data), PACKET_SIZE):
        yield parse(data[offset : offset + PACKET_SIZE])


def parse(raw: bytes) -> Packet:
    assert raw[0] == 0x47, "sync_byte"
    control = (raw[3] >> 4) & 0x3
    assert control != 0, "adaptation_field_control 00 is reserved"
    position, pcr, random_access, discontinuity = 4, None, False, False
    if control & 0x2:
        length = raw[4]
        assert length <= 182 if control == 0x3 else length == 183, f"adaptation_field_length {length}"
        if length:
            flags = raw[5]
            discontinuity, random_access = bool(flags & 0x80), bool(flags & 0x40)
            if flags & 0x10:
                pcr = int.from_bytes(raw[6:12], "big") >> 15
            assert all(b == 0xFF for b in raw[6 + (6 if flags & 0x10 else 0) : 5 + length]), "stuffing"
        position = 5 + length
    return Packet(
        pid=(raw[1] & 0x1F) << 8 | raw[2],
        payload_unit_start=bool(raw[1] & 0x40),
        has_payload=bool(control & 0x1),
        continuity_counter=raw[3] & 0x0F,
        pcr_base=pcr,
        random_access=random_access,
        discontinuity=discontinuity,
        payload=raw[position:] if control & 0x1 else b"",
    )


def continuity_errors(data: bytes, last: dict[int, int] | None = None) -> list[str]:
    """Every continuity_counter that does not follow its PID's previous one (``last`` carries state
    from an earlier segment and is updated)."""
    state = {} if last is None else last
    errors = []
    for index, packet in enumerate(packets(data)):
        previous = state.get(packet.pid)
        expected = previous if previous is None or not packet.has_payload else (previous + 1) % 16
        if previous is not None and packet.continuity_counter != expected:
            errors.append(
                f"packet {index} PID {packet.pid}: {packet.continuity_counter}, expected {expected}"
            )
        state[packet.pid] = packet.continuity_counter
    return errors
