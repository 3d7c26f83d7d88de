"""The pure helpers of the bench harness: metrics, playlist walking, nginx config, /proc parsing, report."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cpu import stat_cpu_ticks
from bench.fixtures import closest, media_uris, playlist_uris, resolve
from bench.nginx import file_path, nginx_config
from bench.publish import parse_publish_metrics, summarize
from bench.report import Environment, LoadRun, Results, ServerRun, render
from bench.wrk import WrkResult
from services.shared.metrics import Metrics

MULTIVARIANT = """\
#EXTM3U
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="audio128",DEFAULT=YES,AUTOSELECT=YES,URI="audio128.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=3300000,CODECS="avc1.42c01f,mp4a.40.2",AUDIO="audio"
video720.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2000000,CODECS="avc1.42c01f,mp4a.40.2",AUDIO="audio"
video540.m3u8?start=1700000000
"""

MEDIA = """\
#EXTM3U
#EXT-X-TARGETDURATION:2
#EXT-X-MAP:URI="../media/video540/init.mp4"
#EXTINF:2.00000,
../media/video540/0.m4s
#EXTINF:2.00000,
../media/video540/25600.m4s
"""


def test_publish_metrics_round_trip_through_the_origin_renderer() -> None:
    metrics = Metrics()
    for ms in range(1, 101):
        metrics.observe_publish(ms * 1_000_000, 1000)
    summary = parse_publish_metrics(metrics.render([]))
    assert summary is not None
    assert summary.p50_s == pytest.approx(0.050)
    assert summary.p99_s == pytest.approx(0.100)  # nearest rank, as the origin computes it
    assert summary.count == 100


def test_publish_metrics_before_any_fragment() -> None:
    assert parse_publish_metrics(Metrics().render([])) is None


def test_summarize_uses_nearest_rank() -> None:
    summary = summarize([i * 1_000_000 for i in range(1, 201)])
    assert (summary.p50_s, summary.p99_s, summary.max_s, summary.count) == (0.1, 0.198, 0.2, 200)


def test_playlist_walk() -> None:
    assert playlist_uris(MULTIVARIANT) == ["audio128.m3u8", "video720.m3u8", "video540.m3u8?start=1700000000"]
    assert media_uris(MEDIA) == ["../media/video540/0.m4s", "../media/video540/25600.m4s"]
    assert resolve("/live/c/hls/index.m3u8", "video540.m3u8?start=1") == "/live/c/hls/video540.m3u8"
    assert resolve("/live/c/hls/video540.m3u8", "../media/video540/0.m4s") == "/live/c/media/video540/0.m4s"


def test_closest() -> None:
    assert closest({"/a": 450_000, "/b": 530_000, "/c": 700_000}, 500_000) == "/b"
    assert closest({"/b": 400, "/a": 600}, 500) == "/a"  # a tie goes to the first in sorted order
    with pytest.raises(ValueError, match="no candidates"):
        closest({}, 1)


def test_nginx_config() -> None:
    conf = nginx_config(prefix=Path("/tmp/x"), root=Path("/tmp/x/root"), port=8081, run_as_root=True)
    assert conf.startswith("user root;\nworker_processes 1;\ndaemon off;\n")
    assert "listen 127.0.0.1:8081;" in conf
    assert "root /tmp/x/root;" in conf
    assert "client_body_temp_path /tmp/x/temp/client_body;" in conf
    assert conf.count("{") == conf.count("}")
    assert "user" not in nginx_config(prefix=Path("/p"), root=Path("/p/r"), port=1, run_as_root=False)


def test_file_path_stays_under_the_root() -> None:
    root = Path("/srv/root")
    assert file_path(root, "/live/c/media/v/0.m4s") == Path("/srv/root/live/c/media/v/0.m4s")
    for bad in ("live/x", "/live/../../etc/passwd", "/", "/live/./x", "/live//x", ""):
        with pytest.raises(ValueError, match="URL path"):
            file_path(root, bad)


def test_stat_cpu_ticks_with_an_awkward_command_name() -> None:
    stat = "4242 (we ird) name)) S 1 4242 4242 0 -1 4194560 1500 0 0 0 731 269 0 0 20 0 1 0 100 0 0"
    assert stat_cpu_ticks(stat) == 731 + 269


def _run(rps: float, bytes_per_s: float, cpu_s: float) -> ServerRun:
    result = WrkResult(
        requests_per_s=rps,
        transfer_bytes_per_s=bytes_per_s,
        requests=int(rps * 10),
        duration_s=10.0,
        latency_p50_s=0.001,
        latency_p99_s=0.01,
        socket_errors=0,
        non_2xx_3xx=0,
    )
    return ServerRun(wrk=result, server_cpu_s=cpu_s, client_cpu_s=5.0)


def test_report_has_every_row_and_ratio() -> None:
    env = Environment(
        command="python -m bench.run",
        date="2025-01-01 00:00:00 UTC",
        nproc=2,
        cpu="cpu",
        load_start=(1.0, 2.0, 3.0),
        load_end=(1.5, 2.0, 3.0),
        git="abc1234",
        versions="Python 3.11",
    )
    results = Results(
        duration_s=10,
        warmup_s=1,
        playlist=LoadRun(
            path="/live/b/hls/v.m3u8",
            size=449,
            connections=32,
            headwater=_run(5000, 4e6, 9),
            nginx=_run(20000, 14e6, 6),
        ),
        segment=LoadRun(
            path="/live/b/media/v/0.m4s",
            size=501_733,
            connections=8,
            headwater=_run(900, 450e6, 4),
            nginx=_run(1000, 500e6, 2),
        ),
        publish_ffmpeg=parse_publish_metrics(Metrics().render([])),
        media_s=12,
        publish_client=summarize([2_000_000, 30_000_000]),
        publish_fragment_bytes=500_000,
    )
    text = render(env, results)
    assert "| media playlist req/s: `/live/b/hls/v.m3u8` (449 B), -c 32 | 5,000 | 20,000 | 0.25 |" in text
    assert "≥ 60% of nginx: **not met**" in text
    assert "| 450.0 | 500.0 | 0.90 | ≥ 80% of nginx: met |" in text
    assert "| media playlist server CPU per request | 180 µs | 30 µs | 6.00 | |" in text
    assert "p99 ≤ 10 ms: **not met**" in text
    assert "load average (1/5/15 min) 1.00 / 2.00 / 3.00 at start, 1.50 / 2.00 / 3.00 at end" in text
    assert "FFmpeg ladder" not in text  # no /metrics samples: no row
