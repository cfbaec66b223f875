"""Manifests and cluster look-ups shared by the apply engine's end-to-end tests."""

from __future__ import annotations

import json
import uuid
from typing import Any

from e2e.cluster import ClusterInfo
from gitopsd.kube import Kube
from gitopsd.model import Manifest
from tests.e2e.kube import deployment, kubectl


def connect(cluster: ClusterInfo) -> Kube:
    return Kube.from_kubeconfig(cluster.kubeconfig)


def owner(prefix: str = "env") -> str:
    """A unique Environment key (``<namespace>.<name>``) so tests never share ownership."""
    return f"gitopsd-system.{prefix}-{uuid.uuid4().hex[:6]}"


def configmap(name: str, namespace: str, data: dict[str, str] | None = None, **meta: Any) -> Manifest:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace, **meta}}
    obj["data"] = data if data is not None else {"key": "value"}
    return Manifest(obj, f"deploy/{name}.yaml")


def deploy(name: str, namespace: str, replicas: int | None = 2, **pod_labels: str) -> Manifest:
    obj = deployment(name, replicas if replicas is not None else 1, pod_labels or None)
    obj["metadata"]["namespace"] = namespace
    if replicas is None:
        del obj["spec"]["replicas"]
    return Manifest(obj, f"deploy/{name}.yaml")


def service(name: str, namespace: str) -> Manifest:
    obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    return Manifest(obj, f"deploy/{name}-svc.yaml")


def get(cluster: ClusterInfo, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
    """The live object as kubectl sees it, or None when it does not exist."""
    args = ["get", kind, name, "-o", "json"] + (["-n", namespace] if namespace else [])
    out = kubectl(cluster, *args)
    if out.returncode != 0:
        assert "NotFound" in out.stderr, out.stderr
        return None
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def resource_versions(cluster: ClusterInfo, namespace: str) -> dict[str, str]:
    """kind/name → resourceVersion of everything in ``namespace`` that tests create."""
    out = kubectl(cluster, "get", "deployments,configmaps,services,serviceaccounts", "-n", namespace, "-o", "json")
    assert out.returncode == 0, out.stderr
    items = json.loads(out.stdout)["items"]
    return {f"{i['kind']}/{i['metadata']['name']}": i["metadata"]["resourceVersion"] for i in items}
