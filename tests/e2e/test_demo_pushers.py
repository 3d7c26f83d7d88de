"""services.demo: the argv builders (fast) and what FFmpeg really sends with them (e2e, capture sink)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from services import demo

from .capture import capture_server

SMALL = demo.LADDER[-1:]  # one 640x360 rendition: cheap enough for a shared 2-core machine


def _outputs(argv: list[str]) -> list[str]:
    return [arg for arg in argv if arg.startswith("http://")]


def _option_values(argv: list[str], option: str) -> list[str]:
    return [argv[index + 1] for index, arg in enumerate(argv) if arg == option]


# --- argv builders ----------------------------------------------------------------------------


def test_long_post_has_one_chunked_post_per_track() -> None:
    argv = demo.long_post_command("http://127.0.0.1:8080/", "demo")
    assert argv[0] == "ffmpeg"
    assert _outputs(argv) == [
        "http://127.0.0.1:8080/ingest/demo/Streams(video720.cmfv)",
        "http://127.0.0.1:8080/ingest/demo/Streams(video540.cmfv)",
        "http://127.0.0.1:8080/ingest/demo/Streams(video360.cmfv)",
        "http://127.0.0.1:8080/ingest/demo/Streams(audio128.cmfa)",
    ]
    assert _option_values(argv, "-method") == ["POST"] * 4
    assert _option_values(argv, "-chunked_post") == ["1"] * 4
    assert _option_values(argv, "-content_type") == ["video/mp4"] * 3 + ["audio/mp4"]
    assert set(_option_values(argv, "-movflags")) == {
        "cmaf+frag_keyframe+empty_moov+default_base_moof+separate_moof+delay_moov"
    }
    assert _option_values(argv, "-g:v") == ["50"] * 3
    assert _option_values(argv, "-keyint_min:v") == ["50"] * 3
    assert _option_values(argv, "-sc_threshold:v") == ["0"] * 3
    assert _option_values(argv, "-b:v") == ["3000k", "1800k", "800k"]
    assert _option_values(argv, "-frag_duration") == ["2000000"]  # audio only
    assert "-t" not in argv and "-write_prft" not in argv


def test_long_post_options() -> None:
    argv = demo.long_post_command(
        "http://h", "a b/c", duration_s=12.5, ladder=SMALL, audio=False, prft=True, fragment_s=0.5
    )
    assert _outputs(argv) == ["http://h/ingest/a%20b%2Fc/Streams(video360.cmfv)"]
    assert _option_values(argv, "-t") == ["12.5"]
    assert _option_values(argv, "-write_prft") == ["wallclock"]
    assert _option_values(argv, "-frag_duration") == ["500000"]
    assert "sine" not in " ".join(argv)


def test_clock_overlay_is_optional() -> None:
    assert "drawtext" in " ".join(demo.long_post_command("http://h", "c"))
    assert "drawtext" not in " ".join(demo.long_post_command("http://h", "c", clock_font=None))


def test_dash_put_sends_one_manifest_url() -> None:
    argv = demo.dash_put_command("http://127.0.0.1:8080", "demo", duration_s=30)
    assert _outputs(argv) == ["http://127.0.0.1:8080/ingest/demo/manifest.mpd"]
    assert _option_values(argv, "-f") == ["lavfi", "lavfi", "dash"]
    assert _option_values(argv, "-method") == ["PUT"]
    assert _option_values(argv, "-seg_duration") == ["2"]
    assert _option_values(argv, "-adaptation_sets") == ["id=0,streams=v id=1,streams=a"]
    assert _option_values(argv, "-map") == ["[v0]", "[v1]", "[v2]", "1:a"]
    assert [_option_values(argv, f"-b:v:{index}") for index in range(3)] == [["3000k"], ["1800k"], ["800k"]]
    assert "-frag_type" not in argv and "-utc_timing_url" not in argv


def test_dash_put_chunking_and_prft() -> None:
    argv = demo.dash_put_command("http://h", "c", fragment_s=0.5, utc_timing_url="http://h/time", audio=False)
    assert _option_values(argv, "-frag_type") == ["duration"]
    assert _option_values(argv, "-frag_duration") == ["0.5"]
    assert _option_values(argv, "-write_prft") == ["1"]
    assert _option_values(argv, "-adaptation_sets") == ["id=0,streams=v"]


def test_empty_ladder_is_refused() -> None:
    with pytest.raises(ValueError, match="ladder"):
        demo.long_post_command("http://h", "c", ladder=())
    with pytest.raises(ValueError, match="ladder"):
        demo.dash_put_command("http://h", "c", ladder=())


# --- what FFmpeg sends ------------------------------------------------------------------------


@pytest.mark.e2e
def test_long_post_streams_header_then_fragments(tmp_path: Path) -> None:
    with capture_server() as sink:
        argv = demo.long_post_command(sink.base_url, "demo", duration_s=6, ladder=SMALL)
        proc = demo.run_pusher(argv, log_path=tmp_path / "ffmpeg.log")
        assert proc.wait(timeout=40) == 0, (tmp_path / "ffmpeg.log").read_text()[-2000:]
        requests = sink.settle()
    by_path = {request.path: request for request in requests}
    assert sorted(by_path) == ["/ingest/demo/Streams(audio128.cmfa)", "/ingest/demo/Streams(video360.cmfv)"]
    for path, request in by_path.items():
        assert request.method == "POST" and request.complete
        assert request.headers["Transfer-Encoding"] == "chunked"
        assert request.headers["Content-Type"] == ("audio/mp4" if path.endswith(".cmfa)") else "video/mp4")
        types = request.box_types()
        assert types[:2] == ["ftyp", "moov"], types
        assert types[-1] == "mfra", types  # FFmpeg's trailer on a clean stop
        pairs = types[2:-1]
        assert pairs == ["moof", "mdat"] * (len(pairs) // 2) and len(pairs) >= 6, types
        # Fragments arrive while the encoder runs, not all at the end.
        moof_times = [box.at_s for box in request.boxes if box.type == "moof"]
        assert moof_times[-1] - moof_times[0] > 2.5, moof_times


@pytest.mark.e2e
def test_dash_put_uploads_segments_and_deletes_old_ones(tmp_path: Path) -> None:
    with capture_server() as sink:
        argv = demo.dash_put_command(
            sink.base_url, "demo", duration_s=9, ladder=SMALL, window_size=1, fragment_s=0.5
        )
        proc = demo.run_pusher(argv, log_path=tmp_path / "ffmpeg.log")
        assert proc.wait(timeout=40) == 0, (tmp_path / "ffmpeg.log").read_text()[-2000:]
        requests = sink.settle()
    paths = {(request.method, request.path) for request in requests}
    assert ("PUT", "/ingest/demo/init-stream0.m4s") in paths
    assert ("PUT", "/ingest/demo/init-stream1.m4s") in paths
    assert ("PUT", "/ingest/demo/manifest.mpd") in paths
    assert ("DELETE", "/ingest/demo/chunk-stream0-00001.m4s") in paths
    segments = [r for r in requests if r.method == "PUT" and "/chunk-stream0-" in r.path]
    assert len(segments) >= 4
    full = segments[1]  # a whole 2 s segment: styp, then 4 chunks of 0.5 s
    assert full.headers["Transfer-Encoding"] == "chunked"
    assert full.box_types() == ["styp"] + ["moof", "mdat"] * 4, full.box_types()
    assert full.duration_s > 1.5  # uploaded while being encoded


@pytest.mark.e2e
def test_stop_pusher_ends_the_posts_cleanly(tmp_path: Path) -> None:
    with capture_server() as sink:
        argv = demo.long_post_command(sink.base_url, "demo", ladder=SMALL, audio=False)
        proc = demo.run_pusher(argv, log_path=tmp_path / "ffmpeg.log")
        time.sleep(4.5)
        assert proc.poll() is None
        demo.stop_pusher(proc, timeout_s=5)
        requests = sink.settle()
    assert proc.returncode is not None
    assert len(requests) == 1 and requests[0].complete
    assert requests[0].box_types()[-1] == "mfra"


@pytest.mark.e2e
def test_main_runs_for_the_given_duration() -> None:
    with capture_server() as sink:
        command = [sys.executable, "-m", "services.demo", "--base-url", sink.base_url, "--mode", "dash"]
        result = subprocess.run([*command, "--duration", "3"], capture_output=True, timeout=40, check=False)
        requests = sink.settle()
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert any(request.path == "/ingest/demo/manifest.mpd" for request in requests)
