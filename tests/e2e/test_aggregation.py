"""An aggregated API served by a process on this machine, reached through kube-apiserver.

A small aiohttp server (the shape metrics_adapter will have) serves an external metric; it is
registered with an APIService behind an ExternalName Service, and the HPA controller scales a
Deployment on the value it serves.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from kubernetes import client

from e2e import procs
from e2e.aggregation import ThreadedApp, apiservice_objects, free_dual_port, serving_cert
from e2e.cluster import ClusterInfo
from tests.e2e.kube import api_client, deployment, kubectl, new_namespace

GROUP, VERSION = "external.metrics.k8s.io", "v1beta1"
METRIC = "e2e_queue_depth"


@dataclass
class FakeExternalMetrics:
    """What the test server serves, and what it saw."""

    values: dict[tuple[str, str], float] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(f"/apis/{GROUP}/{VERSION}", self.discovery)
        app.router.add_get(f"/apis/{GROUP}/{VERSION}/namespaces/{{ns}}/{{metric}}", self.metric)
        return app

    async def discovery(self, request: web.Request) -> web.Response:
        self.requests.append((request.headers.get("X-Remote-User", ""), request.path))
        return web.json_response(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": f"{GROUP}/{VERSION}",
                "resources": [
                    {
                        "name": METRIC,
                        "singularName": "",
                        "namespaced": True,
                        "kind": "ExternalMetricValueList",
                        "verbs": ["get"],
                    }
                ],
            }
        )

    async def metric(self, request: web.Request) -> web.Response:
        ns, name = request.match_info["ns"], request.match_info["metric"]
        self.requests.append((request.headers.get("X-Remote-User", ""), request.path))
        if (ns, name) not in self.values:
            return web.json_response(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "reason": "NotFound",
                    "code": 404,
                    "message": f"metric {name} not found in namespace {ns}",
                },
                status=404,
            )
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return web.json_response(
            {
                "kind": "ExternalMetricValueList",
                "apiVersion": f"{GROUP}/{VERSION}",
                "metadata": {},
                "items": [
                    {
                        "metricName": name,
                        "metricLabels": {},
                        "timestamp": now,
                        "value": f"{int(self.values[(ns, name)] * 1000)}m",
                    }
                ],
            }
        )


@pytest.fixture(scope="module")
def external_metrics(cluster: ClusterInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeExternalMetrics]:
    """The fake metrics server, registered as v1beta1.external.metrics.k8s.io and Available."""
    fake = FakeExternalMetrics()
    api = api_client(cluster)
    ns = new_namespace(api, "metrics")
    port = free_dual_port()
    cert = serving_cert(cluster, Path(tmp_path_factory.mktemp("serving")), "fake-metrics", ns)
    server = ThreadedApp(fake.app(), ("127.0.0.1", "::1"), port, cert)
    server.start()
    svc, apisvc = apiservice_objects(GROUP, VERSION, port, cert.ca_bundle_b64, service="fake-metrics", namespace=ns)
    client.CoreV1Api(api).create_namespaced_service(ns, svc)
    registration = client.ApiregistrationV1Api(api)
    registration.create_api_service(apisvc)
    try:
        yield fake
    finally:
        registration.delete_api_service(apisvc["metadata"]["name"])
        client.CoreV1Api(api).delete_namespace(ns)
        server.stop()


def _available(api: client.ApiClient) -> bool:
    obj = client.ApiregistrationV1Api(api).read_api_service(f"{VERSION}.{GROUP}")
    return any(c.type == "Available" and c.status == "True" for c in (obj.status.conditions or []))


def test_apiservice_becomes_available_and_kubectl_reaches_it(
    cluster: ClusterInfo, external_metrics: FakeExternalMetrics
) -> None:
    """The APIService turns Available and `kubectl get --raw` is answered by our server."""
    api = api_client(cluster)
    procs.wait_until("APIService Available", lambda: _available(api), timeout=90)

    ns = new_namespace(api)
    external_metrics.values[(ns, METRIC)] = 42
    out = kubectl(cluster, "get", "--raw", f"/apis/{GROUP}/{VERSION}")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["resources"][0]["name"] == METRIC

    out = kubectl(cluster, "get", "--raw", f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{METRIC}")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["items"][0]["value"] == "42000m"
    # The aggregator authenticated the caller and passed its identity on.
    assert ("kubernetes-admin", f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{METRIC}") in external_metrics.requests

    missing = kubectl(cluster, "get", "--raw", f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/no_such_metric")
    assert missing.returncode != 0
    assert "not found" in missing.stderr


def test_hpa_controller_scales_on_the_served_metric(
    cluster: ClusterInfo, external_metrics: FakeExternalMetrics
) -> None:
    """kube-controller-manager's HPA controller reads the metric and scales the Deployment to match."""
    api = api_client(cluster)
    procs.wait_until("APIService Available", lambda: _available(api), timeout=90)
    ns = new_namespace(api)
    external_metrics.values[(ns, METRIC)] = 30  # 30 / averageValue 10 → 3 replicas
    client.AppsV1Api(api).create_namespaced_deployment(ns, deployment("worker", 1))
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "worker"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"},
            "minReplicas": 1,
            "maxReplicas": 5,
            "metrics": [
                {
                    "type": "External",
                    "external": {
                        "metric": {"name": METRIC},
                        "target": {"type": "AverageValue", "averageValue": "10"},
                    },
                }
            ],
        },
    }
    autoscaling = client.AutoscalingV2Api(api)
    autoscaling.create_namespaced_horizontal_pod_autoscaler(ns, hpa)

    def settled() -> client.V2HorizontalPodAutoscaler | None:
        h = autoscaling.read_namespaced_horizontal_pod_autoscaler("worker", ns)
        st = h.status
        # Once at 3 replicas, the per-pod average of the served 30 is 10: the target, so it stays.
        if st and st.current_replicas == 3 and st.desired_replicas == 3 and st.current_metrics:
            return h if st.current_metrics[0].external.current.average_value == "10" else None
        return None

    status = procs.wait_until("HPA settled at 3 replicas", settled, timeout=120).status
    conditions = {c.type: c.status for c in status.conditions}
    assert conditions["ScalingActive"] == "True"
    assert client.AppsV1Api(api).read_namespaced_deployment("worker", ns).spec.replicas == 3
    # The HPA controller asked our server itself, under its own service account.
    assert any(
        user == "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
        and path.endswith(f"/namespaces/{ns}/{METRIC}")
        for user, path in external_metrics.requests
    )
