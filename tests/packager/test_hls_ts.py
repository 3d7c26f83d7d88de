"""HLS with MPEG-TS segments: playlists (golden files, agreement with the CMAF playlists) and the
segments served over a real embedded store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import m3u8
import pytest

from services.packager import hls, hls_ts
from services.shared.media.synthetic import make_fragment, make_header
from tests.asgi import Reply
from tests.media.ts.packets import continuity_errors, packets

from .streams import assert_golden, audio, channel, golden_channel, video_360
from .test_playback import EPOCH_MS, V_TS, Clock, Origin, make_origin

# --- playlists ------------------------------------------------------------------------------------


def test_golden_multivariant() -> None:
    assert_golden("ts_multivariant.m3u8", hls_ts.multivariant_playlist(golden_channel()))


def test_golden_media_playlist() -> None:
    ch = golden_channel()
    assert_golden("ts_media_v720.m3u8", hls_ts.media_playlist(ch, ch.tracks[0]))


def test_variants_mux_the_default_audio_and_add_an_audio_only_one() -> None:
    ch = golden_channel()
    playlist = m3u8.loads(hls_ts.multivariant_playlist(ch, query="start=1700000000"))
    assert not playlist.media, "audio is muxed, not a rendition group"
    variants = {p.uri: p.stream_info for p in playlist.playlists}
    assert list(variants) == [
        "v720.m3u8?start=1700000000",
        "v360.m3u8?start=1700000000",
        "aud_en.m3u8?start=1700000000",
    ]
    cmaf = {p.uri.split("?")[0]: p.stream_info for p in m3u8.loads(hls.multivariant_playlist(ch)).playlists}
    for name in ("v720", "v360"):
        info = variants[f"{name}.m3u8?start=1700000000"]
        assert info.codecs == cmaf[f"{name}.m3u8"].codecs
        assert info.resolution == cmaf[f"{name}.m3u8"].resolution and info.frame_rate == 25
        assert info.bandwidth > cmaf[f"{name}.m3u8"].bandwidth  # TS packets and PES headers cost bytes
        assert info.bandwidth < cmaf[f"{name}.m3u8"].bandwidth * 1.2
    audio_only = variants["aud_en.m3u8?start=1700000000"]
    assert audio_only.codecs == "mp4a.40.2" and audio_only.resolution is None
    assert audio_only.average_bandwidth <= audio_only.bandwidth


def test_media_playlist_lists_the_cmaf_segments_as_ts() -> None:
    ch = golden_channel()
    for track in ch.tracks:
        ts_lines = hls_ts.media_playlist(ch, track).splitlines()
        cmaf_lines = [
            line
            for line in hls.media_playlist(ch, track).text.splitlines()
            if not line.startswith("#EXT-X-MAP")
        ]
        assert ts_lines[1] == "#EXT-X-VERSION:3"
        expected = [
            line.replace(f"../media/{track.name}/", f"../ts/{track.name}/").replace(".m4s", ".ts")
            for line in cmaf_lines
        ]
        assert ts_lines[2:] == expected[2:]


def test_without_video_only_the_audio_only_variant() -> None:
    playlist = m3u8.loads(hls_ts.multivariant_playlist(channel(audio("a", "eng"), audio("b", "fra"))))
    assert [p.uri for p in playlist.playlists] == ["a.m3u8"]


def test_without_audio_the_video_variants_carry_video_only() -> None:
    playlist = m3u8.loads(hls_ts.multivariant_playlist(channel(video_360())))
    assert [(p.uri, p.stream_info.codecs) for p in playlist.playlists] == [("v360.m3u8", "avc1.4d401e")]


# --- segments over the store ------------------------------------------------------------------------

A_TS = 48_000
FRAMES = 50  # 2 s of 25 fps video per fragment (one segment each)


def nal_samples(count: int, size: int) -> bytes:
    """Length-prefixed NAL units: an IDR, then non-IDR slices."""
    out = b""
    for index in range(count):
        header = b"\x65" if index == 0 else b"\x41"
        out += (size - 4).to_bytes(4, "big") + header + bytes(size - 5)
    return out


def video(n: int) -> bytes:
    fragment = make_fragment(
        track_id=1, sequence_number=n + 1, decode_time=n * 2 * V_TS, sample_durations=(3600,) * FRAMES,
        sample_sizes=(700,) * FRAMES,
    )  # fmt: skip
    return fragment[: -700 * FRAMES] + nal_samples(FRAMES, 700)


def aac(n: int) -> bytes:
    return make_fragment(
        track_id=1, sequence_number=n + 1, decode_time=n * 94 * 1024, sample_durations=(1024,) * 94,
        sample_sizes=(300,) * 94,
    )  # fmt: skip


def body(reply: Reply) -> bytes:
    return reply.text.encode("latin-1")  # tests.asgi decodes bodies as latin-1: lossless


async def feed(origin: Origin, fragments: int, *, audio_behind: int = 0) -> None:
    for n in range(fragments):
        origin.clock.ms = EPOCH_MS + (n + 1) * 2000
        await origin.push(
            "video.cmfv", (make_header(track_id=1, timescale=V_TS) if n == 0 else b"") + video(n)
        )
        if n < fragments - audio_behind:
            head = make_header(track_id=1, handler="soun", timescale=A_TS) if n == 0 else b""
            await origin.push("audio.cmfa", head + aac(n))


@pytest.fixture
async def origin(tmp_path: Path) -> AsyncIterator[Origin]:
    o = await make_origin(tmp_path, Clock())
    yield o
    await o.store.close()


async def test_ts_playlists_and_segments(origin: Origin) -> None:
    await feed(origin, 5)
    index = await origin.get("/live/ch/hls-ts/index.m3u8")
    assert index.status == 200 and index.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert [p.uri for p in m3u8.loads(index.text).playlists] == ["video.m3u8", "audio.m3u8"]
    playlist = m3u8.loads((await origin.get("/live/ch/hls-ts/video.m3u8")).text)
    assert [s.uri for s in playlist.segments] == [f"../ts/video/{n * 2 * V_TS}.ts" for n in range(4)]
    last: dict[int, int] = {}
    for segment in playlist.segments:
        reply = await origin.get(f"/live/ch/hls-ts/{segment.uri}".replace("hls-ts/../", ""))
        assert reply.status == 200, reply.text
        assert reply.headers["content-type"] == "video/mp2t"
        assert reply.headers["cache-control"] == "public, max-age=1209600, immutable"
        assert continuity_errors(body(reply), last) == []
        pids = {p.pid for p in packets(body(reply))}
        assert pids == {0, 0x1000, 0x100, 0x101}
    again = await origin.get("/live/ch/ts/video/0.ts")
    assert again.headers["etag"] and body(await origin.get("/live/ch/ts/video/0.ts")) == body(again)
    audio_only = await origin.get(f"/live/ch/ts/audio/{94 * 1024}.ts")
    assert audio_only.status == 200 and {p.pid for p in packets(body(audio_only))} == {0, 0x1000, 0x101}


async def test_segments_wait_for_their_audio(origin: Origin) -> None:
    await feed(origin, 5, audio_behind=2)  # audio stored up to 6 s, video segments complete up to 8 s
    playlist = m3u8.loads((await origin.get("/live/ch/hls-ts/video.m3u8")).text)
    assert [s.uri for s in playlist.segments] == [f"../ts/video/{n * 2 * V_TS}.ts" for n in range(3)]
    waiting = await origin.get(f"/live/ch/ts/video/{3 * 2 * V_TS}.ts")
    assert waiting.status == 404 and waiting.headers["cache-control"] == "max-age=1"


async def test_unknown_variants_and_ahead_segments_are_404(origin: Origin) -> None:
    await feed(origin, 3)
    assert (await origin.get("/live/ch/hls-ts/nope.m3u8")).status == 404
    assert (await origin.get("/live/ch/ts/nope/0.ts")).status == 404
    ahead = await origin.get(f"/live/ch/ts/video/{100 * V_TS}.ts")
    assert ahead.status == 404 and ahead.headers["cache-control"] == "max-age=1"
