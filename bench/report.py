"""The Markdown block ``make bench`` prints (and ``--markdown-out`` writes) for BENCHMARKS.md.

``collect_environment`` reads the machine and tool versions; ``render`` is pure.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench.nginx import nginx_version
from bench.procs import command_output
from bench.publish import LatencySummary
from bench.ts import RemuxResult
from bench.ts import report_rows as remux_rows
from bench.wrk import WrkResult, wrk_version

REPO = Path(__file__).resolve().parent.parent
PLAYLIST_GOAL = 0.60  # headwater req/s over nginx req/s
SEGMENT_GOAL = 0.80  # headwater bytes/s over nginx bytes/s
PUBLISH_P99_GOAL_S = 0.010

LoadAverage = tuple[float, float, float]


@dataclass(frozen=True, slots=True, kw_only=True)
class Environment:
    command: str
    date: str
    nproc: int
    cpu: str
    load_start: LoadAverage
    load_end: LoadAverage | None
    git: str
    versions: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerRun:
    """One wrk run against one server, with the CPU both sides used during it."""

    wrk: WrkResult
    server_cpu_s: float  # the server's process tree (uvicorn process; nginx master + worker)
    client_cpu_s: float  # wrk

    @property
    def cpu_us_per_request(self) -> float:
        return self.server_cpu_s / self.wrk.requests * 1e6 if self.wrk.requests else float("nan")

    @property
    def client_core_share(self) -> float:
        """wrk's CPU over the run's wall time: near 1.0 means the load generator was the limit."""
        return self.client_cpu_s / self.wrk.duration_s if self.wrk.duration_s else float("nan")


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadRun:
    """One URL loaded on both servers with the same wrk settings."""

    path: str
    size: int
    connections: int
    headwater: ServerRun
    nginx: ServerRun


@dataclass(frozen=True, slots=True, kw_only=True)
class Results:
    duration_s: float
    warmup_s: float
    playlist: LoadRun
    segment: LoadRun
    publish_ffmpeg: LatencySummary | None  # /metrics right after the FFmpeg push
    media_s: float
    publish_client: LatencySummary | None = None  # synthetic POSTs, timed by the client
    publish_server: LatencySummary | None = None  # the same run's /metrics
    publish_fragment_bytes: int = 0
    ts_segment: LoadRun | None = None  # a cached HLS-TS segment, same load as ``segment``
    remux: RemuxResult | None = None  # bench.ts: Headwater's TS muxer against PyAV


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def _git() -> str:
    commit = command_output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]) or "?"
    dirty = command_output(["git", "-C", str(REPO), "status", "--porcelain"])
    return f"{commit} (+ uncommitted changes)" if dirty else commit


def _cpu() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "?"
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else "?"


def collect_environment(command: str) -> Environment:
    ffmpeg = re.search(r"ffmpeg version (\S+)", command_output(["ffmpeg", "-version"]))
    versions = ", ".join(
        [
            f"Python {platform.python_version()}",
            f"uvicorn {_version('uvicorn')} (uvloop {_version('uvloop')}, httptools {_version('httptools')})",
            f"nginx {nginx_version() or '?'}",
            f"wrk {wrk_version() or '?'}",
            f"FFmpeg {ffmpeg.group(1) if ffmpeg else '?'}",
            f"Linux {platform.release()}",
        ]
    )
    return Environment(
        command=command,
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        nproc=os.cpu_count() or 0,
        cpu=_cpu(),
        load_start=os.getloadavg(),
        load_end=None,
        git=_git(),
        versions=versions,
    )


# --- rendering ------------------------------------------------------------------------------------


def _load(load: LoadAverage | None) -> str:
    return " / ".join(f"{x:.2f}" for x in load) if load else "?"


def _ms(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds * 1000:.2f}"


def _p50_p99(run: ServerRun) -> str:
    return f"{_ms(run.wrk.latency_p50_s)} / {_ms(run.wrk.latency_p99_s)} ms"


def _cpu_rows(name: str, run: LoadRun) -> list[str]:
    hw, ng = run.headwater, run.nginx
    hw_us, ng_us = hw.cpu_us_per_request, ng.cpu_us_per_request
    return [
        f"| {name} server CPU per request | {hw_us:,.0f} µs | {ng_us:,.0f} µs "
        f"| {_ratio(hw_us, ng_us):.2f} | |",
        f"| {name} wrk CPU (share of one core) | {hw.client_core_share:.0%} "
        f"| {ng.client_core_share:.0%} | | |",
    ]


def _ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs else float("nan")


def _goal(value: float, goal: float, *, at_least: bool, text: str) -> str:
    met = value >= goal if at_least else value <= goal
    return f"{text}: {'met' if met else '**not met**'}"


def _publish_rows(results: Results) -> list[str]:
    goal_text = f"p99 ≤ {PUBLISH_P99_GOAL_S * 1000:g} ms"
    rows = []
    cases = [
        (
            results.publish_ffmpeg,
            f"publish p50 / p99, FFmpeg ladder ({results.media_s:g} s), server-side `/metrics`",
        ),
        (
            results.publish_client,
            f"publish p50 / p99 (max), {results.publish_fragment_bytes / 1000:.0f} KB POSTs, client-side",
        ),
        (results.publish_server, "publish p50 / p99, the same POSTs, server-side `/metrics`"),
    ]
    for summary, label in cases:
        if summary is None:
            continue
        value = f"{_ms(summary.p50_s)} / {_ms(summary.p99_s)}"
        if summary.max_s is not None:
            value += f" ({_ms(summary.max_s)})"
        goal = _goal(summary.p99_s, PUBLISH_P99_GOAL_S, at_least=False, text=goal_text)
        rows.append(f"| {label}, n = {summary.count} | {value} ms | — | — | {goal} |")
    return rows


def _ts_rows(results: Results) -> list[str]:
    rows = []
    run = results.ts_segment
    if run is not None:
        hw, ng = run.headwater.wrk, run.nginx.wrk
        ratio = _ratio(hw.transfer_bytes_per_s, ng.transfer_bytes_per_s)
        goal = _goal(ratio, SEGMENT_GOAL, at_least=True, text=f"≥ {SEGMENT_GOAL:.0%} of nginx")
        rows.append(
            f"| cached TS segment MB/s: `{run.path}` ({run.size:,} B), -c {run.connections} "
            f"| {hw.transfer_bytes_per_s / 1e6:,.1f} | {ng.transfer_bytes_per_s / 1e6:,.1f} "
            f"| {ratio:.2f} | {goal} |"
        )
        rows += _cpu_rows("cached TS segment", run)
    if results.remux is not None:
        rows += remux_rows(results.remux)
    return rows


def _errors(results: Results) -> list[str]:
    lines = []
    runs = [("playlist", results.playlist), ("segment", results.segment), ("TS segment", results.ts_segment)]
    for name, run in [(n, r) for n, r in runs if r is not None]:
        for server, result in (("headwater", run.headwater.wrk), ("nginx", run.nginx.wrk)):
            if result.errors:
                lines.append(
                    f"- **wrk errors, {name} on {server}**: {result.non_2xx_3xx} non-2xx/3xx responses, "
                    f"{result.socket_errors} socket errors: this row's figures are not valid."
                )
    return lines


def render(env: Environment, results: Results) -> str:
    pl, seg = results.playlist, results.segment
    pl_hw, pl_ng, seg_hw, seg_ng = pl.headwater.wrk, pl.nginx.wrk, seg.headwater.wrk, seg.nginx.wrk
    pl_ratio = _ratio(pl_hw.requests_per_s, pl_ng.requests_per_s)
    seg_ratio = _ratio(seg_hw.transfer_bytes_per_s, seg_ng.transfer_bytes_per_s)
    seg_rps_ratio = _ratio(seg_hw.requests_per_s, seg_ng.requests_per_s)
    pl_goal = _goal(pl_ratio, PLAYLIST_GOAL, at_least=True, text=f"≥ {PLAYLIST_GOAL:.0%} of nginx")
    seg_goal = _goal(seg_ratio, SEGMENT_GOAL, at_least=True, text=f"≥ {SEGMENT_GOAL:.0%} of nginx")
    hw_mbps, nginx_mbps = seg_hw.transfer_bytes_per_s / 1e6, seg_ng.transfer_bytes_per_s / 1e6
    lines = [
        f"### `make bench`, {env.date}",
        "",
        f"- command: `{env.command}`",
        f"- git: {env.git}",
        f"- machine: {env.nproc} CPUs (`nproc`), {env.cpu}; load average (1/5/15 min) "
        f"{_load(env.load_start)} at start, {_load(env.load_end)} at end",
        f"- versions: {env.versions}",
        "- setup: `headwater serve` (one uvicorn worker process, embedded store) and nginx (one worker, "
        "sendfile) on 127.0.0.1, serving the same bytes; `wrk -t1 -c N -d "
        f"{results.duration_s:g}s --latency` after a {results.warmup_s:g} s warm-up, headwater first; "
        f"the channel holds {results.media_s:g} s of the FFmpeg demo ladder, no encoder runs during loads",
        "",
        "| metric | headwater | nginx | ratio (headwater/nginx) | goal |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| media playlist req/s: `{pl.path}` ({pl.size:,} B), -c {pl.connections} "
        f"| {pl_hw.requests_per_s:,.0f} | {pl_ng.requests_per_s:,.0f} | {pl_ratio:.2f} | {pl_goal} |",
        f"| media playlist latency p50 / p99 | {_p50_p99(pl.headwater)} | {_p50_p99(pl.nginx)} | | |",
        *_cpu_rows("media playlist", pl),
        f"| segment MB/s (10⁶ B/s): `{seg.path}` ({seg.size:,} B), -c {seg.connections} "
        f"| {hw_mbps:,.1f} | {nginx_mbps:,.1f} | {seg_ratio:.2f} | {seg_goal} |",
        f"| segment req/s | {seg_hw.requests_per_s:,.0f} | {seg_ng.requests_per_s:,.0f} "
        f"| {seg_rps_ratio:.2f} | |",
        f"| segment latency p50 / p99 | {_p50_p99(seg.headwater)} | {_p50_p99(seg.nginx)} | | |",
        *_cpu_rows("segment", seg),
        *_publish_rows(results),
        *_ts_rows(results),
        "",
        *_errors(results),
        'Publish latency is "last byte of a fragment received → fragment in the timeline". Server-side: '
        "from the ingest app getting the body chunk that completes the fragment to the end of its commit "
        "(excludes the socket read and HTTP parse). Client-side: one fragment per POST on a keep-alive "
        "connection, from the request's last byte written to the first byte of the `200` (sent only after "
        "the commit), so an upper bound that includes the origin reading the body and the loopback round "
        "trip. wrk's Transfer/sec counts headers and bodies. Server CPU per request is the server's "
        "user + system CPU time during the run over the requests wrk completed: less sensitive to other "
        "load on the machine than req/s; wrk near 100 % of a core means the client, not the server, was "
        "the limit.",
    ]
    return "\n".join(lines) + "\n"
