"""Publish latency: "the last byte of a fragment reached the origin" -> "the fragment is in the timeline".

Two independent measurements; ``bench.run`` reports both.

1. Server-side, ``/metrics`` (``headwater_publish_latency_seconds``, parsed by ``parse_publish_metrics``).
   The ingest edge takes ``perf_counter_ns()`` when the request-body chunk that completes a fragment
   reaches the ASGI app, and observes the time once ``commit_fragment`` has returned (the fragment is
   in the stored timeline every playlist is rendered from). It covers the CMAF parse of that chunk,
   the timeline checks and the commit (one SQLite transaction on the store's thread). It does not
   cover anything before the chunk reached the app: the kernel socket buffer, uvicorn's read and HTTP
   parse, the ASGI receive queue, the wait for the event loop. Quantiles are exact over the last 4096
   fragments. For the FFmpeg ladder push that is a couple of dozen samples, so p99 is the maximum.

2. Client-side, ``synthetic_publish``: a raw-socket HTTP/1.1 client on one keep-alive connection with
   TCP_NODELAY (no Nagle delay on the last bytes) POSTs one CMAF fragment per request (~500 KB: 2 s
   of fake 25 fps video) to ``/ingest/{ch}/Streams(v.cmfv)``. t0 is when ``sendall`` of the request's
   last byte returned: over loopback, the bytes are then in the origin's socket receive queue. t1
   is when the first byte of the response arrived. The ingest edge answers only after every fragment
   of the body is committed, so the fragment is in the timeline before t1, and t1 - t0 is an upper
   bound of the publish latency seen from outside. Compared with (1) it adds the origin's read and
   parse of body bytes still in its receive queue, the response write and the client's wake-up (tens
   of microseconds over loopback). Each response must be ``200``; after it, an untimed
   ``GET /api/channels/{ch}`` checks that the track's fragment count went up by one.

   Why not long-poll for the fragment instead: the playback edge does not do blocking reload
   (``_HLS_msn``) yet, a media playlist lists a segment only once the next one has started, and
   polling the control API would add its own FastAPI round trip as granularity while loading the
   single process being measured.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from services.shared.media.synthetic import make_fragment, make_header
from services.shared.metrics import quantile

TRACK = "v"
TIMESCALE = 90_000
SAMPLES = 50  # 2 s at 25 fps
SAMPLE_TICKS = TIMESCALE * 2 // SAMPLES


class PublishError(RuntimeError):
    """The origin refused a fragment or did not make it visible."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencySummary:
    p50_s: float
    p99_s: float
    count: int
    max_s: float | None = None  # client-side only (the /metrics summary has no max)


def parse_publish_metrics(text: str) -> LatencySummary | None:
    """p50/p99 and count of ``headwater_publish_latency_seconds`` (None before any fragment)."""
    values = dict(
        re.findall(
            r'^headwater_publish_latency_seconds\{quantile="([0-9.]+)"\}\s+(\S+)\s*$', text, re.MULTILINE
        )
    )
    count = re.search(r"^headwater_publish_latency_seconds_count\s+(\d+)\s*$", text, re.MULTILINE)
    if "0.5" not in values or "0.99" not in values or count is None:
        return None
    return LatencySummary(p50_s=float(values["0.5"]), p99_s=float(values["0.99"]), count=int(count.group(1)))


def summarize(samples_ns: Sequence[int]) -> LatencySummary:
    """Nearest-rank p50/p99 (the same rule as the origin's /metrics) and max of non-empty samples."""
    samples = list(samples_ns)
    return LatencySummary(
        p50_s=quantile(samples, 0.5) / 1e9,
        p99_s=quantile(samples, 0.99) / 1e9,
        count=len(samples),
        max_s=max(samples) / 1e9,
    )


