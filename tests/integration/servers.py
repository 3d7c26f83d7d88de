"""Real Cassandra and memcached servers for integration tests.

Plain helpers, no pytest plugin: a conftest wires them into fixtures, for example::

    @pytest.fixture(scope="session")
    def cassandra() -> Iterator[CassandraServer]:
        with running_cassandra() as server:  # one node for the whole session (~10-15 s to start)
            yield server

    @pytest.fixture(scope="session")
    def memcached_nodes() -> Iterator[list[MemcachedServer]]:
        with running_memcached(3) as nodes:
            yield nodes

The servers are started and stopped by the project's own scripts (``scripts/cassandra/start.sh``,
``scripts/cassandra/stop.sh``, ``scripts/memcached.sh``), so tests run exactly what ``make cluster``
and CI run. Everything listens on 127.0.0.1 only, on free ports picked here. Every server started
through these classes is stopped by them (``stop()``, the context managers, and an ``atexit`` hook
as a last resort if a test run is interrupted).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CASSANDRA_SCRIPTS = REPO_ROOT / "scripts" / "cassandra"
MEMCACHED_SCRIPT = REPO_ROOT / "scripts" / "memcached.sh"
LOOPBACK = "127.0.0.1"

#: Long enough for the first download of the Cassandra jars (~67 MB) from Maven Central.
FETCH_TIMEOUT_S = 1800.0
#: Cassandra's own readiness wait (start.sh --timeout); the subprocess gets a margin on top.
CASSANDRA_START_TIMEOUT_S = 180
CASSANDRA_STOP_TIMEOUT_S = 60


class ServerError(RuntimeError):
    """A server script failed; the message carries its output (log tails included)."""


def _run(args: list[str], timeout: float, env: dict[str, str] | None = None) -> str:
    """Run a script; return its output, or raise ServerError with the output on failure."""
    try:
        proc = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.output if isinstance(exc.output, str) else ""
        raise ServerError(f"{' '.join(args)} timed out after {timeout:.0f} s\n{out}") from exc
    if proc.returncode != 0:
        raise ServerError(f"{' '.join(args)} exited {proc.returncode}\n{proc.stdout}")
    return proc.stdout


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on 127.0.0.1 right now (all bound at once, then released)."""
    with contextlib.ExitStack() as stack:
        socks = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((LOOPBACK, 0))
            socks.append(sock)
        return [int(s.getsockname()[1]) for s in socks]


def free_port() -> int:
    return free_ports(1)[0]


def _pid_alive(pid: int) -> bool:
    """True if the process exists and has not exited. Not os.kill(pid, 0): daemons are reaped by
    pid 1 only some time after they die, and a zombie still answers it. A zombie main thread whose
    other threads are still exiting (and may still hold its sockets) counts as alive."""
    proc = Path(f"/proc/{pid}")
    try:
        state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
        if state != "Z":
            return True
        return len(list((proc / "task").iterdir())) > 1
    except (OSError, IndexError):
        return False


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


# CQL native protocol v4 OPTIONS request: version 0x04, flags 0, stream 0, opcode 0x05, length 0.
_CQL_OPTIONS = bytes([0x04, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00])
_CQL_SUPPORTED_HEADER = bytes([0x84, 0x00, 0x00, 0x00, 0x06])


def cql_answers(host: str, port: int, timeout: float = 2.0) -> bool:
    """True if a CQL server answers an OPTIONS request with SUPPORTED on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(_CQL_OPTIONS)
            reply = b""
            while len(reply) < len(_CQL_SUPPORTED_HEADER):
                chunk = sock.recv(len(_CQL_SUPPORTED_HEADER) - len(reply))
                if not chunk:
                    return False
                reply += chunk
    except OSError:
        return False
    return reply == _CQL_SUPPORTED_HEADER


def memcached_answers(host: str, port: int, timeout: float = 2.0) -> bool:
    """True if a memcached answers the text-protocol ``version`` command on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"version\r\n")
            reply = sock.recv(64)
    except OSError:
        return False
    return reply.startswith(b"VERSION ")


