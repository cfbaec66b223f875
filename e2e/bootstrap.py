"""Talking to a new cluster while it boots, with the standard library only.

The harness runs before any client library is configured (and must not depend on one), so
health probes, the fake nodes and the readiness probe pod go through this small HTTPS client
authenticated with the admin certificate.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from e2e import pki, procs


def admin_ssl(tls: pki.ClusterPKI) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(tls.ca_cert))
    ctx.load_cert_chain(str(tls.admin_cert), str(tls.admin_key))
    return ctx


class Api:
    def __init__(self, base: str, ctx: ssl.SSLContext) -> None:
        self.base, self.ctx = base, ctx

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any] | None:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)  # noqa: S310
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10, context=self.ctx) as resp:  # noqa: S310
                result: dict[str, Any] = json.loads(resp.read())
                return result
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise RuntimeError(f"{method} {path}: HTTP {exc.code}: {exc.read()[:500]!r}") from exc

    def get(self, path: str) -> dict[str, Any] | None:
        return self._call("GET", path)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        return self._call("POST", path, body)

    def delete(self, path: str) -> dict[str, Any] | None:
        return self._call("DELETE", path)


def node(name: str, host: str) -> dict[str, Any]:
    resources = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "status": {"capacity": resources, "allocatable": resources},
    }


def nodes_ready(api: Api, names: tuple[str, ...]) -> bool:
    for name in names:
        node = api.get(f"/api/v1/nodes/{name}")
        conds = (node or {}).get("status", {}).get("conditions", [])
        if not any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
            return False
    return True


def probe_pod(api: Api, watch: list[procs.Process], timeout: float = 60) -> None:
    """Schedule one pod and see it Ready: proves scheduler, kwok and admission work together."""
    ns = "kube-system"
    name = "e2e-readiness-probe"
    path = f"/api/v1/namespaces/{ns}/pods"
    api.post(
        path,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "e2e.invalid/probe:1"}], "terminationGracePeriodSeconds": 0},
        },
    )

    def ready() -> bool:
        pod = api.get(f"{path}/{name}") or {}
        conds = pod.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

    procs.wait_until("a probe pod to be scheduled and Ready", ready, timeout=timeout, watch=watch)
    api.delete(f"{path}/{name}?gracePeriodSeconds=0")


def write_kubeconfig(path: Path, server: str, tls: pki.ClusterPKI) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": {"server": server, "certificate-authority": str(tls.ca_cert)}}],
        "users": [
            {
                "name": "admin",
                "user": {
                    "client-certificate": str(tls.admin_cert),
                    "client-key": str(tls.admin_key),
                },
            }
        ],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "admin", "namespace": "default"}}],
        "current-context": "e2e",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
