"""The schema made once by ``headwater schema`` (a deployment's job), on a real Cassandra: a node
started with ``--no-create-schema`` before it waits (``--store-wait-s``) instead of failing, and opens
as soon as the job has made the keyspace; without the schema its store refuses to open, naming it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.shared.errors import StoreError
from services.shared.store.cassandra import CassandraStore
from tests.e2e.origin import free_port, serve_argv, stop_server, wait_until_answers
from tests.integration.servers import CassandraServer


def _schema_job(server: CassandraServer, keyspace: str) -> subprocess.CompletedProcess[str]:
    argv = [
        sys.executable, "-m", "services.cli", "schema", "--cassandra", server.contact_point,
        "--cassandra-port", str(server.port), "--keyspace", keyspace, "--wait-s", "30",
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, check=False)


async def test_without_the_schema_a_node_store_refuses_to_open(
    cassandra_server: CassandraServer, keyspace: str
) -> None:
    store = CassandraStore(
        contact_points=[cassandra_server.contact_point],
        port=cassandra_server.port,
        keyspace=keyspace,
        create_schema=False,
    )
    with pytest.raises(StoreError, match=keyspace):
        await store.open()
    await store.close()


def test_node_waits_for_the_schema_job(
    cassandra_server: CassandraServer, keyspace: str, tmp_path: Path
) -> None:
    port = free_port()
    argv = serve_argv(
        port, "--store", "cassandra", "--cassandra", cassandra_server.contact_point,
        "--cassandra-port", str(cassandra_server.port), "--keyspace", keyspace,
        "--no-create-schema", "--store-wait-s", "60",
    )  # fmt: skip
    log = tmp_path / "node.log"
    with log.open("wb") as out:
        node = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "store not ready, retrying" not in log.read_text():
            assert node.poll() is None, log.read_text()  # waiting, not failed
            assert time.monotonic() < deadline, "the node never said it waits for the store"
            time.sleep(0.2)
        time.sleep(2)
        assert node.poll() is None, log.read_text()
        job = _schema_job(cassandra_server, keyspace)
        assert job.returncode == 0, job.stderr
        assert f"keyspace {keyspace} and its tables are in place" in job.stdout
        assert wait_until_answers(f"http://127.0.0.1:{port}/readyz", node, timeout_s=30), log.read_text()
        again = _schema_job(cassandra_server, keyspace)
        assert again.returncode == 0, again.stderr  # idempotent: an upgrade's job runs it again
    finally:
        stop_server(node)
