"""What the playback benchmarks serve: a live ladder pushed by FFmpeg, one playlist and one segment of it.

``push_ladder`` runs the demo encoder for a fixed amount of media and waits for it; ``pick_fixtures``
walks the HLS entry point like a player would and picks one rendition's media playlist and the segment
closest to a target size; ``verify_identical`` checks that two servers answer ``200`` with the same
bytes for each. The playlist and URI helpers are pure.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urljoin

import httpx

from bench.procs import tail
from services.demo import CLOCK_FONT, long_post_command, run_pusher, stop_pusher


@dataclass(frozen=True, slots=True)
class Fixture:
    path: str  # URL path on the origin, and the file path under nginx's root
    body: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


def push_ladder(base_url: str, channel: str, *, duration_s: float, log_path: Path) -> None:
    """Push ``duration_s`` of the demo ladder (3 video renditions + audio, long-running POSTs) and wait.

    FFmpeg reads its sources in real time (``-re``), so this takes ``duration_s`` plus start-up. It has
    finished (every POST answered, every fragment committed) when this returns.
    """
    font = CLOCK_FONT if os.path.exists(CLOCK_FONT) else None
    proc = run_pusher(
        long_post_command(base_url, channel, duration_s=duration_s, clock_font=font), log_path=log_path
    )
    try:
        code = proc.wait(timeout=duration_s * 3 + 30)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"FFmpeg did not finish pushing {duration_s:g} s: {tail(log_path)}") from None
    finally:
        stop_pusher(proc)
    if code != 0:
        raise RuntimeError(f"FFmpeg exited with {code}: {tail(log_path)}")


def playlist_uris(text: str) -> list[str]:
    """Every URI a playlist references: its URI lines and ``URI="..."`` attributes, in order."""
    uris: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            uris += re.findall(r'URI="([^"]*)"', line)
        else:
            uris.append(line)
    return uris


def media_uris(text: str) -> list[str]:
    """The segment URI lines of a media playlist (no EXT-X-MAP, parts or hints)."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def resolve(base_path: str, uri: str) -> str:
    """``uri`` relative to the playlist at ``base_path``, as an absolute path without the query."""
    return urljoin(base_path, uri).split("?", 1)[0]


def closest(sizes: Mapping[str, int], target: int) -> str:
    """The key whose size is closest to ``target`` (first in sorted order on a tie)."""
    if not sizes:
        raise ValueError("no candidates")
    return min(sorted(sizes), key=lambda key: abs(sizes[key] - target))


def _get(client: httpx.Client, path: str) -> httpx.Response:
    response = client.get(path)
    if response.status_code != 200:
        raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:200]}")
    return response


def pick_fixtures(
    client: httpx.Client, channel: str, *, playlist_track: str, segment_bytes: int
) -> tuple[Fixture, Fixture]:
    """(media playlist of ``playlist_track``, the segment of any video rendition closest in size)."""
    index = f"/live/{channel}/hls/index.m3u8"
    playlists = [resolve(index, uri) for uri in playlist_uris(_get(client, index).text)]
    chosen = next((p for p in playlists if PurePosixPath(p).stem == playlist_track), None)
    if chosen is None:
        raise RuntimeError(f"no media playlist for {playlist_track!r} in {index}: {playlists}")
    sizes: dict[str, int] = {}
    for playlist in playlists:
        for uri in media_uris(_get(client, playlist).text):
            path = resolve(playlist, uri)
            if path.endswith(".m4s"):
                head = client.head(path)
                if head.status_code == 200 and "video" in head.headers.get("content-type", ""):
                    sizes[path] = int(head.headers["content-length"])
    segment = closest(sizes, segment_bytes)
    return (
        Fixture(path=chosen, body=_get(client, chosen).content),
        Fixture(path=segment, body=_get(client, segment).content),
    )


def verify_identical(base_urls: Sequence[str], fixtures: Iterable[Fixture]) -> None:
    """Each server answers ``200`` with exactly the fixture's bytes (sha256) for each fixture's path."""
    for fixture in fixtures:
        for base_url in base_urls:
            response = httpx.get(base_url + fixture.path, timeout=10.0)
            digest = hashlib.sha256(response.content).hexdigest()
            if response.status_code != 200 or digest != fixture.sha256:
                raise RuntimeError(
                    f"{base_url}{fixture.path}: {response.status_code}, sha256 {digest[:16]}, "
                    f"expected 200 and {fixture.sha256[:16]} ({len(fixture.body)} bytes)"
                )
