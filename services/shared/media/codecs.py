"""RFC 6381 ``codecs`` strings and decoder configurations from sample entries.

- avc1/avc3: ``avc1.PPCCLL`` from avcC profile, constraint flags and level (ISO/IEC 14496-15 5.3.3).
- hvc1/hev1: ``hvc1.1.6.L93.B0`` per ISO/IEC 14496-15 Annex E from the hvcC profile_tier_level fields.
- mp4a: ``mp4a.40.<audioObjectType>`` from the esds DecoderConfigDescriptor (objectTypeIndication) and
  its AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1), whose channels and sample rate are read too.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.shared.media.box import Box
from services.shared.media.errors import MalformedBox, UnsupportedCodec
from services.shared.media.sample_entries import (
    AudioSampleEntry,
    CodecConfigurationBox,
    ElementaryStreamDescriptorBox,
    VisualSampleEntry,
)

OTI_MPEG4_AUDIO = 0x40  # objectTypeIndication: ISO/IEC 14496-3 (AAC and friends)
OTI_MPEG2_AAC = (0x66, 0x67, 0x68)  # MPEG-2 AAC Main, LC, SSR: carry an AudioSpecificConfig too
AOT_SBR = 5  # HE-AAC
AOT_PS = 29  # HE-AAC v2
AOT_ESCAPE = 31

SAMPLING_FREQUENCIES = (
    96000,
    88200,
    64000,
    48000,
    44100,
    32000,
    24000,
    22050,
    16000,
    12000,
    11025,
    8000,
    7350,
)
# channelConfiguration -> channels (ISO/IEC 14496-3 Table 1.19, ISO/IEC 23001-8); 0 means "see PCE"
CHANNEL_CONFIGURATIONS = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 8, 11: 7, 12: 8, 13: 24, 14: 8}

TAG_ES_DESCRIPTOR = 0x03
TAG_DECODER_CONFIG = 0x04
TAG_DECODER_SPECIFIC_INFO = 0x05


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioSpecificConfig:
    """The fields of an AudioSpecificConfig the origin needs."""

    audio_object_type: int  # audioObjectType (first one: 5 or 29 for explicit HE-AAC signalling)
    sampling_frequency: int  # samplingFrequency (core)
    channel_configuration: int  # channelConfiguration
    channels: int | None  # output channels; None when given by a program_config_element
    extension_sampling_frequency: int | None = None  # SBR output rate when signalled explicitly


@dataclass(frozen=True, slots=True, kw_only=True)
class DecoderConfigDescriptor:
    """The DecoderConfigDescriptor of an esds (ISO/IEC 14496-1 7.2.6.6)."""

    object_type_indication: int  # objectTypeIndication
    stream_type: int  # streamType
    buffer_size_db: int  # bufferSizeDB
    max_bitrate: int  # maxBitrate
    avg_bitrate: int  # avgBitrate
    decoder_specific_info: bytes  # DecoderSpecificInfo payload (the AudioSpecificConfig for AAC)


@dataclass(frozen=True, slots=True, kw_only=True)
class CodecDescription:
    """What a sample entry says about its codec."""

    codec: str  # RFC 6381 codecs parameter
    decoder_config: bytes  # avcC / hvcC payload, or the AudioSpecificConfig
    audio: AudioSpecificConfig | None = None


def describe(entry: Box) -> CodecDescription:
    """The codec of a sample entry; UnsupportedCodec for entries other than avc1/avc3/hvc1/hev1/mp4a."""
    if isinstance(entry, VisualSampleEntry):
        return _describe_visual(entry)
    if isinstance(entry, AudioSampleEntry):
        return _describe_audio(entry)
    raise UnsupportedCodec(entry.box_type)


def _describe_visual(entry: VisualSampleEntry) -> CodecDescription:
    config_type = "avcC" if entry.box_type.startswith("avc") else "hvcC"
    config = entry.first(CodecConfigurationBox, config_type)
    if config is None:
        raise MalformedBox(entry.box_type, config_type, f"sample entry has no {config_type} box")
    if config_type == "avcC":
        codec = avc_codec_string(entry.box_type, config.payload)
    else:
        codec = hevc_codec_string(entry.box_type, config.payload)
    return CodecDescription(codec=codec, decoder_config=config.payload)


def _describe_audio(entry: AudioSampleEntry) -> CodecDescription:
    esds = entry.first(ElementaryStreamDescriptorBox)
    if esds is None:
        raise MalformedBox(entry.box_type, "esds", "sample entry has no esds box")
    decoder = parse_esds(esds.descriptors)
    oti = decoder.object_type_indication
    if oti != OTI_MPEG4_AUDIO and oti not in OTI_MPEG2_AAC:
        raise UnsupportedCodec(entry.box_type, f"objectTypeIndication 0x{oti:02x} is not AAC")
    if not decoder.decoder_specific_info:
        raise MalformedBox("esds", "DecoderSpecificInfo", "AAC without an AudioSpecificConfig")
    asc = parse_audio_specific_config(decoder.decoder_specific_info)
    codec = f"mp4a.40.{asc.audio_object_type}" if oti == OTI_MPEG4_AUDIO else f"mp4a.{oti:02x}"
    return CodecDescription(codec=codec, decoder_config=decoder.decoder_specific_info, audio=asc)


def avc_codec_string(sample_entry: str, avcc: bytes) -> str:
    """``avc1.PPCCLL``: AVCProfileIndication, profile_compatibility, AVCLevelIndication in hex."""
    if len(avcc) < 4:
        raise MalformedBox("avcC", "AVCLevelIndication", f"record of {len(avcc)} bytes is too short")
    return f"{sample_entry}.{avcc[1]:02x}{avcc[2]:02x}{avcc[3]:02x}"


def hevc_codec_string(sample_entry: str, hvcc: bytes) -> str:
    """``hvc1.<space><profile>.<compat>.<tier><level>[.<constraint bytes>]`` (ISO/IEC 14496-15 E.3)."""
    if len(hvcc) < 13:
        raise MalformedBox("hvcC", "general_level_idc", f"record of {len(hvcc)} bytes is too short")
    profile_space = hvcc[1] >> 6
    tier = "H" if hvcc[1] & 0x20 else "L"
    profile_idc = hvcc[1] & 0x1F
    compatibility = int.from_bytes(hvcc[2:6], "big")
    reversed_compatibility = int(f"{compatibility:032b}"[::-1], 2)
    constraints = hvcc[6:12].rstrip(b"\0")
    parts = [
        sample_entry,
        ("", "A", "B", "C")[profile_space] + str(profile_idc),
        f"{reversed_compatibility:X}",
        f"{tier}{hvcc[12]}",
        *(f"{byte:02X}" for byte in constraints),
    ]
    return ".".join(parts)


def parse_esds(descriptors: bytes) -> DecoderConfigDescriptor:
    """The DecoderConfigDescriptor inside the ES_Descriptor of an esds payload."""
    tag, start, end = _descriptor(descriptors, 0, len(descriptors))
    if tag != TAG_ES_DESCRIPTOR:
        raise MalformedBox("esds", "ES_Descriptor", f"starts with descriptor tag {tag}, not 3")
    pos = _skip_es_descriptor_fields(descriptors, start, end)
    while pos < end:
        tag, sub_start, sub_end = _descriptor(descriptors, pos, end)
        if tag == TAG_DECODER_CONFIG:
            return _decoder_config(descriptors, sub_start, sub_end)
        pos = sub_end
    raise MalformedBox("esds", "DecoderConfigDescriptor", "ES_Descriptor has no DecoderConfigDescriptor")


def _descriptor(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, payload start, payload end) of the descriptor at ``pos``; sizes use 7-bit continuation."""
    if pos >= end:
        raise MalformedBox("esds", "descriptor", "descriptor cut before its tag")
    tag, pos, size = data[pos], pos + 1, 0
    for _ in range(4):
        if pos >= end:
            raise MalformedBox("esds", "descriptor", f"descriptor {tag} cut inside its size")
        byte, pos = data[pos], pos + 1
        size = size << 7 | (byte & 0x7F)
        if not byte & 0x80:
            break
    if pos + size > end:
        raise MalformedBox("esds", "descriptor", f"descriptor {tag} of {size} bytes overruns its parent")
    return tag, pos, pos + size


