"""Progressive (chunked) delivery of a segment in progress, driven by a fake clock and commit signal.

``Script`` plays an encoder: fragments become committed at scripted (fake) times, and only while
someone waits on the signal, so every test runs instantly and deterministically.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from services.packager import progressive
from services.packager.errors import NotYetAvailable
from services.packager.progressive import SegmentFeed, StreamAborted, plan
from services.shared.timeline import FragmentEntry, Segment, TrackTimeline, place_fragment

CHUNK = 45_000  # 0.5 s at 90 kHz
TARGET = 180_000  # 2 s segments: a keyframe every fourth chunk


def chunk_bytes(k: int) -> bytes:
    return bytes([k % 256]) * (1000 + k)


@dataclass
class Script:
    """A fake store + signal + clock: ``at[s]`` lists chunk numbers committed at fake time ``s``."""

    at: dict[float, list[int]] = field(default_factory=dict)
    now_s: float = 0.0
    timeline: TrackTimeline = field(default_factory=TrackTimeline)
    fragments: dict[int, bytes] = field(default_factory=dict)
    notified: int = 0
    last: int | None = None  # chunk number that carries lmsg

    def commit(self, k: int) -> None:
        placement = place_fragment(
            self.timeline.last, decode_time=k * CHUNK, duration_ticks=CHUNK, independent=k % 4 == 0,
            target_ticks=TARGET,
        )  # fmt: skip
        data = chunk_bytes(k)
        entry = FragmentEntry(
            decode_time=k * CHUNK, duration_ticks=CHUNK, sample_count=12, independent=k % 4 == 0,
            segment_number=placement.segment_number, segment_start=placement.segment_start,
            part_number=placement.part_number, size=len(data), ingest_time_ms=int(self.now_s * 1000),
            last=k == self.last,
        )  # fmt: skip
        self.fragments[entry.decode_time] = data
        self.timeline.append(entry)
        self.notified += 1

    # FragmentSource
    async def get_timeline(self, channel: str, track: str) -> TrackTimeline:
        return self.timeline

    async def get_fragment(self, channel: str, track: str, decode_time: int) -> bytes | None:
        return self.fragments.get(decode_time)

    # CommitSignal
    def version(self, channel: str) -> int:
        return self.notified

    async def wait(self, channel: str, timeout_s: float) -> bool:
        due = sorted(t for t in self.at if t <= self.now_s + timeout_s)
        if not due:
            self.now_s += timeout_s
            return False
        self.now_s = max(self.now_s, due[0])
        for k in self.at.pop(due[0]):
            self.commit(k)
        return True

    def clock(self) -> float:
        return self.now_s

    def feed(self, start_time: int, *, idle_timeout_s: float = 4.0) -> SegmentFeed:
        return SegmentFeed(
            store=self, signal=self, channel="ch", track="v", start_time=start_time,
            idle_timeout_s=idle_timeout_s, clock_s=self.clock,
        )  # fmt: skip


async def drain(chunks: AsyncIterator[bytes]) -> list[bytes]:
    return [data async for data in chunks]


# --- plan -----------------------------------------------------------------------------------------


def test_plan_sends_what_is_new_and_ends_with_the_segment() -> None:
    script = Script()
    for k in range(6):
        script.commit(k)
    segment = script.timeline.segment_at(4 * CHUNK)
    assert segment is not None and not segment.complete
    first = plan(segment, ())
    assert [f.decode_time for f in first.fragments] == [4 * CHUNK, 5 * CHUNK] and not first.done
    assert plan(segment, first.fragments).fragments == ()
    complete = script.timeline.segment_at(0)
    assert complete is not None and plan(complete, complete.fragments[:3]).done


def test_plan_aborts_when_the_segment_changed_or_left() -> None:
    script = Script()
    for k in range(6):
        script.commit(k)
    segment = script.timeline.segment_at(4 * CHUNK)
    assert segment is not None
    with pytest.raises(StreamAborted):
        plan(None, ())
    other = Segment(number=segment.number, fragments=segment.fragments[1:], complete=False)
    with pytest.raises(StreamAborted):
        plan(other, segment.fragments[:1])


# --- segment_chunks -------------------------------------------------------------------------------


async def test_each_fragment_is_sent_when_committed_and_the_response_ends_with_the_segment() -> None:
    script = Script(at={0.5: [5], 1.0: [6], 1.5: [7], 2.0: [8]})
    for k in range(5):
        script.commit(k)  # segment 0 complete, segment 1 has chunk 4
    chunks = progressive.segment_chunks(script.feed(4 * CHUNK))
    assert await anext(chunks) == chunk_bytes(4)
    assert script.now_s == 0 and len(script.timeline) == 5  # sent before the next one was committed
    assert await anext(chunks) == chunk_bytes(5)
    assert script.now_s == 0.5
    assert await drain(chunks) == [chunk_bytes(6), chunk_bytes(7)]  # ends once chunk 8 starts a segment
    assert script.now_s == 2.0


async def test_a_segment_in_progress_streams_byte_for_byte_what_it_becomes() -> None:
    script = Script(at={0.5 * i: [4 + i] for i in range(1, 6)})
    for k in range(5):
        script.commit(k)
    body = b"".join(await drain(progressive.segment_chunks(script.feed(4 * CHUNK))))
    segment = script.timeline.segment_at(4 * CHUNK)
    assert segment is not None and segment.complete
    assert body == b"".join(script.fragments[f.decode_time] for f in segment.fragments)


async def test_the_track_ending_ends_the_response() -> None:
    script = Script(at={0.5: [5]}, last=5)
    for k in range(5):
        script.commit(k)
    assert await drain(progressive.segment_chunks(script.feed(4 * CHUNK))) == [chunk_bytes(4), chunk_bytes(5)]


async def test_no_new_fragment_for_the_idle_timeout_aborts_after_what_was_sent() -> None:
    script = Script(at={0.5: [5], 9.0: [6]})
    for k in range(5):
        script.commit(k)
    chunks = progressive.segment_chunks(script.feed(4 * CHUNK, idle_timeout_s=4.0))
    assert [await anext(chunks), await anext(chunks)] == [chunk_bytes(4), chunk_bytes(5)]
    with pytest.raises(StreamAborted, match="no new fragment for 4 s"):
        await anext(chunks)
    assert script.now_s == pytest.approx(4.5)  # 4 s after the last fragment, not after the request


async def test_a_fragment_whose_bytes_are_gone_aborts() -> None:
    script = Script(at={0.5: [5]})
    for k in range(5):
        script.commit(k)
    del script.fragments[4 * CHUNK]
    with pytest.raises(StreamAborted, match="gone or changed"):
        await drain(progressive.segment_chunks(script.feed(4 * CHUNK)))


# --- in_progress ----------------------------------------------------------------------------------


async def test_only_a_chunked_segment_in_progress_is_streamed() -> None:
    script = Script()
    for k in range(6):
        script.commit(k)
    assert await progressive.in_progress(script.feed(4 * CHUNK), wait_s=2) is True
    assert await progressive.in_progress(script.feed(0), wait_s=2) is False  # complete
    assert await progressive.in_progress(script.feed(CHUNK), wait_s=2) is False  # not a segment start
    assert await progressive.in_progress(script.feed(40 * CHUNK), wait_s=2) is False  # far ahead
    assert script.now_s == 0  # none of them waited


async def test_a_segment_after_a_hole_is_streamed() -> None:
    """Chunks 9-11 never came: segment 8 ended after one chunk, and segment 12 (one chunk so far)
    starts after the hole. The track is still chunked (its earlier segments were), so segment 12
    streams, as the LL-DASH MPD that lists it in progress promises."""
    script = Script()
    for k in [*range(9), 12]:
        script.commit(k)
    assert script.timeline.segment_at(12 * CHUNK) is not None
    assert await progressive.in_progress(script.feed(12 * CHUNK), wait_s=2) is True
    assert script.now_s == 0


async def test_an_unchunked_track_is_never_streamed() -> None:
    script = Script()
    whole = TrackTimeline()
    for k in range(3):  # one 2 s fragment per segment
        placement = place_fragment(
            whole.last, decode_time=k * TARGET, duration_ticks=TARGET, independent=True, target_ticks=TARGET
        )
        whole.append(
            FragmentEntry(
                decode_time=k * TARGET, duration_ticks=TARGET, sample_count=50, independent=True,
                segment_number=placement.segment_number, segment_start=placement.segment_start,
                part_number=placement.part_number, size=1, ingest_time_ms=0,
            )
        )  # fmt: skip
    script.timeline = whole
    assert await progressive.in_progress(script.feed(2 * TARGET), wait_s=2) is False  # in progress
    assert await progressive.in_progress(script.feed(3 * TARGET), wait_s=2) is False  # next: 404 at once
    assert script.now_s == 0


async def test_the_next_segment_is_waited_for_up_to_the_limit() -> None:
    script = Script(at={0.4: [8]})
    for k in range(8):
        script.commit(k)  # segment 1 (chunks 4-7) is in progress until chunk 8 starts segment 2
    assert await progressive.in_progress(script.feed(8 * CHUNK), wait_s=2) is True
    assert script.now_s == pytest.approx(0.4)
    late = Script(at={2.5: [8]})
    for k in range(8):
        late.commit(k)
    with pytest.raises(NotYetAvailable, match="has not started"):
        await progressive.in_progress(late.feed(8 * CHUNK), wait_s=2)
    assert late.now_s == pytest.approx(2.0)


async def test_the_next_fragment_not_starting_a_segment_is_not_one() -> None:
    script = Script(at={0.5: [6]})
    for k in range(6):
        script.commit(k)  # chunk 6 continues segment 1
    assert await progressive.in_progress(script.feed(6 * CHUNK), wait_s=2) is False


def test_candidacy_decides_without_waiting() -> None:
    script = Script()
    for k in range(8):
        script.commit(k)
    timeline = script.timeline
    assert progressive.candidacy(timeline, 4 * CHUNK) is progressive.Candidacy.IN_PROGRESS
    assert progressive.candidacy(timeline, 8 * CHUNK) is progressive.Candidacy.NEXT
    for start in (0, CHUNK, 12 * CHUNK):  # complete, not a segment start, far ahead
        assert progressive.candidacy(timeline, start) is progressive.Candidacy.NO
