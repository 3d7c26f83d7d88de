"""Blocking playlist reload wake-up over HTTP: ``python -m bench.blocking``.

    python -m bench.blocking [--parts 300]
    (``make bench`` runs it after the other benchmarks: ``bench.run``, ``--skip-blocking`` to leave out)

From "the encoder's POST of a part returned" (the part is committed) to "the player's blocked
``_HLS_msn``/``_HLS_part`` playlist request got its answer", both seen by one client process:

(a) **same node**: one ``headwater serve`` (embedded store), ingest and packager in one process;
(b) **other node**: a ``--role ingest`` node and a ``--role packager`` node sharing a Cassandra
    started here; the packager learns of the part from the ingest node's UDP announcement.

Synthetic video: 0.5 s chunks (a keyframe every fourth: 2 s segments), one POST per chunk to the
long-POST ingest path. For each chunk the playlist request for its part is sent first and held by the
packager (checked: it has not answered 20 ms later), then the chunk is posted. A wake-up can beat the
POST's own response back to the client, so single values may be negative; the quantiles are what the
goal (p50 <= 10 ms, p99 <= 30 ms) is about. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.procs import stop_process_group, wait_for_port
from services.shared.media.synthetic import make_fragment, make_header
from services.shared.metrics import quantile
from tests.e2e.origin import serve_argv, wait_until_answers
from tests.integration.servers import free_ports, running_cassandra

CHANNEL = "blocking"
TRACK = "v"
TICKS = 90_000
CHUNK = TICKS // 2
PARTS_PER_SEGMENT = 4
WARMUP_CHUNKS = 12  # three segments first: the playlist is low-latency from then on
HELD_S = 0.02


@dataclass(frozen=True, slots=True)
class WakeUp:
    way: str
    samples_ms: tuple[float, ...]

    def row(self) -> str:
        micros = [round(ms * 1000) for ms in self.samples_ms]
        p50, p99 = quantile(micros, 0.5) / 1000, quantile(micros, 0.99) / 1000
        return f"| {self.way} | {p50:.2f} ms | {p99:.2f} ms | {len(micros)} |"


def _chunk(k: int) -> bytes:
    head = make_header(track_id=1, timescale=TICKS) if k == 0 else b""
    body = make_fragment(
        decode_time=k * CHUNK, sequence_number=k + 1, sample_durations=(3750,) * 12,
        sample_sizes=(2_000,) * 12, keyframe_first=k % PARTS_PER_SEGMENT == 0,
    )  # fmt: skip
    return head + body


async def _measure(ingest_url: str, playlist_url: str, parts: int) -> tuple[float, ...]:
    post_url = f"{ingest_url}/ingest/{CHANNEL}/Streams({TRACK}.cmfv)"
    samples: list[float] = []
    async with httpx.AsyncClient(timeout=10) as ingest, httpx.AsyncClient(timeout=10) as player:
        for k in range(WARMUP_CHUNKS + parts):
            if k < WARMUP_CHUNKS:
                (await ingest.post(post_url, content=_chunk(k))).raise_for_status()
                continue
            msn, part = divmod(k, PARTS_PER_SEGMENT)
            held = asyncio.create_task(player.get(f"{playlist_url}?_HLS_msn={msn}&_HLS_part={part}"))
            await asyncio.sleep(HELD_S)
            if held.done():
                raise RuntimeError(f"part {msn}.{part} answered before it was posted: {held.result().text}")
            (await ingest.post(post_url, content=_chunk(k))).raise_for_status()
            posted = time.perf_counter()
            reply = await held
            woke = time.perf_counter()
            if reply.status_code != 200 or f"part-{k * CHUNK}.m4s" not in reply.text:
                raise RuntimeError(
                    f"blocking reload for {msn}.{part}: {reply.status_code} {reply.text[:200]}"
                )
            samples.append((woke - posted) * 1000)
    return tuple(samples)


@contextlib.contextmanager
def _node(args: list[str], port: int, log: Path) -> Iterator[str]:
    argv = serve_argv(port, *args)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True
        )
    try:
        if not wait_for_port(port, proc, timeout_s=60):
            raise RuntimeError(f"headwater serve {' '.join(args)} did not start: see {log}")
        url = f"http://127.0.0.1:{port}"
        if not wait_until_answers(f"{url}/readyz", proc, timeout_s=60, interval_s=0.2, request_timeout_s=5):
            raise RuntimeError(f"{url} never became ready: see {log}")
        yield url
    finally:
        stop_process_group(proc)


def run(parts: int = 300) -> list[WakeUp]:
    results = []
    with tempfile.TemporaryDirectory(prefix="headwater-blocking-") as tmp:
        work = Path(tmp)
        (port,) = free_ports(1)
        with _node(["--data-dir", str(work / "single")], port, work / "single.log") as url:
            playlist = f"{url}/live/{CHANNEL}/hls/{TRACK}.m3u8"
            results.append(WakeUp("same node (one process)", asyncio.run(_measure(url, playlist, parts))))
        with running_cassandra() as cassandra:
            ingest_port, packager_port = free_ports(2)
            shared = ["--store", "cassandra", "--cassandra", cassandra.contact_point,
                      "--cassandra-port", str(cassandra.port), "--keyspace", f"b_{uuid.uuid4().hex[:12]}",
                      "--packagers", f"127.0.0.1:{packager_port}"]  # fmt: skip
            with (
                _node([*shared, "--role", "ingest"], ingest_port, work / "ingest.log") as ingest,
                _node([*shared, "--role", "packager"], packager_port, work / "packager.log") as packager,
            ):
                playlist = f"{packager}/live/{CHANNEL}/hls/{TRACK}.m3u8"
                results.append(
                    WakeUp("other node (UDP announcement)", asyncio.run(_measure(ingest, playlist, parts)))
                )
    return results


def markdown(results: list[WakeUp]) -> str:
    lines = [
        "| blocking reload woken (POST of the part returned -> playlist received) | p50 | p99 | parts |",
        "| --- | ---: | ---: | ---: |",
    ]
    return "\n".join([*lines, *(r.row() for r in results)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--parts", type=int, default=300)
    print(markdown(run(parts=parser.parse_args().parts)))


if __name__ == "__main__":
    main()
