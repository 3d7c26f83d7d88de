"""Shared fixtures of the integration tests: real servers from tests/integration/servers.py.

Each store's fixtures live in their own section below.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from cassandra import ConsistencyLevel, ProtocolVersion
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import ExponentialReconnectionPolicy, RoundRobinPolicy

from services.shared.store.cassandra import CassandraStore
from services.shared.store.memcache import ChunkedCache
from services.shared.store.write_through import WriteThroughStore
from tests.integration.servers import CassandraServer, MemcachedServer, running_cassandra, running_memcached

# -- memcached (ChunkedCache, services/shared/store/memcache.py) ------------------------------------


@pytest.fixture(scope="module")
def memcached_nodes() -> Iterator[list[MemcachedServer]]:
    """Three real memcached daemons on loopback, shared by one test module. A test that kills or
    stops a node must bring it back (``start()``; it comes back empty, on the same port)."""
    with running_memcached(3) as nodes:
        yield nodes


@pytest.fixture(scope="module")
def memcached_addresses(memcached_nodes: list[MemcachedServer]) -> list[str]:
    """The nodes as ``host:port`` strings, as ChunkedCache takes them."""
    return [f"{node.host}:{node.port}" for node in memcached_nodes]


# -- end of memcached -------------------------------------------------------------------------------


# -- cassandra (CassandraStore, services/shared/store/cassandra.py) ---------------------------------

StoreFactory = Callable[..., Awaitable[CassandraStore]]


@pytest.fixture(scope="session")
def cassandra_server() -> Iterator[CassandraServer]:
    """One real Cassandra 5.0 node for the whole session (10-30 s to start). A test that stops it
    must start it again before it ends; data survives that (same data dir and ports)."""
    with running_cassandra() as server:
        yield server


@pytest.fixture(scope="session")
def cql(cassandra_server: CassandraServer) -> Iterator[Session]:
    """A plain driver session on that node, for tests that look at (or damage) rows directly."""
    profile = ExecutionProfile(
        load_balancing_policy=RoundRobinPolicy(), consistency_level=ConsistencyLevel.ONE, request_timeout=30
    )
    cluster = Cluster(
        contact_points=[cassandra_server.contact_point],
        port=cassandra_server.port,
        protocol_version=ProtocolVersion.V5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        reconnection_policy=ExponentialReconnectionPolicy(0.5, 5.0, max_attempts=None),
    )
    yield cluster.connect()
    cluster.shutdown()


@pytest.fixture
def keyspace() -> str:
    """The test's own keyspace name; the store creates it. Left behind: the server's temporary data
    directory goes at the end of the session, and dropping costs a schema change per test."""
    return f"t_{uuid.uuid4().hex[:20]}"


@pytest.fixture
async def cassandra_stores(cassandra_server: CassandraServer, keyspace: str) -> AsyncIterator[StoreFactory]:
    """Opens ``CassandraStore``s on the test's keyspace (keyword arguments override the defaults);
    every one of them is closed after the test."""
    opened: list[CassandraStore] = []

    async def open_store(**overrides: Any) -> CassandraStore:
        settings: dict[str, Any] = {
            "contact_points": [cassandra_server.contact_point],
            "port": cassandra_server.port,
            "keyspace": keyspace,
        }
        store = CassandraStore(**(settings | overrides))
        await store.open()
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        await store.close()


# -- end of cassandra -------------------------------------------------------------------------------


# -- write-through (WriteThroughStore, services/shared/store/write_through.py) ----------------------

#: A write-through store and the ChunkedCache it writes through.
WriteThrough = tuple[WriteThroughStore, ChunkedCache]
WriteThroughFactory = Callable[[], Awaitable[WriteThrough]]


@pytest.fixture
async def write_through_stores(
    cassandra_server: CassandraServer, keyspace: str, memcached_addresses: list[str]
) -> AsyncIterator[WriteThroughFactory]:
    """Opens WriteThroughStores on the test's keyspace, each with its own ChunkedCache on the module's
    memcached nodes; every one of them is closed after the test."""
    opened: list[WriteThroughStore] = []

    async def make() -> WriteThrough:
        durable = CassandraStore(
            contact_points=[cassandra_server.contact_point], port=cassandra_server.port, keyspace=keyspace
        )
        cache = ChunkedCache(memcached_addresses, timeout_s=0.5, retry_down_after_s=0.2)
        store = WriteThroughStore(durable, cache)
        await store.open()
        opened.append(store)
        return store, cache

    yield make
    for store in opened:
        await store.close()


# -- end of write-through ---------------------------------------------------------------------------
