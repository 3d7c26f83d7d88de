"""The cluster end to end, low latency, with nodes killed during playback (issue: the cluster).

A real local cluster (the runner behind ``headwater cluster up``): nginx front, 2 ingest nodes,
2 packagers, memcached, the session's Cassandra. FFmpeg pushes through the front with
``-ldash 1 -streaming 1`` and 0.5 s chunks; hls.js and dash.js, both in low-latency mode, play
through the front in headless Chromium, one at a time; during each, the packager that owns the
channel is SIGKILLed, then an ingest node. Players must not stall for more than 1 s: the front
re-delivers the PUT a dying ingest node was taking to the other one (FFmpeg never resends), and the
new owner packager serves from the shared store. hls.js stays within 3 s of the live edge
(EXT-X-PROGRAM-DATE-TIME), on average and at the end.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import m3u8
import pytest

from services.demo import LADDER, dash_put_command, run_pusher, stop_pusher, wallclock_offset_s
from tests.cluster.harness import Cluster, running_cluster
from tests.e2e.players import PlayerKind, PlayerStats, play
from tests.integration.servers import CassandraServer

pytestmark = pytest.mark.e2e
CHANNEL = "ll"
PLAY_S = 32
KILL_AFTER_S = 9
MAX_STALL_S = 1.0


@pytest.fixture(scope="module")
def cluster(cassandra_server: CassandraServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(
        tmp_path_factory.mktemp("cluster"), ingest=2, packagers=2, memcached=1, cassandra=cassandra_server
    ) as running:
        yield running


def _wait_for_parts(client: httpx.Client, base: str, timeout_s: float = 60) -> str:
    """The first video media playlist's name once it lists parts."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        master = client.get(f"{base}/hls/index.m3u8")
        if master.status_code == 200:
            playlists = m3u8.loads(master.text).playlists
            if playlists:
                media = client.get(f"{base}/hls/{playlists[0].uri}")
                if media.status_code == 200 and "#EXT-X-PART:" in media.text:
                    return str(playlists[0].uri)
        time.sleep(0.5)
    raise AssertionError(f"no LL-HLS parts within {timeout_s} s")


def _owner(client: httpx.Client, cluster: Cluster, base: str) -> str:
    """The packager the front routes the channel to (nginx reports the upstream it used)."""
    address = client.get(f"{base}/hls/index.m3u8").headers["x-upstream"]
    port = int(address.rsplit(":", 1)[1])
    return next(n.name for n in cluster.topology.nodes if n.role == "packager" and n.port == port)


@dataclass(frozen=True, slots=True)
class Played:
    stats: PlayerStats
    packager_killed_at_s: float  # seconds after playback started
    ingest_killed_at_s: float


def _play_through_kills(
    cluster: Cluster, client: httpx.Client, kind: PlayerKind, url: str, ingest: str
) -> Played:
    """Play ``url``; SIGKILL the channel's packager ``KILL_AFTER_S`` into it and the ``ingest`` node
    ``KILL_AFTER_S`` later; start them again once the player is done."""
    base = f"{cluster.front_url}/live/{CHANNEL}"
    owner = _owner(client, cluster, base)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        playing = pool.submit(play, kind, url, seconds=PLAY_S, low_latency=True)
        time.sleep(KILL_AFTER_S)
        cluster.kill(owner)
        packager_killed_ms = time.time() * 1000
        time.sleep(KILL_AFTER_S)
        cluster.kill(ingest)
        ingest_killed_ms = time.time() * 1000
        stats = playing.result()
    assert _owner(client, cluster, base) != owner, "the front did not move the channel"
    cluster.start(ingest)
    cluster.start(owner)
    started_ms = float(stats.raw.get("playbackStartedEpochMs") or ingest_killed_ms)
    return Played(stats, (packager_killed_ms - started_ms) / 1000, (ingest_killed_ms - started_ms) / 1000)


def _check(played: Played) -> None:
    stats = played.stats
    summary = (
        f"{stats.summary()} stalls={stats.stalls} kills at {played.packager_killed_at_s:.1f} s (packager), "
    )
    summary += f"{played.ingest_killed_at_s:.1f} s (ingest)"
    assert stats.started and not stats.fatal_errors, summary
    assert played.packager_killed_at_s > 0, f"the packager died before playback started: {summary}"
    assert played.ingest_killed_at_s > played.packager_killed_at_s, summary
    assert all(s.duration_s <= MAX_STALL_S and not s.ongoing for s in stats.stalls), summary
    assert stats.played_s >= PLAY_S - 5, summary


def _assert_no_hole(client: httpx.Client, base: str) -> None:
    """Every track's timeline is whole since the stream started: an HLS media playlist (the DVR
    window covers the whole run) has a PROGRAM-DATE-TIME on its first segment and on every segment
    after a time gap, so exactly one means no fragment was lost to a dying node."""
    master = m3u8.loads(client.get(f"{base}/hls/index.m3u8").text)
    uris = [p.uri for p in master.playlists] + [m.uri for m in master.media if m.uri]
    assert len(uris) == 2, master.dumps()  # the video rendition and the audio
    for uri in uris:
        text = client.get(f"{base}/hls/{uri}").text
        assert text.count("#EXT-X-PROGRAM-DATE-TIME:") == 1, f"{uri} has a hole:\n{text}"


def test_low_latency_players_survive_killed_nodes(cluster: Cluster, tmp_path: Path) -> None:
    base = f"{cluster.front_url}/live/{CHANNEL}"
    # One chunk per PUT: the front takes a PUT whole before delivering it (so that it can deliver it
    # again), so a longer chunked PUT would reach the origin only at its end. 0.48 s = 12 frames at
    # 25 fps (GOPs and chunks); the origin still makes ~2 s segments of 4 parts from them.
    command = dash_put_command(
        cluster.front_url,
        CHANNEL,
        ladder=LADDER[-1:],
        fragment_s=0.48,
        put_s=0.48,
        persistent=False,  # a connection per PUT: see dash_put_command
        ts_offset_s=wallclock_offset_s(),
    )
    pusher = run_pusher(command, log_path=tmp_path / "ffmpeg.log")
    try:
        with httpx.Client(timeout=10) as client:
            _wait_for_parts(client, base)
            # one player at a time: two Chromiums, FFmpeg and the cluster would overload the 2 cores
            hls = _play_through_kills(cluster, client, "hls", f"{base}/hls/index.m3u8", "ingest-1")
            dash = _play_through_kills(cluster, client, "dash", f"{base}/dash/manifest.mpd", "ingest-2")
            assert pusher.poll() is None, "FFmpeg gave up after an ingest node died"
            _assert_no_hole(client, base)
    finally:
        stop_pusher(pusher)
    for played in (hls, dash):
        print(f"\n{played.stats.summary()} stalls={played.stats.stalls}")  # shown with pytest -s
        _check(played)
    # Latency is a steady-state figure: a stall (allowed, <= 1 s) adds its length until hls.js has
    # caught up again, so the run's mean and its last sample (recovered) are what must hold.
    latency = hls.stats.pdt_latency
    assert latency.mean_s is not None and latency.mean_s <= 3.0, hls.stats.summary()
    assert latency.last_s is not None and latency.last_s <= 3.0, hls.stats.summary()
