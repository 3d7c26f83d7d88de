"""FFmpeg test-stream pushers: a synthetic live encoder feeding Headwater's ingest.

The ``*_command`` functions are pure: they build an FFmpeg argv and touch nothing. ``run_pusher`` and
``stop_pusher`` are the thin process layer on top, and ``main`` is what ``make run`` starts:

    python -m services.demo --base-url http://127.0.0.1:8080 --channel demo --mode long-post|dash

Two ingest styles are produced, both DASH-IF Live Media Ingest Interface 1 (CMAF):

- ``long-post``: one long-running chunked ``POST`` per track to ``/ingest/{ch}/Streams({track}.cmfv)``:
  a CMAF header followed by one fragment per GOP, until FFmpeg stops.
- ``dash``: FFmpeg's DASH muxer ``PUT``\\s a manifest, an init segment per representation, and one
  request per segment (chunked, fragments flushed as they are encoded), and ``DELETE``\\s old segments.

What FFmpeg 5.1 does on the wire (seen with ``tests/e2e/capture.py``): no Content-Length anywhere,
every request is ``Transfer-Encoding: chunked`` (DELETEs too, with an empty body); it reads no response
while a body is being sent and ignores every status code (a 412 is never answered by re-sending the
init segment); an origin that wants to refuse a long POST must answer and close the connection, which
makes the whole FFmpeg process fail ("Broken pipe") within one fragment. ``main`` restarts it.

The video is ``testsrc2`` with the UTC wall clock, the media time and the frame number burnt in (if a
font is available), so a screenshot of a player shows its latency; the audio is a sine that beeps once a
second.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from urllib.parse import quote

FRAME_RATE = 25  # frames/s: low on purpose, three encodes must fit in well under one of two cores
GOP_S = 2  # one IDR every 2 s, never on scene cuts: every fragment/segment starts with a keyframe
SEGMENT_S = 2
AUDIO_FRAGMENT_US = GOP_S * 1_000_000  # audio has no keyframe cadence: cut it on time instead
CLOCK_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
FFMPEG = "ffmpeg"
RW_TIMEOUT_US = 10_000_000  # a stuck origin fails the pusher instead of hanging it
# The whole ladder costs about 35 % of one core with ultrafast (12 % of it is testsrc2 + clock + scaling),
# 45 % with superfast, 65 % with veryfast. ultrafast has no CABAC or 8x8 transform, so x264 signals
# Constrained Baseline (avc1.42c01f) despite `-profile:v high`, which is only a ceiling; switch to
# superfast for High profile (avc1.64001f) when the CPU is there.
X264_PRESET = "ultrafast"


@dataclass(frozen=True, slots=True, kw_only=True)
class VideoRendition:
    name: str  # ingest track name: Streams({name}.cmfv)
    width: int
    height: int
    bitrate_kbps: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioRendition:
    name: str  # ingest track name: Streams({name}.cmfa)
    bitrate_kbps: int
    sample_rate_hz: int
    channels: int


LADDER: tuple[VideoRendition, ...] = (
    VideoRendition(name="video720", width=1280, height=720, bitrate_kbps=3000),
    VideoRendition(name="video540", width=960, height=540, bitrate_kbps=1800),
    VideoRendition(name="video360", width=640, height=360, bitrate_kbps=800),
)
AUDIO = AudioRendition(name="audio128", bitrate_kbps=128, sample_rate_hz=48_000, channels=2)


def _drawtext(font_path: str) -> str:
    # Single quotes protect ':' from the filter-option parser; '\:' reaches drawtext's own expansion.
    text = "%{gmtime} UTC  pts %{pts\\:hms}  frame %{n}"
    return (
        f"drawtext=fontfile={font_path}:fontsize=36:fontcolor=white:box=1:boxcolor=black@0.6"
        f":x=20:y=20:text='{text}'"
    )


def _input_args(*, top: VideoRendition, audio: bool, duration_s: float | None) -> list[str]:
    limit = ["-t", f"{duration_s:g}"] if duration_s is not None else []
    argv = ["-re", *limit, "-f", "lavfi", "-i", f"testsrc2=size={top.width}x{top.height}:rate={FRAME_RATE}"]
    if audio:
        source = f"sine=frequency=1000:beep_factor=4:sample_rate={AUDIO.sample_rate_hz}"
        argv += ["-re", *limit, "-f", "lavfi", "-i", source]
    return argv


def _filter_graph(ladder: Sequence[VideoRendition], clock_font: str | None) -> str:
    """``[0:v]`` -> clock overlay -> split -> one scaled ``[vN]`` pad per rendition."""
    head = "[0:v]" + (f"{_drawtext(clock_font)}," if clock_font else "") + f"split={len(ladder)}"
    head += "".join(f"[s{index}]" for index in range(len(ladder)))
    branches = [
        f"[s{index}]scale={rendition.width}:{rendition.height}[v{index}]"
        for index, rendition in enumerate(ladder)
    ]
    return ";".join([head, *branches])


def _x264_args(stream: str = "", *, gop_s: float = GOP_S) -> list[str]:
    """Shared H.264 settings; ``stream`` is an output-stream specifier suffix such as ``:0``."""
    gop = str(round(FRAME_RATE * gop_s))
    return [
        f"-c:v{stream}", "libx264", f"-preset:v{stream}", X264_PRESET, f"-tune:v{stream}", "zerolatency",
        f"-profile:v{stream}", "high", f"-pix_fmt:v{stream}", "yuv420p",
        f"-g:v{stream}", gop, f"-keyint_min:v{stream}", gop, f"-sc_threshold:v{stream}", "0",
    ]  # fmt: skip


def _rate_args(rendition: VideoRendition, stream: str = "") -> list[str]:
    kbps = rendition.bitrate_kbps
    return [
        f"-b:v{stream}", f"{kbps}k", f"-maxrate:v{stream}", f"{kbps}k", f"-bufsize:v{stream}", f"{kbps * 2}k",
    ]  # fmt: skip


def _aac_args() -> list[str]:
    return [
        "-c:a", "aac", "-b:a", f"{AUDIO.bitrate_kbps}k",
        "-ar", str(AUDIO.sample_rate_hz), "-ac", str(AUDIO.channels),
    ]  # fmt: skip


def _common_head(
    *, ladder: Sequence[VideoRendition], audio: bool, duration_s: float | None, clock_font: str | None
) -> list[str]:
    return [
        FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "warning", "-stats", "-stats_period", "5",
        *_input_args(top=ladder[0], audio=audio, duration_s=duration_s),
        "-filter_complex", _filter_graph(ladder, clock_font),
    ]  # fmt: skip


def _chunked_post(url: str, content_type: str) -> list[str]:
    # Without -content_type FFmpeg sends no Content-Type header at all.
    timeout = str(RW_TIMEOUT_US)
    return [
        "-method",
        "POST",
        "-chunked_post",
        "1",
        "-rw_timeout",
        timeout,
        "-content_type",
        content_type,
        url,
    ]


def ingest_url(base_url: str, channel: str, path: str) -> str:
    """``{base_url}/ingest/{channel}/{path}`` with the channel percent-encoded."""
    return f"{base_url.rstrip('/')}/ingest/{quote(channel, safe='')}/{path}"


def wallclock_offset_s(now_s: float | None = None) -> int:
    """Unix time rounded down to a GOP: output timestamps anchored to the Unix epoch.

    DASH-IF ingest's guidance for redundant and restarting sources: with epoch-anchored decode times a
    restarted encoder continues the stored timeline (after a gap) instead of going back to 0, and
    segment boundaries line up with wall-clock multiples of the GOP.
    """
    now = time.time() if now_s is None else now_s
    return int(now // GOP_S) * GOP_S


def _ts_offset(ts_offset_s: int | None) -> list[str]:
    return [] if ts_offset_s is None else ["-output_ts_offset", str(ts_offset_s)]


def _movflags(base: str, ts_offset_s: int | None) -> str:
    # without frag_discont FFmpeg 5.1's mp4 muxer rebases every track's first tfdt to 0
    return base if ts_offset_s is None else base + "+frag_discont"


def long_post_command(
    base_url: str,
    channel: str,
    *,
    duration_s: float | None = None,
    ladder: Sequence[VideoRendition] = LADDER,
    audio: bool = True,
    prft: bool = False,
    ts_offset_s: int | None = None,
    fragment_s: float | None = None,
    clock_font: str | None = CLOCK_FONT,
) -> list[str]:
    """One FFmpeg process, one long-running chunked POST per track (``Streams(name.cmfv|.cmfa)``).

    Each POST body is a CMAF header (ftyp + moov, held back until the first fragment is complete)
    followed by one moof + mdat fragment per GOP (video) or per ``AUDIO_FRAGMENT_US`` (audio), each
    written as soon as it is complete, and an ``mfra`` box when FFmpeg stops. ``fragment_s`` also
    cuts fragments every that many seconds (CMAF chunks, for LL-HLS); ``prft`` writes a wall-clock
    Producer Reference Time box before every moof.
    """
    if not ladder:
        raise ValueError("the ladder needs at least one rendition")
    movflags = "cmaf+frag_keyframe+empty_moov+default_base_moof+separate_moof+delay_moov"
    mux = ["-f", "mp4", "-movflags", _movflags(movflags, ts_offset_s)]
    mux += ["-write_prft", "wallclock"] if prft else []
    mux += _ts_offset(ts_offset_s)
    video_cut = ["-frag_duration", str(round(fragment_s * 1_000_000))] if fragment_s else []
    audio_cut = ["-frag_duration", str(round(fragment_s * 1_000_000) if fragment_s else AUDIO_FRAGMENT_US)]
    argv = _common_head(ladder=ladder, audio=audio, duration_s=duration_s, clock_font=clock_font)
    for index, rendition in enumerate(ladder):
        url = ingest_url(base_url, channel, f"Streams({rendition.name}.cmfv)")
        argv += ["-map", f"[v{index}]", *_x264_args(), *_rate_args(rendition), *mux, *video_cut]
        argv += _chunked_post(url, "video/mp4")
    if audio:
        url = ingest_url(base_url, channel, f"Streams({AUDIO.name}.cmfa)")
        argv += ["-map", "1:a", *_aac_args(), *mux, *audio_cut, *_chunked_post(url, "audio/mp4")]
    return argv


def dash_put_command(
    base_url: str,
    channel: str,
    *,
    duration_s: float | None = None,
    ladder: Sequence[VideoRendition] = LADDER,
    audio: bool = True,
    fragment_s: float | None = None,
    window_size: int = 5,
    utc_timing_url: str | None = None,
    clock_font: str | None = CLOCK_FONT,
    ts_offset_s: int | None = None,
    put_s: float = SEGMENT_S,
    persistent: bool = True,
) -> list[str]:
    """One FFmpeg process using its DASH muxer to PUT a live CMAF presentation segment by segment.

    Sends ``init-stream{N}.m4s`` once per representation, ``manifest.mpd`` again whenever a segment
    closes, and ``chunk-stream{N}-{Number:05d}.m4s`` per segment as one chunked PUT that lasts the
    segment's duration (styp, then each moof + mdat as soon as it is encoded), and DELETEs segments
    that leave the window. Representation N is output stream N: the video ladder in order, then
    audio. ``fragment_s`` cuts each segment into CMAF chunks of that duration; by default every frame
    is its own moof + mdat (FFmpeg's ``-streaming 1``). ``utc_timing_url`` (any URL; FFmpeg only
    writes it into the MPD) turns on a prft box before every moof. ``put_s`` is FFmpeg's segment (and
    GOP) duration, i.e. how long each PUT lasts; the origin still cuts its own segments at the
    channel's target. FFmpeg does not resend a PUT that failed; the cluster front takes each PUT whole
    and delivers it again if its ingest node dies, so nothing is lost there, but a PUT reaches the
    origin only once complete: behind the front ``put_s`` adds to the latency. ``persistent=False``
    opens a connection per PUT: once a reused connection broke (a node dying with no front between)
    FFmpeg fails every later PUT of that track ("URL read error: End of file"). Straight to one
    node keep it on: without it FFmpeg closes its socket right after a PUT's last chunk, and a
    server may see the close before the body's end (the front's nginx is told to finish such
    requests). ``ignore_io_errors``: a failed PUT costs that PUT, not the stream.
    """
    if not ladder:
        raise ValueError("the ladder needs at least one rendition")
    argv = _common_head(ladder=ladder, audio=audio, duration_s=duration_s, clock_font=clock_font)
    for index, rendition in enumerate(ladder):
        argv += ["-map", f"[v{index}]", *_rate_args(rendition, f":{index}")]
    argv += _x264_args(gop_s=put_s)
    if audio:
        argv += ["-map", "1:a", *_aac_args()]
    sets = "id=0,streams=v id=1,streams=a" if audio else "id=0,streams=v"
    chunking = ["-frag_type", "duration", "-frag_duration", f"{fragment_s:g}"] if fragment_s else []
    if utc_timing_url:
        chunking += ["-utc_timing_url", utc_timing_url, "-write_prft", "1"]
    movflags = "movflags=" + _movflags("cmaf", ts_offset_s)
    argv += [
        *_ts_offset(ts_offset_s),
        "-f", "dash", "-seg_duration", f"{put_s:g}", "-streaming", "1", "-ldash", "1", *chunking,
        "-use_timeline", "0", "-use_template", "1", "-format_options", movflags,
        "-adaptation_sets", sets, "-window_size", str(window_size), "-extra_window_size", "2",
        "-method", "PUT", "-http_persistent", "1" if persistent else "0",
        "-timeout", f"{RW_TIMEOUT_US / 1e6:g}", "-ignore_io_errors", "1",
        ingest_url(base_url, channel, "manifest.mpd"),
    ]  # fmt: skip
    return argv


def run_pusher(argv: Sequence[str], *, log_path: Path | None = None) -> subprocess.Popen[bytes]:
    """Start an FFmpeg pusher; its stderr (warnings and ``speed=`` stats) goes to ``log_path``.

    With no ``log_path`` the pusher shares this process's stderr. It runs in its own session so a
    terminal's Ctrl-C reaches it only through ``stop_pusher``.
    """
    if log_path is None:
        return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, start_new_session=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )


def stop_pusher(proc: subprocess.Popen[bytes], timeout_s: float = 5.0) -> int:
    """SIGINT (FFmpeg finishes its outputs), then SIGKILL after ``timeout_s``; returns the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)
    return proc.returncode


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.demo", description="Push an FFmpeg test stream."
    )
    parser.add_argument("--base-url", default="http://127.0.0.1:8080")
    parser.add_argument("--channel", default="demo")
    parser.add_argument("--mode", choices=("long-post", "dash"), default="long-post")
    parser.add_argument("--duration", type=float, default=None, help="seconds of media; default: forever")
    parser.add_argument("--prft", action="store_true", help="long-post: write prft boxes")
    parser.add_argument(
        "--fragment", type=float, default=None,
        help="CMAF chunk duration in s (default: long-post one per GOP, dash one per frame)",
    )  # fmt: skip
    parser.add_argument("--log", type=Path, default=None, help="FFmpeg's stderr goes here")
    parser.add_argument("--retry-delay", type=float, default=2.0, help="restart delay after a failure")
    args = parser.parse_args(argv)
    font = CLOCK_FONT if os.path.exists(CLOCK_FONT) else None

    def command() -> list[str]:  # rebuilt at every (re)start: a new wall-clock anchor
        if args.mode == "dash":
            return dash_put_command(
                args.base_url, args.channel, duration_s=args.duration, fragment_s=args.fragment,
                clock_font=font, ts_offset_s=wallclock_offset_s(),
            )  # fmt: skip
        return long_post_command(
            args.base_url, args.channel, duration_s=args.duration, prft=args.prft, fragment_s=args.fragment,
            clock_font=font, ts_offset_s=wallclock_offset_s(),
        )  # fmt: skip

    signal.signal(signal.SIGTERM, _raise_interrupt)
    proc: subprocess.Popen[bytes] | None = None
    try:
        while True:
            proc = run_pusher(command(), log_path=args.log)
            code = proc.wait()
            if args.duration is not None:  # a bounded run is never restarted
                return code
            print(f"demo: ffmpeg exited with {code}; restarting in {args.retry_delay:g} s", file=sys.stderr)
            time.sleep(args.retry_delay)
    except KeyboardInterrupt:
        return 0
    finally:
        if proc is not None:
            stop_pusher(proc)


if __name__ == "__main__":
    sys.exit(main())
