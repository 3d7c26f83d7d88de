"""``make bench``: Headwater against nginx on the same bytes, in one run, plus publish latency.

    python -m bench.run [--duration 10] [--connections-playlist 32] [--connections-segment 8]
                        [--skip-publish] [--markdown-out PATH]

1. ``headwater serve`` on a free loopback port with a temporary data dir; channel ``bench`` is created
   with ``stale_after_s=3600`` so it stays live after the encoder stops; FFmpeg pushes ``--media``
   seconds of the demo ladder and is waited for, so no encoder competes for CPU during the loads.
   Publish latency p50/p99 is read from ``/metrics`` right after the push.
2. One media playlist (``video540``) and the video segment closest to 500 KB are fetched from the
   origin and written under the same URL paths into a temporary nginx root.
3. nginx (one worker) serves them; both servers must answer ``200`` with identical bytes (sha256).
4. wrk (one thread, same connections and duration for both) loads each URL on each server.
5. Unless ``--skip-publish``: a second, fresh origin takes synthetic ~500 KB fragments, one POST each,
   timed from the client (see ``bench.publish``), and its ``/metrics`` view of the same fragments.
6. HLS-TS: the TS segment at the same time as the CMAF segment fixture is fetched once (made, then
   cached in the origin) and loaded like it on both servers; and ``bench.ts`` times the remux of a
   ``video720`` segment with its audio, Headwater's muxer against PyAV, in this run.
7. Unless ``--skip-store`` / ``--skip-collapse``: ``bench.store`` (Cassandra + memcached) and
   ``bench.collapse`` (store reads caused by 1,000 concurrent GETs of a just-committed segment; where
   the TS remux runs), each its own table after the main one.
8. Unless ``--skip-wakeup``: ``bench.wakeup``, how soon a waiting request wakes after a commit, in the
   committing process (``LocalSignal``) and in another one (UDP announcement); its own table too.
9. Unless ``--skip-blocking``: ``bench.blocking``, the same over HTTP: an LL-HLS blocking playlist
   reload answered after a part's POST, on the same node and on another node; its own table.
10. Unless ``--skip-front``: ``bench.front``, publish latency straight to a node against through the
   cluster front's nginx (streamed ``Streams()`` POSTs, and per-segment POSTs it takes whole first).

Every process started here listens on 127.0.0.1 only and is stopped on the way out, on errors and on
Ctrl-C / SIGTERM too. Timings are printed, never asserted: the exit status says only whether the
benchmark could run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import httpx

from bench import blocking as blocking_bench
from bench import collapse as collapse_bench
from bench import front as front_bench
from bench import store as store_bench
from bench import wakeup as wakeup_bench
from bench.cpu import tree_cpu_s, waited_children_cpu_s
from bench.fixtures import Fixture, pick_fixtures, push_ladder, verify_identical
from bench.nginx import running_nginx
from bench.publish import LatencySummary, PublishError, parse_publish_metrics, synthetic_publish
from bench.report import Environment, LoadRun, Results, ServerRun, collect_environment, render
from bench.ts import RemuxResult, fetch_input, measure
from bench.wrk import WrkError, run_wrk
from tests.e2e.origin import running_origin

CHANNEL = "bench"
PUBLISH_CHANNEL = "bench2"
PLAYLIST_TRACK = "video540"
SEGMENT_BYTES = 500_000


def _progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="whole seconds of each wrk run (default 10)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="whole seconds of wrk warm-up before each run, 0 for none (default 1)",
    )
    parser.add_argument("--connections-playlist", type=int, default=32, help="wrk -c for the playlist (32)")
    parser.add_argument("--connections-segment", type=int, default=8, help="wrk -c for the segment (8)")
    parser.add_argument(
        "--skip-publish", action="store_true", help="skip the synthetic publish-latency client"
    )
    parser.add_argument("--publish-fragments", type=int, default=200, help="timed synthetic fragments (200)")
    parser.add_argument("--media", type=float, default=12.0, help="seconds of media FFmpeg pushes (12)")
    parser.add_argument("--ts-iterations", type=int, default=200, help="remux timings per way (200)")
    parser.add_argument("--markdown-out", type=Path, default=None, help="also write the report block here")
    parser.add_argument(
        "--skip-store",
        action="store_true",
        help="skip the Cassandra + memcached store benchmark (bench.store)",
    )
    parser.add_argument(
        "--skip-collapse",
        action="store_true",
        help="skip the request-collapse and TS remux placement benchmark (bench.collapse)",
    )
    parser.add_argument(
        "--skip-wakeup", action="store_true", help="skip the commit wake-up latency benchmark (bench.wakeup)"
    )
    parser.add_argument("--wakeup-commits", type=int, default=500, help="timed commits per way (500)")
    parser.add_argument(
        "--skip-blocking", action="store_true", help="skip the blocking reload benchmark (bench.blocking)"
    )
    parser.add_argument(
        "--skip-front", action="store_true", help="skip the cluster front's publish cost (bench.front)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (logs, data, nginx root)"
    )
    args = parser.parse_args(argv)
    for name in (
        "duration", "connections_playlist", "connections_segment", "publish_fragments", "media",
        "ts_iterations", "wakeup_commits",
    ):  # fmt: skip
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    return args


def _load(
    base_url: str, pid: int, path: str, *, connections: int, duration_s: int, warmup_s: int
) -> ServerRun:
    url = base_url + path
    if warmup_s > 0:
        run_wrk(url, connections=connections, duration_s=warmup_s, latency=False)
    _progress(f"wrk -c {connections} -d {duration_s:g}s {url}")
    server, client = tree_cpu_s(pid), waited_children_cpu_s()
    result = run_wrk(url, connections=connections, duration_s=duration_s)
    return ServerRun(
        wrk=result, server_cpu_s=tree_cpu_s(pid) - server, client_cpu_s=waited_children_cpu_s() - client
    )


def _compare(
    fixture: Fixture,
    servers: tuple[tuple[str, int], tuple[str, int]],
    *,
    connections: int,
    duration_s: int,
    warmup_s: int,
) -> LoadRun:
    """``servers``: (base URL, pid) of headwater, then of nginx; loaded one after the other."""
    runs = [
        _load(base, pid, fixture.path, connections=connections, duration_s=duration_s, warmup_s=warmup_s)
        for base, pid in servers
    ]
    return LoadRun(
        path=fixture.path, size=len(fixture.body), connections=connections, headwater=runs[0], nginx=runs[1]
    )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Playback:
    publish: LatencySummary | None
    playlist: LoadRun
    segment: LoadRun
    ts_segment: LoadRun
    remux: RemuxResult


def _ts_fixture(client: httpx.Client, segment: Fixture) -> Fixture:
    """The TS segment at the CMAF fixture's time: ``/media/{track}/{t}.m4s`` -> ``/ts/{track}/{t}.ts``."""
    head, _, name = segment.path.rpartition("/")
    path = head.replace("/media/", "/ts/") + "/" + name.replace(".m4s", ".ts")
    response = client.get(path)
    if response.status_code != 200:
        raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:200]}")
    return Fixture(path=path, body=response.content)


