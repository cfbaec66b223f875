"""Helpers for the install tests: build the kustomize bases, apply them, act as a ServiceAccount.

Everything goes through the real tools a user runs (``kubectl kustomize``, ``kubectl apply
--server-side``, ``kubectl auth can-i``, ``kubectl create token``), against a real cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from e2e import procs
from e2e.cluster import ClusterInfo
from tests.e2e.kube import kubectl

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
GITOPSD_NS = "gitopsd-system"
ADAPTER_NS = "metrics-adapter"
GITOPSD_SA = f"system:serviceaccount:{GITOPSD_NS}:gitopsd"
ADAPTER_SA = f"system:serviceaccount:{ADAPTER_NS}:metrics-adapter"
FIELD_MANAGER = "e2e-install"
# The image both bases name (manifests/*/kustomization.yaml); an overlay's `images:` must match it.
PUBLISHED_IMAGE = "ghcr.io/gitopsd/gitopsd"


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize DIR``, parsed; a build error fails with kustomize's message."""
    binary = os.environ.get("KUBECTL") or "kubectl"
    out = subprocess.run([binary, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise AssertionError(f"kubectl kustomize {directory} failed: {out.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def overlay(
    directory: Path, bases: Iterable[Path], *, components: Iterable[Path] = (), image: str | None = None
) -> Path:
    """A kustomization in ``directory`` over ``bases`` (relative paths: kustomize refuses absolute ones)."""
    directory.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(b, directory) for b in bases],
    }
    if components:
        doc["components"] = [os.path.relpath(c, directory) for c in components]
    if image:
        name, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
        doc["images"] = [{"name": PUBLISHED_IMAGE, "newName": name, **({"newTag": tag} if tag else {})}]
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(doc))
    return directory


def apply(cluster: ClusterInfo | Path, docs: list[dict[str, Any]], *, manager: str = FIELD_MANAGER) -> str:
    """Server-side apply ``docs`` (as kubectl does for a user); returns kubectl's output."""
    body = yaml.safe_dump_all(docs)
    out = kubectl(
        cluster, "apply", "--server-side", "--force-conflicts", f"--field-manager={manager}", "-f", "-", input=body
    )
    if out.returncode != 0:
        raise AssertionError(f"kubectl apply --server-side failed: {out.stderr.strip()}")
    return out.stdout


def get(cluster: ClusterInfo | Path, *args: str) -> dict[str, Any]:
    out = kubectl(cluster, "get", *args, "-o", "json")
    if out.returncode != 0:
        raise AssertionError(f"kubectl get {' '.join(args)}: {out.stderr.strip()}")
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def can_i(cluster: ClusterInfo, user: str, *args: str) -> bool:
    """``kubectl auth can-i ARGS --as=USER``: the API server's own answer (SubjectAccessReview)."""
    out = kubectl(cluster, "auth", "can-i", *args, f"--as={user}")
    answer = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    if answer not in ("yes", "no"):
        raise AssertionError(f"kubectl auth can-i {' '.join(args)}: {out.stdout.strip()} {out.stderr.strip()}")
    return answer == "yes"


def access_review(cluster: ClusterInfo, user: str, groups: list[str], attributes: dict[str, str]) -> bool:
    """A SubjectAccessReview with exact resource attributes.

    For the aggregated metrics groups, which ``kubectl auth can-i`` cannot name while no
    server serves them (it resolves ``pods.custom.metrics.k8s.io`` through discovery).
    """
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": groups, "resourceAttributes": attributes},
    }
    out = kubectl(cluster, "create", "-o", "json", "-f", "-", input=json.dumps(review))
    if out.returncode != 0:
        raise AssertionError(f"SubjectAccessReview {attributes}: {out.stderr.strip()}")
    return bool(json.loads(out.stdout)["status"].get("allowed"))


def token_for(cluster: ClusterInfo, namespace: str, name: str) -> str:
    out = kubectl(cluster, "-n", namespace, "create", "token", name, "--duration=2h")
    if out.returncode != 0:
        raise AssertionError(f"kubectl create token {namespace}/{name}: {out.stderr.strip()}")
    return out.stdout.strip()


def wait_for(what: str, check: Any, timeout: float = 90.0, interval: float = 0.5) -> Any:
    return procs.wait_until(what, check, timeout=timeout, interval=interval)


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d.get("kind") == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]
