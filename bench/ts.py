"""The TS remux benchmark that chose the implementation: Headwater's muxer against PyAV, same input, same run.

    python -m bench.ts [--iterations 200]     # makes its own 2 s 720p segment with FFmpeg
    (``make bench`` runs it on a segment of the demo ladder pushed to the origin: ``bench.run``)

Input: one video segment (its CMAF fragments) of the demo ladder's top rendition (1280x720, 25 fps,
x264 as ``services.demo`` encodes it) and the audio fragments around it (AAC-LC 48 kHz stereo).
Output: the variant's TS segment, video plus the audio presented in the segment's interval.

- **remux** — stored CMAF bytes in, TS bytes out, what a request costs. Ours:
  ``ts_output.mux_video_variant`` (parse the moofs, slice the audio, Annex B/ADTS, mux). PyAV:
  libavformat demuxes the CMAF (``av.open`` with format and probing pinned: ``probesize=32``,
  ``analyzeduration=0``, twice as fast as the defaults) and muxes MPEG-TS into a ``BytesIO``.
- **mux only** — samples already parsed (the same ``Samples`` columns for both) in, TS bytes out.
  Ours: ``remux``. PyAV: an ``av.Packet`` per sample (AVCC + avcC extradata, so libavformat inserts
  its own h264_mp4toannexb; raw AAC + AudioSpecificConfig, so it writes ADTS) into the mpegts muxer.

The four run interleaved, one after another in each iteration, and are timed in thread CPU time
(``time.thread_time``), so other load on the machine slows both sides alike instead of adding wall
time to whichever ran during it; medians over the iterations.
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av
import httpx
from av.container import InputContainer
from av.stream import Stream

from bench.fixtures import media_uris
from services.packager.ts_output import mux_video_variant, presentation_interval, samples_in
from services.shared.media.header import parse_header
from services.shared.media.models import TrackInfo
from services.shared.media.reader import CmafReader, FragmentReceived
from services.shared.media.ts.cmaf import Samples, concatenate, fragment_samples
from services.shared.media.ts.remux import TrackSamples, remux

PROBE_OPTIONS = {"probesize": "32", "analyzeduration": "0"}
GOAL = 0.5  # ours over PyAV


@dataclass(frozen=True, slots=True, kw_only=True)
class SegmentInput:
    """A video segment and the audio around it, as the store holds them: headers and fragments."""

    video_init: bytes
    video_fragments: tuple[bytes, ...]
    audio_init: bytes
    audio_fragments: tuple[bytes, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    median_ms: float
    output_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RemuxResult:
    iterations: int
    video_samples: int
    audio_samples: int
    ours_remux: Timing
    pyav_remux: Timing
    ours_mux: Timing
    pyav_mux: Timing


def split_fragments(init: bytes, segment: bytes) -> tuple[bytes, ...]:
    """A CMAF segment's fragments (a long-post segment is one; a DASH-PUT segment, many)."""
    reader = CmafReader(header=parse_header(init))
    return tuple(e.fragment.data for e in reader.feed(segment) if isinstance(e, FragmentReceived))


