"""Start and stop a local cluster on loopback: memcached and Cassandra (through the project's scripts),
the Headwater nodes (``headwater serve`` processes) and the nginx front.

Everything a cluster started is recorded in ``<run_dir>/state.json`` as soon as it is started, so
``down`` stops exactly that, also after an ``up`` that failed half-way. Run directory layout::

    state.json          what runs: topology, pids (with their start times), front URL
    logs/<node>.log     each Headwater node's output
    nodes/<node>/       each node's --data-dir
    memcached/          scripts/memcached.sh's pid files and logs (MEMCACHED_DIR)
    cassandra/          scripts/cassandra/start.sh's data dir (data, logs/, cassandra.pid)
    nginx/              nginx.conf, error.log, nginx.pid, temp/, nginx.out

Processes run in their own sessions (a Ctrl-C aimed at the caller does not reach them) and are stopped
by pid, after checking that the pid still is the process that was started (its start time).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.cluster import nginx_conf
from services.cluster import topology as topo
from services.cluster.probes import (
    cql_answers,
    http_status,
    memcached_answers,
    pid_file_alive,
    port_in_use,
    start_time,
    tails,
)
from services.cluster.topology import LOOPBACK, Node, Topology

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = REPO_ROOT / "scripts"
NGINX = "/usr/sbin/nginx"
STATE_FILE = "state.json"
#: SIGTERM, then SIGKILL after this long (nodes, nginx).
STOP_TIMEOUT_S = 5.0
#: Cassandra drains and flushes on SIGTERM; stop.sh sends SIGKILL after this long.
CASSANDRA_STOP_TIMEOUT_S = 30

Say = Callable[[str], None]


class ClusterError(RuntimeError):
    """The cluster could not be started or stopped; the message says why (with log tails)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    run_dir: Path
    log_level: str = "info"
    #: False: use the Cassandra that already answers at the topology's address (never start or stop it).
    manage_cassandra: bool = True
    #: How long each node may take to answer /readyz 200 (and the front /healthz).
    ready_timeout_s: float = 120.0
    cassandra_timeout_s: int = 180
    #: Extra environment of the Headwater nodes (e.g. HEADWATER_CASSANDRA_CONSISTENCY).
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Proc:
    """A process we started: pid plus its start time (``/proc/<pid>/stat`` field 22)."""

    pid: int
    start_time: int


