"""Comparing a dry-run's answer with the live object, the memo's rules, the inventory format, error messages."""

from __future__ import annotations

import copy
from typing import Any

from gitopsd.apply import compare
from gitopsd.apply.errors import DryRunFailed, FieldConflict, OwnershipConflict, Rejection, rejected
from gitopsd.apply.inventory import Inventory, InventoryEntry
from gitopsd.apply.memo import ApplyMemo
from gitopsd.apply.prune import keep_reason
from gitopsd.model import ENVIRONMENT_LABEL, PRUNE_LABEL, ObjectRef


def live_deployment(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "dev",
            "uid": "u1",
            "generation": 3,
            "resourceVersion": "100",
            "labels": {"app": "web"},
            "managedFields": [
                {"manager": "gitopsd", "operation": "Apply", "time": "2026-01-01T00:00:00Z", "fieldsV1": {}}
            ],
        },
        "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "app", "image": "a:1"}]}}},
        "status": {"readyReplicas": 2},
    }
    for key, value in changes.items():
        obj[key] = value
    return obj


def test_noop_dry_run_equals_live_despite_volatile_fields() -> None:
    """resourceVersion, managedFields timestamps and status do not count as a change."""
    live = live_deployment()
    preview = copy.deepcopy(live)
    preview["metadata"]["resourceVersion"] = "101"
    preview["metadata"]["managedFields"][0]["time"] = "2026-02-02T00:00:00Z"
    preview["status"] = {"readyReplicas": 0}
    assert compare.same_state(preview, live)


def test_ownership_change_alone_is_a_change() -> None:
    """Taking ownership of fields is a real write even when no value moves."""
    live = live_deployment()
    preview = copy.deepcopy(live)
    preview["metadata"]["managedFields"].append({"manager": "other", "operation": "Update", "fieldsV1": {}})
    assert not compare.same_state(preview, live)


def test_changed_paths_name_fields_and_match_containers_by_name() -> None:
    """Paths read like `.spec.template.spec.containers[name=app].image`."""
    live = live_deployment()
    preview = copy.deepcopy(live)
    preview["spec"]["replicas"] = 3
    preview["spec"]["template"]["spec"]["containers"][0]["image"] = "a:2"
    preview["metadata"]["generation"] = 4
    assert compare.changed_paths(live, preview) == [
        ".spec.replicas",
        ".spec.template.spec.containers[name=app].image",
    ]


def test_metadata_differs_only_for_keys_we_set() -> None:
    """A label we set and someone changed is found; labels we never set are not our business."""
    desired = {"metadata": {"labels": {"app": "web", "tier": "front"}, "annotations": {"a": "1"}}}
    live = {"metadata": {"labels": {"app": "web", "tier": "back", "extra": "x"}, "annotations": {"a": "1", "b": "2"}}}
    assert compare.metadata_differs(desired, live) == [".metadata.labels.tier"]


def test_memo_skips_only_untouched_objects() -> None:
    """Same digest, uid and generation: unchanged. Any of them moved: dry-run again."""
    memo = ApplyMemo()
    ref = ObjectRef("apps", "Deployment", "dev", "web")
    live = live_deployment()
    memo.remember(ref, "d1", live)
    assert memo.unchanged(ref, "d1", live)
    assert memo.applied(ref) == "d1"
    assert not memo.unchanged(ref, "d2", live), "Git changed"
    scaled = live_deployment()
    scaled["metadata"] = {**scaled["metadata"], "generation": 4}
    assert not memo.unchanged(ref, "d1", scaled), "spec changed in the cluster"
    status_only = live_deployment()
    status_only["metadata"] = {**status_only["metadata"], "resourceVersion": "999"}
    assert memo.unchanged(ref, "d1", status_only), "a status update does not move generation"
    recreated = live_deployment()
    recreated["metadata"] = {**recreated["metadata"], "uid": "u2"}
    assert not memo.unchanged(ref, "d1", recreated), "deleted and created again"
    assert not memo.unchanged(ref, "d1", None)
    memo.keep_only([])
    assert len(memo) == 0


def test_memo_uses_resource_version_for_kinds_without_generation() -> None:
    """A ConfigMap has no generation: any resourceVersion change means look again."""
    memo = ApplyMemo()
    ref = ObjectRef("", "ConfigMap", "dev", "cfg")
    cm = {"metadata": {"uid": "u", "resourceVersion": "5"}}
    memo.remember(ref, "d", cm)
    assert memo.unchanged(ref, "d", cm)
    assert not memo.unchanged(ref, "d", {"metadata": {"uid": "u", "resourceVersion": "6"}})


def test_inventory_round_trips_through_status() -> None:
    """status.inventory.entries holds {id, v}; reading it back gives the same set."""
    inv = Inventory.of(
        [
            InventoryEntry(ObjectRef("apps", "Deployment", "shop-prod", "web"), "v1"),
            InventoryEntry(ObjectRef("", "Namespace", "", "shop-prod"), "v1"),
            InventoryEntry(ObjectRef("rbac.authorization.k8s.io", "RoleBinding", "shop-prod", "read_only"), "v1"),
        ]
    )
    raw = inv.to_status()
    assert raw["entries"][0] == {"id": "_shop-prod__Namespace", "v": "v1"}
    assert {"id": "shop-prod_web_apps_Deployment", "v": "v1"} in raw["entries"]
    assert Inventory.from_status(raw) == inv


