"""The Helm chart on a real single-node Kubernetes (scripts/k8s), end to end.

One deployment for the whole module, its tests run in file order: ``helm install`` of the chart with
``deploy/k8s/ci/small-values.yaml`` and the images ``scripts/images/build.sh`` made from this tree;
FFmpeg pushes two channels through the router (reached on 127.0.0.1 by ``kubectl port-forward``):
``puts`` with per-segment PUTs after a DASH manifest, ``posts`` with a long-running ``Streams()`` POST
per track (restarted like an encoder's supervisor would, with decode times anchored to the wall
clock). Then hls.js and dash.js play in headless Chromium while pods are deleted, the release is
upgraded and the packagers are scaled; ``helm test`` runs the chart's own check and ``helm uninstall``
must leave nothing behind. Figures (time to the first playable segment, every pod's RSS, the stalls)
go to ``$HEADWATER_K8S_FIGURES`` (default ``.cache/k8s/figures.json``) for ``python -m bench.k8s``.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import m3u8
import pytest

from services.demo import LADDER, dash_put_command, long_post_command, wallclock_offset_s
from tests.e2e.origin import free_port
from tests.e2e.players import PlayerKind, PlayerStats, play
from tests.k8s import kube
from tests.k8s.kube import CHART, NAMESPACE, RELEASE, component, helm, kubectl, pods

pytestmark = [pytest.mark.e2e, pytest.mark.k8s]
VALUES = kube.REPO / "deploy" / "k8s" / "ci" / "small-values.yaml"
PUTS, POSTS = "puts", "posts"
MAX_STALL_S = 1.0
DRILL_PLAY_S = 48
DRILL_EVERY_S = 11
FIGURES = Path(os.environ.get("HEADWATER_K8S_FIGURES") or kube.REPO / ".cache" / "k8s" / "figures.json")


@dataclass
class Deployment:
    tag: str
    forward: kube.RouterEntry
    logs: Path
    pushers: list[kube.Supervised] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.forward.url

    def live(self, channel: str) -> str:
        return f"{self.url}/live/{channel}"


def _install(tag: str) -> None:
    helm("install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--create-namespace",
         "-f", str(VALUES), "--set", f"image.tag={tag}", timeout_s=900)  # fmt: skip


def _media_url(client: httpx.Client, live: str) -> httpx.URL | None:
    """The channel's first variant (video) media playlist, once the multivariant playlist lists it."""
    master = client.get(f"{live}/hls/index.m3u8")
    if master.status_code != 200 or not m3u8.loads(master.text).playlists:
        return None
    return httpx.URL(f"{live}/hls/").join(m3u8.loads(master.text).playlists[0].uri)


def _playable(client: httpx.Client, live: str) -> bool:
    """The channel's first video media playlist lists a segment that can be fetched."""
    media_url = _media_url(client, live)
    if media_url is None:
        return False
    media = client.get(media_url)
    uris = [s.uri for s in m3u8.loads(media.text).segments if s.uri] if media.status_code == 200 else []
    return bool(uris) and client.get(media_url.join(uris[-1])).status_code == 200


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    logs = tmp_path_factory.mktemp("k8s")
    tag, archives = kube.build_images()
    kube.start_cluster(archives)
    forward = kube.RouterEntry(free_port(), logs / "port-forward.log", component("router"))
    deployment = Deployment(tag=tag, forward=forward, logs=logs)
    try:
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            installing = pool.submit(_install, tag)  # returns once the schema hook job is done
            kube.wait_for("a ready router", _router_ready, timeout_s=600)
            forward.start()
            # An encoder starts once its origin answers: FFmpeg's DASH muxer sends each init segment
            # once and never again, so one refused before the ingest nodes are up kills that channel.
            kube.wait_for(
                "the router to reach ready nodes", lambda: _routes_to_nodes(forward.url), timeout_s=600
            )
            _start_pushers(deployment)
            _wait_playable_restarting(deployment)
            deployment.figures["install_to_first_segment_s"] = round(time.monotonic() - started, 1)
            installing.result()
        for workload in ("deployment/headwater-ingest", "deployment/headwater-router",
                         "statefulset/headwater-packager", "statefulset/headwater-memcached"):  # fmt: skip
            kubectl("rollout", "status", workload, "--timeout=300s", timeout_s=320)
        yield deployment
    finally:
        for pusher in deployment.pushers:
            pusher.stop()
        forward.stop()
        FIGURES.parent.mkdir(parents=True, exist_ok=True)
        FIGURES.write_text(json.dumps(deployment.figures, indent=2, sort_keys=True))
        kube.stop_cluster()


def _wait_playable_restarting(deployment: Deployment, attempts: int = 5) -> None:
    """Wait for the per-segment channel to play; an encoder whose first PUTs (its init segments)
    came while the nodes were still settling is restarted, as an operator's supervisor would."""
    with httpx.Client(timeout=5) as client:
        for attempt in range(attempts):
            try:
                kube.wait_for("a playable segment", lambda: _playable(client, deployment.live(PUTS)),
                              timeout_s=60, interval_s=0.5)  # fmt: skip
                return
            except kube.KubeError:
                if attempt == attempts - 1:
                    raise
                deployment.pushers[0].restart()


