"""``headwater cluster up|down|status``: the local multi-node cluster (services/cluster/runner.py)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from services.cluster import topology as topo
from services.cluster.runner import REPO_ROOT, ClusterError, LocalCluster, Options

DEFAULT_TOPOLOGY = REPO_ROOT / "deploy" / "cluster.json"
DEFAULT_RUN_DIR = Path(".headwater-cluster")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cluster = subparsers.add_parser(
        "cluster",
        help="a local multi-node cluster: memcached, Cassandra, ingest and packager nodes, an nginx front",
        description="Runs every process on 127.0.0.1; pids, logs and data live in the run directory.",
    )
    actions = cluster.add_subparsers(dest="action", required=True)
    up = actions.add_parser("up", help="start the cluster and print the front's URL when it is ready")
    up.add_argument(
        "--topology", type=Path, default=DEFAULT_TOPOLOGY,
        help=f"node list (JSON) [default: {DEFAULT_TOPOLOGY.relative_to(REPO_ROOT)}]",
    )  # fmt: skip
    up.add_argument("--port", type=int, default=None, help="front port [default: the topology's, 8080]")
    up.add_argument("--log-level", default="info", help="the nodes' log level")
    up.add_argument(
        "--external-cassandra", action="store_true",
        help="use the Cassandra already answering at the topology's address (neither started nor stopped)",
    )  # fmt: skip
    up.add_argument(
        "--foreground",
        action="store_true",
        help="keep running until Ctrl-C (or SIGTERM), then stop everything",
    )
    down = actions.add_parser("down", help="stop everything `up` started in the run directory")
    status = actions.add_parser("status", help="what runs and whether it answers")
    for parser in (up, down, status):
        parser.add_argument(
            "--run-dir",
            type=Path,
            default=DEFAULT_RUN_DIR,
            help=f"state, logs and data [default: {DEFAULT_RUN_DIR}]",
        )


def run(args: argparse.Namespace) -> int:
    """Carry out ``headwater cluster <action>``; the process exit code."""
    try:
        if args.action == "up":
            return _up(args)
        cluster = LocalCluster.from_run_dir(args.run_dir)
        if cluster is None:
            print(f"no cluster recorded in {args.run_dir}")
            return 0 if args.action == "down" else 3
        if args.action == "down":
            cluster.down()
            return 0
        for line in cluster.status_lines():
            print(line)
        missing = _missing(cluster)
        if missing:
            print(f"not running: {', '.join(missing)}")
        return 1 if missing else 0
    except (ClusterError, topo.TopologyError) as exc:
        print(f"headwater cluster {args.action}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _up(args: argparse.Namespace) -> int:
    topology = topo.load(args.topology)
    if args.port is not None:
        topology = topology.with_front_port(args.port)
    options = Options(
        run_dir=args.run_dir, log_level=args.log_level, manage_cassandra=not args.external_cassandra
    )
    cluster = LocalCluster(topology, options)
    # Any of these during startup stops what was started; with --foreground, the whole cluster. SIGINT
    # too: a shell starts background jobs with it ignored, and Python would then never see it.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    cluster.up()
    if not args.foreground:
        print(f"{cluster.front_url}  (stop with `headwater cluster down --run-dir {args.run_dir}`)")
        return 0
    print(f"{cluster.front_url}  (Ctrl-C stops the cluster)")
    try:
        reported: set[str] = set()
        while True:
            time.sleep(1.0)
            for name in _missing(cluster):
                if name not in reported:
                    print(f"warning: {name} is not running any more", file=sys.stderr)
                    reported.add(name)
            reported &= set(_missing(cluster))
    except KeyboardInterrupt:
        print("stopping")
        cluster.down()
    return 0


def _missing(cluster: LocalCluster) -> list[str]:
    """Processes (and memcached / Cassandra) the cluster started that no longer run."""
    running = set(cluster.running())
    expected = cluster.expected()
    return [name for name in expected if name not in running]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
