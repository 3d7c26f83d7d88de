"""``python -m services.router``: nginx, the cluster front, kept in step with DNS (see ``discovery``).

Every ``--refresh-s`` the router reads DNS; when the reading differs from the last one it renders
nginx.conf (``services/cluster/nginx_conf.py``, the local cluster's front with its routing rules),
checks it with ``nginx -t`` and reloads nginx (SIGHUP: new workers, old ones finish their requests).
A reading nginx refuses (a name that stopped resolving in between) is retried on the next tick.
On SIGTERM it waits ``--drain-s`` (Kubernetes takes the pod out of the Service meanwhile), then asks
nginx to quit gracefully (SIGQUIT) and exits with it. If nginx dies, the router exits non-zero and
Kubernetes restarts the pod.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from services.cluster import nginx_conf
from services.router import discovery

log = logging.getLogger("headwater.router")


def resolve(host: str) -> Sequence[str]:
    """The IPv4 addresses of ``host``; empty if it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, None, family=socket.AF_INET, type=socket.SOCK_STREAM)
    except OSError:
        return ()
    return tuple(str(info[4][0]) for info in infos)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.router", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8080, help="the front's port")
    parser.add_argument("--status-port", type=int, default=8081, help="/healthz for the probes")
    parser.add_argument("--listen", default="0.0.0.0", help="listen address (the pod's every address)")
    parser.add_argument(
        "--packagers", required=True,
        help="host:port of packager {i}, e.g. hw-packager-{i}.hw-packager.ns.svc.cluster.local:8080",
    )  # fmt: skip
    parser.add_argument("--max-packagers", type=int, default=16, help="ordinals probed: 0 .. this - 1")
    parser.add_argument("--ingest", required=True, help="host:port of the ingest nodes' headless Service")
    parser.add_argument("--refresh-s", type=float, default=2.0, help="how often DNS is read")
    parser.add_argument("--drain-s", type=float, default=3.0, help="on SIGTERM, serve this long, then quit")
    parser.add_argument("--run-dir", type=Path, default=Path("/tmp/router"), help="nginx.conf, pid, temp")
    parser.add_argument("--nginx", default="/usr/sbin/nginx")
    parser.add_argument("--workers", type=int, default=1, help="nginx worker processes")
    return parser


class Router:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.conf = args.run_dir / "nginx.conf"
        self.nginx: subprocess.Popen[bytes] | None = None
        self.current: discovery.Targets | None = None
        self.stopping = threading.Event()

    def read(self) -> discovery.Targets:
        return discovery.read(
            resolve,
            packager_template=self.args.packagers,
            max_packagers=self.args.max_packagers,
            ingest=self.args.ingest,
        )

    def apply(self, targets: discovery.Targets) -> None:
        """Render and check the config for ``targets``; start nginx or reload it."""
        text = nginx_conf.render(
            discovery.topology(targets, front_port=self.args.port),
            run_dir=self.args.run_dir,
            workers=self.args.workers,
            listen_host=self.args.listen,
            status_port=self.args.status_port,
            error_log="stderr",
        )
        candidate = self.conf.with_suffix(".next")
        candidate.write_text(text)
        test = [self.args.nginx, "-t", "-q", "-e", "stderr", "-c", str(candidate)]
        check = subprocess.run(test, check=False, capture_output=True, text=True)
        if check.returncode != 0:
            log.warning("nginx refused the new configuration, keeping the old one: %s", check.stderr.strip())
            return
        candidate.replace(self.conf)
        if self.nginx is None:
            self.nginx = subprocess.Popen([self.args.nginx, "-e", "stderr", "-c", str(self.conf)])
        else:
            self.nginx.send_signal(signal.SIGHUP)
        self.current = targets
        names = ", ".join(host for host, _ in targets.packagers) or "none yet"
        log.info("routing: packagers %s; ingest %s", names, ", ".join(targets.ingest) or "none yet")

    def run(self) -> int:
        for name in nginx_conf.TEMP_PATHS:
            (self.args.run_dir / "temp" / name).mkdir(parents=True, exist_ok=True)
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        signal.signal(signal.SIGINT, lambda *_: self.stopping.set())
        while not self.stopping.is_set():
            targets = self.read()
            if targets != self.current:
                self.apply(targets)
            if self.nginx is not None and self.nginx.poll() is not None:
                log.error("nginx exited with status %s", self.nginx.returncode)
                return 1
            self.stopping.wait(self.args.refresh_s)
        return self.stop()

    def stop(self) -> int:
        log.info("SIGTERM: serving %.1f s more, then quitting nginx gracefully", self.args.drain_s)
        time.sleep(self.args.drain_s)
        if self.nginx is None:
            return 0
        self.nginx.send_signal(signal.SIGQUIT)
        return self.nginx.wait()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args.run_dir.mkdir(parents=True, exist_ok=True)
    return Router(args).run()


if __name__ == "__main__":
    sys.exit(main())
