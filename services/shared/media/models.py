"""Media models shared by ingest, store and packager.

Times are integer ticks of the track's timescale (``mdhd.timescale``) everywhere; they become seconds
only when a manifest is rendered. Field comments name the box and field each value comes from.
"""

from __future__ import annotations

from dataclasses import dataclass

HANDLER_VIDEO = "vide"
HANDLER_AUDIO = "soun"

BRAND_LAST_SEGMENT = "lmsg"  # styp compatible brand: last segment of the track (CMAF 7.3.2.1)
BRAND_FILLER = "slat"  # styp compatible brand: slate / filler segment (DASH-IF ingest 6.x)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """One sample of a fragment, resolved from trun/tfhd/trex defaults."""

    size: int  # trun.sample_size | tfhd.default_sample_size | trex.default_sample_size
    duration_ticks: int  # trun.sample_duration | tfhd/trex default
    composition_offset_ticks: int  # trun.sample_composition_time_offset (signed in v1)
    is_sync: bool  # not sample_is_non_sync_sample (sample_flags bit 16)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackInfo:
    """What a CMAF header (ftyp + moov) says about its one track."""

    track_id: int  # tkhd.track_ID
    handler: str  # hdlr.handler_type: "vide" | "soun"
    sample_entry: str  # stsd entry fourcc: avc1 | avc3 | hvc1 | hev1 | mp4a
    codec: str  # RFC 6381 codecs parameter, e.g. "avc1.64001f", "mp4a.40.2"
    timescale: int  # mdhd.timescale
    language: str | None = None  # mdhd.language (ISO-639-2/T), None for "und"
    role: str | None = None  # kind.value (DASH role scheme) if present
    bitrate: int | None = None  # btrt.avgBitrate (bits/s)
    max_bitrate: int | None = None  # btrt.maxBitrate (bits/s)
    width: int | None = None  # visual sample entry width
    height: int | None = None  # visual sample entry height
    par: tuple[int, int] | None = None  # pasp hSpacing, vSpacing
    sample_rate: int | None = None  # audio sample entry samplerate (integer part)
    channels: int | None = None  # audio sample entry channelcount / AudioSpecificConfig
    decoder_config: bytes = b""  # avcC / hvcC payload, or AudioSpecificConfig from esds
    default_sample_duration: int = 0  # trex.default_sample_duration
    default_sample_size: int = 0  # trex.default_sample_size
    default_sample_flags: int = 0  # trex.default_sample_flags

    @property
    def is_video(self) -> bool:
        return self.handler == HANDLER_VIDEO

    @property
    def is_audio(self) -> bool:
        return self.handler == HANDLER_AUDIO


@dataclass(frozen=True, slots=True, kw_only=True)
class CmafHeader:
    """A CMAF header: ftyp + moov. ``data`` is the exact bytes to serve as the init segment."""

    major_brand: str  # ftyp.major_brand
    compatible_brands: tuple[str, ...]  # ftyp.compatible_brands
    tracks: tuple[TrackInfo, ...]  # one per trak, in moov order
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class ProducerReferenceTime:
    """prft: the encoder's wall clock for a media time of the following fragment."""

    wallclock_ms: int  # prft.ntp_timestamp converted to Unix milliseconds
    media_time: int  # prft.media_time (ticks)


@dataclass(frozen=True, slots=True, kw_only=True)
class CmafFragment:
    """A CMAF fragment (chunk): optional styp/prft/emsg, then one moof and its mdat.

    ``data`` is the exact byte range from the first box of the fragment (styp/prft/emsg when
    present) to the end of the mdat; concatenating the fragments of a segment gives the segment.
    """

    track_id: int  # tfhd.track_ID
    sequence_number: int  # mfhd.sequence_number
    decode_time: int  # tfdt.baseMediaDecodeTime (ticks)
    samples: tuple[Sample, ...]
    brands: tuple[str, ...] = ()  # styp major + compatible brands, if a styp preceded the moof
    prft: ProducerReferenceTime | None = None
    data: bytes = b""

    @property
    def duration_ticks(self) -> int:
        return sum(s.duration_ticks for s in self.samples)

    @property
    def sample_count(self) -> int:
        return len(self.samples)

    @property
    def starts_with_keyframe(self) -> bool:
        return bool(self.samples) and self.samples[0].is_sync

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def is_last(self) -> bool:
        return BRAND_LAST_SEGMENT in self.brands

    @property
    def is_filler(self) -> bool:
        return BRAND_FILLER in self.brands