def _skip_es_descriptor_fields(data: bytes, pos: int, end: int) -> int:
    """Skip ES_ID, the flags byte and the optional fields they announce."""
    if end - pos < 3:
        raise MalformedBox("esds", "ES_Descriptor", "too short for ES_ID and flags")
    flags = data[pos + 2]
    pos += 3
    if flags & 0x80:  # streamDependenceFlag: dependsOn_ES_ID
        pos += 2
    if flags & 0x40:  # URL_Flag: URLlength + URLstring
        pos += 1 + (data[pos] if pos < end else 0)
    if flags & 0x20:  # OCRstreamFlag: OCR_ES_Id
        pos += 2
    if pos > end:
        raise MalformedBox("esds", "ES_Descriptor", "optional fields overrun the descriptor")
    return pos


def _decoder_config(data: bytes, pos: int, end: int) -> DecoderConfigDescriptor:
    if end - pos < 13:
        raise MalformedBox("esds", "DecoderConfigDescriptor", f"{end - pos} bytes is too short")
    specific_info = b""
    sub = pos + 13
    while sub < end:
        tag, sub_start, sub_end = _descriptor(data, sub, end)
        if tag == TAG_DECODER_SPECIFIC_INFO:
            specific_info = data[sub_start:sub_end]
            break
        sub = sub_end
    return DecoderConfigDescriptor(
        object_type_indication=data[pos],
        stream_type=data[pos + 1] >> 2,
        buffer_size_db=int.from_bytes(data[pos + 2 : pos + 5], "big"),
        max_bitrate=int.from_bytes(data[pos + 5 : pos + 9], "big"),
        avg_bitrate=int.from_bytes(data[pos + 9 : pos + 13], "big"),
        decoder_specific_info=specific_info,
    )


