"""What the router routes to, from DNS answers. Pure: the resolver is passed in.

Packagers are a StatefulSet behind a headless Service (``publishNotReadyAddresses: false``), so
``<statefulset>-<i>.<service>`` resolves exactly while pod ``i`` is ready. The router probes the
ordinals ``0 .. max_packagers - 1`` of a name template and lists the names that resolve, by name: nginx's
``hash ... consistent`` places each upstream on its ring by the server string as written, so a pod
that comes back with a new IP takes back the same channels, and scaling 3 → 4 moves about a quarter.
A packager that turns unready (draining, dead) drops out of DNS and so out of the ring; its channels
go to the next packager on the ring, exactly where nginx's own failover already sent them.

Ingest nodes (a Deployment) have no stable names and need none (round robin): the addresses of their
headless Service are the upstreams. When nothing resolves yet, a placeholder on a loopback port where
nothing listens keeps nginx's configuration valid; requests get a 502 until nodes appear.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from services.cluster.topology import Node, Topology

#: host -> its addresses (empty when it does not resolve); e.g. a wrapper of socket.getaddrinfo.
Resolver = Callable[[str], Sequence[str]]

PLACEHOLDER_HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True, kw_only=True)
class Targets:
    """One DNS reading: what the router's nginx.conf is rendered from (equal readings, equal configs)."""

    packagers: tuple[tuple[str, str], ...]  # (stable host name, the address it resolves to now)
    ingest: tuple[str, ...]  # addresses
    packager_port: int
    ingest_port: int


def split_host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r} is not host:port")
    return host, int(port)


def read(resolve: Resolver, *, packager_template: str, max_packagers: int, ingest: str) -> Targets:
    """Resolve ordinals ``0 .. max_packagers - 1`` of ``packager_template`` (``{i}`` is the ordinal,
    e.g. ``hw-packager-{i}.hw-packager.ns.svc.cluster.local:8080``) and the ingest ``host:port``."""
    packager_host, packager_port = split_host_port(packager_template)
    packagers: dict[str, str] = {}
    for i in range(max_packagers):
        name = packager_host.format(i=i)
        addresses = resolve(name)
        if addresses and name not in packagers:
            packagers[name] = min(addresses)
    ingest_host, ingest_port = split_host_port(ingest)
    return Targets(
        packagers=tuple(packagers.items()),
        ingest=tuple(sorted(set(resolve(ingest_host)))),
        packager_port=packager_port,
        ingest_port=ingest_port,
    )


def topology(targets: Targets, *, front_port: int) -> Topology:
    """The front's topology for ``targets``: packagers by name, ingest nodes by address."""
    packagers = tuple(
        Node(name=host.partition(".")[0], role="packager", host=host, port=targets.packager_port)
        for host, _ in targets.packagers
    ) or (Node(name="no-packager-yet", role="packager", host=PLACEHOLDER_HOST, port=1),)
    ingest = tuple(
        Node(name=f"ingest-{address.replace('.', '-').replace(':', '-')}", role="ingest", host=address,
             port=targets.ingest_port)
        for address in targets.ingest
    ) or (Node(name="no-ingest-yet", role="ingest", host=PLACEHOLDER_HOST, port=2),)  # fmt: skip
    return Topology(ingest=ingest, packagers=packagers, front_port=front_port)
