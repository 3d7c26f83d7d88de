"""Driving the project's single-node Kubernetes from tests: the scripts under ``scripts/k8s`` and
``scripts/images``, ``kubectl`` and ``helm`` from the Kubernetes home, a self-healing port-forward to
the router on 127.0.0.1, and FFmpeg pushers that restart like an encoder's supervisor."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from services.demo import run_pusher, stop_pusher

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "k8s" / "headwater"
NAMESPACE = "headwater"
RELEASE = "headwater"
_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
K8S_HOME = Path(os.environ.get("HEADWATER_K8S_HOME") or _CACHE / "headwater-k8s")
IMAGES_HOME = _CACHE / "headwater-images"
KUBECONFIG = K8S_HOME / "admin.kubeconfig"
IMAGES = ("headwater", "headwater-router", "headwater-memcached", "headwater-cassandra")


class KubeError(AssertionError):
    pass


def run(argv: Sequence[str], *, timeout_s: float = 120, env: dict[str, str] | None = None) -> str:
    """Run a command to completion; its stdout, or ``KubeError`` with both streams."""
    result = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout_s, check=False,
        env=None if env is None else os.environ | env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if result.returncode != 0:
        raise KubeError(
            f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result.stdout


def kubectl(*args: str, timeout_s: float = 60) -> str:
    return run([str(K8S_HOME / "bin" / "kubectl"), f"--kubeconfig={KUBECONFIG}", "-n", NAMESPACE, *args],
               timeout_s=timeout_s)  # fmt: skip


def helm(*args: str, timeout_s: float = 600) -> str:
    return run([str(K8S_HOME / "bin" / "helm"), f"--kubeconfig={KUBECONFIG}", "-n", NAMESPACE, *args],
               timeout_s=timeout_s)  # fmt: skip


def build_images() -> tuple[str, list[str]]:
    """``scripts/images/build.sh``: the tag and the four archives."""
    run(["bash", str(REPO / "scripts" / "images" / "build.sh")], timeout_s=1800)
    tag = (IMAGES_HOME / "TAG").read_text().strip()
    archives = [str(IMAGES_HOME / "archives" / f"{image}-{tag}.tar") for image in IMAGES]
    missing = [a for a in archives if not Path(a).is_file()]
    if missing:
        raise KubeError(f"scripts/images/build.sh made no {missing}")
    return tag, archives


def start_cluster(archives: Sequence[str]) -> None:
    run(["bash", str(REPO / "scripts" / "k8s" / "build.sh")], timeout_s=3600)
    run(["bash", str(REPO / "scripts" / "k8s" / "start.sh")], timeout_s=600,
        env={"IMAGES": " ".join(archives), "FRESH": "1"})  # fmt: skip


def stop_cluster() -> None:
    run(["bash", str(REPO / "scripts" / "k8s" / "stop.sh")], timeout_s=300)


def pods(selector: str) -> list[dict[str, str]]:
    """name, ip, phase, ready of the pods matching ``selector`` (a label selector)."""
    template = (
        '{range .items[*]}{.metadata.name}{"\\t"}{.status.podIP}{"\\t"}{.status.phase}{"\\t"}'
        '{.metadata.deletionTimestamp}{"\\t"}'
        '{range .status.conditions[?(@.type=="Ready")]}{.status}{end}{"\\n"}{end}'
    )
    out = kubectl("get", "pods", "-l", selector, "-o", f"jsonpath={template}")
    rows = []
    for line in out.splitlines():
        name, ip, phase, deleting, ready = (line.split("\t") + [""] * 5)[:5]
        rows.append({"name": name, "ip": ip, "phase": phase, "deleting": deleting, "ready": ready})
    return rows


def component(name: str) -> str:
    return f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={name}"


def wait_for(what: str, check: Callable[[], bool], *, timeout_s: float, interval_s: float = 1.0) -> float:
    """Seconds until ``check()`` holds; ``KubeError`` naming ``what`` after ``timeout_s``."""
    started = time.monotonic()
    while True:
        with contextlib.suppress(KubeError, httpx.HTTPError):
            if check():
                return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise KubeError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(interval_s)


def rss_bytes(pod: str) -> int:
    """The resident memory of every process in ``pod``'s first container (sum of VmRSS)."""
    out = kubectl("exec", pod, "--", "sh", "-c", "cat /proc/[0-9]*/status 2>/dev/null | grep '^VmRSS:'")
    return sum(int(line.split()[1]) for line in out.splitlines()) * 1024


