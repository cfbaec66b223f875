"""metrics.k8s.io from resourceRules on a real cluster: ``kubectl top`` and the real HPA controller.

A real Prometheus scrapes cAdvisor-style series (``container_cpu_usage_seconds_total``,
``container_memory_working_set_bytes`` per namespace/pod/container, ``node_cpu_usage_seconds_total``
and ``node_memory_working_set_bytes`` per node) that a test exporter computes for the pods and
kwok nodes that exist. The adapter runs with prometheus-adapter's own deploy config (only the
window shortened, so the HPA's CPU initialisation rule lets new pods count sooner) and is
registered as ``v1beta1.metrics.k8s.io`` with the cluster's aggregator, which the harness
leaves free (no metrics-server).
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from e2e import procs, services
from e2e.adapter import RunningAdapter, adapter_binary, start_adapter
from e2e.cluster import ClusterInfo
from e2e.exporter import Exporter, Series
from tests.e2e.kube import api_client, deployment, kubectl, new_namespace

pytestmark = [pytest.mark.cluster, pytest.mark.services]

FIXTURE = Path(__file__).with_name("resource_metrics_config_map.yaml")
APISERVICE = "v1beta1.metrics.k8s.io"
SERVICE = "metrics-adapter-resource-e2e"
FAST = ["--metrics-relist-interval=2s", "--refresh-interval=1s", "--max-staleness=10s"]
NODE_CORES, NODE_BYTES = 1.5, 2 * 2**30
POD_BYTES = 64 * 2**20


def config_text(window: str = "15s") -> str:
    """prometheus-adapter's deploy/manifests/config-map.yaml, with only the window changed."""
    text: str = yaml.safe_load(FIXTURE.read_text())["data"]["config.yaml"]
    assert '"window": "5m"' in text
    return text.replace('"window": "5m"', f'"window": "{window}"')


@dataclass
class Usage:
    """A total CPU load spread evenly over the pods of ``app=web`` that exist, as counters."""

    api: client.ApiClient
    ns: str
    total_cores: float = 0.03
    counters: dict[tuple[str, ...], tuple[float, float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _counter(self, key: tuple[str, ...], rate: float, now: float) -> float:
        value, last = self.counters.get(key, (1000.0, now))
        value += rate * (now - last)
        self.counters[key] = (value, now)
        return value

    def series(self) -> list[Series]:
        pods = client.CoreV1Api(self.api).list_namespaced_pod(self.ns, label_selector="app=web").items
        live = [p for p in pods if p.metadata.deletion_timestamp is None and p.spec.node_name]
        now = time.time()
        out: list[Series] = []
        with self.lock:
            for p in live:
                base = {"namespace": self.ns, "pod": p.metadata.name}
                lbl = {**base, "container": "app"}
                rate = self.total_cores / len(live)
                out.append(("container_cpu_usage_seconds_total", lbl, self._counter(("c", p.metadata.name), rate, now)))
                out.append(("container_memory_working_set_bytes", lbl, float(POD_BYTES)))
                # the pod-level cgroup series cAdvisor also exports: the config's container!="" drops it
                out.append(("container_memory_working_set_bytes", {**base, "container": ""}, 1.0))
            for node in sorted({p.spec.node_name for p in live}):
                out.append(
                    ("node_cpu_usage_seconds_total", {"node": node}, self._counter(("n", node), NODE_CORES, now))
                )
                out.append(("node_memory_working_set_bytes", {"node": node}, float(NODE_BYTES)))
        return out


@dataclass
class Scene:
    cluster: ClusterInfo
    adapter: RunningAdapter
    prometheus: services.Prometheus
    exporter: Exporter
    ns: str
    usage: Usage
    apiserver_log_offset: int

    def apiserver_errors(self) -> list[str]:
        """kube-apiserver error lines about metrics.k8s.io since the APIService was registered."""
        with open(self.cluster.directory / "logs" / "kube-apiserver.log", "rb") as f:
            f.seek(self.apiserver_log_offset)
            text = f.read().decode(errors="replace")
        ours = re.compile(r"(?<!custom\.)(?<!external\.)\bmetrics\.k8s\.io")
        return [line for line in text.splitlines() if line.startswith("E") and ours.search(line)]


def _apply(cluster: ClusterInfo, *objects: dict[str, Any]) -> None:
    out = kubectl(cluster, "apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "List", "items": list(objects),
    }))  # fmt: skip
    assert out.returncode == 0, out.stderr


def _available(cluster: ClusterInfo) -> bool:
    out = kubectl(cluster, "get", "apiservice", APISERVICE, "-o", "json")
    if out.returncode != 0:
        return False
    conditions = json.loads(out.stdout).get("status", {}).get("conditions") or []
    return any(c.get("type") == "Available" and c.get("status") == "True" for c in conditions)


