"""The front's nginx.conf: the routing rules are there, nginx accepts the file (``nginx -t``), and a
real nginx running it routes to stand-in nodes as intended (channel stickiness, failover)."""

from __future__ import annotations

import contextlib
import http.server
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.cluster import nginx_conf
from services.cluster import topology as topo
from services.cluster.runner import NGINX
from tests.integration.servers import free_ports


def _topology(ports: list[int] | range = range(8100, 8120)) -> topo.Topology:
    return topo.sized(ingest=2, packagers=3, memcached=2, ports=ports)


def _conf(tmp_path: Path, topology: topo.Topology) -> Path:
    for name in nginx_conf.TEMP_PATHS:
        (tmp_path / "temp" / name).mkdir(parents=True, exist_ok=True)
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_conf.render(topology, run_dir=tmp_path, run_as_root=os.geteuid() == 0))
    return conf


def _block(text: str, header: str) -> str:
    """The body of the ``header { ... }`` block (no nested blocks inside the ones looked at)."""
    start = text.index(header + " {") + len(header) + 2
    return text[start : text.index("}", start)]


def test_rules() -> None:
    topology = _topology()
    text = nginx_conf.render(topology, run_dir=Path("/run/hw"))
    assert 'map $uri $channel {\n        ~^/live/(?<ch>[^/]+)/ $ch;\n        default "";\n    }' in text
    packagers = _block(text, "upstream packagers")
    assert packagers.strip().startswith("hash $channel consistent;")
    for node in topology.packagers:
        assert f"server {node.address} max_fails=1 fail_timeout=2s;" in packagers
    assert "keepalive 64;" in packagers
    ingest = _block(text, "upstream ingest")
    assert "hash" not in ingest and "keepalive 32;" in ingest
    assert [line.split()[1] for line in ingest.splitlines() if "server " in line] == [
        n.address for n in topology.ingest
    ]
    nodes = _block(text, "upstream nodes")
    assert [line.split()[1] for line in nodes.splitlines() if "server " in line] == [
        n.address for n in topology.nodes
    ]
    live = _block(text, "location /live/")
    assert "proxy_pass http://packagers;" in live
    assert "proxy_buffering off;" in live
    assert "proxy_next_upstream error timeout http_502 http_504;" in live
    assert "proxy_next_upstream_tries 3;" in live
    read_timeout = int(live.split("proxy_read_timeout ")[1].split("s;")[0])
    assert read_timeout >= 30
    objects = _block(text, "location /ingest/")
    for rule in (
        "proxy_pass http://ingest;",
        "proxy_request_buffering on;",
        "proxy_ignore_client_abort on;",
        "proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;",
    ):
        assert rule in objects
    streams = _block(text, "location ~ ^/ingest/.*Streams\\(")
    for rule in (
        "proxy_pass http://ingest;",
        "proxy_request_buffering off;",
        "proxy_ignore_client_abort on;",
        "client_max_body_size 0;",
    ):
        assert rule in streams
    assert "proxy_next_upstream" not in streams
    assert "proxy_pass http://nodes;" in _block(text, "location /")
    server = text[text.index("    server {") :]
    for rule in (
        f"listen 127.0.0.1:{topology.front_port};",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "proxy_set_header Host $http_host;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_connect_timeout 500ms;",
        "add_header X-Upstream $upstream_addr always;",
    ):
        assert rule in server
    # Header settings only at server level: one proxy_set_header in a location would drop them all.
    assert text.count("proxy_set_header") == server[: server.index("location")].count("proxy_set_header")
    assert "access_log off;" in text
    assert "error_log /run/hw/error.log" in text and "pid /run/hw/nginx.pid;" in text
    assert "user root;" not in text
    assert nginx_conf.render(topology, run_dir=Path("/x"), run_as_root=True).count("user root;") == 1


def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    conf = _conf(tmp_path, _topology())
    done = subprocess.run(
        [NGINX, "-t", "-p", f"{tmp_path}/", "-c", str(conf), "-e", str(tmp_path / "error.log")],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


class _Backend(http.server.ThreadingHTTPServer):
    """A stand-in node answering every GET with its name and the X-Forwarded-For it got."""

    daemon_threads = True

    def __init__(self, port: int, name: str) -> None:
        self.name = name
        self.connections: set[socket.socket] = set()
        self.bodies: list[bytes] = []
        self.crash_on_body = False
        self.first_chunk = threading.Event()
        super().__init__(("127.0.0.1", port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections.add(request)
        super().process_request(request, client_address)

    def kill(self) -> None:
        """Like a crashed process: stop listening and cut the kept-alive connections too."""
        self.shutdown()
        self.server_close()
        for connection in self.connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Backend

    def do_GET(self) -> None:
        body = f"{self.server.name} {self.headers.get('X-Forwarded-For')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:
        self.do_POST()

    def do_POST(self) -> None:
        """Records the body; a crashing backend takes it whole and dies before answering."""
        if self.headers.get("Transfer-Encoding") == "chunked":  # streamed through: note the 1st chunk
            size = int(self.rfile.readline(), 16)
            self.server.bodies.append(self.rfile.read(size))
            self.server.first_chunk.set()
            self.close_connection = True
            return
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.bodies.append(body)
        if self.server.crash_on_body:
            self.connection.shutdown(socket.SHUT_RDWR)  # like a SIGKILL: no answer at all
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.server.name)))
        self.end_headers()
        self.wfile.write(self.server.name.encode())

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def _backend(port: int, name: str) -> Iterator[_Backend]:
    server = _Backend(port, name)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.kill()
        thread.join()


