"""The Helm chart ``deploy/k8s/headwater``, offline: lint, render, validate against the Kubernetes 1.37
schemas, refuse bad values, and keep the plain manifests and the chart README in step with the chart.

Needs helm from ``scripts/k8s/build.sh`` (``$HEADWATER_K8S_HOME/bin/helm``) and kubernetes-validate; no
cluster.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.k8s

# PyYAML and kubernetes-validate ship no type information: used through Any.
yaml: Any = importlib.import_module("yaml")
kubernetes_validate: Any = importlib.import_module("kubernetes_validate")

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "k8s" / "headwater"
CI_VALUES = sorted((ROOT / "deploy" / "k8s" / "ci").glob("*.yaml"))
MANIFESTS = ROOT / "deploy" / "k8s" / "manifests" / "headwater.yaml"
RENDER_SCRIPT = ROOT / "scripts" / "k8s" / "render-manifests.sh"
KUBE_VERSION = "v1.37.2"  # what scripts/k8s/build.sh builds
RELEASE = NAMESPACE = "headwater"
#: Kinds that are not built into Kubernetes (CRDs): their apiVersion/kind are checked, not their schema.
CRD_KINDS = {"ServiceMonitor": "monitoring.coreos.com/v1"}
NODE_COMPONENTS = ("ingest", "packager")
PDB_COMPONENTS = ("cassandra", "memcached", "packager", "ingest", "router")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job", "Pod")

Doc = dict[str, Any]


def ci_file(name: str) -> Path:
    path = ROOT / "deploy" / "k8s" / "ci" / f"{name}-values.yaml"
    assert path in CI_VALUES, f"missing CI values file {path}"
    return path


# -- helm -------------------------------------------------------------------------------------------------


@functools.cache
def helm_path() -> Path:
    home = Path(
        os.environ.get("HEADWATER_K8S_HOME")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "headwater-k8s"
    )
    helm = home / "bin" / "helm"
    if not (helm.is_file() and os.access(helm, os.X_OK)):
        pytest.fail(
            f"no helm at {helm}: run scripts/k8s/build.sh (it builds helm into $HEADWATER_K8S_HOME/bin)"
        )
    return helm


def helm(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm_path()), *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def template_args(*extra: str | Path) -> list[str | Path]:
    return ["template", RELEASE, CHART, "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION, *extra]


def values_args(values: Path | None) -> list[str | Path]:
    return ["-f", values] if values else []


@functools.cache
def render(values: Path | None = None, *sets: str) -> tuple[Doc, ...]:
    """Every document `helm template` renders (tests and hooks included) with ``values`` and ``--set``s."""
    args = template_args(*values_args(values), *(a for s in sets for a in ("--set", s)))
    result = helm(*args)
    assert result.returncode == 0, result.stderr
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def find(docs: tuple[Doc, ...], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec(doc: Doc) -> Doc:
    if doc["kind"] == "Pod":
        spec: Doc = doc["spec"]
        return spec
    template: Doc = doc["spec"]["template"]["spec"]
    return template


def workloads(docs: tuple[Doc, ...]) -> Iterator[Doc]:
    return (d for d in docs if d["kind"] in WORKLOAD_KINDS)


def env_of(container: Doc) -> dict[str, Any]:
    """name → value (a plain value) or the valueFrom mapping."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def main_container(docs: tuple[Doc, ...], kind: str, name: str) -> Doc:
    containers: list[Doc] = pod_spec(find(docs, kind, name))["containers"]
    assert len(containers) == 1
    return containers[0]


def node_container(docs: tuple[Doc, ...], component: str) -> Doc:
    kind = "StatefulSet" if component == "packager" else "Deployment"
    return main_container(docs, kind, f"{RELEASE}-{component}")


def pod_dns(component: str, i: int) -> str:
    return f"{RELEASE}-{component}-{i}.{RELEASE}-{component}.{NAMESPACE}.svc.cluster.local"


def values_ids(path: Path | None) -> str:
    return "chart-defaults" if path is None else path.stem


ALL_VALUES: list[Path | None] = [None, *CI_VALUES]


# -- lint and schema validation ---------------------------------------------------------------------------


def test_ci_values_cover_the_required_profiles() -> None:
    names = {p.name for p in CI_VALUES}
    for name in ("default", "external-cassandra", "production", "three-cassandra", "small"):
        assert f"{name}-values.yaml" in names


