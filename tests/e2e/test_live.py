"""The first live stream end to end: FFmpeg in (both ingest modes), HLS/DASH out, real players.

One origin process and one FFmpeg pusher per ingest mode (module-scoped), then: playlists parse with
``m3u8``; the MPD's SegmentTimeline expands to URLs that all resolve and equal the HLS segment list;
every track's init + segments decode with ``ffprobe -v error`` silent and with continuous decode
times; CDN headers follow the contract; hls.js and dash.js play 20 s in headless Chromium, no stalls.
"""

from __future__ import annotations

import itertools
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import m3u8
import pytest

from services.demo import dash_put_command, long_post_command, run_pusher, stop_pusher, wallclock_offset_s
from tests.e2e.origin import Origin, running_origin
from tests.e2e.players import PlayerKind, play
from tests.e2e.playlists import listed_segments

pytestmark = pytest.mark.e2e
NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}
TRACKS = ("video720", "video540", "video360", "audio128")
CHANNEL = "e2e"
MIN_SEGMENTS = 4


@dataclass(frozen=True, slots=True)
class Live:
    origin: Origin
    mode: str
    tracks: tuple[str, ...]  # media playlist names, as the multivariant playlist lists them

    def url(self, path: str) -> str:
        return f"{self.origin.base_url}/live/{CHANNEL}/{path}"


def _media_playlists(client: httpx.Client, live_url: str) -> list[str]:
    response = client.get(f"{live_url}/hls/index.m3u8")
    if response.status_code != 200:
        return []
    master = m3u8.loads(response.text)
    return [p.uri for p in master.playlists] + [m.uri for m in master.media if m.uri]


def _wait_for_segments(
    origin: Origin, pusher: subprocess.Popen[bytes], timeout_s: float = 60
) -> tuple[str, ...]:
    live_url = f"{origin.base_url}/live/{CHANNEL}"
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            assert pusher.poll() is None, "FFmpeg pusher exited early"
            uris = _media_playlists(client, live_url)
            if len(uris) == 4:
                counts = [
                    len(listed_segments(m3u8.loads(client.get(f"{live_url}/hls/{u}").text))) for u in uris
                ]
                if min(counts) >= MIN_SEGMENTS:
                    return tuple(u.removesuffix(".m3u8") for u in uris)
            time.sleep(0.5)
    raise AssertionError(f"no {MIN_SEGMENTS} segments on every track within {timeout_s} s")


@pytest.fixture(scope="module", params=["long-post", "dash"])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    mode: str = request.param
    data_dir = tmp_path_factory.mktemp(f"origin-{mode}")
    with running_origin(data_dir) as origin:
        build = long_post_command if mode == "long-post" else dash_put_command
        # epoch-anchored decode times, as `make run` sends them (64-bit tfdt, grid-numbered segments)
        command = build(origin.base_url, CHANNEL, ts_offset_s=wallclock_offset_s())
        pusher = run_pusher(command, log_path=data_dir / "ffmpeg.log")
        try:
            tracks = _wait_for_segments(origin, pusher)
            yield Live(origin=origin, mode=mode, tracks=tracks)
        finally:
            stop_pusher(pusher)