def load_state(run_dir: Path) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads((run_dir / STATE_FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ClusterError(f"{run_dir / STATE_FILE} is unreadable: {exc}") from exc
    return state


class LocalCluster:
    """One cluster's processes. ``up()`` starts them all; ``down()`` stops what the state names."""

    def __init__(self, topology: Topology, options: Options, say: Say = print) -> None:
        self.topology = topology
        self.options = options
        self.run_dir = options.run_dir.resolve()
        self._say = say
        self._children: dict[int, subprocess.Popen[bytes]] = {}  # reaped here, by pid
        self._state: dict[str, Any] = {
            "topology": topo.to_dict(topology),
            "front_url": self.front_url,
            "processes": {},
            "memcached": {"dir": str(self.run_dir / "memcached"), "ports": []},
            "cassandra": None,
        }

    @classmethod
    def from_run_dir(cls, run_dir: Path, say: Say = print) -> LocalCluster | None:
        """The cluster recorded in ``run_dir``, or None when there is none."""
        state = load_state(run_dir)
        if state is None:
            return None
        cluster = cls(topo.from_dict(state["topology"]), Options(run_dir=run_dir), say)
        cluster._state = state
        return cluster

    @property
    def front_url(self) -> str:
        return f"http://{LOOPBACK}:{self.topology.front_port}"

    def node_url(self, name: str) -> str:
        node = self.topology.node(name)
        return f"http://{node.host}:{node.port}"

    # -- up -----------------------------------------------------------------------------------------

    def up(self) -> None:
        """Start everything and return once the front answers; on any failure (or Ctrl-C) stop what
        was started and raise."""
        self._check_can_start()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._save()
        try:
            self._start_memcached([m.port for m in self.topology.memcached])
            self._start_cassandra()
            first, *rest = self.topology.nodes
            self.start_node(first.name)  # it creates the keyspace and tables: no concurrent DDL
            for node in rest:
                self._spawn_node(node)
            for node in rest:
                self._wait_node(node)
            self._start_nginx()
        except BaseException:
            self._say("startup failed; stopping what was started")
            try:
                self.down()
            except Exception as exc:  # the startup error matters more; say what is left
                self._say(f"stopping failed too: {exc}")
            raise
        self._say(f"Headwater cluster ready: {self.front_url}")

    def _check_can_start(self) -> None:
        previous = load_state(self.run_dir)
        if previous is not None:
            running = LocalCluster.from_run_dir(self.run_dir, self._say)
            if running is not None and running.running():
                raise ClusterError(
                    f"a cluster is already running in {self.run_dir} (front {previous.get('front_url')}: "
                    f"{', '.join(running.running())}); stop it first: "
                    f"headwater cluster down --run-dir {self.run_dir}"
                )
            (self.run_dir / STATE_FILE).unlink()
        hosts = [n.host for n in (*self.topology.nodes, *self.topology.memcached)]
        if self.options.manage_cassandra:
            hosts.append(self.topology.cassandra.host)
        if any(host != LOOPBACK for host in hosts):
            raise ClusterError(f"the local cluster runs on {LOOPBACK} only; the topology names other hosts")
        ports = [("front", self.topology.front_port)]
        ports += [(n.name, n.port) for n in (*self.topology.memcached, *self.topology.nodes)]
        cassandra = self.topology.cassandra
        if self.options.manage_cassandra:
            ports += [("cassandra (CQL)", cassandra.port), ("cassandra (storage)", cassandra.storage_port)]
        busy = [f"{LOOPBACK}:{port} ({what})" for what, port in ports if port_in_use(port)]
        if busy:
            raise ClusterError(f"port(s) already in use: {', '.join(busy)}")

    def _start_memcached(self, ports: list[int]) -> None:
        if not ports:
            return
        recorded: list[int] = self._state["memcached"]["ports"]
        recorded.extend(p for p in ports if p not in recorded)
        self._save()
        out = self._script(["memcached.sh", "start", *map(str, ports)], timeout=60, env=self._memcached_env())
        self._say(out.strip())

    def _start_cassandra(self) -> None:
        c = self.topology.cassandra
        if not self.options.manage_cassandra:
            self._say(f"using the Cassandra at {c.host}:{c.port}")
            deadline = time.monotonic() + self.options.cassandra_timeout_s
            while not cql_answers(c.host, c.port):
                if time.monotonic() > deadline:
                    raise ClusterError(f"no Cassandra answers CQL on {c.host}:{c.port}")
                time.sleep(0.5)
            return
        data_dir = self.run_dir / "cassandra"
        self._state["cassandra"] = {"data_dir": str(data_dir)}
        self._save()
        self._say(f"starting cassandra (CQL {c.host}:{c.port}; the first start fetches its jars with Maven)")
        args = ["cassandra/start.sh", "--data-dir", str(data_dir), "--port", str(c.port)]
        args += ["--storage-port", str(c.storage_port), "--timeout", str(self.options.cassandra_timeout_s)]
        # No time limit of our own: the first start downloads ~70 MB; start.sh bounds its own wait.
        self._say(self._script(args, timeout=None).strip().splitlines()[-1])

    def start_node(self, name: str) -> None:
        """Start one Headwater node (or memcached node) and wait until it is ready."""
        node = self.topology.node(name)
        if node.role == "memcached":
            self._start_memcached([node.port])
            return
        self._spawn_node(node)
        self._wait_node(node)

    def _spawn_node(self, node: Node) -> None:
        data_dir = self.run_dir / "nodes" / node.name
        data_dir.mkdir(parents=True, exist_ok=True)
        args = topo.serve_args(self.topology, node, data_dir=data_dir, log_level=self.options.log_level)
        argv = [sys.executable, "-m", "services.cli", "serve", *args]
        env = {**os.environ, **self.options.env}
        self._spawn(node.name, argv, self.run_dir / "logs" / f"{node.name}.log", env=env)

    def _wait_node(self, node: Node) -> None:
        url = f"http://{node.host}:{node.port}"
        self._wait_http(node.name, f"{url}/readyz")
        self._say(f"{node.name} ({node.role}) ready on {url}")

    def _start_nginx(self) -> None:
        prefix = self.run_dir / "nginx"
        for name in nginx_conf.TEMP_PATHS:
            (prefix / "temp" / name).mkdir(parents=True, exist_ok=True)
        conf = prefix / "nginx.conf"
        conf.write_text(nginx_conf.render(self.topology, run_dir=prefix, run_as_root=os.geteuid() == 0))
        argv = [NGINX, "-p", f"{prefix}/", "-c", str(conf), "-e", str(prefix / "error.log")]
        self._spawn("nginx", argv, prefix / "nginx.out", env=dict(os.environ))
        self._wait_http("nginx", f"{self.front_url}/healthz", also_log=prefix / "error.log")

    # -- processes ----------------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], log: Path, *, env: dict[str, str]) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            child = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, cwd=REPO_ROOT,
                start_new_session=True,
            )  # fmt: skip
        self._children[child.pid] = child
        self._state["processes"][name] = {
            "pid": child.pid, "start_time": start_time(child.pid) or 0, "log": str(log), "argv": argv,
        }  # fmt: skip
        self._save()

    def _proc(self, name: str) -> Proc | None:
        record = self._state["processes"].get(name)
        if record is None:
            return None
        return Proc(pid=int(record["pid"]), start_time=int(record["start_time"]))

    def _alive(self, proc: Proc) -> bool:
        child = self._children.get(proc.pid)
        if child is not None:
            return child.poll() is None
        return start_time(proc.pid) == proc.start_time

    def _wait_http(self, name: str, url: str, *, also_log: Path | None = None) -> None:
        proc = self._proc(name)
        deadline = time.monotonic() + self.options.ready_timeout_s
        while True:
            status = http_status(url)
            if status == 200:
                return
            record = self._state["processes"][name]
            if proc is not None and not self._alive(proc):
                raise ClusterError(f"{name} exited during startup; {tails(record['log'], also_log)}")
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"{name}: {url} answered {status or 'nothing'} for {self.options.ready_timeout_s:.0f} s; "
                    f"{tails(record['log'], also_log)}"
                )
            time.sleep(0.2)

    def kill(self, name: str) -> None:
        """SIGKILL one node (a crash) and wait until it is gone; ``start_node`` brings it back."""
        if self.topology.node(name).role == "memcached":
            port = self.topology.node(name).port
            self._script(["memcached.sh", "kill", str(port)], timeout=30, env=self._memcached_env())
            return
        self._stop([name], sig=signal.SIGKILL)

    def _stop(self, names: list[str], *, sig: signal.Signals = signal.SIGTERM) -> None:
        """Signal the named processes' groups, wait up to STOP_TIMEOUT_S, then SIGKILL the rest."""
        procs = {name: p for name in names if (p := self._proc(name)) is not None and self._alive(p)}
        for proc in procs.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for name, proc in procs.items():
            while self._alive(proc) and time.monotonic() < deadline:
                time.sleep(0.05)
            if self._alive(proc):
                self._say(
                    f"{name} (pid {proc.pid}) ignored SIG{sig.name} for {STOP_TIMEOUT_S:.0f} s; SIGKILL"
                )
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                while self._alive(proc):
                    time.sleep(0.05)
            self._children.pop(proc.pid, None)
            self._say(f"{name} stopped (pid {proc.pid})")
        for name in names:
            self._state["processes"].pop(name, None)
        self._save()

    # -- down / status ------------------------------------------------------------------------------

    def down(self) -> None:
        """Stop the front, the nodes, memcached and Cassandra (those this cluster started), then
        forget the state. Logs and data stay in the run directory."""
        procs = self._state["processes"]
        if "nginx" in procs:
            self._stop(["nginx"])
        self._stop([name for name in list(procs) if name != "nginx"])
        ports = self._state["memcached"]["ports"]
        if ports:
            self._say(
                self._script(["memcached.sh", "stop", *map(str, ports)], 60, self._memcached_env()).strip()
            )
        cassandra = self._state["cassandra"]
        if cassandra is not None:
            args = ["cassandra/stop.sh", "--data-dir", cassandra["data_dir"]]
            self._say(self._script([*args, "--timeout", str(CASSANDRA_STOP_TIMEOUT_S)], 120).strip())
        with contextlib.suppress(FileNotFoundError):
            (self.run_dir / STATE_FILE).unlink()
        self._say(f"cluster in {self.run_dir} stopped")

    def pids(self) -> dict[str, int]:
        """The recorded processes (nodes, nginx) that still run, by name."""
        return {
            name: p.pid for name in self._state["processes"] if (p := self._proc(name)) and self._alive(p)
        }

    def expected(self) -> list[str]:
        """Names of everything this cluster started (as ``running`` names them)."""
        names = list(self._state["processes"])
        names += [f"memcached:{port}" for port in self._state["memcached"]["ports"]]
        return [*names, "cassandra"] if self._state["cassandra"] is not None else names

    def running(self) -> list[str]:
        """Names of what still runs: processes, memcached ports, Cassandra."""
        alive = [name for name in self._state["processes"] if (p := self._proc(name)) and self._alive(p)]
        memcached_dir = Path(self._state["memcached"]["dir"])
        for port in self._state["memcached"]["ports"]:
            if pid_file_alive(memcached_dir / f"{port}.pid"):
                alive.append(f"memcached:{port}")
        cassandra = self._state["cassandra"]
        if cassandra is not None and pid_file_alive(Path(cassandra["data_dir"]) / "cassandra.pid"):
            alive.append("cassandra")
        return alive

    def status_lines(self) -> list[str]:
        lines = [
            f"front {self.front_url}: /healthz {http_status(self.front_url + '/healthz') or 'no answer'}"
        ]
        for node in self.topology.nodes:
            proc = self._proc(node.name)
            state = f"pid {proc.pid}" if proc and self._alive(proc) else "not running"
            ready = http_status(f"{self.node_url(node.name)}/readyz") or "no answer"
            lines.append(f"{node.name:<12} {node.role:<9} {node.address:<16} {state:<12} /readyz {ready}")
        for m in self.topology.memcached:
            answers = "answers" if memcached_answers(m.host, m.port) else "no answer"
            lines.append(f"{m.name:<12} {'memcached':<9} {m.address:<16} {answers}")
        c = self.topology.cassandra
        cql = "answers" if cql_answers(c.host, c.port) else "no answer"
        lines.append(f"{'cassandra':<12} {'cassandra':<9} {c.host}:{c.port:<6} CQL {cql}")
        return lines

    # -- helpers ------------------------------------------------------------------------------------

    def _memcached_env(self) -> dict[str, str]:
        return {**os.environ, "MEMCACHED_DIR": str(self._state["memcached"]["dir"])}

    def _script(self, args: list[str], timeout: float | None, env: dict[str, str] | None = None) -> str:
        argv = ["bash", str(SCRIPTS / args[0]), *args[1:]]
        try:
            done = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, env=env,
                check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(f"{' '.join(args)} did not finish within {timeout} s") from exc
        if done.returncode != 0:
            raise ClusterError(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
        return done.stdout

    def _save(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.run_dir / f"{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(self._state, indent=2) + "\n")
        tmp.replace(self.run_dir / STATE_FILE)