@pytest.mark.parametrize("values", ALL_VALUES, ids=values_ids)
def test_helm_lint_strict(values: Path | None) -> None:
    args: list[str | Path] = [
        "lint",
        "--strict",
        CHART,
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
    ]
    result = helm(*args, *values_args(values))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def validate_all(docs: tuple[Doc, ...], origin: str) -> None:
    for doc in docs:
        kind, api_version = doc["kind"], doc["apiVersion"]
        if kind in CRD_KINDS:
            assert api_version == CRD_KINDS[kind], f"{origin}: {kind} has apiVersion {api_version}"
            continue
        name = f"{origin}: {kind}/{doc['metadata']['name']}"
        try:
            kubernetes_validate.validate(doc, "1.37", strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{name} does not validate against Kubernetes 1.37 (strict): {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"{name}: not a built-in Kubernetes kind ({exc.message})")


@pytest.mark.parametrize("values", CI_VALUES, ids=values_ids)
def test_renders_valid_kubernetes_1_37_objects(values: Path) -> None:
    docs = render(values)
    validate_all(docs, values.name)
    for doc in docs:
        assert doc["metadata"].get("namespace", NAMESPACE) == NAMESPACE
        labels = doc["metadata"]["labels"]
        for key in ("name", "instance", "component", "version", "managed-by"):
            assert f"app.kubernetes.io/{key}" in labels, (
                f"{doc['kind']}/{doc['metadata']['name']}: no {key} label"
            )
        assert labels["helm.sh/chart"] == "headwater-0.1.0"
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), "duplicate objects"


def test_service_monitor_only_when_enabled() -> None:
    assert not [d for d in render(ci_file("default")) if d["kind"] == "ServiceMonitor"]
    monitor = find(render(ci_file("production")), "ServiceMonitor", RELEASE)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    # the Services it selects: one per node component (no double scrape through the ClusterIP Service)
    selector = monitor["spec"]["selector"]["matchLabels"]
    selected = [
        d["metadata"]["name"]
        for d in render(ci_file("production"))
        if d["kind"] == "Service" and selector.items() <= d["metadata"]["labels"].items()
    ]
    assert sorted(selected) == [f"{RELEASE}-ingest-headless", f"{RELEASE}-packager"]


# -- what the rendered objects promise --------------------------------------------------------------------


@pytest.mark.parametrize("values", ALL_VALUES, ids=values_ids)
def test_every_container_runs_restricted(values: Path | None) -> None:
    for doc in workloads(render(values)):
        spec = pod_spec(doc)
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        pod_sc = spec.get("securityContext", {})
        assert spec.get("enableServiceLinks") is False, where
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        assert (pod_sc.get("runAsUser"), pod_sc.get("runAsGroup"), pod_sc.get("fsGroup")) == (10001,) * 3, (
            where
        )
        tmp_volumes = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in spec["containers"] + spec.get("initContainers", []):
            sc = container.get("securityContext", {})
            what = f"{where} container {container['name']}"
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, what
            assert sc.get("readOnlyRootFilesystem") is True, what
            assert sc.get("allowPrivilegeEscalation") is False, what
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], what
            assert "add" not in sc.get("capabilities", {}), what
            assert sc.get("seccompProfile", {"type": "RuntimeDefault"})["type"] == "RuntimeDefault", what
            assert container["image"].startswith("localhost/headwater"), what
            assert container["image"].endswith(":0.1.0"), what
            assert container["imagePullPolicy"] == "IfNotPresent", what
            assert "requests" in container["resources"], what
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts.get("/tmp") in tmp_volumes, f"{what}: no emptyDir at /tmp"


def test_images_and_entrypoint_args() -> None:
    docs = render()
    assert (
        main_container(docs, "StatefulSet", "headwater-cassandra")["image"]
        == "localhost/headwater-cassandra:0.1.0"
    )
    memcached = main_container(docs, "StatefulSet", "headwater-memcached")
    assert memcached["image"] == "localhost/headwater-memcached:0.1.0"
    assert memcached["args"] == ["-p", "11211", "-m", "64", "-c", "4096", "-U", "0"]
    for component in NODE_COMPONENTS:
        container = node_container(docs, component)
        assert container["image"] == "localhost/headwater:0.1.0"
        assert container["args"] == ["serve", "--role", component]
    assert main_container(docs, "Job", "headwater-schema")["args"] == ["schema"]
    tagged = render(None, "image.tag=1.2.3", "image.registry=")
    assert {c["image"] for d in workloads(tagged) for c in pod_spec(d)["containers"]} == {
        "headwater:1.2.3",
        "headwater-router:1.2.3",
        "headwater-memcached:1.2.3",
        "headwater-cassandra:1.2.3",
    }