def run_playback(args: argparse.Namespace, work: Path) -> Playback:
    """Steps 1-4 and 6: push, pick, serve the same bytes from nginx, load both; time the TS remux."""
    data_dir = work / "origin"
    data_dir.mkdir()
    with running_origin(data_dir) as origin, httpx.Client(base_url=origin.base_url, timeout=10.0) as client:
        created = client.put(f"/api/channels/{CHANNEL}", json={"stale_after_s": 3600})
        if created.status_code not in (200, 201):
            raise RuntimeError(f"PUT /api/channels/{CHANNEL}: {created.status_code} {created.text}")
        _progress(f"origin {origin.base_url}: pushing {args.media:g} s of the demo ladder with FFmpeg")
        push_ladder(origin.base_url, CHANNEL, duration_s=args.media, log_path=work / "ffmpeg.log")
        publish = parse_publish_metrics(client.get("/metrics").text)
        playlist, segment = pick_fixtures(
            client, CHANNEL, playlist_track=PLAYLIST_TRACK, segment_bytes=SEGMENT_BYTES
        )
        ts_segment = _ts_fixture(client, segment)
        fixtures = (playlist, segment, ts_segment)
        with running_nginx(work / "nginx", {f.path: f.body for f in fixtures}) as nginx:
            verify_identical((origin.base_url, nginx.base_url), fixtures)  # + warm-up requests
            _progress(f"nginx {nginx.base_url}: both servers answer 200 with identical bytes")
            servers = ((origin.base_url, origin.process.pid), (nginx.base_url, nginx.process.pid))
            timing = {"duration_s": args.duration, "warmup_s": args.warmup}
            playlist_run = _compare(playlist, servers, connections=args.connections_playlist, **timing)
            segment_run = _compare(segment, servers, connections=args.connections_segment, **timing)
            ts_run = _compare(ts_segment, servers, connections=args.connections_segment, **timing)
        _progress(f"TS remux: Headwater's muxer and PyAV, {args.ts_iterations} iterations each")
        remux = measure(
            fetch_input(client, CHANNEL, video_track="video720", audio_track="audio128"),
            iterations=args.ts_iterations,
        )
        if origin.process.poll() is not None:
            raise RuntimeError(f"the origin exited during the run (code {origin.process.returncode})")
    return Playback(
        publish=publish, playlist=playlist_run, segment=segment_run, ts_segment=ts_run, remux=remux
    )


