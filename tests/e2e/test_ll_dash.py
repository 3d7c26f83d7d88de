"""LL-DASH end to end: FFmpeg's DASH muxer in 0.5 s CMAF chunks, dash.js in low-latency mode.

One origin and one pusher (``dash_put_command(..., fragment_s=0.5)``: per-segment chunked PUTs, each
chunk flushed as it is encoded). The MPD turns low-latency; the segment at the live edge arrives chunk
by chunk, its first bytes long before it is complete and its body equal to the complete segment; dash.js
(its low-latency mode comes from availabilityTimeComplete="false", live catch-up on) plays 30 s without
a stall. The latency it reached is printed (``-s`` shows it).
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import httpx
import pytest

from services.demo import dash_put_command, run_pusher, stop_pusher, wallclock_offset_s
from tests.e2e.origin import Origin, running_origin
from tests.e2e.players import play

pytestmark = pytest.mark.e2e
NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}
CHANNEL = "lldash"
MIN_SEGMENTS = 4


def _mpd(client: httpx.Client, origin: Origin) -> ET.Element | None:
    response = client.get(f"{origin.base_url}/live/{CHANNEL}/dash/manifest.mpd")
    return ET.fromstring(response.content) if response.status_code == 200 else None


def _starts(rep: ET.Element) -> list[tuple[int, int]]:
    pairs: list[tuple[int, int]] = []
    for s in rep.findall("d:SegmentTemplate/d:SegmentTimeline/d:S", NS):
        t = int(s.get("t", pairs[-1][0] + pairs[-1][1] if pairs else 0))
        for _ in range(int(s.get("r", "0")) + 1):
            pairs.append((t, int(s.attrib["d"])))
            t += int(s.attrib["d"])
    return pairs


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    data_dir = tmp_path_factory.mktemp("origin-lldash")
    with running_origin(data_dir) as running:
        command = dash_put_command(
            running.base_url, CHANNEL, fragment_s=0.5, ts_offset_s=wallclock_offset_s()
        )
        pusher = run_pusher(command, log_path=data_dir / "ffmpeg.log")
        try:
            deadline = time.monotonic() + 60
            with httpx.Client(timeout=5) as client:
                while True:
                    assert pusher.poll() is None, "FFmpeg pusher exited early"
                    mpd = _mpd(client, running)
                    reps = [] if mpd is None else mpd.findall(".//d:Representation", NS)
                    if len(reps) == 4 and min(len(_starts(r)) for r in reps) > MIN_SEGMENTS:
                        break
                    assert time.monotonic() < deadline, "no low-latency MPD with 4 segments per track"
                    time.sleep(0.5)
            yield running
        finally:
            stop_pusher(pusher)


def test_mpd_is_low_latency_and_a_new_segment_streams(origin: Origin) -> None:
    with httpx.Client(timeout=10) as client:
        mpd = _mpd(client, origin)
        assert mpd is not None
        assert mpd.find("d:ServiceDescription/d:Latency", NS) is not None
        video = mpd.find(".//d:AdaptationSet[@contentType='video']", NS)
        assert video is not None
        rep = max(video.iterfind("d:Representation", NS), key=lambda r: int(r.attrib["width"]))
        template = rep.find("d:SegmentTemplate", NS)
        assert template is not None and template.get("availabilityTimeComplete") == "false"
        listed, _ = _starts(rep)[-1]  # the segment in progress
        start = listed
        while start == listed:  # until the next one is listed: it has just begun
            time.sleep(0.05)
            mpd = _mpd(client, origin)
            assert mpd is not None
            fresh = mpd.find(f".//d:Representation[@id='{rep.attrib['id']}']", NS)
            assert fresh is not None
            start, _ = _starts(fresh)[-1]
        url = f"{origin.base_url}/live/{CHANNEL}/media/{rep.attrib['id']}/{start}.m4s"
        body = b""
        began = time.monotonic()
        with client.stream("GET", url) as response:
            assert response.status_code == 200
            assert response.headers["transfer-encoding"] == "chunked"
            first_byte_s = None
            for data in response.iter_raw():
                first_byte_s = first_byte_s if first_byte_s is not None else time.monotonic() - began
                body += data
        total_s = time.monotonic() - began
        # the chunks written so far at once, then the rest as it is encoded
        assert first_byte_s is not None and first_byte_s < 0.3 and total_s > 1.0
        complete = client.get(url)
        assert complete.headers["content-length"] == str(len(body)) and complete.content == body
        print(f"\nnew segment: first bytes after {first_byte_s:.3f} s, complete after {total_s:.3f} s")


def test_dash_js_low_latency_plays_30_s_without_stalls(origin: Origin) -> None:
    stats = play("dash", f"{origin.base_url}/live/{CHANNEL}/dash/manifest.mpd", seconds=30, low_latency=True)
    print(f"\n{stats.summary()}")
    print(f"latency: {stats.latency} target={stats.raw.get('targetLatencyS')}")
    assert stats.started, f"dash.js never started: {stats.fatal_errors} {stats.errors}"
    assert not stats.fatal_errors, stats.fatal_errors
    assert stats.played_s >= 29, f"dash.js played only {stats.played_s:.1f} s"
    assert stats.stall_count == 0, f"dash.js stalled: {stats.stalls}"
