"""PES packet headers (ISO/IEC 13818-1 2.4.3.6, 2.4.3.7).

Every PES starts with one access unit (an AUD-led Annex B picture, or ADTS frames), so
data_alignment_indicator is set. A DTS is written only when it differs from the PTS. Video PES leave
PES_packet_length at 0 (unbounded, allowed for video elementary streams only) as FFmpeg does; every
other stream states its length and must fit 65 535 bytes.
"""

from __future__ import annotations

import struct

from services.shared.media.ts.timestamps import TIMESTAMP_MODULUS

STREAM_ID_AUDIO = 0xC0  # ISO/IEC 13818-3 or 11172-3 or 13818-7 or 14496-3 audio stream number 0
STREAM_ID_VIDEO = 0xE0  # ITU-T H.262 / 13818-2 / 11172-2 / 14496-2 / H.264 / H.265 video stream number 0
MAX_PES_PACKET_LENGTH = 0xFFFF
_START_CODE_PREFIX = 0x000001
_FLAGS_1 = (
    0x84  # '10', PES_scrambling_control 00, priority 0, data_alignment_indicator 1, copyright 0, original 0
)
_PTS_ONLY = 0x80  # PTS_DTS_flags '10', no other optional fields
_PTS_DTS = 0xC0  # PTS_DTS_flags '11'
# packet_start_code_prefix + stream_id, PES_packet_length, flags, flags, PES_header_data_length, then
# each 5-byte timestamp as (4-bit prefix, bits 32..30, marker), (bits 29..15, marker), (bits 14..0, marker)
# (the layout of ``timestamps.timestamp_fields``, written out here: this runs once per PES)
_HEADER_PTS = struct.Struct(">IHBBB" + "BHH")
_HEADER_PTS_DTS = struct.Struct(">IHBBB" + "BHH" * 2)
_MASK = TIMESTAMP_MODULUS - 1


def is_video_stream_id(stream_id: int) -> bool:
    return stream_id & 0xF0 == STREAM_ID_VIDEO


def pes_header(stream_id: int, *, pts: int, dts: int, payload_length: int) -> bytes:
    """The PES header for ``payload_length`` bytes of data with these 90 kHz (unwrapped) times."""
    p = pts & _MASK
    if dts == pts:
        length = 0 if is_video_stream_id(stream_id) else 8 + payload_length
        if length > MAX_PES_PACKET_LENGTH:
            raise ValueError(
                f"a {payload_length}-byte PES payload is too long for stream_id 0x{stream_id:02x}"
            )
        return _HEADER_PTS.pack(
            _START_CODE_PREFIX << 8 | stream_id, length, _FLAGS_1, _PTS_ONLY, 5,
            0x21 | (p >> 29) & 0x0E, (p >> 14) & 0xFFFE | 1, (p << 1) & 0xFFFE | 1,  # '0010' PTS
        )  # fmt: skip
    length = 0 if is_video_stream_id(stream_id) else 13 + payload_length
    if length > MAX_PES_PACKET_LENGTH:
        raise ValueError(f"a {payload_length}-byte PES payload is too long for stream_id 0x{stream_id:02x}")
    d = dts & _MASK
    return _HEADER_PTS_DTS.pack(
        _START_CODE_PREFIX << 8 | stream_id, length, _FLAGS_1, _PTS_DTS, 10,
        0x31 | (p >> 29) & 0x0E, (p >> 14) & 0xFFFE | 1, (p << 1) & 0xFFFE | 1,  # '0011' PTS
        0x11 | (d >> 29) & 0x0E, (d >> 14) & 0xFFFE | 1, (d << 1) & 0xFFFE | 1,  # '0001' DTS
    )  # fmt: skip


MAX_HEADER_STUFFING = 32  # stuffing bytes a PES header may carry (ISO/IEC 13818-1 2.4.3.7)


def stuff_header(pes: bytes, count: int) -> bytes:
    """``pes`` with ``count`` stuffing bytes (0xFF) at the end of its header: a longer PES, same data.

    Lets a PES of a few bytes still give each of the packets it must fill at least one byte.
    """
    header_data_length = pes[8]
    optional = 10 if pes[7] & _PTS_DTS == _PTS_DTS else 5  # PTS and DTS, or PTS only
    if count < 0 or header_data_length - optional + count > MAX_HEADER_STUFFING:
        raise ValueError(f"a PES header cannot take {count} more stuffing bytes")
    length = int.from_bytes(pes[4:6], "big")
    if length:  # 0 stays 0 (unbounded video PES)
        length += count
        if length > MAX_PES_PACKET_LENGTH:
            raise ValueError("stuffing would overflow PES_packet_length")
    end = 9 + header_data_length
    head = pes[:4] + length.to_bytes(2, "big") + pes[6:8] + bytes((header_data_length + count,))
    return head + pes[9:end] + b"\xff" * count + pes[end:]
