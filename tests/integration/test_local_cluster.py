"""The local cluster (``headwater cluster up|down``, services/cluster/) on the session's Cassandra: the
front answers the same paths as ``headwater serve``, a stream pushed through it plays through it, a
killed packager's channels move to another packager at once, and ``down`` leaves no process behind."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import m3u8

from services.cluster import topology as topo
from services.cluster.probes import port_in_use, start_time
from services.cluster.runner import REPO_ROOT
from services.shared.media.synthetic import make_fragment, make_header
from tests.cluster.harness import Cluster, running_cluster
from tests.integration.servers import CassandraServer, free_ports

TS = 90_000
FRAGMENT_TICKS = 2 * TS


def _cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "cluster", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def test_cli_up_status_down_leaves_nothing_behind(tmp_path: Path, cassandra_server: CassandraServer) -> None:
    shared = topo.Cassandra(
        port=cassandra_server.port, storage_port=cassandra_server.storage_port, keyspace="cli"
    )
    topology = topo.sized(ingest=1, packagers=2, memcached=1, ports=free_ports(5), cassandra=shared)
    (tmp_path / "topology.json").write_text(topo.dumps(topology))
    run_dir = tmp_path / "run"
    common = ("--run-dir", str(run_dir))
    up = _cli("up", "--topology", str(tmp_path / "topology.json"), "--external-cassandra", *common,
              "--log-level", "warning")  # fmt: skip
    front = f"http://127.0.0.1:{topology.front_port}"
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert up.stdout.splitlines()[-1].startswith(front)
        assert httpx.get(f"{front}/healthz").status_code == 200
        assert httpx.get(f"{front}/readyz").status_code == 200
        unknown = httpx.get(f"{front}/live/x/hls/index.m3u8")
        assert unknown.status_code == 404, unknown.text
        again = _cli("up", "--topology", str(tmp_path / "topology.json"), "--external-cassandra", *common)
        assert again.returncode == 1 and "already running" in again.stderr
        status = _cli("status", *common)
        assert status.returncode == 0, status.stdout + status.stderr
        state = json.loads((run_dir / "state.json").read_text())
        procs = {name: (p["pid"], p["start_time"]) for name, p in state["processes"].items()}
        assert set(procs) == {"ingest-1", "packager-1", "packager-2", "nginx"}
        mc_pid = int((run_dir / "memcached" / f"{topology.memcached[0].port}.pid").read_text())
    finally:
        down = _cli("down", *common)
    assert down.returncode == 0, down.stdout + down.stderr
    assert all(start_time(pid) != started for pid, started in procs.values())
    assert start_time(mc_pid) is None
    listeners = [topology.front_port, *(n.port for n in (*topology.nodes, *topology.memcached))]
    assert not [port for port in listeners if port_in_use(port)]
    assert not (run_dir / "state.json").exists()
    assert cassandra_server.is_ready()  # not the cluster's: left running
    assert _cli("status", *common).returncode == 3


def _push(client: httpx.Client, base: str, channel: str, fragments: int) -> None:
    url = f"{base}/ingest/{channel}/v"
    assert client.put(f"{url}/init.mp4", content=make_header(track_id=1, timescale=TS)).is_success
    for n in range(fragments):
        body = make_fragment(
            track_id=1, sequence_number=n + 1, decode_time=n * FRAGMENT_TICKS,
            sample_durations=(3600,) * 50, sample_sizes=(1000 + n,) * 50,
        )  # fmt: skip
        response = client.put(f"{url}/{n}.m4s", content=body)
        assert response.is_success, response.text


def _segments(client: httpx.Client, cluster: Cluster, channel: str, *, wait: bool = True) -> int:
    """How many segments the front's HLS media playlist of the channel lists (``wait``: 0 while the
    channel has no playlist yet; else anything but 200 fails, naming the node that answered)."""
    base = f"{cluster.front_url}/live/{channel}/hls"
    master = client.get(f"{base}/index.m3u8")
    if wait and master.status_code == 404:
        return 0
    assert master.status_code == 200, (master.headers.get("x-upstream"), master.text)
    media = client.get(f"{base}/{m3u8.loads(master.text).playlists[0].uri}")
    assert media.status_code == 200, (media.headers.get("x-upstream"), media.text)
    return len(m3u8.loads(media.text).segments)


def _wait_segments(client: httpx.Client, cluster: Cluster, channel: str, count: int) -> None:
    deadline = time.monotonic() + 20
    while (seen := _segments(client, cluster, channel)) < count:
        assert time.monotonic() < deadline, f"{channel}: {seen} segments through the front, want {count}"
        time.sleep(0.2)


def test_stream_through_front_survives_a_killed_packager(
    tmp_path: Path, cassandra_server: CassandraServer
) -> None:
    with running_cluster(tmp_path, ingest=2, packagers=2, memcached=1, cassandra=cassandra_server) as cluster:
        pids = cluster.pids()
        assert set(pids) == {"ingest-1", "ingest-2", "packager-1", "packager-2", "nginx"}
        with httpx.Client(timeout=10) as client:
            _push(client, cluster.front_url, "cl", 4)
            _wait_segments(client, cluster, "cl", 3)  # the 4th segment is open until a 5th starts
            for victim in ("packager-1", "packager-2"):  # one of them owns the channel
                cluster.kill(victim)
                assert _segments(client, cluster, "cl", wait=False) == 3  # by the other one, at once
                cluster.start(victim)
                time.sleep(2.2)  # nginx sends it traffic again only after fail_timeout (2 s)
            _push(client, cluster.front_url, "cl", 6)  # duplicates of 0..3 are accepted, 4 and 5 new
            _wait_segments(client, cluster, "cl", 5)
    assert all(start_time(pid) is None for pid in pids.values())
