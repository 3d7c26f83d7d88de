"""Small process helpers shared by the bench modules: versions, tail of a log, stopping a child."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def tail(path: Path, limit: int = 2000) -> str:
    """The last ``limit`` characters of a log file ('' if it does not exist)."""
    try:
        return path.read_text(errors="replace")[-limit:]
    except FileNotFoundError:
        return ""


def command_output(argv: list[str], *, timeout_s: float = 10.0) -> str:
    """stdout + stderr of a short command, '' if it cannot run (for version lines; never raises)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout + done.stderr).strip()


def wait_for_port(port: int, proc: subprocess.Popen[bytes], *, timeout_s: float = 10.0) -> bool:
    """True once 127.0.0.1:``port`` accepts connections; False if ``proc`` exited or time ran out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


def stop_process_group(
    proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout_s: float = 5.0
) -> None:
    """Stop a child started with ``start_new_session=True``: ``sig``, then SIGKILL to its group.

    The group is the child's own session (its pid, still alive when SIGKILL goes out), so this reaches
    exactly what we started (e.g. the nginx master and its worker) and nothing else.
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout_s)
