"""Every URL form of both metrics APIs through kube-apiserver's aggregator (``kubectl get --raw``), IPv4 and IPv6.

The adapter runs as the real ``metrics-adapter`` program with a realistic prometheus-adapter
config (``conftest.STACK_CONFIG``); series come from a real Prometheus scraping a test exporter,
backlogs from a real RabbitMQ, pods from the real control plane. Bodies are compared with the
exact JSON the upstream Go types produce (timestamps checked for being recent).
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis as redis_client
from kubernetes import client

from e2e import procs
from tests.e2e.kube import api_client, deployment, new_namespace
from tests.metrics_adapter.conftest import Stack, recent, strip_times

pytestmark = [pytest.mark.cluster, pytest.mark.services]

CM = "/apis/custom.metrics.k8s.io"
EM = "/apis/external.metrics.k8s.io/v1beta1"


@dataclass
class Scene:
    stack: Stack
    ns: str
    web: list[str]  # pod names of Deployment web (app=web, tier=front), sorted
    batch: str  # the pod of Deployment batch (app=batch)
    node: str


def _pods(api: client.ApiClient, ns: str, selector: str, count: int) -> list[str]:
    def names() -> list[str] | None:
        items = client.CoreV1Api(api).list_namespaced_pod(ns, label_selector=selector).items
        return sorted(p.metadata.name for p in items) if len(items) == count else None

    return procs.wait_until(f"{count} pods {selector} in {ns}", names, timeout=60)


@pytest.fixture(scope="module")
def scene(stack: Stack) -> Iterator[Scene]:
    """A namespace with 3 web pods and 1 batch pod, and series for them, served by the adapter."""
    api = api_client(stack.cluster)
    ns = new_namespace(api, "ma")
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(ns, deployment("web", 3, {"tier": "front"}))
    apps.create_namespaced_deployment(ns, deployment("batch", 1))
    web = _pods(api, ns, "app=web", 3)
    batch = _pods(api, ns, "app=batch", 1)[0]
    node = stack.cluster.node_names[0]
    exp = stack.exporter
    for i, pod in enumerate(web):
        exp.set("e2e_inflight_requests", {"namespace": ns, "pod": pod, "kind": "api"}, i + 1)
    exp.set("e2e_inflight_requests", {"namespace": ns, "pod": web[0], "kind": "batch"}, 100)
    exp.set("e2e_inflight_requests", {"namespace": ns, "pod": batch, "kind": "api"}, 10)
    exp.set("e2e_deployment_queue_length", {"namespace": ns, "deployment": "web"}, 7)
    exp.set("e2e_node_load", {"node": node}, 0.75)
    exp.set("e2e_queue_messages", {"namespace": ns, "queue": "orders"}, 5)
    exp.set("e2e_queue_messages", {"namespace": ns, "queue": "jobs"}, 3)
    exp.set("e2e_queue_messages", {"namespace": "elsewhere", "queue": "orders"}, 1000)
    start = time.time()
    # A counter growing by 2 per second per web pod: requests_per_second ≈ 2.
    exp.callbacks.append(
        lambda: (
            [("e2e_requests_total", {"namespace": ns, "pod": p}, 2 * (time.time() - start)) for p in web]
            + [("e2e_cpu_seconds_total", {"namespace": ns, "pod": p}, time.time() - start) for p in web]
        )
    )
    scene = Scene(stack, ns, web, batch, node)
    stack.wait_raw(
        f"{CM}/v1beta1/namespaces/{ns}/pods/*/inflight_requests?labelSelector=app%3Dweb",
        lambda b: len(b["items"]) == 3,
    )
    yield scene
    client.CoreV1Api(api).delete_namespace(ns)


def pod_item_v1(scene: Scene, pod: str, metric: str, value: str, selector: Any = None) -> dict[str, Any]:
    return {
        "describedObject": {"kind": "Pod", "namespace": scene.ns, "name": pod, "apiVersion": "v1"},
        "metricName": metric,
        "timestamp": "T",
        "value": value,
        "selector": selector,
    }


def custom_list(version: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": "MetricValueList", "apiVersion": f"custom.metrics.k8s.io/{version}", "metadata": {}, "items": items}


def test_group_and_discovery_documents(scene: Scene) -> None:
    """APIGroup prefers v1beta2; each version lists one entry per resource and metric, sorted and stable."""
    code, group = scene.stack.raw(CM)
    assert code == 0, group
    assert group["preferredVersion"] == {"groupVersion": "custom.metrics.k8s.io/v1beta2", "version": "v1beta2"}
    expected = [
        ("deployments.apps/queue_length", True),
        ("jobs.batch/requests_per_second", True),  # the template maps the `job` label, as upstream does
        ("namespaces/inflight_requests", False),
        ("namespaces/queue_length", False),
        ("namespaces/requests_per_second", False),
        ("nodes/e2e_node_load", False),
        ("pods/inflight_requests", True),
        ("pods/requests_per_second", True),
    ]
    for version in ("v1beta1", "v1beta2"):
        code, doc = scene.stack.raw(f"{CM}/{version}")
        assert code == 0, doc
        assert doc["kind"] == "APIResourceList" and doc["groupVersion"] == f"custom.metrics.k8s.io/{version}"
        assert [(r["name"], r["namespaced"]) for r in doc["resources"]] == expected
        assert all(r["kind"] == "MetricValueList" and r["verbs"] == ["get"] for r in doc["resources"])
    code, ext = scene.stack.raw(EM)
    assert code == 0, ext
    assert [r["name"] for r in ext["resources"]] == [
        "hpa_backlog",
        "jobs_backlog",
        "orders_backlog",
        "queue_messages",
        "shop_backlog",
    ]
    assert all(r["namespaced"] and r["kind"] == "ExternalMetricValueList" for r in ext["resources"])


def test_single_namespaced_object_in_both_versions(scene: Scene) -> None:
    """pods/NAME/metric: v1beta1 carries metricName + selector, v1beta2 metric{name, selector}."""
    pod = scene.web[1]
    code, body = scene.stack.raw(f"{CM}/v1beta1/namespaces/{scene.ns}/pods/{pod}/inflight_requests")
    assert code == 0, body
    assert strip_times(body) == custom_list("v1beta1", [pod_item_v1(scene, pod, "inflight_requests", "2")])
    assert recent(body["items"][0]["timestamp"])
    code, body = scene.stack.raw(f"{CM}/v1beta2/namespaces/{scene.ns}/pods/{pod}/inflight_requests")
    assert code == 0, body
    assert strip_times(body) == custom_list(
        "v1beta2",
        [
            {
                "describedObject": {"kind": "Pod", "namespace": scene.ns, "name": pod, "apiVersion": "v1"},
                "metric": {"name": "inflight_requests", "selector": None},
                "timestamp": "T",
                "value": "2",
            }
        ],
    )


@pytest.mark.parametrize(
    ("selector", "which"),
    [
        ("app=web", "web"),
        ("app in (web,batch)", "all"),
        ("app notin (web)", "batch"),
        ("app,!tier", "batch"),
        ("app=web,tier=front", "web"),
        ("app=nothing", "none"),
    ],
)
def test_wildcard_with_label_selectors(scene: Scene, selector: str, which: str) -> None:
    """pods/* with equality and set-based selectors returns exactly the selected pods' values, sorted."""
    path = (
        f"{CM}/v1beta1/namespaces/{scene.ns}/pods/*/inflight_requests?"
        f"{urllib.parse.urlencode({'labelSelector': selector})}"
    )
    code, body = scene.stack.raw(path)
    assert code == 0, body
    values = {scene.web[0]: "101", scene.web[1]: "2", scene.web[2]: "3", scene.batch: "10"}
    pods = {"web": scene.web, "batch": [scene.batch], "all": sorted([*scene.web, scene.batch]), "none": []}[which]
    assert strip_times(body) == custom_list(
        "v1beta1", [pod_item_v1(scene, p, "inflight_requests", values[p]) for p in pods]
    )


