"""TS segments made once per cluster (``ts_cache``): keys naming every input, a second packager served
from the shared cache without remuxing, fallbacks when the shared copy is bad or gone. The cluster's
cache is a dict here (tests/integration/test_ts_shared.py runs the same on memcached + Cassandra)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from services.ingest.app import IngestApp
from services.ingest.service import IngestService
from services.packager import ts_cache
from services.packager.service import PackagerService
from services.packager.state import Rendered
from services.packager.ts_cache import TsSegments, product_key, ts_inputs
from services.packager.ts_output import TsInputs, mux_inputs, mux_video_variant, presentation_interval
from services.shared.cache import LruCache, SingleFlight
from services.shared.media.synthetic import make_fragment, make_header
from services.shared.media.ts.cmaf import concatenate, fragment_samples
from services.shared.metrics import Metrics
from services.shared.signal import LocalSignal
from services.shared.store.embedded import EmbeddedStore
from services.shared.store.packaged import packaged_cache
from tests.asgi import call

from .test_hls_ts import nal_samples
from .test_playback import EPOCH_MS, Clock

V_TS, A_TS = 90_000, 48_000
FRAMES = 50  # one 2 s segment of 25 fps video per fragment
REORDER = 7_200  # every video sample presented 2 frames after its decode time (B-frames)
AUDIO_FRAGMENT = 8 * 1024  # eight AAC frames per audio fragment: the 80 ms shift moves the audio cut


class SharedCache:
    """The cluster's cache: one dict for every packager."""

    def __init__(self) -> None:
        self.items: dict[str, bytes] = {}

    def products(self) -> dict[str, bytes]:
        return {k: v for k, v in self.items.items() if k.startswith("ts/")}


class ClusterStore(EmbeddedStore):
    """The embedded store with the ``PackagedCache`` capability, counting fragment reads."""

    def __init__(self, data_dir: Path, *, cache: SharedCache, clock_ms: Clock) -> None:
        super().__init__(data_dir, clock_ms=clock_ms)
        self.cache = cache
        self.reads: Counter[tuple[str, int]] = Counter()

    async def get_fragment(self, channel: str, track: str, decode_time: int) -> bytes | None:
        self.reads[(track, decode_time)] += 1
        return await super().get_fragment(channel, track, decode_time)

    async def get_packaged(self, key: str) -> bytes | None:
        return self.cache.items.get(key)

    async def put_packaged(self, key: str, data: bytes, *, ttl_s: int) -> None:
        assert ttl_s >= 1
        self.cache.items[key] = data


@dataclasses.dataclass
class Cluster:
    store: ClusterStore
    ingest: IngestApp
    signal: LocalSignal
    clock: Clock

    def packager(self) -> PackagerService:
        """A packager of its own (its own LRU, as another process would have) on the cluster's store."""
        return PackagerService(store=self.store, signal=self.signal, metrics=Metrics(), clock_ms=self.clock)

    async def push(self, track: str, body: bytes) -> None:
        reply = await call(self.ingest, "POST", f"/ingest/ch/Streams({track})", [body])
        assert reply.status == 200, reply.text


def video(n: int, *, filler: bool = False, size: int = 700) -> bytes:
    fragment = make_fragment(
        track_id=1, sequence_number=n + 1, decode_time=n * 2 * V_TS, sample_durations=(3600,) * FRAMES,
        sample_sizes=(size,) * FRAMES, composition_offsets=(REORDER,) * FRAMES,
        brands=("cmfs", "slat") if filler else None,
    )  # fmt: skip
    return fragment[: -size * FRAMES] + nal_samples(FRAMES, size)


def aac(n: int, *, filler: bool = False, size: int = 300) -> bytes:
    return make_fragment(
        track_id=1, sequence_number=n + 1, decode_time=n * AUDIO_FRAGMENT, sample_durations=(1024,) * 8,
        sample_sizes=(size,) * 8, brands=("cmfs", "slat") if filler else None,
    )  # fmt: skip


