"""Federation through the real aggregator: a second metrics-adapter stands in as the other provider.

The *provider* adapter serves Redis queues (``fed_jobs``, labelled, and ``other_backlog``) and
is not registered anywhere; the *front* adapter serves its own queue ``fed_local``, lists the
provider with ``metrics: ["fed_*"]`` and a service-account token, and is registered as the
cluster's metrics APIServices for this module (the shared stack's registration is restored
after). ``fed_local`` matches the glob too: ours must win.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from kubernetes import client

from e2e import procs, services
from e2e.adapter import RunningAdapter, adapter_binary, available, register, start_adapter, unregister
from e2e.cluster import ClusterInfo
from e2e.federation import forwarder_token, provider_entry
from e2e.tcpproxy import TcpProxy
from tests.e2e.kube import api_client, deployment, kubectl, new_namespace
from tests.metrics_adapter.conftest import FAST, Stack

pytestmark = [pytest.mark.cluster, pytest.mark.services]

EXT = "/apis/external.metrics.k8s.io/v1beta1"

PROVIDER_CONFIG = """
queues:
- name: fed_jobs
  labels: {queue: a}
  redis: {url: "REDIS", list: "LIST_A"}
- name: other_backlog
  redis: {url: "REDIS", list: "LIST_OTHER"}
- name: frag_jobs
  redis: {url: "REDIS", list: "LIST_FRAG"}
"""

FRONT_CONFIG = """
queues:
- name: fed_local
  redis: {url: "REDIS", list: "LIST_LOCAL"}
externalProviders:
"""


@dataclass
class Federated:
    cluster: ClusterInfo
    front: RunningAdapter
    provider: RunningAdapter
    redis: redis.Redis
    lists: dict[str, str]  # metric -> Redis list
    link: TcpProxy  # the front's only way to the provider for frag_* ("fragile"): a test may cut it

    def raw(self, path: str) -> tuple[int, Any]:
        out = kubectl(self.cluster, "get", "--raw", path)
        if out.returncode != 0:
            return out.returncode, out.stderr.strip()
        return 0, json.loads(out.stdout)

    def set_backlog(self, metric: str, n: int) -> None:
        key = self.lists[metric]
        self.redis.delete(key)
        if n:
            self.redis.rpush(key, *(["x"] * n))


@pytest.fixture(scope="module")
def federated(
    cluster_ipv4: ClusterInfo,
    redis_server: services.Redis,
    stacks: dict[str, Stack],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Federated]:
    directory = tmp_path_factory.mktemp("federation")
    suffix = uuid.uuid4().hex[:8]
    lists = {m: f"{m}-{suffix}" for m in ("fed_jobs", "other_backlog", "fed_local", "frag_jobs")}
    r = redis.Redis.from_url(redis_server.url)
    provider_cfg = (
        PROVIDER_CONFIG.replace("REDIS", redis_server.url)
        .replace("LIST_A", lists["fed_jobs"])
        .replace("LIST_OTHER", lists["other_backlog"])
        .replace("LIST_FRAG", lists["frag_jobs"])
    )
    provider = start_adapter(cluster_ipv4, directory / "provider", provider_cfg, prometheus_url=None, extra_args=FAST)
    front: RunningAdapter | None = None
    link = TcpProxy("127.0.0.1", provider.port).up()
    try:
        token = forwarder_token(cluster_ipv4, directory)
        front_cfg = FRONT_CONFIG.replace("REDIS", redis_server.url).replace("LIST_LOCAL", lists["fed_local"])
        front_cfg += provider_entry("second", provider.port, cluster_ipv4, token, ["fed_*"]) + "\n"
        front_cfg += provider_entry("fragile", link.port, cluster_ipv4, token, ["frag_*"]) + "\n"
        front = start_adapter(cluster_ipv4, directory / "front", front_cfg, prometheus_url=None, extra_args=FAST)
        register(cluster_ipv4, front)
        procs.wait_until(
            "front lists frag_jobs", lambda: "frag_jobs" in str(front.get(EXT)[1]), timeout=60, interval=0.5
        )
        procs.wait_until("metrics APIServices Available", lambda: available(cluster_ipv4), timeout=90, interval=0.5)
        yield Federated(cluster_ipv4, front, provider, r, lists, link)
    finally:
        stack = stacks.get(cluster_ipv4.ip_family)
        if stack is not None:  # give the shared stack its APIServices back
            register(cluster_ipv4, stack.adapter)
            procs.wait_until("stack APIServices Available", lambda: available(cluster_ipv4), timeout=90, interval=0.5)
        else:
            unregister(cluster_ipv4)
        if front is not None:
            front.stop()
        link.down()
        provider.stop()


def _metric(fed: Federated, ns: str, metric: str, query: str = "") -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        code, body = fed.raw(f"{EXT}/namespaces/{ns}/{metric}{query}")
        return body if code == 0 else None

    body: dict[str, Any] = procs.wait_until(f"{metric} through the aggregator", probe, timeout=30, interval=0.5)
    return body


def test_forwarded_metric_is_served_through_the_aggregator(federated: Federated) -> None:
    """A name only the provider serves comes back through the front adapter, selector forwarded."""
    federated.set_backlog("fed_jobs", 7)

    def seven() -> dict[str, Any] | None:
        code, body = federated.raw(f"{EXT}/namespaces/default/fed_jobs")
        return body if code == 0 and body["items"] and body["items"][0]["value"] == "7" else None

    body = procs.wait_until("fed_jobs = 7", seven, timeout=30, interval=0.5)
    assert body["kind"] == "ExternalMetricValueList"
    assert [(i["metricName"], i["metricLabels"]) for i in body["items"]] == [("fed_jobs", {"queue": "a"})]
    # The label selector reaches the provider: queue=b selects nothing there.
    assert _metric(federated, "default", "fed_jobs", "?labelSelector=queue%3Db")["items"] == []
    assert len(_metric(federated, "default", "fed_jobs", "?labelSelector=queue%3Da")["items"]) == 1


def test_our_own_name_wins_over_a_provider_glob(federated: Federated) -> None:
    """fed_local matches the provider's glob, but the front adapter serves it itself."""
    federated.set_backlog("fed_local", 3)

    def three() -> dict[str, Any] | None:
        code, body = federated.raw(f"{EXT}/namespaces/default/fed_local")
        return body if code == 0 and body["items"] and body["items"][0]["value"] == "3" else None

    procs.wait_until("fed_local = 3", three, timeout=30, interval=0.5)
    # The provider does not have it at all: had it been forwarded, the answer would be a 404.
    status, _ = federated.provider.get(f"{EXT}/namespaces/default/fed_local")
    assert status == 404