def _ffprobe(path: Path, *args: str) -> str:
    done = subprocess.run(
        ["ffprobe", "-v", "error", *args, str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stderr == "", f"ffprobe complained about {path.name}: {done.stderr[:2000]}"
    return done.stdout


def _expand_timeline(rep: ET.Element) -> list[tuple[int, int]]:
    pairs: list[tuple[int, int]] = []
    for s in rep.findall("d:SegmentTemplate/d:SegmentTimeline/d:S", NS):
        t = int(s.get("t", pairs[-1][0] + pairs[-1][1] if pairs else 0))
        d = int(s.attrib["d"])
        for _ in range(int(s.get("r", "0")) + 1):
            pairs.append((t, d))
            t += d
    return pairs


def test_hls_playlists_parse_and_every_segment_decodes(live: Live, tmp_path: Path) -> None:
    with httpx.Client(timeout=10) as client:
        master = m3u8.loads(client.get(live.url("hls/index.m3u8")).text)
        assert len(master.playlists) == 3 and len(master.media) == 1
        for variant in master.playlists:
            info = variant.stream_info
            assert info.bandwidth > info.average_bandwidth > 0
            assert "mp4a.40.2" in info.codecs and info.codecs.startswith("avc1.")
            assert info.resolution in {(1280, 720), (960, 540), (640, 360)}
            assert info.frame_rate == 25 and info.audio == "audio"
        for track in live.tracks:
            playlist = m3u8.loads(client.get(live.url(f"hls/{track}.m3u8")).text)
            assert playlist.target_duration == 2
            assert all(round(s.duration) <= playlist.target_duration for s in listed_segments(playlist))
            assert listed_segments(playlist)[0].program_date_time is not None
            init = client.get(live.url(f"hls/{playlist.segment_map[0].uri}"))
            joined = tmp_path / f"{track}.mp4"
            joined.write_bytes(
                init.content
                + b"".join(client.get(live.url(f"hls/{s.uri}")).content for s in listed_segments(playlist))
            )
            _ffprobe(joined)
            dts = [
                int(x)
                for x in _ffprobe(
                    joined, "-select_streams", "0", "-show_entries", "packet=dts", "-of", "csv=p=0"
                ).split()
            ]
            steps = {b - a for a, b in itertools.pairwise(dts)}
            assert len(steps) == 1, f"{track}: decode times not continuous across segments: steps {steps}"


def test_dash_timeline_matches_hls_and_every_url_resolves(live: Live) -> None:
    with httpx.Client(timeout=10) as client:
        mpd = ET.fromstring(client.get(live.url("dash/manifest.mpd")).content)
        assert mpd.get("type") == "dynamic"
        timing = mpd.find("d:UTCTiming", NS)
        assert timing is not None
        clock = client.get(live.url(f"dash/{timing.attrib['value']}"))
        assert clock.status_code == 200 and clock.headers["cache-control"] == "no-store"
        reps = {r.attrib["id"]: r for r in mpd.iterfind(".//d:Representation", NS)}
        assert set(reps) == set(live.tracks)
        for name, rep in reps.items():
            pairs = _expand_timeline(rep)
            for (t, d), (next_t, _) in itertools.pairwise(pairs):
                assert next_t == t + d, f"{name}: SegmentTimeline gap at {t}"
            playlist = m3u8.loads(client.get(live.url(f"hls/{name}.m3u8")).text)
            hls_times = [
                int(s.uri.rsplit("/", 1)[-1].removesuffix(".m4s")) for s in listed_segments(playlist)
            ]
            common = [t for t, _ in pairs if t in set(hls_times)]
            assert len(common) >= MIN_SEGMENTS - 1, f"{name}: HLS and DASH list different segments"
            for t, _ in pairs:
                response = client.get(live.url(f"media/{name}/{t}.m4s"))
                assert response.status_code == 200, f"{name}/{t}.m4s: {response.status_code}"


def test_cdn_headers_follow_the_contract(live: Live) -> None:
    with httpx.Client(timeout=10) as client:
        manifest = client.get(live.url("hls/index.m3u8"), headers={"Origin": "http://player.example"})
        assert manifest.headers["cache-control"] == "public, max-age=1"
        assert manifest.headers["access-control-allow-origin"] == "*"
        assert manifest.headers["content-type"] == "application/vnd.apple.mpegurl"
        playlist = m3u8.loads(client.get(live.url(f"hls/{live.tracks[0]}.m3u8")).text)
        seg_url = live.url(f"hls/{listed_segments(playlist)[0].uri}")
        segment = client.get(seg_url)
        assert segment.headers["cache-control"] == "public, max-age=1209600, immutable"
        assert segment.headers["etag"] and segment.headers["last-modified"]
        assert client.get(seg_url, headers={"If-None-Match": segment.headers["etag"]}).status_code == 304
        assert (
            client.get(seg_url, headers={"If-Modified-Since": segment.headers["last-modified"]}).status_code
            == 304
        )
        ranged = client.get(seg_url, headers={"Range": "bytes=100-199"})
        assert ranged.status_code == 206 and ranged.content == segment.content[100:200]
        assert ranged.headers["content-range"] == f"bytes 100-199/{len(segment.content)}"
        last_t = int(listed_segments(playlist)[-1].uri.rsplit("/", 1)[-1].removesuffix(".m4s"))
        ahead = client.get(live.url(f"media/{live.tracks[0]}/{last_t * 100}.m4s"))
        assert ahead.status_code == 404 and ahead.headers["cache-control"] == "max-age=1"
        preflight = client.options(
            seg_url, headers={"Origin": "http://x", "Access-Control-Request-Method": "GET"}
        )
        assert preflight.status_code == 204 and "GET" in preflight.headers["access-control-allow-methods"]


@pytest.mark.parametrize("kind", ["hls", "dash"])
def test_real_player_plays_20_s_without_stalls(live: Live, kind: PlayerKind) -> None:
    url = live.url("hls/index.m3u8" if kind == "hls" else "dash/manifest.mpd")
    stats = play(kind, url, seconds=20)
    assert stats.started, f"{kind} never started: {stats.fatal_errors} {stats.errors}"
    assert not stats.fatal_errors, stats.fatal_errors
    played = f"{kind} played only {stats.played_s:.1f} s: {stats.summary()} {stats.stalls}"
    assert stats.played_s >= 19, played
    assert stats.stall_count == 0, f"{kind} stalled: {stats.stalls} {stats.summary()}"