def run_publish(args: argparse.Namespace, work: Path) -> tuple[LatencySummary, LatencySummary | None]:
    """Step 5, on a fresh origin so its /metrics holds only these fragments."""
    data_dir = work / "publish"
    data_dir.mkdir()
    with running_origin(data_dir) as origin:
        _progress(f"origin {origin.base_url}: {args.publish_fragments} synthetic fragments, one POST each")
        client_side = synthetic_publish(
            origin.base_url, PUBLISH_CHANNEL, fragments=args.publish_fragments, fragment_bytes=SEGMENT_BYTES
        )
        server_side = parse_publish_metrics(httpx.get(f"{origin.base_url}/metrics", timeout=10.0).text)
    return client_side, server_side


def run(args: argparse.Namespace, work: Path) -> Results:
    playback = run_playback(args, work)
    results = Results(
        duration_s=args.duration,
        warmup_s=args.warmup,
        playlist=playback.playlist,
        segment=playback.segment,
        publish_ffmpeg=playback.publish,
        media_s=args.media,
        ts_segment=playback.ts_segment,
        remux=playback.remux,
    )
    if not args.skip_publish:
        client_side, server_side = run_publish(args, work)
        results = dataclasses.replace(
            results,
            publish_client=client_side,
            publish_server=server_side,
            publish_fragment_bytes=SEGMENT_BYTES,
        )
    return results


def _wakeup(args: argparse.Namespace) -> str:
    """The wake-up table (with the blank lines around it), or '' with ``--skip-wakeup``."""
    if args.skip_wakeup:
        return ""
    _progress("wakeup: commit to woken waiter, same process and over UDP (python -m bench.wakeup)")
    return "\n" + wakeup_bench.run(commits=args.wakeup_commits).markdown() + "\n"


def _blocking(args: argparse.Namespace) -> str:
    """The blocking-reload table (with blank lines around it), or '' with ``--skip-blocking``."""
    if args.skip_blocking:
        return ""
    _progress("blocking: LL-HLS blocking reload woken by a part's POST, same node and other node")
    return "\n" + blocking_bench.markdown(blocking_bench.run()) + "\n"


def _front(args: argparse.Namespace) -> str:
    """The front's publish-cost table (with blank lines around it), or '' with ``--skip-front``."""
    if args.skip_front:
        return ""
    _progress("front: publish straight to a node vs through the cluster front (python -m bench.front)")
    return "\n" + front_bench.markdown(front_bench.run()) + "\n"


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(arguments)
    command = sys.orig_argv if argv is None else ["python", "-m", "bench.run", *arguments]
    environment: Environment = collect_environment(shlex.join(command))
    signal.signal(signal.SIGTERM, _raise_interrupt)  # SIGTERM unwinds like Ctrl-C: every child is stopped
    work = Path(tempfile.mkdtemp(prefix="headwater-bench-"))
    try:
        results = run(args, work)
    except KeyboardInterrupt:
        _progress("interrupted; everything started was stopped")
        return 130
    except (RuntimeError, OSError, WrkError, PublishError, httpx.HTTPError) as exc:
        _progress(f"failed: {type(exc).__name__}: {exc}")
        for log in ("origin/headwater.log", "publish/headwater.log", "nginx/error.log", "ffmpeg.log"):
            if (path := work / log).exists() and (text := path.read_text(errors="replace")[-1500:].strip()):
                _progress(f"--- tail of {log} ---\n{text}")
        return 1
    finally:
        if args.keep:
            _progress(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if not args.skip_store:
        _progress("store: Cassandra + memcached write-through (python -m bench.store)")
        store_report = store_bench.run().markdown()
    if not args.skip_collapse:
        _progress("collapse: 1,000 concurrent GETs of a just-committed segment; TS remux placement")
        collapse_report = collapse_bench.run().markdown()
    wakeup_report = _wakeup(args) + _blocking(args) + _front(args)
    environment = dataclasses.replace(environment, load_end=os.getloadavg())
    report = render(environment, results)
    if not args.skip_store:
        report += "\n" + store_report + "\n"
    if not args.skip_collapse:
        report += "\n" + collapse_report + "\n"
    report += wakeup_report
    print(report, end="")
    if args.markdown_out is not None:
        with contextlib.suppress(FileNotFoundError):
            args.markdown_out.parent.mkdir(parents=True, exist_ok=True)
        args.markdown_out.write_text(report)
        _progress(f"wrote {args.markdown_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
