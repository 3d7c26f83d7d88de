"""One HLS media segment as MPEG-TS, from the timed samples of a video track and/or an audio track. Pure.

The PIDs are fixed, so every segment of every variant agrees: PMT 0x1000, video 0x100, audio
0x101 (FFmpeg's defaults). The PCR rides on the video PID, or on the audio PID of an audio-only
variant. Times are the CMAF decode and composition times converted to 90 kHz (``ticks * 90000 //
timescale``), written modulo 2**33; decode times move back by the reorder depth if the track uses
negative composition offsets (``reorder_shift``). Each video sample is one PES (an Annex B access
unit); consecutive AAC frames are bundled into PES of at most 80 ms (four 1024-sample frames at
48 kHz), so the PCR of an audio-only variant, carried by each audio PES, stays within 100 ms.

The segment's decode interval (the first sample's decode time to the last one's end, of the video
track, else the audio track) sets the PAT/PMT grid (``muxer``); which samples belong to the segment
is the caller's decision.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from operator import itemgetter, sub

from services.shared.media.errors import UnsupportedCodec
from services.shared.media.models import TrackInfo
from services.shared.media.ts.adts import ADTS_HEADER_SIZE, Adts, adts_for
from services.shared.media.ts.annexb import AnnexB, avc_annex_b, hevc_annex_b
from services.shared.media.ts.cmaf import Samples
from services.shared.media.ts.muxer import ElementaryStream, Program, SegmentMuxer
from services.shared.media.ts.packets import Buffer
from services.shared.media.ts.pes import STREAM_ID_AUDIO, STREAM_ID_VIDEO
from services.shared.media.ts.timestamps import SYSTEM_CLOCK_HZ

VIDEO_PID = 0x100
AUDIO_PID = 0x101
STREAM_TYPE_H264 = 0x1B  # ITU-T H.264 | ISO/IEC 14496-10 video
STREAM_TYPE_HEVC = 0x24  # ITU-T H.265 | ISO/IEC 23008-2 video
STREAM_TYPE_AAC_ADTS = 0x0F  # ISO/IEC 13818-7 audio with ADTS transport syntax
AUDIO_PES_MAX_TICKS = 7_200  # a bundle's frames start within 80 ms of its first one
AUDIO_PES_MAX_BYTES = 60_000  # and keep PES_packet_length within 16 bits
_VIDEO_ENTRIES = {
    "avc1": STREAM_TYPE_H264,
    "avc3": STREAM_TYPE_H264,
    "hvc1": STREAM_TYPE_HEVC,
    "hev1": STREAM_TYPE_HEVC,
}

# (dts, order on ties: video first, pts, random_access, PES payload parts, PID), times in 90 kHz
_Unit = tuple[int, int, int, bool, list[Buffer], int]
_ORDER = itemgetter(0, 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackSamples:
    """A track and the samples of it that go into the segment, in decode order."""

    info: TrackInfo
    samples: Samples


def remux(*, video: TrackSamples | None = None, audio: TrackSamples | None = None) -> bytes:
    """The transport stream of one segment: PAT/PMT, then the samples' PES in decode order."""
    primary = video if video is not None else audio
    if primary is None or not len(primary.samples):
        raise ValueError("a segment needs samples of its video track, or of its audio track if audio-only")
    scale = primary.info.timescale
    start = primary.samples.decode_times[0] * SYSTEM_CLOCK_HZ // scale
    end = primary.samples.end_time * SYSTEM_CLOCK_HZ // scale
    program = program_for(
        video_stream_type=None if video is None else video_stream_type(video.info), audio=audio is not None
    )
    muxer = SegmentMuxer(program, start=start, end=end)
    units: list[_Unit] = []
    if video is not None:
        units += _video_units(video, annex_b_for(video.info.sample_entry, video.info.decoder_config))
    if audio is not None:
        units += _audio_units(audio, _adts_for(audio.info.decoder_config))
    units.sort(key=_ORDER)  # decode order across the streams (stable: video first on a tie)
    for dts, _, pts, random_access, payload, pid in units:
        muxer.push(pid, pts=pts, dts=dts, random_access=random_access, payload=payload)
    return muxer.flush()