class _BitReader:
    """MSB-first bits of a short byte string (an AudioSpecificConfig is a few bytes)."""

    __slots__ = ("_bits", "_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = int.from_bytes(data, "big")
        self._bits = len(data) * 8
        self._pos = 0

    def read(self, count: int) -> int:
        if self._pos + count > self._bits:
            raise MalformedBox("esds", "AudioSpecificConfig", "AudioSpecificConfig is cut short")
        self._pos += count
        return (self._data >> (self._bits - self._pos)) & ((1 << count) - 1)


def _object_type(bits: _BitReader) -> int:
    aot = bits.read(5)
    return 32 + bits.read(6) if aot == AOT_ESCAPE else aot


def _frequency(bits: _BitReader) -> int:
    index = bits.read(4)
    if index == 0xF:
        return bits.read(24)
    if index >= len(SAMPLING_FREQUENCIES):
        raise MalformedBox("esds", "AudioSpecificConfig", f"reserved samplingFrequencyIndex {index}")
    return SAMPLING_FREQUENCIES[index]


def parse_audio_specific_config(data: bytes) -> AudioSpecificConfig:
    """audioObjectType (with the 5-bit escape), sampling frequency, channel configuration, SBR rate."""
    bits = _BitReader(data)
    aot = _object_type(bits)
    frequency = _frequency(bits)
    channel_configuration = bits.read(4)
    channels = CHANNEL_CONFIGURATIONS.get(channel_configuration)
    extension_frequency = None
    if aot in (AOT_SBR, AOT_PS):
        extension_frequency = _frequency(bits)
        if aot == AOT_PS and channel_configuration == 1:
            channels = 2  # parametric stereo: a mono core decoded to stereo
    return AudioSpecificConfig(
        audio_object_type=aot,
        sampling_frequency=frequency,
        channel_configuration=channel_configuration,
        channels=channels,
        extension_sampling_frequency=extension_frequency,
    )
