"""Valid CMAF headers and fragments made in code with the media writer: for tests, benchmarks and
``headwater selftest`` (a synthetic live stream pushed through a deployed origin).

    header = make_header(track_id=1, handler="vide", timescale=90000)
    fragment = make_fragment(track_id=1, sequence_number=1, decode_time=0, sample_durations=[3000] * 50)
    events = CmafReader().feed(header + fragment)

Headers carry one track unless ``make_header_of`` is given several ``make_trak`` results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from services.shared.media.boxes import (
    AudioSampleEntry,
    BitRateBox,
    Box,
    CodecConfigurationBox,
    DataEntryUrlBox,
    DataInformationBox,
    DataReferenceBox,
    ElementaryStreamDescriptorBox,
    EventMessageBox,
    HandlerBox,
    KindBox,
    MediaBox,
    MediaDataBox,
    MediaHeaderBox,
    MediaInformationBox,
    MovieBox,
    MovieExtendsBox,
    MovieFragmentBox,
    MovieFragmentHeaderBox,
    MovieHeaderBox,
    PixelAspectRatioBox,
    ProducerReferenceTimeBox,
    SampleDescriptionBox,
    SampleSizeBox,
    SampleTableBox,
    SampleTableEntriesBox,
    SoundMediaHeaderBox,
    TrackBox,
    TrackExtendsBox,
    TrackFragmentBox,
    TrackFragmentDecodeTimeBox,
    TrackFragmentHeaderBox,
    TrackHeaderBox,
    TrackRunBox,
    UserDataBox,
    VideoMediaHeaderBox,
    VisualSampleEntry,
    serialize,
)
from services.shared.media.fragment_boxes import KEYFRAME_FLAGS, NON_KEYFRAME_FLAGS, ntp_from_unix_ms
from services.shared.media.movie_boxes import pack_language
from services.shared.media.writer import build_ftyp, build_styp

# AVCDecoderConfigurationRecord, High profile (100) level 3.1 (0x1f): codec avc1.64001f
AVCC_HIGH_31 = bytes.fromhex(
    "0164001fffe1001a6764001facd9405005bb011000000300100000030320f183196001000668ebe3cb22c0fdf8f800"
)
# HEVCDecoderConfigurationRecord prefix, Main profile, Main tier, level 3.1 (93): hvc1.1.6.L93.B0
HVCC_MAIN_L93 = bytes.fromhex("010160000000b000000000005df000fcfdf8f800000f00")
# AudioSpecificConfig AAC-LC (2), 48 kHz (index 3), stereo: mp4a.40.2
ASC_AAC_LC_48K_STEREO = bytes.fromhex("1190")


def esds_for(asc: bytes, *, object_type_indication: int = 0x40, avg_bitrate: int = 128000) -> bytes:
    """An ES_Descriptor carrying a DecoderConfigDescriptor with ``asc`` as DecoderSpecificInfo."""
    dsi = bytes([0x05, len(asc)]) + asc
    dcd_body = bytes([object_type_indication, 0x15]) + (0).to_bytes(3, "big")
    dcd_body += avg_bitrate.to_bytes(4, "big") * 2 + dsi
    dcd = bytes([0x04, len(dcd_body)]) + dcd_body
    sl = bytes([0x06, 0x01, 0x02])
    es_body = b"\x00\x01\x00" + dcd + sl
    return bytes([0x03, len(es_body)]) + es_body


def video_entry(
    *,
    sample_entry: str = "avc1",
    width: int = 320,
    height: int = 180,
    config: bytes | None = None,
    bitrate: int | None = None,
    par: tuple[int, int] | None = None,
) -> VisualSampleEntry:
    config_type = "avcC" if sample_entry.startswith("avc") else "hvcC"
    if config is None:
        config = AVCC_HIGH_31 if config_type == "avcC" else HVCC_MAIN_L93
    children: list[Box] = [CodecConfigurationBox(box_type=config_type, payload=config)]
    if par is not None:
        children.append(PixelAspectRatioBox(h_spacing=par[0], v_spacing=par[1]))
    if bitrate is not None:
        children.append(BitRateBox(max_bitrate=bitrate * 2, avg_bitrate=bitrate))
    return VisualSampleEntry(box_type=sample_entry, width=width, height=height, children=tuple(children))


def audio_entry(
    *,
    channels: int = 2,
    sample_rate: int = 48000,
    asc: bytes = ASC_AAC_LC_48K_STEREO,
    bitrate: int | None = None,
) -> AudioSampleEntry:
    children: list[Box] = [ElementaryStreamDescriptorBox(descriptors=esds_for(asc))]
    if bitrate is not None:
        children.append(BitRateBox(max_bitrate=bitrate, avg_bitrate=bitrate))
    return AudioSampleEntry(channelcount=channels, samplerate=sample_rate << 16, children=tuple(children))


def make_trak(
    *,
    track_id: int = 1,
    handler: str = "vide",
    timescale: int | None = None,
    entry: Box | None = None,
    language: str = "und",
    role: str | None = None,
) -> TrackBox:
    """A trak for ``handler`` ("vide" or "soun") with an avc1 or mp4a entry unless ``entry`` is given."""
    video = handler == "vide"
    if entry is None:
        entry = video_entry() if video else audio_entry()
    stbl = SampleTableBox(
        children=(
            SampleDescriptionBox(children=(entry,)),
            SampleTableEntriesBox(box_type="stts"),
            SampleTableEntriesBox(box_type="stsc"),
            SampleSizeBox(),
            SampleTableEntriesBox(box_type="stco"),
        )
    )
    media_header: Box = VideoMediaHeaderBox() if video else SoundMediaHeaderBox()
    minf = MediaInformationBox(
        children=(
            media_header,
            DataInformationBox(children=(DataReferenceBox(children=(DataEntryUrlBox(),)),)),
            stbl,
        )
    )
    mdia = MediaBox(
        children=(
            MediaHeaderBox(
                timescale=timescale or (90000 if video else 48000), language=pack_language(language)
            ),
            HandlerBox(handler_type=handler, name=b"Headwater\0"),
            minf,
        )
    )
    width, height = (entry.width, entry.height) if isinstance(entry, VisualSampleEntry) else (0, 0)
    tkhd = TrackHeaderBox(
        track_id=track_id, width=width << 16, height=height << 16, volume=0 if video else 0x100
    )
    children: list[Box] = [tkhd, mdia]
    if role is not None:
        children.append(UserDataBox(children=(KindBox(value=role),)))
    return TrackBox(children=tuple(children))


def make_header_of(
    traks: Sequence[TrackBox], trexes: Sequence[TrackExtendsBox], *, brands: Sequence[str] = ("cmfc", "iso6")
) -> bytes:
    """ftyp + moov holding ``traks`` and an mvex with ``trexes``."""
    moov = MovieBox(
        children=(
            MovieHeaderBox(next_track_id=len(traks) + 1),
            *traks,
            MovieExtendsBox(children=tuple(trexes)),
        )
    )
    return build_ftyp(brands[0], tuple(brands)) + serialize(moov)


def make_header(
    *,
    track_id: int = 1,
    handler: str = "vide",
    timescale: int | None = None,
    entry: Box | None = None,
    language: str = "und",
    role: str | None = None,
    default_sample_duration: int = 0,
    default_sample_size: int = 0,
    default_sample_flags: int = 0,
    brands: Sequence[str] = ("cmfc", "iso6"),
) -> bytes:
    """A one-track CMAF header (ftyp + moov)."""
    trak = make_trak(
        track_id=track_id, handler=handler, timescale=timescale, entry=entry, language=language, role=role
    )
    trex = TrackExtendsBox(
        track_id=track_id,
        default_sample_duration=default_sample_duration,
        default_sample_size=default_sample_size,
        default_sample_flags=default_sample_flags,
    )
    return make_header_of([trak], [trex], brands=brands)


def payload_of(size: int, seed: int = 0) -> bytes:
    """Deterministic sample bytes."""
    pattern = bytes((seed + i) % 251 for i in range(251))
    return (pattern * (size // 251 + 1))[:size]


def make_moof(
    *,
    track_id: int,
    sequence_number: int,
    decode_time: int,
    trun: TrackRunBox,
    tfhd: TrackFragmentHeaderBox | None = None,
) -> bytes:
    """A moof whose trun data_offset (if the trun has one) points just past an 8-byte mdat header."""
    tfhd = tfhd or TrackFragmentHeaderBox(track_id=track_id)
    tfdt = TrackFragmentDecodeTimeBox(version=1, base_media_decode_time=decode_time)

    def build(run: TrackRunBox) -> MovieFragmentBox:
        traf = TrackFragmentBox(children=(tfhd, tfdt, run))
        return MovieFragmentBox(children=(MovieFragmentHeaderBox(sequence_number=sequence_number), traf))

    size = len(serialize(build(trun)))
    if trun.data_offset is not None:
        trun = replace(trun, data_offset=size + 8)
    return serialize(build(trun))


def make_fragment(
    *,
    track_id: int = 1,
    sequence_number: int = 1,
    decode_time: int = 0,
    sample_durations: Sequence[int] = (3000,) * 3,
    sample_sizes: Sequence[int] | None = None,
    composition_offsets: Sequence[int] = (),
    keyframe_first: bool = True,
    brands: Sequence[str] | None = None,
    prft_wallclock_ms: int | None = None,
    emsg: EventMessageBox | None = None,
) -> bytes:
    """[styp][prft][emsg] moof mdat for one track, with per-sample durations and sizes."""
    sizes = tuple(sample_sizes) if sample_sizes is not None else (100,) * len(sample_durations)
    trun = TrackRunBox.build(
        sample_count=len(sizes),
        data_offset=0,
        first_sample_flags=KEYFRAME_FLAGS if keyframe_first else NON_KEYFRAME_FLAGS,
        sample_durations=tuple(sample_durations),
        sample_sizes=sizes,
        sample_composition_time_offsets=tuple(composition_offsets),
    )
    tfhd = TrackFragmentHeaderBox(
        track_id=track_id, flags=0x020020, default_sample_flags=NON_KEYFRAME_FLAGS
    )  # default-base-is-moof | default-sample-flags-present
    out = b""
    if brands is not None:
        out += build_styp(brands[0], tuple(brands))
    if prft_wallclock_ms is not None:
        prft = ProducerReferenceTimeBox(
            reference_track_id=track_id,
            ntp_timestamp=ntp_from_unix_ms(prft_wallclock_ms),
            media_time=decode_time,
        )
        out += serialize(prft)
    if emsg is not None:
        out += serialize(emsg)
    moof = make_moof(
        track_id=track_id, sequence_number=sequence_number, decode_time=decode_time, trun=trun, tfhd=tfhd
    )
    return out + moof + serialize(MediaDataBox(payload=payload_of(sum(sizes), seed=sequence_number)))


def make_stream(*, fragments: int = 3, track_id: int = 1, samples: int = 3, duration: int = 3000) -> bytes:
    """A header and ``fragments`` consecutive fragments of ``samples`` samples each."""
    out = make_header(track_id=track_id)
    for n in range(fragments):
        out += make_fragment(
            track_id=track_id,
            sequence_number=n + 1,
            decode_time=n * samples * duration,
            sample_durations=(duration,) * samples,
            sample_sizes=tuple(50 + 7 * i + n for i in range(samples)),
        )
    return out
