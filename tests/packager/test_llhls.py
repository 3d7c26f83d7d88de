"""LL-HLS over the real ingest and playback edges: parts, preload hints, delta updates, blocking reload.

The channel is fed 0.5 s video chunks (a keyframe every fourth: 2 s GOPs) and 0.512 s audio chunks,
so its segments hold several fragments and its media playlists turn low-latency.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import m3u8
import pytest

from services.packager import llhls
from services.packager.errors import BadRequest
from services.shared.channels import ChannelConfig
from services.shared.media.synthetic import make_fragment, make_header
from tests.packager.test_playback import EPOCH_MS, Clock, Origin, make_origin

V_TS, A_TS = 90_000, 48_000
V_CHUNK, A_CHUNK = 45_000, 24 * 1024  # 0.5 s of video, 0.512 s of audio
PART_TARGET = "0.51200"  # the longest chunk (audio), rounded up to 10 µs


def video_chunk(k: int, *, last: bool = False) -> bytes:
    return make_fragment(
        decode_time=k * V_CHUNK, sequence_number=k + 1, sample_durations=(3750,) * 12,
        sample_sizes=(400,) * 12, keyframe_first=k % 4 == 0,
        brands=("msdh", "msdh", "lmsg") if last else None,
    )  # fmt: skip


def audio_chunk(k: int) -> bytes:
    return make_fragment(
        decode_time=k * A_CHUNK,
        sequence_number=k + 1,
        sample_durations=(1024,) * 24,
        sample_sizes=(200,) * 24,
    )


async def push_video(origin: Origin, k: int, *, last: bool = False) -> None:
    origin.clock.ms = EPOCH_MS + (k + 1) * 500
    head = make_header(track_id=1, timescale=V_TS) if k == 0 else b""
    await origin.push("video.cmfv", head + video_chunk(k, last=last))


async def push_audio(origin: Origin, k: int) -> None:
    head = make_header(track_id=1, handler="soun", timescale=A_TS) if k == 0 else b""
    await origin.push("audio.cmfa", head + audio_chunk(k))


async def feed(origin: Origin, seconds: float, *, start_s: float = 0) -> None:
    """Video and audio chunks covering [start_s, start_s + seconds), in arrival order."""
    v, a = int(start_s * 2), int(start_s * A_TS) // A_CHUNK
    while v * V_CHUNK < (start_s + seconds) * V_TS:
        await push_video(origin, v)
        while (a + 1) * A_CHUNK * V_TS <= (v + 1) * V_CHUNK * A_TS:
            await push_audio(origin, a)
            a += 1
        v += 1


@pytest.fixture
async def origin(tmp_path: Path) -> AsyncIterator[Origin]:
    o = await make_origin(tmp_path, Clock())
    yield o
    await o.store.close()


def tags(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"#{name}")]


async def test_chunked_channel_gets_low_latency_playlists(origin: Origin) -> None:
    await feed(origin, 5.5)  # segments 0, 1 complete; segment 2 has parts 0..2
    reply = await origin.get("/live/ch/hls/video.m3u8")
    assert reply.status == 200 and reply.headers["cache-control"] == "public, max-age=1"
    text = reply.text
    assert tags(text, "EXT-X-SERVER-CONTROL") == [
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.53600,CAN-SKIP-UNTIL=12.00000"
    ]
    assert tags(text, "EXT-X-PART-INF") == [f"#EXT-X-PART-INF:PART-TARGET={PART_TARGET}"]
    parts = tags(text, "EXT-X-PART:")
    assert len(parts) == 4 + 4 + 3
    independent = [p for p in parts if p.endswith("INDEPENDENT=YES")]
    assert [re.findall(r"part-(\d+)", p) for p in independent] == [["0"], ["180000"], ["360000"]]
    assert parts[-1] == '#EXT-X-PART:DURATION=0.50000,URI="../media/video/part-450000.m4s"'
    assert tags(text, "EXT-X-PRELOAD-HINT") == [
        '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="../media/video/part-495000.m4s"'
    ]
    (report,) = tags(text, "EXT-X-RENDITION-REPORT")
    assert report.startswith('#EXT-X-RENDITION-REPORT:URI="audio.m3u8",LAST-MSN=2,LAST-PART=')
    playlist = m3u8.loads(text)
    listed = [s.uri for s in playlist.segments if s.uri]  # m3u8 shows the open segment's parts uri-less
    assert listed == ["../media/video/0.m4s", "../media/video/180000.m4s"]
    assert len(playlist.segments[-1].parts) == 3 and playlist.preload_hint is not None
    # every part's DURATION is at most PART-TARGET, and the parts of a segment add up to its EXTINF
    durations = [float(p.split("DURATION=")[1].split(",")[0]) for p in parts]
    assert max(durations) <= float(PART_TARGET)
    assert sum(durations[:4]) == pytest.approx(playlist.segments[0].duration, abs=1e-5)
    # the multivariant playlist and every media playlist share SERVER-CONTROL (RFC 8216bis 6.2.4)
    audio = (await origin.get("/live/ch/hls/audio.m3u8")).text
    assert tags(audio, "EXT-X-SERVER-CONTROL") == tags(text, "EXT-X-SERVER-CONTROL")
    assert tags(audio, "EXT-X-TARGETDURATION") == tags(text, "EXT-X-TARGETDURATION")


async def test_parts_are_the_committed_fragments_and_immutable(origin: Origin) -> None:
    await feed(origin, 2.5)
    reply = await origin.get("/live/ch/media/video/part-180000.m4s")
    assert reply.status == 200
    assert reply.headers["cache-control"] == "public, max-age=1209600, immutable"
    assert reply.text.encode("latin-1") == video_chunk(4)
    assert (await origin.get("/live/ch/media/video/part-90001.m4s")).status == 404  # no fragment there
    far = await origin.get("/live/ch/media/video/part-900000.m4s")  # not the hinted next part
    assert far.status == 404 and far.headers["cache-control"] == "max-age=1"


async def test_the_hinted_part_is_held_until_committed(origin: Origin) -> None:
    await feed(origin, 2.5)
    pending = asyncio.create_task(origin.get("/live/ch/media/video/part-225000.m4s"))
    await asyncio.sleep(0.2)
    assert not pending.done()
    await push_video(origin, 5)
    reply = await asyncio.wait_for(pending, 2)
    assert reply.status == 200 and reply.text.encode("latin-1") == video_chunk(5)


async def test_blocking_reload_waits_for_the_part(origin: Origin) -> None:
    await feed(origin, 2.5)  # segment 1 has parts 0 (and the audio's)
    path = "/live/ch/hls/video.m3u8?_HLS_msn=1&_HLS_part=1"
    pending = asyncio.create_task(origin.get(path))
    await asyncio.sleep(0.2)
    assert not pending.done()
    started = time.monotonic()
    await push_video(origin, 5)
    reply = await asyncio.wait_for(pending, 2)
    assert time.monotonic() - started < 0.5
    assert reply.status == 200 and "part-225000.m4s" in reply.text
    assert reply.headers["cache-control"] == "public, max-age=12"  # 6 target durations
    # already satisfied: answered at once, and a part past the segment's last means the next segment
    assert (await origin.get("/live/ch/hls/video.m3u8?_HLS_msn=0&_HLS_part=9")).status == 200


async def test_blocking_reload_for_a_whole_segment(origin: Origin) -> None:
    await feed(origin, 2.5)
    pending = asyncio.create_task(origin.get("/live/ch/hls/video.m3u8?_HLS_msn=1"))
    await asyncio.sleep(0.1)
    await feed(origin, 1.5, start_s=2.5)  # segment 1 still open: its parts do not satisfy _HLS_msn=1
    await asyncio.sleep(0.1)
    assert not pending.done()
    await feed(origin, 0.5, start_s=4)  # segment 2 starts: segment 1 is complete
    reply = await asyncio.wait_for(pending, 2)
    assert reply.status == 200
    assert "../media/video/180000.m4s" in [s.uri for s in m3u8.loads(reply.text).segments]


async def test_directive_errors(origin: Origin) -> None:
    await feed(origin, 2.5)
    for query, message in (
        ("_HLS_part=1", "needs _HLS_msn"),
        ("_HLS_msn=4", "too far ahead"),  # last complete segment is 0: at most 2 ahead
        ("_HLS_msn=1&_HLS_part=9", "too far ahead"),  # 3 / 0.512 s -> 6 parts ahead at most
        ("_HLS_msn=x", "decimal integer"),
    ):
        reply = await origin.get(f"/live/ch/hls/video.m3u8?{query}")
        assert reply.status == 400 and message in reply.text, (query, reply.text)


async def test_blocking_reload_gives_up_with_503_after_three_targets(origin: Origin) -> None:
    await origin.store.put_channel(ChannelConfig(name="ch", segment_duration_ms=1000))
    for k in range(5):  # video only, every chunk a keyframe: 1 s segments of two parts
        origin.clock.ms = EPOCH_MS + (k + 1) * 500
        head = make_header(track_id=1, timescale=V_TS) if k == 0 else b""
        body = make_fragment(decode_time=k * V_CHUNK, sequence_number=k + 1, sample_durations=(3750,) * 12)
        await origin.push("video.cmfv", head + body)
    assert "#EXT-X-TARGETDURATION:1" in (await origin.get("/live/ch/hls/video.m3u8")).text
    started = time.monotonic()
    reply = await origin.get("/live/ch/hls/video.m3u8?_HLS_msn=3&_HLS_part=0")
    waited = time.monotonic() - started
    assert reply.status == 503 and "did not appear" in reply.text
    assert 2.9 < waited < 4.5


async def test_delta_update_skips_old_segments(origin: Origin) -> None:
    await feed(origin, 20.5)
    full = (await origin.get("/live/ch/hls/video.m3u8")).text
    delta = (await origin.get("/live/ch/hls/video.m3u8?_HLS_skip=YES")).text
    (skip,) = tags(delta, "EXT-X-SKIP")
    skipped = int(skip.split("=")[1])
    full_uris = [line for line in full.splitlines() if line.endswith(".m4s") and not line.startswith("#")]
    delta_uris = [line for line in delta.splitlines() if line.endswith(".m4s") and not line.startswith("#")]
    assert skipped > 0 and full_uris[skipped:] == delta_uris
    assert "#EXT-X-VERSION:9" in delta and tags(delta, "EXT-X-MEDIA-SEQUENCE") == tags(
        full, "EXT-X-MEDIA-SEQUENCE"
    )
    # the skipped segments end more than CAN-SKIP-UNTIL (12 s) before the playlist's end
    assert 20.5 - 2 * skipped > 12 and 20.5 - 2 * (skipped + 1) <= 12


async def test_ended_track_ignores_directives(origin: Origin) -> None:
    await feed(origin, 3.5)
    await push_video(origin, 7, last=True)
    reply = await origin.get("/live/ch/hls/video.m3u8?_HLS_msn=9&_HLS_part=0&_HLS_skip=YES")
    assert reply.status == 200 and "#EXT-X-ENDLIST" in reply.text and "EXT-X-SKIP" not in reply.text
    assert not tags(reply.text, "EXT-X-PRELOAD-HINT")


async def test_one_fragment_per_segment_stays_classic(tmp_path: Path) -> None:
    origin = await make_origin(tmp_path, Clock())
    for k in range(3):
        origin.clock.ms = EPOCH_MS + (k + 1) * 2000
        head = make_header(track_id=1, timescale=V_TS) if k == 0 else b""
        body = make_fragment(decode_time=k * 180_000, sequence_number=k + 1, sample_durations=(3750,) * 48)
        await origin.push("video.cmfv", head + body)
    text = (await origin.get("/live/ch/hls/video.m3u8?_HLS_msn=1&_HLS_part=0")).text
    assert "EXT-X-PART" not in text and "EXT-X-SERVER-CONTROL" not in text
    await origin.store.close()


async def test_restart_keeps_part_numbering(tmp_path: Path) -> None:
    clock = Clock()
    first = await make_origin(tmp_path, clock)
    await feed(first, 5.5)
    before = (await first.get("/live/ch/hls/video.m3u8")).text
    await first.store.close()
    second = await make_origin(tmp_path, clock)
    assert (await second.get("/live/ch/hls/video.m3u8")).text == before
    await second.store.close()


def test_parse_directives() -> None:
    assert llhls.parse_directives(b"start=1") == llhls.Directives()
    assert llhls.parse_directives(b"_HLS_msn=5&_HLS_part=2&_HLS_skip=v2") == llhls.Directives(
        msn=5, part=2, skip=True
    )
    assert not llhls.parse_directives(b"_HLS_skip=NO").skip
    with pytest.raises(BadRequest):
        llhls.parse_directives(b"_HLS_part=2")
    with pytest.raises(BadRequest):
        llhls.parse_directives(b"_HLS_msn=-1")


async def test_per_frame_chunks_are_grouped_into_parts(origin: Origin) -> None:
    """40 ms chunks (one frame each, 25 fps, a keyframe every 2 s) become 0.2 s parts of 5 frames."""
    frame = 3600

    async def push_frame(k: int) -> None:
        origin.clock.ms = EPOCH_MS + (k + 1) * 40
        head = make_header(track_id=1, timescale=V_TS) if k == 0 else b""
        body = make_fragment(
            decode_time=k * frame,
            sequence_number=k + 1,
            sample_durations=(frame,),
            keyframe_first=k % 50 == 0,
        )
        await origin.push("video.cmfv", head + body)

    for k in range(50 + 12):  # segment 0 complete, segment 1 has two complete parts and 2 frames more
        await push_frame(k)
    text = (await origin.get("/live/ch/hls/video.m3u8")).text
    parts = tags(text, "EXT-X-PART:")
    assert len(parts) == 10 + 2
    assert all("DURATION=0.20000" in p for p in parts)
    assert tags(text, "EXT-X-PART-INF") == ["#EXT-X-PART-INF:PART-TARGET=0.20000"]
    hint = f"part-{60 * frame}.m4s"  # the part being written: starts at frame 60, has 2 of its 5 frames
    assert tags(text, "EXT-X-PRELOAD-HINT") == [f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="../media/video/{hint}"']
    assert not tags(text, "EXT-X-RENDITION-REPORT")  # one track: no sibling to report
    part = await origin.get(f"/live/ch/media/video/part-{55 * frame}.m4s")
    assert part.status == 200 and len(part.text) > 0
    assert (await origin.get(f"/live/ch/media/video/part-{56 * frame}.m4s")).status == 404  # inside a part
    pending = asyncio.create_task(origin.get(f"/live/ch/media/video/{hint}"))
    for k in range(62, 64):
        await push_frame(k)
        await asyncio.sleep(0.05)
        assert not pending.done()
    await push_frame(64)  # the fifth frame completes the part
    reply = await asyncio.wait_for(pending, 2)
    assert reply.status == 200
    blocking = await origin.get("/live/ch/hls/video.m3u8?_HLS_msn=1&_HLS_part=2")
    assert blocking.status == 200 and hint in blocking.text
