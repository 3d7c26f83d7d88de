"""Run ``headwater serve`` as a real process on a free loopback port, for end-to-end tests and benches.

``wait_until_answers`` and ``stop_server`` are the start-up wait and the stop of any such server
process (``bench.collapse_server`` and ``bench.blocking`` start their own).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_answers(
    url: str,
    proc: subprocess.Popen[bytes],
    *,
    timeout_s: float = 20.0,
    interval_s: float = 0.1,
    request_timeout_s: float = 1.0,
) -> bool:
    """True once a GET of ``url`` answers 200; False as soon as ``proc`` has exited or ``timeout_s``
    has passed. A transport error (refused while the server starts, a request over
    ``request_timeout_s``) counts as no answer; the next GET goes ``interval_s`` later."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=request_timeout_s).status_code == 200:
                return True
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(interval_s)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, up to 10 s to exit, then SIGKILL; nothing if it has exited already."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@dataclass(frozen=True, slots=True)
class Origin:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path


def serve_argv(port: int, *args: str) -> list[str]:
    """The command line of a ``headwater serve`` on 127.0.0.1:``port`` logging warnings only."""
    head = [sys.executable, "-m", "services.cli", "serve", "--port", str(port)]
    return [*head, "--log-level", "warning", *args]


@contextlib.contextmanager
def running_origin(
    data_dir: Path,
    *,
    port: int | None = None,
    extra_env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
) -> Iterator[Origin]:
    port = port or free_port()
    log_path = data_dir / "headwater.log"
    env = {**os.environ, **(extra_env or {})}
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            serve_argv(port, "--data-dir", str(data_dir), *args),
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        if not wait_until_answers(f"{base}/healthz", proc):
            raise RuntimeError(f"headwater serve did not start: {log_path.read_text()[-2000:]}")
        yield Origin(base_url=base, process=proc, log_path=log_path)
    finally:
        stop_server(proc)
