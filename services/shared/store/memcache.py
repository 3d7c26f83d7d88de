"""A best-effort, replicated, chunked object cache on memcached (EVCache-style). The I/O edge of
``chunking``: that module decides what is written and what a read may return; this one talks to nodes.

Placement: consistent hashing (uhashring, ketama) of the hashed key over the nodes; an object lives
on ``replicas`` distinct nodes, EVCache's per-zone copies. ``set`` writes the full object (data chunks
in one pipelined round trip, then the metadata item) to every replica at once; ``get`` reads the
metadata, then every chunk in one multi-get, from the first replica and moves to the next one on
anything but a verified hit; ``delete`` removes metadata, then chunks, on every replica.

Failures are misses: nothing here raises to the caller. pymemcache and socket errors are translated
into ``CacheError`` at one place (``_map_memcache_errors``) and end as a miss, ``False`` or a no-op.

Down nodes: a connection error or timeout marks a node down for ``retry_down_after_s``; meanwhile
requests skip it without waiting (it is neither read nor written, so its copy may be stale). Once
that time is over, the next request to it is its single probe (others keep skipping it): success
brings it back, failure re-arms the wait. A request thus waits at most one timeout per replica.

pymemcache is synchronous: every node call runs on a thread pool, on a small pool of pymemcache
``Client`` connections per node (not ``PooledClient``: when a node fails or restarts, its idle
connections are dead too and are all dropped, so the next probe reconnects instead of failing on one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import TypeVar

from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheError, MemcacheUnexpectedCloseError
from uhashring import HashRing

from services.shared.errors import StoreError
from services.shared.store import chunking

T = TypeVar("T")
log = logging.getLogger(__name__)


class CacheError(StoreError):
    """One node operation failed. Raised and handled inside this module only.

    CacheError
     ├── NodeUnavailable  refused, reset, closed or timed out: the node is marked down
     └── NodeRejected     the node answered with an error (e.g. out of memory): it stays up
    """


class NodeUnavailable(CacheError):
    pass


class NodeRejected(CacheError):
    pass


@contextlib.contextmanager
def _map_memcache_errors(address: str) -> Iterator[None]:
    try:
        yield
    except (OSError, MemcacheUnexpectedCloseError) as exc:  # OSError: refused, reset, timeout
        raise NodeUnavailable(f"memcached {address}: {exc!r}") from exc
    except MemcacheError as exc:
        raise NodeRejected(f"memcached {address}: {exc!r}") from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheStats:
    """Counters since start, and the nodes down right now."""

    hits: int  # get() calls that returned a value
    misses: int  # get() calls that returned None
    corrupt: int  # replica reads that found metadata but no valid object (bad/missing chunk or item)
    node_errors: int  # failed node operations (timeouts, refused/closed connections, server errors)
    sets: int  # set() calls that stored the whole object on at least one replica
    down_nodes: tuple[str, ...]  # addresses marked down and not yet back


class _Lease(Enum):
    """Why a request may use a node: it is up, or this request is the one probe of a down node."""

    UP = "up"
    PROBE = "probe"


class _Read(Enum):
    """A replica read that did not produce the value."""

    ABSENT = "absent"  # no metadata item: never stored, expired, evicted or deleted
    CORRUPT = "corrupt"  # metadata present, object failed verification


class _Node:
    """One memcached: a pool of connections and its up/down state, shared by worker threads."""

    def __init__(
        self, address: str, *, timeout_s: float, retry_down_after_s: float, clock: Callable[[], float]
    ) -> None:
        host, _, port = address.rpartition(":")
        self.address = address
        self._server = (host.strip("[]"), int(port))
        self._timeout_s = timeout_s
        self._retry_down_after_s = retry_down_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._idle: list[Client] = []
        self._down_until: float | None = None

    # health --------------------------------------------------------------------------------------

    def lease(self) -> _Lease | None:
        """How a request may use this node now, or None: skip it (down, or another request probes)."""
        with self._lock:
            if self._down_until is None:
                return _Lease.UP
            now = self._clock()
            if now < self._down_until:
                return None
            self._down_until = now + self._retry_down_after_s  # only this request probes it
            return _Lease.PROBE

    @property
    def is_down(self) -> bool:
        return self._down_until is not None

    def mark_up(self) -> None:
        with self._lock:
            was_down, self._down_until = self._down_until is not None, None
        if was_down:
            log.info("memcached %s is back", self.address)

    def mark_down(self, reason: CacheError) -> None:
        with self._lock:
            was_up = self._down_until is None
            self._down_until = self._clock() + self._retry_down_after_s
            stale, self._idle = self._idle, []
        for client in stale:  # connections to a failed node are dead or soon will be
            client.close()
        if was_up:
            log.warning("%s; skipped for %.1f s", reason, self._retry_down_after_s)

    # connections ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def connection(self) -> Iterator[Client]:
        """A connection of this node's pool; closed instead of returned if the call fails."""
        with self._lock:
            client = self._idle.pop() if self._idle else None
        if client is None:
            client = Client(
                self._server,
                connect_timeout=self._timeout_s,
                timeout=self._timeout_s,
                no_delay=True,
                default_noreply=False,
            )
        try:
            yield client
        except BaseException:
            client.close()
            raise
        with self._lock:
            self._idle.append(client)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for client in idle:
            client.close()


