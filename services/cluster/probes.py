"""Small probes of the local machine the cluster runner uses: is a process (still) the one we started,
does a port / HTTP URL / CQL server / memcached answer, what does a log end with."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import httpx

from services.cluster.topology import LOOPBACK


def start_time(pid: int) -> int | None:
    """The start time of a live (non-zombie) process in clock ticks since boot, or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    if not fields or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # field 22 of stat; fields[0] is field 3


def pid_file_alive(path: Path) -> bool:
    try:
        text = path.read_text().strip()
    except OSError:
        return False
    return text.isdigit() and start_time(int(text)) is not None


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def http_status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2.0).status_code
    except httpx.HTTPError:
        return None


# CQL native protocol v4 OPTIONS request; a server answers SUPPORTED (version 0x84, opcode 0x06).
_CQL_OPTIONS = bytes([0x04, 0, 0, 0, 0x05, 0, 0, 0, 0])
_CQL_SUPPORTED = bytes([0x84, 0, 0, 0, 0x06])


def cql_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2.0) as sock:
            sock.sendall(_CQL_OPTIONS)
            reply = b""
            while len(reply) < len(_CQL_SUPPORTED) and (chunk := sock.recv(len(_CQL_SUPPORTED) - len(reply))):
                reply += chunk
    except OSError:
        return False
    return reply == _CQL_SUPPORTED


def memcached_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2.0) as sock:
            sock.sendall(b"version\r\n")
            return sock.recv(64).startswith(b"VERSION ")
    except OSError:
        return False


def tails(*logs: str | Path | None) -> str:
    parts = []
    for log in logs:
        if log is None:
            continue
        try:
            text = Path(log).read_text(errors="replace")[-1500:]
        except OSError:
            continue
        parts.append(f"{log}:\n{text}")
    return "\n".join(parts) or "no log"
