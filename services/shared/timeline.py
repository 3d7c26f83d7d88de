"""A track's timeline: committed fragments, grouped into segments. Pure; no I/O.

Segmentation and numbering are decided once, when a fragment is committed, from the previous entry
alone (``place_fragment``), and persisted with the entry. So every packager process, before or after a
restart, derives the same segments and media sequence numbers from the same stored timeline.

Rule: a fragment starts a new segment when it begins with a sync sample and either closing the segment
here lands nearer the target duration than letting it grow by this fragment would (``elapsed >=
target - duration / 2``), or the fragment does not follow on without a gap. So 2 s GOPs give 2 s
segments, 1.92 s GOPs 1.92 s ones, and per-frame audio fragments close at the frame nearest 2 s. The
first segment of a track is numbered on the target-duration grid (``decode_time // target``), so
renditions that start together get the same numbers.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class FragmentEntry:
    """One committed CMAF fragment (chunk) of a track, as the timeline index records it."""

    decode_time: int  # tfdt.baseMediaDecodeTime (ticks)
    duration_ticks: int  # sum of trun sample durations
    sample_count: int
    independent: bool  # starts with a sync sample (EXT-X-PART INDEPENDENT=YES)
    segment_number: int  # media sequence number of the segment it belongs to
    segment_start: int  # decode_time of that segment's first fragment
    part_number: int  # 0-based position of this fragment within its segment
    size: int  # bytes
    ingest_time_ms: int  # wall clock when it became visible (Last-Modified)
    last: bool = False  # styp carried "lmsg"
    filler: bool = False  # styp carried "slat"

    @property
    def end_time(self) -> int:
        return self.decode_time + self.duration_ticks


@dataclass(frozen=True, slots=True, kw_only=True)
class Placement:
    segment_number: int
    segment_start: int
    part_number: int


def place_fragment(
    previous: FragmentEntry | None,
    *,
    decode_time: int,
    duration_ticks: int,
    independent: bool,
    target_ticks: int,
) -> Placement:
    """Where a new fragment goes: which segment (numbered) and which part of it."""
    if previous is None:
        return Placement(segment_number=decode_time // target_ticks, segment_start=decode_time, part_number=0)
    elapsed = decode_time - previous.segment_start
    contiguous = decode_time == previous.end_time
    full = 2 * elapsed >= 2 * target_ticks - duration_ticks
    if independent and (full or not contiguous):
        return Placement(segment_number=previous.segment_number + 1, segment_start=decode_time, part_number=0)
    return Placement(
        segment_number=previous.segment_number,
        segment_start=previous.segment_start,
        part_number=previous.part_number + 1,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    """A media segment: consecutive fragments sharing a segment number."""

    number: int  # media sequence number (EXT-X-MEDIA-SEQUENCE arithmetic)
    fragments: tuple[FragmentEntry, ...]
    complete: bool  # a later segment has started, or the track ended in this one

    @property
    def start_time(self) -> int:
        return self.fragments[0].decode_time

    @property
    def duration_ticks(self) -> int:
        return self.fragments[-1].end_time - self.fragments[0].decode_time

    @property
    def end_time(self) -> int:
        return self.fragments[-1].end_time

    @property
    def size(self) -> int:
        return sum(f.size for f in self.fragments)

    @property
    def ingest_time_ms(self) -> int:
        return self.fragments[-1].ingest_time_ms

    @property
    def last(self) -> bool:
        return self.fragments[-1].last

    @property
    def filler(self) -> bool:
        return all(f.filler for f in self.fragments)


class TrackTimeline:
    """In-memory index of one track's committed fragments, ordered by decode time.

    Appends must be in decode-time order (ingest validates that); lookups are by bisection.
    """

    __slots__ = ("_entries", "_starts", "version")

    def __init__(self, entries: list[FragmentEntry] | None = None) -> None:
        self._entries: list[FragmentEntry] = []
        self._starts: list[int] = []
        self.version = 0  # bumps on every change; keys render caches
        for entry in entries or ():
            self.append(entry)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def last(self) -> FragmentEntry | None:
        return self._entries[-1] if self._entries else None

    @property
    def first(self) -> FragmentEntry | None:
        return self._entries[0] if self._entries else None

    @property
    def ended(self) -> bool:
        return bool(self._entries) and self._entries[-1].last

    def append(self, entry: FragmentEntry) -> None:
        if self._starts and entry.decode_time <= self._starts[-1]:
            raise ValueError(f"decode_time {entry.decode_time} does not follow {self._starts[-1]}")
        self._entries.append(entry)
        self._starts.append(entry.decode_time)
        self.version += 1

    def insert(self, entry: FragmentEntry) -> None:
        """Put ``entry`` in its decode-time place, which may be before the last entry.

        For entries that another process committed out of order (two ingest nodes committing
        adjacent fragments concurrently): learned late, they still belong where their time says.
        """
        i = bisect.bisect_left(self._starts, entry.decode_time)
        if i < len(self._starts) and self._starts[i] == entry.decode_time:
            raise ValueError(f"an entry at decode_time {entry.decode_time} exists already")
        self._entries.insert(i, entry)
        self._starts.insert(i, entry.decode_time)
        self.version += 1

    def replace(self, entry: FragmentEntry) -> None:
        """Swap the entry at ``entry.decode_time`` (a real fragment replacing filler)."""
        i = bisect.bisect_left(self._starts, entry.decode_time)
        if i >= len(self._starts) or self._starts[i] != entry.decode_time:
            raise ValueError(f"no entry at decode_time {entry.decode_time}")
        self._entries[i] = entry
        self.version += 1

    def find(self, decode_time: int) -> FragmentEntry | None:
        i = bisect.bisect_left(self._starts, decode_time)
        if i < len(self._starts) and self._starts[i] == decode_time:
            return self._entries[i]
        return None

    def overlapping(self, start: int, end: int) -> tuple[FragmentEntry, ...]:
        """Entries that overlap the decode interval [start, end), in order (found by bisection)."""
        i = max(0, bisect.bisect_right(self._starts, start) - 1)
        if i < len(self._entries) and self._entries[i].end_time <= start:
            i += 1
        j = bisect.bisect_left(self._starts, end)
        return tuple(self._entries[i:j]) if i < j else ()

    def preceding(self, time: int, count: int) -> tuple[FragmentEntry, ...]:
        """The last ``count`` (or fewer) entries that start before ``time``, in order."""
        j = bisect.bisect_left(self._starts, time)
        return tuple(self._entries[max(0, j - count) : j])

    def drop_before(self, decode_time: int) -> int:
        """Forget entries that end at or before ``decode_time``; returns how many went."""
        i = 0
        while i < len(self._entries) and self._entries[i].end_time <= decode_time:
            i += 1
        if i:
            del self._entries[:i]
            del self._starts[:i]
            self.version += 1
        return i

    def entries(self) -> tuple[FragmentEntry, ...]:
        return tuple(self._entries)

    def segments(self) -> Iterator[Segment]:
        """Segments in order; a segment whose first fragments already expired is left out."""
        group: list[FragmentEntry] = []
        for entry in self._entries:
            if group and entry.segment_number != group[0].segment_number:
                if group[0].part_number == 0:
                    yield Segment(number=group[0].segment_number, fragments=tuple(group), complete=True)
                group = []
            group.append(entry)
        if group and group[0].part_number == 0:
            yield Segment(number=group[0].segment_number, fragments=tuple(group), complete=group[-1].last)

    def segment_at(self, start_time: int) -> Segment | None:
        """The segment that starts at ``start_time`` (complete or not), if any."""
        i = bisect.bisect_left(self._starts, start_time)
        if i >= len(self._starts) or self._starts[i] != start_time:
            return None
        head = self._entries[i]
        if head.part_number != 0:
            return None
        group = [head]
        for entry in self._entries[i + 1 :]:
            if entry.segment_number != head.segment_number:
                return Segment(number=head.segment_number, fragments=tuple(group), complete=True)
            group.append(entry)
        return Segment(number=head.segment_number, fragments=tuple(group), complete=group[-1].last)