def video_stream_type(info: TrackInfo) -> int:
    stream_type = _VIDEO_ENTRIES.get(info.sample_entry)
    if stream_type is None:
        raise UnsupportedCodec(info.sample_entry, "no MPEG-TS mapping for this video sample entry")
    return stream_type


@functools.cache
def program_for(*, video_stream_type: int | None, audio: bool) -> Program:
    """The program of a variant (built once per shape: its PSI and headers are precomputed)."""
    streams = []
    if video_stream_type is not None:
        streams.append(
            ElementaryStream(pid=VIDEO_PID, stream_type=video_stream_type, stream_id=STREAM_ID_VIDEO)
        )
    if audio:
        streams.append(
            ElementaryStream(pid=AUDIO_PID, stream_type=STREAM_TYPE_AAC_ADTS, stream_id=STREAM_ID_AUDIO)
        )
    if not streams:
        raise ValueError("a program needs a stream")
    return Program(streams=tuple(streams), pcr_pid=streams[0].pid)


@functools.lru_cache(maxsize=64)
def annex_b_for(sample_entry: str, decoder_config: bytes) -> AnnexB:
    if _VIDEO_ENTRIES.get(sample_entry) == STREAM_TYPE_HEVC:
        return hevc_annex_b(decoder_config)
    return avc_annex_b(decoder_config)


def reorder_shift(samples: Samples) -> int:
    """Ticks to take off decode times so that no DTS is after its PTS (0 without negative offsets).

    CMAF allows negative composition offsets (trun version 1): a B-frame is then presented before its
    decode time, which a transport stream cannot say (DTS <= PTS). Like FFmpeg's mov demuxer, decode
    times move back by the largest such lead; an encoder's reorder depth is constant, so every segment
    of a track gets the same shift and the DTS stay continuous.
    """
    leads = map(sub, samples.decode_times, samples.composition_times)
    return max(0, max(leads, default=0))


@functools.lru_cache(maxsize=64)
def _adts_for(audio_specific_config: bytes) -> Adts:
    return adts_for(audio_specific_config)  # one per track, so its headers by frame size are kept


def _video_units(track: TrackSamples, annex_b: AnnexB) -> list[_Unit]:
    scale = track.info.timescale
    shift = reorder_shift(track.samples)
    columns = track.samples
    return [
        (
            (decode_time - shift) * SYSTEM_CLOCK_HZ // scale,
            0,
            composition_time * SYSTEM_CLOCK_HZ // scale,
            sync,
            annex_b.access_unit(data, sync=sync),
            VIDEO_PID,
        )
        for decode_time, composition_time, sync, data in zip(
            columns.decode_times, columns.composition_times, columns.sync, columns.data, strict=True
        )
    ]


def _audio_units(track: TrackSamples, adts: Adts) -> list[_Unit]:
    """ADTS frames bundled: a bundle ends at a time gap, at 80 ms, or before 60 000 bytes."""
    scale = track.info.timescale
    columns = track.samples
    units: list[_Unit] = []
    parts: list[Buffer] = []
    first = expected = size = 0
    for decode_time, composition_time, duration, data in zip(
        columns.decode_times, columns.composition_times, columns.durations, columns.data, strict=True
    ):
        pts = composition_time * SYSTEM_CLOCK_HZ // scale
        frame_size = len(data) + ADTS_HEADER_SIZE
        if (
            not parts
            or decode_time != expected
            or pts - first >= AUDIO_PES_MAX_TICKS
            or size + frame_size > AUDIO_PES_MAX_BYTES
        ):
            parts = []
            units.append((decode_time * SYSTEM_CLOCK_HZ // scale, 1, pts, True, parts, AUDIO_PID))
            first, size = pts, 0
        parts.append(adts.header(len(data)))
        parts.append(data)
        size += frame_size
        expected = decode_time + duration
    return units