class _Case:
    """Parsed once, outside the timings: what the mux-only runs start from, and PyAV's templates."""

    def __init__(self, segment: SegmentInput) -> None:
        self.segment = segment
        self.video = parse_header(segment.video_init).tracks[0]
        self.audio = parse_header(segment.audio_init).tracks[0]
        self.video_samples = concatenate(fragment_samples(f, self.video) for f in segment.video_fragments)
        interval = presentation_interval(self.video_samples)
        self.interval = interval
        audio_all = concatenate(fragment_samples(f, self.audio) for f in segment.audio_fragments)
        self.audio_samples = samples_in(
            audio_all, *interval, timescale=self.video.timescale, sample_timescale=self.audio.timescale
        )
        self.video_bytes = segment.video_init + b"".join(segment.video_fragments)
        self.audio_bytes = segment.audio_init + b"".join(segment.audio_fragments)
        self.video_template = _open(self.video_bytes).streams.video[0]
        self.audio_template = _open(self.audio_bytes).streams.audio[0]

    def ours_remux(self) -> bytes:
        samples = concatenate(fragment_samples(f, self.video) for f in self.segment.video_fragments)
        return mux_video_variant(
            video=self.video,
            video_samples=samples,
            audio=self.audio,
            audio_fragments=self.segment.audio_fragments,
        )

    def ours_mux(self) -> bytes:
        return remux(
            video=TrackSamples(info=self.video, samples=self.video_samples),
            audio=TrackSamples(info=self.audio, samples=self.audio_samples),
        )

    def pyav_mux(self) -> bytes:
        out = io.BytesIO()
        with av.open(out, mode="w", format="mpegts") as output:
            video = output.add_stream_from_template(self.video_template)
            audio = output.add_stream_from_template(self.audio_template)
            packets = _packets(self.video_samples, self.video, video, 0)
            packets += _packets(self.audio_samples, self.audio, audio, 1)
            packets.sort(key=lambda item: item[:3])
            for *_, packet in packets:
                output.mux(packet)
        return out.getvalue()

    def pyav_remux(self) -> bytes:
        out = io.BytesIO()
        start, end = self.interval
        scale, audio_scale = self.video.timescale, self.audio.timescale
        with (
            _open(self.video_bytes) as video_in,
            _open(self.audio_bytes) as audio_in,
            av.open(out, mode="w", format="mpegts") as output,
        ):
            video = output.add_stream_from_template(video_in.streams.video[0])
            audio = output.add_stream_from_template(audio_in.streams.audio[0])
            packets: list[tuple[Fraction, int, int, av.Packet[Any]]] = []
            for video_packet in video_in.demux(video_in.streams.video[0]):
                if video_packet.size and video_packet.dts is not None:
                    video_packet.stream = video
                    packets.append((video_packet.dts * video_packet.time_base, 0, len(packets), video_packet))
            for audio_packet in audio_in.demux(audio_in.streams.audio[0]):
                pts = audio_packet.pts
                if (
                    audio_packet.size
                    and pts is not None
                    and start * audio_scale <= pts * scale < end * audio_scale
                ):
                    audio_packet.stream = audio
                    packets.append((pts * audio_packet.time_base, 1, len(packets), audio_packet))
            packets.sort(key=lambda item: item[:3])
            for *_, packet in packets:
                output.mux(packet)
        return out.getvalue()


def _open(data: bytes) -> InputContainer:
    return av.open(io.BytesIO(data), mode="r", format="mp4", options=PROBE_OPTIONS)


def _packets(
    samples: Samples, info: TrackInfo, stream: Stream, order: int
) -> list[tuple[Fraction, int, int, av.Packet[Any]]]:
    time_base = Fraction(1, info.timescale)
    packets = []
    for index, (decode_time, composition_time, sync, data) in enumerate(
        zip(samples.decode_times, samples.composition_times, samples.sync, samples.data, strict=True)
    ):
        packet = av.Packet(cast(bytes, data))  # any buffer will do; the stub says bytes
        packet.dts, packet.pts, packet.time_base = decode_time, composition_time, time_base
        packet.stream, packet.is_keyframe = stream, sync
        packets.append((decode_time * time_base, order, index, packet))
    return packets


def measure(segment: SegmentInput, *, iterations: int = 200) -> RemuxResult:
    """Median thread CPU time of each way, interleaved in every iteration."""
    case = _Case(segment)
    runs: dict[str, Callable[[], bytes]] = {
        "ours_remux": case.ours_remux,
        "pyav_remux": case.pyav_remux,
        "ours_mux": case.ours_mux,
        "pyav_mux": case.pyav_mux,
    }
    sizes = {name: len(run()) for name, run in runs.items()}  # warm-up, and the output sizes
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(iterations):
        for name, run in runs.items():
            started = time.thread_time()
            run()
            times[name].append(time.thread_time() - started)
    timing = {
        name: Timing(median_ms=statistics.median(values) * 1000, output_bytes=sizes[name])
        for name, values in times.items()
    }
    return RemuxResult(
        iterations=iterations,
        video_samples=len(case.video_samples),
        audio_samples=len(case.audio_samples),
        **timing,
    )


def report_rows(result: RemuxResult) -> list[str]:
    """Rows for the ``make bench`` table (metric | headwater | other | ratio | goal)."""
    rows = []
    for label, ours, theirs in (
        ("TS remux per segment, CMAF bytes in (thread CPU)", result.ours_remux, result.pyav_remux),
        ("TS mux only per segment, parsed samples in", result.ours_mux, result.pyav_mux),
    ):
        ratio = ours.median_ms / theirs.median_ms
        goal = f"≤ {GOAL:.0%} of PyAV: {'met' if ratio <= GOAL else '**not met**'}"
        rows.append(
            f"| {label}: {result.video_samples} video + {result.audio_samples} audio samples, "
            f"{ours.output_bytes:,} B out (PyAV {theirs.output_bytes:,} B) "
            f"| {ours.median_ms:.2f} ms | {theirs.median_ms:.2f} ms (PyAV {av.__version__}) "
            f"| {ratio:.2f} | {goal} |"
        )
    return rows


