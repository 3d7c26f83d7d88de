"""TS segments made once per cluster, on real servers: two packagers, each on its own WriteThroughStore
(Cassandra, the session's node, + its own ChunkedCache on three shared memcached daemons). The owner
remuxes; a packager taking the channel over reads the owner's segment from memcached."""

from __future__ import annotations

from collections import Counter

import pytest

from services.ingest.app import IngestApp
from services.ingest.service import IngestService
from services.packager.service import PackagerService
from services.packager.ts_cache import product_key, ts_inputs
from services.shared.media.synthetic import make_header
from services.shared.metrics import Metrics
from services.shared.signal import LocalSignal
from services.shared.store.write_through import WriteThroughStore, packaged_key
from tests.asgi import call
from tests.integration.conftest import WriteThroughFactory
from tests.integration.servers import MemcachedServer
from tests.integration.test_memcache import flip_byte, holders
from tests.packager.test_ts_cache import A_TS, AUDIO_FRAGMENT, REORDER, V_TS, aac, video

SAMPLE_BYTES = 12_000  # 50 video samples: a 600 KB segment, two memcached chunks
START = 2 * V_TS  # the segment every test asks for: the second one


def packager(store: WriteThroughStore) -> PackagerService:
    return PackagerService(store=store, signal=LocalSignal(), metrics=Metrics())


def count_reads(store: WriteThroughStore, monkeypatch: pytest.MonkeyPatch) -> Counter[tuple[str, int]]:
    reads: Counter[tuple[str, int]] = Counter()
    read = store.get_fragment

    async def counted(channel: str, track: str, decode_time: int) -> bytes | None:
        reads[(track, decode_time)] += 1
        return await read(channel, track, decode_time)

    monkeypatch.setattr(store, "get_fragment", counted)
    return reads


async def ingest(store: WriteThroughStore, *, video_filler: int | None = None) -> IngestApp:
    """Three video segments (B-frames) and their audio, committed through ``store``."""
    app = IngestApp(IngestService(store=store, signal=LocalSignal(), metrics=Metrics()))
    await push(app, "video.cmfv", make_header(track_id=1, timescale=V_TS))
    await push(app, "audio.cmfa", make_header(track_id=1, handler="soun", timescale=A_TS))
    for n in range(3):
        await push(app, "video.cmfv", video(n, size=SAMPLE_BYTES, filler=n == video_filler))
    for n in range(-(-3 * 2 * A_TS // AUDIO_FRAGMENT) + 1):
        await push(app, "audio.cmfa", aac(n))
    return app


async def push(app: IngestApp, track: str, body: bytes) -> None:
    reply = await call(app, "POST", f"/ingest/ch/Streams({track})", [body])
    assert reply.status == 200, reply.text


async def test_a_packager_taking_a_channel_over_serves_the_owners_segment_without_remuxing(
    write_through_stores: WriteThroughFactory,
    memcached_nodes: list[MemcachedServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner_store, _ = await write_through_stores()
    await ingest(owner_store)
    owner = packager(owner_store)
    made = await owner.ts_segment("ch", "video", START)
    await owner.ts.drain()  # the share runs in the background
    assert len(made.body) > 600_000 and owner.ts.produced == 1

    taker_store, taker_cache = await write_through_stores()  # opened after the commits: it loads them
    reads = count_reads(taker_store, monkeypatch)
    taker = packager(taker_store)
    served = await taker.ts_segment("ch", "video", START)
    assert served.body == made.body and served.etag == made.etag
    assert taker.ts.produced == 0 and taker.ts.shared_hits == 1
    assert reads == {}, "neither the video (offset) nor any fragment was read"
    assert taker_cache.stats.hits == 2  # the offset record and the segment

    # Every cached copy of the segment damaged: a miss, and the segment is made again, identical.
    inputs = ts_inputs(await taker.state("ch"), "video", START)
    key = packaged_key(product_key(inputs, inputs.audio_entries(REORDER)))
    damaged = holders(memcached_nodes, key)
    assert len(damaged) == 2  # replicas
    for node in damaged:
        flip_byte(node, key, chunk=1)
    before = taker_cache.stats.corrupt
    again = packager(taker_store)
    assert (await again.ts_segment("ch", "video", START)).body == made.body
    await again.ts.drain()
    assert again.ts.produced == 1 and taker_cache.stats.corrupt - before == 2
    assert reads and set(reads.values()) == {1}
    assert await taker_cache.get(key) == made.body  # shared again, good


async def test_a_real_fragment_replacing_filler_gets_a_new_shared_segment(
    write_through_stores: WriteThroughFactory,
) -> None:
    owner_store, _ = await write_through_stores()
    app = await ingest(owner_store, video_filler=1)
    owner = packager(owner_store)
    filler = await owner.ts_segment("ch", "video", START)
    await push(app, "video.cmfv", video(1, size=SAMPLE_BYTES + 100))
    owner = packager(owner_store)  # the ingest's signal is not this packager's: a fresh snapshot
    real = await owner.ts_segment("ch", "video", START)
    await owner.ts.drain()
    assert real.body != filler.body and owner.ts.produced == 1 and owner.ts.shared_hits == 0

    taker_store, _ = await write_through_stores()
    taker = packager(taker_store)
    assert (await taker.ts_segment("ch", "video", START)).body == real.body
    assert taker.ts.produced == 0 and taker.ts.shared_hits == 1
