"""``headwater selftest``: push a short synthetic stream through an origin and play it back over HTTP.

What ``helm test`` runs inside the cluster (and anyone can run against any origin): one video track of
``--fragments`` CMAF fragments of 2 s each, made with the project's own box writer and anchored to the
wall clock as a live encoder's would be, POSTed as a long-running ``Streams()`` ingest; then the
multivariant playlist, the media playlist and its first segment are fetched and checked. Exit status
0 when all of it works; otherwise 1 with the step that failed, its status and its body.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from services.shared.media.synthetic import make_fragment, make_header

TIMESCALE = 90_000
FRAGMENT_SAMPLES = 50  # 2 s of 25 fps
SAMPLE_TICKS = 3_600
#: How long to retry while the origin answers 503 (a store or node still starting).
RETRY_S = 60.0


class SelftestFailed(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Outcome:
    segments: int
    segment_bytes: int
    seconds: float


def synthetic_track(fragments: int, *, now_ms: int) -> bytes:
    """A CMAF header and ``fragments`` 2 s fragments whose decode times are the Unix epoch in ticks."""
    fragment_ticks = FRAGMENT_SAMPLES * SAMPLE_TICKS
    first = (now_ms * TIMESCALE // 1000) // fragment_ticks * fragment_ticks - fragments * fragment_ticks
    body = make_header(track_id=1, timescale=TIMESCALE)
    for n in range(fragments):
        body += make_fragment(
            track_id=1,
            sequence_number=n + 1,
            decode_time=first + n * fragment_ticks,
            sample_durations=(SAMPLE_TICKS,) * FRAGMENT_SAMPLES,
            sample_sizes=(400,) * FRAGMENT_SAMPLES,
        )
    return body


def run(url: str, channel: str, *, fragments: int = 4, timeout_s: float = 10.0) -> Outcome:
    started = time.monotonic()
    base = url.rstrip("/")
    body = synthetic_track(fragments, now_ms=time.time_ns() // 1_000_000)
    with httpx.Client(timeout=timeout_s) as client:
        _retrying(client, "POST", f"{base}/ingest/{channel}/Streams(selftest.cmfv)", content=body)
        _retrying(client, "GET", f"{base}/live/{channel}/hls/index.m3u8")
        media_url = httpx.URL(f"{base}/live/{channel}/hls/selftest.m3u8")
        media = _retrying(client, "GET", str(media_url)).text
        uris = [line for line in media.splitlines() if line and not line.startswith("#")]
        if not uris:
            raise SelftestFailed(f"the media playlist lists no segment:\n{media}")
        segment = _retrying(client, "GET", str(media_url.join(uris[0]))).content
        if segment[4:8] not in (b"styp", b"moof"):
            raise SelftestFailed(f"{uris[0]} is not a CMAF segment (starts {segment[:8]!r})")
    return Outcome(segments=len(uris), segment_bytes=len(segment), seconds=time.monotonic() - started)


def _retrying(client: httpx.Client, method: str, url: str, content: bytes | None = None) -> httpx.Response:
    deadline = time.monotonic() + RETRY_S
    while True:
        try:
            reply = client.request(method, url, content=content)
        except httpx.TransportError as exc:
            if time.monotonic() > deadline:
                raise SelftestFailed(f"{method} {url}: {exc}") from exc
        else:
            if reply.status_code < 300:
                return reply
            if reply.status_code not in (502, 503, 504) or time.monotonic() > deadline:
                raise SelftestFailed(f"{method} {url}: {reply.status_code} {reply.text[:300]}")
        time.sleep(1.0)
