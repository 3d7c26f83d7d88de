"""The cluster's node list: JSON in and out, validation, the nodes' serve arguments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.cluster import topology as topo
from services.cluster.cli import DEFAULT_TOPOLOGY
from services.cluster.topology import Cassandra, Node, Topology, TopologyError


def _doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "front": {"port": 8080},
        "cassandra": {"port": 9142, "storage_port": 7100, "keyspace": "hw"},
        "memcached": [{"name": "memcached-1", "port": 11311}],
        "ingest": [{"name": "ingest-1", "port": 8101}, {"port": 8102}],
        "packagers": [{"name": "packager-1", "port": 8201}, {"name": "packager-2", "port": 8202}],
    }
    return doc | changes


def test_default_topology_file_is_the_documented_cluster() -> None:
    topology = topo.load(DEFAULT_TOPOLOGY)
    assert [n.name for n in topology.ingest] == ["ingest-1", "ingest-2"]
    assert [n.name for n in topology.packagers] == ["packager-1", "packager-2", "packager-3"]
    assert len(topology.memcached) == 2
    assert topology.front_port == 8080
    assert all(n.host == "127.0.0.1" for n in (*topology.nodes, *topology.memcached))


def test_loads_fills_defaults_and_round_trips() -> None:
    topology = topo.loads(json.dumps(_doc()))
    assert topology.ingest[1] == Node(name="ingest-2", role="ingest", port=8102, host="127.0.0.1")
    assert topology.cassandra == Cassandra(host="127.0.0.1", port=9142, storage_port=7100, keyspace="hw")
    assert topology.nodes == topology.ingest + topology.packagers
    assert topo.loads(topo.dumps(topology)) == topology


def test_minimal_document() -> None:
    topology = topo.loads('{"ingest": [{"port": 1}], "packagers": [{"port": 2}]}')
    assert topology.memcached == ()
    assert topology.front_port == 8080
    assert topology.packagers[0].name == "packager-1"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (_doc(ingest=[]), "at least one ingest node"),
        (_doc(packagers=[]), "at least one packager node"),
        (_doc(extra=1), "unknown field(s) extra"),
        ({"ingest": [{"port": 1}]}, "missing packagers"),
        (_doc(ingest=[{"port": "8101"}]), "ingest[0].port: expected an integer"),
        (_doc(ingest=[{"port": True}]), "ingest[0].port: expected an integer"),
        (_doc(ingest=[{"prot": 8101}]), "ingest[0]: missing port"),
        (_doc(ingest=[{"port": 70000}]), "port 70000 is not in 1..65535"),
        (_doc(ingest=[{"port": 8201}]), "packager-1: 127.0.0.1:8201 is also used by ingest-1"),
        (_doc(ingest=[{"port": 8080}]), "is also used by front"),
        (_doc(ingest=[{"name": "packager-1", "port": 1}]), "node name used twice"),
        (_doc(ingest=[{"name": "Ingest_1", "port": 1}]), "DNS label"),
        (_doc(ingest=[{"host": "a b", "port": 1}]), "bad host"),
        (_doc(cassandra={"keyspace": "1x"}), "cassandra.keyspace"),
        (_doc(cassandra={"port": 7100}), "also used by cassandra (CQL)"),
        (_doc(memcached={"port": 1}), "memcached: expected a list"),
        ([], "topology: expected an object"),
    ],
)
def test_invalid_documents_name_the_field(doc: object, message: str) -> None:
    with pytest.raises(TopologyError) as raised:
        topo.loads(json.dumps(doc))
    assert message in str(raised.value)


def test_not_json_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="not JSON"):
        topo.loads("{")
    with pytest.raises(TopologyError, match="cannot read topology"):
        topo.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    with pytest.raises(TopologyError, match=r"bad\.json: topology"):
        topo.load(bad)


def test_same_port_on_different_hosts_is_fine() -> None:
    topology = topo.loads(json.dumps(_doc(ingest=[{"host": "ingest-a", "port": 8201}])))
    assert topology.ingest[0].address == "ingest-a:8201"


def test_role_must_match_its_list() -> None:
    with pytest.raises(TopologyError, match="listed among the ingest nodes"):
        Topology(
            ingest=(Node(name="p", role="packager", port=1),),
            packagers=(Node(name="q", role="packager", port=2),),
        )


def test_node_lookup_and_front_port() -> None:
    topology = topo.loads(json.dumps(_doc()))
    assert topology.node("packager-2").port == 8202
    assert topology.node("memcached-1").role == "memcached"
    with pytest.raises(KeyError, match="no node 'nope'"):
        topology.node("nope")
    assert topology.with_front_port(9000).front_port == 9000


def test_serve_args_name_role_store_memcached_and_every_packager(tmp_path: Path) -> None:
    topology = topo.loads(json.dumps(_doc()))
    args = topo.serve_args(topology, topology.node("ingest-2"), data_dir=tmp_path, log_level="warning")
    flags = dict(zip(args[::2], args[1::2], strict=True))
    assert flags == {
        "--role": "ingest",
        "--host": "127.0.0.1",
        "--port": "8102",
        "--store": "cassandra",
        "--cassandra": "127.0.0.1",
        "--cassandra-port": "9142",
        "--keyspace": "hw",
        "--memcached": "127.0.0.1:11311",
        "--packagers": "127.0.0.1:8201,127.0.0.1:8202",
        "--data-dir": str(tmp_path),
        "--log-level": "warning",
    }
    packager = topo.serve_args(topology, topology.node("packager-1"), data_dir=tmp_path)
    assert packager[:2] == ["--role", "packager"]
    with pytest.raises(ValueError, match="memcached node"):
        topo.serve_args(topology, topology.node("memcached-1"), data_dir=tmp_path)


def test_sized_takes_ports_in_order() -> None:
    topology = topo.sized(ingest=1, packagers=2, memcached=1, ports=range(5000, 5010))
    assert topology.front_port == 5000
    assert [n.port for n in topology.memcached] == [5001]
    assert [n.port for n in topology.ingest] == [5002]
    assert [n.port for n in topology.packagers] == [5003, 5004]
    assert (topology.cassandra.port, topology.cassandra.storage_port) == (5005, 5006)
    shared = Cassandra(port=9042, storage_port=7000, keyspace="k")
    assert (
        topo.sized(ingest=1, packagers=1, memcached=0, ports=[1, 2, 3], cassandra=shared).cassandra == shared
    )
