"""A moof resolved against its track: samples (trun → tfhd → trex defaults) and where their data is.

CMAF fragments carry one traf; its samples' byte ranges must lie inside the mdat that follows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.shared.media.errors import MalformedBox
from services.shared.media.fragment_boxes import (
    SAMPLE_IS_NON_SYNC,
    MovieFragmentBox,
    MovieFragmentHeaderBox,
    TrackFragmentBox,
    TrackFragmentDecodeTimeBox,
    TrackFragmentHeaderBox,
    TrackRunBox,
)
from services.shared.media.models import Sample, TrackInfo

# Far above any real fragment (10 s of 60 fps video is 600 samples, of 48 kHz AAC 469); it stops a
# trun of default-sized samples from making billions of Sample objects.
MAX_SAMPLES_PER_FRAGMENT = 1 << 17


@dataclass(frozen=True, slots=True, kw_only=True)
class MoofSummary:
    """What a moof says about its fragment, before its mdat is checked."""

    track_id: int  # tfhd.track_ID
    sequence_number: int  # mfhd.sequence_number
    decode_time: int  # tfdt.baseMediaDecodeTime
    samples: tuple[Sample, ...]
    data_ranges: tuple[tuple[int, int], ...]  # [start, end) stream offsets of each trun's sample data


def summarize_moof(
    moof: MovieFragmentBox, *, moof_offset: int, tracks: Mapping[int, TrackInfo]
) -> MoofSummary:
    """Resolve ``moof`` (which starts at stream offset ``moof_offset``) against the header's tracks."""
    mfhd = moof.require(MovieFragmentHeaderBox, "mfhd")
    trafs = moof.all(TrackFragmentBox)
    if len(trafs) != 1:
        raise MalformedBox("moof", "traf", f"a CMAF fragment has exactly one traf, found {len(trafs)}")
    traf = trafs[0]
    tfhd = traf.require(TrackFragmentHeaderBox, "tfhd")
    track = tracks.get(tfhd.track_id)
    if track is None:
        known = sorted(tracks)
        raise MalformedBox(
            "tfhd", "track_id", f"track {tfhd.track_id} is not in the CMAF header (has {known})"
        )
    tfdt = traf.require(TrackFragmentDecodeTimeBox, "tfdt")
    truns = traf.all(TrackRunBox)
    if not truns:
        raise MalformedBox("traf", "trun", "has no trun box")
    if sum(trun.sample_count for trun in truns) > MAX_SAMPLES_PER_FRAGMENT:
        raise MalformedBox("trun", "sample_count", f"more than {MAX_SAMPLES_PER_FRAGMENT} samples")
    samples: list[Sample] = []
    for trun in truns:
        samples += resolve_samples(trun, tfhd, track)
    return MoofSummary(
        track_id=tfhd.track_id,
        sequence_number=mfhd.sequence_number,
        decode_time=tfdt.base_media_decode_time,
        samples=tuple(samples),
        data_ranges=_data_ranges(truns, tfhd, track, moof_offset),
    )


def _pick(*candidates: int | None) -> int:
    return next(value for value in candidates if value is not None)


def sample_fields(
    trun: TrackRunBox, tfhd: TrackFragmentHeaderBox, track: TrackInfo
) -> tuple[tuple[int, ...], tuple[int, ...], list[int], tuple[int, ...]]:
    """Per-sample durations, sizes, flags and composition offsets: trun, else tfhd, else trex defaults."""
    count = trun.sample_count
    durations = (
        trun.sample_durations or (_pick(tfhd.default_sample_duration, track.default_sample_duration),) * count
    )
    sizes = trun.sample_sizes or (_pick(tfhd.default_sample_size, track.default_sample_size),) * count
    flags = list(trun.sample_flags or (_pick(tfhd.default_sample_flags, track.default_sample_flags),) * count)
    if trun.first_sample_flags is not None and count:
        flags[0] = trun.first_sample_flags
    offsets = trun.sample_composition_time_offsets or (0,) * count
    return tuple(durations), tuple(sizes), flags, tuple(offsets)


def resolve_samples(trun: TrackRunBox, tfhd: TrackFragmentHeaderBox, track: TrackInfo) -> list[Sample]:
    """Each sample's size, duration, composition offset and sync flag, defaults applied."""
    durations, sizes, flags, offsets = sample_fields(trun, tfhd, track)
    return [
        Sample(
            size=size,
            duration_ticks=duration,
            composition_offset_ticks=offset,
            is_sync=not flag & SAMPLE_IS_NON_SYNC,
        )
        for duration, size, flag, offset in zip(durations, sizes, flags, offsets, strict=True)
    ]


def _data_ranges(
    truns: list[TrackRunBox], tfhd: TrackFragmentHeaderBox, track: TrackInfo, moof_offset: int
) -> tuple[tuple[int, int], ...]:
    """Stream offsets of each trun's data: from base_data_offset, or the moof (default-base-is-moof)."""
    base = tfhd.base_data_offset if tfhd.base_data_offset is not None else moof_offset
    default_size = _pick(tfhd.default_sample_size, track.default_sample_size)
    ranges: list[tuple[int, int]] = []
    position = base
    for trun in truns:
        start = base + trun.data_offset if trun.data_offset is not None else position
        size = sum(trun.sample_sizes) if trun.sample_sizes else default_size * trun.sample_count
        ranges.append((start, start + size))
        position = start + size
    return tuple(ranges)


def check_sample_data(summary: MoofSummary, *, payload_start: int, payload_end: int) -> None:
    """Every trun's sample data must lie inside the mdat payload [payload_start, payload_end)."""
    payload = f"the mdat payload [{payload_start}, {payload_end})"
    for start, end in summary.data_ranges:
        if not payload_start <= start <= payload_end:
            raise MalformedBox(
                "trun", "data_offset", f"sample data starts at byte {start}, outside {payload}"
            )
        if end > payload_end:
            raise MalformedBox("trun", "sample_size", f"samples [{start}, {end}) overrun {payload}")
