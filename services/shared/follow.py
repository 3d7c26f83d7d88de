"""A node of a cluster: announcing what it commits, and following what the others commit.

``AnnouncingSignal`` is the ``Signal`` of a node with peers: besides waking its own waiters it sends
every commit and change to the packager nodes (``services/shared/announce.py``, which explains why
UDP and why losses are acceptable).

``Follower`` is the receiving side, over a store that can learn other processes' writes
(``FollowedStore``: ``CassandraStore`` and ``WriteThroughStore``). An announced entry that continues
the known timeline is recorded at once and the channel's waiters wake; anything else (a gap, entries
from two ingest nodes out of order, an unknown track, a changed header or config) becomes a reload
from the store, at most one running per track or channel (later requests fold into one rerun), and
the waiters wake when it is done. A commit to a channel not loaded here loads it: every packager
follows every live channel, so failover finds it warm. Its safety net, for datagrams lost without
a trace: every ``tick_s`` the tracks of channels requested in the last ``demand_s`` that heard no
announcement in that tick are refreshed from the store, so a lost commit costs at most about two
ticks; every ``reload_s`` those channels are reloaded whole (config, epoch, tracks), which also
brings config changes to ingest-only nodes, which receive no announcements.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from functools import partial
from typing import Protocol, runtime_checkable

from services.shared.announce import (
    AnnounceSender,
    ChannelChanged,
    Committed,
    Datagram,
    TrackChanged,
)
from services.shared.errors import HeadwaterError
from services.shared.signal import LocalSignal
from services.shared.store.index import Learned
from services.shared.timeline import FragmentEntry

log = logging.getLogger("headwater.follow")


@runtime_checkable
class FollowedStore(Protocol):
    """What a follower needs of the store: learn an entry, reload what it cannot learn."""

    def learn_entry(self, channel: str, track: str, entry: FragmentEntry) -> Learned: ...

    async def refresh_timeline(self, channel: str, track: str) -> int: ...

    async def reload_tracks(self, channel: str) -> None: ...

    async def reload_channel(self, channel: str) -> bool: ...

    def known_tracks(self, channel: str) -> list[str] | None:
        """Tracks of the channel loaded in this process; None if the channel is not (no I/O)."""


class AnnouncingSignal:
    """``Signal``: this process's waiters through ``local``, the packager nodes through ``sender``."""

    def __init__(self, local: LocalSignal, sender: AnnounceSender) -> None:
        self.local = local
        self.sender = sender

    def notify(self, channel: str) -> None:
        self.local.notify(channel)

    def committed(self, channel: str, track: str, entry: FragmentEntry) -> None:
        self.local.notify(channel)
        self.sender.send(Committed(channel=channel, track=track, entry=entry))

    def changed(self, channel: str, track: str | None) -> None:
        self.local.notify(channel)
        if track is None:
            self.sender.send(ChannelChanged(channel=channel))
        else:
            self.sender.send(TrackChanged(channel=channel, track=track))

    def version(self, channel: str) -> int:
        return self.local.version(channel)

    async def wait(self, channel: str, timeout_s: float) -> bool:
        return await self.local.wait(channel, timeout_s)


