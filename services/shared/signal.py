"""New-fragment signal: ingest announces a commit, packagers waiting on the channel wake up.

``LocalSignal`` works inside one process (``headwater serve``). A cluster implementation crosses
processes behind the same two methods.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class Signal(Protocol):
    def notify(self, channel: str) -> None: ...

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

    async def wait(self, channel: str, timeout_s: float) -> bool:
        event = self._events.get(channel)
        if event is None:
            event = self._events[channel] = asyncio.Event()
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
        except TimeoutError:
            return False
        return True
