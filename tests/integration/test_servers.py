"""Smoke test of the real storage servers: Cassandra 5.0 and memcached, started by the project's
scripts through tests/integration/servers.py, used through the real client libraries, and stopped."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from cassandra import ConsistencyLevel, ProtocolVersion
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    Session,
)
from cassandra.policies import RoundRobinPolicy
from pymemcache.client.base import Client as MemcacheClient
from pymemcache.exceptions import (
    MemcacheServerError,
    MemcacheUnexpectedCloseError,
)

from tests.integration.servers import (
    CassandraServer,
    MemcachedServer,
    cql_answers,
    memcached_answers,
    running_cassandra,
    running_memcached,
)

KEYSPACE = "headwater_smoke"


def connect(server: CassandraServer) -> Cluster:
    """A driver Cluster for one local node. An explicit load-balancing policy in the default
    execution profile and a fixed protocol version keep the driver free of warnings (pytest turns
    warnings into errors); the driver's default event loop here is libev (bundled in its wheel),
    not the deprecated asyncore."""
    profile = ExecutionProfile(
        load_balancing_policy=RoundRobinPolicy(),
        consistency_level=ConsistencyLevel.LOCAL_ONE,
        request_timeout=30,
    )
    return Cluster(
        contact_points=[server.contact_point],
        port=server.port,
        protocol_version=ProtocolVersion.V5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=10,
    )


@pytest.fixture(scope="module")
def cassandra() -> Iterator[CassandraServer]:
    with running_cassandra() as server:
        yield server
    # Stopped for real: nothing answers on its port any more.
    assert not cql_answers(server.contact_point, server.port)
    assert not server.is_running()


@pytest.fixture(scope="module")
def session(cassandra: CassandraServer) -> Iterator[Session]:
    cluster = connect(cassandra)
    sess = cluster.connect()
    sess.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} "
        "WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    sess.execute(
        f"CREATE TABLE IF NOT EXISTS {KEYSPACE}.fragments ("
        " channel text, track text, seq bigint, data blob,"
        " PRIMARY KEY ((channel, track), seq))"
    )
    sess.set_keyspace(KEYSPACE)
    yield sess
    cluster.shutdown()


@pytest.fixture(scope="module")
def memcached_nodes() -> Iterator[list[MemcachedServer]]:
    with running_memcached(3) as nodes:
        yield nodes
    for node in nodes:
        assert not memcached_answers(node.host, node.port)


def test_cassandra_prepared_insert_and_select(session: Session) -> None:
    insert = session.prepare("INSERT INTO fragments (channel, track, seq, data) VALUES (?, ?, ?, ?)")
    select = session.prepare("SELECT seq, data FROM fragments WHERE channel = ? AND track = ?")
    channel = f"ch-{uuid.uuid4().hex[:8]}"
    payload = bytes(range(256)) * 4096  # 1 MiB blob, a realistic media fragment
    for seq in range(3):
        session.execute(insert, (channel, "video", seq, payload[seq:]))
    rows = list(session.execute(select, (channel, "video")))
    assert [r.seq for r in rows] == [0, 1, 2]
    assert [r.data for r in rows] == [payload[0:], payload[1:], payload[2:]]


def test_cassandra_ttl_expires(session: Session) -> None:
    insert = session.prepare(
        "INSERT INTO fragments (channel, track, seq, data) VALUES (?, ?, ?, ?) USING TTL 2"
    )
    select = session.prepare(
        "SELECT data, TTL(data) AS ttl FROM fragments WHERE channel = ? AND track = ? AND seq = ?"
    )
    key = (f"ttl-{uuid.uuid4().hex[:8]}", "audio", 7)
    session.execute(insert, (*key, b"short-lived"))
    row = session.execute(select, key).one()
    assert row is not None
    assert row.data == b"short-lived"
    assert 0 < row.ttl <= 2
    deadline = time.monotonic() + 10
    while session.execute(select, key).one() is not None:
        assert time.monotonic() < deadline, "TTL'd row still readable 10 s after a 2 s TTL"
        time.sleep(0.25)


def test_cassandra_survives_kill(cassandra: CassandraServer, session: Session) -> None:
    """SIGKILL (no drain, no flush) then start again: the write comes back from the commitlog."""
    insert = session.prepare("INSERT INTO fragments (channel, track, seq, data) VALUES (?, ?, ?, ?)")
    key = (f"crash-{uuid.uuid4().hex[:8]}", "video", 1)
    session.execute(insert, (*key, b"before the crash"))
    cassandra.kill()
    assert not cassandra.is_running()
    cassandra.start()
    cassandra.wait_ready(timeout=5)
    cluster = connect(cassandra)  # a fresh client: the old one may still be backing off
    try:
        row = (
            cluster.connect(KEYSPACE)
            .execute("SELECT data FROM fragments WHERE channel = %s AND track = %s AND seq = %s", key)
            .one()
        )
    finally:
        cluster.shutdown()
    assert row is not None
    assert row.data == b"before the crash"


def test_memcached_set_get(memcached_nodes: list[MemcachedServer]) -> None:
    for node in memcached_nodes:
        client = MemcacheClient(node.address, connect_timeout=2, timeout=2)
        try:
            client.set("k", f"on {node.port}".encode())
            assert client.get("k") == f"on {node.port}".encode()
            big = b"x" * (1024 * 1024 - 1024)  # just under the 1 MiB item limit (key + header)
            assert client.set("big", big, noreply=False)
            assert client.get("big") == big
            with pytest.raises(MemcacheServerError, match="too large"):
                client.set("too-big", b"x" * (1024 * 1024 + 1), noreply=False)
        finally:
            client.close()


def test_memcached_node_down_then_back(memcached_nodes: list[MemcachedServer]) -> None:
    node = memcached_nodes[0]
    client = MemcacheClient(node.address, connect_timeout=2, timeout=2)
    try:
        client.set("k", b"v")
        node.kill()
        assert not node.is_running()
        # What a client sees: first the open connection dies under it (pymemcache then drops the
        # socket), then every reconnect is refused until the node is back.
        with pytest.raises(MemcacheUnexpectedCloseError):
            client.get("k")
        with pytest.raises(ConnectionRefusedError):
            client.get("k")
        with pytest.raises(ConnectionRefusedError):
            client.set("k", b"v", noreply=False)
        node.start()
        assert client.get("k") is None  # back, and empty
        client.set("k", b"v2")
        assert client.get("k") == b"v2"
    finally:
        client.close()