@pytest.mark.parametrize("values", ALL_VALUES, ids=values_ids)
def test_node_probes_and_shutdown(values: Path | None) -> None:
    docs = render(values)
    for component in NODE_COMPONENTS:
        container = node_container(docs, component)
        env = env_of(container)
        startup, ready, live = (container[p] for p in ("startupProbe", "readinessProbe", "livenessProbe"))
        assert startup["httpGet"] == {"path": "/healthz", "port": "http"}
        assert startup["periodSeconds"] == 2
        # the startup probe outlasts the node's own wait for the store
        assert startup["periodSeconds"] * startup["failureThreshold"] >= int(env["HEADWATER_STORE_WAIT_S"])
        assert ready["httpGet"] == {"path": "/readyz?store=0", "port": "http"}
        assert (ready["periodSeconds"], ready["failureThreshold"]) == (1, 1)
        assert live["httpGet"] == {"path": "/healthz", "port": "http"}
        assert (live["periodSeconds"], live["failureThreshold"]) == (10, 3)
        grace = pod_spec(
            find(docs, "StatefulSet" if component == "packager" else "Deployment", f"headwater-{component}")
        )["terminationGracePeriodSeconds"]
        assert grace == int(env["HEADWATER_DRAIN_S"]) + 20  # drain, then finish in-flight work
    router = main_container(docs, "Deployment", "headwater-router")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert router[probe]["httpGet"] == {"path": "/healthz", "port": "status"}
    assert {"name": "status", "containerPort": 8081, "protocol": "TCP"} in router["ports"]
    if any(d["kind"] == "StatefulSet" and d["metadata"]["name"] == "headwater-cassandra" for d in docs):
        cassandra = main_container(docs, "StatefulSet", "headwater-cassandra")
        assert cassandra["readinessProbe"]["tcpSocket"] == {"port": "cql"}
        startup = cassandra["startupProbe"]
        assert (
            startup["periodSeconds"] * startup["failureThreshold"] >= 180
        )  # ~30-90 s on 2 cores, and margin
    assert main_container(docs, "StatefulSet", "headwater-memcached")["readinessProbe"]["tcpSocket"] == {
        "port": "memcache"
    }


def test_pod_annotations_roll_everything_but_cassandra() -> None:
    """`helm upgrade --set podAnnotations.x=1` (what the live upgrade test does) changes the pod templates of
    every Headwater workload and memcached, as strings; Cassandra (one replica here) is left alone."""
    small = ci_file("small")
    before = render(small, "image.tag=t")
    after = render(small, "image.tag=t", "node.logLevel=warning", "podAnnotations.headwater/rollout=1")
    validate_all(after, "podAnnotations")
    changed = {
        f"{d['kind']}/{d['metadata']['name']}"
        for d in after
        if d["kind"] in ("Deployment", "StatefulSet")
        and d["spec"]["template"] != find(before, d["kind"], d["metadata"]["name"])["spec"]["template"]
    }
    assert changed == {
        "Deployment/headwater-ingest",
        "Deployment/headwater-router",
        "StatefulSet/headwater-packager",
        "StatefulSet/headwater-memcached",
    }
    for name in ("headwater-ingest", "headwater-router"):
        annotations = find(after, "Deployment", name)["spec"]["template"]["metadata"]["annotations"]
        assert annotations["headwater/rollout"] == "1"
    cassandra = render(None, "cassandra.podAnnotations.note=true")
    template = find(cassandra, "StatefulSet", "headwater-cassandra")["spec"]["template"]
    assert template["metadata"]["annotations"] == {"note": "true"}


def test_drain_and_store_wait_follow_values() -> None:
    docs = render(None, "shutdown.drainSeconds=15", "shutdown.finishSeconds=5", "node.storeWaitSeconds=600")
    for component in NODE_COMPONENTS:
        container = node_container(docs, component)
        assert env_of(container)["HEADWATER_DRAIN_S"] == "15"
        assert (
            container["startupProbe"]["periodSeconds"] * container["startupProbe"]["failureThreshold"] >= 600
        )
    assert pod_spec(find(docs, "Deployment", "headwater-ingest"))["terminationGracePeriodSeconds"] == 20


