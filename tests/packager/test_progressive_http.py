"""LL-DASH chunked delivery through the real ingest and playback edges (raw ASGI, embedded store).

The channel has 0.4 s segments of four 0.1 s video chunks (a keyframe every fourth), so a response is
aborted after 0.8 s without a new chunk and the next segment is waited for up to 0.4 s.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from services.shared.channels import ChannelConfig
from services.shared.media.synthetic import make_fragment, make_header
from tests.packager.test_playback import EPOCH_MS, Clock, Origin, make_origin

CHUNK = 9000  # 0.1 s at 90 kHz
TARGET_MS = 400


def video_chunk(k: int) -> bytes:
    return make_fragment(
        decode_time=k * CHUNK, sequence_number=k + 1, sample_durations=(3000,) * 3,
        sample_sizes=(300 + k,) * 3, keyframe_first=k % 4 == 0,
    )  # fmt: skip


async def push(origin: Origin, *chunks: int) -> None:
    for k in chunks:
        origin.clock.ms = EPOCH_MS + (k + 1) * 100
        head = make_header(track_id=1, timescale=90_000) if k == 0 else b""
        await origin.push("video.cmfv", head + video_chunk(k))


@dataclass
class Exchange:
    """One request driven by hand: the messages the app sent so far, as they were sent."""

    messages: list[MutableMapping[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    @property
    def headers(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.messages[0]["headers"]}

    @property
    def bodies(self) -> list[bytes]:
        return [bytes(m["body"]) for m in self.messages[1:] if m.get("body")]

    @property
    def complete(self) -> bool:
        return len(self.messages) > 1 and not self.messages[-1].get("more_body", False)

    async def until(self, condition: Callable[[], bool], timeout_s: float = 3.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not condition():
                self.arrived.clear()
                await self.arrived.wait()

    async def finished(self, timeout_s: float = 3.0) -> None:
        assert self.task is not None
        await asyncio.wait_for(self.task, timeout_s)


def start(origin: Origin, path: str, method: str = "GET") -> Exchange:
    exchange = Exchange()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(3600)  # the client stays connected
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        exchange.messages.append(message)
        exchange.arrived.set()

    scope = {"type": "http", "method": method, "path": path, "query_string": b"", "headers": []}
    exchange.task = asyncio.ensure_future(origin.playback(scope, receive, send))
    return exchange


@pytest.fixture
async def origin(tmp_path: Path) -> AsyncIterator[Origin]:
    o = await make_origin(tmp_path, Clock())
    await o.store.put_channel(ChannelConfig(name="ch", segment_duration_ms=TARGET_MS))
    yield o
    await o.store.close()


async def test_a_segment_in_progress_arrives_chunk_by_chunk_and_equals_the_complete(origin: Origin) -> None:
    await push(origin, 0, 1, 2, 3, 4)  # segment 0 complete; segment 36000 has chunk 4
    exchange = start(origin, "/live/ch/media/video/36000.m4s")
    await exchange.until(lambda: len(exchange.bodies) == 1)
    assert exchange.status == 200
    headers = exchange.headers
    assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers
    assert headers["cache-control"] == "public, max-age=1209600, immutable"
    assert headers["content-type"] == "video/mp4" and headers["access-control-allow-origin"] == "*"
    assert "etag" not in headers and "last-modified" not in headers  # no validator for a partial copy
    assert exchange.bodies == [video_chunk(4)]  # before chunk 5 is even committed
    assert not exchange.complete
    await push(origin, 5)
    await exchange.until(lambda: len(exchange.bodies) == 2)
    assert exchange.bodies[1] == video_chunk(5) and not exchange.complete
    await push(origin, 6, 7)
    await asyncio.sleep(0.05)
    assert not exchange.complete  # the segment is complete only once the next one starts
    await push(origin, 8)
    await exchange.finished()
    assert exchange.complete
    streamed = b"".join(exchange.bodies)
    assert streamed == b"".join(video_chunk(k) for k in range(4, 8))
    cached = await origin.get("/live/ch/media/video/36000.m4s")
    assert cached.status == 200 and cached.headers["content-length"] == str(len(streamed))
    assert cached.text.encode("latin-1") == streamed
    assert "transfer-encoding" not in cached.headers and cached.headers["etag"]


async def test_a_stalled_encoder_aborts_the_response_without_completing_it(origin: Origin) -> None:
    await push(origin, 0, 1, 2, 3, 4, 5)
    exchange = start(origin, "/live/ch/media/video/36000.m4s")
    await exchange.until(lambda: len(exchange.bodies) == 2)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await exchange.finished(timeout_s=3)
    assert loop.time() - began == pytest.approx(2 * TARGET_MS / 1000, abs=0.3)
    assert not exchange.complete  # no final message: the server drops the connection, no last chunk
    assert exchange.messages[-1]["more_body"] is True


async def test_the_next_segment_is_held_until_it_starts(origin: Origin) -> None:
    await push(origin, 0, 1, 2, 3, 4, 5, 6, 7)  # segment 36000 in progress; 72000 would be next
    exchange = start(origin, "/live/ch/media/video/72000.m4s")
    await asyncio.sleep(0.1)
    assert exchange.messages == []  # nothing sent while it waits
    await push(origin, 8)
    await exchange.until(lambda: len(exchange.bodies) == 1)
    assert exchange.status == 200 and exchange.bodies == [video_chunk(8)]
    assert exchange.task is not None
    exchange.task.cancel()


async def test_the_next_segment_not_started_in_time_is_not_yet_available(origin: Origin) -> None:
    await push(origin, 0, 1, 2, 3, 4, 5, 6, 7)
    loop = asyncio.get_running_loop()
    began = loop.time()
    reply = await origin.get("/live/ch/media/video/72000.m4s")
    assert loop.time() - began == pytest.approx(TARGET_MS / 1000, abs=0.2)
    assert reply.status == 404 and reply.headers["cache-control"] == "max-age=1"
    further = await origin.get("/live/ch/media/video/108000.m4s")  # not the next one: at once
    assert further.status == 404


async def test_head_of_a_segment_in_progress(origin: Origin) -> None:
    await push(origin, 0, 1, 2, 3, 4)
    exchange = start(origin, "/live/ch/media/video/36000.m4s", method="HEAD")
    await exchange.finished()
    assert exchange.status == 200 and exchange.complete and exchange.bodies == []
    assert exchange.headers["content-type"] == "video/mp4"
    assert exchange.headers["cache-control"] == "public, max-age=1209600, immutable"


async def test_the_mpd_lists_the_segment_in_progress(origin: Origin) -> None:
    await push(origin, *range(10))  # segments 0, 36000 complete; 72000 has chunks 8, 9
    reply = await origin.get("/live/ch/dash/manifest.mpd")
    assert reply.status == 200 and reply.headers["cache-control"] == "public, max-age=1"
    text = reply.text
    assert 'availabilityTimeComplete="false"' in text and 'availabilityTimeOffset="0.3"' in text
    assert '<S t="0" d="36000" r="2" />' in text  # two complete segments and the one in progress
