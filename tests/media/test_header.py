"""TrackInfo from a moov, and rewriting a header to one track."""

from __future__ import annotations

import pytest

from services.shared.media.boxes import (
    MovieBox,
    MovieExtendsBox,
    TrackBox,
    TrackExtendsBox,
    UnknownBox,
    parse_boxes,
    serialize,
)
from services.shared.media.errors import MalformedBox, MissingHeader, UnsupportedCodec
from services.shared.media.header import parse_header, single_track_header
from services.shared.media.synthetic import (
    AVCC_HIGH_31,
    audio_entry,
    make_header,
    make_header_of,
    make_trak,
    video_entry,
)


def test_video_track_info() -> None:
    data = make_header(
        track_id=3,
        timescale=12800,
        entry=video_entry(width=1280, height=720, bitrate=3_000_000, par=(1, 1)),
        language="eng",
        role="main",
        default_sample_duration=512,
        default_sample_flags=0x01010000,
    )
    header = parse_header(data)
    assert (header.major_brand, header.compatible_brands, header.data) == ("cmfc", ("cmfc", "iso6"), data)
    (track,) = header.tracks
    assert track.track_id == 3
    assert track.is_video and track.handler == "vide"
    assert (track.sample_entry, track.codec, track.timescale) == ("avc1", "avc1.64001f", 12800)
    assert (track.width, track.height, track.par) == (1280, 720, (1, 1))
    assert (track.bitrate, track.max_bitrate) == (3_000_000, 6_000_000)
    assert (track.language, track.role) == ("eng", "main")
    assert track.decoder_config == AVCC_HIGH_31
    assert (track.default_sample_duration, track.default_sample_size, track.default_sample_flags) == (
        512,
        0,
        0x01010000,
    )
    assert (track.sample_rate, track.channels) == (None, None)


def test_audio_track_info_prefers_the_audio_specific_config_channels() -> None:
    mono_asc = bytes.fromhex("1188")  # AAC-LC, 48 kHz, 1 channel
    header = parse_header(
        make_header(handler="soun", entry=audio_entry(channels=2, asc=mono_asc, bitrate=64000))
    )
    (track,) = header.tracks
    assert track.is_audio
    assert (track.codec, track.timescale, track.sample_rate, track.channels) == ("mp4a.40.2", 48000, 48000, 1)
    assert track.decoder_config == mono_asc
    assert (track.width, track.height, track.language, track.role) == (None, None, None, None)
    assert track.bitrate == 64000


def test_moov_alone_is_a_header_without_brands() -> None:
    data = make_header()
    moov = data[int.from_bytes(data[:4], "big") :]
    header = parse_header(moov)
    assert (header.major_brand, header.compatible_brands, len(header.tracks)) == ("", (), 1)


def test_multi_track_header_keeps_moov_order() -> None:
    traks = [make_trak(track_id=1), make_trak(track_id=2, handler="soun", language="fra")]
    header = parse_header(make_header_of(traks, [TrackExtendsBox(track_id=2, default_sample_duration=1024)]))
    assert [(t.track_id, t.handler) for t in header.tracks] == [(1, "vide"), (2, "soun")]
    assert header.tracks[1].default_sample_duration == 1024
    assert header.tracks[0].default_sample_duration == 0  # no trex: zero defaults
    assert header.tracks[1].language == "fra"


def test_header_without_moov_or_trak_is_malformed() -> None:
    data = make_header()
    ftyp = data[: int.from_bytes(data[:4], "big")]
    with pytest.raises(MalformedBox, match="moov"):
        parse_header(ftyp)
    with pytest.raises(MalformedBox, match="trak"):
        parse_header(ftyp + serialize(MovieBox()))


def test_duplicate_track_ids_are_malformed() -> None:
    with pytest.raises(MalformedBox, match="unique"):
        parse_header(make_header_of([make_trak(track_id=1), make_trak(track_id=1)], []))


def test_unknown_sample_entry_is_unsupported() -> None:
    data = make_header(entry=UnknownBox(box_type="vp09", payload=bytes(78)))
    with pytest.raises(UnsupportedCodec) as excinfo:
        parse_header(data)
    assert excinfo.value.fourcc == "vp09"


def test_trak_without_mdia_is_malformed() -> None:
    data = make_header_of([TrackBox(children=())], [])
    with pytest.raises(MalformedBox, match="tkhd"):
        parse_header(data)


def test_single_track_header_keeps_one_trak_and_its_trex() -> None:
    traks = [make_trak(track_id=1), make_trak(track_id=2, handler="soun")]
    trexes = [TrackExtendsBox(track_id=1), TrackExtendsBox(track_id=2, default_sample_duration=1024)]
    header = parse_header(make_header_of(traks, trexes))
    data = single_track_header(header, 2)
    rewritten = parse_header(data)
    assert [t.track_id for t in rewritten.tracks] == [2]
    assert rewritten.tracks[0] == header.tracks[1]
    moov = parse_boxes(data)[1]
    assert isinstance(moov, MovieBox)
    mvex = moov.first(MovieExtendsBox)
    assert mvex is not None and [t.track_id for t in mvex.all(TrackExtendsBox)] == [2]
    assert single_track_header(rewritten, 2) == data


def test_single_track_header_of_an_unknown_track() -> None:
    header = parse_header(make_header(track_id=1))
    with pytest.raises(MissingHeader):
        single_track_header(header, 5)