@contextlib.contextmanager
def _nginx(tmp_path: Path, topology: topo.Topology) -> Iterator[str]:
    conf = _conf(tmp_path, topology)
    with (tmp_path / "nginx.out").open("wb") as out:
        proc = subprocess.Popen(
            [NGINX, "-p", f"{tmp_path}/", "-c", str(conf), "-e", str(tmp_path / "error.log")],
            stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{topology.front_port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait(url: str) -> None:
    for _ in range(100):
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=1)
            return
        time.sleep(0.05)
    pytest.fail(f"{url} did not answer")


def test_front_routes_by_channel_and_fails_over(tmp_path: Path) -> None:
    topology = _topology(free_ports(10))
    with contextlib.ExitStack() as stack:
        backends = {n.name: stack.enter_context(_backend(n.port, n.name)) for n in topology.nodes}
        front = stack.enter_context(_nginx(tmp_path, topology))
        _wait(f"{front}/healthz")
        with httpx.Client(timeout=5) as client:

            def served_by(path: str) -> str:
                response = client.get(f"{front}{path}")
                assert response.status_code == 200, response.text
                name, forwarded_for = response.text.split()
                assert forwarded_for == "127.0.0.1"
                upstream = response.headers["x-upstream"].split(", ")[-1]  # the one that answered
                assert upstream == topology.node(name).address
                return name

            channels = [f"ch{i}" for i in range(30)]
            owner = {ch: served_by(f"/live/{ch}/hls/index.m3u8") for ch in channels}
            assert set(owner.values()) == {n.name for n in topology.packagers}  # spread over all three
            for ch in channels:  # sticky: every URL of a channel goes to its packager
                assert served_by(f"/live/{ch}/media/v/0.m4s") == owner[ch]
            assert {served_by(f"/ingest/{ch}/x") for ch in channels[:6]} == {n.name for n in topology.ingest}
            assert {served_by("/healthz") for _ in range(10)} == {n.name for n in topology.nodes}

            victim = owner["ch0"]
            backends[victim].kill()
            moved = {ch: served_by(f"/live/{ch}/hls/index.m3u8") for ch in channels}  # no error at all
            assert victim not in moved.values()
            # only the dead packager's channels moved (consistent hashing)
            assert all(moved[ch] == owner[ch] for ch in channels if owner[ch] != victim)


def _chunked(first: bytes, rest: bytes, go: threading.Event) -> Iterator[bytes]:
    """A chunked request body: ``first``, then ``rest`` once ``go`` is set (or after 3 s)."""
    yield first
    go.wait(3)
    yield rest


@pytest.mark.parametrize("method", ["PUT", "POST"])  # POST: not idempotent to nginx, told it is here
def test_front_redelivers_an_object_whose_ingest_node_dies(tmp_path: Path, method: str) -> None:
    """A per-segment PUT/POST is taken whole by the front, then delivered; a node that dies before
    answering costs nothing: the same body goes to the next ingest node."""
    topology = _topology(free_ports(10))
    first, second = topology.ingest
    body = bytes(range(256)) * 4096  # 1 MiB: past the in-memory buffer, so from a temp file
    at_once = threading.Event()
    at_once.set()
    crashed = 0
    with contextlib.ExitStack() as stack:
        backends = {n.name: stack.enter_context(_backend(n.port, n.name)) for n in topology.nodes}
        backends[first.name].crash_on_body = True
        front = stack.enter_context(_nginx(tmp_path, topology))
        _wait(f"{front}/healthz")
        with httpx.Client(timeout=10) as client:
            for _ in range(2):  # round robin: one of the two goes to the dying node
                for backend in backends.values():
                    backend.bodies.clear()
                answer = client.request(
                    method, f"{front}/ingest/ch/chunk-stream0-00001.m4s",
                    content=_chunked(body[:1000], body[1000:], at_once),
                )  # fmt: skip
                assert answer.status_code == 200, answer.text
                assert answer.text == second.name  # the survivor answered
                assert backends[second.name].bodies == [body]  # the whole body, once
                assert backends[first.name].bodies in ([], [body])
                crashed += len(backends[first.name].bodies)
    assert crashed == 1, "round robin never picked the dying node"


def test_front_streams_a_long_running_post_through(tmp_path: Path) -> None:
    """``Streams(<name>)`` is a whole track in one POST: its bytes reach the node as they are sent
    (the rest of the body is held back until the first chunk has arrived, or 3 s)."""
    topology = _topology(free_ports(10))
    with contextlib.ExitStack() as stack:
        backends = {n.name: stack.enter_context(_backend(n.port, n.name)) for n in topology.nodes}
        ingest = [backends[n.name] for n in topology.ingest]
        front = stack.enter_context(_nginx(tmp_path, topology))
        _wait(f"{front}/healthz")
        arrived = threading.Event()

        def watch() -> None:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not arrived.is_set():
                if any(backend.first_chunk.is_set() for backend in ingest):
                    arrived.set()
                time.sleep(0.01)

        watcher = threading.Thread(target=watch)
        watcher.start()
        with httpx.Client(timeout=10) as client, contextlib.suppress(httpx.HTTPError):
            # the stand-in hangs up after the first chunk
            client.post(
                f"{front}/ingest/ch/Streams(video.cmfv)",
                content=_chunked(b"ftyp" * 10, b"moof" * 10, arrived),
            )
        watcher.join()
        assert arrived.is_set(), "the first chunk did not reach a node before the body ended"
        assert [b for backend in ingest for b in backend.bodies] == [b"ftyp" * 10]
