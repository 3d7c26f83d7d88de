"""Graceful shutdown of a real ``headwater serve`` process (what Kubernetes does on a rolling update):
SIGTERM turns the node unready but it keeps serving for the drain time (a request that arrives
mid-drain is answered), and the process then exits by itself well within the grace period."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from services.node import create_app
from services.selftest import synthetic_track
from services.settings import Settings
from services.shared.errors import StoreUnavailable
from tests.asgi import call
from tests.e2e.origin import free_port, serve_argv, stop_server, wait_until_answers

DRAIN_S = 2.0


def test_sigterm_drains_then_exits(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = serve_argv(port, "--data-dir", str(tmp_path / "data"), "--drain-s", str(DRAIN_S))
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until_answers(f"{base}/readyz", proc), "the node did not get ready"
        body = synthetic_track(4, now_ms=time.time_ns() // 1_000_000)
        assert httpx.post(f"{base}/ingest/ch/Streams(v.cmfv)", content=body).status_code < 300
        playlist = httpx.get(f"{base}/live/ch/hls/v.m3u8")
        assert playlist.status_code == 200
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 503 and "draining" in ready.text
        # still serving everything else while the drain lasts
        assert httpx.get(f"{base}/healthz").status_code == 200
        assert httpx.get(f"{base}/live/ch/hls/v.m3u8").text == playlist.text
        late = _get_in_thread(f"{base}/live/ch/hls/v.m3u8", delay_s=DRAIN_S / 2)
        assert proc.wait(timeout=DRAIN_S + 15) in (0, -signal.SIGTERM)
        exited_after = time.monotonic() - sent
        assert late.join_status() == 200  # a request arriving mid-drain was answered
        assert exited_after >= DRAIN_S - 0.2, f"exited {exited_after:.2f} s after SIGTERM, before the drain"
    finally:
        stop_server(proc)


class _Later(threading.Thread):
    def __init__(self, url: str, delay_s: float) -> None:
        super().__init__(daemon=True)
        self.url, self.delay_s, self.status = url, delay_s, 0

    def run(self) -> None:
        time.sleep(self.delay_s)
        self.status = httpx.get(self.url).status_code

    def join_status(self) -> int:
        self.join(10)
        return self.status


def _get_in_thread(url: str, *, delay_s: float) -> _Later:
    later = _Later(url, delay_s)
    later.start()
    return later


async def test_readyz_without_the_store_check_ignores_a_dead_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``/readyz?store=0`` (a deployment's readiness probe) is about this node only: draining or not."""
    node = create_app(Settings(data_dir=tmp_path / "data"))
    await node.store.open()
    assert (await call(node, "GET", "/readyz")).status == 200

    async def unreachable() -> None:
        raise StoreUnavailable("cassandra unavailable: NoHostAvailable")

    monkeypatch.setattr(node.store, "ping", unreachable)
    assert (await call(node, "GET", "/readyz")).status == 503
    assert (await call(node, "GET", "/readyz?store=0")).status == 200
    node.drain.begin()
    assert (await call(node, "GET", "/readyz?store=0")).status == 503
    await node.store.close()
