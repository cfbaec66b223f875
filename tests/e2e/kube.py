"""Small helpers for tests that talk to a harness cluster through the official client."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from e2e.cluster import ClusterInfo


def api_client(cluster: ClusterInfo) -> client.ApiClient:
    """An ApiClient for the cluster's admin kubeconfig."""
    return config.new_client_from_config(config_file=str(cluster.kubeconfig))


def new_namespace(api: client.ApiClient, prefix: str = "t") -> str:
    """Create a namespace with a unique name and return it."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    return name


def deployment(name: str, replicas: int, pod_labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A minimal Deployment manifest (its pods run on kwok nodes, the image is never pulled)."""
    labels = {"app": name, **(pod_labels or {})}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
            },
        },
    }


def kubectl(
    cluster: ClusterInfo | Path, *args: str, timeout: float = 60, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run kubectl against a cluster or a kubeconfig file (``$KUBECTL`` or the one on PATH)."""
    kubeconfig = cluster if isinstance(cluster, Path) else cluster.kubeconfig
    binary = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not binary:
        raise RuntimeError("kubectl not found: install it or set KUBECTL")
    return subprocess.run(
        [binary, f"--kubeconfig={kubeconfig}", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def service_account_kubeconfig(cluster: ClusterInfo, namespace: str, name: str, target: Path) -> Path:
    """A kubeconfig that authenticates as ServiceAccount ``namespace/name`` with a fresh token."""
    out = kubectl(cluster, "-n", namespace, "create", "token", name, "--duration=2h")
    if out.returncode != 0:
        raise AssertionError(f"kubectl create token {namespace}/{name}: {out.stderr.strip()}")
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "e2e", "cluster": {"server": cluster.api_url, "certificate-authority": str(cluster.ca_cert)}}
        ],
        "users": [{"name": name, "user": {"token": out.stdout.strip()}}],
        "contexts": [{"name": name, "context": {"cluster": "e2e", "user": name, "namespace": namespace}}],
        "current-context": name,
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(doc))
    target.chmod(0o600)
    return target


def role_kubeconfig(
    cluster: ClusterInfo, namespace: str, name: str, verbs: str, resource: str, directory: Path
) -> Path:
    """A kubeconfig for a new ServiceAccount ``name`` in ``namespace`` whose only rights are
    ``verbs`` (comma-separated) on ``resource`` in that namespace."""
    for args in (
        ("create", "serviceaccount", name, "-n", namespace),
        ("create", "role", name, "-n", namespace, f"--verb={verbs}", f"--resource={resource}"),
        ("create", "rolebinding", name, "-n", namespace, f"--role={name}", f"--serviceaccount={namespace}:{name}"),
    ):
        out = kubectl(cluster, *args)
        if out.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {out.stderr.strip()}")
    return service_account_kubeconfig(cluster, namespace, name, directory / f"{name}.kubeconfig")
