"""AAC for MPEG-TS: each raw AAC frame gets the 7-byte ADTS header (ISO/IEC 13818-7 6.2, 14496-3 1.A.2)
its AudioSpecificConfig implies: profile (audioObjectType - 1), sampling_frequency_index,
channel_configuration, no CRC (protection_absent 1), one raw_data_block per frame.

Explicit HE-AAC (audioObjectType 5 or 29) is sent as its AAC-LC core at the core sampling rate, as
ADTS requires; the decoder finds the SBR/PS data in the frames (implicit signalling).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.shared.media.codecs import AOT_PS, AOT_SBR, SAMPLING_FREQUENCIES, parse_audio_specific_config
from services.shared.media.errors import UnsupportedCodec

ADTS_HEADER_SIZE = 7
MAX_FRAME_LENGTH = (1 << 13) - 1  # frame_length is 13 bits, header included
_SYNC_AND_FLAGS = 0xFFF1  # syncword, ID 0 (MPEG-4), layer 00, protection_absent 1
_BUFFER_FULLNESS_VBR = 0x7FF
_AOT_AAC_LC = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class Adts:
    """The ADTS header fields of one track; ``header(size)`` is all that varies per frame."""

    profile: int  # profile_ObjectType: audioObjectType - 1 (0 Main, 1 LC, 2 SSR, 3 LTP)
    sampling_frequency_index: int
    channel_configuration: int
    _base: int = field(init=False, repr=False, compare=False)
    _headers: dict[int, bytes] = field(init=False, repr=False, compare=False)  # by frame size

    def __post_init__(self) -> None:
        base = (
            _SYNC_AND_FLAGS << 40
            | self.profile << 38
            | self.sampling_frequency_index << 34
            | self.channel_configuration << 30
            | _BUFFER_FULLNESS_VBR << 2
        )
        object.__setattr__(self, "_base", base)
        object.__setattr__(self, "_headers", {})

    def header(self, frame_size: int) -> bytes:
        """The ADTS header for a raw frame of ``frame_size`` bytes (kept: frame sizes repeat)."""
        header = self._headers.get(frame_size)
        if header is None:
            header = self._headers[frame_size] = self._build(frame_size)
        return header

    def _build(self, frame_size: int) -> bytes:
        length = frame_size + ADTS_HEADER_SIZE
        if length > MAX_FRAME_LENGTH:
            raise UnsupportedCodec("mp4a", f"a {frame_size}-byte AAC frame does not fit an ADTS frame")
        return (self._base | length << 13).to_bytes(ADTS_HEADER_SIZE, "big")


def adts_for(audio_specific_config: bytes) -> Adts:
    """The ADTS fields for a track's AudioSpecificConfig; UnsupportedCodec if ADTS cannot carry it."""
    asc = parse_audio_specific_config(audio_specific_config)
    aot = _AOT_AAC_LC if asc.audio_object_type in (AOT_SBR, AOT_PS) else asc.audio_object_type
    if not 1 <= aot <= 4:
        raise UnsupportedCodec("mp4a", f"audioObjectType {asc.audio_object_type} cannot be carried in ADTS")
    if asc.sampling_frequency not in SAMPLING_FREQUENCIES:
        raise UnsupportedCodec("mp4a", f"ADTS has no index for {asc.sampling_frequency} Hz")
    if not 1 <= asc.channel_configuration <= 7:
        raise UnsupportedCodec(
            "mp4a", f"channelConfiguration {asc.channel_configuration} needs a PCE, which ADTS would lose"
        )
    return Adts(
        profile=aot - 1,
        sampling_frequency_index=SAMPLING_FREQUENCIES.index(asc.sampling_frequency),
        channel_configuration=asc.channel_configuration,
    )
