"""Real FFmpeg output for the reader tests, made once per session (a few seconds of test sources)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CMAF_FLAGS = "cmaf+frag_keyframe+empty_moov+default_base_moof+separate_moof+delay_moov"
VIDEO_SOURCE = ["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25"]
AUDIO_SOURCE = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]


@dataclass(frozen=True, slots=True)
class Encoded:
    """One FFmpeg output file, its bytes and what ffprobe says about its streams."""

    path: Path
    data: bytes
    streams: list[dict[str, Any]]


def _ffmpeg(*args: str) -> None:
    # no skip: scripts/setup.sh installs FFmpeg, and a missing one must fail loudly
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, timeout=120)


def _probe(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    streams: list[dict[str, Any]] = json.loads(out.stdout)["streams"]
    return streams


def _encode(directory: Path, name: str, *args: str) -> Encoded:
    path = directory / name
    _ffmpeg(*args, str(path))
    return Encoded(path=path, data=path.read_bytes(), streams=_probe(path))


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ffmpeg")


@pytest.fixture(scope="session")
def h264_cmaf(media_dir: Path) -> Encoded:
    """4 s of H.264 at 320x180, a keyframe each second: a header and 4 fragments."""
    return _encode(
        media_dir,
        "h264.mp4",
        *VIDEO_SOURCE,
        *AUDIO_SOURCE,
        *("-t", "4", "-c:v", "libx264", "-g", "25", "-c:a", "aac", "-map", "0:v"),
        *("-f", "mp4", "-movflags", CMAF_FLAGS),
    )


@pytest.fixture(scope="session")
def aac_cmaf(media_dir: Path) -> Encoded:
    """4 s of AAC-LC 48 kHz mono in 1 s fragments."""
    return _encode(
        media_dir,
        "aac.mp4",
        *AUDIO_SOURCE,
        *("-t", "4", "-c:a", "aac", "-frag_duration", "1000000"),
        *("-f", "mp4", "-movflags", "cmaf+empty_moov+default_base_moof+separate_moof+delay_moov"),
    )


@pytest.fixture(scope="session")
def hevc_cmaf(media_dir: Path) -> Encoded:
    """2 s of HEVC (libx265, hvc1) at 320x180 in 1 s fragments."""
    return _encode(
        media_dir,
        "hevc.mp4",
        *VIDEO_SOURCE,
        *("-t", "2", "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"),
        *("-g", "25", "-tag:v", "hvc1", "-f", "mp4", "-movflags", CMAF_FLAGS),
    )


@pytest.fixture(scope="session")
def prft_cmaf(media_dir: Path) -> Encoded:
    """2 s of H.264 with a producer reference time (prft) before each fragment."""
    return _encode(
        media_dir,
        "prft.mp4",
        *VIDEO_SOURCE,
        *("-t", "2", "-c:v", "libx264", "-g", "25", "-write_prft", "wallclock"),
        *("-f", "mp4", "-movflags", CMAF_FLAGS),
    )


@pytest.fixture(scope="session")
def dash_output(media_dir: Path) -> Path:
    """FFmpeg's DASH muxer: per-track init segments and styp+sidx+moof+mdat media segments."""
    directory = media_dir / "dash"
    directory.mkdir()
    _ffmpeg(
        *VIDEO_SOURCE,
        *AUDIO_SOURCE,
        *("-t", "4", "-c:v", "libx264", "-g", "25", "-c:a", "aac", "-map", "0:v", "-map", "1:a"),
        *("-f", "dash", "-seg_duration", "2", str(directory / "out.mpd")),
    )
    return directory
