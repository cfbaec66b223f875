"""The harness cluster runs workloads: pods land on kwok nodes and turn Ready (or never do)."""

from __future__ import annotations

from kubernetes import client

from e2e import procs
from e2e.cluster import NEVER_READY_LABEL, ClusterInfo
from tests.e2e.kube import api_client, deployment, kubectl, new_namespace


def test_api_version_is_the_built_release(cluster: ClusterInfo) -> None:
    """/version reports the Kubernetes release the binaries were built from, over the right family."""
    from e2e.binaries import KUBERNETES_VERSION

    api = api_client(cluster)
    info = client.VersionApi(api).get_code()
    assert info.git_version == KUBERNETES_VERSION
    assert info.minor == KUBERNETES_VERSION.split(".")[1]
    expected_host = "[::1]" if cluster.ip_family == "ipv6" else "127.0.0.1"
    assert cluster.api_url.startswith(f"https://{expected_host}:")
    svc = client.CoreV1Api(api).read_namespaced_service("kubernetes", "default")
    assert (":" in svc.spec.cluster_ip) == (cluster.ip_family == "ipv6")


def test_deployment_gets_ready_pods_on_kwok_nodes(cluster: ClusterInfo) -> None:
    """A Deployment's pods are scheduled onto the fake nodes and become Ready."""
    api = api_client(cluster)
    ns = new_namespace(api)
    client.AppsV1Api(api).create_namespaced_deployment(ns, deployment("web", 3))

    def ready() -> bool:
        dep = client.AppsV1Api(api).read_namespaced_deployment("web", ns)
        return (dep.status.ready_replicas or 0) == 3

    procs.wait_until("3 ready replicas", ready, timeout=90)
    pods = client.CoreV1Api(api).list_namespaced_pod(ns, label_selector="app=web").items
    assert len(pods) == 3
    assert {p.spec.node_name for p in pods} <= set(cluster.node_names)
    assert all(p.status.phase == "Running" and p.status.pod_ip for p in pods)

    out = kubectl(cluster, "get", "pods", "-n", ns, "-o", "name")
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.split()) == 3


def test_never_ready_pods_run_but_stay_unready(cluster: ClusterInfo) -> None:
    """Pods labelled never-ready reach Running with Ready=False, so the rollout never completes."""
    api = api_client(cluster)
    ns = new_namespace(api)
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(ns, deployment("broken", 2, {NEVER_READY_LABEL: "true"}))
    core = client.CoreV1Api(api)

    def running() -> list[client.V1Pod]:
        pods = core.list_namespaced_pod(ns, label_selector="app=broken").items
        return pods if len(pods) == 2 and all(p.status.phase == "Running" for p in pods) else []

    pods = procs.wait_until("2 running pods", running, timeout=90)
    for pod in pods:
        ready = {c.type: c.status for c in pod.status.conditions}
        assert ready["Ready"] == "False"
        assert all(cs.state.running is not None and not cs.ready for cs in pod.status.container_statuses)
    dep = apps.read_namespaced_deployment("broken", ns)
    assert not dep.status.ready_replicas
    assert dep.status.unavailable_replicas == 2