def test_percent_encoded_wildcard(scene: Scene) -> None:
    """%2A is the same as * in the object position."""
    code, body = scene.stack.raw(
        f"{CM}/v1beta2/namespaces/{scene.ns}/pods/%2A/inflight_requests?labelSelector=app%3Dweb"
    )
    assert code == 0, body
    assert [i["describedObject"]["name"] for i in body["items"]] == scene.web


def test_metric_label_selector_narrows_the_query(scene: Scene) -> None:
    """metricLabelSelector becomes label matchers; v1beta2 reports it as metric.selector."""
    q = urllib.parse.urlencode({"metricLabelSelector": "kind=api"})
    code, body = scene.stack.raw(f"{CM}/v1beta2/namespaces/{scene.ns}/pods/{scene.web[0]}/inflight_requests?{q}")
    assert code == 0, body
    item = body["items"][0]
    assert item["value"] == "1"  # without the selector it is 101 (kind=batch adds 100)
    assert item["metric"] == {"name": "inflight_requests", "selector": {"matchLabels": {"kind": "api"}}}
    q = urllib.parse.urlencode({"metricLabelSelector": "kind notin (api)", "labelSelector": "app=web"})
    code, body = scene.stack.raw(f"{CM}/v1beta1/namespaces/{scene.ns}/pods/*/inflight_requests?{q}")
    assert code == 0, body
    assert [(i["describedObject"]["name"], i["value"]) for i in body["items"]] == [(scene.web[0], "100")]
    assert body["items"][0]["selector"] == {
        "matchExpressions": [{"key": "kind", "operator": "NotIn", "values": ["api"]}]
    }


