"""A real local cluster for tests: ``running_cluster`` starts it with the same runner as
``headwater cluster up`` (services/cluster/runner.py), on free loopback ports, and stops it after.

    with running_cluster(tmp_path, ingest=1, packagers=2, memcached=1, cassandra=cassandra_server) as c:
        httpx.get(f"{c.front_url}/healthz")
        c.kill("packager-1")   # SIGKILL, a crash
        c.start("packager-1")  # back, ready

Pass the session's ``CassandraServer`` (tests/integration/conftest.py ``cassandra_server``) to share it
(the cluster gets its own keyspace); without one the runner starts a Cassandra of its own (~15 s).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from services.cluster import topology as topo
from services.cluster.runner import LocalCluster, Options
from tests.integration.servers import CassandraServer, free_ports


@dataclass(frozen=True, slots=True)
class Cluster:
    runner: LocalCluster

    @property
    def topology(self) -> topo.Topology:
        return self.runner.topology

    @property
    def front_url(self) -> str:
        return self.runner.front_url

    @property
    def node_urls(self) -> dict[str, str]:
        """Every Headwater node's base URL by name (``ingest-1``, ``packager-2``, ...)."""
        return {node.name: self.runner.node_url(node.name) for node in self.topology.nodes}

    def pids(self) -> dict[str, int]:
        """The pids of the running processes (nodes and nginx) by name."""
        return self.runner.pids()

    def kill(self, name: str) -> None:
        """SIGKILL a node (Headwater or memcached) and wait until it is gone."""
        self.runner.kill(name)

    def start(self, name: str) -> None:
        """Start a node again (same port and arguments) and wait until it is ready."""
        self.runner.start_node(name)


@contextlib.contextmanager
def running_cluster(
    tmp_path: Path,
    *,
    ingest: int = 2,
    packagers: int = 3,
    memcached: int = 2,
    cassandra: CassandraServer | None = None,
    log_level: str = "warning",
) -> Iterator[Cluster]:
    """Start a cluster under ``tmp_path / "cluster"``, yield it, stop everything it started."""
    shared = None
    if cassandra is not None:
        keyspace = f"c_{uuid.uuid4().hex[:16]}"
        shared = topo.Cassandra(port=cassandra.port, storage_port=cassandra.storage_port, keyspace=keyspace)
    ports = free_ports(ingest + packagers + memcached + 3)  # + front + Cassandra's CQL and storage ports
    topology = topo.sized(
        ingest=ingest, packagers=packagers, memcached=memcached, ports=ports, cassandra=shared
    )
    options = Options(run_dir=tmp_path / "cluster", log_level=log_level, manage_cassandra=cassandra is None)
    runner = LocalCluster(topology, options, say=lambda line: None)
    runner.up()
    try:
        yield Cluster(runner)
    finally:
        runner.down()
