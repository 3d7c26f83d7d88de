"""The ingest edge against the contract: status codes, messages, and nothing committed is ever lost.

Requests go through the raw ASGI interface so that chunk boundaries, disconnects and stalls are exact.
"""

from __future__ import annotations

import asyncio
import base64
import struct
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from services.node import Node, create_app
from services.settings import Settings
from services.shared.channels import AuthConfig, ChannelConfig
from services.shared.media.boxes import TrackExtendsBox
from services.shared.media.synthetic import make_fragment, make_header, make_header_of, make_trak, video_entry
from tests.asgi import call

TS = 90000
SAMPLE = 3600  # 25 fps
FRAMES = 50  # 2 s fragments


def fragment(n: int, *, sizes: Sequence[int] | None = None, brands: Sequence[str] | None = None) -> bytes:
    return make_fragment(
        track_id=1,
        sequence_number=n + 1,
        decode_time=n * SAMPLE * FRAMES,
        sample_durations=(SAMPLE,) * FRAMES,
        sample_sizes=sizes or (200,) * FRAMES,
        brands=brands,
    )


HEADER = make_header(track_id=1, timescale=TS)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    app = create_app(Settings(data_dir=tmp_path, idle_timeout_s=0.3, header_wait_s=0.3))
    await app.store.open()
    yield app
    await app.store.close()


async def committed(node: Node, channel: str = "ch", track: str = "v") -> list[int]:
    return [e.decode_time for e in (await node.store.get_timeline(channel, track)).entries()]


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def test_long_post_commits_each_fragment_in_any_split(node: Node) -> None:
    body = HEADER + b"".join(fragment(n) for n in range(3))
    reply = await call(node, "POST", "/ingest/ch/Streams(v.cmfv)", split(body, 977))
    assert reply.status == 200, reply.text
    assert await committed(node) == [0, 180000, 360000]


async def test_broken_connection_keeps_complete_fragments_and_no_partial(node: Node) -> None:
    body = HEADER + fragment(0) + fragment(1)
    cut = len(body) - 150  # mid-mdat of the second fragment
    reply = await call(node, "POST", "/ingest/ch/Streams(v.cmfv)", [body[:cut]], then="disconnect")
    assert reply.status == 0  # nobody to answer
    assert await committed(node) == [0]
    assert await node.store.get_fragment("ch", "v", 180000) is None


async def test_stalled_sender_is_cut_off_and_earlier_fragments_stay(node: Node) -> None:
    reply = await call(
        node, "POST", "/ingest/ch/Streams(v.cmfv)", [HEADER + fragment(0) + fragment(1)[:99]], then="stall"
    )
    assert reply.status == 408 and "no request body bytes" in reply.text
    assert await committed(node) == [0]


async def test_per_segment_requests_and_duplicates(node: Node) -> None:
    assert (await call(node, "PUT", "/ingest/ch/v/init.mp4", [HEADER])).status == 200
    assert (await call(node, "PUT", "/ingest/ch/v/1.m4s", [fragment(0)])).status == 200
    again = await call(node, "PUT", "/ingest/ch/v/1.m4s", [fragment(0)])
    assert again.status == 200 and "1 duplicates" in again.text
    assert await committed(node) == [0]


async def test_empty_body_is_a_probe(node: Node) -> None:
    reply = await call(node, "POST", "/ingest/ch/Streams(v.cmfv)", [])
    assert reply.status == 200 and "accepts ingest" in reply.text


async def test_delete_is_accepted_and_ignored(node: Node) -> None:
    await call(node, "PUT", "/ingest/ch/v/init.mp4", [HEADER + fragment(0)])
    assert (await call(node, "DELETE", "/ingest/ch/v/1.m4s")).status == 200
    assert await committed(node) == [0]


async def test_fragment_before_any_header_is_412(node: Node) -> None:
    started = asyncio.get_running_loop().time()
    reply = await call(node, "PUT", "/ingest/ch/v/1.m4s", [fragment(0)])
    assert reply.status == 412 and "header" in reply.text
    assert asyncio.get_running_loop().time() - started >= 0.3  # it waited for its header first
    assert await node.store.get_tracks("ch") == []


