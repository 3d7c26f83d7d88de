"""Playback edge + packager service over a real embedded store: determinism, staleness, windows, 404s."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import m3u8
import pytest

from services.ingest.app import IngestApp
from services.ingest.service import IngestService
from services.packager.app import PlaybackApp
from services.packager.service import PackagerService
from services.shared.auth import sign_token
from services.shared.channels import AuthConfig, ChannelConfig
from services.shared.media.synthetic import make_fragment, make_header
from services.shared.metrics import Metrics
from services.shared.signal import LocalSignal
from services.shared.store.embedded import EmbeddedStore
from tests.asgi import Reply, call

EPOCH_MS = 1_800_000_000_000
V_TS, A_TS = 90_000, 48_000


class Clock:
    def __init__(self) -> None:
        self.ms = EPOCH_MS

    def __call__(self) -> int:
        return self.ms


@dataclass
class Origin:
    store: EmbeddedStore
    ingest: IngestApp
    playback: PlaybackApp
    clock: Clock

    async def get(self, path: str) -> Reply:
        return await call(self.playback, "GET", path)

    async def push(self, track: str, body: bytes) -> None:
        reply = await call(self.ingest, "POST", f"/ingest/ch/Streams({track})", [body])
        assert reply.status == 200, reply.text


async def make_origin(data_dir: Path, clock: Clock) -> Origin:
    store = EmbeddedStore(data_dir, clock_ms=clock)
    await store.open()
    metrics, signal = Metrics(), LocalSignal()
    ingest = IngestService(store=store, signal=signal, metrics=metrics, clock_ms=clock)
    packager = PackagerService(store=store, signal=signal, metrics=metrics, clock_ms=clock)
    return Origin(store=store, ingest=IngestApp(ingest), playback=PlaybackApp(packager), clock=clock)


def video(n: int, *, last: bool = False) -> bytes:
    return make_fragment(
        track_id=1, sequence_number=n + 1, decode_time=n * 2 * V_TS, sample_durations=(3600,) * 50,
        sample_sizes=(500,) * 50, brands=("msdh", "msdh", "lmsg") if last else None,
    )  # fmt: skip


def audio(n: int) -> bytes:
    # 2 s of AAC at 48 kHz is 93.75 frames: use 94 x 1024 and let the timeline carry the drift
    return make_fragment(
        track_id=1, sequence_number=n + 1, decode_time=n * 94 * 1024, sample_durations=(1024,) * 94,
        sample_sizes=(300,) * 94,
    )  # fmt: skip


async def feed(origin: Origin, fragments: int, *, start: int = 0, ended: bool = False) -> None:
    """Video and audio, one fragment every 2 s of the clock."""
    for n in range(start, start + fragments):
        origin.clock.ms = EPOCH_MS + (n + 1) * 2000
        head_v = make_header(track_id=1, timescale=V_TS) if n == start else b""
        head_a = make_header(track_id=1, handler="soun", timescale=A_TS) if n == start else b""
        await origin.push("video.cmfv", head_v + video(n, last=ended and n == start + fragments - 1))
        await origin.push("audio.cmfa", head_a + audio(n))


@pytest.fixture
async def origin(tmp_path: Path) -> AsyncIterator[Origin]:
    o = await make_origin(tmp_path, Clock())
    yield o
    await o.store.close()


async def test_restart_renders_identical_manifests(tmp_path: Path) -> None:
    clock = Clock()
    first = await make_origin(tmp_path, clock)
    await feed(first, 6)
    paths = ["/live/ch/hls/index.m3u8", "/live/ch/hls/video.m3u8", "/live/ch/hls/audio.m3u8",
             "/live/ch/dash/manifest.mpd"]  # fmt: skip
    before = [await first.get(p) for p in paths]
    assert all(r.status == 200 for r in before), [r.text for r in before]
    await first.store.close()
    second = await make_origin(tmp_path, clock)
    after = [await second.get(p) for p in paths]
    assert [r.text for r in after] == [r.text for r in before]
    assert [r.headers["etag"] for r in after] == [r.headers["etag"] for r in before]
    playlist = m3u8.loads(after[1].text)
    assert playlist.media_sequence == 0 and len(playlist.segments) == 5  # the 6th is still open
    await second.store.close()


async def test_stale_channel_answers_failover_status_but_serves_segments(origin: Origin) -> None:
    await feed(origin, 4)
    await origin.store.put_channel(ChannelConfig(name="ch", stale_after_s=5, failover_status=503))
    origin.clock.ms += 4_000
    assert (await origin.get("/live/ch/hls/video.m3u8")).status == 200
    origin.clock.ms += 2_000
    for path in ("/live/ch/hls/index.m3u8", "/live/ch/hls/video.m3u8", "/live/ch/dash/manifest.mpd"):
        reply = await origin.get(path)
        assert reply.status == 503 and "stale" in reply.text
    assert (await origin.get("/live/ch/media/video/0.m4s")).status == 200


async def test_segment_availability(origin: Origin) -> None:
    await feed(origin, 3)
    ok = await origin.get("/live/ch/media/video/180000.m4s")
    assert ok.status == 200 and ok.headers["cache-control"] == "public, max-age=1209600, immutable"
    in_progress = await origin.get("/live/ch/media/video/360000.m4s")  # newest: next one not started
    ahead = await origin.get("/live/ch/media/video/900000.m4s")
    for reply in (in_progress, ahead):
        assert reply.status == 404 and reply.headers["cache-control"] == "max-age=1"
    assert (await origin.get("/live/ch/media/video/90000.m4s")).status == 404  # not a segment start
    assert (await origin.get("/live/ch/media/nope/0.m4s")).status == 404
    assert (await origin.get("/live/ch/media/video/init.mp4")).status == 200


async def test_lmsg_ends_playlists_and_makes_the_mpd_static(origin: Origin) -> None:
    await feed(origin, 3, ended=True)
    playlist = m3u8.loads((await origin.get("/live/ch/hls/video.m3u8")).text)
    assert playlist.is_endlist and len(playlist.segments) == 3
    # the audio track did not end: the channel is not ended, the MPD stays dynamic
    assert 'type="dynamic"' in (await origin.get("/live/ch/dash/manifest.mpd")).text


async def test_time_shift_windows(origin: Origin) -> None:
    await feed(origin, 10)
    start_s = (EPOCH_MS + 6_000) / 1000  # the segment at media time 6 s
    shifted = await origin.get(f"/live/ch/hls/video.m3u8?start={start_s}")
    assert shifted.status == 200, shifted.text
    assert m3u8.loads(shifted.text).media_sequence == 3
    end_iso = "2027-01-15T08:00:12Z"  # EPOCH_MS + 12 s, in the past by now (clock is at + 20 s)
    bounded = m3u8.loads((await origin.get(f"/live/ch/hls/video.m3u8?start={start_s}&end={end_iso}")).text)
    assert bounded.is_endlist and [s.uri.rsplit("/", 1)[-1] for s in bounded.segments] == [
        "540000.m4s", "720000.m4s", "900000.m4s",
    ]  # fmt: skip
    master = await origin.get(f"/live/ch/hls/index.m3u8?start={start_s}")
    assert f"video.m3u8?start={start_s}" in master.text
    too_old = await origin.get(f"/live/ch/hls/video.m3u8?start={(EPOCH_MS - 3_600_000) / 1000}")
    assert too_old.status == 404
    assert (await origin.get("/live/ch/hls/video.m3u8?start=yesterday")).status == 400


async def test_unknown_channel_and_paths(origin: Origin) -> None:
    assert (await origin.get("/live/none/hls/index.m3u8")).status == 404
    await feed(origin, 2)
    assert (await origin.get("/live/ch/hls/nope.m3u8")).status == 404
    assert (await origin.get("/live/ch/whatever")).status == 404
    assert (await call(origin.playback, "POST", "/live/ch/hls/index.m3u8")).status == 405


async def test_playback_auth_by_key_or_cdn_header(origin: Origin) -> None:
    await feed(origin, 3)
    auth = AuthConfig(read_only_keys=("viewer",), cdn_header="X-From-CDN: yes")
    await origin.store.put_channel(ChannelConfig(name="ch", auth=auth))
    origin.clock.ms += 2000  # past the snapshot age: the new config is read
    path = "/live/ch/hls/video.m3u8"
    refused = await origin.get(path)
    assert refused.status == 403 and refused.headers["cache-control"] == "no-store"
    assert (await origin.get(path + "?token=viewer")).status == 200
    assert (await call(origin.playback, "GET", path, headers=[(b"x-from-cdn", b"yes")])).status == 200
    signed = sign_token("viewer", "ch", origin.clock.ms // 1000 + 10_000_000_000)
    assert (await origin.get(f"/live/ch/media/video/0.m4s?token={signed}")).status == 200
