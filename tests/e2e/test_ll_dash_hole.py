"""LL-DASH across a hole the encoder left: dash.js in low-latency mode plays on without a long stall.

FFmpeg's DASH muxer PUTs one 0.48 s CMAF chunk per request (a keyframe each) through a small nginx that
drops one video PUT mid-run (answers 200, forwards nothing), as a broken network or encoder would lose
it; audio stays whole. The origin then has a 0.48 s hole in the video timeline, in the segment being
written at the time: that segment ends short of the length its in-progress listing promised, and the
next one starts after the hole. dash.js plays through it with no stall over 1 s (a stall to jump the
hole is allowed). The hole itself is checked too: the HLS video playlist carries a second
PROGRAM-DATE-TIME where the media resumes.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import m3u8
import pytest

from bench.procs import stop_process_group, tail, wait_for_port
from services.cluster.runner import NGINX
from services.demo import LADDER, dash_put_command, run_pusher, stop_pusher, wallclock_offset_s
from tests.e2e.origin import free_port, running_origin
from tests.e2e.players import play

pytestmark = pytest.mark.e2e
CHANNEL = "hole"
CHUNK_S = 0.48
DROPPED = 50  # FFmpeg's 50th video chunk: 24 s into the push, ~10 s into playback
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def _dropper_conf(run_dir: Path, port: int, origin_port: int) -> str:
    temp = "".join(f"    {name}_temp_path {run_dir / 'temp' / name};\n" for name in TEMP_PATHS)
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (
        f"{user}worker_processes 1;\ndaemon off;\npid {run_dir / 'nginx.pid'};\n"
        f"error_log {run_dir / 'error.log'} warn;\nevents {{ worker_connections 256; }}\n"
        f"http {{\n    access_log off;\n{temp}"
        f"    server {{\n        listen 127.0.0.1:{port};\n        client_max_body_size 0;\n"
        f"        location = /ingest/{CHANNEL}/chunk-stream0-{DROPPED:05d}.m4s {{ return 200 'dropped'; }}\n"
        "        location / {\n"
        f"            proxy_pass http://127.0.0.1:{origin_port};\n"
        "            proxy_http_version 1.1;\n"
        "            proxy_request_buffering off;\n"
        "        }\n    }\n}\n"
    )


@contextlib.contextmanager
def _dropper(run_dir: Path, origin_port: int) -> Iterator[str]:
    for name in TEMP_PATHS:
        (run_dir / "temp" / name).mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = run_dir / "nginx.conf"
    conf.write_text(_dropper_conf(run_dir, port, origin_port))
    argv = [NGINX, "-p", f"{run_dir}/", "-c", str(conf), "-e", str(run_dir / "error.log")]
    with (run_dir / "nginx.out").open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, start_new_session=True)
    try:
        assert wait_for_port(port, proc), tail(run_dir / "error.log")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process_group(proc)


def _pdt_count(client: httpx.Client, base: str, video: bool) -> int:
    master = m3u8.loads(client.get(f"{base}/hls/index.m3u8").text)
    uri = master.playlists[0].uri if video else next(m.uri for m in master.media if m.uri)
    return client.get(f"{base}/hls/{uri}").text.count("#EXT-X-PROGRAM-DATE-TIME:")


def test_dash_js_low_latency_plays_across_a_hole(tmp_path: Path) -> None:
    (tmp_path / "origin").mkdir()
    (tmp_path / "dropper").mkdir()
    with (
        running_origin(tmp_path / "origin") as origin,
        _dropper(tmp_path / "dropper", int(origin.base_url.rsplit(":", 1)[1])) as dropper,
    ):
        command = dash_put_command(
            dropper,
            CHANNEL,
            ladder=LADDER[-1:],
            fragment_s=CHUNK_S,
            put_s=CHUNK_S,
            ts_offset_s=wallclock_offset_s(),
        )
        pusher = run_pusher(command, log_path=tmp_path / "ffmpeg.log")
        base = f"{origin.base_url}/live/{CHANNEL}"
        try:
            with httpx.Client(timeout=10) as client:
                deadline = time.monotonic() + 60
                while (
                    client.get(f"{base}/dash/manifest.mpd").status_code != 200 or _seconds(client, base) < 8
                ):
                    assert pusher.poll() is None and time.monotonic() < deadline, tail(
                        tmp_path / "ffmpeg.log"
                    )
                    time.sleep(0.5)
                stats = play("dash", f"{base}/dash/manifest.mpd", seconds=30, low_latency=True)
                assert pusher.poll() is None, "FFmpeg stopped"
                assert _pdt_count(client, base, video=True) == 2, "no hole in the video timeline"
                assert _pdt_count(client, base, video=False) == 1, "audio lost something"
        finally:
            stop_pusher(pusher)
    print(f"\n{stats.summary()} stalls={stats.stalls}")
    assert stats.started and not stats.fatal_errors, stats.summary()
    assert stats.played_s >= 29, stats.summary()
    assert all(s.duration_s <= 1.0 and not s.ongoing for s in stats.stalls), (
        f"{stats.summary()} {stats.stalls}"
    )


def _seconds(client: httpx.Client, base: str) -> float:
    """Seconds of video the origin holds (from the HLS video playlist)."""
    master = m3u8.loads(client.get(f"{base}/hls/index.m3u8").text)
    if not master.playlists:
        return 0.0
    playlist = m3u8.loads(client.get(f"{base}/hls/{master.playlists[0].uri}").text)
    return float(sum(s.duration or 0 for s in playlist.segments))
