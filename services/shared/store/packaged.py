"""An optional store capability: a cluster-wide cache of packaged outputs (e.g. TS segments).

A packager that makes an output from stored media may share it here, so that the other packagers of
the cluster (one taking a channel over after a failover, say) read it instead of making it again.
It is a cache and nothing more: a value may be absent, evicted or lost at any time, so every read
has a way to make the value itself, and every failure is a miss (``get_packaged`` returns None,
``put_packaged`` returns normally). Keys are the caller's: they must name one version of the inputs
(a changed input, a new key), as nothing here invalidates a value.

Only stores with a shared cache implement it (``write_through.WriteThroughStore``, on its memcached
``ChunkedCache``); ``EmbeddedStore`` and a bare ``CassandraStore`` do not, and ``packaged_cache``
returns None for them.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class PackagedCache(Protocol):
    async def get_packaged(self, key: str) -> bytes | None:
        """The value stored under ``key`` by any packager, or None (absent, corrupt, cache down)."""

    async def put_packaged(self, key: str, data: bytes, *, ttl_s: int) -> None:
        """Share ``data`` under ``key`` for about ``ttl_s`` seconds, best effort (never raises)."""


def packaged_cache(store: object) -> PackagedCache | None:
    """``store`` as a ``PackagedCache`` if it has that capability, else None."""
    return store if isinstance(store, PackagedCache) else None