def test_unreadable_inventory_entries_are_dropped() -> None:
    """Garbage in status never becomes a prune target."""
    raw = {"entries": [{"id": "nonsense"}, "x", {"id": "dev_cfg__ConfigMap", "v": "v1"}]}
    assert Inventory.from_status(raw).refs() == {ObjectRef("", "ConfigMap", "dev", "cfg")}
    assert len(Inventory.from_status(None)) == 0


def test_rejections_name_every_object_and_pick_the_class() -> None:
    """All refused objects are named with file and reason; one kind of refusal gives its own class."""
    a = Rejection(ObjectRef("", "ConfigMap", "dev", "a"), "a.yaml", "Invalid", "data: Invalid value")
    b = Rejection(ObjectRef("apps", "Deployment", "dev", "b"), "b.yaml", "Invalid", "spec.replicas: Invalid value: -1")
    error = rejected([a, b], 10)
    assert isinstance(error, DryRunFailed) and error.reason == "DryRunFailed"
    assert "2 of 10 objects refused, nothing applied" in str(error)
    assert "a.yaml: ConfigMap/dev/a: data: Invalid value" in str(error)
    assert "b.yaml: Deployment.apps/dev/b: spec.replicas: Invalid value: -1" in str(error)
    owned = Rejection(a.ref, "a.yaml", "OwnershipConflict", "already belongs to Environment x.y")
    assert isinstance(rejected([owned], 1), OwnershipConflict)
    assert isinstance(rejected([Rejection(a.ref, "", "FieldConflict", "helm")], 1), FieldConflict)
    assert type(rejected([owned, a], 2)) is DryRunFailed


def test_long_rejection_lists_are_capped_in_the_message_only() -> None:
    """The message names the first 20 and counts the rest; the error keeps them all."""
    many = [Rejection(ObjectRef("", "ConfigMap", "dev", f"c{i}"), f"{i}.yaml", "Invalid", "bad") for i in range(25)]
    error = rejected(many, 25)
    assert len(error.rejections) == 25
    assert "and 5 more" in str(error) and "19.yaml" in str(error) and "20.yaml" not in str(error)


OURS = {
    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
    "f:spec": {
        "f:replicas": {},
        "f:template": {"f:spec": {"f:containers": {'k:{"name":"app"}': {".": {}, "f:image": {}, "f:name": {}}}}},
        "f:finalizersLike": {'v:"a"': {}},
    },
}


def managed(obj: dict[str, Any], fields: dict[str, Any] | None = None) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    entry = {"manager": "gitopsd", "operation": "Apply", "apiVersion": "apps/v1", "fieldsV1": fields or OURS}
    obj["metadata"]["managedFields"] = [
        entry,
        {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {}},
    ]
    obj["spec"]["finalizersLike"] = ["a", "b"]
    return obj


def test_owned_fields_unchanged_despite_a_controllers_newer_write() -> None:
    """The dry-run saw a controller's annotation and status the older read lacks: nothing of ours moved."""
    live = managed(live_deployment())
    newer = copy.deepcopy(live)
    newer["metadata"]["resourceVersion"] = "105"
    newer["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "1"}
    newer["metadata"]["managedFields"][1]["fieldsV1"] = {"f:metadata": {"f:annotations": {}}}
    newer["spec"]["finalizersLike"] = ["b", "a"]
    assert not compare.same_state(newer, live)
    assert compare.owned_unchanged(newer, live, "gitopsd")


def test_owned_value_or_field_set_change_is_a_change() -> None:
    """Our replicas or image differ, our field set differs, or we own nothing yet: a real change."""
    live = managed(live_deployment())
    replicas = copy.deepcopy(live)
    replicas["spec"]["replicas"] = 5
    assert not compare.owned_unchanged(replicas, live, "gitopsd")
    image = copy.deepcopy(live)
    image["spec"]["template"]["spec"]["containers"][0]["image"] = "a:2"
    assert not compare.owned_unchanged(image, live, "gitopsd")
    set_item = copy.deepcopy(live)
    set_item["spec"]["finalizersLike"] = ["b"]
    assert not compare.owned_unchanged(set_item, live, "gitopsd")
    fewer = managed(live_deployment(), {"f:spec": {"f:replicas": {}}})
    assert not compare.owned_unchanged(fewer, live, "gitopsd")
    assert not compare.owned_unchanged(live, live_deployment(), "gitopsd")


def test_keep_reasons_for_objects_that_left_git() -> None:
    """Only our labelled, unprotected objects may be deleted; system namespaces never."""
    ours = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "d", "labels": {ENVIRONMENT_LABEL: "a.b"}},
    }
    assert keep_reason(ours, "a.b") is None
    assert keep_reason(None, "a.b") == "already gone"
    assert keep_reason(ours, "x.y") == "now labelled for Environment a.b"
    protected = copy.deepcopy(ours)
    protected["metadata"]["annotations"] = {PRUNE_LABEL: "disabled"}
    assert keep_reason(protected, "a.b") == f"{PRUNE_LABEL}: disabled"
    system = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "kube-system", "labels": {ENVIRONMENT_LABEL: "a.b"}},
    }
    assert keep_reason(system, "a.b") == "a system namespace is never pruned"
