"""CMAF headers (ftyp + moov): what they say about their tracks, and rewriting them per track."""

from __future__ import annotations

from dataclasses import replace

from services.shared.media.box import Box, ContainerBox, parse_boxes, serialize
from services.shared.media.codecs import describe
from services.shared.media.errors import MalformedBox, MissingHeader
from services.shared.media.models import CmafHeader, TrackInfo
from services.shared.media.movie_boxes import (
    FileTypeBox,
    HandlerBox,
    KindBox,
    MediaBox,
    MediaHeaderBox,
    MediaInformationBox,
    MovieBox,
    MovieExtendsBox,
    SampleTableBox,
    TrackBox,
    TrackExtendsBox,
    TrackHeaderBox,
    UserDataBox,
)
from services.shared.media.sample_entries import (
    AudioSampleEntry,
    BitRateBox,
    PixelAspectRatioBox,
    SampleDescriptionBox,
    VisualSampleEntry,
)


def parse_header(data: bytes) -> CmafHeader:
    """A CmafHeader from the exact bytes of an init segment (an optional ftyp, then moov)."""
    boxes = parse_boxes(data)
    ftyp = next((b for b in boxes if isinstance(b, FileTypeBox) and b.box_type == "ftyp"), None)
    moov = next((b for b in boxes if isinstance(b, MovieBox)), None)
    if moov is None:
        raise MalformedBox("moov", "type", "CMAF header has no moov box")
    return header_from_boxes(ftyp, moov, data)


def header_from_boxes(ftyp: FileTypeBox | None, moov: MovieBox, data: bytes) -> CmafHeader:
    """A CmafHeader from parsed boxes; without an ftyp the brands are empty."""
    trex_by_track = {trex.track_id: trex for trex in _trexes(moov)}
    traks = moov.all(TrackBox)
    if not traks:
        raise MalformedBox("moov", "trak", "CMAF header has no track")
    tracks = tuple(track_info(trak, trex_by_track) for trak in traks)
    ids = [track.track_id for track in tracks]
    if len(set(ids)) != len(ids):
        raise MalformedBox("tkhd", "track_id", f"track IDs {ids} are not unique")
    return CmafHeader(
        major_brand=ftyp.major_brand if ftyp else "",
        compatible_brands=ftyp.compatible_brands if ftyp else (),
        tracks=tracks,
        data=data,
    )


def _trexes(moov: MovieBox) -> list[TrackExtendsBox]:
    mvex = moov.first(MovieExtendsBox)
    return mvex.all(TrackExtendsBox) if mvex else []


def track_info(trak: TrackBox, trex_by_track: dict[int, TrackExtendsBox]) -> TrackInfo:
    """What one trak (and its trex) says: IDs, timing, codec, dimensions or audio layout, defaults."""
    tkhd = trak.require(TrackHeaderBox, "tkhd")
    mdia = trak.require(MediaBox, "mdia")
    mdhd = mdia.require(MediaHeaderBox, "mdhd")
    hdlr = mdia.require(HandlerBox, "hdlr")
    stbl = mdia.require(MediaInformationBox, "minf").require(SampleTableBox, "stbl")
    stsd = stbl.first(SampleDescriptionBox)
    if stsd is None or not stsd.children:
        raise MalformedBox("stsd", "entry_count", "track has no sample entry")
    entry = stsd.children[0]
    if mdhd.timescale == 0:
        raise MalformedBox("mdhd", "timescale", "timescale is 0")
    description = describe(entry)
    trex = trex_by_track.get(tkhd.track_id, TrackExtendsBox(track_id=tkhd.track_id))
    btrt = entry.first(BitRateBox) if isinstance(entry, ContainerBox) else None
    width, height, par = _visual_fields(entry)
    sample_rate, channels = _audio_fields(entry, description.audio.channels if description.audio else None)
    return TrackInfo(
        track_id=tkhd.track_id,
        handler=hdlr.handler_type,
        sample_entry=entry.box_type,
        codec=description.codec,
        timescale=mdhd.timescale,
        language=mdhd.language_code,
        role=_role(trak),
        bitrate=(btrt.avg_bitrate or None) if btrt else None,
        max_bitrate=(btrt.max_bitrate or None) if btrt else None,
        decoder_config=description.decoder_config,
        default_sample_duration=trex.default_sample_duration,
        default_sample_size=trex.default_sample_size,
        default_sample_flags=trex.default_sample_flags,
        width=width,
        height=height,
        par=par,
        sample_rate=sample_rate,
        channels=channels,
    )


def _role(trak: TrackBox) -> str | None:
    udta = trak.first(UserDataBox)
    kind = udta.first(KindBox) if udta else None
    return kind.value if kind else None


def _visual_fields(entry: Box) -> tuple[int | None, int | None, tuple[int, int] | None]:
    """width, height and pixel aspect ratio of a visual sample entry."""
    if not isinstance(entry, VisualSampleEntry):
        return None, None, None
    pasp = entry.first(PixelAspectRatioBox)
    return entry.width, entry.height, (pasp.h_spacing, pasp.v_spacing) if pasp else None


def _audio_fields(entry: Box, config_channels: int | None) -> tuple[int | None, int | None]:
    """sample rate and channels of an audio sample entry."""
    if not isinstance(entry, AudioSampleEntry):
        return None, None
    # The entry's channelcount is often a fixed 2; the AudioSpecificConfig knows better.
    return entry.samplerate >> 16, config_channels or entry.channelcount


def single_track_header(header: CmafHeader, track_id: int) -> bytes:
    """The header's bytes rewritten to hold only ``track_id``'s trak and trex (other boxes kept)."""
    if all(track.track_id != track_id for track in header.tracks):
        raise MissingHeader(f"the CMAF header has no track {track_id}")
    out = bytearray()
    for box in parse_boxes(header.data):
        out += serialize(_keep_track(box, track_id) if isinstance(box, MovieBox) else box)
    return bytes(out)


def _keep_track(moov: MovieBox, track_id: int) -> MovieBox:
    children: list[Box] = []
    for child in moov.children:
        if isinstance(child, TrackBox) and child.require(TrackHeaderBox, "tkhd").track_id != track_id:
            continue
        if isinstance(child, MovieExtendsBox):
            kept = [c for c in child.children if not isinstance(c, TrackExtendsBox) or c.track_id == track_id]
            children.append(replace(child, children=tuple(kept)))
        else:
            children.append(child)
    return replace(moov, children=tuple(children))
