"""What the cluster front costs a publish: ``python -m bench.front``.

    python -m bench.front [--fragments 60] [--rounds 3] [--fragment-bytes 500000]
    (``make bench`` runs it after the other benchmarks: ``bench.run``, ``--skip-front`` to leave out)

One ``headwater serve`` (embedded store) is the only ingest node behind the front's nginx, configured
by ``services/cluster/nginx_conf.py`` exactly as ``headwater cluster up`` does. Synthetic ~500 KB
fragments (2 s of fake video) are POSTed one per request and timed client-side (``bench.publish``:
the request's last byte written -> the first byte of the ``200``, sent after the commit), four ways:

- **node, Streams()** and **node, per-segment**: straight to the node (the baselines);
- **front, Streams()**: through nginx, streamed through (``proxy_request_buffering off``);
- **front, per-segment**: through nginx, which takes the whole body first and then delivers it, so
  it can deliver it again to another ingest node if the first dies before answering.

The ways take turns in rounds (each round a fresh channel per way) so drift on the shared machine
hits all of them alike. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.nginx import NGINX
from bench.procs import stop_process_group, tail, wait_for_port
from bench.publish import publish_samples
from services.cluster import nginx_conf
from services.cluster import topology as topo
from services.shared.metrics import quantile
from tests.e2e.origin import running_origin
from tests.integration.servers import free_ports

WAYS = ("node, Streams()", "node, per-segment", "front, Streams()", "front, per-segment")


@dataclass(frozen=True, slots=True)
class Way:
    name: str
    samples_ns: tuple[int, ...]

    def quantiles_ms(self) -> tuple[float, float]:
        samples = list(self.samples_ns)
        return quantile(samples, 0.5) / 1e6, quantile(samples, 0.99) / 1e6


@contextlib.contextmanager
def _front(run_dir: Path, topology: topo.Topology) -> Iterator[str]:
    for name in nginx_conf.TEMP_PATHS:
        (run_dir / "temp" / name).mkdir(parents=True, exist_ok=True)
    conf = run_dir / "nginx.conf"
    conf.write_text(nginx_conf.render(topology, run_dir=run_dir, run_as_root=os.geteuid() == 0))
    argv = [NGINX, "-p", f"{run_dir}/", "-c", str(conf), "-e", str(run_dir / "error.log")]
    with (run_dir / "nginx.out").open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, start_new_session=True)
    try:
        if not wait_for_port(topology.front_port, proc):
            raise RuntimeError(f"nginx did not start: {tail(run_dir / 'error.log')}")
        yield f"http://127.0.0.1:{topology.front_port}"
    finally:
        stop_process_group(proc)


def run(*, fragments: int = 60, rounds: int = 3, fragment_bytes: int = 500_000) -> list[Way]:
    samples: dict[str, list[int]] = {way: [] for way in WAYS}
    with tempfile.TemporaryDirectory(prefix="hw-bench-front-") as tmp:
        root = Path(tmp)
        topology = topo.sized(ingest=1, packagers=1, memcached=1, ports=free_ports(6))
        (root / "node").mkdir()
        (root / "front").mkdir()
        node_port = topology.ingest[0].port
        with (
            running_origin(root / "node", port=node_port) as origin,
            _front(root / "front", topology) as front,
        ):
            for round_number in range(rounds):
                for way in WAYS:
                    base = front if way.startswith("front") else origin.base_url
                    channel = f"r{round_number}-{WAYS.index(way)}"
                    samples[way] += publish_samples(
                        base,
                        channel,
                        fragments=fragments,
                        fragment_bytes=fragment_bytes,
                        per_segment=way.endswith("per-segment"),
                        check_url=origin.base_url,
                    )
    return [Way(way, tuple(samples[way])) for way in WAYS]


def markdown(ways: list[Way]) -> str:
    direct = {way.name.split(", ")[1]: way.quantiles_ms()[0] for way in ways if way.name.startswith("node")}
    lines = [
        "| publish, 500 KB POSTs, client-side | p50 | p99 | p50 vs straight to the node | n |",
        "|---|---|---|---|---|",
    ]
    for way in ways:
        p50, p99 = way.quantiles_ms()
        ratio = p50 / direct[way.name.split(", ")[1]]
        lines.append(f"| {way.name} | {p50:.2f} ms | {p99:.2f} ms | {ratio:.2f}x | {len(way.samples_ns)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.front", description=__doc__.split("\n")[0])
    parser.add_argument("--fragments", type=int, default=60, help="timed POSTs per way and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fragment-bytes", type=int, default=500_000)
    args = parser.parse_args(argv)
    print(markdown(run(fragments=args.fragments, rounds=args.rounds, fragment_bytes=args.fragment_bytes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
