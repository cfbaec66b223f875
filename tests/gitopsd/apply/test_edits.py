"""Which watch events are someone else's edit of a managed object (pure logic, plain objects)."""

from __future__ import annotations

import copy
from typing import Any

from gitopsd.apply.edits import edited_owner, owner_key
from gitopsd.kube import Resource
from gitopsd.kube.reflector import Change

DEPLOYMENTS = Resource("apps", "v1", "Deployment", "deployments", True)
OURS = {"f:metadata": {"f:labels": {"f:gitopsd.dev/environment": {}}}, "f:spec": {"f:replicas": {}}}


def deployment(replicas: int = 2, *entries: dict[str, Any], owner: str = "ops.shop") -> dict[str, Any]:
    applied = {"manager": "gitopsd", "operation": "Apply", "time": "2026-01-01T00:00:00Z", "fieldsV1": OURS}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "labels": {"gitopsd.dev/environment": owner},
            "resourceVersion": "10",
            "generation": 1,
            "managedFields": [applied, *entries],
        },
        "spec": {"replicas": replicas},
        "status": {"readyReplicas": 0},
    }


def modified(old: dict[str, Any], new: dict[str, Any]) -> Change:
    return Change("MODIFIED", DEPLOYMENTS, old, new)


def test_kubectl_scale_is_an_edit() -> None:
    """A managed field changed by another manager names the owner."""
    old = deployment(2)
    new = deployment(5, {"manager": "kubectl", "operation": "Update", "subresource": "scale", "time": "t2"})
    assert edited_owner(modified(old, new)) == "ops.shop"


def test_our_own_apply_is_not_an_edit() -> None:
    """Only our entry moved: our write coming back through the watch."""
    old = deployment(2)
    new = deployment(3)
    new["metadata"]["managedFields"][0]["time"] = "2026-01-01T00:01:00Z"
    assert edited_owner(modified(old, new)) is None


def test_status_and_versions_alone_are_not_an_edit() -> None:
    old = deployment(2)
    new = copy.deepcopy(old)
    new["status"] = {"readyReplicas": 2}
    new["metadata"]["resourceVersion"] = "11"
    assert edited_owner(modified(old, new)) is None


def test_a_field_we_do_not_own_is_not_an_edit() -> None:
    """A controller's annotation (not in our field set) does not queue a reconcile."""
    old = deployment(2)
    new = deployment(2, {"manager": "kube-controller-manager", "operation": "Update", "time": "t2"})
    new["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "1"}
    assert edited_owner(modified(old, new)) is None


def test_a_delete_or_a_lost_label_names_the_owner() -> None:
    assert edited_owner(Change("DELETED", DEPLOYMENTS, deployment(), None)) == "ops.shop"
    assert edited_owner(modified(deployment(), deployment(owner="ops.other"))) == "ops.shop"


def test_a_created_object_is_not_an_edit() -> None:
    assert edited_owner(Change("ADDED", DEPLOYMENTS, None, deployment())) is None


def test_owner_key_is_the_daemon_key() -> None:
    assert owner_key("ops.shop.v2") == "ops/shop.v2"
