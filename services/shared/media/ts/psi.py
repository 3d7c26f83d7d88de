"""Program-specific information: the PAT and PMT sections and the TS packets that carry them.

One program per stream (ISO/IEC 13818-1 2.4.4): the program_association_section maps
``program_number`` to the PMT's PID; the TS_program_map_section lists each elementary stream's
``stream_type`` and ``elementary_PID`` and names the PCR_PID. Both fit one packet; they never change
within a variant, so ``PsiPackets`` builds them once and only the continuity_counter varies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from services.shared.media.ts.packets import BODY_SIZE, HEADER_SIZE, PACKET_SIZE, SYNC_BYTE

PAT_PID = 0x0000
TABLE_ID_PAT = 0x00  # program_association_section
TABLE_ID_PMT = 0x02  # TS_program_map_section
_CRC_POLYNOMIAL = 0x04C11DB7  # CRC-32/MPEG-2 (Annex A): no reflection, initial value all ones, no final xor


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ _CRC_POLYNOMIAL if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc32_mpeg2(data: bytes) -> int:
    """CRC_32 of a section (a section including its CRC_32 checks to 0)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[(crc >> 24) ^ byte]
    return crc


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamEntry:
    """One elementary stream of the PMT's loop."""

    stream_type: int  # stream_type (Table 2-34): 0x1B H.264, 0x24 HEVC, 0x0F AAC in ADTS
    elementary_pid: int  # elementary_PID


def _section(table_id: int, table_id_extension: int, body: bytes) -> bytes:
    """A long-form section: header, version 0, current_next_indicator 1, one section, CRC_32."""
    section_length = 5 + len(body) + 4  # after section_length: 5 header bytes, the body, CRC_32
    head = bytes(
        (
            table_id,
            0xB0 | section_length >> 8,  # section_syntax_indicator 1, '0', reserved '11'
            section_length & 0xFF,
            table_id_extension >> 8,
            table_id_extension & 0xFF,
            0xC1,  # reserved '11', version_number 0, current_next_indicator 1
            0x00,  # section_number
            0x00,  # last_section_number
        )
    )
    section = head + body
    return section + crc32_mpeg2(section).to_bytes(4, "big")


def pat_section(*, transport_stream_id: int, program_number: int, pmt_pid: int) -> bytes:
    """program_association_section with one program."""
    body = program_number.to_bytes(2, "big") + (0xE000 | pmt_pid).to_bytes(2, "big")
    return _section(TABLE_ID_PAT, transport_stream_id, body)


def pmt_section(*, program_number: int, pcr_pid: int, streams: Sequence[StreamEntry]) -> bytes:
    """TS_program_map_section: PCR_PID, no program descriptors, one entry per stream, no ES descriptors."""
    body = (0xE000 | pcr_pid).to_bytes(2, "big") + b"\xf0\x00"  # reserved bits, program_info_length 0
    for stream in streams:
        body += bytes((stream.stream_type,)) + (0xE000 | stream.elementary_pid).to_bytes(2, "big")
        body += b"\xf0\x00"  # reserved '1111', ES_info_length 0
    return _section(TABLE_ID_PMT, program_number, body)


def section_packet(pid: int, section: bytes, continuity_counter: int) -> bytes:
    """One TS packet carrying a whole section: payload_unit_start_indicator, pointer_field 0, 0xFF fill."""
    header = bytes((SYNC_BYTE, 0x40 | pid >> 8, pid & 0xFF, 0x10 | continuity_counter & 0x0F))
    payload = b"\x00" + section
    if len(header) + len(payload) > PACKET_SIZE:
        raise ValueError(f"a {len(section)}-byte section does not fit one packet")
    return header + payload + b"\xff" * (PACKET_SIZE - len(header) - len(payload))


@dataclass(frozen=True, slots=True, kw_only=True)
class PsiPackets:
    """PAT + PMT packets for one program, per continuity_counter value, built once: ``headers[cc]`` are
    the two 4-byte packet headers and ``bodies[cc]`` their 2 * 184 body bytes (see ``packets``)."""

    transport_stream_id: int
    program_number: int
    pmt_pid: int
    pcr_pid: int
    streams: tuple[StreamEntry, ...]
    headers: tuple[tuple[bytes, bytes], ...] = field(init=False, repr=False, compare=False)
    bodies: tuple[bytes, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pat = pat_section(
            transport_stream_id=self.transport_stream_id,
            program_number=self.program_number,
            pmt_pid=self.pmt_pid,
        )
        pmt = pmt_section(program_number=self.program_number, pcr_pid=self.pcr_pid, streams=self.streams)
        pairs = [
            (section_packet(PAT_PID, pat, cc), section_packet(self.pmt_pid, pmt, cc)) for cc in range(16)
        ]
        object.__setattr__(self, "headers", tuple((p[:HEADER_SIZE], m[:HEADER_SIZE]) for p, m in pairs))
        object.__setattr__(self, "bodies", tuple(p[HEADER_SIZE:] + m[HEADER_SIZE:] for p, m in pairs))

    def pair(self, continuity_counter: int) -> bytes:
        """PAT then PMT as two whole packets, both with ``continuity_counter`` (mod 16)."""
        cc = continuity_counter & 0x0F
        pat_header, pmt_header = self.headers[cc]
        body = self.bodies[cc]
        return pat_header + body[:BODY_SIZE] + pmt_header + body[BODY_SIZE:]