async def feed(cluster: Cluster, segments: int) -> None:
    """``segments`` video segments and the audio up to their end (all but the last are complete)."""
    await cluster.push("audio.cmfa", make_header(track_id=1, handler="soun", timescale=A_TS))
    await cluster.push("video.cmfv", make_header(track_id=1, timescale=V_TS))
    for n in range(segments):
        cluster.clock.ms = EPOCH_MS + (n + 1) * 2000
        await cluster.push("video.cmfv", video(n))
    for n in range(-(-segments * 2 * A_TS // AUDIO_FRAGMENT) + 1):
        await cluster.push("audio.cmfa", aac(n))


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    clock = Clock()
    store = ClusterStore(tmp_path, cache=SharedCache(), clock_ms=clock)
    await store.open()
    signal = LocalSignal()
    ingest = IngestService(store=store, signal=signal, metrics=Metrics(), clock_ms=clock)
    yield Cluster(store=store, ingest=IngestApp(ingest), signal=signal, clock=clock)
    await store.close()


async def serve(packager: PackagerService, variant: str, start: int) -> Rendered:
    """A TS segment, once the packager has shared what it made (shares run in the background)."""
    rendered = await packager.ts_segment("ch", variant, start)
    await packager.ts.drain()
    return rendered


async def reference(store: EmbeddedStore, start: int) -> bytes:
    """The segment as the TS output made it before the shared cache: every video fragment read, the
    presentation interval from the samples, the audio overlapping it."""
    tracks = {r.name: r.info for r in await store.get_tracks("ch")}
    video_info, audio_info = tracks["video"], tracks["audio"]
    segment = (await store.get_timeline("ch", "video")).segment_at(start)
    assert segment is not None
    fragments = [await store.get_fragment("ch", "video", f.decode_time) or b"" for f in segment.fragments]
    samples = concatenate(fragment_samples(f, video_info) for f in fragments)
    begin, end = presentation_interval(samples)
    audio = (await store.get_timeline("ch", "audio")).overlapping(
        begin * A_TS // V_TS, -(-end * A_TS // V_TS)
    )  # fmt: skip
    audio_fragments = [await store.get_fragment("ch", "audio", e.decode_time) or b"" for e in audio]
    return mux_video_variant(
        video=video_info, video_samples=samples, audio=audio_info, audio_fragments=audio_fragments
    )


async def test_a_second_packager_serves_the_first_ones_segment_without_remuxing(cluster: Cluster) -> None:
    await feed(cluster, 3)
    owner, other = cluster.packager(), cluster.packager()
    made = await serve(owner, "video", 2 * V_TS)
    assert made.body == await reference(cluster.store, 2 * V_TS)
    assert owner.ts.produced == 1 and owner.ts.shared_hits == 0
    assert len(cluster.store.cache.products()) == 1
    cluster.store.reads.clear()
    served = await serve(other, "video", 2 * V_TS)
    assert served.body == made.body and served.etag == made.etag
    assert served.last_modified_ms == made.last_modified_ms
    assert other.ts.produced == 0 and other.ts.shared_hits == 1
    assert cluster.store.reads == {}, "the offset and the segment came from the shared cache"
    again = await serve(other, "video", 2 * V_TS)
    assert again is served and other.ts.shared_hits == 1  # the process LRU


async def test_every_variant_kind_is_shared(cluster: Cluster) -> None:
    await feed(cluster, 3)
    owner, other = cluster.packager(), cluster.packager()
    audio_starts = [s.start_time for s in (await cluster.store.get_timeline("ch", "audio")).segments()]
    for variant, start in (("video", 0), ("audio", audio_starts[0]), ("audio", audio_starts[1])):
        made = await serve(owner, variant, start)
        assert (await serve(other, variant, start)).body == made.body
    assert owner.ts.produced == 3 and other.ts.produced == 0 and other.ts.shared_hits == 3


async def test_concurrent_requests_read_each_fragment_once_and_remux_once(cluster: Cluster) -> None:
    await feed(cluster, 3)
    packager = cluster.packager()
    cluster.store.reads.clear()
    replies = await asyncio.gather(*(packager.ts_segment("ch", "video", 2 * V_TS) for _ in range(200)))
    assert len({r.body for r in replies}) == 1
    assert packager.ts.produced == 1
    assert set(cluster.store.reads.values()) == {1}
    assert ("video", 2 * V_TS) in cluster.store.reads and len(cluster.store.reads) > 2


async def test_a_real_fragment_replacing_filler_is_a_new_segment(cluster: Cluster) -> None:
    await cluster.push("audio.cmfa", make_header(track_id=1, handler="soun", timescale=A_TS))
    await cluster.push("video.cmfv", make_header(track_id=1, timescale=V_TS))
    for n in range(3):
        await cluster.push("video.cmfv", video(n, filler=n == 1))
    for n in range(-(-3 * 2 * A_TS // AUDIO_FRAGMENT) + 1):
        await cluster.push("audio.cmfa", aac(n, filler=n == 14))  # inside the 2nd segment's audio
    owner = cluster.packager()
    filler = await serve(owner, "video", 2 * V_TS)
    cluster.clock.ms += 1000
    await cluster.push("video.cmfv", video(1, size=900))  # same duration, other bytes
    real = await serve(owner, "video", 2 * V_TS)
    assert real.body != filler.body and real.etag != filler.etag and owner.ts.produced == 2
    await cluster.push("audio.cmfa", aac(14, size=200))  # the audio changes: the video variant too
    with_audio = await serve(owner, "video", 2 * V_TS)
    assert with_audio.body not in (real.body, filler.body) and owner.ts.produced == 3
    assert with_audio.body == await reference(cluster.store, 2 * V_TS)
    assert len(cluster.store.cache.products()) == 3
    fresh = cluster.packager()
    assert (await serve(fresh, "video", 2 * V_TS)).body == with_audio.body
    assert fresh.ts.produced == 0


async def test_a_bad_or_missing_shared_segment_is_made_again(cluster: Cluster) -> None:
    await feed(cluster, 3)
    made = await serve(cluster.packager(), "video", 2 * V_TS)
    (key,) = cluster.store.cache.products()
    for damage in (b"not a transport stream", made.body[:-1], b""):
        cluster.store.cache.items[key] = damage
        packager = cluster.packager()
        assert (await serve(packager, "video", 2 * V_TS)).body == made.body
        assert packager.ts.produced == 1 and packager.ts.shared_hits == 0
        assert cluster.store.cache.items[key] == made.body  # shared again
    del cluster.store.cache.items[key]
    offsets = [k for k in cluster.store.cache.items if k.startswith("tso/")]
    for offset in offsets:
        cluster.store.cache.items[offset] = b"\x00"  # not 8 bytes: the video fragment is read
    cluster.store.reads.clear()
    packager = cluster.packager()
    assert (await serve(packager, "video", 2 * V_TS)).body == made.body
    assert packager.ts.produced == 1 and set(cluster.store.reads.values()) == {1}


async def test_keys_name_every_input_and_stay_short(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    await feed(cluster, 3)
    packager = cluster.packager()
    await serve(packager, "video", 2 * V_TS)
    inputs = ts_inputs(await packager.state("ch"), "video", 2 * V_TS)
    assert inputs.audio is not None
    audio = inputs.audio_entries(REORDER)
    key = product_key(inputs, audio)
    assert key in cluster.store.cache.items
    assert inputs.audio_entries(0) != audio, "the composition offset moves the audio cut"
    first = inputs.segment.fragments[0]
    changed = [
        product_key(inputs, audio[:-1]),
        product_key(inputs, (*audio[:-1], dataclasses.replace(audio[-1], ingest_time_ms=1))),
        product_key(dataclasses.replace(inputs, channel="ch2"), audio),
        product_key(
            dataclasses.replace(
                inputs,
                segment=dataclasses.replace(inputs.segment, fragments=(dataclasses.replace(first, size=1),)),
            ),
            audio,
        ),
        product_key(
            dataclasses.replace(
                inputs,
                driving=dataclasses.replace(
                    inputs.driving, record=dataclasses.replace(inputs.driving.record, created_ms=1)
                ),
            ),
            audio,
        ),
    ]
    monkeypatch.setattr(ts_cache, "TS_FORMAT", 2)
    changed.append(product_key(inputs, audio))
    assert len({key, *changed}) == len(changed) + 1
    long = dataclasses.replace(inputs, channel="c" * 128)
    assert len(product_key(long, audio).encode()) <= 120


async def test_stores_without_a_shared_cache_make_every_segment_themselves(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path)
    assert packaged_cache(store) is None
    assert packaged_cache(ClusterStore(tmp_path, cache=SharedCache(), clock_ms=Clock())) is not None
    service = PackagerService(store=store, signal=LocalSignal(), metrics=Metrics())
    assert service.ts.shared is None


async def test_the_remux_runs_in_a_worker_thread_or_on_the_loop_alike(cluster: Cluster) -> None:
    await feed(cluster, 3)
    inline, threaded = cluster.packager(), cluster.packager()
    assert threaded.ts.remux_in_thread
    inline.ts.remux_in_thread = False
    made = await serve(inline, "video", 0)
    cluster.store.cache.items.clear()
    assert (await serve(threaded, "video", 0)).body == made.body
    assert threaded.ts.produced == 1


async def test_the_remux_runs_once_per_cluster_and_shares_may_be_awaited(cluster: Cluster) -> None:
    await feed(cluster, 3)
    calls: list[int] = []

    def counting_mux(inputs: TsInputs, driving: Sequence[bytes], audio: Sequence[bytes]) -> bytes:
        calls.append(inputs.start_time)
        return mux_inputs(inputs, driving, audio)

    def segments() -> TsSegments:
        return TsSegments(
            store=cluster.store, objects=LruCache(1 << 24, lambda r: len(r.body)), flight=SingleFlight(),
            metrics=Metrics(), clock_ms=cluster.clock, cache_control=b"immutable", mux=counting_mux,
            share_in_background=False,
        )  # fmt: skip

    state = await cluster.packager().state("ch")
    first, second = segments(), segments()
    made = await first.get(state, "video", 2 * V_TS)  # shared before it returns: no drain needed
    assert (await second.get(state, "video", 2 * V_TS)).body == made.body
    assert calls == [2 * V_TS]
