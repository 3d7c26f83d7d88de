"""The cluster's node list: which Headwater nodes (ingest, packager), memcached nodes and Cassandra node
exist and where they listen, plus the front's port. Pure: no I/O beyond parsing a JSON text.

The same ``Topology`` feeds the local runner (``headwater cluster up``) and the nginx front config
(``services/cluster/nginx_conf.py``), and is meant to be the input of a Kubernetes deployment too. It is
stored as a small JSON document (``deploy/cluster.json`` is the default one)::

    {
      "front": {"port": 8080},
      "cassandra": {"host": "127.0.0.1", "port": 9142, "storage_port": 7100, "keyspace": "headwater"},
      "memcached": [{"name": "memcached-1", "port": 11311}],
      "ingest": [{"name": "ingest-1", "port": 8101}],
      "packagers": [{"name": "packager-1", "port": 8201}]
    }

``host`` may be given on every node (default ``127.0.0.1``). Packagers also listen for commit
announcements on UDP at their HTTP port, so every node is told the packager list.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

Role = Literal["ingest", "packager", "memcached"]
LOOPBACK = "127.0.0.1"

_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")  # a DNS label: file names, nginx, Kubernetes all accept it
_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")  # a host name or an IPv4 address
_KEYSPACE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,47}")


class TopologyError(ValueError):
    """The topology document is malformed or inconsistent; the message names the offending field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    """One listening server of the cluster (a Headwater node or a memcached node)."""

    name: str
    role: Role
    port: int
    host: str = LOOPBACK

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Cassandra:
    """The Cassandra node: CQL port, inter-node (storage) port, and the keyspace the nodes share."""

    host: str = LOOPBACK
    port: int = 9142
    storage_port: int = 7100
    keyspace: str = "headwater"


@dataclass(frozen=True, slots=True, kw_only=True)
class Topology:
    ingest: tuple[Node, ...]
    packagers: tuple[Node, ...]
    memcached: tuple[Node, ...] = ()
    cassandra: Cassandra = field(default_factory=Cassandra)
    front_port: int = 8080

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def nodes(self) -> tuple[Node, ...]:
        """The Headwater nodes (ingest first, then packagers), in start order."""
        return self.ingest + self.packagers

    def node(self, name: str) -> Node:
        for node in (*self.nodes, *self.memcached):
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes)
        raise KeyError(f"no node {name!r} in the topology (nodes: {known})")

    def with_front_port(self, port: int) -> Topology:
        return replace(self, front_port=port)


def serve_args(topology: Topology, node: Node, *, data_dir: Path, log_level: str = "info") -> list[str]:
    """The ``headwater serve`` arguments of one Headwater node (everything after ``serve``)."""
    if node.role == "memcached":
        raise ValueError(f"{node.name} is a memcached node, not a Headwater node")
    cassandra = topology.cassandra
    return [
        "--role", node.role,
        "--host", node.host,
        "--port", str(node.port),
        "--store", "cassandra",
        "--cassandra", cassandra.host,
        "--cassandra-port", str(cassandra.port),
        "--keyspace", cassandra.keyspace,
        "--memcached", ",".join(m.address for m in topology.memcached),
        "--packagers", ",".join(p.address for p in topology.packagers),
        "--data-dir", str(data_dir),
        "--log-level", log_level,
    ]  # fmt: skip


def sized(
    *,
    ingest: int,
    packagers: int,
    memcached: int,
    ports: Iterable[int],
    front_port: int | None = None,
    cassandra: Cassandra | None = None,
) -> Topology:
    """A loopback topology of the given size with ports taken in order from ``ports`` (front first
    unless given, then memcached, ingest, packagers; then Cassandra's two unless given)."""
    pool = list(ports)
    needed = memcached + ingest + packagers + (front_port is None) + 2 * (cassandra is None)
    if len(pool) < needed:
        raise ValueError(f"{needed} ports needed, {len(pool)} given")
    take = iter(pool)

    def group(role: Role, count: int) -> tuple[Node, ...]:
        return tuple(Node(name=f"{role}-{i}", role=role, port=next(take)) for i in range(1, count + 1))

    front = front_port if front_port is not None else next(take)
    mc = group("memcached", memcached)
    ing = group("ingest", ingest)
    pkg = group("packager", packagers)
    if cassandra is None:
        cassandra = Cassandra(port=next(take), storage_port=next(take))
    return Topology(ingest=ing, packagers=pkg, memcached=mc, cassandra=cassandra, front_port=front)


# -- JSON -------------------------------------------------------------------------------------------