def ensure_cassandra_jars() -> Path:
    """Fetch the Cassandra jars into .cache/cassandra/lib unless already there; return that dir."""
    _run(["bash", str(CASSANDRA_SCRIPTS / "fetch.sh")], timeout=FETCH_TIMEOUT_S)
    return REPO_ROOT / ".cache" / "cassandra" / "lib"


# Servers started here and not stopped yet: stopped at interpreter exit if a run is interrupted.
_live: set[CassandraServer | MemcachedServer] = set()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_live):
        with contextlib.suppress(Exception):
            server.stop()


class CassandraServer:
    """One single-node Cassandra 5.0 on 127.0.0.1, driven by scripts/cassandra/{start,stop}.sh.

    ``data_dir=None`` uses a fresh temporary directory, removed by ``close()``; pass a directory to
    reuse one (data survives ``stop()``/``start()`` and ``kill()``/``start()`` in either case).
    Ports default to a free pair picked once, kept across restarts so clients can reconnect.
    """

    contact_point = LOOPBACK

    def __init__(
        self,
        data_dir: Path | None = None,
        port: int | None = None,
        storage_port: int | None = None,
        start_timeout: int = CASSANDRA_START_TIMEOUT_S,
        heap: str | None = None,
    ) -> None:
        self._owns_data_dir = data_dir is None
        if data_dir is None:
            data_dir = Path(tempfile.mkdtemp(prefix="headwater-cassandra-"))
        self.data_dir = data_dir.resolve()
        self._ports_picked = port is None and storage_port is None
        picked = free_ports(2)
        self.port = port if port is not None else picked[0]
        self.storage_port = storage_port if storage_port is not None else picked[1]
        if self.storage_port == self.port:
            self.storage_port = picked[1] if picked[1] != self.port else picked[0]
        self.start_timeout = start_timeout
        self.heap = heap
        #: Seconds the last successful start() took (script run, JVM start to CQL answering).
        self.last_start_seconds: float | None = None

    # -- properties ---------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return (self.contact_point, self.port)

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "cassandra.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "logs" / "system.log"

    @property
    def pid(self) -> int | None:
        """Pid of the running daemon, or None."""
        pid = _read_pid(self.pid_file)
        return pid if pid is not None and _pid_alive(pid) else None

    def is_running(self) -> bool:
        return self.pid is not None

    def is_ready(self) -> bool:
        return cql_answers(self.contact_point, self.port)

    # -- lifecycle ----------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.heap is not None:
            env["CASSANDRA_HEAP"] = self.heap
        return env

    def _start_args(self) -> list[str]:
        return [
            "bash",
            str(CASSANDRA_SCRIPTS / "start.sh"),
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
            "--storage-port",
            str(self.storage_port),
            "--timeout",
            str(self.start_timeout),
        ]

    def start(self) -> None:
        """Start (or, after stop()/kill(), restart) and return once CQL answers."""
        began = time.monotonic()
        # start.sh fetches the jars itself when needed: leave time for that on a first run.
        timeout = self.start_timeout + FETCH_TIMEOUT_S + 60
        _live.add(self)
        try:
            _run(self._start_args(), timeout=timeout, env=self._env())
        except ServerError as exc:
            # The free ports picked in __init__ may have been taken since: pick again, once.
            if not (self._ports_picked and self.last_start_seconds is None and "in use" in str(exc)):
                raise
            self.port, self.storage_port = free_ports(2)
            _run(self._start_args(), timeout=timeout, env=self._env())
        self.last_start_seconds = time.monotonic() - began

    def wait_ready(self, timeout: float = CASSANDRA_START_TIMEOUT_S) -> None:
        """Block until CQL answers on the port; ServerError if the daemon dies or time runs out."""
        deadline = time.monotonic() + timeout
        while not self.is_ready():
            if not self.is_running():
                raise ServerError(f"cassandra on {self.data_dir} is not running; see {self.log_file}")
            if time.monotonic() > deadline:
                raise ServerError(f"cassandra on port {self.port} not ready after {timeout:.0f} s")
            time.sleep(0.5)

    def stop(self) -> None:
        """Clean stop (SIGTERM, drain, bounded wait, then SIGKILL). No-op if not running."""
        _run(
            [
                "bash",
                str(CASSANDRA_SCRIPTS / "stop.sh"),
                "--data-dir",
                str(self.data_dir),
                "--timeout",
                str(CASSANDRA_STOP_TIMEOUT_S),
            ],
            timeout=CASSANDRA_STOP_TIMEOUT_S + 30,
        )
        _live.discard(self)

    def kill(self) -> None:
        """SIGKILL the daemon (crash simulation): no drain, no flush; start() replays the commitlog."""
        _run(["bash", str(CASSANDRA_SCRIPTS / "stop.sh"), "--data-dir", str(self.data_dir), "--kill"], 30)
        _live.discard(self)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop, and remove the data dir if it is a temporary one made here."""
        self.stop()
        if self._owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> CassandraServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CassandraServer({self.contact_point}:{self.port}, data_dir={self.data_dir})"


class MemcachedServer:
    """One memcached on 127.0.0.1, driven by scripts/memcached.sh (64 MiB, 1 MiB item limit).

    ``kill()`` SIGKILLs it (fault tests) and ``start()`` brings it back, empty, on the same port.
    """

    host = LOOPBACK

    def __init__(self, port: int | None = None, run_dir: Path | None = None) -> None:
        self.port = port if port is not None else free_port()
        #: Where the script keeps PORT.pid and PORT.log (default .cache/memcached).
        self.run_dir = run_dir if run_dir is not None else REPO_ROOT / ".cache" / "memcached"

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def pid(self) -> int | None:
        pid = _read_pid(self.run_dir / f"{self.port}.pid")
        return pid if pid is not None and _pid_alive(pid) else None

    def is_running(self) -> bool:
        return self.pid is not None

    def is_ready(self) -> bool:
        return memcached_answers(self.host, self.port)

    def _script(self, command: str) -> str:
        env = dict(os.environ, MEMCACHED_DIR=str(self.run_dir))
        return _run(["bash", str(MEMCACHED_SCRIPT), command, str(self.port)], timeout=60, env=env)

    def start(self) -> None:
        _live.add(self)
        self._script("start")

    def stop(self) -> None:
        self._script("stop")
        _live.discard(self)

    def kill(self) -> None:
        """SIGKILL (crash simulation). The port refuses connections until start() again."""
        self._script("kill")
        _live.discard(self)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> MemcachedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"MemcachedServer({self.host}:{self.port})"


@contextlib.contextmanager
def running_cassandra(
    data_dir: Path | None = None, port: int | None = None, heap: str | None = None
) -> Iterator[CassandraServer]:
    """Start one Cassandra (fetching the jars first if needed), yield it, stop it (and its temp dir)."""
    with CassandraServer(data_dir=data_dir, port=port, heap=heap) as server:
        yield server


@contextlib.contextmanager
def running_memcached(count: int = 1) -> Iterator[list[MemcachedServer]]:
    """Start `count` memcached nodes on free ports, yield them, stop every one of them."""
    nodes = [MemcachedServer(port) for port in free_ports(count)]
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        stop_memcached(nodes)


def stop_memcached(nodes: list[MemcachedServer]) -> None:
    """Stop several memcached nodes at once (one script run; they shut down in parallel)."""
    by_dir: dict[Path, list[MemcachedServer]] = {}
    for node in nodes:
        by_dir.setdefault(node.run_dir, []).append(node)
    for run_dir, group in by_dir.items():
        env = dict(os.environ, MEMCACHED_DIR=str(run_dir))
        _run(["bash", str(MEMCACHED_SCRIPT), "stop", *(str(n.port) for n in group)], timeout=60, env=env)
        for node in group:
            _live.discard(node)
