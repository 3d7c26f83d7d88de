"""Chunked delivery of a segment while it is being written: the CMAF chunked-transfer half of LL-DASH.

A GET for a segment in progress, on a track whose segments come in several fragments, is answered at
once with a 200, ``Transfer-Encoding: chunked`` and no ``Content-Length``; every committed fragment
(CMAF chunk: ``[styp] moof mdat``) is sent whole, in order, as soon as it is committed, and the response
ends when the segment is complete (the next segment started, or the track ended). Its body is then byte
for byte the complete segment a later GET returns: fragments are committed whole and only committed ones
are sent, never a slice of one.

Bounded: with no new fragment for ``idle_timeout_s`` (two target durations) the response is aborted:
the app returns without the final body message, and the server closes the connection without the
terminating zero-length chunk (uvicorn logs "ASGI callable returned without completing response").
HTTP/1.1 makes a chunked body without its last chunk an incomplete message (RFC 9112 7.1), so
neither a client nor a cache takes the truncated body for the segment. The same happens if the
stored segment changes under the response (a "slat" filler replaced), which would break byte
equality with the complete segment.

Caching: the response carries the immutable segments' ``Cache-Control`` (once complete it *is* that
object, so a CDN can collapse concurrent requests onto one origin fetch and keep the result) but no
``ETag`` or ``Last-Modified``: without a validator, a cache can never complete a truncated copy with
a Range request nor revalidate one (RFC 9111 3.3-3.4), so an aborted response is never reused.

The segment right after the track's last fragment (not begun) may be asked for early; that request
waits up to ``wait_s`` (one target) for its first fragment before streaming, else it is answered
"not yet available" (404, max-age=1) like any segment ahead of the live edge.

``plan`` is pure; ``segment_chunks`` and ``in_progress`` read the store and wait on the signal;
``send_chunks`` is the raw-ASGI edge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from services.packager.errors import NotYetAvailable, PackagerError
from services.shared.asgi import Headers, Receive, Send
from services.shared.errors import HeadwaterError
from services.shared.timeline import FragmentEntry, Segment, TrackTimeline

log = logging.getLogger("headwater.packager")
CHUNKED = (b"transfer-encoding", b"chunked")
IDLE_TARGETS = 2  # target durations without a new fragment after which a response is aborted
RECENT_FRAGMENTS = 32  # fragments before a segment that tell whether its track is chunked (several segments)


class StreamAborted(PackagerError):
    """A segment's progressive response cannot go on; it ends without its terminating chunk."""


class FragmentSource(Protocol):
    """The part of the store this module reads (``Store`` has it)."""

    async def get_timeline(self, channel: str, track: str) -> TrackTimeline: ...

    async def get_fragment(self, channel: str, track: str, decode_time: int) -> bytes | None: ...


class CommitSignal(Protocol):
    """The part of the commit signal this module waits on (``Signal`` has it)."""

    def version(self, channel: str) -> int: ...

    async def wait(self, channel: str, timeout_s: float) -> bool: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """What a progressive response does next."""

    fragments: tuple[FragmentEntry, ...]  # committed and not sent yet, in decode order
    done: bool  # the segment is complete: the response ends once ``fragments`` are sent


def plan(segment: Segment | None, sent: tuple[FragmentEntry, ...]) -> Step:
    """The next step for a response that has sent ``sent``, given the segment as stored now."""
    if segment is None:
        raise StreamAborted("the segment is no longer in the timeline")
    if segment.fragments[: len(sent)] != sent:
        raise StreamAborted(f"segment {segment.start_time} changed while it was being sent")
    return Step(fragments=segment.fragments[len(sent) :], done=segment.complete)


@dataclass(frozen=True, slots=True, kw_only=True)
class SegmentFeed:
    """One segment of one track, read from the store, woken by the channel's commit signal."""

    store: FragmentSource
    signal: CommitSignal
    channel: str
    track: str
    start_time: int  # the segment's first decode time (its URL's ``$Time$``)
    idle_timeout_s: float  # abort when no fragment was committed for this long
    clock_s: Callable[[], float] = time.monotonic

    async def timeline(self) -> TrackTimeline:
        return await self.store.get_timeline(self.channel, self.track)

    async def wait(self, version: int, deadline_s: float) -> None:
        """Until the next commit after ``version`` (at once if there was one), or ``deadline_s``."""
        remaining = deadline_s - self.clock_s()
        if remaining > 0 and self.signal.version(self.channel) == version:
            await self.signal.wait(self.channel, remaining)