def synthetic_fragment(number: int, fragment_bytes: int) -> bytes:
    """Fragment ``number`` (0-based) of track 1: 2 s, keyframe first, ~``fragment_bytes`` of mdat."""
    size = max(1, fragment_bytes // SAMPLES)
    return make_fragment(
        track_id=1,
        sequence_number=number + 1,
        decode_time=number * SAMPLES * SAMPLE_TICKS,
        sample_durations=(SAMPLE_TICKS,) * SAMPLES,
        sample_sizes=(size,) * SAMPLES,
    )


class _Connection:
    """The smallest HTTP/1.1 client that can time a request to the byte: POST, read a sized response."""

    def __init__(self, host: str, port: int, *, timeout_s: float) -> None:
        self.authority = f"{host}:{port}"
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        self.sock.close()

    def post(self, path: str, body: bytes) -> tuple[int, bytes, int]:
        """(status, response body, ns from the last request byte written to the first response byte)."""
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.authority}\r\nContent-Type: video/mp4\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.sock.sendall(head + body)
        written = time.perf_counter_ns()
        data = self.sock.recv(65536)
        answered = time.perf_counter_ns()
        while b"\r\n\r\n" not in data:
            data += self._recv()
        head_bytes, _, rest = data.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = next(
            (int(line.split(":", 1)[1]) for line in lines[1:] if line.lower().startswith("content-length:")),
            None,
        )
        if length is None:
            raise PublishError(f"response without Content-Length: {lines}")
        while len(rest) < length:
            rest += self._recv()
        return status, rest[:length], answered - written

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise PublishError("the origin closed the connection mid-response")
        return chunk


def _fragment_count(client: httpx.Client, channel: str) -> int:
    status = client.get(f"/api/channels/{channel}")
    status.raise_for_status()
    return next((int(t["fragments"]) for t in status.json()["tracks"] if t["name"] == TRACK), 0)


def synthetic_publish(
    base_url: str, channel: str, *, fragments: int = 200, fragment_bytes: int = 500_000, warmup: int = 5
) -> LatencySummary:
    """POST a header, ``warmup`` untimed fragments, then ``fragments`` timed ones; see the module doc."""
    return summarize(publish_samples(base_url, channel, fragments=fragments, fragment_bytes=fragment_bytes,
                                     warmup=warmup))  # fmt: skip


def publish_samples(
    base_url: str,
    channel: str,
    *,
    fragments: int,
    fragment_bytes: int = 500_000,
    warmup: int = 5,
    per_segment: bool = False,
    check_url: str | None = None,
) -> list[int]:
    """Client-side latencies (ns) of ``fragments`` timed POSTs after ``warmup`` untimed ones.

    ``per_segment``: the header to ``{track}/init.mp4`` and each fragment to ``{track}/{n}.m4s``
    (DASH-IF per-segment ingest) instead of one ``Streams({track}.cmfv)`` path for all.
    ``check_url``: where to ask for the fragment count (default ``base_url``).
    """
    url = urlsplit(base_url)
    stream = f"/ingest/{channel}/Streams({TRACK}.cmfv)"
    header_path = f"/ingest/{channel}/{TRACK}/init.mp4" if per_segment else stream
    conn = _Connection(url.hostname or "127.0.0.1", url.port or 80, timeout_s=10.0)
    samples: list[int] = []
    try:
        with httpx.Client(base_url=check_url or base_url, timeout=10.0) as client:
            status, body, _ = conn.post(
                header_path, make_header(track_id=1, handler="vide", timescale=TIMESCALE)
            )
            if status != 200:
                raise PublishError(f"header refused: {status} {body.decode(errors='replace').strip()}")
            for number in range(warmup + fragments):
                path = f"/ingest/{channel}/{TRACK}/{number}.m4s" if per_segment else stream
                status, body, latency_ns = conn.post(path, synthetic_fragment(number, fragment_bytes))
                if status != 200:
                    raise PublishError(f"fragment {number}: {status} {body.decode(errors='replace').strip()}")
                if (count := _fragment_count(client, channel)) != number + 1:
                    raise PublishError(f"fragment {number} acknowledged but the timeline holds {count}")
                if number >= warmup:
                    samples.append(latency_ns)
    finally:
        conn.close()
    return samples
