"""RFC 6381 codec strings and AudioSpecificConfig fields, on known vectors."""

from __future__ import annotations

import pytest

from services.shared.media.boxes import (
    AudioSampleEntry,
    CodecConfigurationBox,
    ElementaryStreamDescriptorBox,
    UnknownBox,
    VisualSampleEntry,
)
from services.shared.media.codecs import (
    avc_codec_string,
    describe,
    hevc_codec_string,
    parse_audio_specific_config,
    parse_esds,
)
from services.shared.media.errors import MalformedBox, UnsupportedCodec
from services.shared.media.synthetic import (
    ASC_AAC_LC_48K_STEREO,
    AVCC_HIGH_31,
    HVCC_MAIN_L93,
    audio_entry,
    esds_for,
    video_entry,
)


def bits(*fields: tuple[int, int]) -> bytes:
    """Pack (value, width) fields MSB first, zero-padded to whole bytes."""
    value, width = 0, 0
    for field, size in fields:
        value, width = value << size | field, width + size
    pad = -width % 8
    return (value << pad).to_bytes((width + pad) // 8, "big")


def hvcc(first: int, compatibility: int, constraints: bytes, level: int) -> bytes:
    return bytes([1, first]) + compatibility.to_bytes(4, "big") + constraints + bytes([level]) + bytes(10)


def test_avc_high_31() -> None:
    assert avc_codec_string("avc1", AVCC_HIGH_31) == "avc1.64001f"
    assert avc_codec_string("avc3", bytes.fromhex("0142e01e")) == "avc3.42e01e"


def test_avc_record_too_short() -> None:
    with pytest.raises(MalformedBox) as excinfo:
        avc_codec_string("avc1", b"\x01\x64")
    assert excinfo.value.box_type == "avcC"


@pytest.mark.parametrize(
    ("entry", "record", "codec"),
    [
        ("hvc1", HVCC_MAIN_L93, "hvc1.1.6.L93.B0"),
        ("hev1", hvcc(0x02, 0x20000000, bytes.fromhex("b00000000000"), 120), "hev1.2.4.L120.B0"),
        ("hvc1", hvcc(0x21, 0x60000000, bytes.fromhex("900000000000"), 153), "hvc1.1.6.H153.90"),
        ("hvc1", hvcc(0x41, 0x60000000, bytes(6), 93), "hvc1.A1.6.L93"),
        ("hvc1", hvcc(0x04, 0x08000000, bytes.fromhex("b00800000000"), 93), "hvc1.4.10.L93.B0.08"),
    ],
)
def test_hevc_annex_e(entry: str, record: bytes, codec: str) -> None:
    assert hevc_codec_string(entry, record) == codec


def test_hevc_record_too_short() -> None:
    with pytest.raises(MalformedBox) as excinfo:
        hevc_codec_string("hvc1", bytes(12))
    assert excinfo.value.box_type == "hvcC"


def test_aac_lc_48k_stereo() -> None:
    asc = parse_audio_specific_config(ASC_AAC_LC_48K_STEREO)
    assert (asc.audio_object_type, asc.sampling_frequency, asc.channels) == (2, 48000, 2)


@pytest.mark.parametrize(
    ("asc", "aot", "frequency", "channels", "extension"),
    [
        (bits((5, 5), (6, 4), (2, 4), (3, 4), (2, 5)), 5, 24000, 2, 48000),  # HE-AAC, explicit SBR
        (bits((29, 5), (6, 4), (1, 4), (3, 4), (2, 5)), 29, 24000, 2, 48000),  # HE-AACv2: mono core, PS
        (bits((31, 5), (10, 6), (3, 4), (2, 4)), 42, 48000, 2, None),  # escaped object type (USAC)
        (bits((2, 5), (15, 4), (44100, 24), (1, 4)), 2, 44100, 1, None),  # explicit frequency
        (bits((2, 5), (4, 4), (7, 4)), 2, 44100, 8, None),  # 7.1
        (bits((2, 5), (3, 4), (0, 4)), 2, 48000, None, None),  # channels from a PCE
    ],
)
def test_audio_specific_config(
    asc: bytes, aot: int, frequency: int, channels: int | None, extension: int | None
) -> None:
    config = parse_audio_specific_config(asc)
    assert config.audio_object_type == aot
    assert config.sampling_frequency == frequency
    assert config.channels == channels
    assert config.extension_sampling_frequency == extension


@pytest.mark.parametrize("asc", [b"", b"\x11", bits((2, 5), (13, 4), (2, 4)), bits((31, 5))])
def test_bad_audio_specific_config(asc: bytes) -> None:
    with pytest.raises(MalformedBox) as excinfo:
        parse_audio_specific_config(asc)
    assert excinfo.value.field == "AudioSpecificConfig"


def test_esds_decoder_config() -> None:
    config = parse_esds(esds_for(ASC_AAC_LC_48K_STEREO, avg_bitrate=96000))
    assert config.object_type_indication == 0x40
    assert config.stream_type == 5
    assert config.avg_bitrate == 96000
    assert config.decoder_specific_info == ASC_AAC_LC_48K_STEREO


def test_esds_with_four_byte_sizes_as_ffmpeg_writes_them() -> None:
    dsi = b"\x05\x80\x80\x80\x02" + ASC_AAC_LC_48K_STEREO
    dcd_body = bytes([0x40, 0x15]) + bytes(11) + dsi
    dcd = b"\x04\x80\x80\x80" + bytes([len(dcd_body)]) + dcd_body
    es_body = b"\x00\x02\x00" + dcd + b"\x06\x80\x80\x80\x01\x02"
    esds = b"\x03\x80\x80\x80" + bytes([len(es_body)]) + es_body
    assert parse_esds(esds).decoder_specific_info == ASC_AAC_LC_48K_STEREO


def test_esds_with_optional_es_fields() -> None:
    dcd_body = bytes([0x40, 0x15]) + bytes(11) + b"\x05\x02" + ASC_AAC_LC_48K_STEREO
    es_body = (
        b"\x00\x02\xe0" + b"\x00\x01" + b"\x03abc" + b"\x00\x02" + b"\x04" + bytes([len(dcd_body)]) + dcd_body
    )
    esds = b"\x03" + bytes([len(es_body)]) + es_body
    assert parse_esds(esds).decoder_specific_info == ASC_AAC_LC_48K_STEREO


@pytest.mark.parametrize(
    "esds",
    [
        b"",
        b"\x04\x00",
        b"\x03\x05\x00\x01\x00",
        b"\x03\x80\x80",
        b"\x03\x09\x00\x01\x00\x04\x03\x40\x15\x00\x00",
    ],
)
def test_bad_esds(esds: bytes) -> None:
    with pytest.raises(MalformedBox) as excinfo:
        parse_esds(esds)
    assert excinfo.value.box_type == "esds"


def test_describe_video_entries() -> None:
    avc = describe(video_entry())
    assert (avc.codec, avc.decoder_config, avc.audio) == ("avc1.64001f", AVCC_HIGH_31, None)
    assert describe(video_entry(sample_entry="avc3")).codec == "avc3.64001f"
    assert describe(video_entry(sample_entry="hev1")).codec == "hev1.1.6.L93.B0"


def test_describe_audio_entry() -> None:
    description = describe(audio_entry())
    assert description.codec == "mp4a.40.2"
    assert description.decoder_config == ASC_AAC_LC_48K_STEREO
    assert description.audio is not None and description.audio.channels == 2


def test_describe_mpeg2_aac() -> None:
    entry = AudioSampleEntry(
        children=(
            ElementaryStreamDescriptorBox(descriptors=esds_for(b"\x11\x90", object_type_indication=0x67)),
        )
    )
    assert describe(entry).codec == "mp4a.67"


def test_unsupported_entries() -> None:
    with pytest.raises(UnsupportedCodec) as excinfo:
        describe(UnknownBox(box_type="vp09", payload=bytes(78)))
    assert excinfo.value.fourcc == "vp09"
    mp3 = AudioSampleEntry(
        children=(ElementaryStreamDescriptorBox(descriptors=esds_for(b"", object_type_indication=0x6B)),)
    )
    with pytest.raises(UnsupportedCodec, match="0x6b"):
        describe(mp3)


def test_entries_missing_their_configuration() -> None:
    with pytest.raises(MalformedBox, match="avcC"):
        describe(VisualSampleEntry())
    with pytest.raises(MalformedBox, match="hvcC"):
        describe(VisualSampleEntry(box_type="hvc1", children=(CodecConfigurationBox(payload=AVCC_HIGH_31),)))
    with pytest.raises(MalformedBox, match="esds"):
        describe(AudioSampleEntry())
    with pytest.raises(MalformedBox, match="AudioSpecificConfig"):
        describe(AudioSampleEntry(children=(ElementaryStreamDescriptorBox(descriptors=esds_for(b"")),)))
