"""The in-memory index every store serves its hot reads from: channels, epochs, tracks, timelines.

Bookkeeping only, no I/O. A store writes durably first and only then records the result here, so the
index never shows what storage does not hold (the commit rule of ``base.py``). The duplicate and
filler rules of ``commit_fragment`` live here too, so every store applies them the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections.abc import AsyncIterator, Hashable, Iterator
from enum import Enum

from services.shared.channels import ChannelConfig, TrackRecord
from services.shared.store.base import CommitResult
from services.shared.timeline import FragmentEntry, TrackTimeline

TrackKey = tuple[str, str]  # (channel, track)


class Learned(Enum):
    """What ``StoreIndex.learn`` made of an entry another process announced."""

    APPLIED = "applied"  # recorded: it follows the known last entry (or replaced filler)
    KNOWN = "known"  # nothing to do: the index has it already
    GAP = "gap"  # does not follow on (lost or reordered announcements): reload the track
    UNKNOWN_TRACK = "unknown_track"  # the track record is not loaded: reload the channel's tracks
    UNKNOWN_CHANNEL = "unknown_channel"  # not loaded here: discovered when first asked for


class StoreIndex:
    """Channels, epochs, tracks and one ``TrackTimeline`` per (channel, track)."""

    __slots__ = ("_channels", "_epochs", "_timelines", "_tracks")

    def __init__(self) -> None:
        self._channels: dict[str, ChannelConfig] = {}
        self._epochs: dict[str, int] = {}
        self._tracks: dict[str, dict[str, TrackRecord]] = {}
        self._timelines: dict[TrackKey, TrackTimeline] = {}

    # channels and epochs --------------------------------------------------------------------------

    def put_channel(self, config: ChannelConfig) -> None:
        self._channels[config.name] = config

    def get_channel(self, name: str) -> ChannelConfig | None:
        return self._channels.get(name)

    def list_channels(self) -> list[ChannelConfig]:
        return [self._channels[name] for name in sorted(self._channels)]

    def drop_channel(self, name: str) -> None:
        """Forget the channel with its epoch, tracks and timelines."""
        self._channels.pop(name, None)
        self._epochs.pop(name, None)
        self._tracks.pop(name, None)
        for key in [k for k in self._timelines if k[0] == name]:
            del self._timelines[key]

    def get_epoch(self, channel: str) -> int | None:
        return self._epochs.get(channel)

    def set_epoch(self, channel: str, epoch_ms: int) -> int:
        """Record the epoch unless one is known already; return the one in force."""
        return self._epochs.setdefault(channel, epoch_ms)

    def put_epoch(self, channel: str, epoch_ms: int | None) -> None:
        """Take the epoch storage holds (None: none), replacing the known one (a re-created channel)."""
        if epoch_ms is None:
            self._epochs.pop(channel, None)
        else:
            self._epochs[channel] = epoch_ms

    # tracks ---------------------------------------------------------------------------------------

    def put_track(self, record: TrackRecord) -> None:
        self._tracks.setdefault(record.channel, {})[record.name] = record

    def get_track(self, channel: str, name: str) -> TrackRecord | None:
        return self._tracks.get(channel, {}).get(name)

    def get_tracks(self, channel: str) -> list[TrackRecord]:
        tracks = self._tracks.get(channel, {})
        return [tracks[name] for name in sorted(tracks)]

    def drop_track(self, channel: str, track: str) -> None:
        """Forget one track with its timeline."""
        self._tracks.get(channel, {}).pop(track, None)
        self._timelines.pop((channel, track), None)

    def set_tracks(self, channel: str, records: list[TrackRecord]) -> None:
        """Make ``records`` the channel's tracks (as reloaded from storage); others go with their timeline."""
        names = {r.name for r in records}
        for name in [n for n in self._tracks.get(channel, {}) if n not in names]:
            self.drop_track(channel, name)
        for record in records:
            self.put_track(record)

    # timelines ------------------------------------------------------------------------------------

    def timeline(self, channel: str, track: str) -> TrackTimeline:
        """The track's timeline, created empty on first use."""
        key = (channel, track)
        timeline = self._timelines.get(key)
        if timeline is None:
            timeline = self._timelines[key] = TrackTimeline()
        return timeline

    def find_timeline(self, channel: str, track: str) -> TrackTimeline | None:
        return self._timelines.get((channel, track))

    def timelines(self) -> Iterator[tuple[TrackKey, TrackTimeline]]:
        return iter(list(self._timelines.items()))

    def classify(self, channel: str, track: str, entry: FragmentEntry) -> CommitResult:
        """What committing ``entry`` would do: nothing (DUPLICATE), append, or replace filler."""
        timeline = self._timelines.get((channel, track))
        existing = None if timeline is None else timeline.find(entry.decode_time)
        if existing is None:
            return CommitResult.STORED
        if existing.filler and not entry.filler:
            return CommitResult.REPLACED_FILLER
        return CommitResult.DUPLICATE

    def apply(self, channel: str, track: str, entry: FragmentEntry) -> CommitResult:
        """Record a durably written ``entry``; classified again, as a concurrent commit may have won.

        An entry older than the last one is inserted in its place: with several ingest nodes, a
        later fragment of the track may have been committed (and learned) first."""
        result = self.classify(channel, track, entry)
        if result is CommitResult.STORED:
            timeline = self.timeline(channel, track)
            last = timeline.last
            if last is None or entry.decode_time > last.decode_time:
                timeline.append(entry)
            else:
                timeline.insert(entry)
        elif result is CommitResult.REPLACED_FILLER:
            self.timeline(channel, track).replace(entry)
        return result

    def learn(self, channel: str, track: str, entry: FragmentEntry) -> Learned:
        """Record an entry another process committed (durable already), if it follows on.

        Only an entry that continues the known timeline without a gap (or replaces filler) is
        recorded here: anything else may mean missed entries, and the caller reloads from storage.
        """
        if self._channels.get(channel) is None and not self._tracks.get(channel):
            return Learned.UNKNOWN_CHANNEL
        if self.get_track(channel, track) is None:
            return Learned.UNKNOWN_TRACK
        result = self.classify(channel, track, entry)
        if result is CommitResult.DUPLICATE:
            return Learned.KNOWN
        timeline = self.timeline(channel, track)
        if result is CommitResult.REPLACED_FILLER:
            timeline.replace(entry)
            return Learned.APPLIED
        last = timeline.last
        if last is None or entry.decode_time != last.end_time:
            return Learned.GAP
        timeline.append(entry)
        return Learned.APPLIED


