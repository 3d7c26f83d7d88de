"""Control API (FastAPI): channel configuration, live status, health, readiness and metrics."""

from __future__ import annotations

import dataclasses
import time
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from services.packager.window import wall_ms
from services.shared.channels import AuthConfig, ChannelConfig, validate_name
from services.shared.drain import Drain
from services.shared.errors import HeadwaterError, InvalidName, StoreError
from services.shared.metrics import Metrics
from services.shared.signal import Signal
from services.shared.store.base import Store


class AuthIn(BaseModel):
    read_write_keys: list[str] = []
    read_only_keys: list[str] = []
    cdn_header: str | None = None


class ChannelIn(BaseModel):
    """Body of ``PUT /api/channels/{channel}``; every field optional, defaults as ChannelConfig."""

    segment_duration_ms: int = Field(2000, ge=500, le=30_000)
    dvr_window_s: int = Field(300, ge=10, le=7 * 86_400)
    segment_ttl_s: int = Field(3900, ge=10)
    init_ttl_s: int = Field(7 * 86_400, ge=60)
    stale_after_s: float = Field(12.0, gt=0)
    failover_status: int = Field(404, ge=400, le=599)
    cors_allow_origin: str = "*"
    max_object_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    requests_per_s: float = Field(0.0, ge=0)
    auth: AuthIn = AuthIn()

    def to_config(self, name: str) -> ChannelConfig:
        data = self.model_dump()
        auth = data.pop("auth")
        return ChannelConfig(
            name=name,
            auth=AuthConfig(
                read_write_keys=tuple(auth["read_write_keys"]),
                read_only_keys=tuple(auth["read_only_keys"]),
                cdn_header=auth["cdn_header"],
            ),
            **data,
        )


def _name(channel: str) -> str:
    try:
        return validate_name("channel", channel)
    except InvalidName as exc:
        raise HTTPException(400, str(exc)) from exc


async def _status(store: Store, config: ChannelConfig, now_ms: int) -> dict[str, Any]:
    epoch = await store.get_epoch(config.name)
    tracks = []
    for record in await store.get_tracks(config.name):
        timeline = await store.get_timeline(config.name, record.name)
        last = timeline.last
        edge = wall_ms(epoch, last.end_time, record.info.timescale) if last and epoch is not None else None
        tracks.append(
            {
                "name": record.name,
                "codec": record.info.codec,
                "timescale": record.info.timescale,
                "fragments": len(timeline),
                "live_edge_ticks": last.end_time if last else None,
                "live_edge_ms": edge,
                "last_ingest_ms": last.ingest_time_ms if last else None,
                "ended": timeline.ended,
            }
        )
    return {"config": dataclasses.asdict(config), "epoch_ms": epoch, "now_ms": now_ms, "tracks": tracks}


def require_admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    admin_key: str | None = request.app.state.admin_key
    if admin_key is not None and authorization != f"Bearer {admin_key}":
        raise HTTPException(403, "control API needs the admin key (Authorization: Bearer ...)")


Admin = Annotated[None, Depends(require_admin)]


def create_control_app(
    *, store: Store, signal: Signal, metrics: Metrics, admin_key: str | None, drain: Drain | None = None
) -> FastAPI:
    app = FastAPI(title="Headwater control API", docs_url="/api/docs", openapi_url="/api/openapi.json")
    app.state.admin_key = admin_key

    @app.exception_handler(StoreError)
    async def store_down(_request: Request, exc: StoreError) -> Response:
        return PlainTextResponse(f"store unavailable: {exc}", status_code=503)

    @app.put("/api/channels/{channel}")
    async def put_channel(channel: str, body: ChannelIn, _: Admin, response: Response) -> dict[str, Any]:
        name = _name(channel)
        existed = await store.get_channel(name) is not None
        config = body.to_config(name)
        await store.put_channel(config)
        signal.changed(name, None)  # packagers (every node's) drop their snapshot of the channel
        response.status_code = 200 if existed else 201
        return dataclasses.asdict(config)

    @app.get("/api/channels")
    async def list_channels(_: Admin) -> list[dict[str, Any]]:
        return [dataclasses.asdict(c) for c in await store.list_channels()]

    @app.get("/api/channels/{channel}")
    async def get_channel(channel: str, _: Admin) -> dict[str, Any]:
        config = await store.get_channel(_name(channel))
        if config is None:
            raise HTTPException(404, f"no channel {channel!r}")
        return await _status(store, config, time.time_ns() // 1_000_000)

    @app.delete("/api/channels/{channel}", status_code=204)
    async def delete_channel(channel: str, _: Admin) -> Response:
        name = _name(channel)
        if await store.get_channel(name) is None:
            raise HTTPException(404, f"no channel {channel!r}")
        await store.delete_channel(name)
        signal.changed(name, None)
        return Response(status_code=204)

    @app.get("/healthz", response_class=PlainTextResponse)
    async def healthz() -> str:
        return "ok"

    @app.get("/readyz", response_class=PlainTextResponse)
    async def readyz(store_check: bool = Query(True, alias="store")) -> Response:
        """503 while draining (SIGTERM) or, unless ``?store=0``, while the store does not answer.
        A deployment's readiness probe asks ``?store=0``: every node shares the store, and a store
        hiccup must not take every node out of its Services at once (they serve what they hold)."""
        if drain is not None and drain.draining:
            return PlainTextResponse("draining: shutting down", status_code=503)
        if store_check:
            try:
                await store.ping()
            except HeadwaterError as exc:
                return PlainTextResponse(f"store unreachable: {exc}", status_code=503)
        return PlainTextResponse("ready")

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> str:
        now = time.time_ns() // 1_000_000
        ages = []
        for config in await store.list_channels():
            status = await _status(store, config, now)
            edges = [t["last_ingest_ms"] for t in status["tracks"] if t["last_ingest_ms"]]
            if edges:
                ages.append((config.name, (now - max(edges)) / 1000))
        return metrics.render(ages)

    return app
