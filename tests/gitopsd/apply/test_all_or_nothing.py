"""All-or-nothing: a rejected object means no write at all; CRDs and Namespaces of the bundle come first."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from e2e.cluster import ClusterInfo
from gitopsd.apply import Action, Applier, ApplyMemo, ApplyOptions, DryRunFailed, Inventory
from gitopsd.kube import Kube
from gitopsd.model import Manifest, ObjectRef
from tests.e2e.kube import api_client, kubectl, new_namespace
from tests.gitopsd.apply.helpers import configmap, connect, deploy, get, owner, resource_versions


async def test_rejected_manifest_leaves_every_object_untouched(cluster: ClusterInfo) -> None:
    """An invalid value and an unknown field: both named with file and reason, and nothing written (IPv4 and IPv6)."""
    ns = new_namespace(api_client(cluster), "reject")
    options = ApplyOptions(owner=owner())
    async with connect(cluster) as kube:
        applier = Applier(kube)
        first = await applier.sync([configmap("a", ns, {"v": "1"}), deploy("web", ns)], Inventory(), options)
        before = resource_versions(cluster, ns)
        bad = deploy("bad", ns, replicas=-1)
        typo = configmap("typo", ns)
        typo.obj["dataa"] = {"k": "v"}
        writes = kube.stats.writes
        with pytest.raises(DryRunFailed) as caught:
            changed = [configmap("a", ns, {"v": "2"}), deploy("web", ns, replicas=3), bad, typo]
            await applier.sync(changed, first.inventory, options, ApplyMemo())
        assert kube.stats.writes == writes
    message = str(caught.value)
    assert caught.value.reason == "DryRunFailed"
    assert message.startswith("2 of 4 objects refused, nothing applied")
    assert f"deploy/bad.yaml: Deployment.apps/{ns}/bad:" in message and "spec.replicas" in message
    assert f"deploy/typo.yaml: ConfigMap/{ns}/typo:" in message and "dataa" in message
    assert {r.ref.name for r in caught.value.rejections} == {"bad", "typo"}
    assert caught.value.inventory is None
    assert resource_versions(cluster, ns) == before
    live = get(cluster, "configmap", "a", ns)
    assert live is not None and live["data"] == {"v": "1"}
    assert get(cluster, "deployment", "bad", ns) is None
    kubectl(cluster, "delete", "namespace", ns, "--wait=false")


def widget_crd(group: str) -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer", "minimum": 1}}}},
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}],
        },
    }


def widget(group: str, namespace: str, size: Any) -> Manifest:
    obj = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": namespace}}
    obj["spec"] = {"size": size}
    return Manifest(obj, "deploy/widget.yaml")


async def test_crd_and_its_custom_resource_apply_in_one_sync(kube: Kube, ns: str, cluster_ipv4: ClusterInfo) -> None:
    """The CRD is applied and Established first, then its custom resource is dry-run and applied."""
    group = f"t{uuid.uuid4().hex[:6]}.example.com"
    options = ApplyOptions(owner=owner())
    applier = Applier(kube)
    manifests = [Manifest(widget_crd(group), "deploy/crd.yaml"), widget(group, ns, 3), configmap("cfg", ns)]
    try:
        memo = ApplyMemo()
        result = await applier.sync(manifests, Inventory(), options, memo)
        assert result.action_counts()["created"] == 3
        assert ObjectRef(group, "Widget", ns, "w") in result.inventory.refs()
        live = get(cluster_ipv4, f"widgets.{group}", "w", ns)
        assert live is not None and live["spec"] == {"size": 3}
        again = await applier.sync(manifests, result.inventory, options, memo)
        assert again.writes == 0 and again.action_counts()["unchanged"] == 3
    finally:
        kubectl(cluster_ipv4, "delete", "crd", f"widgets.{group}", "--wait=false")


async def test_invalid_custom_resource_stops_after_stage_0(kube: Kube, ns: str, cluster_ipv4: ClusterInfo) -> None:
    """A custom resource its new CRD's schema refuses: only the CRD was written, and the error's inventory says so."""
    group = f"t{uuid.uuid4().hex[:6]}.example.com"
    options = ApplyOptions(owner=owner())
    manifests = [Manifest(widget_crd(group), "deploy/crd.yaml"), widget(group, ns, "big"), configmap("cfg", ns)]
    try:
        with pytest.raises(DryRunFailed) as caught:
            await Applier(kube).sync(manifests, Inventory(), options)
        message = str(caught.value)
        assert "only the CRDs and Namespaces of this bundle were applied" in message
        assert f"deploy/widget.yaml: Widget.{group}/{ns}/w:" in message and "spec.size" in message
        assert caught.value.inventory is not None
        assert {e.ref.kind for e in caught.value.inventory} == {"CustomResourceDefinition"}
        assert get(cluster_ipv4, "crd", f"widgets.{group}") is not None
        assert get(cluster_ipv4, "configmap", "cfg", ns) is None
    finally:
        kubectl(cluster_ipv4, "delete", "crd", f"widgets.{group}", "--wait=false")


async def test_namespace_and_its_objects_apply_in_one_sync(kube: Kube, cluster_ipv4: ClusterInfo) -> None:
    """A new Namespace comes first; the objects in it are dry-run once it exists, then applied."""
    ns = f"apply-new-{uuid.uuid4().hex[:6]}"
    options = ApplyOptions(owner=owner())
    namespace = Manifest({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, "deploy/ns.yaml")
    try:
        result = await Applier(kube).sync([configmap("cfg", ns), deploy("web", ns), namespace], Inventory(), options)
        assert {o.ref.kind: o.action for o in result.objects} == {
            "Namespace": Action.CREATED,
            "ConfigMap": Action.CREATED,
            "Deployment": Action.CREATED,
        }
        assert get(cluster_ipv4, "deployment", "web", ns) is not None
    finally:
        kubectl(cluster_ipv4, "delete", "namespace", ns, "--wait=false")


async def test_unknown_kind_is_refused_before_any_write(kube: Kube, ns: str, cluster_ipv4: ClusterInfo) -> None:
    """A kind the cluster does not serve (and no CRD in the bundle defines) is named; nothing is created."""
    gizmo = Manifest(
        {"apiVersion": "example.com/v1", "kind": "Gizmo", "metadata": {"name": "g", "namespace": ns}}, "deploy/g.yaml"
    )
    writes = kube.stats.writes
    with pytest.raises(DryRunFailed) as caught:
        await Applier(kube).sync([configmap("cfg", ns), gizmo], Inventory(), ApplyOptions(owner=owner()))
    assert f"deploy/g.yaml: Gizmo.example.com/{ns}/g: the server has no resource type Gizmo in example.com/v1" in str(
        caught.value
    )
    assert kube.stats.writes == writes
    assert get(cluster_ipv4, "configmap", "cfg", ns) is None
