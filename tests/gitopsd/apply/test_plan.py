"""Planning with plain data: labels, stages, what waits for stage 0, refusals, prune order."""

from __future__ import annotations

from typing import Any

from gitopsd.apply import plan
from gitopsd.apply.plan import Stage
from gitopsd.kube.discovery import Resource
from gitopsd.model import ENVIRONMENT_LABEL, Manifest, ObjectRef

OWNER = "gitopsd-system.dev"
TYPES: dict[tuple[str, str], Resource | None] = {
    ("v1", "Namespace"): Resource("", "v1", "Namespace", "namespaces", False),
    ("v1", "ConfigMap"): Resource("", "v1", "ConfigMap", "configmaps", True),
    ("apps/v1", "Deployment"): Resource("apps", "v1", "Deployment", "deployments", True),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): Resource(
        "rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False
    ),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): Resource(
        "apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False
    ),
}


def obj(api_version: str, kind: str, name: str, namespace: str | None = None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **extra}


def crd(group: str, kind: str, scope: str = "Namespaced") -> dict[str, Any]:
    plural = kind.lower() + "s"
    return obj(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        f"{plural}.{group}",
        spec={"group": group, "names": {"kind": kind, "plural": plural}, "scope": scope, "versions": []},
    )


def test_every_object_is_labelled_and_stripped_of_server_fields() -> None:
    """The owner label is added next to the manifest's labels; resourceVersion and friends are dropped."""
    cm = obj("v1", "ConfigMap", "cfg", "dev", data={"a": "1"})
    cm["metadata"].update(labels={"app": "web"}, resourceVersion="42", uid="u", managedFields=[{}])
    built = plan.build([Manifest(cm, "cm.yaml")], OWNER, TYPES)
    (desired,) = built.objects
    assert desired.body["metadata"]["labels"] == {"app": "web", ENVIRONMENT_LABEL: OWNER}
    assert not {"resourceVersion", "uid", "managedFields"} & set(desired.body["metadata"])
    assert cm["metadata"]["resourceVersion"] == "42", "the manifest itself is not modified"
    assert desired.origin == "cm.yaml" and len(desired.digest) == 64


def test_stages_put_crds_and_namespaces_first_then_cluster_scoped_then_namespaced() -> None:
    """Stage 0 holds CRDs and Namespaces, stage 1 other cluster-scoped objects, stage 2 the rest."""
    manifests = [
        Manifest(obj("apps/v1", "Deployment", "web", "dev"), "a"),
        Manifest(obj("rbac.authorization.k8s.io/v1", "ClusterRole", "reader"), "b"),
        Manifest(obj("v1", "Namespace", "dev"), "c"),
        Manifest(crd("example.com", "Widget"), "d"),
    ]
    built = plan.build(manifests, OWNER, TYPES)
    stages = {d.ref.kind: d.stage for d in built.objects}
    assert stages == {
        "Deployment": Stage.NAMESPACED,
        "ClusterRole": Stage.CLUSTER,
        "Namespace": Stage.FOUNDATION,
        "CustomResourceDefinition": Stage.FOUNDATION,
    }


def test_namespace_on_cluster_scoped_object_is_dropped() -> None:
    """A ClusterRole given a namespace is applied cluster-wide, and its identity has no namespace."""
    built = plan.build(
        [Manifest(obj("rbac.authorization.k8s.io/v1", "ClusterRole", "r", "dev"), "r.yaml")], OWNER, TYPES
    )
    (desired,) = built.objects
    assert "namespace" not in desired.body["metadata"]
    assert desired.ref == ObjectRef("rbac.authorization.k8s.io", "ClusterRole", "", "r")


def test_custom_resource_of_a_crd_in_the_bundle_waits_for_stage_0() -> None:
    """A kind the server does not serve yet but a CRD of the bundle defines is deferred, with its scope from the CRD."""
    manifests = [
        Manifest(crd("example.com", "Widget", "Cluster"), "crd.yaml"),
        Manifest(obj("example.com/v1", "Widget", "w"), "w.yaml"),
    ]
    built = plan.build(manifests, OWNER, TYPES)
    assert not built.rejections
    (widget,) = built.deferred()
    assert widget.resource is None and not widget.namespaced and widget.stage is Stage.CLUSTER
    assert widget.waits_for == ObjectRef("apiextensions.k8s.io", "CustomResourceDefinition", "", "widgets.example.com")
    assert [d.ref.kind for d in built.ready()] == ["CustomResourceDefinition"]


