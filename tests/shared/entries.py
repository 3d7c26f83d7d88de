"""One builder of timeline entries and one video ``TrackInfo`` for the index, store and follower tests."""

from __future__ import annotations

from services.shared.media.models import TrackInfo
from services.shared.timeline import FragmentEntry

INFO = TrackInfo(
    track_id=1,
    handler="vide",
    sample_entry="avc1",
    codec="avc1.64001f",
    timescale=90000,
    decoder_config=b"\x01\x64",
    par=(1, 1),
)


def entry(
    t: int, *, duration: int = 10, samples: int = 1, filler: bool = False, size: int = 3
) -> FragmentEntry:
    """A one-fragment segment at ``t`` (numbered ``t // duration``), committed at Unix ms 1."""
    return FragmentEntry(
        decode_time=t,
        duration_ticks=duration,
        sample_count=samples,
        independent=True,
        segment_number=t // duration,
        segment_start=t,
        part_number=0,
        size=size,
        ingest_time_ms=1,
        filler=filler,
    )