def _routes_to_nodes(url: str) -> bool:
    """A run of ``/readyz`` through the router (round robin over every node) all answer 200."""
    with httpx.Client(timeout=2) as client:
        return all(client.get(f"{url}/readyz").status_code == 200 for _ in range(8))


def _router_ready() -> bool:
    return any(p["ready"] == "True" for p in pods(component("router")))


def _start_pushers(deployment: Deployment) -> None:
    rendition = LADDER[-1:]
    puts = kube.Supervised(
        lambda: dash_put_command(deployment.url, PUTS, ladder=rendition, persistent=False,
                                 ts_offset_s=wallclock_offset_s(), clock_font=None),
        deployment.logs / "ffmpeg-puts.log",
    )  # fmt: skip
    posts = kube.Supervised(
        lambda: long_post_command(deployment.url, POSTS, ladder=rendition, ts_offset_s=wallclock_offset_s(),
                                  clock_font=None),
        deployment.logs / "ffmpeg-posts.log",
    )  # fmt: skip
    deployment.pushers += [puts.start(), posts.start()]


def _owner_ip(client: httpx.Client, live: str) -> str:
    return client.get(f"{live}/hls/index.m3u8").headers["x-upstream"].split(",")[-1].strip().rsplit(":", 1)[0]


def _check_played(stats: PlayerStats, played_at_least_s: float, context: str) -> None:
    summary = f"{context}: {stats.summary()} stalls={stats.stalls}"
    assert stats.started and not stats.fatal_errors, summary
    assert stats.played_s >= played_at_least_s, summary
    assert all(s.duration_s <= MAX_STALL_S and not s.ongoing for s in stats.stalls), summary


def _stalls(stats: PlayerStats) -> list[float]:
    return [round(s.duration_s, 2) for s in stats.stalls]


def test_both_ingest_modes_play_through_the_router(deployment: Deployment) -> None:
    with httpx.Client(timeout=5) as client:
        kube.wait_for("the Streams() channel playable", lambda: _playable(client, deployment.live(POSTS)),
                      timeout_s=120)  # fmt: skip
    rss = {p["name"]: kube.rss_bytes(p["name"]) for p in pods(f"app.kubernetes.io/instance={RELEASE}")
           if p["phase"] == "Running"}  # fmt: skip
    deployment.figures["rss_streaming_bytes"] = rss
    hls = play("hls", f"{deployment.live(POSTS)}/hls/index.m3u8", seconds=30)
    dash = play("dash", f"{deployment.live(PUTS)}/dash/manifest.mpd", seconds=30)
    deployment.figures["steady_stalls_s"] = {"hls.js posts": _stalls(hls), "dash.js puts": _stalls(dash)}
    _check_played(hls, 25, "hls.js, Streams() POST channel")
    _check_played(dash, 25, "dash.js, per-segment PUT channel")


def _drills(deployment: Deployment, kind: PlayerKind, url: str) -> tuple[PlayerStats, list[str]]:
    """Play ``url`` while deleting the channel's packager, then an ingest pod, then a memcached pod."""
    live = deployment.live(PUTS)
    deleted: list[str] = []
    with httpx.Client(timeout=5) as client, concurrent.futures.ThreadPoolExecutor(1) as pool:
        playing = pool.submit(play, kind, url, seconds=DRILL_PLAY_S)
        owner_ip = _owner_ip(client, live)
        owner = next(p["name"] for p in pods(component("packager")) if p["ip"] == owner_ip)
        victims = [owner, pods(component("ingest"))[0]["name"], pods(component("memcached"))[0]["name"]]
        for victim in victims:
            time.sleep(DRILL_EVERY_S)
            kubectl("delete", "pod", victim, "--wait=false")
            deleted.append(victim)
        stats = playing.result()
    return stats, deleted


def test_deleting_pods_during_playback_is_not_seen_by_players(deployment: Deployment) -> None:
    live = deployment.live(PUTS)
    with httpx.Client(timeout=5) as client:
        media = _media_url(client, live)
    assert media is not None
    watch = kube.SequenceWatch(str(media))
    with watch.running():
        hls, hls_deleted = _drills(deployment, "hls", f"{live}/hls/index.m3u8")
        for workload in ("statefulset/headwater-packager", "deployment/headwater-ingest",
                         "statefulset/headwater-memcached"):  # fmt: skip
            kubectl("rollout", "status", workload, "--timeout=180s", timeout_s=200)
        dash, dash_deleted = _drills(deployment, "dash", f"{live}/dash/manifest.mpd")
    deployment.figures["drill_stalls_s"] = {"hls.js": _stalls(hls), "dash.js": _stalls(dash)}
    _check_played(hls, DRILL_PLAY_S - 6, f"hls.js while deleting {hls_deleted}")
    _check_played(dash, DRILL_PLAY_S - 6, f"dash.js while deleting {dash_deleted}")
    assert watch.polls > DRILL_PLAY_S, f"the playlist was read only {watch.polls} times"
    assert watch.problems == [], watch.problems


