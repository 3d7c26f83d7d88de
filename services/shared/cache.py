"""A byte-budgeted LRU and a single-flight gate: one store read per key per process at a time."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class LruCache(Generic[V]):
    """LRU by total size; ``size_of`` weighs each value (1 each by default)."""

    def __init__(self, max_size: int, size_of: Callable[[V], int] = lambda _v: 1) -> None:
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._max = max_size
        self._size_of = size_of
        self._size = 0

    def get(self, key: Hashable) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: Hashable, value: V) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self._size -= self._size_of(old)
        size = self._size_of(value)
        if size > self._max:
            return
        self._items[key] = value
        self._size += size
        while self._size > self._max:
            _, evicted = self._items.popitem(last=False)
            self._size -= self._size_of(evicted)

    def __len__(self) -> int:
        return len(self._items)


class SingleFlight(Generic[V]):
    """Concurrent calls for the same key share one execution of ``load``."""

    def __init__(self) -> None:
        self._inflight: dict[Hashable, asyncio.Future[V]] = {}

    async def do(self, key: Hashable, load: Callable[[], Awaitable[V]]) -> V:
        future = self._inflight.get(key)
        if future is not None:
            return await asyncio.shield(future)
        future = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters (if any) re-raise it themselves
            raise
        finally:
            self._inflight.pop(key, None)
        future.set_result(value)
        return value
