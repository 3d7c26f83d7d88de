"""HLS with MPEG-TS segments end to end: FFmpeg pushes the demo ladder, real players play the TS output.

One origin and one long-running-POST pusher (epoch-anchored timestamps, so 33-bit PTS wrap is in
play) for the module. The players go first, while the stream is young: hls.js and Shaka Player each
play the TS output for 20 s with no stall. By then over 30 s of media has been pushed, and every TS
segment listed is checked: ``ffprobe -v error`` prints nothing for any of them; each variant's
segments, concatenated in order, decode with ``ffmpeg -v warning`` silent (no continuity-counter,
timestamp or decode complaint), with every video DTS step one frame and every audio PTS step one
AAC frame; PIDs, codec parameters, segment boundaries and first timestamps agree with the CMAF
source. About 15 s to start, 2 x 25 s of players (by then ~35 s of media), the encoder stops, 20 s of
checks: under 2 minutes. (60 s of media would add 25 s of waiting and no new code path: every
segment is made independently.)
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import m3u8
import pytest

from services.demo import long_post_command, run_pusher, stop_pusher, wallclock_offset_s
from services.shared.media.ts.remux import AUDIO_PID, VIDEO_PID
from services.shared.media.ts.timestamps import decode_timestamp
from tests.e2e.origin import Origin, running_origin
from tests.e2e.players import PlayerKind, play
from tests.e2e.playlists import listed_segments
from tests.media.ts.packets import continuity_errors, packets

pytestmark = pytest.mark.e2e
CHANNEL = "ts"
VIDEO_TRACKS = ("video720", "video540", "video360")
AUDIO_TRACK = "audio128"
START_SEGMENTS = 4  # per variant before the players start
CHECKED_MEDIA_S = 30  # media verified segment by segment
FRAME_90K, AAC_FRAME_90K = 3600, 1920  # 25 fps; 1024 samples at 48 kHz
MODULUS = 1 << 33


@dataclass(frozen=True, slots=True)
class Live:
    origin: Origin
    pusher: subprocess.Popen[bytes]

    def url(self, path: str) -> str:
        return f"{self.origin.base_url}/live/{CHANNEL}/{path}"


def _ts_segments(client: httpx.Client, live: Live, variant: str) -> list[str]:
    response = client.get(live.url(f"hls-ts/{variant}.m3u8"))
    return [s.uri for s in m3u8.loads(response.text).segments] if response.status_code == 200 else []


def _wait_for(live: Live, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            assert live.pusher.poll() is None, "FFmpeg pusher exited early"
            if all(len(_ts_segments(client, live, v)) >= count for v in (*VIDEO_TRACKS, AUDIO_TRACK)):
                return
            time.sleep(0.5)
    raise AssertionError(f"fewer than {count} TS segments per variant after {timeout_s} s")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    data_dir = tmp_path_factory.mktemp("origin-ts")
    with running_origin(data_dir) as origin:
        # stays live after the encoder stops (before the segment checks)
        created = httpx.put(f"{origin.base_url}/api/channels/{CHANNEL}", json={"stale_after_s": 3600})
        assert created.status_code in (200, 201), created.text
        command = long_post_command(origin.base_url, CHANNEL, ts_offset_s=wallclock_offset_s())
        pusher = run_pusher(command, log_path=data_dir / "ffmpeg.log")
        try:
            state = Live(origin=origin, pusher=pusher)
            _wait_for(state, START_SEGMENTS, timeout_s=60)
            yield state
        finally:
            stop_pusher(pusher)


@pytest.mark.parametrize("kind", ["hls", "shaka"])
def test_real_player_plays_the_ts_output_20_s_without_stalls(live: Live, kind: PlayerKind) -> None:
    stats = play(kind, live.url("hls-ts/index.m3u8"), seconds=20)
    assert stats.started, f"{kind} never started: {stats.summary()}"
    assert not stats.fatal_errors, stats.summary()
    assert stats.played_s >= 19, stats.summary()
    assert stats.stall_count == 0, f"{kind} stalled: {stats.stalls} {stats.summary()}"
    assert stats.video_height in (360, 540, 720), stats.summary()


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def _probe(path: Path, *args: str) -> dict[str, Any]:
    done = _run("ffprobe", "-v", "error", "-of", "json", *args, str(path))
    assert done.stderr == "", f"ffprobe complained about {path.name}: {done.stderr[:2000]}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _steps(path: Path, stream: str, field: str) -> set[int]:
    probed = _probe(path, "-select_streams", stream, "-show_entries", f"packet={field}")["packets"]
    return {b[field] - a[field] for a, b in itertools.pairwise(probed)}


@dataclass(frozen=True, slots=True)
class Fetched:
    starts: list[int]  # segment start ticks, in playlist order
    files: list[Path]
    joined: Path


def _fetch(client: httpx.Client, live: Live, variant: str, tmp_path: Path) -> Fetched:
    uris = _ts_segments(client, live, variant)
    files: list[Path] = []
    for uri in uris:
        response = client.get(live.url(f"hls-ts/{uri}"))
        assert response.status_code == 200 and response.headers["content-type"] == "video/mp2t", uri
        path = tmp_path / f"{variant}-{len(files):03d}.ts"
        path.write_bytes(response.content)
        files.append(path)
    joined = tmp_path / f"{variant}.ts"
    joined.write_bytes(b"".join(f.read_bytes() for f in files))
    starts = [int(uri.rsplit("/", 1)[-1].removesuffix(".ts")) for uri in uris]
    return Fetched(starts=starts, files=files, joined=joined)


def _cmaf_stream(client: httpx.Client, live: Live, track: str, tmp_path: Path) -> dict[str, Any]:
    playlist = m3u8.loads(client.get(live.url(f"hls/{track}.m3u8")).text)
    init = client.get(live.url(f"hls/{playlist.segment_map[0].uri}")).content
    path = tmp_path / f"{track}.mp4"
    path.write_bytes(init + client.get(live.url(f"hls/{listed_segments(playlist)[0].uri}")).content)
    stream: dict[str, Any] = _probe(path, "-show_streams")["streams"][0]
    return stream


def _same(cmaf: dict[str, Any], ts: dict[str, Any], keys: tuple[str, ...]) -> None:
    assert {k: ts.get(k) for k in keys} == {k: cmaf.get(k) for k in keys}


def _check_variant(client: httpx.Client, live: Live, variant: str, tmp_path: Path) -> int:
    fetched = _fetch(client, live, variant, tmp_path)
    for path in fetched.files:
        _probe(path)  # prints nothing
    data = fetched.joined.read_bytes()
    assert continuity_errors(data) == [], f"{variant}: continuity_counter jumps"
    assert _run("ffmpeg", "-v", "warning", "-i", str(fetched.joined), "-f", "null", "-").stderr == ""
    cmaf_playlist = m3u8.loads(client.get(live.url(f"hls/{variant}.m3u8")).text)
    cmaf_starts = {int(s.uri.rsplit("/", 1)[-1].removesuffix(".m4s")) for s in listed_segments(cmaf_playlist)}
    shared = [t for t in fetched.starts if t >= min(cmaf_starts)]
    assert shared and set(shared) <= cmaf_starts, f"{variant}: segment boundaries differ from CMAF's"
    probe = _probe(fetched.joined, "-show_streams", "-show_programs")
    program = probe["programs"][0]
    audio = next(s for s in probe["streams"] if s["codec_type"] == "audio")
    _same(
        _cmaf_stream(client, live, AUDIO_TRACK, tmp_path),
        audio,
        ("codec_name", "profile", "sample_rate", "channels"),
    )
    assert audio["id"] == hex(AUDIO_PID) and program["pmt_pid"] == 0x1000
    assert _steps(fetched.joined, "a:0", "pts") == {AAC_FRAME_90K}, f"{variant}: audio PTS gap or jump"
    if variant == AUDIO_TRACK:
        assert program["pcr_pid"] == AUDIO_PID and len(probe["streams"]) == 1
        return len(fetched.files)
    video = next(s for s in probe["streams"] if s["codec_type"] == "video")
    keys = ("codec_name", "profile", "level", "width", "height", "pix_fmt")
    cmaf_video = _cmaf_stream(client, live, variant, tmp_path)
    _same(cmaf_video, video, keys)
    timescale = int(cmaf_video["time_base"].split("/")[1])
    assert video["id"] == hex(VIDEO_PID) and program["pcr_pid"] == VIDEO_PID
    assert _steps(fetched.joined, "v:0", "dts") == {FRAME_90K}, f"{variant}: video DTS gap or jump"
    for start, path in zip(fetched.starts, fetched.files, strict=True):  # exact, modulo 2**33
        assert _first_video_pts(path.read_bytes()) == start * 90_000 // timescale % MODULUS
    return len(fetched.files)


def _first_video_pts(segment: bytes) -> int:
    first = next(p for p in packets(segment) if p.pid == VIDEO_PID and p.payload_unit_start)
    return decode_timestamp(first.payload[9:14])  # the PTS follows the PES header's 9 fixed bytes


def test_every_ts_segment_is_clean_continuous_and_agrees_with_cmaf(live: Live, tmp_path: Path) -> None:
    _wait_for(live, CHECKED_MEDIA_S // 2, timeout_s=60)
    stop_pusher(live.pusher)  # the encoder's CPU is no longer needed: the checks get it
    with httpx.Client(timeout=10) as client:
        checked = {v: _check_variant(client, live, v, tmp_path) for v in (*VIDEO_TRACKS, AUDIO_TRACK)}
    assert all(count * 2 >= CHECKED_MEDIA_S for count in checked.values()), checked