class Follower:
    """Applies announcements to ``store`` and wakes ``signal``'s waiters; runs the safety net."""

    def __init__(
        self,
        store: FollowedStore,
        signal: LocalSignal,
        *,
        sender: int,
        timelines: bool = True,
        tick_s: float = 0.5,
        demand_s: float = 60.0,
        reload_s: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._signal = signal
        self._sender = sender  # this process's own announcements are skipped
        self._timelines = timelines  # False on ingest-only nodes: only the periodic reload
        self._tick_s = tick_s
        self._demand_s = demand_s
        self._reload_every = max(1, round(reload_s / tick_s))
        self._monotonic = monotonic
        self._demand: dict[str, float] = {}  # channel -> when it was last requested here
        self._heard: dict[tuple[str, str], float] = {}  # track -> when it last followed on
        self._jobs: dict[Hashable, asyncio.Task[None]] = {}
        self._again: set[Hashable] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self.applied = 0  # announced entries recorded without a store read
        self.reloads = 0  # reloads run (announcements that could not be applied, safety net)

    # announcements -------------------------------------------------------------------------------

    def handle(self, datagram: Datagram) -> None:
        """One announcement (on the event loop, from ``announce.listen``)."""
        if datagram.sender == self._sender:
            return
        message = datagram.announcement
        channel = message.channel
        if isinstance(message, Committed):
            learned = self._store.learn_entry(channel, message.track, message.entry)
            if learned is Learned.APPLIED:
                self.applied += 1
                self._heard_from(channel, message.track)
                self._signal.notify(channel)
            elif learned is Learned.KNOWN:
                self._heard_from(channel, message.track)
            elif learned is Learned.GAP:
                self._refresh(channel, message.track)
            elif learned is Learned.UNKNOWN_TRACK:
                self._reload_tracks(channel)
            elif learned is Learned.UNKNOWN_CHANNEL:
                # Load it now, so every packager follows every live channel and one that takes a
                # channel over (its owner died) answers at once, without a cold load from Cassandra.
                self._schedule(("channel", channel), channel, partial(self._store.reload_channel, channel))
        elif self._store.known_tracks(channel) is None:
            return  # a change to a channel not loaded here: discovered as it is when first asked for
        elif isinstance(message, TrackChanged):
            self._reload_tracks(channel)
        else:
            self._schedule(("channel", channel), channel, partial(self._store.reload_channel, channel))

    def touch(self, channel: str) -> None:
        """``channel`` was requested here: keep it fresh (safety net) for ``demand_s``."""
        self._demand[channel] = self._monotonic()

    def _heard_from(self, channel: str, track: str) -> None:
        """The track is known to be current now (kept only for requested channels: bounded)."""
        if channel in self._demand:
            self._heard[(channel, track)] = self._monotonic()

    def _refresh(self, channel: str, track: str) -> None:
        async def refresh() -> None:
            await self._store.refresh_timeline(channel, track)
            self._heard_from(channel, track)

        self._schedule(("timeline", channel, track), channel, refresh)

    def _reload_tracks(self, channel: str) -> None:
        async def reload() -> None:  # a new track's timeline is loaded with it
            await self._store.reload_tracks(channel)

        self._schedule(("tracks", channel), channel, reload)

    def _schedule(self, key: Hashable, channel: str, job: Callable[[], Awaitable[object]]) -> None:
        """Run ``job`` then wake the channel's waiters; if one runs for ``key``, run once more after."""
        if key in self._jobs:
            self._again.add(key)
            return
        self._jobs[key] = asyncio.create_task(self._run(key, channel, job))

    async def _run(self, key: Hashable, channel: str, job: Callable[[], Awaitable[object]]) -> None:
        try:
            while True:
                self._again.discard(key)
                self.reloads += 1
                try:
                    await job()
                except HeadwaterError as exc:  # the store is down: the next tick tries again
                    log.warning("reload %s failed: %s", key, exc)
                self._signal.notify(channel)
                if key not in self._again:
                    return
        finally:
            self._jobs.pop(key, None)

    # safety net ----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._safety_net())

    async def close(self) -> None:
        tasks = [t for t in (self._loop_task, *self._jobs.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loop_task = None

    async def _safety_net(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(self._tick_s)
            ticks += 1
            try:
                self.tick(full=ticks % self._reload_every == 0)
            except Exception:  # never let the safety net die
                log.exception("safety-net refresh failed")

    def tick(self, *, full: bool = False) -> None:
        """One round: refresh quiet tracks of requested channels; ``full``: reload those channels.

        Only channels loaded here are kept fresh: requests for names that do not exist (a 404
        flood) must not turn into periodic store reads; discovery answers those, rate-limited."""
        now = self._monotonic()
        for channel, at in list(self._demand.items()):
            if now - at >= self._demand_s:
                del self._demand[channel]
                for key in [k for k in self._heard if k[0] == channel]:
                    del self._heard[key]
                continue
            tracks = self._store.known_tracks(channel)
            if tracks is None:
                continue
            if full:
                self._schedule(("channel", channel), channel, partial(self._store.reload_channel, channel))
            elif self._timelines:
                for track in tracks:
                    if now - self._heard.get((channel, track), -self._tick_s) >= self._tick_s:
                        self._refresh(channel, track)