class KeyedLocks:
    """One asyncio lock per key, held only while in use: serializes commits of the same object."""

    __slots__ = ("_locks",)

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class ExpiryQueue:
    """When each timeline entry's TTL runs out, for stores whose backend expires rows by itself.

    Entries are queued by expiry time; a later commit at the same decode time (a real fragment
    replacing filler) supersedes the earlier expiry, which is then skipped when it comes up.
    """

    __slots__ = ("_current", "_heap")

    def __init__(self) -> None:
        self._heap: list[tuple[int, str, str, int]] = []
        self._current: dict[tuple[str, str, int], int] = {}

    def __len__(self) -> int:
        return len(self._current)

    def add(self, channel: str, track: str, decode_time: int, expires_ms: int) -> None:
        self._current[(channel, track, decode_time)] = expires_ms
        heapq.heappush(self._heap, (expires_ms, channel, track, decode_time))

    def pop_expired(self, now_ms: int) -> dict[TrackKey, int]:
        """Per track, the newest decode time whose entry has expired by ``now_ms``."""
        newest: dict[TrackKey, int] = {}
        while self._heap and self._heap[0][0] <= now_ms:
            expires_ms, channel, track, decode_time = heapq.heappop(self._heap)
            if self._current.get((channel, track, decode_time)) != expires_ms:
                continue  # superseded by a later commit, or the track was dropped
            del self._current[(channel, track, decode_time)]
            key = (channel, track)
            newest[key] = max(decode_time, newest.get(key, decode_time))
        return newest

    def drop(self, channel: str, track: str | None = None) -> None:
        """Forget a track's (or, without ``track``, a whole channel's) pending expiries."""
        for key in [k for k in self._current if k[0] == channel and track in (None, k[1])]:
            del self._current[key]
