"""stsd and the sample entries CMAF ingest accepts, with their configuration boxes.

Visual entries (ISO/IEC 14496-12 12.1.3): avc1/avc3 (avcC) and hvc1/hev1 (hvcC) from ISO/IEC 14496-15.
Audio entries (12.2.3): mp4a with esds (ISO/IEC 14496-14). btrt (8.5.2.2) and pasp (12.1.4) are optional
children. Any other entry type parses as an opaque box; ``header`` turns it into UnsupportedCodec.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.shared.media.box import CHILD_FIELDS, Box, ContainerBox, register
from services.shared.media.fields import I16, REST, U16, U32, Field, Raw, full_box

VISUAL_SAMPLE_ENTRIES = ("avc1", "avc3", "hvc1", "hev1")
AUDIO_SAMPLE_ENTRIES = ("mp4a",)
COMPRESSORNAME_SIZE = 32


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class SampleDescriptionBox(Box):
    """stsd (8.5.2): an entry count and the sample entries."""

    BOX_TYPES = ("stsd",)
    FIELDS = (
        *full_box(),
        Field("entry_count", U32, derive=lambda values: len(values["children"])),
        *CHILD_FIELDS,
    )

    box_type: str = "stsd"
    version: int = 0
    flags: int = 0
    children: tuple[Box, ...] = ()
    padding: bytes = b""


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class VisualSampleEntry(ContainerBox):
    """avc1 / avc3 / hvc1 / hev1: a VisualSampleEntry followed by its boxes (avcC/hvcC, btrt, pasp)."""

    BOX_TYPES = VISUAL_SAMPLE_ENTRIES
    FIELDS = (
        Field("reserved", Raw(6)),
        Field("data_reference_index", U16),
        Field("pre_defined", Raw(16)),  # pre_defined, reserved, pre_defined[3]
        Field("width", U16),
        Field("height", U16),
        Field("horizresolution", U32),
        Field("vertresolution", U32),
        Field("reserved_2", U32),
        Field("frame_count", U16),
        Field("compressorname", Raw(COMPRESSORNAME_SIZE)),
        Field("depth", U16),
        Field("pre_defined_2", I16),
        *CHILD_FIELDS,
    )

    box_type: str = "avc1"
    reserved: bytes = bytes(6)
    data_reference_index: int = 1
    pre_defined: bytes = bytes(16)
    width: int = 0
    height: int = 0
    horizresolution: int = 0x00480000  # 72 dpi
    vertresolution: int = 0x00480000
    reserved_2: int = 0
    frame_count: int = 1
    compressorname: bytes = bytes(COMPRESSORNAME_SIZE)
    depth: int = 0x0018
    pre_defined_2: int = -1


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class AudioSampleEntry(ContainerBox):
    """mp4a: an AudioSampleEntry followed by its boxes (esds, btrt).

    ``entry_version`` 1 is the QuickTime sound description v1, whose 16 extra bytes are kept raw.
    """

    BOX_TYPES = AUDIO_SAMPLE_ENTRIES
    FIELDS = (
        Field("reserved", Raw(6)),
        Field("data_reference_index", U16),
        Field("entry_version", U16),
        Field("reserved_2", Raw(6)),
        Field("channelcount", U16),
        Field("samplesize", U16),
        Field("pre_defined", U16),
        Field("reserved_3", U16),
        Field("samplerate", U32),  # 16.16 fixed point
        Field("quicktime_v1", Raw(16), when=lambda values: values["entry_version"] == 1),
        *CHILD_FIELDS,
    )

    box_type: str = "mp4a"
    reserved: bytes = bytes(6)
    data_reference_index: int = 1
    entry_version: int = 0
    reserved_2: bytes = bytes(6)
    channelcount: int = 2
    samplesize: int = 16
    pre_defined: int = 0
    reserved_3: int = 0
    samplerate: int = 48000 << 16
    quicktime_v1: bytes | None = None


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class CodecConfigurationBox(Box):
    """avcC (AVCDecoderConfigurationRecord) / hvcC (HEVCDecoderConfigurationRecord), kept raw.

    ``codecs`` reads the profile and level from ``payload``; the payload is also the decoder_config
    a player or TS remuxer needs.
    """

    BOX_TYPES = ("avcC", "hvcC")
    FIELDS = (Field("payload", REST),)

    box_type: str = "avcC"
    payload: bytes = b""


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class ElementaryStreamDescriptorBox(Box):
    """esds (ISO/IEC 14496-14 6.7.2): an ES_Descriptor, kept raw; ``codecs`` parses it."""

    BOX_TYPES = ("esds",)
    FIELDS = (*full_box(), Field("descriptors", REST))

    box_type: str = "esds"
    version: int = 0
    flags: int = 0
    descriptors: bytes = b""


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class BitRateBox(Box):
    """btrt (8.5.2.2)."""

    BOX_TYPES = ("btrt",)
    FIELDS = (Field("buffer_size_db", U32), Field("max_bitrate", U32), Field("avg_bitrate", U32))

    box_type: str = "btrt"
    buffer_size_db: int = 0  # bufferSizeDB
    max_bitrate: int = 0  # maxBitrate
    avg_bitrate: int = 0  # avgBitrate


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class PixelAspectRatioBox(Box):
    """pasp (12.1.4)."""

    BOX_TYPES = ("pasp",)
    FIELDS = (Field("h_spacing", U32), Field("v_spacing", U32))

    box_type: str = "pasp"
    h_spacing: int = 1  # hSpacing
    v_spacing: int = 1  # vSpacing
