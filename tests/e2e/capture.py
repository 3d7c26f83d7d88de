"""A recording HTTP sink: what does an encoder actually send?

Accepts every POST/PUT/DELETE/GET on 127.0.0.1, reads bodies whether sized or chunked, and records per
request the method, path, headers, body size, HTTP chunk count and the top-level ISO-BMFF boxes with
their arrival time (so a long-running chunked POST shows fragments arriving one by one).

    python -m tests.e2e.capture --port 8089 [--save-dir DIR] [--answer 'chunk-=412']
    # prints one JSON line per request
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO

Responder = Callable[[str, str], int | None]  # (method, path) -> status to answer, None for the default
_HEADER_SIZE = 8
_LARGE_SIZE = 1
# Boxes kept whole so their fields can be read; everything else (mdat) is only counted.
_INSPECTED = frozenset({"ftyp", "styp", "moov", "moof", "prft", "sidx", "emsg"})


@dataclass(frozen=True, slots=True, kw_only=True)
class BoxInfo:
    """One top-level box of a request body."""

    type: str
    size: int
    at_s: float  # when its last byte arrived, seconds after the request line
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CapturedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body_bytes: int
    http_chunks: int  # 0 when the body had a Content-Length
    started_at: float  # Unix time of the request line
    duration_s: float
    boxes: tuple[BoxInfo, ...] = field(default=())
    complete: bool = True  # False: the connection dropped before the body ended
    client_port: int = 0  # requests with the same port came over one (keep-alive) connection
    status: int = 0  # what the sink answered (0: nothing, the body never ended)

    def box_types(self) -> list[str]:
        return [box.type for box in self.boxes]


def _brands(payload: bytes) -> str:
    major = payload[0:4].decode("latin-1")
    compatible = [payload[i : i + 4].decode("latin-1") for i in range(8, len(payload) - 3, 4)]
    return f"major={major} compatible={','.join(compatible)}"


def _children(payload: bytes) -> Iterator[tuple[str, bytes]]:
    offset = 0
    while offset + _HEADER_SIZE <= len(payload):
        size, kind = struct.unpack_from(">I4s", payload, offset)
        if size < _HEADER_SIZE:
            return
        yield kind.decode("latin-1"), payload[offset + _HEADER_SIZE : offset + size]
        offset += size


def _moof_detail(payload: bytes) -> str:
    parts: list[str] = []
    for kind, body in _children(payload):
        if kind == "mfhd":
            parts.append(f"seq={struct.unpack_from('>I', body, 4)[0]}")
        elif kind == "traf":
            for child, data in _children(body):
                version = data[0]
                if child == "tfhd":
                    parts.append(f"track={struct.unpack_from('>I', data, 4)[0]}")
                elif child == "tfdt":
                    fmt = ">Q" if version == 1 else ">I"
                    parts.append(f"tfdt={struct.unpack_from(fmt, data, 4)[0]}")
                elif child == "trun":
                    parts.append(f"samples={struct.unpack_from('>I', data, 4)[0]}")
    return " ".join(parts)


def _prft_detail(payload: bytes) -> str:
    version, flags = payload[0], int.from_bytes(payload[1:4], "big")
    track_id, ntp_seconds, ntp_fraction = struct.unpack_from(">III", payload, 4)
    media_time = struct.unpack_from(">Q" if version == 1 else ">I", payload, 16)[0]
    unix_s = ntp_seconds - 2_208_988_800 + ntp_fraction / 2**32
    return f"flags={flags} track={track_id} utc={unix_s:.3f} media_time={media_time}"


def _moov_detail(payload: bytes) -> str:
    kinds = [kind for kind, _ in _children(payload)]
    return f"children={','.join(kinds)}"


def describe_box(kind: str, payload: bytes) -> str:
    """A short human-readable summary of the fields an ingest cares about."""
    try:
        if kind in ("ftyp", "styp"):
            return _brands(payload)
        if kind == "moof":
            return _moof_detail(payload)
        if kind == "prft":
            return _prft_detail(payload)
        if kind == "moov":
            return _moov_detail(payload)
        if kind == "sidx":
            timescale = struct.unpack_from(">I", payload, 8)[0]
            return f"timescale={timescale}"
    except (struct.error, IndexError):
        return "truncated"
    return ""


class BoxScanner:
    """Push bytes in, get completed top-level boxes out (never buffers mdat payloads)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._skip_type = ""
        self._skip_size = 0
        self._skip_left = 0
        self.trailing_bytes = 0

    def feed(self, data: bytes, at_s: float) -> list[BoxInfo]:
        done: list[BoxInfo] = []
        view = memoryview(data)
        if self._skip_left:
            taken = min(self._skip_left, len(view))
            self._skip_left -= taken
            view = view[taken:]
            if not self._skip_left:
                done.append(BoxInfo(type=self._skip_type, size=self._skip_size, at_s=at_s))
        self._buffer += view
        while len(self._buffer) >= _HEADER_SIZE and not self._skip_left:
            size, raw_kind = struct.unpack_from(">I4s", self._buffer, 0)
            kind = raw_kind.decode("latin-1")
            header = _HEADER_SIZE
            if size == _LARGE_SIZE:
                if len(self._buffer) < 16:
                    break
                size = struct.unpack_from(">Q", self._buffer, 8)[0]
                header = 16
            if size < header:  # size 0 ("to end of file") or garbage: stop parsing
                self.trailing_bytes += len(self._buffer)
                self._buffer.clear()
                break
            if kind not in _INSPECTED and len(self._buffer) < size:
                self._skip_type, self._skip_size = kind, size
                self._skip_left = size - len(self._buffer)
                self._buffer.clear()
                break
            if len(self._buffer) < size:
                break
            payload = bytes(self._buffer[header:size])
            del self._buffer[:size]
            done.append(BoxInfo(type=kind, size=size, at_s=at_s, detail=describe_box(kind, payload)))
        return done


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _CaptureHTTPServer
    _boxes: list[BoxInfo]
    _progress: tuple[int, int]  # body bytes, HTTP chunks

    def log_message(self, format: str, *args: object) -> None:
        return

    def handle(self) -> None:
        with contextlib.suppress(ConnectionError, TimeoutError):
            super().handle()

    def _read_body(self, started: float, scanner: BoxScanner, sink: BinaryIO | None) -> None:
        """Read the body, keeping ``_progress`` (bytes, chunks) and ``_boxes`` current as it arrives."""

        def take(data: bytes) -> None:
            total, chunks = self._progress
            self._progress = (total + len(data), chunks)
            self._boxes.extend(scanner.feed(data, time.monotonic() - started))
            if sink is not None:
                sink.write(data)

        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise ConnectionError("connection closed before the last chunk")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                self._progress = (self._progress[0], self._progress[1] + 1)
                data = self.rfile.read(size)
                take(data)
                if len(data) < size:
                    raise ConnectionError("body ended inside a chunk")
                self.rfile.readline(16)
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left > 0:
                data = self.rfile.read1(min(left, 65536))
                if not data:
                    break
                left -= len(data)
                take(data)
            if left:
                raise ConnectionError("body shorter than Content-Length")

    def _handle(self) -> None:
        self.server.active(+1)
        try:
            self._capture()
        finally:
            self.server.active(-1)

    def _capture(self) -> None:
        started = time.monotonic()
        started_at = time.time()
        scanner = BoxScanner()
        index = self.server.next_index()
        sink: BinaryIO | None = None
        if self.server.save_dir is not None and self.command in ("POST", "PUT"):
            safe = self.path.strip("/").replace("/", "__")[:150]
            sink = (self.server.save_dir / f"{index:05d}-{self.command}-{safe}").open("wb")
        complete = True
        self._boxes = []
        self._progress = (0, 0)
        try:
            self._read_body(started, scanner, sink)
        except (OSError, ValueError):  # the sender hung up or sent garbage framing mid-body
            complete = False
            self.close_connection = True
        finally:
            if sink is not None:
                sink.close()
        body_bytes, chunks = self._progress
        status = self.server.status_for(self.command, self.path) if complete else 0
        self.server.record(
            CapturedRequest(
                method=self.command,
                path=self.path,
                headers=dict(self.headers.items()),
                body_bytes=body_bytes,
                http_chunks=chunks,
                started_at=started_at,
                duration_s=round(time.monotonic() - started, 3),
                boxes=tuple(self._boxes),
                complete=complete,
                client_port=self.client_address[1],
                status=status,
            )
        )
        if not complete:
            return
        try:
            body = b"" if status < 400 else f"capture sink answers {status}\n".encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # FFmpeg may hang up without reading the response
            self.close_connection = True

    do_POST = do_PUT = do_DELETE = do_GET = _handle  # noqa: N815 - http.server's dispatch names


