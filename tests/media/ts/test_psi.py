"""PAT and PMT: CRC-32/MPEG-2, section layout, one packet each."""

from __future__ import annotations

from services.shared.media.ts.psi import PsiPackets, StreamEntry, crc32_mpeg2, pat_section, pmt_section

from .packets import packets


def test_crc32_mpeg2_check_value() -> None:
    assert crc32_mpeg2(b"123456789") == 0x0376E6E7  # the catalogued check value of CRC-32/MPEG-2


def test_sections_check_to_zero() -> None:
    pat = pat_section(transport_stream_id=1, program_number=1, pmt_pid=0x1000)
    pmt = pmt_section(
        program_number=1,
        pcr_pid=0x100,
        streams=(
            StreamEntry(stream_type=0x1B, elementary_pid=0x100),
            StreamEntry(stream_type=0x0F, elementary_pid=0x101),
        ),
    )
    assert crc32_mpeg2(pat) == 0 and crc32_mpeg2(pmt) == 0
    assert pat[0] == 0x00 and (pat[1] & 0x0F) << 8 | pat[2] == len(pat) - 3
    assert pat[8:12] == bytes.fromhex("0001f000")  # program 1 -> PID 0x1000
    assert pmt[0] == 0x02 and pmt[8:10] == bytes.fromhex("e100")  # PCR_PID 0x100
    assert pmt[12:17] == bytes.fromhex("1be100f000") and pmt[17:22] == bytes.fromhex("0fe101f000")


def test_psi_packets_per_continuity_counter() -> None:
    psi = PsiPackets(
        transport_stream_id=1,
        program_number=1,
        pmt_pid=0x1000,
        pcr_pid=0x100,
        streams=(StreamEntry(stream_type=0x1B, elementary_pid=0x100),),
    )
    for cc in range(16):
        pat, pmt = packets(psi.pair(cc))
        assert (pat.pid, pmt.pid) == (0, 0x1000)
        assert pat.payload_unit_start and pmt.payload_unit_start
        assert pat.continuity_counter == pmt.continuity_counter == cc
        assert pat.payload[0] == 0  # pointer_field
