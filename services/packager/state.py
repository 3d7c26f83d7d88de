"""Snapshots the playback path reuses between commits: channel state and ready-to-send responses.

A ``ChannelState`` is built once per channel per signal version (every commit and config change bumps
it), with everything a request needs precomputed (versions, live edge, last ingest, CORS headers); the
manifests rendered from it are memoized on the snapshot and go away with it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from email.utils import formatdate

from services.packager.views import ChannelView
from services.packager.window import TimeWindow, wall_ms
from services.shared.asgi import Headers
from services.shared.channels import ChannelConfig, TrackRecord
from services.shared.errors import NotFound
from services.shared.timeline import TrackTimeline

EXPOSE_HEADERS = b"Content-Length, Content-Range, ETag, Last-Modified, Age"


def http_date(ms: int) -> bytes:
    return formatdate(ms / 1000, usegmt=True).encode()


def content_etag(body: bytes) -> bytes:
    return b'"' + hashlib.blake2b(body, digest_size=12).hexdigest().encode() + b'"'


def cors_headers(allow_origin: str) -> Headers:
    return [
        (b"access-control-allow-origin", allow_origin.encode()),
        (b"access-control-expose-headers", EXPOSE_HEADERS),
    ]


@dataclass(frozen=True, slots=True)
class Rendered:
    """A response body with its headers built once (the edge only adds CORS, Range and 304 logic)."""

    body: bytes
    content_type: bytes
    etag: bytes
    last_modified_ms: int
    cache_control: bytes
    headers: Headers = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "headers",
            [
                (b"content-type", self.content_type),
                (b"content-length", str(len(self.body)).encode()),
                (b"cache-control", self.cache_control),
                (b"etag", self.etag),
                (b"last-modified", http_date(self.last_modified_ms)),
                (b"accept-ranges", b"bytes"),
            ],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelState:
    """One channel as stored at one signal version; derived facts are computed once, at build."""

    config: ChannelConfig
    epoch_ms: int
    tracks: tuple[tuple[TrackRecord, TrackTimeline], ...]
    signal_version: int
    built_ms: int
    versions: tuple[int, ...] = ()
    last_ingest_ms: int = 0
    edge_ms: int = 0  # wall clock of the newest media any track has
    ended: bool = False
    cors: Headers = field(default_factory=list)
    renders: dict[tuple[object, ...], Rendered] = field(default_factory=dict, compare=False)
    views: dict[TimeWindow, ChannelView] = field(default_factory=dict, compare=False)

    @classmethod
    def build(
        cls,
        *,
        config: ChannelConfig,
        epoch_ms: int,
        tracks: tuple[tuple[TrackRecord, TrackTimeline], ...],
        signal_version: int,
        built_ms: int,
    ) -> ChannelState:
        lasts = [(r, t.last) for r, t in tracks if t.last is not None]
        return cls(
            config=config,
            epoch_ms=epoch_ms,
            tracks=tracks,
            signal_version=signal_version,
            built_ms=built_ms,
            versions=tuple(t.version for _, t in tracks),
            last_ingest_ms=max((last.ingest_time_ms for _, last in lasts), default=0),
            edge_ms=max(
                (wall_ms(epoch_ms, last.end_time, r.info.timescale) for r, last in lasts), default=epoch_ms
            ),
            ended=all(t.ended for _, t in tracks),
            cors=cors_headers(config.cors_allow_origin),
        )

    def track(self, name: str) -> tuple[TrackRecord, TrackTimeline]:
        for record, timeline in self.tracks:
            if record.name == name:
                return record, timeline
        raise NotFound(f"channel {self.config.name!r} has no track {name!r}")