def test_namespace_metrics_form(scene: Scene) -> None:
    """namespaces/NS/metrics/METRIC describes the namespace itself (sum over its pods here)."""
    code, body = scene.stack.raw(f"{CM}/v1beta1/namespaces/{scene.ns}/metrics/inflight_requests")
    assert code == 0, body
    assert strip_times(body) == custom_list(
        "v1beta1",
        [
            {
                "describedObject": {"kind": "Namespace", "name": scene.ns, "apiVersion": "v1"},
                "metricName": "inflight_requests",
                "timestamp": "T",
                "value": "116",
                "selector": None,
            }
        ],
    )


def test_group_qualified_resource(scene: Scene) -> None:
    """deployments.apps/NAME resolves the apps group; describedObject carries apps/v1 and kind Deployment."""
    code, body = scene.stack.raw(f"{CM}/v1beta2/namespaces/{scene.ns}/deployments.apps/web/queue_length")
    assert code == 0, body
    item = body["items"][0]
    assert item["describedObject"] == {
        "kind": "Deployment",
        "namespace": scene.ns,
        "name": "web",
        "apiVersion": "apps/v1",
    }
    assert item["value"] == "7"


def test_cluster_scoped_object(scene: Scene) -> None:
    """nodes/NAME/metric is served at the cluster scope, with milli-unit values."""
    code, body = scene.stack.raw(f"{CM}/v1beta1/nodes/{scene.node}/e2e_node_load")
    assert code == 0, body
    assert strip_times(body)["items"] == [
        {
            "describedObject": {"kind": "Node", "name": scene.node, "apiVersion": "v1"},
            "metricName": "e2e_node_load",
            "timestamp": "T",
            "value": "750m",
            "selector": None,
        }
    ]


def test_rate_metric_from_a_counter(scene: Scene) -> None:
    """The _total → _per_second rule serves the counter's rate (2/s here)."""

    def milli(body: dict[str, Any]) -> int:
        value: str = body["items"][0]["value"]
        return int(value[:-1]) if value.endswith("m") else int(value) * 1000

    # rate() reads low until the 20 s window holds samples; then it settles on 2/s.
    scene.stack.wait_raw(
        f"{CM}/v1beta1/namespaces/{scene.ns}/pods/{scene.web[0]}/requests_per_second",
        lambda b: bool(b["items"]) and 1600 <= milli(b) <= 2400,
        timeout=60,
    )


def test_external_metric_from_prometheus(scene: Scene) -> None:
    """An externalRule is scoped to the HPA's namespace; labelSelector picks series; items sorted by labels."""
    code, body = scene.stack.raw(f"{EM}/namespaces/{scene.ns}/queue_messages")
    assert code == 0, body
    assert strip_times(body) == {
        "kind": "ExternalMetricValueList",
        "apiVersion": "external.metrics.k8s.io/v1beta1",
        "metadata": {},
        "items": [
            {"metricName": "queue_messages", "metricLabels": {"queue": "jobs"}, "timestamp": "T", "value": "3"},
            {"metricName": "queue_messages", "metricLabels": {"queue": "orders"}, "timestamp": "T", "value": "5"},
        ],
    }
    code, body = scene.stack.raw(f"{EM}/namespaces/{scene.ns}/queue_messages?labelSelector=queue%3Dorders")
    assert code == 0, body
    assert [(i["metricLabels"], i["value"]) for i in body["items"]] == [({"queue": "orders"}, "5")]


def _purge(stack: Stack, *queues: str) -> None:
    for q in queues:
        stack.rabbitmq.api("DELETE", f"/api/queues/%2F/{q}/contents")


def test_queue_backlog_as_external_metric(scene: Scene) -> None:
    """A RabbitMQ queue's ready count is served in every namespace when the entry names none."""
    _purge(scene.stack, "orders")
    scene.stack.rabbitmq.publish("orders", 3)
    body = scene.stack.wait_raw(f"{EM}/namespaces/{scene.ns}/orders_backlog", lambda b: b["items"][0]["value"] == "3")
    assert strip_times(body)["items"] == [
        {"metricName": "orders_backlog", "metricLabels": {}, "timestamp": "T", "value": "3"}
    ]
    assert recent(body["items"][0]["timestamp"])


