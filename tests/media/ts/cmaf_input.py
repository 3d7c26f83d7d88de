"""CMAF files (FFmpeg fixtures) as the remux sees stored tracks: a header and fragment bytes."""

from __future__ import annotations

from dataclasses import dataclass

from services.shared.media.models import TrackInfo
from services.shared.media.reader import CmafReader, FragmentReceived, HeaderReceived
from services.shared.media.ts.cmaf import Samples, concatenate, fragment_samples


@dataclass(frozen=True, slots=True)
class Track:
    info: TrackInfo
    fragments: tuple[bytes, ...]

    def samples(self, index: int) -> Samples:
        return fragment_samples(self.fragments[index], self.info)

    def all_samples(self) -> Samples:
        return concatenate(self.samples(index) for index in range(len(self.fragments)))


def read_track(data: bytes) -> Track:
    events = CmafReader().feed(data)
    header = next(e.header for e in events if isinstance(e, HeaderReceived))
    fragments = tuple(e.fragment.data for e in events if isinstance(e, FragmentReceived))
    return Track(info=header.tracks[0], fragments=fragments)
