"""The Kubernetes router: DNS readings → the front's topology (names on the ring, addresses for ingest),
and the real process running nginx, reloading it when DNS changes, and quitting on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from services.cluster import nginx_conf
from services.cluster.runner import NGINX
from services.router import discovery
from tests.cluster.test_nginx_conf import _backend
from tests.integration.servers import free_ports

TEMPLATE = "hw-packager-{i}.hw-packager.ns.svc.cluster.local:8080"
INGEST = "hw-ingest-headless.ns.svc.cluster.local:8080"
INGEST_HOST = INGEST.partition(":")[0]


def _resolver(answers: Mapping[str, Sequence[str]]) -> discovery.Resolver:
    return lambda host: answers.get(host, ())


def _packager(i: int) -> str:
    return f"hw-packager-{i}.hw-packager.ns.svc.cluster.local"


def test_reading_lists_ready_packagers_by_name_and_ingest_by_address() -> None:
    dns = {_packager(0): ["10.244.0.7"], _packager(2): ["10.244.0.9"], INGEST_HOST: ["10.0.0.3", "10.0.0.2"]}
    targets = discovery.read(_resolver(dns), packager_template=TEMPLATE, max_packagers=4, ingest=INGEST)
    assert targets.packagers == ((_packager(0), "10.244.0.7"), (_packager(2), "10.244.0.9"))
    assert targets.ingest == ("10.0.0.2", "10.0.0.3")
    text = nginx_conf.render(discovery.topology(targets, front_port=8080), run_dir=Path("/tmp/r"))
    ring = text[text.index("upstream packagers") : text.index("upstream ingest")]
    # the ring is keyed by the server string: stable names, never the pods' addresses
    assert f"server {_packager(0)}:8080 " in ring and f"server {_packager(2)}:8080 " in ring
    assert "10.244" not in ring
    ingest = text[text.index("upstream ingest") : text.index("upstream nodes")]
    assert "server 10.0.0.2:8080 " in ingest and "server 10.0.0.3:8080 " in ingest


def test_a_packager_with_a_new_address_renders_the_same_ring() -> None:
    before: dict[str, Sequence[str]] = {
        _packager(0): ["10.244.0.7"], _packager(1): ["10.244.0.8"], INGEST_HOST: ["10.0.0.2"]
    }  # fmt: skip
    after = before | {_packager(1): ["10.244.0.42"]}
    readings = [
        discovery.read(_resolver(dns), packager_template=TEMPLATE, max_packagers=4, ingest=INGEST)
        for dns in (before, after)
    ]
    assert readings[0] != readings[1]  # a new reading: nginx is reloaded to resolve the name again
    texts = [nginx_conf.render(discovery.topology(r, front_port=8080), run_dir=Path("/r")) for r in readings]
    assert texts[0] == texts[1]


def test_nothing_resolves_yet_gives_a_valid_config_that_refuses() -> None:
    targets = discovery.read(_resolver({}), packager_template=TEMPLATE, max_packagers=4, ingest=INGEST)
    topology = discovery.topology(targets, front_port=8080)
    assert [n.address for n in topology.packagers] == ["127.0.0.1:1"]
    assert [n.address for n in topology.ingest] == ["127.0.0.1:2"]


def test_router_process_routes_and_quits_on_sigterm(tmp_path: Path) -> None:
    front, status, packager, ingest = free_ports(4)
    argv = [
        sys.executable, "-m", "services.router", "--listen", "127.0.0.1", "--port", str(front),
        "--status-port", str(status), "--packagers", f"localhost:{packager}", "--max-packagers", "1",
        "--ingest", f"localhost:{ingest}", "--refresh-s", "0.2", "--drain-s", "0.5",
        "--run-dir", str(tmp_path), "--nginx", NGINX,
    ]  # fmt: skip
    log = tmp_path / "router.log"
    with (
        _backend(packager, "packager") as p_node,
        _backend(ingest, "ingest") as i_node,
        log.open("wb") as out,
    ):
        router = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_ok(f"http://127.0.0.1:{status}/healthz")
            base = f"http://127.0.0.1:{front}"
            assert httpx.get(f"{base}/live/ch/hls/index.m3u8").text.startswith("packager")
            assert httpx.put(f"{base}/ingest/ch/v/init.mp4", content=b"header").text == "ingest"
            assert i_node.bodies == [b"header"] and p_node.name == "packager"
            router.send_signal(signal.SIGTERM)
            assert router.wait(timeout=10) == 0
        finally:
            if router.poll() is None:
                router.kill()
    assert "routing: packagers localhost; ingest 127.0.0.1" in log.read_text()
    assert not any(Path(f"/proc/{pid}").exists() for pid in _nginx_pids(tmp_path))


def _nginx_pids(run_dir: Path) -> list[int]:
    pid_file = run_dir / "nginx.pid"
    return [int(pid_file.read_text())] if pid_file.exists() else []


def _wait_ok(url: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer 200"
        time.sleep(0.1)