def test_helm_upgrade_rolls_every_workload_without_interrupting_playback(deployment: Deployment) -> None:
    live = deployment.live(PUTS)
    before = {p["name"]: p["ip"] for p in pods(f"app.kubernetes.io/instance={RELEASE}")}
    rolled = ("deployment/headwater-ingest", "deployment/headwater-router",
              "statefulset/headwater-packager", "statefulset/headwater-memcached")  # fmt: skip
    play_s = 150
    done = threading.Event()
    upgrade_s: list[float] = []

    def upgrade() -> None:
        started = time.monotonic()
        helm("upgrade", RELEASE, str(CHART), "--reuse-values", "--set", "node.logLevel=warning",
             "--set", "podAnnotations.headwater/rollout=1")  # fmt: skip
        for workload in rolled:
            kubectl("rollout", "status", workload, "--timeout=300s", timeout_s=320)
        upgrade_s.append(time.monotonic() - started)
        done.set()

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        playing = pool.submit(play, "hls", f"{live}/hls/index.m3u8", seconds=play_s)
        time.sleep(8)
        upgrading = pool.submit(upgrade)
        upgrading.result()
        stats = playing.result()
    after = {p["name"]: p["ip"] for p in pods(f"app.kubernetes.io/instance={RELEASE}")}
    deployment.figures["upgrade"] = {"rollout_s": round(upgrade_s[0], 1), "stalls_s": _stalls(stats)}
    assert done.is_set() and upgrade_s[0] < play_s - 8, f"the rollout outlasted playback: {upgrade_s}"
    restarted = {name for name, ip in before.items() if after.get(name) != ip}
    kept = set(before) - restarted
    assert all(not name.startswith(("headwater-ingest", "headwater-router", "headwater-packager",
                                    "headwater-memcached")) for name in kept), kept  # fmt: skip
    _check_played(stats, play_s - 10, "hls.js through helm upgrade")


def test_scaling_packagers_moves_about_a_quarter_of_the_channels(deployment: Deployment) -> None:
    channels = [f"scale-{i}" for i in range(200)]
    with httpx.Client(timeout=5) as client:

        def owners() -> dict[str, str]:
            return {ch: _owner_ip(client, deployment.live(ch)) for ch in channels}

        before = owners()
        assert len(set(before.values())) == 3, set(before.values())
        kubectl("scale", "statefulset/headwater-packager", "--replicas=4")
        kubectl("rollout", "status", "statefulset/headwater-packager", "--timeout=180s", timeout_s=200)
        newcomer = next(p["ip"] for p in pods(component("packager")) if p["name"].endswith("-3"))
        kube.wait_for("the router to route to packager 3",
                      lambda: newcomer in owners().values(), timeout_s=60)  # fmt: skip
        after = owners()
    moved = [ch for ch in channels if before[ch] != after[ch]]
    deployment.figures["scale_3_to_4_moved_share"] = round(len(moved) / len(channels), 3)
    assert all(after[ch] == newcomer for ch in moved), "a channel moved between two old packagers"
    assert 0.1 <= len(moved) / len(channels) <= 0.4, f"{len(moved)} of {len(channels)} channels moved"
    kubectl("scale", "statefulset/headwater-packager", "--replicas=3")


def test_helm_test_passes(deployment: Deployment) -> None:
    # the test pod (`headwater selftest` through the router) is deleted once it succeeded: no --logs
    out = helm("test", RELEASE, timeout_s=300)
    assert re.search(r"TEST SUITE:\s+headwater-test\n.*\n.*\nPhase:\s+Succeeded", out), out


def test_uninstall_leaves_nothing(deployment: Deployment) -> None:
    for pusher in deployment.pushers:
        pusher.stop()
    deployment.pushers.clear()
    time.sleep(10)  # no stream flowing: memory at rest
    deployment.figures["rss_rest_bytes"] = {
        p["name"]: kube.rss_bytes(p["name"])
        for p in pods(f"app.kubernetes.io/instance={RELEASE}")
        if p["phase"] == "Running"
    }
    deployment.forward.stop()
    helm("uninstall", RELEASE, "--wait", "--timeout", "180s", timeout_s=240)
    kinds = "all,configmap,secret,pdb,networkpolicy,serviceaccount,job,pvc,hpa,endpointslice"

    def empty() -> bool:
        left = kubectl("get", kinds, "-o", "name").split()
        # what Kubernetes itself keeps in every namespace
        return [r for r in left if r not in ("configmap/kube-root-ca.crt", "serviceaccount/default")] == []

    kube.wait_for("the namespace emptied", empty, timeout_s=120)
    assert kubectl("get", "pods", "-o", "name").strip() == ""
