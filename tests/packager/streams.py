"""Synthetic streams for the manifest builder tests: timelines built the way ingest builds them.

Fragments are placed with ``place_fragment`` (numbers and segment boundaries exactly as ingest
assigns them), then the complete segments become a ``TrackView``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from services.packager.views import ChannelView, TrackView
from services.shared.channels import ChannelConfig
from services.shared.media.models import HANDLER_AUDIO, HANDLER_VIDEO, TrackInfo
from services.shared.timeline import FragmentEntry, TrackTimeline, place_fragment

EPOCH_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z
NOW_MS = EPOCH_MS + 3_612_345  # an hour in
TIME_URL = "https://origin.example/time?iso&fmt=ms"  # & exercises XML escaping


@dataclass(frozen=True, slots=True, kw_only=True)
class Frag:
    """One fragment to ingest: where it starts, how long it is, and what is in it."""

    decode_time: int
    duration_ticks: int
    sample_count: int
    size: int
    independent: bool = True
    last: bool = False


def timeline(fragments: Sequence[Frag], *, target_ticks: int) -> TrackTimeline:
    line = TrackTimeline()
    for frag in fragments:
        placement = place_fragment(
            line.last,
            decode_time=frag.decode_time,
            duration_ticks=frag.duration_ticks,
            independent=frag.independent,
            target_ticks=target_ticks,
        )
        line.append(
            FragmentEntry(
                decode_time=frag.decode_time,
                duration_ticks=frag.duration_ticks,
                sample_count=frag.sample_count,
                independent=frag.independent,
                segment_number=placement.segment_number,
                segment_start=placement.segment_start,
                part_number=placement.part_number,
                size=frag.size,
                ingest_time_ms=EPOCH_MS + (frag.decode_time + frag.duration_ticks) // 90,
                last=frag.last,
            )
        )
    return line


def view(name: str, info: TrackInfo, line: TrackTimeline) -> TrackView:
    """Complete segments become ``segments``; a trailing incomplete one becomes ``partial``."""
    segments = tuple(line.segments())
    complete = tuple(s for s in segments if s.complete)
    partial = segments[-1] if segments and not segments[-1].complete else None
    return TrackView(name=name, info=info, segments=complete, ended=line.ended, partial=partial)


def run(
    start: int,
    count: int,
    *,
    duration_ticks: int,
    sample_count: int,
    size: int,
    last: bool = False,
) -> list[Frag]:
    """``count`` contiguous fragments of equal duration; sizes vary a little, deterministically."""
    frags = [
        Frag(
            decode_time=start + i * duration_ticks,
            duration_ticks=duration_ticks,
            sample_count=sample_count,
            size=size + (i * 7919) % 4001,
        )
        for i in range(count)
    ]
    if last and frags:
        tail = frags[-1]
        frags[-1] = Frag(
            decode_time=tail.decode_time,
            duration_ticks=tail.duration_ticks,
            sample_count=tail.sample_count,
            size=tail.size,
            last=True,
        )
    return frags


def video_info(
    codec: str = "avc1.64001f", *, width: int = 1280, height: int = 720, **extra: Any
) -> TrackInfo:
    fields: dict[str, Any] = {
        "track_id": 1,
        "handler": HANDLER_VIDEO,
        "sample_entry": codec.split(".", maxsplit=1)[0],
        "codec": codec,
        "timescale": 90_000,
        "width": width,
        "height": height,
        "par": (1, 1),
    }
    fields.update(extra)
    return TrackInfo(**fields)


def audio_info(language: str | None = "eng", **extra: Any) -> TrackInfo:
    fields: dict[str, Any] = {
        "track_id": 2,
        "handler": HANDLER_AUDIO,
        "sample_entry": "mp4a",
        "codec": "mp4a.40.2",
        "timescale": 48_000,
        "language": language,
        "sample_rate": 48_000,
        "channels": 2,
    }
    fields.update(extra)
    return TrackInfo(**fields)


# --- the channel of the golden files --------------------------------------------------------------

VIDEO_START = 3600 * 90_000  # media time: an hour after the epoch -> segment numbers from 1800
AUDIO_START = 3600 * 48_000
AAC_FRAGMENT = 47 * 1024  # 47 AAC frames: 1.00267 s, so a segment is 2.00533 s


def video_720(*, ended: bool = False) -> TrackView:
    """1 s fragments (25 fps), 2 s segments, and a 4 s hole where the encoder dropped out."""
    frags = run(VIDEO_START, 6, duration_ticks=90_000, sample_count=25, size=180_000)
    frags += run(
        VIDEO_START + 10 * 90_000, 4, duration_ticks=90_000, sample_count=25, size=180_000, last=ended
    )
    if not ended:  # the segment in progress: listed nowhere yet
        frags += run(VIDEO_START + 14 * 90_000, 1, duration_ticks=90_000, sample_count=25, size=180_000)
    return view("v720", video_info(role="main"), timeline(frags, target_ticks=180_000))


def video_360() -> TrackView:
    frags = run(VIDEO_START, 14, duration_ticks=90_000, sample_count=25, size=60_000)
    info = video_info("avc1.4d401e", width=640, height=360, bitrate=400_000, role="main")
    return view("v360", info, timeline(frags, target_ticks=180_000))


def audio(name: str, language: str | None, *, ended: bool = False, **extra: Any) -> TrackView:
    """12 AAC fragments of 47 frames: 5 complete 2.00533 s segments and one in progress (or 6, ended)."""
    frags = run(AUDIO_START, 12, duration_ticks=AAC_FRAGMENT, sample_count=47, size=16_000, last=ended)
    return view(name, audio_info(language, **extra), timeline(frags, target_ticks=96_000))


def video(
    name: str, *, frames: int = 25, frame_ticks: int = 3600, size: int = 100_000, **extra: Any
) -> TrackView:
    """Three 1 s (by default) fragments from time 0: one complete segment, one in progress."""
    info = video_info(**extra)
    frags = run(0, 3, duration_ticks=frames * frame_ticks, sample_count=frames, size=size)
    return view(name, info, timeline(frags, target_ticks=2 * info.timescale))


def single_segment(duration_ticks: int, **extra: Any) -> TrackView:
    """One video segment of the given length, ended."""
    frags = [Frag(decode_time=0, duration_ticks=duration_ticks, sample_count=1, size=1, last=True)]
    return view("v", video_info(**extra), timeline(frags, target_ticks=180_000))


def channel(*tracks: TrackView, config: ChannelConfig | None = None) -> ChannelView:
    return ChannelView(
        name="demo",
        config=config or ChannelConfig(name="demo"),
        tracks=tracks,
        epoch_ms=EPOCH_MS,
        now_ms=NOW_MS,
    )


def golden_channel() -> ChannelView:
    return channel(video_720(), video_360(), audio("aud_en", "eng", role="main"), audio("aud_fr", "fra"))


# --- random streams -------------------------------------------------------------------------------

TIMESCALES = st.sampled_from([1000, 44_100, 48_000, 90_000, 30_000])


@st.composite
def tracks(draw: st.DrawFn) -> TrackView:
    """Random fragment durations (all independent) and occasional gaps, placed the way ingest does."""
    timescale = draw(TIMESCALES)
    target = 2 * timescale
    time = draw(st.integers(min_value=0, max_value=10**6)) * timescale
    frags = []
    for _ in range(draw(st.integers(min_value=1, max_value=40))):
        duration = draw(st.integers(min_value=1, max_value=3 * target))
        frags.append(Frag(decode_time=time, duration_ticks=duration, sample_count=1, size=1000))
        time += duration + draw(st.sampled_from([0, 0, 0, 0, 1, timescale // 3, 5 * timescale]))
    tail = frags[-1]
    frags[-1] = Frag(
        decode_time=tail.decode_time, duration_ticks=tail.duration_ticks, sample_count=1, size=1, last=True
    )
    return view("t", video_info(timescale=timescale), timeline(frags, target_ticks=target))


# --- golden files ---------------------------------------------------------------------------------

GOLDEN = Path(__file__).parent / "golden"
REGENERATE = "HEADWATER_REGEN_GOLDEN"  # set to 1 to rewrite the golden files, then review the diff


def assert_golden(name: str, text: str) -> None:
    """Byte-for-byte comparison with ``golden/<name>``."""
    path = GOLDEN / name
    if os.environ.get(REGENERATE) == "1":
        path.write_bytes(text.encode())
    assert text.encode() == path.read_bytes(), f"{name} differs from its golden file"