MPD = b"""<?xml version="1.0" encoding="utf-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic"><Period id="0" start="PT0.0S">
 <AdaptationSet id="0" contentType="video"><Representation id="0" mimeType="video/mp4" codecs="avc1.64001f"
  bandwidth="3000000"><SegmentTemplate timescale="1000000" initialization="init-stream$RepresentationID$.m4s"
  media="chunk-stream$RepresentationID$-$Number%05d$.m4s" startNumber="1"/></Representation></AdaptationSet>
</Period></MPD>"""


@pytest.mark.parametrize("order", ["init, MPD", "MPD, init"])
async def test_segment_ahead_of_its_init_and_mpd_waits_for_them(node: Node, order: str) -> None:
    """FFmpeg's DASH muxer sends init, MPD and segment on separate connections without waiting for
    answers: behind a round-robin front the segment can arrive first. It waits, then lands on the
    track the MPD names (not on one named after its file)."""
    segment = asyncio.create_task(call(node, "PUT", "/ingest/ch/chunk-stream0-00001.m4s", [fragment(0)]))
    await asyncio.sleep(0.05)
    first, second = [("/ingest/ch/init-stream0.m4s", HEADER), ("/ingest/ch/manifest.mpd", MPD)][
        :: 1 if order == "init, MPD" else -1
    ]
    assert (await call(node, "PUT", first[0], [first[1]])).status == 200
    assert not segment.done()
    assert (await call(node, "PUT", second[0], [second[1]])).status == 200
    reply = await segment
    assert reply.status == 200 and "track 0: 1 fragments committed" in reply.text, reply.text
    assert await committed(node, track="0") == [0]
    assert [t.name for t in await node.store.get_tracks("ch")] == ["0"]


def _with_size(box: bytes, size_field: bytes) -> bytes:
    return size_field + box[4:]


def _bad_bodies() -> dict[str, tuple[bytes, int, str]]:
    good = fragment(1)
    mdat_at = good.index(b"mdat") - 4
    moof, mdat = good[:mdat_at], good[mdat_at:]
    lying_trun = fragment(1, sizes=(300,) * FRAMES)[: good.index(b"mdat") - 4] + mdat  # sizes > mdat
    ts = bytes([0x47, 0x40, 0x00, 0x10]) + bytes(184)
    return {
        "truncated box": (moof + mdat[:-10], 400, "mdat"),
        "box size 0": (_with_size(moof, b"\0\0\0\0") + mdat, 400, "moof"),
        "largesize beyond body": (b"\0\0\0\x01moof" + struct.pack(">Q", 10**6) + moof[8:], 400, "moof"),
        "size beyond body": (_with_size(moof, struct.pack(">I", len(good) + 5000)) + mdat, 400, "moof"),
        "size below header": (_with_size(moof, struct.pack(">I", 4)) + mdat, 400, "moof"),
        "mdat without moof": (mdat, 400, "mdat"),
        "trun sizes not matching mdat": (lying_trun, 400, "trun"),
        "decreasing tfdt": (
            make_fragment(track_id=1, sequence_number=7, decode_time=90000, sample_durations=(SAMPLE,) * 3),
            400,
            "tfdt",
        ),
        "overlapping tfdt": (
            make_fragment(
                track_id=1, sequence_number=9, decode_time=180000 + 3600 * 10, sample_durations=(SAMPLE,) * 3
            ),
            400,
            "tfdt",
        ),
        "MPEG-TS bytes": (ts * 7, 415, "MPEG-TS"),
    }


@pytest.mark.parametrize("case", list(_bad_bodies()))
async def test_bad_input_is_refused_and_changes_nothing(node: Node, case: str) -> None:
    assert (
        await call(node, "POST", "/ingest/ch/Streams(v.cmfv)", [HEADER + fragment(0) + fragment(1)])
    ).status == 200
    before = [await node.store.get_fragment("ch", "v", t) for t in await committed(node)]
    body, status, word = _bad_bodies()[case]
    reply = await call(node, "PUT", "/ingest/ch/Streams(v.cmfv)", split(body, 301))
    assert reply.status == status, reply.text
    assert word.lower() in reply.text.lower(), reply.text
    after = [await node.store.get_fragment("ch", "v", t) for t in await committed(node)]
    assert await committed(node) == [0, 180000] and after == before


