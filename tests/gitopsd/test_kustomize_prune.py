"""A kustomize overlay with a CRD and its custom resource, then prune, through a running daemon."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import apply_objects, environment, get_json, wait_ready

pytestmark = pytest.mark.cluster

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.%(group)s}
spec:
  group: %(group)s
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {type: object, properties: {size: {type: integer}}}
"""
BASE = {
    "base/kustomization.yaml": "resources: [crd.yaml, widget.yaml, cm.yaml, keep.yaml]\n",
    "base/widget.yaml": "apiVersion: %(group)s/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 1}\n",
    "base/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\ndata: {a: b}\n",
    "base/keep.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\n  labels: {gitopsd.dev/prune: disabled}\n"
    ),
    "overlays/prod/kustomization.yaml": (
        "resources: [../../base]\nnamePrefix: prod-\n"
        "patches:\n- target: {kind: Widget}\n"
        "  patch: '[{\"op\": \"replace\", \"path\": \"/spec/size\", \"value\": 3}]'\n"
    ),
}


def test_overlay_with_crd_and_custom_resource_then_prune(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """One commit brings a CRD and a Widget through an overlay; removed files are pruned except prune-disabled."""
    cluster = gitopsd_crd
    ops, app = namespaces("ops"), namespaces("app")
    group = f"{ops}.example.com"
    files = {name: text % {"group": group} for name, text in BASE.items()}
    files["base/crd.yaml"] = CRD % {"group": group}
    first = repo.commit(files)
    kubectl(cluster, "create", "configmap", "bystander", "-n", app, "--from-literal=x=y")
    start_daemon(f"--namespace={ops}")
    apply_objects(cluster, environment("prod", ops, repo.file_url, target=app, path="overlays/prod", branch="main"))
    wait_ready(cluster, ops, "prod", revision=f"main@sha1:{first}")
    widget = get_json(cluster, f"widgets.{group}", "prod-w", "-n", app)
    assert widget["spec"] == {"size": 3}
    assert {c["metadata"]["name"] for c in get_json(cluster, "configmaps", "-n", app)["items"]} >= {
        "prod-extra",
        "prod-kept",
        "bystander",
    }

    second = repo.commit(
        {
            "base/kustomization.yaml": "resources: [crd.yaml, widget.yaml]\n",
            "base/cm.yaml": None,
            "base/keep.yaml": None,
        }
    )
    wait_ready(cluster, ops, "prod", revision=f"main@sha1:{second}")
    names = {c["metadata"]["name"] for c in get_json(cluster, "configmaps", "-n", app)["items"]}
    assert "prod-extra" not in names  # left Git: pruned
    assert {"prod-kept", "bystander"} <= names  # prune-disabled, and never ours
    env = get_json(cluster, "environments.gitopsd.dev", "prod", "-n", ops)
    inventory = {e["id"] for e in env["status"]["inventory"]["entries"]}
    crd_id = f"_widgets.{group}_apiextensions.k8s.io_CustomResourceDefinition"
    assert inventory == {crd_id, f"{app}_prod-w_{group}_Widget"}