def _web(replicas: int) -> dict[str, Any]:
    d = deployment("web", replicas)
    d["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "100m", "memory": "64Mi"},
        "limits": {"cpu": "1", "memory": "128Mi"},
    }
    return d


@pytest.fixture(scope="module")
def scene(cluster_ipv4: ClusterInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    """The adapter registered as metrics.k8s.io, Prometheus and the exporter, a namespace with Deployment web."""
    cluster = cluster_ipv4
    existing = kubectl(cluster, "get", "apiservice", APISERVICE, "-o", "json")
    if existing.returncode == 0:
        spec = json.loads(existing.stdout)["spec"]
        assert (spec.get("service") or {}).get("name") == SERVICE, (
            f"another metrics.k8s.io server is registered: {spec}"
        )
    # Counters are computed when scraped; a 2 s interval keeps scrape-time jitter in irate small.
    prom = services.start_prometheus(cluster.ip_family, scrape_interval="2s")
    exporter = Exporter(cluster.host).start()
    prom.add_target("resource-metrics-e2e", exporter.address)
    directory = Path(tmp_path_factory.mktemp("resource-metrics"))
    adapter = start_adapter(cluster, directory, config_text(), prometheus_url=prom.url, extra_args=FAST)
    api = api_client(cluster)
    ns = new_namespace(api, "ma-top")
    usage = Usage(api, ns)
    exporter.callbacks.append(usage.series)
    log_offset = (cluster.directory / "logs" / "kube-apiserver.log").stat().st_size
    try:
        _apply(
            cluster,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": SERVICE, "namespace": "kube-system"},
                "spec": {"type": "ExternalName", "externalName": "localhost", "ports": [{"port": adapter.port}]},
            },
            {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": APISERVICE},
                "spec": {
                    "group": "metrics.k8s.io",
                    "version": "v1beta1",
                    "service": {"name": SERVICE, "namespace": "kube-system", "port": adapter.port},
                    "insecureSkipTLSVerify": True,
                    "groupPriorityMinimum": 100,
                    "versionPriority": 100,
                },
            },
        )
        procs.wait_until(f"{APISERVICE} Available", lambda: _available(cluster), timeout=90, interval=0.5)
        client.AppsV1Api(api).create_namespaced_deployment(ns, _web(1))
        yield Scene(cluster, adapter, prom, exporter, ns, usage, log_offset)
    finally:
        kubectl(cluster, "delete", "apiservice", APISERVICE, "--ignore-not-found")
        kubectl(cluster, "-n", "kube-system", "delete", "service", SERVICE, "--ignore-not-found")
        client.CoreV1Api(api).delete_namespace(ns)
        adapter.stop()
        exporter.stop()
        prom.stop()


def _top(cluster: ClusterInfo, *args: str) -> dict[str, list[str]]:
    """``kubectl top ...`` rows by their first column, or {} while it fails."""
    out = kubectl(cluster, "top", *args, "--no-headers")
    if out.returncode != 0:
        return {}
    return {cols[0]: cols[1:] for cols in (line.split() for line in out.stdout.splitlines()) if cols}


def _milli(text: str) -> int:
    m = re.fullmatch(r"(\d+)(m?)", text)
    assert m, text
    return int(m.group(1)) * (1 if m.group(2) else 1000)


def test_kubectl_top_pods_and_nodes_print_the_series(scene: Scene) -> None:
    """kubectl top pods (and --containers) and kubectl top nodes show the values Prometheus holds."""
    cluster, ns = scene.cluster, scene.ns
    rows = procs.wait_until("kubectl top pods", lambda: _top(cluster, "pods", "-n", ns) or None, timeout=90, interval=1)
    assert len(rows) == 1, rows
    ((pod, (cpu, memory)),) = rows.items()
    assert pod.startswith("web-")
    assert 27 <= _milli(cpu) <= 33, cpu  # 30m of load on the one pod (irate: ±10 % of scrape jitter)
    assert memory == "64Mi"
    containers = _top(cluster, "pods", "-n", ns, "--containers")
    assert containers[pod][0] == "app" and containers[pod][2] == "64Mi", containers

    node = client.CoreV1Api(api_client(cluster)).read_namespaced_pod(pod, ns).spec.node_name
    nodes = procs.wait_until("kubectl top nodes", lambda: _top(cluster, "nodes").get(node), timeout=60, interval=1)
    assert 1350 <= _milli(nodes[0]) <= 1650, nodes
    assert nodes[2] == "2048Mi", nodes

    # The same objects through the aggregator, in metrics-server's shape.
    raw = json.loads(
        kubectl(cluster, "get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/{pod}").stdout
    )
    assert raw["kind"] == "PodMetrics" and raw["window"] == "15s"
    assert raw["metadata"]["namespace"] == ns and raw["metadata"]["labels"]["app"] == "web"
    assert raw["containers"][0]["name"] == "app" and raw["containers"][0]["usage"]["memory"] == "64Mi"
    assert raw["containers"][0]["usage"]["cpu"].endswith("n") or raw["containers"][0]["usage"]["cpu"].endswith("m")
    every = json.loads(kubectl(cluster, "get", "--raw", "/apis/metrics.k8s.io/v1beta1/pods").stdout)
    assert any(i["metadata"]["name"] == pod for i in every["items"])
    selected = json.loads(
        kubectl(
            cluster, "get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods?labelSelector=app%3Dnone"
        ).stdout
    )
    assert selected["items"] == []


