"""A variant's MPEG-TS segment, assembled from the store: the HLS TS output's segments.

Variants are named by the track whose segments they follow: a video track's variant carries that
video and the channel's default audio (its first audio track) muxed together; an audio track's
variant is audio only. Segment boundaries and names (``t``, the first decode time) are the CMAF
segments' own, so the TS and CMAF outputs switch at the same instants.

Audio is cut at sample level by presentation time: a video segment takes the audio samples whose
presentation times lie in its presentation interval, the segment's decode interval shifted by the
composition offset of its first sample (0 without B-frames). With a constant reorder delay, which
every encoder we know keeps, consecutive segments share their boundary, so each audio sample lands in
exactly one segment.

The bytes are a pure function of the stored fragments and headers read here (``remux_variant``), so
any packager makes the same segment and it can be cached by content.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.packager.errors import Gone, NotYetAvailable
from services.shared.channels import TrackRecord
from services.shared.errors import NotFound
from services.shared.media.models import TrackInfo
from services.shared.media.ts.cmaf import Samples, concatenate, fragment_samples
from services.shared.media.ts.remux import TrackSamples, remux
from services.shared.store.base import Store
from services.shared.timeline import FragmentEntry, Segment, TrackTimeline

CONTENT_TYPE = b"video/mp2t"


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackSource:
    """A track as the store has it: its record (header facts) and its timeline."""

    record: TrackRecord
    timeline: TrackTimeline

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def info(self) -> TrackInfo:
        return self.record.info


@dataclass(frozen=True, slots=True, kw_only=True)
class TsSegment:
    body: bytes
    ingest_time_ms: int  # the newest fragment it was made from became visible then (Last-Modified)


def complete_segment(timeline: TrackTimeline, track: str, start_time: int) -> Segment:
    """The complete segment of ``track`` starting at ``start_time``, or the error that explains why not."""
    segment = timeline.segment_at(start_time)
    if segment is None:
        first, last = timeline.first, timeline.last
        if last is None or start_time >= last.decode_time:
            raise NotYetAvailable(f"segment {start_time} of {track} is not available yet")
        if first is None or start_time < first.decode_time:
            raise Gone(f"segment {start_time} of {track} is outside the DVR window")
        raise NotFound(f"no segment of {track} starts at {start_time}")
    if not segment.complete:
        raise NotYetAvailable(f"segment {start_time} of {track} is still being written")
    return segment


def audio_covers(audio: TrackTimeline, end: int, *, timescale: int, audio_timescale: int) -> bool:
    """Whether the audio has been stored up to ``end`` (ticks of ``timescale``), or has ended."""
    last = audio.last
    return last is not None and (audio.ended or last.end_time * timescale >= end * audio_timescale)


def listable_segments(
    segments: Sequence[Segment], *, timescale: int, audio: TrackSource | None
) -> tuple[Segment, ...]:
    """The video segments whose muxed audio is stored too (their TS segment can be made now)."""
    if audio is None:
        return tuple(segments)
    scale = audio.info.timescale
    return tuple(
        s
        for s in segments
        if audio_covers(audio.timeline, s.end_time, timescale=timescale, audio_timescale=scale)
    )


def presentation_interval(samples: Samples) -> tuple[int, int]:
    """A segment's decode interval (its samples') shifted by its first sample's composition offset."""
    offset = samples.composition_times[0] - samples.decode_times[0]
    return samples.decode_times[0] + offset, samples.end_time + offset


def samples_in(samples: Samples, start: int, end: int, *, timescale: int, sample_timescale: int) -> Samples:
    """The samples presented in [start, end) (ticks of ``timescale``), compared exactly."""
    low, high = start * sample_timescale, end * sample_timescale
    times = samples.composition_times
    return samples.take([i for i, time in enumerate(times) if low <= time * timescale < high])


def mux_video_variant(
    *,
    video: TrackInfo,
    video_samples: Samples,
    audio: TrackInfo | None,
    audio_fragments: Sequence[bytes],
) -> bytes:
    """A video variant's TS segment: the video segment's samples and, of the audio fragments, the
    samples presented in its presentation interval. Pure."""
    if audio is None:
        return remux(video=TrackSamples(info=video, samples=video_samples))
    start, end = presentation_interval(video_samples)
    audio_samples = samples_in(
        concatenate(fragment_samples(data, audio) for data in audio_fragments),
        start,
        end,
        timescale=video.timescale,
        sample_timescale=audio.timescale,
    )
    return remux(
        video=TrackSamples(info=video, samples=video_samples),
        audio=TrackSamples(info=audio, samples=audio_samples),
    )


def mux_audio_variant(*, audio: TrackInfo, fragments: Sequence[bytes]) -> bytes:
    """An audio-only variant's TS segment: the audio segment's samples. Pure."""
    samples = concatenate(fragment_samples(data, audio) for data in fragments)
    return remux(audio=TrackSamples(info=audio, samples=samples))


async def load_ts_segment(
    store: Store, channel: str, *, driving: TrackSource, audio: TrackSource | None, start_time: int
) -> TsSegment:
    """Read what the segment needs and make it: ``driving`` is the variant's track (video, or the audio
    of an audio-only variant), ``audio`` the default audio muxed with a video variant."""
    segment = complete_segment(driving.timeline, driving.name, start_time)
    fragments = await _read(store, channel, driving.name, segment.fragments, start_time)
    if not driving.info.is_video:
        body = mux_audio_variant(audio=driving.info, fragments=fragments)
        return TsSegment(body=body, ingest_time_ms=segment.ingest_time_ms)
    video_samples = concatenate(fragment_samples(data, driving.info) for data in fragments)
    entries: tuple[FragmentEntry, ...] = ()
    if audio is not None:
        entries = _audio_entries(presentation_interval(video_samples), driving.info.timescale, audio)
    audio_fragments = await _read(store, channel, audio.name, entries, start_time) if audio else []
    body = mux_video_variant(
        video=driving.info,
        video_samples=video_samples,
        audio=None if audio is None else audio.info,
        audio_fragments=audio_fragments,
    )
    newest = max([segment.ingest_time_ms, *(e.ingest_time_ms for e in entries)])
    return TsSegment(body=body, ingest_time_ms=newest)


def _audio_entries(
    interval: tuple[int, int], timescale: int, audio: TrackSource
) -> tuple[FragmentEntry, ...]:
    """The audio fragments overlapping ``interval`` (ticks of ``timescale``); NotYetAvailable until the
    audio reaches its end, as the segment is immutable once served."""
    start, end = interval
    scale = audio.info.timescale
    if not audio_covers(audio.timeline, end, timescale=timescale, audio_timescale=scale):
        raise NotYetAvailable(f"the audio of the segment at {start} is not stored yet")
    return audio.timeline.overlapping(start * scale // timescale, -(-end * scale // timescale))


async def _read(
    store: Store, channel: str, track: str, entries: Sequence[FragmentEntry], start_time: int
) -> list[bytes]:
    fragments = []
    for entry in entries:
        data = await store.get_fragment(channel, track, entry.decode_time)
        if data is None:
            raise Gone(f"segment {start_time} of {track} has expired")
        fragments.append(data)
    return fragments
