"""The ingest edge: a raw ASGI app for ``/ingest/{channel}/{path}`` (DASH-IF ingest Interface 1).

Streams each request body through a ``CmafReader`` as it arrives and commits every header and fragment
the moment it is complete, so a long-running chunked POST publishes fragment by fragment and a broken
connection leaves every earlier complete fragment committed and no partial one visible.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from urllib.parse import unquote

from services.ingest.errors import BodyTimeout, PayloadTooLarge, http_status
from services.ingest.service import IngestService, TrackWriter
from services.shared.asgi import Receive, Scope, Send, header, respond_text
from services.shared.auth import credentials_from
from services.shared.errors import HeadwaterError, InvalidName
from services.shared.media.reader import FragmentReceived, HeaderReceived

log = logging.getLogger("headwater.ingest")
MAX_MANIFEST_BYTES = 1024 * 1024
_BOX_HEADER = 8  # size + type
# Boxes a CMAF fragment (or a segment of them) may start with: its track's header must be known.
_FRAGMENT_BOXES = frozenset({b"styp", b"sidx", b"prft", b"emsg", b"moof"})


class ClientGone(Exception):
    """The sender closed the connection mid-body."""


async def body_chunks(receive: Receive, idle_timeout_s: float) -> AsyncIterator[bytes]:
    while True:
        try:
            message = await asyncio.wait_for(receive(), idle_timeout_s)
        except TimeoutError:
            raise BodyTimeout(f"no request body bytes for {idle_timeout_s:g} s") from None
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


def split_path(raw_path: str) -> tuple[str, str]:
    """``/ingest/{channel}/{path}`` → (channel, path); names are validated by the service."""
    rest = raw_path[len("/ingest/") :]
    channel, _, path = rest.partition("/")
    channel = unquote(channel)
    if "\x00" in channel or "\x00" in path:
        raise InvalidName("names may not contain NUL")
    return channel, unquote(path)


class IngestApp:
    def __init__(self, service: IngestService) -> None:
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        try:
            if method == "DELETE":  # encoders prune old segments; retention is the origin's job
                await respond_text(send, 200, "ignored: retention is the origin's job")
                return
            if method not in ("POST", "PUT"):
                await respond_text(
                    send, 405, f"method {method} not allowed", [(b"allow", b"POST, PUT, DELETE")]
                )
                return
            message = await self._ingest(scope, receive)
            await respond_text(send, 200, message)
        except ClientGone:
            log.info("ingest %s: sender went away mid-body", scope["path"])
        except HeadwaterError as exc:
            status = http_status(exc)
            self.service.metrics.error("ingest", status)
            log.info("ingest %s %s: %d %s", method, scope["path"], status, exc)
            await respond_text(send, status, str(exc))

    async def _ingest(self, scope: Scope, receive: Receive) -> str:
        channel_name, path = split_path(scope["path"])
        is_manifest = path.endswith(".mpd")
        track = "" if is_manifest else await self.service.track_name(channel_name, path)
        channel = await self.service.channel(channel_name)
        self.service.authorize(channel, credentials_from(scope["headers"], scope["query_string"]))
        length = header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > channel.max_object_bytes:
            raise PayloadTooLarge(
                f"body of {int(length)} bytes is over the channel's limit of {channel.max_object_bytes}"
            )
        chunks = body_chunks(receive, self.service.settings.idle_timeout_s)
        if is_manifest:
            body = await _read_all(chunks, MAX_MANIFEST_BYTES)
            manifest = await self.service.accept_manifest(channel, body)
            return f"manifest accepted: {len(manifest.representations)} representations"
        writer = await self.service.writer(channel, track, path)
        per_request_limit = None if "Streams(" in path else channel.max_object_bytes
        if writer.header is None and per_request_limit is not None:
            head, chunks = await _peek(chunks, _BOX_HEADER)
            if head[4:_BOX_HEADER] in _FRAGMENT_BOXES:  # a fragment first: its header may be in flight
                writer = await self.service.writer_once_headed(channel, path, writer)
        received = await self._stream(chunks, writer, per_request_limit)
        if received == 0:
            return f"channel {channel.name} accepts ingest"
        return f"track {writer.track}: {writer.committed} fragments committed, {writer.duplicates} duplicates"

    async def _stream(self, chunks: AsyncIterator[bytes], writer: TrackWriter, limit: int | None) -> int:
        reader = writer.reader()
        received = 0
        async for chunk in chunks:
            received += len(chunk)
            if limit is not None and received > limit:
                raise PayloadTooLarge(f"body is over the channel's limit of {limit} bytes")
            now_ns = time.perf_counter_ns()
            for event in reader.feed(chunk):
                if isinstance(event, HeaderReceived):
                    await writer.on_header(event.header)
                elif isinstance(event, FragmentReceived):
                    await writer.on_fragment(event.fragment, now_ns)
        if received:
            reader.close()
        return received


async def _peek(chunks: AsyncIterator[bytes], size: int) -> tuple[bytes, AsyncIterator[bytes]]:
    """The body's first ``size`` bytes (fewer if it is shorter), and the whole body still to read."""
    head: list[bytes] = []
    got = 0
    async for chunk in chunks:
        head.append(chunk)
        got += len(chunk)
        if got >= size:
            break
    first = b"".join(head)

    async def whole() -> AsyncIterator[bytes]:
        if first:
            yield first
        if got >= size:
            async for chunk in chunks:
                yield chunk

    return first[:size], whole()


async def _read_all(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"manifest over {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)
