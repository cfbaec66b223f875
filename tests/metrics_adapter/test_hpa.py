"""The real HPA controller scales a Deployment on two metrics served by the adapter at once.

One metric is a Prometheus-backed Pods metric (``inflight_requests``, a total load spread over
the Deployment's pods, so it proposes ``ceil(load / 10)`` replicas); the other is an External
metric backed by a real RabbitMQ queue (``hpa_backlog``, proposing ``ceil(backlog / 5)``). The
Deployment grows when the queue grows, follows the larger proposal when the Pods metric asks
for more, and shrinks when both fall.
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


class Load:
    """A total request load the exporter spreads evenly over the worker pods that exist."""

    def __init__(self, api: client.ApiClient, ns: str) -> None:
        self.api, self.ns, self.total = api, ns, 5.0

    def series(self) -> list[tuple[str, dict[str, str], float]]:
        pods = [
            p.metadata.name
            for p in client.CoreV1Api(self.api).list_namespaced_pod(self.ns, label_selector="app=worker").items
            if p.metadata.deletion_timestamp is None
        ]
        return [
            ("e2e_inflight_requests", {"namespace": self.ns, "pod": p, "kind": "api"}, self.total / len(pods))
            for p in pods
        ]


@pytest.fixture
def worker(stack_ipv4: Stack) -> Iterator[tuple[str, Load]]:
    api = api_client(stack_ipv4.cluster)
    ns = new_namespace(api, "ma-hpa")
    client.AppsV1Api(api).create_namespaced_deployment(ns, deployment("worker", 1))
    load = Load(api, ns)
    stack_ipv4.exporter.callbacks.append(load.series)
    stack_ipv4.rabbitmq.api("DELETE", "/api/queues/%2F/hpa-orders/contents")
    try:
        yield ns, load
    finally:
        stack_ipv4.exporter.callbacks.remove(load.series)
        client.CoreV1Api(api).delete_namespace(ns)


def _hpa() -> dict[str, Any]:
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
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": "inflight_requests"},
                        "target": {"type": "AverageValue", "averageValue": "10"},
                    },
                },
                {
                    "type": "External",
                    "external": {
                        "metric": {"name": "hpa_backlog"},
                        "target": {"type": "AverageValue", "averageValue": "5"},
                    },
                },
            ],
        },
    }


def test_hpa_scales_on_a_prometheus_metric_and_a_queue_length(stack_ipv4: Stack, worker: tuple[str, Load]) -> None:
    """Grows with the queue, follows the larger proposal, shrinks when both fall; both metrics are read."""
    ns, load = worker
    api = api_client(stack_ipv4.cluster)
    autoscaling = client.AutoscalingV2Api(api)
    autoscaling.create_namespaced_horizontal_pod_autoscaler(ns, _hpa())

    def settled_at(replicas: int, timeout: float) -> client.V2HorizontalPodAutoscaler:
        def check() -> client.V2HorizontalPodAutoscaler | None:
            h = autoscaling.read_namespaced_horizontal_pod_autoscaler("worker", ns)
            st = h.status
            if st and st.desired_replicas == replicas and st.current_replicas == replicas and st.current_metrics:
                return h
            return None

        return procs.wait_until(f"HPA at {replicas} replicas", check, timeout=timeout, interval=1)

    # Both metrics read: load 5 → 1 replica, empty queue → no more.
    hpa = settled_at(1, 90)
    kinds = {m.type for m in hpa.status.current_metrics}
    assert kinds == {"Pods", "External"}, hpa.status.current_metrics
    conditions = {c.type: c.status for c in hpa.status.conditions}
    assert conditions["ScalingActive"] == "True"

    # The queue grows to 20 → ceil(20 / 5) = 4 replicas; the Pods metric still says 1.
    stack_ipv4.rabbitmq.publish("hpa-orders", 20)
    hpa = settled_at(4, 90)
    external = next(m for m in hpa.status.current_metrics if m.type == "External")
    assert external.external.metric.name == "hpa_backlog"
    assert external.external.current.average_value == "5"  # 20 messages over 4 pods

    # The load rises to 60 → ceil(60 / 10) = 6 > 4: the larger proposal wins.
    load.total = 60
    hpa = settled_at(6, 90)
    pods_metric = next(m for m in hpa.status.current_metrics if m.type == "Pods")
    assert pods_metric.pods.metric.name == "inflight_requests"
    assert pods_metric.pods.current.average_value == "10"

    # Both fall: the queue is drained and the load drops → back to 1 (after the 30 s stabilization).
    load.total = 5
    stack_ipv4.rabbitmq.api("DELETE", "/api/queues/%2F/hpa-orders/contents")
    settled_at(1, 150)
    assert client.AppsV1Api(api).read_namespaced_deployment("worker", ns).spec.replicas == 1
