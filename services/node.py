"""One Headwater node: the ingest, playback and control apps behind one ASGI callable.

Dispatch is by path prefix (``/ingest/``, ``/live/``, everything else to FastAPI) so the two hot paths
never pass through FastAPI's router. Clients (the store) are created in ``create_app`` and opened in
the lifespan, never at import.

Roles (``--role``): a node serves ``/ingest/``, ``/live/`` or both, and the control API always. With
peers (``--packagers``) or a single role it is one node of a cluster sharing the Cassandra store: its
signal announces commits and changes to the packager nodes over UDP, a packager node listens for
them at its own host and port (UDP, ``--announce-port`` to move it), and a ``Follower`` keeps the
channels it is asked for current (``services/shared/follow.py``, ``services/shared/announce.py``).
With the defaults it is one process with every role, ``LocalSignal`` and no socket, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.control.app import create_control_app
from services.ingest.app import IngestApp
from services.ingest.service import IngestService, IngestSettings
from services.packager.app import PlaybackApp
from services.packager.service import PackagerService
from services.settings import Settings
from services.shared.announce import AnnounceSender, Listening, listen
from services.shared.asgi import ASGIApp, Receive, Scope, Send, respond_text
from services.shared.drain import Drain
from services.shared.errors import HeadwaterError, StoreError
from services.shared.follow import AnnouncingSignal, FollowedStore, Follower
from services.shared.metrics import Metrics
from services.shared.signal import LocalSignal, Signal
from services.shared.store.base import Store
from services.shared.store.embedded import EmbeddedStore

if TYPE_CHECKING:
    from services.shared.store.cassandra import CassandraStore

log = logging.getLogger("headwater")
_STORE_RETRY_S = 1.0


def create_store(settings: Settings) -> Store:
    if settings.store == "embedded":
        return EmbeddedStore(settings.data_dir)
    if settings.store == "cassandra":
        return _cassandra_store(settings)
    raise HeadwaterError(f"unknown store {settings.store!r} (this build has: embedded, cassandra)")


def _cassandra_store(settings: Settings) -> Store:
    # imported here: the embedded default never loads the Cassandra and memcached drivers
    from services.shared.store.memcache import ChunkedCache  # noqa: PLC0415
    from services.shared.store.write_through import WriteThroughStore  # noqa: PLC0415

    durable = _cassandra(settings)
    if not settings.memcached_nodes:
        return durable
    replicas = min(settings.memcached_replicas, len(settings.memcached_nodes))
    return WriteThroughStore(durable, ChunkedCache(settings.memcached_nodes, replicas=replicas))


async def create_schema(settings: Settings) -> None:
    """``headwater schema``: the keyspace and tables, made once (retrying while Cassandra starts)."""
    await _retry_store(_cassandra(settings).create_schema, settings.store_wait_s)


def _cassandra(settings: Settings) -> CassandraStore:
    from services.shared.store.cassandra import CassandraStore  # noqa: PLC0415

    return CassandraStore(
        contact_points=settings.cassandra_hosts,
        port=settings.cassandra_port,
        keyspace=settings.cassandra_keyspace,
        replication={"class": "SimpleStrategy", "replication_factor": settings.cassandra_replication_factor},
        consistency=settings.cassandra_consistency,
        create_schema=settings.create_schema,
    )


@dataclass(slots=True, kw_only=True)
class ClusterLink:
    """A clustered node's announcement sender, follower, and (packager role) UDP endpoint."""

    sender: AnnounceSender
    follower: Follower
    listen_at: tuple[str, int] | None  # None: this node receives no announcements (ingest role)
    refresh_s: float = 0.0  # re-resolve the packagers this often (0: once, at start)
    listening: Listening | None = None
    _refresher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # A re-resolved peer list (a headless Service) may be empty at start: no error then.
        await self.sender.open(strict=self.refresh_s <= 0)
        if self.listen_at is not None:
            self.listening = await listen(*self.listen_at, self.follower.handle)
        self.follower.start()
        if self.refresh_s > 0:
            self._refresher = asyncio.create_task(self._refresh_forever())

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        await self.follower.close()
        if self.listening is not None:
            self.listening.close()
        self.sender.close()

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            await self.sender.resolve()