def loads(text: str) -> Topology:
    """Parse a topology document (see the module docstring); TopologyError says what is wrong."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TopologyError(f"not JSON: {exc}") from exc
    return from_dict(doc)


def load(path: Path) -> Topology:
    try:
        text = path.read_text()
    except OSError as exc:
        raise TopologyError(f"cannot read topology {path}: {exc.strerror or exc}") from exc
    try:
        return loads(text)
    except TopologyError as exc:
        raise TopologyError(f"{path}: {exc}") from exc


def from_dict(doc: object) -> Topology:
    top = _mapping(
        doc, "topology", required={"ingest", "packagers"}, optional={"front", "cassandra", "memcached"}
    )
    front = _mapping(top.get("front", {}), "front", optional={"port"})
    cass = _mapping(
        top.get("cassandra", {}), "cassandra", optional={"host", "port", "storage_port", "keyspace"}
    )
    default = Cassandra()
    return Topology(
        ingest=_nodes(top["ingest"], "ingest", "ingest"),
        packagers=_nodes(top["packagers"], "packagers", "packager"),
        memcached=_nodes(top.get("memcached", []), "memcached", "memcached"),
        cassandra=Cassandra(
            host=_str(cass, "host", "cassandra", default.host),
            port=_int(cass, "port", "cassandra", default.port),
            storage_port=_int(cass, "storage_port", "cassandra", default.storage_port),
            keyspace=_str(cass, "keyspace", "cassandra", default.keyspace),
        ),
        front_port=_int(front, "port", "front", 8080),
    )


def to_dict(topology: Topology) -> dict[str, Any]:
    def nodes(group: tuple[Node, ...]) -> list[dict[str, Any]]:
        return [{"name": n.name, "host": n.host, "port": n.port} for n in group]

    c = topology.cassandra
    return {
        "front": {"port": topology.front_port},
        "cassandra": {"host": c.host, "port": c.port, "storage_port": c.storage_port, "keyspace": c.keyspace},
        "memcached": nodes(topology.memcached),
        "ingest": nodes(topology.ingest),
        "packagers": nodes(topology.packagers),
    }


def dumps(topology: Topology) -> str:
    return json.dumps(to_dict(topology), indent=2) + "\n"


def _mapping(
    value: object,
    where: str,
    *,
    required: AbstractSet[str] = frozenset(),
    optional: AbstractSet[str] = frozenset(),
) -> Mapping[str, object]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise TopologyError(f"{where}: expected an object, got {type(value).__name__}")
    missing = sorted(required - value.keys())
    if missing:
        raise TopologyError(f"{where}: missing {', '.join(missing)}")
    unknown = sorted(value.keys() - required - optional)
    if unknown:
        raise TopologyError(f"{where}: unknown field(s) {', '.join(unknown)}")
    return value


def _nodes(value: object, where: str, role: Role) -> tuple[Node, ...]:
    if not isinstance(value, list):
        raise TopologyError(f"{where}: expected a list of nodes")
    nodes = []
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        entry = _mapping(item, at, required={"port"}, optional={"name", "host"})
        nodes.append(
            Node(
                name=_str(entry, "name", at, f"{role}-{i + 1}"),
                role=role,
                port=_int(entry, "port", at, 0),
                host=_str(entry, "host", at, LOOPBACK),
            )
        )
    return tuple(nodes)


def _str(doc: Mapping[str, object], key: str, where: str, default: str) -> str:
    value = doc.get(key, default)
    if not isinstance(value, str):
        raise TopologyError(f"{where}.{key}: expected a string, got {value!r}")
    return value


def _int(doc: Mapping[str, object], key: str, where: str, default: int) -> int:
    value = doc.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise TopologyError(f"{where}.{key}: expected an integer, got {value!r}")
    return value


# -- validation -------------------------------------------------------------------------------------


def _validate(topology: Topology) -> None:
    if not topology.ingest:
        raise TopologyError("ingest: at least one ingest node is needed")
    if not topology.packagers:
        raise TopologyError("packagers: at least one packager node is needed")
    _validate_names(topology)
    c = topology.cassandra
    if not _KEYSPACE.fullmatch(c.keyspace):
        raise TopologyError(
            f"cassandra.keyspace {c.keyspace!r}: letters, digits, '_' (letter first, at most 48)"
        )
    seen: dict[tuple[str, int], str] = {}
    for where, host, port in _listeners(topology):
        if not _HOST.fullmatch(host):
            raise TopologyError(f"{where}: bad host {host!r}")
        if not 1 <= port <= 65535:
            raise TopologyError(f"{where}: port {port} is not in 1..65535")
        if (host, port) in seen:
            raise TopologyError(f"{where}: {host}:{port} is also used by {seen[(host, port)]}")
        seen[(host, port)] = where


def _validate_names(topology: Topology) -> None:
    groups: tuple[tuple[tuple[Node, ...], Role], ...] = (
        (topology.ingest, "ingest"),
        (topology.packagers, "packager"),
        (topology.memcached, "memcached"),
    )
    names: set[str] = set()
    for group, role in groups:
        for node in group:
            if node.role != role:
                raise TopologyError(f"{node.name}: role {node.role!r} listed among the {role} nodes")
            if not _NAME.fullmatch(node.name):
                raise TopologyError(f"{node.name!r}: a node name is a DNS label (a-z, 0-9, '-')")
            if node.name in names:
                raise TopologyError(f"{node.name}: node name used twice")
            names.add(node.name)


def _listeners(topology: Topology) -> Iterator[tuple[str, str, int]]:
    yield "front", LOOPBACK, topology.front_port
    c = topology.cassandra
    yield "cassandra (CQL)", c.host, c.port
    yield "cassandra (storage)", c.host, c.storage_port
    for node in (*topology.memcached, *topology.nodes):
        yield node.name, node.host, node.port
