"""The Helm chart on the real single-node Kubernetes: ``python -m bench.k8s``.

    python -m bench.k8s [--figures FILE] [--markdown-out PATH]

Runs ``tests/k8s/test_live.py`` (build the images, start Kubernetes, ``helm install``, FFmpeg and the
players, the failover drills, ``helm upgrade``, scaling, ``helm test``, ``helm uninstall``: about ten
minutes, as root) with ``HEADWATER_K8S_FIGURES`` pointing at a fresh file, then prints the figures that
run recorded as a Markdown block (for BENCHMARKS.md). ``--figures FILE`` renders a file an earlier run
(e.g. ``make test``, which writes ``.cache/k8s/figures.json``) left instead of running again. The
figures are measured, never asserted: the test asserts behaviour (no stall over 1 s, and so on).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.report import collect_environment

INSTALL_GOAL_S = 60.0
STALL_GOAL_S = 1.0


def run_live_test(figures: Path) -> None:
    env = os.environ | {"HEADWATER_K8S_FIGURES": str(figures)}
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/k8s/test_live.py"]
    subprocess.run(argv, env=env, check=True)


def default_requests() -> tuple[float, float]:
    """CPU cores and memory GiB the chart's default values request, every replica counted
    (``helm template``: what must fit one 2-core, 24 GB node beside the control plane)."""
    yaml: Any = importlib.import_module("yaml")
    helm = (
        Path(os.environ.get("HEADWATER_K8S_HOME") or Path.home() / ".cache" / "headwater-k8s")
        / "bin"
        / "helm"
    )
    out = subprocess.run(
        [str(helm), "template", "headwater", "deploy/k8s/headwater", "--namespace", "headwater",
         "--kube-version", "v1.37.2"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    cpu = memory = 0.0
    for doc in yaml.safe_load_all(out):
        if not doc or doc.get("kind") not in ("Deployment", "StatefulSet"):
            continue
        replicas = doc["spec"].get("replicas", 1)
        for container in doc["spec"]["template"]["spec"]["containers"]:
            requests = container.get("resources", {}).get("requests", {})
            cpu += replicas * _quantity(str(requests.get("cpu", "0")))
            memory += replicas * _quantity(str(requests.get("memory", "0"))) / 2**30
    return cpu, memory


def _quantity(text: str) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def _mib(value: int) -> str:
    return f"{value / 2**20:.0f} MiB"


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _stall_row(label: str, values: list[float]) -> str:
    worst = max(values, default=0.0)
    shown = ", ".join(f"{v:g} s" for v in values) or "none"
    return f"| stalls, {label} | {shown} | each ≤ {STALL_GOAL_S:g} s: {_met(worst <= STALL_GOAL_S)} |"


def _component(pod: str) -> str:
    """``headwater-ingest-d5c68d7d7-k5j2t`` → ``ingest``; ``headwater-packager-2`` → ``packager``."""
    return re.sub(r"-([0-9a-f]{8,10}-)?[a-z0-9]{5}$|-[0-9]+$", "", pod).removeprefix("headwater-")


def _rss_by_component(rss: dict[str, int]) -> dict[str, str]:
    groups: dict[str, list[int]] = {}
    for pod, value in rss.items():
        groups.setdefault(_component(pod), []).append(value)
    return {name: " / ".join(_mib(v) for v in sorted(values)) for name, values in sorted(groups.items())}


def markdown(figures: dict[str, Any]) -> str:
    lines = ["| figure | value | goal |", "| --- | ---: | --- |"]
    install = figures.get("install_to_first_segment_s")
    if install is not None:
        lines.append(
            f"| `helm install` → first playable segment (images present) | {install:.1f} s | "
            f"≤ {INSTALL_GOAL_S:.0f} s: {_met(install <= INSTALL_GOAL_S)} |"
        )
    steady = figures.get("steady_stalls_s", {})
    for name, values in sorted(steady.items()):
        player, channel = name.split(" ", 1)
        ingest = "long-running `Streams()` POSTs" if channel == "posts" else "per-segment PUTs"
        lines.append(_stall_row(f"{player} 30 s, {ingest}", values))
    for player, values in sorted(figures.get("drill_stalls_s", {}).items()):
        lines.append(
            _stall_row(f"{player} 48 s while deleting the packager, an ingest, a memcached pod", values)
        )
    upgrade = figures.get("upgrade")
    if upgrade:
        lines.append(f"| `helm upgrade` rollout (every workload but the 1-replica Cassandra) | "
                     f"{upgrade['rollout_s']:.0f} s | |")  # fmt: skip
        lines.append(_stall_row("hls.js through that upgrade", upgrade["stalls_s"]))
    share = figures.get("scale_3_to_4_moved_share")
    if share is not None:
        moved = "channels moved by `kubectl scale` 3 → 4 packagers (of 200)"
        lines.append(f"| {moved} | {share:.1%} | about 25 % |")
    busy = _rss_by_component(figures.get("rss_streaming_bytes", {}))
    rest = _rss_by_component(figures.get("rss_rest_bytes", {}))
    rss_rows = [
        "| pod (each replica) | RSS 1 min into two streams | RSS at rest: streams stopped, end of run |",
        "| --- | ---: | ---: |",
    ]
    for name in sorted(set(busy) | set(rest)):
        rss_rows.append(f"| {name} | {busy.get(name, '—')} | {rest.get(name, '—')} |")
    total = sum(figures.get("rss_streaming_bytes", {}).values())
    cpu, memory = default_requests()
    notes = (
        f"\n\nAll pods together, 1 min into the streams: {_mib(total)} RSS. The chart's default requests,"
        f" every replica counted: {cpu:.2f} CPU, {memory:.1f} GiB (goal: the whole stack fits one 2-core,"
        f" 24 GB node beside the control plane: {_met(cpu <= 1.4 and memory <= 24)})."
    )
    return "\n".join(lines) + "\n\n" + "\n".join(rss_rows) + notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.k8s", description=__doc__.split("\n")[0])
    parser.add_argument("--figures", type=Path, default=None, help="render this figures file, run nothing")
    parser.add_argument("--markdown-out", type=Path, default=None)
    args = parser.parse_args(argv)
    environment = collect_environment(" ".join(["python -m bench.k8s", *(argv or sys.argv[1:])]))
    figures_path = args.figures
    if figures_path is None:
        figures_path = Path(tempfile.mkdtemp(prefix="bench-k8s-")) / "figures.json"
        run_live_test(figures_path)
    figures = json.loads(figures_path.read_text())
    report = (
        f"- command: `{environment.command}`\n- git: {environment.git}\n- date: {environment.date}\n"
        f"- machine: {environment.nproc} CPUs, {environment.cpu}\n\n{markdown(figures)}\n"
    )
    print(report, end="")
    if args.markdown_out is not None:
        args.markdown_out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