def encode_input(directory: Path, *, seconds: int = 6) -> SegmentInput:
    """A 720p segment with audio made by FFmpeg as the demo ladder's top rendition: the second 2 s GOP."""
    limit = ["-t", str(seconds), "-f", "lavfi", "-i"]
    common = ["ffmpeg", "-v", "error", "-y", *limit, "testsrc2=size=1280x720:rate=25"]
    common += [*limit, "sine=frequency=1000:beep_factor=4:sample_rate=48000"]
    flags = "cmaf+frag_keyframe+empty_moov+default_base_moof+separate_moof+delay_moov"
    video, audio = directory / "video.mp4", directory / "audio.mp4"
    subprocess.run(
        [
            *common,
            *("-map", "0:v", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency"),
            *(
                "-profile:v",
                "high",
                "-pix_fmt",
                "yuv420p",
                "-g",
                "50",
                "-keyint_min",
                "50",
                "-sc_threshold",
                "0",
            ),
            *(
                "-b:v",
                "3000k",
                "-maxrate",
                "3000k",
                "-bufsize",
                "6000k",
                "-f",
                "mp4",
                "-movflags",
                flags,
                str(video),
            ),
            *("-map", "1:a", "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2"),
            *("-frag_duration", "2000000", "-f", "mp4", "-movflags", flags, str(audio)),
        ],
        check=True,
        timeout=120,
    )
    video_init, video_fragments = _read(video.read_bytes())
    audio_init, audio_fragments = _read(audio.read_bytes())
    return SegmentInput(
        video_init=video_init,
        video_fragments=video_fragments[1:2],
        audio_init=audio_init,
        audio_fragments=audio_fragments[0:3],
    )


def _read(data: bytes) -> tuple[bytes, tuple[bytes, ...]]:
    events = CmafReader().feed(data)
    fragments = tuple(e.fragment.data for e in events if isinstance(e, FragmentReceived))
    return data[: data.index(fragments[0])], fragments


def fetch_input(client: httpx.Client, channel: str, *, video_track: str, audio_track: str) -> SegmentInput:
    """The middle segment of ``video_track`` on a running origin and the audio fragments around it."""
    video_init = _get(client, f"/live/{channel}/media/{video_track}/init.mp4")
    audio_init = _get(client, f"/live/{channel}/media/{audio_track}/init.mp4")
    video_starts = _segment_starts(client, channel, video_track)
    start = video_starts[len(video_starts) // 2]
    video_scale = parse_header(video_init).tracks[0].timescale
    audio_scale = parse_header(audio_init).tracks[0].timescale
    around = [  # audio segments starting within 2.5 s of the video segment's start
        t
        for t in _segment_starts(client, channel, audio_track)
        if abs(t * video_scale - start * audio_scale) * 2 <= 5 * video_scale * audio_scale
    ]
    segment = _get(client, f"/live/{channel}/media/{video_track}/{start}.m4s")
    audio = b"".join(_get(client, f"/live/{channel}/media/{audio_track}/{t}.m4s") for t in around)
    return SegmentInput(
        video_init=video_init,
        video_fragments=split_fragments(video_init, segment),
        audio_init=audio_init,
        audio_fragments=split_fragments(audio_init, audio),
    )


def _segment_starts(client: httpx.Client, channel: str, track: str) -> list[int]:
    text = _get(client, f"/live/{channel}/hls/{track}.m3u8").decode()
    return [int(uri.rsplit("/", 1)[-1].removesuffix(".m4s")) for uri in media_uris(text)]


def _get(client: httpx.Client, path: str) -> bytes:
    response = client.get(path)
    if response.status_code != 200:
        raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:200]}")
    return response.content


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="headwater-bench-ts-") as directory:
        segment = encode_input(Path(directory))
    result = measure(segment, iterations=args.iterations)
    print("| metric | headwater | PyAV | ratio | goal |\n| --- | ---: | ---: | ---: | --- |")
    print("\n".join(report_rows(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