class _CaptureHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, save_dir: Path | None, echo: bool, respond: Responder | None) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.save_dir = save_dir
        self.echo = echo
        self.respond = respond
        self.requests: list[CapturedRequest] = []
        self._lock = threading.Lock()
        self._count = 0
        self._active = 0

    def active(self, delta: int) -> None:
        with self._lock:
            self._active += delta

    def idle(self) -> bool:
        with self._lock:
            return self._active == 0

    def next_index(self) -> int:
        with self._lock:
            self._count += 1
            return self._count

    def status_for(self, method: str, path: str) -> int:
        status = self.respond(method, path) if self.respond is not None else None
        if status is not None:
            return status
        return 201 if method in ("POST", "PUT") else 200

    def record(self, request: CapturedRequest) -> None:
        with self._lock:
            self.requests.append(request)
            if self.echo:
                print(json.dumps(asdict(request)), flush=True)


@dataclass(slots=True)
class CaptureServer:
    """A running capture sink; ``requests`` grows as requests complete."""

    port: int
    _server: _CaptureHTTPServer

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[CapturedRequest]:
        """The requests completed so far (a copy), in completion order."""
        with self._server._lock:
            return list(self._server.requests)

    def settle(self, timeout_s: float = 5.0) -> list[CapturedRequest]:
        """Wait until no request is in progress (e.g. after the sender exited); return them all."""
        deadline = time.monotonic() + timeout_s
        while not self._server.idle() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.requests


