"""The player harness itself works: FFmpeg's own live HLS and DASH output plays without stalls.

No Headwater here: FFmpeg's hls/dash muxers write a live stream to a temporary directory, a tiny
CORS-enabled static server publishes it on 127.0.0.1, and hls.js / dash.js play it in Chromium.
If these fail, a failing origin e2e test says nothing about the origin.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from services.demo import AUDIO, FRAME_RATE, GOP_S, LADDER, run_pusher, stop_pusher

from .players import PlayerStats, play

pytestmark = pytest.mark.e2e  # FFmpeg and node come from scripts/setup.sh: missing ones must fail

PLAY_S = 20.0
MIN_PLAYED_S = 15.0
SEGMENT_S = 2
RENDITION = LADDER[-1]  # 640x360: one small rendition keeps the encoder cheap


class _CorsHandler(SimpleHTTPRequestHandler):
    """Static files with CORS and no caching, plus ``/time`` (xs:dateTime) for dash.js's clock."""

    extensions_map = {  # noqa: RUF012 - SimpleHTTPRequestHandler's own class attribute
        **SimpleHTTPRequestHandler.extensions_map,
        ".m3u8": "application/vnd.apple.mpegurl",
        ".mpd": "application/dash+xml",
        ".m4s": "video/iso.segment",
        ".mp4": "video/mp4",
    }

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/time":
            body = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        return


@contextmanager
def _static_server(root: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_CorsHandler, directory=str(root)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _encoder_args(duration_s: float) -> list[str]:
    gop = str(FRAME_RATE * GOP_S)
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "warning", "-stats", "-stats_period", "5",
        "-re", "-t", f"{duration_s:g}", "-f", "lavfi",
        "-i", f"testsrc2=size={RENDITION.width}x{RENDITION.height}:rate={FRAME_RATE}",
        "-re", "-t", f"{duration_s:g}", "-f", "lavfi",
        "-i", f"sine=frequency=1000:beep_factor=4:sample_rate={AUDIO.sample_rate_hz}",
        "-map", "0:v", "-c:v", "libx264", "-preset", "superfast", "-tune", "zerolatency",
        "-pix_fmt", "yuv420p", "-g", gop, "-keyint_min", gop, "-sc_threshold", "0",
        "-b:v", f"{RENDITION.bitrate_kbps}k",
        "-map", "1:a", "-c:a", "aac", "-b:a", f"{AUDIO.bitrate_kbps}k", "-ac", str(AUDIO.channels),
    ]  # fmt: skip


def ffmpeg_hls_command(out_dir: Path, *, duration_s: float) -> list[str]:
    """FFmpeg's own live fMP4 HLS (with EXT-X-PROGRAM-DATE-TIME), old segments deleted."""
    return [
        *_encoder_args(duration_s),
        "-f", "hls", "-hls_time", str(SEGMENT_S), "-hls_list_size", "6",
        "-hls_flags", "delete_segments+independent_segments+program_date_time+temp_file",
        "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4",
        "-hls_segment_filename", str(out_dir / "seg-%05d.m4s"), str(out_dir / "index.m3u8"),
    ]  # fmt: skip


def ffmpeg_dash_command(out_dir: Path, *, duration_s: float, time_url: str) -> list[str]:
    """FFmpeg's own live DASH (SegmentTemplate + SegmentTimeline, UTCTiming), old segments deleted."""
    return [
        *_encoder_args(duration_s),
        "-f", "dash", "-seg_duration", str(SEGMENT_S), "-window_size", "6", "-extra_window_size", "3",
        "-use_template", "1", "-use_timeline", "1", "-format_options", "movflags=cmaf",
        "-adaptation_sets", "id=0,streams=v id=1,streams=a", "-utc_timing_url", time_url,
        str(out_dir / "manifest.mpd"),
    ]  # fmt: skip


def _wait_for(path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} did not appear within {timeout_s:g} s")
        time.sleep(0.2)


