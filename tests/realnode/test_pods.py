"""Pods on the real node: real readiness probes against a real process, a Service routed by
kube-proxy from one pod to another, and the API server reached from a pod through the
``kubernetes`` Service, once per IP family."""

from __future__ import annotations

import time
from typing import Any

import pytest

from e2e.realnode.images import HTTPD_IMAGE
from e2e.realnode.layout import NODE_NAME
from e2e.realnode.node import pod_manifest
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import wait_for
from tests.realnode.conftest import RealCluster, create, get, pod_condition

pytestmark = pytest.mark.cluster


def _namespace(rc: RealCluster, prefix: str) -> str:
    name = f"{prefix}-{hex(time.monotonic_ns())[-8:]}"
    assert kubectl(rc.info, "create", "namespace", name).returncode == 0
    return name


def _client(name: str, url: str) -> dict[str, Any]:
    pod = pod_manifest(name, HTTPD_IMAGE, command=["/httpd", "get", url])
    pod["spec"]["restartPolicy"] = "Never"
    return pod


def _finished(rc: RealCluster, ns: str, name: str) -> dict[str, Any] | None:
    pod: dict[str, Any] = get(rc.info, ns, "pod", name)
    return pod if pod["status"].get("phase") in ("Succeeded", "Failed") else None


def test_readiness_probe_passes_for_one_pod_and_fails_for_another(real_cluster: RealCluster) -> None:
    """Same image, same probe: READY=false answers 503, so that pod runs but never becomes Ready."""
    info = real_cluster.info
    ns = _namespace(real_cluster, "probe")
    try:
        create(
            info,
            ns,
            pod_manifest("good", HTTPD_IMAGE, readiness_path="/ready"),
            pod_manifest("bad", HTTPD_IMAGE, readiness_path="/ready", env={"READY": "false"}),
        )
        good = wait_for("pod good Ready", lambda: pod_condition(get(info, ns, "pod", "good"), "Ready") == "True")
        assert good
        pod = get(info, ns, "pod", "good")
        assert pod["spec"]["nodeName"] == NODE_NAME and pod["status"]["podIP"]

        # The failing pod's container is running (a real process), its probe keeps failing.
        def bad_probed() -> dict[str, Any] | None:
            pod: dict[str, Any] = get(info, ns, "pod", "bad")
            statuses = pod["status"].get("containerStatuses") or []
            running = bool(statuses) and "running" in statuses[0]["state"]
            events = get(info, ns, "events", "--field-selector", "involvedObject.name=bad,reason=Unhealthy")
            return pod if running and events["items"] else None

        pod = wait_for("pod bad running with a failing readiness probe", bad_probed)
        assert pod_condition(pod, "Ready") == "False"
        events = get(info, ns, "events", "--field-selector", "involvedObject.name=bad,reason=Unhealthy")["items"]
        assert "503" in events[0]["message"], events[0]["message"]
    finally:
        kubectl(info, "delete", "namespace", ns, "--wait=false")


def test_a_service_reaches_a_pod_from_another_pod(real_cluster: RealCluster) -> None:
    """A ClusterIP Service (kube-proxy's iptables rules) carries a request from a client pod to the server pod."""
    info = real_cluster.info
    ns = _namespace(real_cluster, "svc")
    try:
        server = pod_manifest("server", HTTPD_IMAGE, readiness_path="/ready", labels={"app": "server"})
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "server"},
            "spec": {"selector": {"app": "server"}, "ports": [{"port": 80, "targetPort": 8080}]},
        }
        create(info, ns, server, service)
        wait_for("pod server Ready", lambda: pod_condition(get(info, ns, "pod", "server"), "Ready") == "True")
        cluster_ip = get(info, ns, "service", "server")["spec"]["clusterIP"]
        host = f"[{cluster_ip}]" if ":" in cluster_ip else cluster_ip
        create(info, ns, _client("client", f"http://{host}/"))
        pod = wait_for("pod client to finish", lambda: _finished(real_cluster, ns, "client"), timeout=90)
        logs = kubectl(info, "logs", "-n", ns, "client").stdout
        assert pod["status"]["phase"] == "Succeeded", logs
        assert "status 200" in logs and "hello from server" in logs, logs
    finally:
        kubectl(info, "delete", "namespace", ns, "--wait=false")


def test_a_pod_reaches_the_api_server_through_the_kubernetes_service(real_cluster: RealCluster) -> None:
    """https://<kubernetes Service IP>/version answers from inside a pod, as in-cluster clients use it."""
    info = real_cluster.info
    ns = _namespace(real_cluster, "api")
    try:
        cluster_ip = get(info, "default", "service", "kubernetes")["spec"]["clusterIP"]
        host = f"[{cluster_ip}]" if ":" in cluster_ip else cluster_ip
        create(info, ns, _client("client", f"https://{host}/version"))
        pod = wait_for("pod client to finish", lambda: _finished(real_cluster, ns, "client"), timeout=90)
        logs = kubectl(info, "logs", "-n", ns, "client").stdout
        assert pod["status"]["phase"] == "Succeeded", logs
        assert "status 200" in logs and '"gitVersion": "v1.33.13"' in logs, logs
    finally:
        kubectl(info, "delete", "namespace", ns, "--wait=false")