@dataclass(frozen=True, slots=True, kw_only=True)
class _Prepared:
    """One object ready to write: the same items go to every replica."""

    chunk_items: dict[str, bytes]
    chunk_exptime: int  # one second past the metadata's: a visible object never lacks its chunks
    meta_key: str
    meta_item: bytes
    meta_exptime: int


class ChunkedCache:
    """Best-effort object cache on memcached ``nodes`` ("host:port"): a failure is a miss, never raised.

    ``replicas`` is capped at the number of nodes. ``ttl_s`` must be at least 1 (``set`` stores nothing
    otherwise); TTLs over memcached's 30-day relative limit are sent as absolute times.
    """

    def __init__(
        self,
        nodes: Sequence[str],
        *,
        replicas: int = 2,
        chunk_bytes: int = 512 * 1024,
        timeout_s: float = 0.2,
        retry_down_after_s: float = 5.0,
        max_workers: int = 8,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not nodes or len(set(nodes)) != len(nodes):
            raise ValueError(f"need one or more distinct memcached nodes, got {list(nodes)}")
        if replicas < 1:
            raise ValueError(f"replicas must be at least 1, not {replicas}")
        if not 0 < chunk_bytes <= chunking.MAX_CHUNK_BYTES:
            raise ValueError(f"chunk_bytes must be in 1..{chunking.MAX_CHUNK_BYTES}, not {chunk_bytes}")
        self._nodes = {
            address: _Node(address, timeout_s=timeout_s, retry_down_after_s=retry_down_after_s, clock=clock)
            for address in nodes
        }
        self._ring = HashRing(nodes=list(nodes))
        self._replicas = min(replicas, len(nodes))
        self._chunk_bytes = chunk_bytes
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="headwater-memcache")
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        self._closed = False

    # public API ------------------------------------------------------------------------------------

    async def set(self, key: str, value: bytes, *, ttl_s: int) -> bool:
        """Store ``value`` for ``ttl_s`` seconds; True if at least one replica took the whole object."""
        if ttl_s < 1 or chunking.chunk_count(len(value), self._chunk_bytes) > chunking.MAX_CHUNKS:
            return False
        hashed = chunking.cache_key(key)
        prepare = partial(self._prepare, hashed, value, ttl_s)
        # Checksumming a big value takes milliseconds: not on the event loop.
        prepared = prepare() if len(value) <= self._chunk_bytes else await self._in_thread(prepare)
        if prepared is None:
            return False
        writes = [
            self._on_node(node, lease, partial(_write_object, prepared=prepared))
            for node, lease in self._usable_replicas(hashed)
        ]
        stored = any(await asyncio.gather(*writes))
        if stored:
            self._count("sets")
        return stored

    async def get(self, key: str) -> bytes | None:
        """The cached value, or None: absent, expired, partial, corrupt, or no replica reachable."""
        hashed = chunking.cache_key(key)
        for node in self._replicas_of(hashed):
            lease = node.lease()  # one at a time: a probe lease is taken only if it will be used
            if lease is None:
                continue
            outcome = await self._on_node(node, lease, partial(_read_object, hashed=hashed))
            if isinstance(outcome, bytes):
                self._count("hits")
                return outcome
            if outcome is _Read.CORRUPT:
                self._count("corrupt")
        self._count("misses")
        return None

    async def delete(self, key: str) -> None:
        """Remove the object from every reachable replica (a down replica keeps its copy)."""
        hashed = chunking.cache_key(key)
        await asyncio.gather(
            *(
                self._on_node(node, lease, partial(_delete_object, hashed=hashed))
                for node, lease in self._usable_replicas(hashed)
            )
        )

    async def close(self) -> None:
        """Finish calls in flight (each bounded by the timeout) and close every connection."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        for node in self._nodes.values():
            node.close()

    @property
    def stats(self) -> CacheStats:
        with self._counts_lock:
            counts = dict(self._counts)
        return CacheStats(
            hits=counts.get("hits", 0),
            misses=counts.get("misses", 0),
            corrupt=counts.get("corrupt", 0),
            node_errors=counts.get("node_errors", 0),
            sets=counts.get("sets", 0),
            down_nodes=tuple(a for a, node in self._nodes.items() if node.is_down),
        )

    # internals -------------------------------------------------------------------------------------

    def _count(self, name: str) -> None:
        with self._counts_lock:
            self._counts[name] += 1

    def _replicas_of(self, hashed: str) -> list[_Node]:
        """The key's replica nodes, primary first."""
        return [
            self._nodes[conf["nodename"]]
            for conf in self._ring.range(hashed, size=self._replicas, unique=True)
        ]

    def _usable_replicas(self, hashed: str) -> list[tuple[_Node, _Lease]]:
        """The key's replica nodes that may be used now, with their leases (down ones left out)."""
        leased = [(node, node.lease()) for node in self._replicas_of(hashed)]
        return [(node, lease) for node, lease in leased if lease is not None]

    def _prepare(self, hashed: str, value: bytes, ttl_s: int) -> _Prepared:
        meta, chunks = chunking.split(
            value, chunk_bytes=self._chunk_bytes, object_version=secrets.randbits(64)
        )
        now = time.time()
        return _Prepared(
            chunk_items=dict(zip(chunking.chunk_keys(hashed, meta), chunks, strict=True)),
            chunk_exptime=chunking.memcached_exptime(ttl_s + 1, now_unix_s=now),
            meta_key=chunking.meta_key(hashed),
            meta_item=chunking.encode_meta(meta),
            meta_exptime=chunking.memcached_exptime(ttl_s, now_unix_s=now),
        )

    async def _in_thread(self, call: Callable[[], T]) -> T | None:
        if self._closed:
            return None
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def _on_node(self, node: _Node, lease: _Lease, call: Callable[[Client], T]) -> T | None:
        """``call`` on one of the node's connections, in a worker thread; None if that failed."""
        return await self._in_thread(partial(self._attempt, node, lease, call))

    def _attempt(self, node: _Node, lease: _Lease, call: Callable[[Client], T]) -> T | None:
        if lease is _Lease.UP and node.is_down:
            return None  # went down while this call was queued: do not wait on it
        try:
            with _map_memcache_errors(node.address), node.connection() as client:
                result = call(client)
        except NodeUnavailable as exc:
            self._count("node_errors")
            node.mark_down(exc)
            return None
        except NodeRejected as exc:
            self._count("node_errors")
            log.warning("%s", exc)
            result = None
        if lease is _Lease.PROBE:
            node.mark_up()  # it answered, even if only with an error
        return result


