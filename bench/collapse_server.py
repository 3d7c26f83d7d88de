"""The server process of ``bench.collapse``: the ``headwater serve`` app, instrumented.

    python -m bench.collapse_server --port P --data-dir D [--ts-lru-bytes N]

``create_app`` on an embedded store that counts ``get_fragment`` calls per fragment, served by uvicorn
as ``headwater serve`` does (httptools, uvloop), plus ``/bench/counters``: those counts and the
packager's remux count as JSON (a POST resets them, and ``?remux_in_thread=0|1`` sets where the TS
remux runs). ``running_server`` starts one and stops it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.e2e.origin import free_port, stop_server, wait_until_answers


def serve(port: int, data_dir: Path, *, ts_lru_bytes: int | None) -> None:
    import uvicorn  # noqa: PLC0415 - only the child process serves

    from services.node import create_app  # noqa: PLC0415
    from services.packager.app import PlaybackApp  # noqa: PLC0415
    from services.packager.service import IMMUTABLE  # noqa: PLC0415
    from services.packager.ts_cache import TsSegments  # noqa: PLC0415
    from services.settings import Settings  # noqa: PLC0415
    from services.shared.asgi import Receive, Scope, Send, respond  # noqa: PLC0415
    from services.shared.cache import LruCache, SingleFlight  # noqa: PLC0415
    from services.shared.store.embedded import EmbeddedStore  # noqa: PLC0415

    class CountingStore(EmbeddedStore):
        def __init__(self, path: Path) -> None:
            super().__init__(path)
            self.reads: Counter[str] = Counter()

        async def get_fragment(self, channel: str, track: str, decode_time: int) -> bytes | None:
            self.reads[f"{channel}/{track}/{decode_time}"] += 1
            return await super().get_fragment(channel, track, decode_time)

    settings = dataclasses.replace(Settings(), port=port, data_dir=data_dir, log_level="warning")
    store = CountingStore(data_dir)
    node = create_app(settings, store=store)
    assert isinstance(node.playback, PlaybackApp)
    packager = node.playback.service
    if ts_lru_bytes is not None:
        packager.ts = TsSegments(
            store=store, objects=LruCache(ts_lru_bytes, lambda r: len(r.body)), flight=SingleFlight(),
            metrics=packager.metrics, clock_ms=packager.clock_ms, cache_control=IMMUTABLE,
        )  # fmt: skip

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/bench/counters":
            if scope["method"] == "POST":
                store.reads.clear()
                packager.ts.produced = 0
                if (flag := scope["query_string"].partition(b"remux_in_thread=")[2][:1]) in (b"0", b"1"):
                    packager.ts.remux_in_thread = flag == b"1"
            body = json.dumps({"reads": store.reads, "remuxes": packager.ts.produced}).encode()
            await respond(send, 200, [(b"content-type", b"application/json")], body)
            return
        await node(scope, receive, send)

    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, http="httptools",
        loop="uvloop", timeout_keep_alive=120, backlog=4096,
    )  # fmt: skip


@contextlib.contextmanager
def running_server(data_dir: Path, *args: str) -> Iterator[str]:
    """A server process (``serve``): yields its base URL, stops it (SIGTERM, then SIGKILL) on the way out."""
    port = free_port()
    log = (data_dir / "server.log").open("ab")
    command = [
        sys.executable,
        "-m",
        "bench.collapse_server",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]
    proc = subprocess.Popen([*command, *args], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        if not wait_until_answers(f"{base}/healthz", proc):
            raise RuntimeError(f"the bench server did not start: see {data_dir / 'server.log'}")
        yield base
    finally:
        stop_server(proc)
        log.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.collapse_server", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--ts-lru-bytes", type=int, default=None, help="a TS LRU of its own, this big")
    args = parser.parse_args(argv)
    serve(args.port, args.data_dir, ts_lru_bytes=args.ts_lru_bytes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
