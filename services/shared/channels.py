"""Channel configuration and track records: what the control API sets and ingest/packager read."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from services.shared.errors import InvalidName
from services.shared.media.models import TrackInfo

MAX_NAME_BYTES = 128
_CHANNEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def validate_name(kind: str, name: str) -> str:
    """A channel or track name: 1-128 bytes of [A-Za-z0-9_.-], not starting with '.' (no '..', '/', NUL)."""
    if not name or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise InvalidName(f"{kind} name must be 1 to {MAX_NAME_BYTES} bytes")
    if ".." in name or not _CHANNEL_NAME.fullmatch(name):
        raise InvalidName(f"{kind} name {name[:40]!r} may hold only letters, digits, '_', '-' and single '.'")
    return name


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthConfig:
    read_write_keys: tuple[str, ...] = ()  # ingest (Basic password, Bearer, ?token=)
    read_only_keys: tuple[str, ...] = ()  # playback
    cdn_header: str | None = None  # "Name: value" a CDN sends to identify itself


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelConfig:
    """Per-channel settings (``PUT /api/channels/{channel}``). Durations in the units their names say."""

    name: str
    segment_duration_ms: int = 2000  # HLS target / DASH segment duration the packager aims for
    dvr_window_s: int = 300  # sliding window of manifests, and the reach of ?start=
    segment_ttl_s: int = 3900  # retention of fragments and their timeline entries
    init_ttl_s: int = 86_400 * 7  # retention of CMAF headers (refreshed by every re-send)
    stale_after_s: float = 12.0  # no new fragment for this long: manifests answer failover_status
    failover_status: int = 404
    cors_allow_origin: str = "*"
    max_object_bytes: int = 64 * 1024 * 1024  # one CMAF header, fragment, or per-segment body
    requests_per_s: float = 0.0  # ingest request limit; 0 = unlimited
    auth: AuthConfig = field(default_factory=AuthConfig)

    @property
    def target_ms(self) -> int:
        return self.segment_duration_ms


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackRecord:
    """A track of a channel: its name (from the ingest URL or the posted MPD) and CMAF header facts."""

    channel: str
    name: str
    info: TrackInfo
    created_ms: int
    ended: bool = False
