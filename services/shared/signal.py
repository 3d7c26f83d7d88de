"""New-fragment signal: ingest announces a commit, packagers waiting on the channel wake up.

``LocalSignal`` works inside one process (``headwater serve``). Across processes,
``services/shared/follow.py`` ``AnnouncingSignal`` also sends what happened (``committed``,
``changed``) to the packager nodes, whose ``Follower`` updates their store and notifies their own
``LocalSignal``.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from services.shared.timeline import FragmentEntry


class Signal(Protocol):
    def notify(self, channel: str) -> None:
        """Wake this process's waiters on ``channel`` (nothing is sent anywhere)."""

    def committed(self, channel: str, track: str, entry: FragmentEntry) -> None:
        """``entry`` of ``track`` was committed (its bytes and the entry are durable)."""

    def changed(self, channel: str, track: str | None) -> None:
        """The track's record (a new or re-sent header), or without ``track`` the channel's config
        (created, changed or deleted), changed in the store."""

    def version(self, channel: str) -> int:
        """How many notifies ``channel`` has had: snapshots keyed by it are fresh while it holds."""

    async def wait(self, channel: str, timeout_s: float) -> bool:
        """Wait for the next notify on ``channel``; False on timeout."""


class LocalSignal:
    """One ``asyncio.Event`` per channel, replaced on every notify so each waiter wakes once."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._versions: dict[str, int] = {}

    def version(self, channel: str) -> int:
        return self._versions.get(channel, 0)

    def notify(self, channel: str) -> None:
        self._versions[channel] = self._versions.get(channel, 0) + 1
        event = self._events.pop(channel, None)
        if event is not None:
            event.set()

    def committed(self, channel: str, track: str, entry: FragmentEntry) -> None:
        self.notify(channel)  # one process, one store index: the entry is there already

    def changed(self, channel: str, track: str | None) -> None:
        self.notify(channel)

    async def wait(self, channel: str, timeout_s: float) -> bool:
        event = self._events.get(channel)
        if event is None:
            event = self._events[channel] = asyncio.Event()
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
        except TimeoutError:
            return False
        return True
