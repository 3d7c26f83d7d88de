"""Requests collapsed onto store reads, and where the TS remux should run: ``python -m bench.collapse``.

    python -m bench.collapse [--requests 1000] [--load-s 10]
    (``make bench`` runs it after the other benchmarks: ``bench.run``, ``--skip-collapse`` to leave out)

Each part runs a real server process on a free loopback port (``bench.collapse_server``: the
``headwater serve`` app on an embedded store that counts ``get_fragment`` calls per fragment) and talks
HTTP/1.1 to it, from one keep-alive connection per concurrent request.

1. **Collapse.** A synthetic channel is pushed over HTTP: 2 s video segments of ten 0.2 s fragments
   (parts, 50 frames of 12 KB), audio in 213 ms fragments. ``--requests`` connections are opened first;
   the fragment that completes segment 0 is committed, and at once every connection sends one GET of
   it; then the same for the TS segment of segment 1 (its video and the audio it muxes were never read
   before). Reported: store reads per fragment of the segment (goal: 1), requests that found nothing
   cached (they joined the one load: ``SingleFlight``), and the latency of the first, median and last
   response (the last ones mostly measure moving ``--requests`` copies through one Python client).
2. **Remux placement.** Another server, its TS LRU cut to 4 MB so that every TS request remuxes
   (600 distinct segments of 2 s at 50 fps, 6 channels, cycled by 2 connections; a segment comes back
   in a later channel snapshot, whose memo is empty), while a probe GETs a media playlist every 2 ms.
   The probe's latency with no TS requests, with the remux on the event loop and with the remux in a
   worker thread (``TsSegments.remux_in_thread``, switched between 1 s turns), ``--load-s`` each.

Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

from bench.collapse_server import running_server
from bench.publish import LatencySummary, summarize
from services.shared.media.synthetic import make_fragment, make_header

V_TS, A_TS = 90_000, 48_000
PARTS = 10  # fragments of a collapse segment (0.2 s each)
PART_FRAMES = 5
FRAME_TICKS = 3_600  # 25 fps
FRAME_BYTES = 12_000  # 600 KB per 2 s segment
AUDIO_FRAMES = 10  # per audio fragment (213 ms)
LOAD_CHANNELS, LOAD_SEGMENTS = 6, 100
LOAD_FRAMES, LOAD_FRAME_BYTES = 100, 2_000  # 2 s at 50 fps: 2-3 ms of remux per segment
LOAD_TS_LRU_BYTES = 4_000_000
PROBE_INTERVAL_S = 0.002


# --- media ------------------------------------------------------------------------------------------


def _video(index: int, *, frames: int, frame_ticks: int, frame_bytes: int, keyframe: bool) -> bytes:
    """Fragment ``index`` of a video track (fragments of ``frames`` frames), length-prefixed NAL units."""
    fragment = make_fragment(
        track_id=1,
        sequence_number=index + 1,
        decode_time=index * frames * frame_ticks,
        sample_durations=(frame_ticks,) * frames,
        sample_sizes=(frame_bytes,) * frames,
        keyframe_first=keyframe,
    )
    length = (frame_bytes - 4).to_bytes(4, "big")
    headers = [b"\x65" if keyframe and i == 0 else b"\x41" for i in range(frames)]
    nal = b"".join(length + header + bytes(frame_bytes - 5) for header in headers)
    return fragment[: -frame_bytes * frames] + nal


def _audio(index: int, frames: int) -> bytes:
    return make_fragment(
        track_id=1, sequence_number=index + 1, decode_time=index * frames * 1024,
        sample_durations=(1024,) * frames, sample_sizes=(300,) * frames,
    )  # fmt: skip


# --- a raw HTTP/1.1 client: many connections, one request each at the same instant --------------------


def parse_head(head: bytes) -> tuple[int, int]:
    """Status and Content-Length of a response head (the bytes up to and including the blank line)."""
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return status, int(value.strip())
    raise ValueError("a response without Content-Length")


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def get(self, path: str) -> tuple[int, int]:
        """One GET on this keep-alive connection: (status, nanoseconds until the last body byte)."""
        started = time.perf_counter_ns()
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        status, length = parse_head(await self.reader.readuntil(b"\r\n\r\n"))
        await self.reader.readexactly(length)
        return status, time.perf_counter_ns() - started


async def connect(base: str, count: int) -> list[Connection]:
    host, port = base.removeprefix("http://").split(":")
    connections: list[Connection] = []
    for start in range(0, count, 100):  # in steps, so the listen backlog never overflows
        pairs = await asyncio.gather(
            *(asyncio.open_connection(host, int(port)) for _ in range(min(100, count - start)))
        )
        connections += [Connection(reader, writer) for reader, writer in pairs]
    return connections


async def push(client: httpx.AsyncClient, channel: str, track: str, body: bytes) -> None:
    reply = await client.post(f"/ingest/{channel}/Streams({track})", content=body)
    if reply.status_code != 200:
        raise RuntimeError(f"push {channel}/{track}: {reply.status_code} {reply.text[:200]}")


async def misses(client: httpx.AsyncClient) -> int:
    text = (await client.get("/metrics")).text
    line = next(
        ln for ln in text.splitlines() if ln.startswith('headwater_cache_requests_total{result="miss"}')
    )
    return int(line.rsplit(" ", 1)[1])


# --- 1. collapse -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Burst:
    what: str
    requests: int
    size: int  # bytes of the object
    fragments: int  # fragments it is made of
    reads: int  # store reads of them during the burst
    max_reads: int  # of any one of them
    other_reads: int  # of fragments it is not made of (expected: 0)
    joined: int  # requests that found nothing cached: they waited for the one load
    remuxes: int
    first_s: float  # the first response's latency
    latency: LatencySummary


async def _burst(
    client: httpx.AsyncClient, connections: list[Connection], path: str, what: str, made_of: set[str]
) -> Burst:
    """Every connection GETs ``path`` at once; the store reads and LRU misses that caused."""
    before = await misses(client)
    replies = await asyncio.gather(*(c.get(path) for c in connections))
    counters = (await client.get("/bench/counters")).json()
    joined = await misses(client) - before
    if {status for status, _ in replies} != {200}:
        raise RuntimeError(f"GET {path}: statuses {Counter(status for status, _ in replies)}")
    reads: dict[str, int] = counters["reads"]
    return Burst(
        what=what, requests=len(replies), size=len((await client.get(path)).content), fragments=len(made_of),
        reads=sum(n for k, n in reads.items() if k in made_of),
        max_reads=max((reads.get(k, 0) for k in made_of), default=0),
        other_reads=sum(n for k, n in reads.items() if k not in made_of),
        joined=joined, remuxes=int(counters["remuxes"]), first_s=min(ns for _, ns in replies) / 1e9,
        latency=summarize([ns for _, ns in replies]),
    )  # fmt: skip


async def collapse(base: str, requests: int) -> tuple[Burst, Burst]:
    """Part 1 (see the module docstring) on the server at ``base``."""
    ch, part_ticks, audio_ticks = "collapse", PART_FRAMES * FRAME_TICKS, AUDIO_FRAMES * 1024

    def video(n: int) -> bytes:
        return _video(
            n, frames=PART_FRAMES, frame_ticks=FRAME_TICKS, frame_bytes=FRAME_BYTES, keyframe=n % PARTS == 0
        )

    def names(track: str, times: Iterator[int]) -> set[str]:
        return {f"{ch}/{track}/{t}" for t in times}

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await client.put(f"/api/channels/{ch}", json={"stale_after_s": 3600})
        await push(client, ch, "video.cmfv", make_header(track_id=1, timescale=V_TS))
        await push(client, ch, "audio.cmfa", make_header(track_id=1, handler="soun", timescale=A_TS))
        for n in range(6 * A_TS // audio_ticks + 1):  # 6 s of audio, ahead of the video
            await push(client, ch, "audio.cmfa", _audio(n, AUDIO_FRAMES))
        connections = await connect(base, requests)
        try:
            for n in range(PARTS):
                await push(client, ch, "video.cmfv", video(n))
            await client.post("/bench/counters")
            await push(client, ch, "video.cmfv", video(PARTS))  # segment 0 is complete: GET it at once
            made_of = names("video", (n * part_ticks for n in range(PARTS)))
            cmaf = await _burst(client, connections, f"/live/{ch}/media/video/0.m4s", "CMAF segment", made_of)
            for n in range(PARTS + 1, 2 * PARTS):
                await push(client, ch, "video.cmfv", video(n))
            await client.post("/bench/counters")
            await push(client, ch, "video.cmfv", video(2 * PARTS))  # segment 1 is complete
            start, end = PARTS * part_ticks, 2 * PARTS * part_ticks  # no B-frames: decode = presentation
            made_of = names("video", (start + n * part_ticks for n in range(PARTS)))
            first, after = start * A_TS // V_TS // audio_ticks, -(-end * A_TS // V_TS // audio_ticks)
            made_of |= names("audio", (n * audio_ticks for n in range(first, after)))
            path = f"/live/{ch}/ts/video/{start}.ts"
            ts = await _burst(client, connections, path, "TS segment (video + muxed audio)", made_of)
        finally:
            for connection in connections:
                connection.writer.close()
    return cmaf, ts


# --- 2. remux placement -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Placement:
    mode: str
    probe: LatencySummary  # the playlist GETs' latency
    remuxes_per_s: float


def _load_paths() -> list[str]:
    step = LOAD_FRAMES * FRAME_TICKS // 2  # 50 fps
    return [
        f"/live/load{c}/ts/video/{n * step}.ts" for n in range(LOAD_SEGMENTS) for c in range(LOAD_CHANNELS)
    ]


async def ingest_load(base: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for c in range(LOAD_CHANNELS):
            ch = f"load{c}"
            await client.put(f"/api/channels/{ch}", json={"stale_after_s": 3600})
            await push(client, ch, "video.cmfv", make_header(track_id=1, timescale=V_TS))
            await push(client, ch, "audio.cmfa", make_header(track_id=1, handler="soun", timescale=A_TS))
            for n in range(LOAD_SEGMENTS + 1):  # the last one completes the one before
                video = _video(
                    n,
                    frames=LOAD_FRAMES,
                    frame_ticks=FRAME_TICKS // 2,
                    frame_bytes=LOAD_FRAME_BYTES,
                    keyframe=True,
                )
                await push(client, ch, "video.cmfv", video)
                await push(client, ch, "audio.cmfa", _audio(n, 94))  # 94 frames: just over 2 s


MODES = (  # (label, TS requests, remux_in_thread)
    ("no TS requests", False, False),
    ("remux on the event loop", True, False),
    ("remux in a worker thread", True, True),
)


async def measure_placement(base: str, seconds: int) -> list[Placement]:
    """A probe GETs a playlist every ``PROBE_INTERVAL_S`` while 2 connections GET TS segments (or not).
    The modes take turns in 1 s windows, ``seconds`` each after a warm-up turn, so that whatever else
    the machine does falls on all of them alike."""
    paths = _load_paths()
    connections = await connect(base, 3)
    latencies: dict[str, list[int]] = {label: [] for label, _, _ in MODES}
    remuxes: Counter[str] = Counter()
    stop, turn = 0.0, 0

    async def loader(connection: Connection, k: int) -> None:
        i = turn * 97 + k * len(paths) // 2
        while time.monotonic() < stop:
            status, _ = await connection.get(paths[i % len(paths)])
            if status != 200:
                raise RuntimeError(f"GET {paths[i % len(paths)]}: {status}")
            i += 1

    async def probe(record: list[int]) -> None:
        while time.monotonic() < stop:
            status, ns = await connections[0].get("/live/load0/hls/video.m3u8")
            if status != 200:
                raise RuntimeError(f"playlist: {status}")
            record.append(ns)
            await asyncio.sleep(PROBE_INTERVAL_S)

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        try:
            for turn in range(seconds + 1):
                for label, load, in_thread in MODES:
                    await client.post(f"/bench/counters?remux_in_thread={in_thread:d}")
                    stop = time.monotonic() + 1.0
                    record = latencies[label] if turn else []  # the first turn warms up
                    loaders = [loader(c, k) for k, c in enumerate(connections[1:])] if load else []
                    await asyncio.gather(probe(record), *loaders)
                    if turn:
                        remuxes[label] += int((await client.get("/bench/counters")).json()["remuxes"])
        finally:
            for connection in connections:
                connection.writer.close()
    return [
        Placement(mode=label, probe=summarize(latencies[label]), remuxes_per_s=remuxes[label] / seconds)
        for label, _, _ in MODES
    ]


# --- report and entry points ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CollapseResult:
    bursts: tuple[Burst, ...]
    placements: tuple[Placement, ...]

    def markdown(self) -> str:
        def ms(s: LatencySummary) -> str:
            return f"{s.p50_s * 1e3:.2f} / {s.p99_s * 1e3:.2f} / {(s.max_s or 0) * 1e3:.2f} ms"

        rows = [
            "| concurrent GETs right after the commit, one packager | store reads per fragment (goal: 1) "
            "| requests that joined the one load | remuxes | latency first / p50 / last |",
            "| --- | --- | ---: | ---: | ---: |",
        ]
        for b in self.bursts:
            goal = "met" if b.max_reads == 1 and b.other_reads == 0 else "**not met**"
            rows.append(
                f"| {b.requests:,} x {b.what}, {b.size:,} B from {b.fragments} fragments "
                f"| {b.max_reads} ({b.reads} reads of {b.fragments} fragments, {b.other_reads} others): "
                f"{goal} "
                f"| {b.joined:,} | {b.remuxes} | {b.first_s * 1e3:.2f} / {b.latency.p50_s * 1e3:.0f} / "
                f"{(b.latency.max_s or 0) * 1e3:.0f} ms |"
            )
        rows += [
            "",
            f"| TS remux placement: a playlist GET every {PROBE_INTERVAL_S * 1e3:g} ms while 2 connections "
            "GET TS segments that all need a remux | probe latency p50 / p99 / max | remuxes/s |",
            "| --- | ---: | ---: |",
        ]
        rows += [f"| {p.mode} | {ms(p.probe)} | {p.remuxes_per_s:,.0f} |" for p in self.placements]
        return "\n".join(rows)


def run(*, requests: int = 1000, load_s: int = 10) -> CollapseResult:
    with tempfile.TemporaryDirectory(prefix="headwater-bench-collapse-") as directory:
        work = Path(directory)
        (work / "collapse").mkdir()
        with running_server(work / "collapse") as base:
            bursts = asyncio.run(collapse(base, requests))
        (work / "load").mkdir()
        with running_server(work / "load", "--ts-lru-bytes", str(LOAD_TS_LRU_BYTES)) as base:
            asyncio.run(ingest_load(base))
            placements = asyncio.run(measure_placement(base, load_s))
    return CollapseResult(bursts=bursts, placements=tuple(placements))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.collapse", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="concurrent GETs per burst (1000)")
    parser.add_argument("--load-s", type=int, default=10, help="seconds of each placement mode (10)")
    args = parser.parse_args(argv)
    print(run(requests=args.requests, load_s=args.load_s).markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