class RouterEntry:
    """127.0.0.1:``port`` → the router pods, as the L4 load balancer in front of the router Service
    would be: one ``kubectl port-forward pod/…`` per ready router pod (each on a local port of its
    own), every new connection to a pod that is not terminating, and each connection kept on its pod
    until it ends. (A single ``port-forward svc/…`` is bound to one pod and dies with it.)"""

    def __init__(self, port: int, log_path: Path, selector: str) -> None:
        self.port, self.log_path, self.selector = port, log_path, selector
        self._backends: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        self._usable: list[str] = []
        self._turn = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", port))
        self._threads = [threading.Thread(target=f, daemon=True) for f in (self._watch, self._accept)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RouterEntry:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=10)
        with self._lock:
            for proc, _ in self._backends.values():
                proc.terminate()
                proc.wait(timeout=10)
            self._backends.clear()

    def _watch(self) -> None:
        # straight to the API server: a kubectl process 3 times a second would cost a core
        with _api_client() as api:
            while not self._stop.wait(0.3):
                with contextlib.suppress(httpx.HTTPError, KeyError):
                    self._follow(_api_pods(api, self.selector))

    def _follow(self, rows: list[dict[str, str]]) -> None:
        serving = [r["name"] for r in rows if r["ready"] == "True" and not r["deleting"]]
        for name in serving:
            if name not in self._backends:
                self._open(name)
        gone: list[subprocess.Popen[bytes]] = []
        with self._lock:
            self._usable = [n for n in serving if n in self._backends]
            for name, (proc, _) in list(self._backends.items()):
                if proc.poll() is not None or name not in {r["name"] for r in rows}:
                    gone.append(proc)
                    del self._backends[name]
        for proc in gone:
            proc.terminate()
            proc.wait(timeout=10)

    def _open(self, pod: str) -> None:
        local = _free_port()
        argv = [
            str(K8S_HOME / "bin" / "kubectl"), f"--kubeconfig={KUBECONFIG}", "-n", NAMESPACE, "port-forward",
            f"pod/{pod}", f"{local}:8080", "--address", "127.0.0.1",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", local), timeout=0.2):
                with self._lock:
                    self._backends[pod] = (proc, local)
                return
            time.sleep(0.05)
        proc.terminate()
        proc.wait(timeout=10)

    def _pick(self) -> int | None:
        with self._lock:
            if not self._usable:
                return None
            self._turn += 1
            return self._backends[self._usable[self._turn % len(self._usable)]][1]

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        local = self._pick()
        try:
            upstream = socket.create_connection(("127.0.0.1", local), timeout=5) if local else None
        except OSError:
            upstream = None
        if upstream is None:
            client.close()
            return
        upstream.settimeout(None)
        back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
        back.start()
        _pipe(client, upstream)
        back.join()
        client.close()
        upstream.close()


def _api_client() -> httpx.Client:
    pki = K8S_HOME / "pki"
    context = ssl.create_default_context(cafile=pki / "ca.crt")
    context.load_cert_chain(pki / "admin.crt", pki / "admin.key")
    return httpx.Client(base_url="https://127.0.0.1:6443", verify=context, timeout=2)


def _api_pods(api: httpx.Client, selector: str) -> list[dict[str, str]]:
    """Like ``pods`` (name, ready, deleting), read from the API server without a kubectl process."""
    reply = api.get(f"/api/v1/namespaces/{NAMESPACE}/pods", params={"labelSelector": selector})
    reply.raise_for_status()
    rows = []
    for item in reply.json()["items"]:
        conditions = item.get("status", {}).get("conditions", [])
        ready = next((c["status"] for c in conditions if c["type"] == "Ready"), "")
        deleting = item["metadata"].get("deletionTimestamp") or ""
        rows.append({"name": item["metadata"]["name"], "ready": ready, "deleting": deleting})
    return rows


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Supervised:
    """An FFmpeg pusher restarted whenever it exits, as an encoder's supervisor would; ``command``
    is called for each start (e.g. to anchor decode times to the wall clock anew)."""

    def __init__(self, command: Callable[[], list[str]], log_path: Path) -> None:
        self.command, self.log_path = command, log_path
        self.starts = 0
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._keep, daemon=True)

    def start(self) -> Supervised:
        self._thread.start()
        return self

    def _keep(self) -> None:
        while not self._stop.is_set():
            self.starts += 1
            self._proc = run_pusher(self.command(), log_path=self.log_path)
            while self._proc.poll() is None and not self._stop.is_set():
                time.sleep(0.1)
            self._stop.wait(1.0)

    def restart(self) -> None:
        """Stop the running FFmpeg; the supervisor starts a new one (e.g. one whose init segments
        were refused: FFmpeg's DASH muxer never sends them again)."""
        if self._proc is not None:
            stop_pusher(self._proc)

    def stop(self) -> None:
        self._stop.set()
        if self._proc is not None:
            stop_pusher(self._proc)
        self._thread.join(timeout=15)


@dataclass
class SequenceWatch:
    """Polls a media playlist while it runs: a media sequence number must never go back, and the same
    number must always name the same segment (no renumbering, no jump)."""

    url: str
    interval_s: float = 1.0
    problems: list[str] | None = None
    polls: int = 0

    def __post_init__(self) -> None:
        self.problems = []
        self._seen: dict[int, str] = {}
        self._last = -1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @contextlib.contextmanager
    def running(self) -> Iterator[SequenceWatch]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=15)

    def _run(self) -> None:
        import m3u8  # noqa: PLC0415

        assert self.problems is not None
        with httpx.Client(timeout=5) as client:
            while not self._stop.wait(self.interval_s):
                with contextlib.suppress(httpx.HTTPError):
                    reply = client.get(self.url)
                    if reply.status_code != 200:
                        continue
                    playlist = m3u8.loads(reply.text)
                    self.polls += 1
                    first = playlist.media_sequence or 0
                    if first < self._last:
                        self.problems.append(f"media sequence went back from {self._last} to {first}")
                    self._last = first
                    for offset, segment in enumerate(s for s in playlist.segments if s.uri):
                        number = first + offset
                        known = self._seen.setdefault(number, segment.uri)
                        if known != segment.uri:
                            self.problems.append(f"media sequence {number} was {known}, now {segment.uri}")
