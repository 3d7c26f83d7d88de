"""Node settings: flags and ``HEADWATER_*`` environment variables (flags win)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    store: str = "embedded"  # embedded | cassandra
    data_dir: Path = Path(".headwater-data")
    auto_create: bool = True  # HEADWATER_AUTO_CREATE
    idle_timeout_s: float = 10.0  # HEADWATER_IDLE_TIMEOUT_S: a silent sender is cut off mid-body
    header_wait_s: float = 2.0  # HEADWATER_HEADER_WAIT_S: a fragment waits for its init/MPD, then 412
    admin_key: str | None = None  # HEADWATER_ADMIN_KEY: control API bearer key
    sweep_interval_s: float = 10.0  # HEADWATER_SWEEP_INTERVAL_S: TTL sweep of the embedded store
    log_level: str = "info"
    cassandra_hosts: tuple[str, ...] = ("127.0.0.1",)  # HEADWATER_CASSANDRA_HOSTS (comma-separated)
    cassandra_port: int = 9042  # HEADWATER_CASSANDRA_PORT
    cassandra_keyspace: str = "headwater"  # HEADWATER_CASSANDRA_KEYSPACE
    cassandra_consistency: str = "LOCAL_QUORUM"  # HEADWATER_CASSANDRA_CONSISTENCY
    cassandra_replication_factor: int = 1  # HEADWATER_CASSANDRA_RF (SimpleStrategy)
    memcached_nodes: tuple[str, ...] = ()  # HEADWATER_MEMCACHED (comma-separated host:port)
    memcached_replicas: int = 2  # HEADWATER_MEMCACHED_REPLICAS
    role: str = "all"  # HEADWATER_ROLE: all | ingest | packager
    packagers: tuple[str, ...] = ()  # HEADWATER_PACKAGERS: host:port of the nodes to announce to
    announce_port: int | None = None  # HEADWATER_ANNOUNCE_PORT: UDP port to listen on; None = port
    #: HEADWATER_PEERS_REFRESH_S: re-resolve --packagers this often (a headless Service's pods); 0 = once
    peers_refresh_s: float = 0.0
    create_schema: bool = True  # HEADWATER_CREATE_SCHEMA=0: the keyspace is made by `headwater schema`
    #: HEADWATER_STORE_WAIT_S: at start, retry opening the store (Cassandra up, schema made) this long
    store_wait_s: float = 0.0
    #: HEADWATER_DRAIN_S: on SIGTERM answer /readyz 503 this long before closing the listener
    drain_s: float = 0.0

    @property
    def clustered(self) -> bool:
        """One of several nodes: announce commits, follow the others' (defaults: a single node)."""
        return self.role != "all" or bool(self.packagers)

    @property
    def serves_ingest(self) -> bool:
        return self.role in ("all", "ingest")

    @property
    def serves_packager(self) -> bool:
        return self.role in ("all", "packager")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)

        def get(name: str) -> str | None:
            return env.get(f"HEADWATER_{name}")

        base = cls()
        return cls(
            host=get("HOST") or base.host,
            port=int(get("PORT") or base.port),
            store=get("STORE") or base.store,
            data_dir=Path(get("DATA_DIR") or base.data_dir),
            auto_create=(get("AUTO_CREATE") or "1").lower() not in ("0", "false", "no"),
            idle_timeout_s=float(get("IDLE_TIMEOUT_S") or base.idle_timeout_s),
            header_wait_s=float(get("HEADER_WAIT_S") or base.header_wait_s),
            admin_key=get("ADMIN_KEY") or None,
            sweep_interval_s=float(get("SWEEP_INTERVAL_S") or base.sweep_interval_s),
            log_level=get("LOG_LEVEL") or base.log_level,
            cassandra_hosts=_csv(get("CASSANDRA_HOSTS")) or base.cassandra_hosts,
            cassandra_port=int(get("CASSANDRA_PORT") or base.cassandra_port),
            cassandra_keyspace=get("CASSANDRA_KEYSPACE") or base.cassandra_keyspace,
            cassandra_consistency=get("CASSANDRA_CONSISTENCY") or base.cassandra_consistency,
            cassandra_replication_factor=int(get("CASSANDRA_RF") or base.cassandra_replication_factor),
            memcached_nodes=_csv(get("MEMCACHED")) or base.memcached_nodes,
            memcached_replicas=int(get("MEMCACHED_REPLICAS") or base.memcached_replicas),
            role=get("ROLE") or base.role,
            packagers=_csv(get("PACKAGERS")) or base.packagers,
            announce_port=int(port) if (port := get("ANNOUNCE_PORT")) else base.announce_port,
            peers_refresh_s=float(get("PEERS_REFRESH_S") or base.peers_refresh_s),
            create_schema=(get("CREATE_SCHEMA") or "1").lower() not in ("0", "false", "no"),
            store_wait_s=float(get("STORE_WAIT_S") or base.store_wait_s),
            drain_s=float(get("DRAIN_S") or base.drain_s),
        )


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())
