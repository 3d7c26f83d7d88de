"""Wake-up latency after a commit: ``python -m bench.wakeup``.

    python -m bench.wakeup [--commits 500] [--contact-point HOST --port PORT]
    (``make bench`` runs it after the other benchmarks: ``bench.run``, ``--skip-wakeup`` to leave out)

From "``commit_fragment`` returned on the ingest side" to "a request waiting on the channel woke up",
for a real ``CassandraStore`` commit (a Cassandra node started here unless one is given):

(a) **same process**: ``LocalSignal`` (``headwater serve``, every role in one process); the waiter is
    a task on the committing process's event loop.
(b) **another process**: the committing process's ``AnnouncingSignal`` sends a UDP datagram on
    loopback to a receiver process (``python -m bench.wakeup --receive``: its own ``CassandraStore``
    on the keyspace, an ``announce.listen`` endpoint and a ``Follower``), which records the announced
    entry in its index without reading Cassandra and wakes its waiter.

Both processes run uvloop, as ``headwater serve`` does, and stamp ``time.monotonic_ns()``
(CLOCK_MONOTONIC: one clock for every process of the machine). Commits are paced a few milliseconds
apart; a wake that finds several new fragments counts for each of them (their waiter woke that late).
The first ``WARMUP`` of each way are not counted. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import uvloop

from bench.procs import stop_process_group
from services.shared.announce import AnnounceSender, listen
from services.shared.channels import ChannelConfig, TrackRecord
from services.shared.follow import AnnouncingSignal, Follower
from services.shared.media.models import TrackInfo
from services.shared.metrics import quantile
from services.shared.signal import LocalSignal
from services.shared.store.cassandra import CassandraStore
from services.shared.timeline import FragmentEntry
from tests.integration.servers import running_cassandra

WARMUP = 50
PACE_S = 0.003  # between commits: the waiter is waiting again long before the next one
TICKS = 90_000  # 1 s fragments
TRACK = "v"
INFO = TrackInfo(
    track_id=1, handler="vide", sample_entry="avc1", codec="avc1.64001f", timescale=TICKS,
    decoder_config=b"\x01\x64", par=(1, 1),
)  # fmt: skip
WRITER_ID, RECEIVER_ID = 1, 2
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class WakeupBench:
    commits: int
    local_ns: tuple[int, ...]  # one latency per commit that woke the waiter
    remote_ns: tuple[int, ...]
    remote_applied: int  # entries the receiver recorded straight from the datagram
    remote_reloads: int  # entries it had to read from Cassandra instead (gaps, losses)

    def markdown(self) -> str:
        def row(what: str, samples: tuple[int, ...]) -> str:
            p50, p99 = quantile(list(samples), 0.5) / 1e3, quantile(list(samples), 0.99) / 1e3
            return f"| {what} | {p50:,.0f} / {p99:,.0f} µs | {len(samples)} of {self.commits} |"

        return "\n".join([
            "| wake-up after a commit (Cassandra 5.0, loopback) | p50 / p99 | waiters woken |",
            "| --- | ---: | ---: |",
            row("same process: `LocalSignal`", self.local_ns),
            row("another process: UDP announcement, entry recorded without a read", self.remote_ns),
            f"| receiver: entries from the datagram / reloads from Cassandra | "
            f"{self.remote_applied} / {self.remote_reloads} | |",
        ])  # fmt: skip


def _entry(n: int) -> FragmentEntry:
    return FragmentEntry(
        decode_time=n * TICKS, duration_ticks=TICKS, sample_count=25, independent=True,
        segment_number=n // 2, segment_start=(n - n % 2) * TICKS, part_number=n % 2, size=1024,
        ingest_time_ms=time.time_ns() // 1_000_000,
    )  # fmt: skip


async def _setup(store: CassandraStore, channel: str) -> None:
    await store.put_channel(ChannelConfig(name=channel, segment_ttl_s=600))
    await store.put_track(TrackRecord(channel=channel, name=TRACK, info=INFO, created_ms=1), b"I", ttl_s=600)
    await store.set_epoch_if_absent(channel, 1)
    await store.commit_fragment(channel, TRACK, _entry(0), b"x" * 1024, ttl_s=600)


async def _waiter(signal: LocalSignal, store: CassandraStore, channel: str, woke: dict[int, int]) -> None:
    """Wait on the channel for ever; on each wake, when it happened, for every fragment that became
    visible since the last wake (two commits in one wake: the earlier one's waiter woke late)."""
    seen = 0
    while True:
        if await signal.wait(channel, 60):
            now = time.monotonic_ns()
            last = (await store.get_timeline(channel, TRACK)).last
            newest = 0 if last is None else last.decode_time // TICKS
            for n in range(seen + 1, newest + 1):
                woke[n] = now
            seen = max(seen, newest)


async def _commit_paced(
    store: CassandraStore, channel: str, commits: int, announce: Callable[[FragmentEntry], None]
) -> dict[int, int]:
    """Commit fragments 1..WARMUP+commits; when each commit returned, by fragment number."""
    returned: dict[int, int] = {}
    for n in range(1, WARMUP + commits + 1):
        entry = _entry(n)
        await store.commit_fragment(channel, TRACK, entry, b"x" * 1024, ttl_s=600)
        returned[n] = time.monotonic_ns()
        announce(entry)
        await asyncio.sleep(PACE_S)
    return returned


def _latencies(returned: dict[int, int], woke: dict[int, int]) -> tuple[int, ...]:
    return tuple(woke[n] - t for n, t in returned.items() if n > WARMUP and n in woke)


async def _measure(contact_point: str, port: int, commits: int) -> WakeupBench:
    keyspace = f"wakeup_{uuid.uuid4().hex[:12]}"
    store = CassandraStore(contact_points=[contact_point], port=port, keyspace=keyspace)
    await store.open()
    receiver: subprocess.Popen[bytes] | None = None
    try:
        # (a) one process
        local, woke_local = LocalSignal(), dict[int, int]()
        await _setup(store, "local")
        waiter = asyncio.create_task(_waiter(local, store, "local", woke_local))
        await asyncio.sleep(0)
        returned = await _commit_paced(store, "local", commits, partial(local.committed, "local", TRACK))
        waiter.cancel()
        local_ns = _latencies(returned, woke_local)

        # (b) a receiver process, which loads the channel at open and then follows it
        await _setup(store, "remote")
        receiver = subprocess.Popen(
            [sys.executable, "-m", "bench.wakeup", "--receive", "--contact-point", contact_point,
             "--port", str(port), "--keyspace", keyspace],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        assert receiver.stdout is not None and receiver.stdin is not None
        ready = (await asyncio.to_thread(receiver.stdout.readline)).split()
        if ready[:1] != [b"READY"]:
            raise RuntimeError(f"receiver did not start: {ready!r}")
        sender = AnnounceSender([f"127.0.0.1:{int(ready[1])}"], sender=WRITER_ID)
        await sender.open()
        signal = AnnouncingSignal(LocalSignal(), sender)
        returned = await _commit_paced(store, "remote", commits, partial(signal.committed, "remote", TRACK))
        sender.close()
        receiver.stdin.close()  # "done": the receiver reports and exits
        report = json.loads(await asyncio.to_thread(receiver.stdout.read))
        woke_remote = {int(n): t for n, t in report["woke"].items()}
        return WakeupBench(
            commits=commits, local_ns=local_ns, remote_ns=_latencies(returned, woke_remote),
            remote_applied=report["applied"], remote_reloads=report["reloads"],
        )  # fmt: skip
    finally:
        if receiver is not None:
            stop_process_group(receiver)
        await store.close()


async def _receive(contact_point: str, port: int, keyspace: str) -> None:
    """The receiver process: follow channel "remote"; at EOF on stdin print what woke when."""
    store = CassandraStore(contact_points=[contact_point], port=port, keyspace=keyspace)
    await store.open()
    local, woke = LocalSignal(), dict[int, int]()
    follower = Follower(store, local, sender=RECEIVER_ID)  # no safety net: every entry comes by UDP
    endpoint = await listen("127.0.0.1", 0, follower.handle)
    waiter = asyncio.create_task(_waiter(local, store, "remote", woke))
    print(f"READY {endpoint.port}", flush=True)
    await asyncio.to_thread(sys.stdin.buffer.read)
    waiter.cancel()
    endpoint.close()
    await follower.close()
    await store.close()
    print(json.dumps({"woke": woke, "applied": follower.applied, "reloads": follower.reloads}), flush=True)


def run(*, commits: int = 500, contact_point: str | None = None, port: int | None = None) -> WakeupBench:
    """Measure both ways (starting a Cassandra node on loopback unless one is given)."""
    if contact_point is not None and port is not None:
        return _run(_measure(contact_point, port, commits))
    with running_cassandra() as cassandra:
        return _run(_measure(cassandra.contact_point, cassandra.port, commits))


def _run(main: Coroutine[Any, Any, T]) -> T:
    """On uvloop, the event loop ``headwater serve`` runs on."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.wakeup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=500, help="timed commits per way (500)")
    parser.add_argument("--contact-point", default=None, help="a running Cassandra node (default: start one)")
    parser.add_argument("--port", type=int, default=None, help="its CQL port")
    parser.add_argument("--keyspace", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--receive", action="store_true", help=argparse.SUPPRESS)  # the receiver process
    args = parser.parse_args()
    if args.receive:
        _run(_receive(args.contact_point, args.port, args.keyspace))
        return
    if args.commits <= 0:
        parser.error("--commits must be positive")
    print(run(commits=args.commits, contact_point=args.contact_point, port=args.port).markdown())


if __name__ == "__main__":
    main()