def chunked(timeline: TrackTimeline, segment_start: int) -> bool:
    """Whether the track's segments come in several fragments (CMAF chunks): the segment at
    ``segment_start`` has two already, or one of the segments just before it had (the LL-DASH MPD's
    condition; one segment cut short by a lost chunk, or a hole before this one, does not matter)."""
    if any(entry.part_number >= 1 for entry in timeline.preceding(segment_start, RECENT_FRAGMENTS)):
        return True
    segment = timeline.segment_at(segment_start)
    return segment is not None and len(segment.fragments) >= 2


class Candidacy(Enum):
    """What the segment at a start time is to this module."""

    NO = "no"  # complete, not a segment, or its track is unchunked: the regular segment path answers
    IN_PROGRESS = "in_progress"  # a chunked segment being written: stream it
    NEXT = "next"  # the chunked track's next segment, not begun: wait for its first fragment


def candidacy(timeline: TrackTimeline, start_time: int) -> Candidacy:
    segment = timeline.segment_at(start_time)
    if segment is not None:
        streamed = not segment.complete and chunked(timeline, start_time)
        return Candidacy.IN_PROGRESS if streamed else Candidacy.NO
    last = timeline.last
    if last is None or last.last or last.end_time != start_time or not chunked(timeline, last.segment_start):
        return Candidacy.NO
    return Candidacy.NEXT


async def in_progress(feed: SegmentFeed, *, wait_s: float) -> bool:
    """Whether the segment at ``feed.start_time`` is being written in chunks, so it is streamed.

    False when it is complete, is not a segment, or its track is not chunked (the regular segment
    path answers: 200, or 404 for one not available yet). A segment of a chunked track that starts
    where the track's last fragment ends is waited for up to ``wait_s``; ``NotYetAvailable`` if it
    has not begun by then.
    """
    deadline = feed.clock_s() + wait_s
    while True:
        version = feed.signal.version(feed.channel)
        found = candidacy(await feed.timeline(), feed.start_time)
        if found is not Candidacy.NEXT:
            return found is Candidacy.IN_PROGRESS
        if feed.clock_s() >= deadline:
            raise NotYetAvailable(f"segment {feed.start_time} of {feed.track} has not started yet")
        await feed.wait(version, deadline)


async def segment_chunks(feed: SegmentFeed) -> AsyncIterator[bytes]:
    """The segment's fragments, each as soon as it is committed, until the segment is complete.

    Raises ``StreamAborted`` (after whatever was yielded) when no fragment arrives for
    ``feed.idle_timeout_s``, or when a fragment's bytes are gone or differ from its entry.
    """
    sent: tuple[FragmentEntry, ...] = ()
    deadline = feed.clock_s() + feed.idle_timeout_s
    while True:
        version = feed.signal.version(feed.channel)
        step = plan((await feed.timeline()).segment_at(feed.start_time), sent)
        for entry in step.fragments:
            data = await feed.store.get_fragment(feed.channel, feed.track, entry.decode_time)
            if data is None or len(data) != entry.size:
                raise StreamAborted(f"fragment {entry.decode_time} of {feed.track} is gone or changed")
            yield data
            sent += (entry,)
        if step.done:
            return
        if step.fragments:
            deadline = feed.clock_s() + feed.idle_timeout_s
        elif feed.clock_s() >= deadline:
            raise StreamAborted(
                f"segment {feed.start_time} of {feed.track}: no new fragment for {feed.idle_timeout_s:g} s"
            )
        await feed.wait(version, deadline)


async def send_chunks(
    send: Send, receive: Receive, headers: Headers, chunks: AsyncIterator[bytes], *, head: bool
) -> None:
    """A 200 whose body is ``chunks`` as they come. Completes the response when they end; returns
    without completing it (the server then drops the connection: no terminating chunk) when they
    abort or the client goes away. HEAD: the headers only."""
    start = {"type": "http.response.start", "status": 200, "headers": [*headers, CHUNKED]}
    await send(start)
    if head:
        await send({"type": "http.response.body", "body": b""})
        return
    pump = asyncio.ensure_future(_pump(send, chunks))
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait((pump, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (pump, gone):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _pump(send: Send, chunks: AsyncIterator[bytes]) -> None:
    try:
        async for data in chunks:
            await send({"type": "http.response.body", "body": data, "more_body": True})
    except HeadwaterError as exc:  # StreamAborted, or the store failing mid-response
        log.warning("progressive segment aborted: %s", exc)
        return
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
