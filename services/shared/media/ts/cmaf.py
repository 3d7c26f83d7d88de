"""Stored CMAF fragments back to timed samples: the input side of the remux. Pure.

A stored fragment is the exact bytes from its first box (styp/prft/emsg) to the end of its mdat. Its
moof is parsed with the media core's box definitions; the samples come out as columns (``Samples``)
rather than an object per sample, because a segment has a few hundred of them and this runs on
every TS request. ``columns`` resolves trun → tfhd → trex defaults exactly as
``fragment.resolve_samples`` does (a test holds them together). The sample data are views into the
fragment, located by default-base-is-moof data offsets (CMAF 7.5.17), so nothing is copied. Times
stay in the track's timescale.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate, chain
from operator import add

from services.shared.media.box import parse_box_at, read_box_header
from services.shared.media.errors import MalformedBox
from services.shared.media.fragment import sample_fields
from services.shared.media.fragment_boxes import (
    SAMPLE_IS_NON_SYNC,
    MovieFragmentBox,
    TrackFragmentBox,
    TrackFragmentDecodeTimeBox,
    TrackFragmentHeaderBox,
    TrackRunBox,
)
from services.shared.media.models import TrackInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class Samples:
    """Samples of one track in decode order, as columns; times in ticks of the track's timescale."""

    decode_times: tuple[int, ...]  # tfdt.baseMediaDecodeTime + the durations before each
    composition_times: tuple[int, ...]  # decode time + trun.sample_composition_time_offset
    durations: tuple[int, ...]
    sync: tuple[bool, ...]  # not sample_is_non_sync_sample
    data: tuple[memoryview, ...]  # views into the stored fragments

    def __len__(self) -> int:
        return len(self.decode_times)

    @property
    def end_time(self) -> int:
        """The decode time after the last sample."""
        return self.decode_times[-1] + self.durations[-1]

    def take(self, indices: Sequence[int]) -> Samples:
        """The samples at ``indices`` (a contiguous run is sliced, not gathered)."""
        if indices and indices[-1] - indices[0] == len(indices) - 1:
            part = slice(indices[0], indices[-1] + 1)
            return Samples(
                decode_times=self.decode_times[part],
                composition_times=self.composition_times[part],
                durations=self.durations[part],
                sync=self.sync[part],
                data=self.data[part],
            )
        return Samples(
            decode_times=tuple(self.decode_times[i] for i in indices),
            composition_times=tuple(self.composition_times[i] for i in indices),
            durations=tuple(self.durations[i] for i in indices),
            sync=tuple(self.sync[i] for i in indices),
            data=tuple(self.data[i] for i in indices),
        )


EMPTY = Samples(decode_times=(), composition_times=(), durations=(), sync=(), data=())


def concatenate(runs: Iterable[Samples]) -> Samples:
    """One track's samples from consecutive runs (fragments), in order."""
    runs = list(runs)
    if len(runs) == 1:
        return runs[0]
    return Samples(
        decode_times=tuple(chain.from_iterable(r.decode_times for r in runs)),
        composition_times=tuple(chain.from_iterable(r.composition_times for r in runs)),
        durations=tuple(chain.from_iterable(r.durations for r in runs)),
        sync=tuple(chain.from_iterable(r.sync for r in runs)),
        data=tuple(chain.from_iterable(r.data for r in runs)),
    )


def fragment_samples(fragment: bytes, track: TrackInfo) -> Samples:
    """The samples of one stored CMAF fragment of ``track``."""
    view = memoryview(fragment)
    position = 0
    while position < len(view):
        header = read_box_header(view, position, len(view))
        if header.box_type == "moof":
            moof, _ = parse_box_at(view, position, len(view))
            assert isinstance(moof, MovieFragmentBox)
            return _samples(view, moof, position, track)
        position += header.size
    raise MalformedBox("fragment", "moof", "a stored fragment without a moof")


def _samples(view: memoryview, moof: MovieFragmentBox, moof_offset: int, track: TrackInfo) -> Samples:
    trafs = moof.all(TrackFragmentBox)
    if len(trafs) != 1:
        raise MalformedBox("moof", "traf", f"a CMAF fragment has exactly one traf, found {len(trafs)}")
    tfhd = trafs[0].require(TrackFragmentHeaderBox, "tfhd")
    if tfhd.track_id != track.track_id:
        raise MalformedBox("tfhd", "track_id", f"track {tfhd.track_id} is not {track.track_id}")
    if tfhd.base_data_offset is not None:
        raise MalformedBox("tfhd", "base_data_offset", "stored fragments must use default-base-is-moof")
    decode_time = trafs[0].require(TrackFragmentDecodeTimeBox, "tfdt").base_media_decode_time
    runs = []
    position = moof_offset
    for trun in trafs[0].all(TrackRunBox):
        start = moof_offset + trun.data_offset if trun.data_offset is not None else position
        run = columns(trun, tfhd, track, decode_time=decode_time, view=view, data_start=start)
        if run.decode_times:
            decode_time = run.end_time
            position = start + sum(map(len, run.data))
        runs.append(run)
    return concatenate(runs) if runs else EMPTY


def columns(
    trun: TrackRunBox,
    tfhd: TrackFragmentHeaderBox,
    track: TrackInfo,
    *,
    decode_time: int,
    view: memoryview,
    data_start: int,
) -> Samples:
    """One trun's samples: per-sample fields, else tfhd defaults, else trex defaults."""
    count = trun.sample_count
    durations, sizes, flags, offsets = sample_fields(trun, tfhd, track)
    decode_times = tuple(accumulate(durations[:-1], initial=decode_time)) if count else ()
    positions = list(accumulate(sizes, initial=data_start))
    if positions[-1] > len(view):
        raise MalformedBox("trun", "data_offset", "sample data lies outside the stored fragment")
    return Samples(
        decode_times=decode_times,
        composition_times=tuple(map(add, decode_times, offsets)),
        durations=tuple(durations),
        sync=tuple([not flag & SAMPLE_IS_NON_SYNC for flag in flags]),
        data=tuple(map(view.__getitem__, map(slice, positions, positions[1:]))),
    )