def test_unknown_kind_without_its_crd_is_refused_with_file_named() -> None:
    """A kind nobody serves or defines is a rejection naming the file and the kind."""
    built = plan.build([Manifest(obj("example.com/v1", "Gadget", "g", "dev"), "deploy/g.yaml")], OWNER, TYPES)
    (rejection,) = built.rejections
    assert rejection.reason == "UnknownKind" and rejection.origin == "deploy/g.yaml"
    assert "Gadget" in rejection.message and "example.com/v1" in rejection.message
    assert not built.objects


def test_namespaced_object_without_namespace_is_refused_not_defaulted() -> None:
    """No namespace and no targetNamespace: refused, never silently put in "default"."""
    built = plan.build([Manifest(obj("v1", "ConfigMap", "cfg"), "cm.yaml")], OWNER, TYPES)
    (rejection,) = built.rejections
    assert rejection.reason == "InvalidManifest" and "metadata.namespace" in rejection.message


def test_duplicate_objects_are_refused_naming_both_files() -> None:
    """The same object twice names both files."""
    manifests = [
        Manifest(obj("v1", "ConfigMap", "cfg", "dev"), "a.yaml"),
        Manifest(obj("v1", "ConfigMap", "cfg", "dev"), "b.yaml"),
    ]
    built = plan.build(manifests, OWNER, TYPES)
    (rejection,) = built.rejections
    assert "a.yaml" in rejection.message and "b.yaml" in rejection.message


def test_objects_without_name_or_kind_are_refused() -> None:
    """A document without metadata.name or kind is refused with what is missing."""
    manifests = [
        Manifest({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}, "x.yaml"),
        Manifest({"apiVersion": "v1"}, "y.yaml"),
    ]
    built = plan.build(manifests, OWNER, TYPES)
    assert [r.message for r in built.rejections] == ["has no metadata.name", "has no apiVersion or kind"]


def test_objects_in_a_missing_bundle_namespace_are_deferred() -> None:
    """Objects in a Namespace of the bundle that does not exist wait; others in existing namespaces do not."""
    manifests = [
        Manifest(obj("v1", "Namespace", "new"), "ns.yaml"),
        Manifest(obj("v1", "ConfigMap", "a", "new"), "a.yaml"),
        Manifest(obj("v1", "ConfigMap", "b", "old"), "b.yaml"),
    ]
    built = plan.build(manifests, OWNER, TYPES)
    plan.defer_missing_namespaces(built, ["new", "unrelated"])
    assert [(d.ref.name, d.waits_for) for d in built.deferred()] == [("a", ObjectRef("", "Namespace", "", "new"))]
    assert sorted(d.ref.name for d in built.ready()) == ["b", "new"]


def test_prune_waves_delete_namespaces_last() -> None:
    """Namespaced objects go first, then cluster-scoped ones, then CRDs, and Namespaces last."""
    refs = [
        ObjectRef("", "Namespace", "", "dev"),
        ObjectRef("apiextensions.k8s.io", "CustomResourceDefinition", "", "w.example.com"),
        ObjectRef("rbac.authorization.k8s.io", "ClusterRole", "", "r"),
        ObjectRef("", "ConfigMap", "dev", "cfg"),
    ]
    waves = plan.prune_waves(refs)
    assert [[r.kind for r in wave] for wave in waves] == [
        ["ConfigMap"],
        ["ClusterRole"],
        ["CustomResourceDefinition"],
        ["Namespace"],
    ]


def test_owner_must_be_a_label_value() -> None:
    """Owners longer than 63 characters or with characters a label value refuses are named as such."""
    assert plan.owner_problem("gitopsd-system.dev") is None
    assert "63" in (plan.owner_problem("n." + "x" * 70) or "")
    assert "not a valid label value" in (plan.owner_problem("bad/owner") or "")
    assert plan.owner_problem("") is not None


def test_digest_changes_with_content_only() -> None:
    """The digest is stable across key order and changes with any value."""
    a = {"kind": "ConfigMap", "data": {"x": "1", "y": "2"}}
    b = {"data": {"y": "2", "x": "1"}, "kind": "ConfigMap"}
    assert plan.digest(a) == plan.digest(b)
    assert plan.digest(a) != plan.digest({**a, "data": {"x": "1", "y": "3"}})