@dataclass(frozen=True, slots=True, kw_only=True)
class _LiveSource:
    url: str  # manifest URL
    log_path: Path  # FFmpeg's stderr
    process: subprocess.Popen[bytes]


@contextmanager
def _live_stream(
    tmp_path: Path, kind: str, *, duration_s: float, first_segments: int
) -> Iterator[_LiveSource]:
    """Run FFmpeg for ``duration_s`` and serve its output once ``first_segments`` segments exist."""
    out_dir = tmp_path / kind
    out_dir.mkdir()
    log_path = tmp_path / f"ffmpeg-{kind}.log"
    with _static_server(out_dir) as base_url:
        if kind == "hls":
            argv, manifest = ffmpeg_hls_command(out_dir, duration_s=duration_s), "index.m3u8"
            first = out_dir / f"seg-{first_segments - 1:05d}.m4s"
        else:
            argv = ffmpeg_dash_command(out_dir, duration_s=duration_s, time_url=f"{base_url}/time")
            manifest, first = "manifest.mpd", out_dir / f"chunk-stream0-{first_segments:05d}.m4s"
        proc = run_pusher(argv, log_path=log_path)
        try:
            _wait_for(first, timeout_s=SEGMENT_S * first_segments + 15)
            yield _LiveSource(url=f"{base_url}/{manifest}", log_path=log_path, process=proc)
        finally:
            stop_pusher(proc, timeout_s=5)


def _check(stats: PlayerStats, log_path: Path) -> None:
    detail = f"{stats.summary()}\nffmpeg: {log_path.read_text()[-500:]}"
    assert stats.started, detail
    assert not stats.fatal_errors, detail
    assert stats.played_s >= MIN_PLAYED_S, detail
    assert stats.stall_count == 0, detail
    assert stats.codec_support['video/mp4; codecs="avc1.64001f"'], detail


def test_hls_js_plays_ffmpeg_live_hls(tmp_path: Path) -> None:
    with _live_stream(tmp_path, "hls", duration_s=PLAY_S + 40, first_segments=3) as live:
        stats = play("hls", live.url, seconds=PLAY_S, timeout_s=PLAY_S + 20, screenshot=tmp_path / "hls.png")
    print(stats.summary())
    _check(stats, live.log_path)
    assert stats.latency.last_s is not None, stats.summary()
    assert stats.pdt_latency.last_s is not None, stats.summary()


def test_dash_js_plays_ffmpeg_live_dash(tmp_path: Path) -> None:
    with _live_stream(tmp_path, "dash", duration_s=PLAY_S + 40, first_segments=3) as live:
        # FFmpeg suggests a 2 s presentation delay for 2 s segments, which dash.js honours and then
        # stalls on every segment boundary; 3 segments behind the edge is what a real service would ask.
        stats = play(
            "dash",
            live.url,
            seconds=PLAY_S,
            live_delay_s=3 * SEGMENT_S,
            timeout_s=PLAY_S + 20,
            screenshot=tmp_path / "dash.png",
        )
    print(stats.summary())
    _check(stats, live.log_path)
    assert stats.latency.last_s is not None, stats.summary()


def test_a_stream_that_stops_is_reported_as_a_stall(tmp_path: Path) -> None:
    """The harness is not vacuous: an encoder that dies (no EXT-X-ENDLIST) shows up as a stall."""
    with _live_stream(tmp_path, "hls", duration_s=PLAY_S + 40, first_segments=3) as live:
        killer = threading.Timer(6.0, live.process.kill)
        killer.start()
        try:
            stats = play("hls", live.url, seconds=PLAY_S, timeout_s=PLAY_S + 20)
        finally:
            killer.cancel()
    print(stats.summary())
    assert stats.started, stats.summary()
    assert stats.stall_count >= 1, stats.summary()
    assert stats.stalls[-1].ongoing and stats.stalls[-1].duration_s > 1, stats.summary()
    assert stats.played_s < PLAY_S - 2, stats.summary()