# Node calls (worker threads): one object on one replica. ----------------------------------------------


def _write_object(client: Client, *, prepared: _Prepared) -> bool:
    """Chunks first, in one round trip; the metadata only once every chunk is stored."""
    if prepared.chunk_items and client.set_many(prepared.chunk_items, expire=prepared.chunk_exptime):
        return False  # set_many returns the keys it failed to store
    return bool(client.set(prepared.meta_key, prepared.meta_item, expire=prepared.meta_exptime))


def _read_object(client: Client, *, hashed: str) -> bytes | _Read:
    """Metadata, then all the chunks it names in one multi-get, then verification."""
    item = client.get(chunking.meta_key(hashed))
    if item is None:
        return _Read.ABSENT
    meta = chunking.decode_meta(item)
    if meta is None:
        return _Read.CORRUPT
    keys = chunking.chunk_keys(hashed, meta)
    found = client.get_many(keys) if keys else {}
    value = chunking.join(meta, [found.get(k) for k in keys])
    return _Read.CORRUPT if value is None else value


def _delete_object(client: Client, *, hashed: str) -> bool:
    """Metadata first (the object is gone at once), then the chunks it named."""
    key = chunking.meta_key(hashed)
    item = client.get(key)
    client.delete(key)
    meta = chunking.decode_meta(item) if item is not None else None
    if meta is not None and meta.chunks:
        client.delete_many(chunking.chunk_keys(hashed, meta))
    return True