def test_a_name_outside_the_provider_list_is_not_forwarded(federated: Federated) -> None:
    """other_backlog is served by the provider but not listed: the front adapter answers 404."""
    status, body = federated.front.get(f"{EXT}/namespaces/default/other_backlog")
    assert status == 404, body
    assert body["message"] == "the server could not find the external metric other_backlog"


def test_discovery_merges_the_provider_list(federated: Federated) -> None:
    """The resource list holds ours and the provider's routed names, not its unlisted ones."""

    def merged() -> list[str] | None:
        code, body = federated.raw(EXT)
        names = sorted(r["name"] for r in body["resources"]) if code == 0 else []
        return names if "fed_jobs" in names else None

    names = procs.wait_until("fed_jobs in discovery", merged, timeout=60, interval=1)
    assert names == ["fed_jobs", "fed_local", "frag_jobs"]


def test_unauthorized_caller_is_refused_before_forwarding(federated: Federated) -> None:
    """A caller without RBAC gets 403 from the front adapter; the provider is never asked."""

    def calls() -> float:
        _, text = federated.front.get("/metrics")
        m = re.search(r'metrics_adapter_federation_requests_total\{call="metric",provider="second"\} (\S+)', text)
        return float(m.group(1)) if m else 0.0

    before = calls()
    status, body = federated.front.get(f"{EXT}/namespaces/default/fed_jobs", user="nobody", groups=())
    assert status == 403, body
    assert calls() == before


def test_provider_figures_on_metrics(federated: Federated) -> None:
    """Per-provider requests, latency and breaker state appear on the front adapter's /metrics."""
    federated.set_backlog("fed_jobs", 1)
    status, _ = federated.front.get(f"{EXT}/namespaces/default/fed_jobs")
    assert status == 200
    _, text = federated.front.get("/metrics")
    assert re.search(r'metrics_adapter_federation_requests_total\{call="metric",provider="second"\} [1-9]', text)
    assert re.search(r'metrics_adapter_federation_upstream_duration_seconds_count\{provider="second"\} [1-9]', text)
    assert 'metrics_adapter_federation_circuit_state{provider="second"} 0.0' in text


