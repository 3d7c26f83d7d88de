"""The playback edge: a raw ASGI app for ``GET|HEAD|OPTIONS /live/{channel}/...``.

Kept off FastAPI's router on purpose: this is the path every CDN request takes. URL layout:
  /live/{ch}/hls/index.m3u8            multivariant playlist (CMAF)
  /live/{ch}/hls/{track}.m3u8          media playlist
  /live/{ch}/dash/manifest.mpd         dynamic MPD;  /live/{ch}/dash/time  its UTCTiming source
  /live/{ch}/media/{track}/init.mp4    CMAF header;  /live/{ch}/media/{track}/{t}.m4s  segment at tfdt t
                                       (chunk by chunk while it is being written: LL-DASH)
  /live/{ch}/media/{track}/part-{t}.m4s  LL-HLS part: the fragment at tfdt t (the hinted next one blocks)
  /live/{ch}/hls-ts/index.m3u8         multivariant playlist (MPEG-TS);  /live/{ch}/hls-ts/{variant}.m3u8
  /live/{ch}/ts/{variant}/{t}.ts       TS segment at t (a video track's with the default audio, or audio only)
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs, unquote, urlencode

from services.packager.errors import Gone, NotYetAvailable, http_status
from services.packager.llhls import parse_directives
from services.packager.progressive import send_chunks
from services.packager.service import IMMUTABLE, PackagerService
from services.packager.state import Rendered
from services.packager.window import TimeWindow, parse_window
from services.shared.asgi import Headers, Receive, Scope, Send, header, respond, respond_text
from services.shared.auth import credentials_from, may_play, playback_protected
from services.shared.errors import HeadwaterError, NotFound

log = logging.getLogger("headwater.packager")
_SEGMENT = re.compile(r"(\d{1,20})\.m4s")
_PART = re.compile(r"part-(\d{1,20})\.m4s")
_TS_SEGMENT = re.compile(r"(\d{1,20})\.ts")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
ALLOW_METHODS = b"GET, HEAD, OPTIONS"
PREFLIGHT = [
    (b"access-control-allow-methods", ALLOW_METHODS),
    (b"access-control-allow-headers", b"Range, If-None-Match, If-Modified-Since"),
    (b"access-control-max-age", b"86400"),
]


def _window(query_string: bytes) -> tuple[TimeWindow, str]:
    if not query_string:
        return TimeWindow(), ""
    params = parse_qs(query_string.decode("latin-1"))
    start, end = params.get("start", [None])[0], params.get("end", [None])[0]
    window = parse_window(start, end)
    kept = [(k, v) for k, v in (("start", start), ("end", end)) if v]
    return window, urlencode(kept)


class PlaybackApp:
    def __init__(self, service: PackagerService) -> None:
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        parts = scope["path"][len("/live/") :].split("/")
        channel = unquote(parts[0])
        config, cors = await self.service.access(channel)
        if method == "OPTIONS":
            await respond(send, 204, [*cors, *PREFLIGHT])
            return
        if config is not None and playback_protected(config.auth):
            creds = credentials_from(scope["headers"], scope["query_string"])
            if not may_play(config.auth, creds, channel=channel, now_s=time.time()):
                await respond_text(send, 403, f"channel {channel!r} needs a playback key or token", [
                    (b"cache-control", b"no-store"), *cors,
                ])  # fmt: skip
                return
        if method not in ("GET", "HEAD"):
            await respond_text(send, 405, f"method {method} not allowed", [(b"allow", ALLOW_METHODS), *cors])
            return
        try:
            if parts[1:] == ["dash", "time"]:
                await self._time(send, cors)
                return
            if await self._stream_in_progress(scope, receive, send, channel=channel, cors=cors):
                return
            rendered = await self._resolve(channel, parts[1:], scope["query_string"])
        except HeadwaterError as exc:
            await self._error(send, exc, cors)
            return
        await serve(scope, send, rendered, cors, head=method == "HEAD")

    async def _stream_in_progress(
        self, scope: Scope, receive: Receive, send: Send, *, channel: str, cors: Headers
    ) -> bool:
        """LL-DASH: a segment still being written goes out chunk by chunk (``progressive``)."""
        rest = scope["path"][len("/live/") :].split("/")[1:]
        match = _SEGMENT.fullmatch(rest[2]) if len(rest) == 3 and rest[0] == "media" else None
        if match is None:
            return False
        progress = await self.service.segment_progress(channel, unquote(rest[1]), int(match.group(1)))
        if progress is None:
            return False
        content_type, chunks = progress
        headers = [(b"content-type", content_type), (b"cache-control", IMMUTABLE), *cors]
        await send_chunks(send, receive, headers, chunks, head=scope["method"] == "HEAD")
        return True

    async def _resolve(self, channel: str, rest: list[str], query_string: bytes) -> Rendered:
        service = self.service
        if len(rest) == 2 and rest[0] == "hls" and rest[1].endswith(".m3u8"):
            window, query = _window(query_string)
            if rest[1] == "index.m3u8":
                return await service.manifest(channel, "hls", None, window, query)
            track = unquote(rest[1][: -len(".m3u8")])
            directives = parse_directives(query_string)
            return await service.manifest(channel, "hls-media", track, window, query, directives=directives)
        if len(rest) == 2 and rest[0] == "hls-ts" and rest[1].endswith(".m3u8"):
            window, query = _window(query_string)
            if rest[1] == "index.m3u8":
                return await service.manifest(channel, "hls-ts", None, window, query)
            variant = unquote(rest[1][: -len(".m3u8")])
            return await service.manifest(channel, "hls-ts-media", variant, window, query)
        if len(rest) == 3 and rest[0] == "ts" and (match := _TS_SEGMENT.fullmatch(rest[2])):
            return await service.ts_segment(channel, unquote(rest[1]), int(match.group(1)))
        if rest == ["dash", "manifest.mpd"]:
            window, query = _window(query_string)
            return await service.manifest(channel, "dash", None, window, query)
        if len(rest) == 3 and rest[0] == "media":
            track = unquote(rest[1])
            if rest[2] == "init.mp4":
                return await service.init_segment(channel, track)
            match = _SEGMENT.fullmatch(rest[2])
            if match:
                return await service.media_segment(channel, track, int(match.group(1)))
            match = _PART.fullmatch(rest[2])
            if match:
                return await service.part(channel, track, int(match.group(1)))
        raise NotFound(f"no playback resource at /live/{channel}/{'/'.join(rest)}")

    async def _time(self, send: Send, cors: Headers) -> None:
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        body = now.encode()
        await respond(
            send,
            200,
            [
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *cors,
            ],
            body,
        )

    async def _error(self, send: Send, exc: HeadwaterError, cors: Headers) -> None:
        status = http_status(exc)
        self.service.metrics.error("packager", status)
        if status >= 500:
            log.warning("playback error %d: %s", status, exc)
        cache = b"max-age=1" if isinstance(exc, NotYetAvailable | Gone) or status == 404 else b"no-store"
        await respond_text(send, status, str(exc), [(b"cache-control", cache), *cors])


def _not_modified(scope: Scope, rendered: Rendered) -> bool:
    inm = header(scope, b"if-none-match")
    if inm is not None:
        return any(tag.strip().removeprefix(b"W/") == rendered.etag for tag in inm.split(b",")) or inm == b"*"
    ims = header(scope, b"if-modified-since")
    if ims is not None:
        try:
            since = parsedate_to_datetime(ims.decode("latin-1")).timestamp()
        except (TypeError, ValueError):
            return False
        return rendered.last_modified_ms // 1000 <= since
    return False


def _byte_range(spec: bytes, size: int) -> tuple[int, int] | bool | None:
    """(first, last) inclusive; None to ignore the header; False if unsatisfiable."""
    match = _RANGE.fullmatch(spec.decode("latin-1").strip())
    if match is None:
        return None
    first_s, last_s = match.groups()
    if not first_s and not last_s:
        return None
    if not first_s:
        suffix = int(last_s)
        return (max(0, size - suffix), size - 1) if suffix and size else False
    first = int(first_s)
    last = min(int(last_s), size - 1) if last_s else size - 1
    if first >= size or (last_s and int(last_s) < first):
        return False
    return first, last


async def serve(scope: Scope, send: Send, rendered: Rendered, cors: Headers, *, head: bool) -> None:
    """Send ``rendered`` honouring conditional requests (304), Range (206/416) and HEAD."""
    if _not_modified(scope, rendered):
        await respond(send, 304, [*rendered.headers[2:], *cors])  # no content-type/length on a 304
        return
    spec = header(scope, b"range") if scope["headers"] else None
    if spec is not None:
        body = rendered.body
        chosen = _byte_range(spec, len(body))
        if chosen is False:
            await respond(send, 416, [(b"content-range", f"bytes */{len(body)}".encode()), *cors])
            return
        if isinstance(chosen, tuple):
            first, last = chosen
            part = body[first : last + 1]
            headers = [
                (b"content-type", rendered.content_type),
                (b"content-length", str(len(part)).encode()),
                (b"content-range", f"bytes {first}-{last}/{len(body)}".encode()),
                *rendered.headers[2:],
                *cors,
            ]
            await respond(send, 206, headers, b"" if head else part)
            return
    await respond(send, 200, [*rendered.headers, *cors], b"" if head else rendered.body)