def test_discovery_and_openapi_as_metrics_server(scene: Scene) -> None:
    """The APIResourceList metrics-server serves, and the OpenAPI the aggregator publishes for the group."""
    out = kubectl(scene.cluster, "get", "--raw", "/apis/metrics.k8s.io/v1beta1")
    assert json.loads(out.stdout) == {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "metrics.k8s.io/v1beta1",
        "resources": [
            {"name": "nodes", "singularName": "", "namespaced": False, "kind": "NodeMetrics", "verbs": ["get", "list"]},
            {"name": "pods", "singularName": "", "namespaced": True, "kind": "PodMetrics", "verbs": ["get", "list"]},
        ],
    }

    def published() -> Any:
        out = kubectl(scene.cluster, "get", "--raw", "/openapi/v3/apis/metrics.k8s.io/v1beta1")
        return json.loads(out.stdout) if out.returncode == 0 else None

    doc = procs.wait_until("OpenAPI v3 of metrics.k8s.io aggregated", published, timeout=60, interval=1)
    schemas = doc["components"]["schemas"]
    assert "io.k8s.metrics.pkg.apis.metrics.v1beta1.PodMetrics" in schemas
    assert "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods" in doc["paths"]
    time.sleep(2)  # the aggregator's OpenAPI controllers poll in the background
    assert scene.apiserver_errors() == []


def test_missing_data_and_bad_requests(scene: Scene) -> None:
    """A pod without series is absent and 404 by name; an unknown fieldSelector field is a 400 naming it."""
    api = api_client(scene.cluster)
    client.AppsV1Api(api).create_namespaced_deployment(scene.ns, deployment("quiet", 1))
    quiet = procs.wait_until(
        "pod quiet",
        lambda: [
            p.metadata.name
            for p in client.CoreV1Api(api).list_namespaced_pod(scene.ns, label_selector="app=quiet").items
        ],
        timeout=60,
    )[0]
    base = f"/apis/metrics.k8s.io/v1beta1/namespaces/{scene.ns}/pods"
    status, body = scene.adapter.get(f"{base}/{quiet}")
    assert status == 404, body
    assert body["message"] == f'podmetrics.metrics.k8s.io "{scene.ns}/{quiet}" not found'
    status, body = scene.adapter.get(base)
    assert status == 200 and quiet not in {i["metadata"]["name"] for i in body["items"]}
    status, body = scene.adapter.get(f"{base}?fieldSelector=spec.nodeName%3Dn1")
    assert status == 400 and "field 'spec.nodeName' is not supported" in body["message"], body
    status, body = scene.adapter.get(f"{base}?fieldSelector=metadata.name%3D{quiet}")
    assert status == 200 and body["items"] == []
    status, body = scene.adapter.get("/apis/metrics.k8s.io/v1beta1/nodes/no-such-node")
    assert status == 404 and body["message"] == 'nodemetrics.metrics.k8s.io "no-such-node" not found'
    # Authorization: a user without RBAC rights on metrics.k8s.io pods is refused.
    status, body = scene.adapter.get(base, user="nobody", groups=())
    assert status == 403, body
    assert 'list pods "*" in API group "metrics.k8s.io"' in body["message"], body


