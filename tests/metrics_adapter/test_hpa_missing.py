"""A metric that disappears stops the real HPA from scaling in; it keeps scaling out on the other metric.

The HPA reads two Prometheus-backed metrics: a Pods metric (``inflight_requests``, proposing
``ceil(load / 10)``) and an External one (``queue_messages``, proposing ``ceil(depth / 5)``). It
is scaled out to 4 on the Pods metric; then the exporter stops exposing that series (Prometheus
marks it stale and has no sample). The adapter answers an error for it, so the controller's
rule applies: with a metric it cannot read and a lower proposal from the other, it does not
scale (``ScalingActive=False``, ``FailedGetPodsMetric``). Scale-down stabilization is 0 here, so
an adapter answering 0 or an empty list would have taken it to 1 on the first sync. When the
queue grows, the External metric's proposal (6) wins as usual.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from e2e import procs
from tests.e2e.kube import api_client, deployment, new_namespace
from tests.metrics_adapter.conftest import Stack

pytestmark = [pytest.mark.cluster, pytest.mark.services]


class Series:
    """What the exporter shows for this test: the load over the worker pods (while present), a queue depth."""

    def __init__(self, api: client.ApiClient, ns: str) -> None:
        self.api, self.ns = api, ns
        self.load, self.load_present, self.depth = 40.0, True, 5.0

    def __call__(self) -> list[tuple[str, dict[str, str], float]]:
        out = [("e2e_queue_messages", {"namespace": self.ns, "queue": f"{self.ns}-jobs"}, self.depth)]
        if self.load_present:
            pods = [
                p.metadata.name
                for p in client.CoreV1Api(self.api).list_namespaced_pod(self.ns, label_selector="app=worker").items
                if p.metadata.deletion_timestamp is None
            ]
            out += [("e2e_inflight_requests", {"namespace": self.ns, "pod": p}, self.load / len(pods)) for p in pods]
        return out


@pytest.fixture
def worker(stack_ipv4: Stack) -> Iterator[tuple[str, Series]]:
    api = api_client(stack_ipv4.cluster)
    ns = new_namespace(api, "ma-missing")
    client.AppsV1Api(api).create_namespaced_deployment(ns, deployment("worker", 1))
    series = Series(api, ns)
    stack_ipv4.exporter.callbacks.append(series)
    try:
        yield ns, series
    finally:
        stack_ipv4.exporter.callbacks.remove(series)
        client.CoreV1Api(api).delete_namespace(ns)


def _hpa(ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "worker"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"},
            "minReplicas": 1,
            "maxReplicas": 10,
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": "inflight_requests"},
                        "target": {"type": "AverageValue", "averageValue": "10"},
                    },
                },
                {
                    "type": "External",
                    "external": {
                        "metric": {"name": "queue_messages", "selector": {"matchLabels": {"queue": f"{ns}-jobs"}}},
                        "target": {"type": "AverageValue", "averageValue": "5"},
                    },
                },
            ],
        },
    }


def test_hpa_holds_when_a_metric_disappears_and_scales_out_on_the_other(
    stack_ipv4: Stack, worker: tuple[str, Series]
) -> None:
    """Series gone: adapter error, HPA holds at 4 (ScalingActive=False); the other metric still scales it to 6."""
    ns, series = worker
    api = api_client(stack_ipv4.cluster)
    autoscaling = client.AutoscalingV2Api(api)
    autoscaling.create_namespaced_horizontal_pod_autoscaler(ns, _hpa(ns))

    def hpa() -> client.V2HorizontalPodAutoscaler:
        return autoscaling.read_namespaced_horizontal_pod_autoscaler("worker", ns)

    def settled_at(replicas: int, timeout: float) -> client.V2HorizontalPodAutoscaler:
        def check() -> client.V2HorizontalPodAutoscaler | None:
            st = hpa().status
            ok = st and st.desired_replicas == replicas and st.current_replicas == replicas and st.current_metrics
            return hpa() if ok else None

        return procs.wait_until(f"HPA at {replicas} replicas", check, timeout=timeout, interval=1)

    # Load 40 → ceil(40 / 10) = 4 replicas; the queue (5, 5 per pod) alone would say 1.
    settled_at(4, 120)

    # The series disappears: the adapter answers an error, never an empty list or 0.
    series.load_present = False
    pods_path = (
        f"/apis/custom.metrics.k8s.io/v1beta2/namespaces/{ns}/pods/*/inflight_requests?labelSelector=app%3Dworker"
    )
    procs.wait_until("the Pods metric answers an error", lambda: stack_ipv4.raw(pods_path)[0] != 0, timeout=60)
    _code, error = stack_ipv4.raw(pods_path)
    assert "the server could not find the metric inflight_requests for any of the 4 pods selected" in error, error

    def failed_syncs() -> int:
        events = client.CoreV1Api(api).list_namespaced_event(
            ns, field_selector="involvedObject.kind=HorizontalPodAutoscaler,reason=FailedGetPodsMetric"
        )
        return sum(e.count or 1 for e in events.items)

    # Three syncs of the controller that could not read the metric (counted from its events).
    procs.wait_until("3 syncs without the Pods metric", lambda: failed_syncs() >= 3, timeout=120, interval=1)
    h = hpa()
    conditions = {c.type: c for c in h.status.conditions}
    assert conditions["ScalingActive"].status == "False", conditions["ScalingActive"]
    assert conditions["ScalingActive"].reason == "FailedGetPodsMetric"
    assert "inflight_requests" in conditions["ScalingActive"].message
    assert h.status.desired_replicas == 4
    assert client.AppsV1Api(api).read_namespaced_deployment("worker", ns).spec.replicas == 4

    # The other metric still scales out: depth 30 → ceil(30 / 5) = 6 > 4.
    series.depth = 30
    h = settled_at(6, 120)
    external = next(m for m in h.status.current_metrics if m.type == "External")
    assert external.external.metric.name == "queue_messages"
    assert external.external.current.average_value == "5"  # 30 over 6 pods
    assert client.AppsV1Api(api).read_namespaced_deployment("worker", ns).spec.replicas == 6
