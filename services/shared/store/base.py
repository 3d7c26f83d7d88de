"""The store interface: everything ingest and packager need from storage, and nothing more.

Object classes and their retention (TTL per class, set from the channel config by the caller):
  channel config (no TTL) · CMAF headers (``init_ttl_s``) · fragments + timeline entries (``segment_ttl_s``)
  · small per-channel metadata such as the ingest MPD (``init_ttl_s``).

The commit rule every implementation keeps: ``commit_fragment`` makes the entry visible in the timeline
only after the fragment's bytes are durable, so a reader that sees an entry can always read its bytes.
Implementations: ``embedded.EmbeddedStore`` (SQLite on local disk, the default); the Cassandra +
memcached write-through store slots in behind the same Protocol.
"""

from __future__ import annotations

from enum import Enum
from typing import Protocol

from services.shared.channels import ChannelConfig, TrackRecord
from services.shared.timeline import FragmentEntry, TrackTimeline


class CommitResult(Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"  # same track and decode time already committed: nothing written
    REPLACED_FILLER = "replaced_filler"  # a real fragment replaced a "slat" filler one


class Store(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless reads and writes can be served."""

    # channel config
    async def put_channel(self, config: ChannelConfig) -> None: ...

    async def get_channel(self, name: str) -> ChannelConfig | None: ...

    async def list_channels(self) -> list[ChannelConfig]: ...

    async def delete_channel(self, name: str) -> None:
        """Remove the channel with every track, header and fragment it has."""

    async def set_epoch_if_absent(self, channel: str, epoch_ms: int) -> int:
        """Record the wall clock of media time 0 once; return the one in force."""

    async def get_epoch(self, channel: str) -> int | None: ...

    async def put_meta(self, channel: str, key: str, value: bytes, *, ttl_s: int) -> None: ...

    async def get_meta(self, channel: str, key: str) -> bytes | None: ...

    # tracks and CMAF headers
    async def put_track(self, record: TrackRecord, init: bytes, *, ttl_s: int) -> None: ...

    async def get_tracks(self, channel: str) -> list[TrackRecord]: ...

    async def delete_track(self, channel: str, track: str) -> None:
        """Remove one track with its header, fragments and timeline."""

    async def get_init(self, channel: str, track: str) -> bytes | None: ...

    # fragments and timelines
    async def commit_fragment(
        self, channel: str, track: str, entry: FragmentEntry, data: bytes, *, ttl_s: int
    ) -> CommitResult: ...

    async def get_timeline(self, channel: str, track: str) -> TrackTimeline:
        """The track's timeline (empty if none). Callers must treat it as read-only."""

    async def get_fragment(self, channel: str, track: str, decode_time: int) -> bytes | None: ...