@dataclass(slots=True)
class Node:
    settings: Settings
    store: Store
    metrics: Metrics
    ingest: ASGIApp
    playback: ASGIApp
    control: ASGIApp
    cluster: ClusterLink | None = None
    drain: Drain = dataclasses.field(default_factory=Drain)
    _sweeper: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            if path.startswith("/live/"):
                if not self.settings.serves_packager:
                    await _no_role(send, "packager")
                    return
                if self.cluster is not None:
                    self.cluster.follower.touch(path[6:].partition("/")[0])
                await self.playback(scope, receive, send)
            elif path.startswith("/ingest/"):
                if not self.settings.serves_ingest:
                    await _no_role(send, "ingest")
                    return
                if self.cluster is not None:
                    self.cluster.follower.touch(path[8:].partition("/")[0])
                await self.ingest(scope, receive, send)
            else:
                await self.control(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await _retry_store(self.store.open, self.settings.store_wait_s)
                    await self._start_cluster()
                except Exception as exc:  # report any start failure to the server, then stop
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                self._sweeper = asyncio.create_task(self._sweep_forever())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._sweeper is not None:
                    self._sweeper.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._sweeper
                if self.cluster is not None:
                    await self.cluster.close()
                await self.store.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start_cluster(self) -> None:
        if self.cluster is None:
            return
        try:
            await self.cluster.start()
        except BaseException:  # e.g. the UDP port is taken: undo what started, report the failure
            await self.cluster.close()
            await self.store.close()
            raise

    async def _sweep_forever(self) -> None:
        sweep = getattr(self.store, "sweep", None)
        if sweep is None:
            return
        while True:
            await asyncio.sleep(self.settings.sweep_interval_s)
            try:
                await sweep()
            except HeadwaterError as exc:
                log.warning("retention sweep failed: %s", exc)


async def _retry_store(action: Callable[[], Awaitable[None]], wait_s: float) -> None:
    """Run ``action`` (open the store, make the schema), retrying for up to ``wait_s`` while the
    store is unreachable or its schema is not made yet: a deployment's nodes start beside Cassandra
    and the job that creates the keyspace."""
    deadline = time.monotonic() + wait_s
    last = ""
    while True:
        try:
            await action()
            return
        except StoreError as exc:
            if time.monotonic() + _STORE_RETRY_S > deadline:
                raise
            if str(exc) != last:
                left = deadline - time.monotonic()
                log.warning("store not ready, retrying for up to %.0f s: %s", left, exc)
                last = str(exc)
        await asyncio.sleep(_STORE_RETRY_S)


async def _no_role(send: Send, role: str) -> None:
    await respond_text(send, 404, f"this node has no {role} role", [(b"cache-control", b"no-store")])


def _cluster_link(settings: Settings, store: Store, local: LocalSignal) -> ClusterLink:
    """The announcing and following parts of a clustered node (see the module docstring)."""
    if not isinstance(store, FollowedStore):
        raise HeadwaterError(
            f"--role {settings.role} / --packagers need a store shared by the nodes (--store cassandra)"
        )
    sender_id = secrets.randbits(63)  # tells this process's own announcements apart when they come back
    listen_at = None
    if settings.serves_packager:
        port = settings.port if settings.announce_port is None else settings.announce_port
        listen_at = (settings.host, port)
    return ClusterLink(
        sender=AnnounceSender(settings.packagers, sender=sender_id),
        follower=Follower(store, local, sender=sender_id, timelines=settings.serves_packager),
        listen_at=listen_at,
        refresh_s=settings.peers_refresh_s,
    )


def create_app(settings: Settings, *, store: Store | None = None) -> Node:
    """The node ``settings`` describe; ``store`` replaces the one they name (benchmarks wrap it)."""
    if settings.role not in ("all", "ingest", "packager"):
        raise HeadwaterError(f"unknown role {settings.role!r} (all, ingest or packager)")
    store = create_store(settings) if store is None else store
    metrics = Metrics()
    local = LocalSignal()
    cluster = _cluster_link(settings, store, local) if settings.clustered else None
    signal: Signal = local if cluster is None else AnnouncingSignal(local, cluster.sender)
    ingest = IngestService(
        store=store,
        signal=signal,
        metrics=metrics,
        settings=IngestSettings(
            # auto-create only without auth: with an admin key, channels are created through the API
            auto_create=settings.auto_create and settings.admin_key is None,
            idle_timeout_s=settings.idle_timeout_s,
            header_wait_s=settings.header_wait_s,
        ),
    )
    packager = PackagerService(store=store, signal=signal, metrics=metrics)
    drain = Drain()
    return Node(
        settings=settings,
        store=store,
        metrics=metrics,
        ingest=IngestApp(ingest),
        playback=PlaybackApp(packager),
        control=create_control_app(
            store=store, signal=signal, metrics=metrics, admin_key=settings.admin_key, drain=drain
        ),
        cluster=cluster,
        drain=drain,
    )