def test_cpu_utilization_hpa_scales_up_when_usage_rises(scene: Scene) -> None:
    """The real HPA controller (type Resource, averageUtilization) follows the cAdvisor-style series."""
    api = api_client(scene.cluster)
    autoscaling = client.AutoscalingV2Api(api)
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1,
            "maxReplicas": 10,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
                }
            ],
        },
    }
    autoscaling.create_namespaced_horizontal_pod_autoscaler(scene.ns, hpa)

    def at(replicas: int) -> Any:
        h = autoscaling.read_namespaced_horizontal_pod_autoscaler("web", scene.ns)
        st = h.status
        if st and st.current_replicas == replicas and st.desired_replicas == replicas and st.current_metrics:
            return h
        return None

    def settled_at_least(replicas: int) -> Any:
        h = autoscaling.read_namespaced_horizontal_pod_autoscaler("web", scene.ns)
        st = h.status
        ok = st and st.current_metrics and st.desired_replicas == st.current_replicas >= replicas
        return h if ok else None

    # 30m over one pod requesting 100m: 30 % < 50 %, one replica, and the metric is read.
    h = procs.wait_until("HPA reads cpu at 1 replica", lambda: at(1), timeout=120, interval=1)
    assert 27 <= h.status.current_metrics[0].resource.current.average_utilization <= 33
    # 300m of load: 300 % of one pod's request → 6 replicas at 50 % each. The controller gets
    # there in steps (at most 4 more pods per step) while new pods' first samples come in, so
    # it may settle one above (7 at 43 %: ceil(7 * 0.86) is 7).
    with scene.usage.lock:
        scene.usage.total_cores = 0.3
    h = procs.wait_until("HPA scaled to 6 or more", lambda: settled_at_least(6), timeout=240, interval=1)
    assert h.status.current_replicas <= 7, h.status
    assert 38 <= h.status.current_metrics[0].resource.current.average_utilization <= 60, h.status.current_metrics


def test_a_query_without_the_container_label_is_a_clear_error(cluster_ipv4: ClusterInfo, tmp_path: Path) -> None:
    """A containerQuery that drops the container label answers 500 naming the field, never nameless containers."""
    api = api_client(cluster_ipv4)
    ns = new_namespace(api, "ma-top-bad")
    client.AppsV1Api(api).create_namespaced_deployment(ns, deployment("web", 1))
    pod = procs.wait_until(
        "pod web",
        lambda: [
            p.metadata.name for p in client.CoreV1Api(api).list_namespaced_pod(ns, label_selector="app=web").items
        ],
        timeout=60,
    )[0]
    prom = services.start_prometheus(cluster_ipv4.ip_family)
    exporter = Exporter(cluster_ipv4.host).start()
    prom.add_target("resource-metrics-bad", exporter.address)
    for name in ("container_memory_working_set_bytes", "container_cpu_usage_seconds_total"):
        exporter.set(name, {"namespace": ns, "pod": pod, "container": "app"}, 1.0)
    text, n = re.subn(r"sum by \(<<\.GroupBy>>\) \((\s+container_memory)", r"sum by (pod) (\1", config_text(), count=1)
    assert n == 1
    adapter = start_adapter(cluster_ipv4, tmp_path, text, prometheus_url=prom.url, extra_args=FAST)
    try:

        def answer() -> Any:
            status, body = adapter.get(f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods")
            return body if status == 500 else None

        body = procs.wait_until("the memory query's series scraped", answer, timeout=60, interval=0.5)
        assert (
            "resourceRules.memory.containerQuery returned a series without the container label 'container'"
            in body["message"]
        ), body
    finally:
        adapter.stop()
        exporter.stop()
        prom.stop()
        client.CoreV1Api(api).delete_namespace(ns)


def test_check_runs_the_resource_queries(scene: Scene, tmp_path: Path) -> None:
    """``metrics-adapter check`` runs each resourceRules query; one without the container label FAILs naming it."""
    args = [f"--prometheus-url={scene.prometheus.url}", f"--kubeconfig={scene.cluster.kubeconfig}"]

    def check(text: str) -> subprocess.CompletedProcess[str]:
        cfg = tmp_path / "config.yaml"
        cfg.write_text(text)
        cmd = [adapter_binary(), "check", f"--config={cfg}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)

    def good() -> subprocess.CompletedProcess[str] | None:
        out = check(config_text())
        return out if "query ok (0 pods)" not in out.stdout else None  # until the pods' series are scraped

    out = procs.wait_until("check sees the pods' series", good, timeout=60, interval=1)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "metrics.k8s.io/v1beta1 would serve pods and nodes (cpu, memory; window 15s)" in out.stdout
    assert re.search(r"resourceRules\.memory\.containerQuery: query ok \([1-9]\d* pods\)", out.stdout), out.stdout
    assert re.search(r"resourceRules\.cpu\.nodeQuery: query ok \([1-9]\d* nodes\)", out.stdout), out.stdout
    text, n = re.subn(r"sum by \(<<\.GroupBy>>\) \((\s+container_memory)", r"sum by (pod) (\1", config_text(), count=1)
    assert n == 1
    out = check(text)
    assert out.returncode == 1
    assert (
        "FAIL resourceRules.memory.containerQuery: resourceRules.memory.containerQuery returned a series" in out.stdout
    )
