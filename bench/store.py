"""Store benchmarks (issue 3), against a real Cassandra node and real memcached daemons:

- publish latency through the product's write path (``WriteThroughStore.commit_fragment``: bytes durable
  in Cassandra at the configured consistency, then cached, then the timeline entry written), p50/p99;
- segment reads served from memcached (write-through hits) beside the same reads from Cassandra
  directly, in bytes/s, with the same concurrency — the ratio is what the cache buys the packagers.

    python -m bench.store [--fragments 100] [--reads 200] [--size 500000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from services.shared.metrics import quantile
from services.shared.store.cassandra import CassandraStore
from services.shared.store.memcache import ChunkedCache
from services.shared.store.write_through import WriteThroughStore
from services.shared.timeline import FragmentEntry
from tests.integration.servers import running_cassandra, running_memcached

TTL_S = 3600
WARMUP = 50  # commits before the measured ones


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreBench:
    fragments: int
    size: int
    publish_p50_ms: float
    publish_p99_ms: float
    cached_bytes_per_s: float
    cassandra_bytes_per_s: float

    def markdown(self) -> str:
        ratio = self.cached_bytes_per_s / self.cassandra_bytes_per_s
        return "\n".join([
            "| store metric (Cassandra 5.0 + 2 memcached, replicas 2) | value | goal |",
            "| --- | ---: | --- |",
            f"| publish p50 / p99 through the write-through store, {self.size:,} B, n = {self.fragments} "
            f"| {self.publish_p50_ms:.2f} / {self.publish_p99_ms:.2f} ms "
            f"| p99 ≤ 30 ms: {'met' if self.publish_p99_ms <= 30 else '**not met**'} |",
            f"| segment reads served by memcached | {self.cached_bytes_per_s / 1e6:,.1f} MB/s | |",
            f"| the same reads from Cassandra directly | {self.cassandra_bytes_per_s / 1e6:,.1f} MB/s | |",
            f"| memcached / Cassandra | {ratio:.2f} | |",
        ])  # fmt: skip


def _entry(n: int, size: int) -> FragmentEntry:
    return FragmentEntry(
        decode_time=n * 180_000, duration_ticks=180_000, sample_count=50, independent=True,
        segment_number=n, segment_start=n * 180_000, part_number=0, size=size,
        ingest_time_ms=time.time_ns() // 1_000_000,
    )  # fmt: skip


async def _throughput(read: Callable[[int], Awaitable[bytes | None]], *, reads: int, concurrency: int,
                      fragments: int, size: int) -> float:  # fmt: skip
    queue = iter(range(reads))

    async def worker() -> None:
        for i in queue:
            data = await read(i % fragments)
            if data is None or len(data) != size:
                raise RuntimeError(f"read {i} returned {None if data is None else len(data)} bytes")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return reads * size / (time.perf_counter() - started)


async def measure(*, contact_point: str, port: int, memcached: list[str], fragments: int, reads: int,
                  size: int, concurrency: int) -> StoreBench:  # fmt: skip
    durable = CassandraStore(
        contact_points=[contact_point], port=port, keyspace=f"bench_{uuid.uuid4().hex[:12]}",
        consistency="LOCAL_QUORUM",
    )  # fmt: skip
    store = WriteThroughStore(durable, ChunkedCache(memcached, replicas=2))
    await store.open()
    try:
        payload = os.urandom(size)
        for n in range(WARMUP):  # a just-started JVM compiles its write path: not what we measure
            await store.commit_fragment("warm", "v", _entry(n, size), payload, ttl_s=TTL_S)
        latencies = []
        for n in range(fragments):
            started = time.perf_counter_ns()
            await store.commit_fragment("bench", "v", _entry(n, size), payload, ttl_s=TTL_S)
            latencies.append(time.perf_counter_ns() - started)

        async def cached(n: int) -> bytes | None:
            return await store.get_fragment("bench", "v", n * 180_000)

        async def direct(n: int) -> bytes | None:
            return await durable.get_fragment("bench", "v", n * 180_000)

        common = {"reads": reads, "concurrency": concurrency, "fragments": fragments, "size": size}
        await _throughput(cached, **common)  # warm-up: every object in the cache
        cached_bps = await _throughput(cached, **common)
        direct_bps = await _throughput(direct, **common)
    finally:
        await store.close()
    return StoreBench(
        fragments=fragments, size=size,
        publish_p50_ms=quantile(latencies, 0.5) / 1e6, publish_p99_ms=quantile(latencies, 0.99) / 1e6,
        cached_bytes_per_s=cached_bps, cassandra_bytes_per_s=direct_bps,
    )  # fmt: skip


def run(*, fragments: int = 100, reads: int = 200, size: int = 500_000, concurrency: int = 8) -> StoreBench:
    """Start Cassandra and two memcached daemons on loopback, measure, stop them."""
    with running_cassandra() as cassandra, running_memcached(2) as nodes:
        return asyncio.run(
            measure(
                contact_point=cassandra.contact_point, port=cassandra.port,
                memcached=[f"{m.host}:{m.port}" for m in nodes],
                fragments=fragments, reads=reads, size=size, concurrency=concurrency,
            )
        )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fragments", type=int, default=100)
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--size", type=int, default=500_000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    print(
        run(
            fragments=args.fragments, reads=args.reads, size=args.size, concurrency=args.concurrency
        ).markdown()
    )


if __name__ == "__main__":
    main()
