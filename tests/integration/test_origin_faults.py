"""`headwater serve --store cassandra` against real servers, with failures injected mid-stream.

- a memcached node killed while FFmpeg streams in: playback keeps answering, never a 5xx;
- Cassandra stopped while an encoder posts fragments: ingest answers 503 and keeps nothing partial; after
  Cassandra is back the encoder's retries land, and every fragment it got a 2xx for is there, intact.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import m3u8
import pytest

from services.demo import AUDIO, LADDER, long_post_command, run_pusher, stop_pusher, wallclock_offset_s
from services.shared.media.synthetic import make_fragment, make_header
from tests.e2e.origin import Origin, running_origin
from tests.integration.servers import CassandraServer, MemcachedServer

TS = 90_000
FRAGMENT_TICKS = 2 * TS


def _store_args(cassandra: CassandraServer, memcached: list[MemcachedServer]) -> tuple[str, ...]:
    nodes = ",".join(f"{m.host}:{m.port}" for m in memcached)
    return (
        "--store", "cassandra", "--cassandra", cassandra.contact_point,
        "--cassandra-port", str(cassandra.port), "--keyspace", f"o_{uuid.uuid4().hex[:16]}",
        "--consistency", "ONE", "--memcached", nodes,
    )  # fmt: skip


@pytest.fixture
def origin(
    tmp_path: Path, cassandra_server: CassandraServer, memcached_nodes: list[MemcachedServer]
) -> Iterator[Origin]:
    with running_origin(tmp_path, args=_store_args(cassandra_server, memcached_nodes)) as running:
        yield running


def _segment_urls(client: httpx.Client, base: str, channel: str) -> list[str]:
    urls = []
    master = m3u8.loads(client.get(f"{base}/live/{channel}/hls/index.m3u8").text)
    for uri in [p.uri for p in master.playlists] + [m.uri for m in master.media if m.uri]:
        playlist = m3u8.loads(client.get(f"{base}/live/{channel}/hls/{uri}").text)
        urls += [f"{base}/live/{channel}/hls/{s.uri}" for s in playlist.segments]
    return urls


def test_memcached_node_killed_mid_stream_playback_never_fails(
    origin: Origin, memcached_nodes: list[MemcachedServer], tmp_path: Path
) -> None:
    command = long_post_command(
        origin.base_url, "mc", ladder=LADDER[-1:], ts_offset_s=wallclock_offset_s()
    )  # one rendition + audio: the machine has 2 cores and Cassandra runs on them too
    pusher = run_pusher(command, log_path=tmp_path / "ffmpeg.log")
    statuses: list[int] = []
    polled: set[str] = set()
    try:
        with httpx.Client(timeout=10) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(_safe_urls(client, origin.base_url)) < 4:
                time.sleep(0.5)
            assert _safe_urls(client, origin.base_url), "no segments within 60 s"
            killed_at = time.monotonic()
            memcached_nodes[0].kill()
            while time.monotonic() - killed_at < 8:
                for url in _segment_urls(client, origin.base_url, "mc"):
                    statuses.append(client.get(url).status_code)
                    polled.add(url)
                statuses.append(client.get(f"{origin.base_url}/live/mc/hls/index.m3u8").status_code)
            assert pusher.poll() is None, "FFmpeg stopped: ingest failed while a cache node was down"
    finally:
        stop_pusher(pusher)
        memcached_nodes[0].start()
    assert statuses and all(s == 200 for s in statuses), sorted(set(statuses))
    assert any(f"/{AUDIO.name}/" in url for url in polled) and any(
        f"/{LADDER[-1].name}/" in url for url in polled
    )


def _safe_urls(client: httpx.Client, base: str) -> list[str]:
    try:
        return _segment_urls(client, base, "mc")
    except (httpx.HTTPError, ValueError):
        return []


def _fragment(n: int) -> bytes:
    return make_fragment(
        track_id=1, sequence_number=n + 1, decode_time=n * FRAGMENT_TICKS,
        sample_durations=(3600,) * 50, sample_sizes=(1000 + n,) * 50,
    )  # fmt: skip


def _post_until_accepted(
    client: httpx.Client, url: str, body: bytes, log: list[int], deadline: float
) -> None:
    """An encoder's retry loop: 503 means the origin kept nothing and wants the same object again."""
    while time.monotonic() < deadline:
        try:
            status = client.put(url, content=body).status_code
        except httpx.TransportError:
            status = 0
        log.append(status)
        if 200 <= status < 300:
            return
        assert status in (503, 0), f"unexpected {status} from ingest"
        time.sleep(0.5)
    raise AssertionError(f"{url} never accepted; statuses {log[-5:]}")


def test_cassandra_stopped_mid_stream_ingest_503_then_every_acked_fragment_is_there(
    origin: Origin, cassandra_server: CassandraServer
) -> None:
    base = f"{origin.base_url}/ingest/cs/v"
    statuses: list[int] = []
    acked: list[int] = []
    with httpx.Client(timeout=15) as client:
        deadline = time.monotonic() + 240
        _post_until_accepted(
            client, f"{base}/init.mp4", make_header(track_id=1, timescale=TS), statuses, deadline
        )
        for n in range(4):
            _post_until_accepted(client, f"{base}/{n}.m4s", _fragment(n), statuses, deadline)
            acked.append(n)
        cassandra_server.stop()
        try:
            refused = client.put(f"{base}/4.m4s", content=_fragment(4))
            assert refused.status_code == 503, refused.text
            assert "unavailable" in refused.text.lower()
            timeline = client.get(f"{origin.base_url}/api/channels/cs").json()["tracks"][0]
            assert timeline["fragments"] == 4  # the refused fragment is not visible
        finally:
            cassandra_server.start()
            cassandra_server.wait_ready()
        for n in range(4, 8):
            _post_until_accepted(client, f"{base}/{n}.m4s", _fragment(n), statuses, deadline)
            acked.append(n)
        assert 503 in statuses
        status = client.get(f"{origin.base_url}/api/channels/cs").json()["tracks"][0]
        assert status["fragments"] == len(acked)
        for n in acked[:-1]:  # the last segment is still open (no later one started it)
            segment = client.get(f"{origin.base_url}/live/cs/media/v/{n * FRAGMENT_TICKS}.m4s")
            assert segment.status_code == 200 and segment.content == _fragment(n)
