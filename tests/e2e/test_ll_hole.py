"""Low latency across a hole the encoder left: dash.js and hls.js play on without a long stall.

FFmpeg's DASH muxer PUTs one 0.48 s CMAF chunk per request (a keyframe each) through a small nginx.
While a player plays, the nginx is reloaded to drop one video PUT a few chunks ahead (it answers 200
and forwards nothing), as a broken network or encoder would lose it; audio stays whole. The origin
then has a 0.48 s hole in the video timeline, cutting a segment short, and the next segment starts
after it. Each player (low-latency mode) plays 30 s through its own hole with no stall over 1 s (a
short one to jump the hole is allowed). The holes are checked to exist: each adds a
PROGRAM-DATE-TIME to the HLS video playlist where the media resumes.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import m3u8
import pytest

from bench.procs import stop_process_group, tail, wait_for_port
from services.cluster.runner import NGINX
from services.demo import LADDER, dash_put_command, run_pusher, stop_pusher, wallclock_offset_s
from tests.e2e.origin import free_port, running_origin
from tests.e2e.players import PlayerKind, play

pytestmark = pytest.mark.e2e
CHANNEL = "hole"
CHUNK_S = 0.48
PLAY_S = 30
DROP_AFTER_S = 10  # into playback
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
_VIDEO_PUT = re.compile(rf"/ingest/{CHANNEL}/chunk-stream0-(\d+)\.m4s")


def _conf(run_dir: Path, port: int, origin_port: int, dropped: int | None) -> str:
    """The dropper's nginx.conf: all to the origin, streamed, but the PUT of video chunk ``dropped``."""
    temp = "".join(f"    {name}_temp_path {run_dir / 'temp' / name};\n" for name in TEMP_PATHS)
    user = "user root;\n" if os.geteuid() == 0 else ""
    drop = f"/ingest/{CHANNEL}/chunk-stream0-{dropped:05d}.m4s" if dropped is not None else "/-"
    return (
        f"{user}worker_processes 1;\ndaemon off;\npid {run_dir / 'nginx.pid'};\n"
        f"error_log {run_dir / 'error.log'} warn;\nevents {{ worker_connections 256; }}\n"
        f"http {{\n    log_format put '$uri';\n    access_log {run_dir / 'access.log'} put;\n{temp}"
        f"    server {{\n        listen 127.0.0.1:{port};\n        client_max_body_size 0;\n"
        f"        location = {drop} {{ return 200 'dropped'; }}\n"
        "        location / {\n"
        f"            proxy_pass http://127.0.0.1:{origin_port};\n"
        "            proxy_http_version 1.1;\n"
        "            proxy_request_buffering off;\n"
        "            proxy_ignore_client_abort on;\n"  # FFmpeg closes right after a PUT's last chunk
        "        }\n    }\n}\n"
    )


@dataclass(frozen=True, slots=True)
class Dropper:
    """An nginx between FFmpeg and the origin that can be told to drop one video chunk's PUT."""

    url: str
    run_dir: Path
    port: int
    origin_port: int
    process: subprocess.Popen[bytes]

    def drop_soon(self, ahead: int = 3) -> int:
        """Reload to drop the video chunk ``ahead`` after the newest one PUT so far; its number."""
        seen = [int(m.group(1)) for m in _VIDEO_PUT.finditer((self.run_dir / "access.log").read_text())]
        dropped = max(seen) + ahead
        (self.run_dir / "nginx.conf").write_text(_conf(self.run_dir, self.port, self.origin_port, dropped))
        self.process.send_signal(signal.SIGHUP)
        return dropped


@contextlib.contextmanager
def _dropper(run_dir: Path, origin_port: int) -> Iterator[Dropper]:
    for name in TEMP_PATHS:
        (run_dir / "temp" / name).mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = run_dir / "nginx.conf"
    argv = [NGINX, "-p", f"{run_dir}/", "-c", str(conf), "-e", str(run_dir / "error.log")]
    conf.write_text(_conf(run_dir, port, origin_port, None))
    with (run_dir / "nginx.out").open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, start_new_session=True)
    try:
        assert wait_for_port(port, proc), tail(run_dir / "error.log")
        yield Dropper(f"http://127.0.0.1:{port}", run_dir, port, origin_port, proc)
    finally:
        stop_process_group(proc)