@pytest.mark.parametrize("values", ALL_VALUES, ids=values_ids)
def test_a_disruption_budget_per_component(values: Path | None) -> None:
    docs = render(values)
    bundled = any(d["kind"] == "StatefulSet" and d["metadata"]["name"] == "headwater-cassandra" for d in docs)
    pdbs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PodDisruptionBudget"}
    expected = {f"headwater-{c}" for c in PDB_COMPONENTS if c != "cassandra" or bundled}
    assert set(pdbs) == expected
    for name, pdb in pdbs.items():
        assert pdb["spec"]["maxUnavailable"] == 1
        kind = "Deployment" if name.endswith(("-ingest", "-router")) else "StatefulSet"
        pod_labels = find(docs, kind, name)["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items(), name
        # and selects no other component's pods
        assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == name.split("-", 1)[1]


def test_spread_over_nodes() -> None:
    docs = render()
    for kind, component in (("StatefulSet", "packager"), ("Deployment", "ingest"), ("Deployment", "router")):
        spec = pod_spec(find(docs, kind, f"headwater-{component}"))
        (constraint,) = spec["topologySpreadConstraints"]
        assert constraint["topologyKey"] == "kubernetes.io/hostname"
        assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"
        assert constraint["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == component


def test_services_publish_what_the_router_and_announce_need() -> None:
    docs = render()
    packager = find(docs, "Service", "headwater-packager")
    assert packager["spec"]["clusterIP"] == "None"
    # an unready packager must drop out of DNS: that is how the router and the announce fan-out drop it
    assert packager["spec"]["publishNotReadyAddresses"] is False
    assert {(p["name"], p["port"], p["protocol"]) for p in packager["spec"]["ports"]} == {
        ("http", 8080, "TCP"),
        ("announce", 8080, "UDP"),
    }
    assert find(docs, "StatefulSet", "headwater-packager")["spec"]["serviceName"] == "headwater-packager"
    assert find(docs, "StatefulSet", "headwater-packager")["spec"]["podManagementPolicy"] == "Parallel"
    headless = find(docs, "Service", "headwater-ingest-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is False
    assert find(docs, "Service", "headwater-ingest")["spec"]["type"] == "ClusterIP"
    for name, ports in (("headwater-cassandra", {9042, 7000}), ("headwater-memcached", {11211})):
        service = find(docs, "Service", name)
        assert service["spec"]["clusterIP"] == "None"
        assert (
            service["spec"]["publishNotReadyAddresses"] is True
        )  # seeds and ring members resolve while starting
        assert {p["port"] for p in service["spec"]["ports"]} == ports
    router = find(docs, "Service", "headwater-router")
    assert router["spec"]["type"] == "ClusterIP"
    assert router["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    lb = find(render(ci_file("production")), "Service", "headwater-router")
    assert lb["spec"]["type"] == "LoadBalancer"
    assert lb["spec"]["externalTrafficPolicy"] == "Local"


def test_node_environment_names_stable_pods() -> None:
    docs = render()
    for component in NODE_COMPONENTS:
        env = env_of(node_container(docs, component))
        assert env["HEADWATER_MEMCACHED"] == ",".join(f"{pod_dns('memcached', i)}:11211" for i in range(2))
        assert env["HEADWATER_CASSANDRA_HOSTS"] == pod_dns("cassandra", 0)
        assert env["HEADWATER_PACKAGERS"] == "headwater-packager.headwater.svc.cluster.local:8080"
        assert env["HEADWATER_HOST"] == "0.0.0.0"
        assert env["HEADWATER_PORT"] == "8080"
        assert env["HEADWATER_STORE"] == "cassandra"
        assert env["HEADWATER_CREATE_SCHEMA"] == "0"
        assert env["HEADWATER_CASSANDRA_PORT"] == "9042"
        assert env["HEADWATER_CASSANDRA_KEYSPACE"] == "headwater"
        assert env["HEADWATER_CASSANDRA_RF"] == "1"
        assert env["HEADWATER_CASSANDRA_CONSISTENCY"] == "LOCAL_QUORUM"
        assert env["HEADWATER_MEMCACHED_REPLICAS"] == "2"
        assert env["HEADWATER_PEERS_REFRESH_S"] == "3"
        assert env["HEADWATER_STORE_WAIT_S"] == "300"
        assert env["HEADWATER_DRAIN_S"] == "8"
        assert "HEADWATER_ADMIN_KEY" not in env  # no key configured: no empty variable either
    three = render(ci_file("three-cassandra"))
    env = env_of(node_container(three, "packager"))
    assert env["HEADWATER_CASSANDRA_HOSTS"] == ",".join(pod_dns("cassandra", i) for i in range(3))
    assert env["HEADWATER_CASSANDRA_RF"] == "3"
    scaled = render(None, "memcached.replicas=4")
    assert env_of(node_container(scaled, "ingest"))["HEADWATER_MEMCACHED"].split(",") == [
        f"{pod_dns('memcached', i)}:11211" for i in range(4)
    ]


def test_bundled_cassandra() -> None:
    docs = render()
    sts = find(docs, "StatefulSet", "headwater-cassandra")
    assert sts["spec"]["replicas"] == 1
    assert sts["spec"]["serviceName"] == "headwater-cassandra"
    env = env_of(main_container(docs, "StatefulSet", "headwater-cassandra"))
    assert env["CASSANDRA_SEEDS"] == pod_dns("cassandra", 0)
    assert env["CASSANDRA_HEAP"] == "512m"
    assert env["CASSANDRA_CLUSTER_NAME"] == "headwater"
    assert env["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    container = main_container(docs, "StatefulSet", "headwater-cassandra")
    assert {m["mountPath"]: m["name"] for m in container["volumeMounts"]}["/var/lib/cassandra"] == "data"
    assert {"name": "data", "emptyDir": {}} in pod_spec(sts)["volumes"]  # no provisioner on the test node
    assert "volumeClaimTemplates" not in sts["spec"]
    persistent = find(render(ci_file("production")), "StatefulSet", "headwater-cassandra")
    (claim,) = persistent["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert "data" not in {v["name"] for v in pod_spec(persistent)["volumes"]}


def test_external_cassandra() -> None:
    docs = render(ci_file("external-cassandra"))
    assert not [d for d in docs if d["metadata"]["name"] == "headwater-cassandra"]
    for component in NODE_COMPONENTS:
        env = env_of(node_container(docs, component))
        assert env["HEADWATER_CASSANDRA_HOSTS"] == (
            "cassandra-0.cassandra.data.svc.cluster.local,cassandra-1.cassandra.data.svc.cluster.local,10.20.30.40"
        )
        assert env["HEADWATER_CASSANDRA_PORT"] == "9142"
        assert env["HEADWATER_CASSANDRA_RF"] == "3"  # not bounded by the (absent) bundled replicas
    assert env_of(main_container(docs, "Job", "headwater-schema"))["HEADWATER_CASSANDRA_PORT"] == "9142"


def test_schema_job_is_a_hook_with_the_nodes_store_settings() -> None:
    docs = render()
    job = find(docs, "Job", "headwater-schema")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,pre-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    assert 1 <= job["spec"]["backoffLimit"] <= 6
    assert job["spec"]["activeDeadlineSeconds"] >= 300
    assert pod_spec(job)["restartPolicy"] in ("Never", "OnFailure")
    job_env = env_of(main_container(docs, "Job", "headwater-schema"))
    node_env = env_of(node_container(docs, "ingest"))
    for name, value in job_env.items():
        assert node_env[name] == value, name
    for name in ("HOSTS", "PORT", "KEYSPACE", "RF", "CONSISTENCY"):
        assert f"HEADWATER_CASSANDRA_{name}" in job_env
    assert job_env["HEADWATER_STORE_WAIT_S"] == "300"


def test_router_arguments() -> None:
    router = main_container(render(), "Deployment", "headwater-router")
    assert router["image"] == "localhost/headwater-router:0.1.0"
    assert router["args"] == [
        "--port",
        "8080",
        "--status-port",
        "8081",
        "--packagers",
        "headwater-packager-{i}.headwater-packager.headwater.svc.cluster.local:8080",
        "--max-packagers",
        "16",
        "--ingest",
        "headwater-ingest-headless.headwater.svc.cluster.local:8080",
        "--refresh-s",
        "2",
    ]
    assert find(render(), "Deployment", "headwater-router")["spec"]["replicas"] == 2
    # keeps serving while the Service drops it, then gets SIGTERM
    assert router["lifecycle"] == {"preStop": {"sleep": {"seconds": 3}}}
    assert "lifecycle" not in main_container(
        render(None, "router.preStopSleepSeconds=0"), "Deployment", "headwater-router"
    )


def test_admin_key_from_a_secret() -> None:
    docs = render(ci_file("production"))
    secret = find(docs, "Secret", "headwater-auth")
    assert secret["data"]["admin-key"] == "Y2ktYWRtaW4ta2V5LW5vdC1hLXNlY3JldA=="  # base64 of the CI key
    ref = {"secretKeyRef": {"name": "headwater-auth", "key": "admin-key"}}
    for component in NODE_COMPONENTS:
        assert env_of(node_container(docs, component))["HEADWATER_ADMIN_KEY"] == ref
    assert env_of(main_container(docs, "Pod", "headwater-test"))["HEADWATER_ADMIN_KEY"] == ref
    existing = render(ci_file("three-cassandra"))
    assert not [d for d in existing if d["kind"] == "Secret"]
    assert env_of(node_container(existing, "packager"))["HEADWATER_ADMIN_KEY"] == {
        "secretKeyRef": {"name": "headwater-admin", "key": "key"}
    }


def test_ingest_autoscaling() -> None:
    fixed = render()
    assert find(fixed, "Deployment", "headwater-ingest")["spec"]["replicas"] == 2
    assert not [d for d in fixed if d["kind"] == "HorizontalPodAutoscaler"]
    docs = render(ci_file("production"))
    assert "replicas" not in find(docs, "Deployment", "headwater-ingest")["spec"]  # the HPA owns it
    hpa = find(docs, "HorizontalPodAutoscaler", "headwater-ingest")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "headwater-ingest",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 60}


def _allowed(policy: Doc, component: str, port: int, protocol: str = "TCP") -> bool:
    """Whether ``policy`` admits ``component`` pods (or anyone: a rule without `from`) on port/protocol."""
    for rule in policy["spec"]["ingress"]:
        if {"port": port, "protocol": protocol} not in rule["ports"]:
            continue
        if "from" not in rule:
            return True
        for peer in rule["from"]:
            labels = peer.get("podSelector", {}).get("matchLabels", {})
            if labels.get("app.kubernetes.io/component") == component and "namespaceSelector" not in peer:
                return True
    return False


def test_network_policies() -> None:
    docs = render()
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}
    assert set(policies) == {
        f"headwater-{c}" for c in ("ingest", "packager", "cassandra", "memcached", "router")
    }
    for policy in policies.values():
        assert policy["spec"]["policyTypes"] == ["Ingress"]  # egress (DNS, announce) unrestricted
    for component in NODE_COMPONENTS:
        policy = policies[f"headwater-{component}"]
        for source in ("router", "ingest", "packager"):
            assert _allowed(policy, source, 8080), (component, source)
        assert not _allowed(policy, "memcached", 8080)
    packagers = policies["headwater-packager"]
    assert _allowed(packagers, "ingest", 8080, "UDP")
    assert not _allowed(packagers, "router", 8080, "UDP")
    assert not _allowed(policies["headwater-ingest"], "ingest", 8080, "UDP")
    cassandra = policies["headwater-cassandra"]
    for source in ("ingest", "packager", "schema"):
        assert _allowed(cassandra, source, 9042), source
    assert not _allowed(cassandra, "router", 9042)
    assert _allowed(cassandra, "cassandra", 7000)
    assert not _allowed(cassandra, "ingest", 7000)
    memcached = policies["headwater-memcached"]
    assert _allowed(memcached, "ingest", 11211)
    assert _allowed(memcached, "packager", 11211)
    assert not _allowed(memcached, "router", 11211)
    router = policies["headwater-router"]
    assert router["spec"]["ingress"] == [{"ports": [{"port": 8080, "protocol": "TCP"}]}]  # from anywhere
    restricted = find(render(ci_file("production")), "NetworkPolicy", "headwater-router")
    (rule,) = restricted["spec"]["ingress"]
    assert {"ipBlock": {"cidr": "10.0.0.0/8"}} in rule["from"]
    assert _allowed(restricted, "test", 8080)  # `helm test` still reaches the router
    assert not [d for d in render(ci_file("three-cassandra")) if d["kind"] == "NetworkPolicy"]


def test_helm_test_pod() -> None:
    pod = find(render(), "Pod", "headwater-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "localhost/headwater:0.1.0"
    assert container["args"] == [
        "selftest",
        "--url",
        "http://headwater-router:8080",
        "--channel",
        "helm-test",
    ]
    assert pod["spec"]["restartPolicy"] == "Never"


def _quantity(value: str | int) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}
    text = str(value)
    for unit, factor in units.items():
        if text.endswith(unit):
            return float(text.removesuffix(unit)) * factor
    return float(text)


@pytest.mark.parametrize("values", [None, ci_file("small")], ids=values_ids)
def test_default_stack_fits_one_small_node(values: Path | None) -> None:
    """Requests of every long-running pod fit a 2-core node next to the control plane."""
    cpu = memory = 0.0
    for doc in workloads(render(values)):
        if doc["kind"] in ("Job", "Pod"):
            continue
        replicas = doc["spec"]["replicas"]
        for container in pod_spec(doc)["containers"]:
            cpu += replicas * _quantity(container["resources"]["requests"]["cpu"])
            memory += replicas * _quantity(container["resources"]["requests"]["memory"])
    assert cpu <= 1.4, cpu
    assert memory <= 4 * 2**30, memory / 2**30


def test_small_profile_shape() -> None:
    docs = render(ci_file("small"))
    replicas = {
        d["metadata"]["name"]: d["spec"]["replicas"]
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet")
    }
    assert replicas == {
        "headwater-cassandra": 1,
        "headwater-memcached": 2,
        "headwater-packager": 3,
        "headwater-ingest": 2,
        "headwater-router": 2,
    }
    assert env_of(main_container(docs, "StatefulSet", "headwater-cassandra"))["CASSANDRA_HEAP"] == "512m"


# -- refusals ---------------------------------------------------------------------------------------------


def _mentions(output: str, path: str) -> bool:
    """helm names a value as `a.b.c` (template checks) or `/a/b/c` (schema errors)."""
    return path in output or "/" + path.replace(".", "/") in output


REFUSED = [
    pytest.param(
        ["--set-string", "packager.replicas=three"], ["packager.replicas"], id="wrong-type-set-string"
    ),
    pytest.param(
        ["values:packager:\n  replicas: three\n"], ["packager.replicas"], id="wrong-type-values-file"
    ),
    pytest.param(["--set", "packager.replica=3"], ["/packager", "'replica'"], id="unknown-key"),
    pytest.param(["values:routr:\n  replicas: 2\n"], ["'routr'"], id="unknown-top-level-key"),
    pytest.param(["--set", "router.replicas=0"], ["router.replicas"], id="no-router"),
    pytest.param(["--set", "image.pullPolicy=Sometimes"], ["image.pullPolicy"], id="pull-policy-enum"),
    pytest.param(["--set", "cassandra.consistency=MOST"], ["cassandra.consistency"], id="consistency-enum"),
    pytest.param(["--set", "router.service.type=Ingress"], ["router.service.type"], id="service-type-enum"),
    pytest.param(
        ["--set", "cassandra.replicationFactor=3"], ["cassandra.replicationFactor"], id="rf-above-replicas"
    ),
    pytest.param(
        ["--set", "cassandra.replicas=10", "--set", "cassandra.replicationFactor=11"],
        ["cassandra.replicationFactor", "cassandra.replicas"],
        id="rf-above-replicas-beyond-schema-clauses",
    ),
    pytest.param(
        ["--set", "cassandra.enabled=false"], ["cassandra.external.contactPoints"], id="external-no-hosts"
    ),
    pytest.param(["--set", "memcached.replicas=1"], ["memcached.replicas"], id="memcached-replicas"),
    pytest.param(
        ["--set", "memcached.replicas=10", "--set", "memcached.clientReplicas=11"],
        ["memcached.replicas", "memcached.clientReplicas"],
        id="memcached-replicas-beyond-schema-clauses",
    ),
    pytest.param(
        ["--set", "packager.replicas=17"], ["packager.replicas", "router.maxPackagers"], id="packagers"
    ),
]


def _bad_args(spec: list[str], tmp_path: Path) -> list[str | Path]:
    if spec[0].startswith("values:"):
        path = tmp_path / "bad-values.yaml"
        path.write_text(spec[0].removeprefix("values:"))
        return ["-f", path]
    return list(spec)


@pytest.mark.parametrize(("spec", "paths"), REFUSED)
def test_bad_values_are_refused(spec: list[str], paths: list[str], tmp_path: Path) -> None:
    bad = _bad_args(spec, tmp_path)
    lint: list[str | Path] = ["lint", "--strict", CHART, "--kube-version", KUBE_VERSION]
    for args in (template_args(*bad), [*lint, *bad]):
        result = helm(*args)
        output = result.stdout + result.stderr
        assert result.returncode != 0, f"helm {args[0]} accepted {spec}"
        for path in paths:
            assert _mentions(output, path), f"helm {args[0]} {spec}: {path} not named in\n{output}"


def test_template_checks_hold_without_the_schema() -> None:
    """The cross-field checks are also template `fail`s (JSON schema cannot compare values): with schema
    validation skipped, the impossible combinations are still refused, naming both values."""
    for sets, paths in (
        (["cassandra.replicationFactor=3"], ["cassandra.replicationFactor", "cassandra.replicas"]),
        (["cassandra.enabled=false"], ["cassandra.external.contactPoints"]),
        (["memcached.replicas=1"], ["memcached.replicas", "memcached.clientReplicas"]),
        (["packager.replicas=17"], ["packager.replicas", "router.maxPackagers"]),
        (
            [
                "ingest.autoscaling.enabled=true",
                "ingest.autoscaling.minReplicas=5",
                "ingest.autoscaling.maxReplicas=3",
            ],
            ["ingest.autoscaling.minReplicas", "ingest.autoscaling.maxReplicas"],
        ),
    ):
        result = helm(*template_args("--skip-schema-validation", *(a for s in sets for a in ("--set", s))))
        assert result.returncode != 0
        for path in paths:
            assert path in result.stderr, result.stderr


def test_possible_combinations_are_accepted() -> None:
    for sets in (
        ("cassandra.replicas=3", "cassandra.replicationFactor=2"),
        ("cassandra.replicas=12", "cassandra.replicationFactor=5"),
        ("memcached.replicas=1", "memcached.clientReplicas=1"),
        ("packager.replicas=32", "router.maxPackagers=32"),
        (
            "cassandra.enabled=false",
            "cassandra.external.contactPoints={db1,db2}",
            "cassandra.replicationFactor=5",
        ),
    ):
        render(None, *sets)


def test_schema_closes_every_object() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(node: Any, where: str) -> Iterator[str]:
        if isinstance(node, dict):
            closed = node.get("additionalProperties") is False
            if node.get("type") == "object" and "properties" in node and not closed:
                yield where
            for key, child in node.items():
                yield from walk(child, f"{where}/{key}")
        elif isinstance(node, list):
            for i, child in enumerate(node):
                yield from walk(child, f"{where}/{i}")

    assert list(walk(schema, "")) == []
    clauses = schema["properties"]["cassandra"]["allOf"]
    bounded = {
        c["if"]["properties"]["replicas"]["const"] for c in clauses if "replicas" in c["if"]["properties"]
    }
    assert bounded == set(range(1, 10))


# -- the plain manifests and the README -------------------------------------------------------------------


def test_plain_manifests_are_in_sync(tmp_path: Path) -> None:
    helm_path()
    out = tmp_path / "headwater.yaml"
    result = subprocess.run(
        ["bash", str(RENDER_SCRIPT), str(out)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert MANIFESTS.read_text() == out.read_text(), (
        "deploy/k8s/manifests/headwater.yaml is stale: run scripts/k8s/render-manifests.sh"
    )
    text = MANIFESTS.read_text()
    assert [n for n, line in enumerate(text.splitlines(), 1) if line != line.rstrip()] == [], (
        "trailing blanks"
    )
    docs = tuple(d for d in yaml.safe_load_all(text) if d)
    assert docs[0] == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "headwater",
            "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/warn": "restricted",
            },
        },
    }
    assert not [d for d in docs if d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    find(docs, "Job", "headwater-schema")  # kubectl users need the schema job too
    validate_all(docs, MANIFESTS.name)


def _leaves(values: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(values, dict) and values:
        for key, child in values.items():
            yield from _leaves(child, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix, values


def test_readme_lists_every_value_with_its_default() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    rows = {}
    for line in (CHART / "README.md").read_text().splitlines():
        match = re.match(r"^\| `([^`]+)` \| `(.*)` \| (.+) \|$", line)
        if match:
            rows[match.group(1)] = (match.group(2), match.group(3))
    leaves = dict(_leaves(values))
    assert set(leaves) - set(rows) == set(), "values missing from the README table"
    assert set(rows) - set(leaves) == set(), "README rows for values that do not exist"
    for key, value in leaves.items():
        assert json.loads(rows[key][0]) == value, f"README default of {key}"
        assert rows[key][1].strip(), f"README meaning of {key}"