@contextmanager
def capture_server(
    *, port: int = 0, save_dir: Path | None = None, respond: Responder | None = None
) -> Iterator[CaptureServer]:
    """Run a capture sink in a background thread for the duration of the ``with`` block.

    ``respond(method, path)`` may return a status code to answer instead of 201/200 (None: default).
    """
    server = _CaptureHTTPServer(port, save_dir, echo=False, respond=respond)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield CaptureServer(port=server.server_address[1], _server=server)
    finally:
        server.shutdown()
        server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--save-dir", type=Path, default=None)
    parser.add_argument("--seconds", type=float, default=600.0, help="stop after this long")
    parser.add_argument(
        "--answer", action="append", default=[], metavar="REGEX=STATUS",
        help="answer STATUS to requests whose path matches REGEX (repeatable; first match wins)",
    )  # fmt: skip
    args = parser.parse_args()
    rules = [(re.compile(rule.rpartition("=")[0]), int(rule.rpartition("=")[2])) for rule in args.answer]

    def respond(method: str, path: str) -> int | None:
        return next((status for pattern, status in rules if pattern.search(path)), None)

    if args.save_dir is not None:
        args.save_dir.mkdir(parents=True, exist_ok=True)
    server = _CaptureHTTPServer(args.port, args.save_dir, echo=True, respond=respond)
    timer = threading.Timer(args.seconds, server.shutdown)
    timer.daemon = True
    timer.start()
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