async def test_unknown_codec_is_415(node: Node) -> None:
    vp9 = replace(video_entry(), box_type="vp09")
    header = make_header_of([make_trak(entry=vp9)], [TrackExtendsBox(track_id=1)])
    reply = await call(node, "PUT", "/ingest/ch/Streams(v.cmfv)", [header])
    assert reply.status == 415 and "vp09" in reply.text


async def test_two_track_header_is_refused(node: Node) -> None:
    header = make_header_of(
        [make_trak(track_id=1), make_trak(track_id=2, handler="soun")],
        [TrackExtendsBox(track_id=1), TrackExtendsBox(track_id=2)],
    )
    reply = await call(node, "PUT", "/ingest/ch/Streams(v.cmfv)", [header])
    assert reply.status == 415 and "one track" in reply.text


async def test_body_over_the_size_limit_is_413(node: Node) -> None:
    await node.store.put_channel(ChannelConfig(name="small", max_object_bytes=4096))
    big = fragment(0, sizes=(200,) * FRAMES)  # ~10 KB
    assert (await call(node, "PUT", "/ingest/small/v/init.mp4", [HEADER])).status == 200
    reply = await call(node, "PUT", "/ingest/small/v/1.m4s", split(big, 1000))
    assert reply.status == 413 and "4096" in reply.text
    declared = await call(node, "PUT", "/ingest/small/v/2.m4s", [], headers=[(b"content-length", b"999999")])
    assert declared.status == 413
    streamed = await call(node, "POST", "/ingest/small/Streams(v.cmfv)", [big])  # one box over the limit
    assert streamed.status == 413
    assert await committed(node, "small") == []


@pytest.mark.parametrize(
    "path",
    [
        "/ingest/../Streams(v)",
        "/ingest/a%2Fb/Streams(v)",
        "/ingest/a%00b/Streams(v)",
        "/ingest/" + "c" * 129 + "/Streams(v)",
        "/ingest/ch/Streams(..)",
    ],
)
async def test_bad_names_are_400(node: Node, path: str) -> None:
    reply = await call(node, "POST", path, [HEADER])
    assert reply.status == 400, reply.text
    assert await node.store.list_channels() == []


async def test_unknown_channel_is_404_without_auto_create(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, auto_create=False))
    await app.store.open()
    try:
        reply = await call(app, "POST", "/ingest/nope/Streams(v.cmfv)", [HEADER])
        assert reply.status == 404 and "auto-create" in reply.text
    finally:
        await app.store.close()


async def test_lmsg_ends_the_track(node: Node) -> None:
    last = fragment(1, brands=("msdh", "msdh", "lmsg"))
    await call(node, "POST", "/ingest/ch/Streams(v.cmfv)", [HEADER + fragment(0) + last])
    assert (await node.store.get_timeline("ch", "v")).ended


async def test_ingest_needs_a_read_write_key_when_the_channel_has_keys(node: Node) -> None:
    await node.store.put_channel(ChannelConfig(name="locked", auth=AuthConfig(read_write_keys=("s3cret",))))
    path = "/ingest/locked/Streams(v.cmfv)"
    assert (await call(node, "POST", path, [HEADER])).status == 403
    wrong = [(b"authorization", b"Bearer nope")]
    assert (await call(node, "POST", path, [HEADER], headers=wrong)).status == 403
    basic = [(b"authorization", b"Basic " + base64.b64encode(b"encoder:s3cret"))]
    assert (await call(node, "POST", path, [HEADER], headers=basic)).status == 200
    assert (
        await call(node, "POST", path, [HEADER], headers=[(b"authorization", b"Bearer s3cret")])
    ).status == 200
    assert (await call(node, "POST", path + "?token=s3cret", [HEADER])).status == 200
    assert await committed(node, "locked") == []  # the refused requests stored nothing


async def test_request_limit_answers_429(node: Node) -> None:
    await node.store.put_channel(ChannelConfig(name="slow", requests_per_s=2))
    statuses = [(await call(node, "POST", "/ingest/slow/Streams(v.cmfv)", [])).status for _ in range(4)]
    assert statuses[:2] == [200, 200] and 429 in statuses[2:]
    assert node.metrics.throttles >= 1