@dataclass(frozen=True, slots=True)
class Pushing:
    base: str  # the channel's playback base URL on the origin
    dropper: Dropper


@pytest.fixture(scope="module")
def pushing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pushing]:
    root = tmp_path_factory.mktemp("hole")
    (root / "origin").mkdir()
    (root / "dropper").mkdir()
    with (
        running_origin(root / "origin") as origin,
        _dropper(root / "dropper", int(origin.base_url.rsplit(":", 1)[1])) as dropper,
    ):
        command = dash_put_command(
            dropper.url,
            CHANNEL,
            ladder=LADDER[-1:],
            fragment_s=CHUNK_S,
            put_s=CHUNK_S,
            persistent=False,  # a reload closes kept-alive connections; FFmpeg would not recover
            ts_offset_s=wallclock_offset_s(),
        )
        pusher = run_pusher(command, log_path=root / "ffmpeg.log")
        base = f"{origin.base_url}/live/{CHANNEL}"
        try:
            with httpx.Client(timeout=10) as client:
                deadline = time.monotonic() + 60
                while _video_seconds(client, base) < 8:
                    assert pusher.poll() is None and time.monotonic() < deadline, tail(root / "ffmpeg.log")
                    time.sleep(0.5)
            yield Pushing(base, dropper)
            assert pusher.poll() is None, "FFmpeg stopped"
        finally:
            stop_pusher(pusher)


@pytest.mark.parametrize(("kind", "manifest"), [("dash", "dash/manifest.mpd"), ("hls", "hls/index.m3u8")])
def test_low_latency_player_plays_across_a_hole(pushing: Pushing, kind: PlayerKind, manifest: str) -> None:
    with httpx.Client(timeout=10) as client, concurrent.futures.ThreadPoolExecutor(1) as pool:
        holes = _pdt_count(client, pushing.base, video=True)
        playing = pool.submit(play, kind, f"{pushing.base}/{manifest}", seconds=PLAY_S, low_latency=True)
        time.sleep(DROP_AFTER_S)
        dropped = pushing.dropper.drop_soon()
        stats = playing.result()
        assert _pdt_count(client, pushing.base, video=True) == holes + 1, f"chunk {dropped} left no hole"
        assert _pdt_count(client, pushing.base, video=False) == 1, "audio lost something"
    print(f"\n{stats.summary()} stalls={stats.stalls}")
    assert stats.started and not stats.fatal_errors, stats.summary()
    assert stats.played_s >= PLAY_S - 1, stats.summary()
    assert all(s.duration_s <= 1.0 and not s.ongoing for s in stats.stalls), (
        f"{stats.summary()} {stats.stalls}"
    )


def _media_uri(client: httpx.Client, base: str, video: bool) -> str | None:
    master = m3u8.loads(client.get(f"{base}/hls/index.m3u8").text)
    if video:
        return master.playlists[0].uri if master.playlists else None
    return next((m.uri for m in master.media if m.uri), None)


def _pdt_count(client: httpx.Client, base: str, video: bool) -> int:
    """PROGRAM-DATE-TIMEs in a media playlist: one at its start and one after each time gap."""
    uri = _media_uri(client, base, video)
    assert uri is not None
    return client.get(f"{base}/hls/{uri}").text.count("#EXT-X-PROGRAM-DATE-TIME:")


def _video_seconds(client: httpx.Client, base: str) -> float:
    """Seconds of video the origin lists (0 before its first segment)."""
    if client.get(f"{base}/hls/index.m3u8").status_code != 200:
        return 0.0
    uri = _media_uri(client, base, video=True)
    if uri is None:
        return 0.0
    playlist = m3u8.loads(client.get(f"{base}/hls/{uri}").text)
    return float(sum(s.duration or 0 for s in playlist.segments))
