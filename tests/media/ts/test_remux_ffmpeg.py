"""Real FFmpeg CMAF output remuxed to TS, read back by ffprobe/FFmpeg/PyAV: silent, exact, continuous."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from services.packager.ts_output import mux_audio_variant, mux_video_variant
from services.shared.media.ts.remux import AUDIO_PID, VIDEO_PID, TrackSamples, remux, reorder_shift
from services.shared.media.ts.timestamps import TIMESTAMP_MODULUS

from ..conftest import Encoded
from .cmaf_input import Track, read_track
from .packets import continuity_errors, packets
from .pyav import demux


def probe(path: Path, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *args, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stderr == "", done.stderr[:2000]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def decode_warnings(path: Path) -> str:
    done = subprocess.run(
        ["ffmpeg", "-v", "warning", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stderr


def segments_of(track: Track, *, video: bool) -> list[bytes]:
    """Each fragment as one segment, made independently."""
    out = []
    for index in range(len(track.fragments)):
        samples = TrackSamples(info=track.info, samples=track.samples(index))
        out.append(remux(video=samples) if video else remux(audio=samples))
    return out


def check_segments(tmp_path: Path, segments: list[bytes]) -> Path:
    """Every segment ffprobes silently; their concatenation decodes without a warning."""
    for index, data in enumerate(segments):
        path = tmp_path / f"seg{index}.ts"
        path.write_bytes(data)
        probe(path)
    joined = tmp_path / "joined.ts"
    joined.write_bytes(b"".join(segments))
    assert continuity_errors(joined.read_bytes()) == []
    assert decode_warnings(joined) == ""
    return joined


def same_stream_facts(cmaf: dict[str, Any], ts: dict[str, Any], keys: tuple[str, ...]) -> None:
    assert {k: ts.get(k) for k in keys} == {k: cmaf.get(k) for k in keys}


def test_h264_segments(h264_cmaf: Encoded, tmp_path: Path) -> None:
    track = read_track(h264_cmaf.data)
    joined = check_segments(tmp_path, segments_of(track, video=True))
    stream = probe(joined, "-show_streams", "-show_programs")
    (ts_stream,) = stream["streams"]
    same_stream_facts(
        h264_cmaf.streams[0], ts_stream, ("codec_name", "profile", "level", "width", "height", "pix_fmt")
    )
    assert ts_stream["id"] == hex(VIDEO_PID) and stream["programs"][0]["pcr_pid"] == VIDEO_PID
    times = []  # decode times move back by the reorder depth (x264 B-frames, negative offsets in CMAF)
    for index in range(len(track.fragments)):
        samples = track.samples(index)
        shift = reorder_shift(samples)
        assert shift == reorder_shift(track.samples(0)) > 0
        times += [
            (d - shift, c) for d, c in zip(samples.decode_times, samples.composition_times, strict=True)
        ]
    got = [(p.dts, p.pts) for p in demux(joined.read_bytes())]
    assert len(got) == len(times)
    scale = track.info.timescale
    for (dts, pts), (want_dts, want_pts) in zip(got, times, strict=True):
        assert dts <= pts
        assert (dts - want_dts * 90000 // scale) % TIMESTAMP_MODULUS == 0
        assert (pts - want_pts * 90000 // scale) % TIMESTAMP_MODULUS == 0


def test_every_idr_access_unit_carries_aud_sps_pps(h264_cmaf: Encoded) -> None:
    track = read_track(h264_cmaf.data)
    data = b"".join(segments_of(track, video=True))
    units = [(p.data, p.keyframe) for p in demux(data)]
    keyframes = [unit for unit, key in units if key]
    assert len(keyframes) == len(track.fragments)  # one IDR per fragment (GOP)
    for unit in keyframes:
        nal_types = [unit[i + 4] & 0x1F for i in range(len(unit) - 4) if unit[i : i + 4] == b"\0\0\0\1"][:3]
        assert nal_types == [9, 7, 8], nal_types  # AUD, SPS, PPS
    assert all(unit.startswith(b"\0\0\0\1\x09") for unit, _ in units)


def test_hevc_segments(hevc_cmaf: Encoded, tmp_path: Path) -> None:
    track = read_track(hevc_cmaf.data)
    joined = check_segments(tmp_path, segments_of(track, video=True))
    (ts_stream,) = probe(joined, "-show_streams")["streams"]
    same_stream_facts(
        hevc_cmaf.streams[0], ts_stream, ("codec_name", "profile", "width", "height", "pix_fmt")
    )


def test_aac_segments(aac_cmaf: Encoded, tmp_path: Path) -> None:
    track = read_track(aac_cmaf.data)
    joined = check_segments(tmp_path, segments_of(track, video=False))
    (ts_stream,) = probe(joined, "-show_streams")["streams"]
    same_stream_facts(aac_cmaf.streams[0], ts_stream, ("codec_name", "profile", "sample_rate", "channels"))
    assert ts_stream["id"] == hex(AUDIO_PID)
    assert len(demux(joined.read_bytes())) == len(track.all_samples())


def test_video_variant_muxes_the_audio_presented_in_its_interval(
    h264_cmaf: Encoded, aac_cmaf: Encoded, tmp_path: Path
) -> None:
    video, audio = read_track(h264_cmaf.data), read_track(aac_cmaf.data)
    segments = [
        mux_video_variant(
            video=video.info,
            video_samples=video.samples(i),
            audio=audio.info,
            audio_fragments=audio.fragments,
        )
        for i in range(len(video.fragments))
    ]
    joined = check_segments(tmp_path, segments)
    streams = probe(joined, "-show_streams")["streams"]
    assert [(s["codec_type"], s["id"]) for s in streams] == [
        ("video", hex(VIDEO_PID)),
        ("audio", hex(AUDIO_PID)),
    ]
    audio_pes = [p for p in packets(joined.read_bytes()) if p.pid == AUDIO_PID and p.payload_unit_start]
    assert audio_pes, "audio is muxed in"
    # every audio frame of the covered time lands in exactly one segment
    audio_frames = [p.pts for p in demux(joined.read_bytes()) if p.kind == "audio"]
    assert audio_frames and len(audio_frames) == len(set(audio_frames))


def test_audio_only_variant(aac_cmaf: Encoded, tmp_path: Path) -> None:
    audio = read_track(aac_cmaf.data)
    segments = [mux_audio_variant(audio=audio.info, fragments=[data]) for data in audio.fragments]
    joined = check_segments(tmp_path, segments)
    assert {p.pid for p in packets(joined.read_bytes()) if p.pcr_base is not None} == {AUDIO_PID}
