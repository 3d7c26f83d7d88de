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

Which fragments a segment is made from is decided from the timelines alone (``select_inputs``,
``TsInputs``), given the video's first composition offset (``first_offset``, read from its first
fragment), and the bytes are a pure function of those fragments and the headers (``mux_inputs``): any
packager makes the same segment, so it is shared by a key naming its inputs (``ts_cache.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
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
#: The muxer's output format: bump it whenever the TS bytes made from the same inputs change, so that
#: segments made by an older build (shared through memcached) are never served again.
TS_FORMAT = 1


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


@dataclass(frozen=True, slots=True, kw_only=True)
class TsInputs:
    """What one TS segment is made from, chosen from the timelines alone (no bytes read yet)."""

    channel: str
    driving: TrackSource  # the variant's track: its video, or the audio of an audio-only variant
    segment: Segment  # the driving track's complete segment
    audio: TrackSource | None  # the default audio muxed with a video variant (None: none muxed)

    @property
    def start_time(self) -> int:
        return self.segment.start_time

    def audio_entries(self, offset: int) -> tuple[FragmentEntry, ...]:
        """The audio fragments overlapping the presentation interval (the segment's decode interval
        shifted by ``offset``, its first sample's composition offset); NotYetAvailable until the audio
        reaches its end, as the segment is immutable once served."""
        if self.audio is None:
            return ()
        timescale, scale = self.driving.info.timescale, self.audio.info.timescale
        start, end = self.segment.start_time + offset, self.segment.end_time + offset
        if not audio_covers(self.audio.timeline, end, timescale=timescale, audio_timescale=scale):
            raise NotYetAvailable(f"the audio of the segment at {start} is not stored yet")
        return self.audio.timeline.overlapping(start * scale // timescale, -(-end * scale // timescale))


def default_audio(tracks: Iterable[tuple[TrackRecord, TrackTimeline]]) -> TrackSource | None:
    """The channel's default audio (its first audio track), muxed into every TS video variant."""
    for record, timeline in tracks:
        if record.info.is_audio:
            return TrackSource(record=record, timeline=timeline)
    return None


def select_inputs(
    channel: str, *, driving: TrackSource, audio: TrackSource | None, start_time: int
) -> TsInputs:
    """The inputs of ``driving``'s TS segment at ``start_time`` (``audio``: the channel's default)."""
    segment = complete_segment(driving.timeline, driving.name, start_time)
    muxed = audio if driving.info.is_video else None
    return TsInputs(channel=channel, driving=driving, segment=segment, audio=muxed)


def first_offset(fragment: bytes, info: TrackInfo) -> int:
    """The composition offset of a fragment's first sample: what shifts a video segment's decode
    interval to its presentation interval (``presentation_interval``). Pure."""
    samples = fragment_samples(fragment, info)
    return samples.composition_times[0] - samples.decode_times[0] if len(samples) else 0


def mux_inputs(inputs: TsInputs, driving: Sequence[bytes], audio: Sequence[bytes]) -> bytes:
    """The TS segment from the bytes of ``inputs``: the driving track's fragments and the audio
    fragments of ``inputs.audio_entries``. Pure, and safe to run in a worker thread."""
    info = inputs.driving.info
    if not info.is_video:
        return mux_audio_variant(audio=info, fragments=driving)
    return mux_video_variant(
        video=info,
        video_samples=concatenate(fragment_samples(data, info) for data in driving),
        audio=None if inputs.audio is None else inputs.audio.info,
        audio_fragments=audio,
    )


async def read_fragments(
    store: Store, channel: str, track: str, entries: Sequence[FragmentEntry], *, start_time: int
) -> list[bytes]:
    """The stored bytes of ``entries``, read together; Gone if any has expired."""
    parts = await asyncio.gather(*(store.get_fragment(channel, track, e.decode_time) for e in entries))
    fragments = [part for part in parts if part is not None]
    if len(fragments) != len(parts):
        raise Gone(f"segment {start_time} of {track} has expired")
    return fragments