def _hpa(metric: str) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "worker"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"},
            "minReplicas": 1,
            "maxReplicas": 10,
            "metrics": [
                {
                    "type": "External",
                    "external": {"metric": {"name": metric}, "target": {"type": "AverageValue", "averageValue": "5"}},
                }
            ],
        },
    }


def test_hpa_scales_on_a_forwarded_metric(federated: Federated) -> None:
    """The real HPA controller reads fed_jobs through the front adapter and scales to ceil(20 / 5)."""
    api = api_client(federated.cluster)
    ns = new_namespace(api, "ma-fed")
    try:
        client.AppsV1Api(api).create_namespaced_deployment(ns, deployment("worker", 1))
        federated.set_backlog("fed_jobs", 0)
        autoscaling = client.AutoscalingV2Api(api)
        autoscaling.create_namespaced_horizontal_pod_autoscaler(ns, _hpa("fed_jobs"))

        def at(replicas: int) -> client.V2HorizontalPodAutoscaler | None:
            h = autoscaling.read_namespaced_horizontal_pod_autoscaler("worker", ns)
            st = h.status
            ok = st and st.desired_replicas == replicas and st.current_replicas == replicas and st.current_metrics
            return h if ok else None

        procs.wait_until("HPA at 1 replica", lambda: at(1), timeout=90, interval=1)
        federated.set_backlog("fed_jobs", 20)
        hpa = procs.wait_until("HPA at 4 replicas", lambda: at(4), timeout=120, interval=1)
        external = hpa.status.current_metrics[0].external
        assert external.metric.name == "fed_jobs"
        assert external.current.average_value == "5"
        conditions = {c.type: c.status for c in hpa.status.conditions}
        assert conditions["ScalingActive"] == "True"
    finally:
        client.CoreV1Api(api).delete_namespace(ns)


def test_check_reaches_the_provider_and_shows_what_it_forwards(federated: Federated) -> None:
    """`metrics-adapter check` calls each provider with the server's credentials and lists the names it forwards."""
    out = subprocess.run(
        [adapter_binary(), "check", f"--config={federated.front.directory / 'config.yaml'}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    origin = f"https://localhost:{federated.provider.port}"
    line = f"provider second ({origin}): reachable, lists 3 metrics; forwards fed_*: fed_jobs"
    assert line in out.stdout.splitlines(), out.stdout


def test_hpa_holds_when_the_provider_is_down(federated: Federated) -> None:
    """A provider that stops answering is an error naming it: the HPA stops scaling instead of scaling in."""
    api = api_client(federated.cluster)
    ns = new_namespace(api, "ma-fed-down")
    autoscaling = client.AutoscalingV2Api(api)
    try:
        client.AppsV1Api(api).create_namespaced_deployment(ns, deployment("worker", 1))
        federated.set_backlog("frag_jobs", 20)
        autoscaling.create_namespaced_horizontal_pod_autoscaler(ns, _hpa("frag_jobs"))

        def at_four() -> client.V2HorizontalPodAutoscaler | None:
            st = autoscaling.read_namespaced_horizontal_pod_autoscaler("worker", ns).status
            return st if st and st.current_replicas == 4 and st.desired_replicas == 4 else None

        procs.wait_until("HPA at 4 replicas", at_four, timeout=120, interval=1)
        federated.link.down()
        federated.set_backlog("frag_jobs", 0)  # would mean 1 replica, if it could be read

        def refused() -> client.V1HorizontalPodAutoscalerCondition | None:
            h = autoscaling.read_namespaced_horizontal_pod_autoscaler("worker", ns)
            active = next((c for c in h.status.conditions or [] if c.type == "ScalingActive"), None)
            return active if active is not None and active.status == "False" else None

        active = procs.wait_until("ScalingActive=False", refused, timeout=90, interval=1)
        assert active.reason == "FailedGetExternalMetric", active
        assert "external provider fragile" in active.message, active.message
        assert client.AppsV1Api(api).read_namespaced_deployment("worker", ns).spec.replicas == 4
    finally:
        federated.link.up()
        client.CoreV1Api(api).delete_namespace(ns)
