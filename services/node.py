"""One Headwater node: the ingest, playback and control apps behind one ASGI callable.

Dispatch is by path prefix (``/ingest/``, ``/live/``, everything else to FastAPI) so the two hot paths
never pass through FastAPI's router. Clients (the store) are created in ``create_app`` and opened in
the lifespan, never at import.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from services.control.app import create_control_app
from services.ingest.app import IngestApp
from services.ingest.service import IngestService, IngestSettings
from services.packager.app import PlaybackApp
from services.packager.service import PackagerService
from services.settings import Settings
from services.shared.asgi import ASGIApp, Receive, Scope, Send
from services.shared.errors import HeadwaterError
from services.shared.metrics import Metrics
from services.shared.signal import LocalSignal
from services.shared.store.base import Store
from services.shared.store.embedded import EmbeddedStore

log = logging.getLogger("headwater")


def create_store(settings: Settings) -> Store:
    if settings.store == "embedded":
        return EmbeddedStore(settings.data_dir)
    if settings.store == "cassandra":
        return _cassandra_store(settings)
    raise HeadwaterError(f"unknown store {settings.store!r} (this build has: embedded, cassandra)")


def _cassandra_store(settings: Settings) -> Store:
    # imported here: the embedded default never loads the Cassandra and memcached drivers
    from services.shared.store.cassandra import CassandraStore  # noqa: PLC0415
    from services.shared.store.memcache import ChunkedCache  # noqa: PLC0415
    from services.shared.store.write_through import WriteThroughStore  # noqa: PLC0415

    durable = CassandraStore(
        contact_points=settings.cassandra_hosts,
        port=settings.cassandra_port,
        keyspace=settings.cassandra_keyspace,
        replication={"class": "SimpleStrategy", "replication_factor": settings.cassandra_replication_factor},
        consistency=settings.cassandra_consistency,
    )
    if not settings.memcached_nodes:
        return durable
    replicas = min(settings.memcached_replicas, len(settings.memcached_nodes))
    return WriteThroughStore(durable, ChunkedCache(settings.memcached_nodes, replicas=replicas))


@dataclass(slots=True)
class Node:
    settings: Settings
    store: Store
    metrics: Metrics
    ingest: ASGIApp
    playback: ASGIApp
    control: ASGIApp
    _sweeper: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            if path.startswith("/live/"):
                await self.playback(scope, receive, send)
            elif path.startswith("/ingest/"):
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
                    await self.store.open()
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
                await self.store.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

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


def create_app(settings: Settings) -> Node:
    store = create_store(settings)
    metrics = Metrics()
    signal = LocalSignal()
    ingest = IngestService(
        store=store,
        signal=signal,
        metrics=metrics,
        settings=IngestSettings(
            # auto-create only without auth: with an admin key, channels are created through the API
            auto_create=settings.auto_create and settings.admin_key is None,
            idle_timeout_s=settings.idle_timeout_s,
        ),
    )
    packager = PackagerService(store=store, signal=signal, metrics=metrics)
    return Node(
        settings=settings,
        store=store,
        metrics=metrics,
        ingest=IngestApp(ingest),
        playback=PlaybackApp(packager),
        control=create_control_app(store=store, signal=signal, metrics=metrics, admin_key=settings.admin_key),
    )