def test_redis_list_length_as_external_metric(scene: Scene) -> None:
    """A Redis list's length is served too: the same path works for every broker kind."""
    r = redis_client.Redis.from_url(scene.stack.redis.url)
    r.delete("ma-jobs")
    r.rpush("ma-jobs", *[f"j{i}" for i in range(7)])
    body = scene.stack.wait_raw(f"{EM}/namespaces/{scene.ns}/jobs_backlog", lambda b: b["items"][0]["value"] == "7")
    assert body["items"][0]["metricName"] == "jobs_backlog" and recent(body["items"][0]["timestamp"])
    r.close()


def test_queue_entries_sharing_a_name_form_one_metric(scene: Scene) -> None:
    """Entries with one name and different labels: each is an item; metricLabelSelector picks; namespace scopes."""
    _purge(scene.stack, "shop-a", "shop-b")
    scene.stack.rabbitmq.publish("shop-a", 2)
    scene.stack.rabbitmq.publish("shop-b", 4)
    body = scene.stack.wait_raw(
        f"{EM}/namespaces/ma-shop/shop_backlog", lambda b: [i["value"] for i in b["items"]] == ["2", "4"]
    )
    assert [i["metricLabels"] for i in body["items"]] == [{"queue": "a"}, {"queue": "b"}]
    code, body = scene.stack.raw(f"{EM}/namespaces/ma-shop/shop_backlog?labelSelector=queue%3Db")
    assert code == 0, body
    assert [(i["metricLabels"], i["value"]) for i in body["items"]] == [({"queue": "b"}, "4")]
    code, body = scene.stack.raw(f"{EM}/namespaces/ma-shop/shop_backlog?labelSelector=queue+in+%28a%2Cb%29")
    assert code == 0 and len(body["items"]) == 2, body
    code, err = scene.stack.raw(f"{EM}/namespaces/{scene.ns}/shop_backlog")
    assert code != 0 and "could not find the external metric shop_backlog in namespace" in err


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        (f"{CM}/v1beta1/namespaces/NS/pods/POD/no_such_metric", "could not find the metric no_such_metric for pods"),
        (f"{CM}/v1beta1/namespaces/NS/pods/no-such-pod/inflight_requests", "for pods no-such-pod"),
        (f"{CM}/v1beta1/namespaces/NS/nothings/x/inflight_requests", "the requested resource 'nothings'"),
        (f"{CM}/v1beta1/namespaces/NS/pods/*/inflight_requests?labelSelector=app%3D%3D%3Dx", "labelSelector: "),
        (
            f"{CM}/v1beta2/namespaces/NS/pods/POD/inflight_requests?metricLabelSelector=kind%3E1",
            "cannot be turned into",
        ),
        (f"{CM}/v1beta1/pods/POD/inflight_requests", "is namespaced"),
        (f"{EM}/namespaces/NS/no_such_external", "could not find the external metric no_such_external"),
        (f"{EM}/namespaces/NS/queue_messages?labelSelector=%21%21", "labelSelector: "),
    ],
)
def test_errors_are_status_objects_through_the_aggregator(scene: Scene, path: str, fragment: str) -> None:
    """Unknown metrics/resources/objects are 404s and bad selectors 400s, with messages naming the problem."""
    path = path.replace("NS", scene.ns).replace("POD", scene.web[0])
    code, err = scene.stack.raw(path)
    assert code != 0
    assert fragment in err, err
    status, body = scene.stack.adapter.get(path)
    assert body["kind"] == "Status" and body["code"] == status
    assert status in (400, 404)


def test_kube_apiserver_logs_no_errors_about_the_metrics_apis(scene: Scene) -> None:
    """Discovery, /openapi/v2 and /openapi/v3 are answered to the aggregator's liking: no error lines."""
    code, _ = scene.stack.raw("/openapi/v3/apis/custom.metrics.k8s.io/v1beta2")
    assert code == 0
    time.sleep(2)  # the aggregator's OpenAPI controllers poll in the background
    assert scene.stack.apiserver_errors_about_metrics() == []


def test_adapter_logged_no_errors(scene: Scene) -> None:
    """After every URL form and error case above, the adapter's own log holds no error-level line."""
    errors = [line for line in scene.stack.adapter.log_text().splitlines() if '"level": "error"' in line]
    assert errors == []
