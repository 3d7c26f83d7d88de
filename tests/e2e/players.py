"""Real players for end-to-end tests: hls.js, dash.js and Shaka Player in headless Debian Chromium.

    stats = play("hls", f"{origin}/live/demo/hls/index.m3u8", seconds=20, low_latency=True)
    assert stats.started and stats.stall_count == 0 and stats.played_s >= 15

Runs ``node tests/e2e/player/play.mjs`` (installed by ``scripts/setup.sh``), which serves the player page
on its own 127.0.0.1 port (so requests to the stream are cross-origin) and prints one JSON line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

PLAYER_DIR = Path(__file__).resolve().parent / "player"
PlayerKind = Literal["hls", "dash", "shaka"]
_TEARDOWN_S = 30.0  # launch + teardown allowance on top of the watch time


class PlayerError(RuntimeError):
    """The browser could not be launched or the harness produced no statistics."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Stall:
    at_s: float  # wall seconds after playback started
    duration_s: float
    sources: tuple[str, ...]  # "waiting", "hls.bufferStalledError", "dash.playbackStalled", "shaka.buffering"
    ongoing: bool  # still stalled when the statistics were taken


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencySummary:
    last_s: float | None
    mean_s: float | None
    min_s: float | None
    max_s: float | None
    samples: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PlayerStats:
    kind: PlayerKind
    src: str
    low_latency: bool
    player: str  # e.g. "hls.js 1.7.4", "Shaka Player v5.2.12"
    started: bool  # the <video> fired 'playing'
    startup_s: float | None  # page load -> first 'playing'
    watched_s: float  # wall seconds since playback started
    played_s: float  # media seconds played since then (currentTime advance, seeks excluded)
    stall_count: int  # stalls after playback started, each lasting > 0 ms
    stalled_s: float
    stalls: tuple[Stall, ...]
    fatal_errors: tuple[str, ...]
    errors: tuple[str, ...]  # non-fatal player errors
    latency: LatencySummary  # hls.js hls.latency | dash.js getCurrentLiveLatency() | Shaka liveLatency
    pdt_latency: LatencySummary  # hls.js, Shaka: now - EXT-X-PROGRAM-DATE-TIME of the playhead
    fragments_loaded: int
    video_height: int
    dropped_frames: int | None
    codec_support: dict[str, bool] = field(default_factory=dict)  # MediaSource.isTypeSupported
    console: tuple[str, ...] = ()  # browser console errors and warnings
    raw: dict[str, Any] = field(default_factory=dict, repr=False)  # everything play.mjs printed

    def summary(self) -> str:
        """One line for assertion messages and logs."""
        return (
            f"{self.player or self.kind} started={self.started} played={self.played_s:.1f}s/"
            f"{self.watched_s:.1f}s stalls={self.stall_count} ({self.stalled_s:.2f}s) "
            f"latency={self.latency.last_s} pdt_latency={self.pdt_latency.last_s} "
            f"fatal={list(self.fatal_errors)} errors={list(self.errors)[:3]} console={list(self.console)[:3]}"
        )


def _latency(last: Any, aggregate: dict[str, Any]) -> LatencySummary:
    samples = int(aggregate.get("samples", 0))
    return LatencySummary(
        last_s=None if last is None else float(last),
        mean_s=float(aggregate["sum"]) / samples if samples else None,
        min_s=aggregate.get("min"),
        max_s=aggregate.get("max"),
        samples=samples,
    )


def _describe(entry: dict[str, Any]) -> str:
    return " ".join(f"{key}={value}" for key, value in entry.items() if value not in (None, ""))


def parse_stats(raw: dict[str, Any]) -> PlayerStats:
    """Turn play.mjs's JSON line into ``PlayerStats``."""
    return PlayerStats(
        kind=raw["kind"],
        src=raw["src"],
        low_latency=bool(raw["lowLatency"]),
        player=raw.get("player") or "",
        started=raw.get("playbackStartedEpochMs") is not None,
        startup_s=None if raw.get("startupMs") is None else raw["startupMs"] / 1000,
        watched_s=float(raw.get("watchedS", 0)),
        played_s=float(raw.get("mediaPlayedS", 0)),
        stall_count=int(raw.get("stallCount", 0)),
        stalled_s=float(raw.get("stalledMs", 0)) / 1000,
        stalls=tuple(
            Stall(
                at_s=float(stall["atS"]),
                duration_s=float(stall["durationMs"]) / 1000,
                sources=tuple(stall["sources"]),
                ongoing=bool(stall["ongoing"]),
            )
            for stall in raw.get("stalls", [])
        ),
        fatal_errors=tuple(_describe(entry) for entry in raw.get("fatalErrors", [])),
        errors=tuple(_describe(entry) for entry in raw.get("errors", [])),
        latency=_latency(raw.get("latencyS"), raw.get("latency", {})),
        pdt_latency=_latency(raw.get("pdtLatencyS"), raw.get("pdtLatency", {})),
        fragments_loaded=int(raw.get("fragmentsLoaded", 0)),
        video_height=int(raw.get("videoHeight", 0)),
        dropped_frames=raw.get("droppedFrames"),
        codec_support={str(key): bool(value) for key, value in raw.get("codecSupport", {}).items()},
        console=tuple(raw.get("console", [])),
        raw=raw,
    )


def play(
    kind: PlayerKind,
    url: str,
    *,
    seconds: float,
    low_latency: bool = False,
    live_delay_s: float | None = None,
    timeout_s: float | None = None,
    screenshot: Path | None = None,
) -> PlayerStats:
    """Play ``url`` with hls.js (``kind="hls"``), dash.js or Shaka for ``seconds`` after playback starts.

    ``timeout_s`` bounds the wait for playback (default ``seconds + 40``); the node process gets a
    little longer to tear down and is killed after that. Raises ``PlayerError`` if the browser
    cannot be launched; a stream that never plays returns stats with ``started=False`` instead.
    """
    node = shutil.which("node")
    if node is None:
        raise PlayerError("node is not installed (run scripts/setup.sh)")
    if not (PLAYER_DIR / "node_modules" / "playwright-core").is_dir():
        raise PlayerError(f"{PLAYER_DIR}/node_modules is missing (run scripts/setup.sh)")
    watch_timeout_s = timeout_s if timeout_s is not None else seconds + 40
    argv = [node, str(PLAYER_DIR / "play.mjs"), "--kind", kind, "--src", url]
    argv += ["--seconds", f"{seconds:g}", "--timeout", f"{watch_timeout_s:g}"]
    if low_latency:
        argv.append("--low-latency")
    if live_delay_s is not None:
        argv += ["--live-delay", f"{live_delay_s:g}"]
    if screenshot is not None:
        argv += ["--screenshot", str(screenshot)]
    try:
        result = subprocess.run(
            argv,
            cwd=PLAYER_DIR,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=watch_timeout_s + _TEARDOWN_S + 30,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise PlayerError(f"play.mjs did not finish: {error}") from error
    stderr = result.stderr.decode(errors="replace")[-3000:]
    lines = result.stdout.decode(errors="replace").strip().splitlines()
    if result.returncode != 0 or not lines:
        raise PlayerError(f"play.mjs exited with {result.returncode}: {stderr}")
    try:
        return parse_stats(json.loads(lines[-1]))
    except (ValueError, KeyError, TypeError) as error:
        raise PlayerError(f"play.mjs printed no statistics ({error}): {lines[-1][:500]}") from error
