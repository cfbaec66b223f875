"""Apply and prune on a real API server: what left Git goes, and nothing that is not ours."""

from __future__ import annotations

import json

import pytest

from e2e import procs
from e2e.cluster import ClusterInfo
from gitopsd.apply import Action, Applier, ApplyMemo, ApplyOptions, Inventory, PruneFailed
from gitopsd.kube import Kube
from gitopsd.model import ENVIRONMENT_LABEL, PRUNE_LABEL
from tests.e2e.kube import api_client, kubectl, new_namespace
from tests.gitopsd.apply.helpers import configmap, connect, deploy, get, owner


async def test_removed_object_is_pruned_the_rest_kept(cluster: ClusterInfo) -> None:
    """A file removed from Git deletes its object; the others stay as they are (IPv4 and IPv6)."""
    ns = new_namespace(api_client(cluster), "prune")
    options = ApplyOptions(owner=owner())
    async with connect(cluster) as kube:
        applier = Applier(kube)
        first = await applier.sync([configmap("a", ns), configmap("b", ns), deploy("web", ns)], Inventory(), options)
        assert first.action_counts()["created"] == 3
        assert len(first.inventory) == 3
        second = await applier.sync([configmap("a", ns), deploy("web", ns)], first.inventory, options)
    assert [(o.ref.name, o.action) for o in second.with_action(Action.PRUNED)] == [("b", Action.PRUNED)]
    assert {e.ref.name for e in second.inventory} == {"a", "web"}
    assert get(cluster, "configmap", "b", ns) is None
    live = get(cluster, "configmap", "a", ns)
    assert live is not None and live["metadata"]["labels"][ENVIRONMENT_LABEL] == options.owner
    kubectl(cluster, "delete", "namespace", ns, "--wait=false")


async def test_prune_disabled_by_label_or_annotation_keeps_object(
    kube: Kube, ns: str, cluster_ipv4: ClusterInfo
) -> None:
    """gitopsd.dev/prune: disabled, set in Git (label) or by hand (annotation), keeps the object."""
    options = ApplyOptions(owner=owner(), allow_empty=True)
    applier = Applier(kube)
    kept_in_git = configmap("keep-label", ns, labels={PRUNE_LABEL: "disabled"})
    first = await applier.sync(
        [kept_in_git, configmap("keep-annotation", ns), configmap("plain", ns)], Inventory(), options
    )
    out = kubectl(cluster_ipv4, "annotate", "configmap", "keep-annotation", "-n", ns, f"{PRUNE_LABEL}=disabled")
    assert out.returncode == 0, out.stderr
    result = await applier.sync([], first.inventory, options)
    skipped = {o.ref.name: o.detail for o in result.with_action(Action.PRUNE_SKIPPED)}
    assert skipped == {"keep-label": f"{PRUNE_LABEL}: disabled", "keep-annotation": f"{PRUNE_LABEL}: disabled"}
    assert [o.ref.name for o in result.with_action(Action.PRUNED)] == ["plain"]
    assert get(cluster_ipv4, "configmap", "keep-label", ns) is not None
    assert get(cluster_ipv4, "configmap", "keep-annotation", ns) is not None
    assert get(cluster_ipv4, "configmap", "plain", ns) is None


async def test_empty_render_prunes_nothing_unless_allowed(kube: Kube, ns: str, cluster_ipv4: ClusterInfo) -> None:
    """An empty render keeps everything and the inventory; with allowEmpty it prunes all."""
    guarded = ApplyOptions(owner=owner())
    applier = Applier(kube)
    first = await applier.sync([configmap("a", ns)], Inventory(), guarded)
    writes = kube.stats.writes
    empty = await applier.sync([], first.inventory, guarded)
    assert empty.empty_render and empty.inventory == first.inventory
    assert kube.stats.writes == writes and empty.pruned_count == 0
    assert get(cluster_ipv4, "configmap", "a", ns) is not None
    allowed = ApplyOptions(owner=guarded.owner, allow_empty=True)
    emptied = await applier.sync([], first.inventory, allowed)
    assert emptied.pruned_count == 1 and len(emptied.inventory) == 0
    assert get(cluster_ipv4, "configmap", "a", ns) is None


async def test_objects_not_in_inventory_or_relabelled_are_never_pruned(
    kube: Kube, ns: str, cluster_ipv4: ClusterInfo
) -> None:
    """An object with our label but not in our inventory, and one relabelled for another Environment, survive."""
    options = ApplyOptions(owner=owner(), allow_empty=True)
    out = kubectl(cluster_ipv4, "create", "configmap", "stray", "-n", ns)
    assert out.returncode == 0, out.stderr
    kubectl(cluster_ipv4, "label", "configmap", "stray", "-n", ns, f"{ENVIRONMENT_LABEL}={options.owner}")
    applier = Applier(kube)
    first = await applier.sync([configmap("a", ns), configmap("b", ns)], Inventory(), options, ApplyMemo())
    out = kubectl(cluster_ipv4, "label", "--overwrite", "configmap", "b", "-n", ns, f"{ENVIRONMENT_LABEL}=other.env")
    assert out.returncode == 0, out.stderr
    result = await applier.sync([], first.inventory, options)
    assert [o.ref.name for o in result.with_action(Action.PRUNED)] == ["a"]
    (skipped,) = result.with_action(Action.PRUNE_SKIPPED)
    assert skipped.ref.name == "b" and skipped.detail == "now labelled for Environment other.env"
    assert get(cluster_ipv4, "configmap", "stray", ns) is not None
    assert get(cluster_ipv4, "configmap", "b", ns) is not None


async def test_prune_off_leaves_objects_and_drops_them_from_inventory(
    kube: Kube, ns: str, cluster_ipv4: ClusterInfo
) -> None:
    """With prune off, what left Git stays in the cluster, reported as kept, and is no longer tracked."""
    options = ApplyOptions(owner=owner(), prune=False)
    applier = Applier(kube)
    first = await applier.sync([configmap("a", ns), configmap("b", ns)], Inventory(), options)
    result = await applier.sync([configmap("a", ns)], first.inventory, options)
    assert [(o.ref.name, o.detail) for o in result.with_action(Action.PRUNE_SKIPPED)] == [("b", "prune is off")]
    assert {e.ref.name for e in result.inventory} == {"a"}
    assert get(cluster_ipv4, "configmap", "b", ns) is not None


async def test_refused_delete_is_named_and_kept_in_inventory(kube: Kube, ns: str, cluster_ipv4: ClusterInfo) -> None:
    """A delete an admission policy refuses: PruneFailed names the object and reason; it stays tracked for a retry."""
    name = f"undeletable-{ns}"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["DELETE"], "resources": ["configmaps"]}
                ]
            },
            "validations": [{"expression": f"oldObject.metadata.name != '{name}'", "message": "kept by policy"}],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"]},
    }
    out = kubectl(
        cluster_ipv4,
        "apply",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [policy, binding]}),
    )
    assert out.returncode == 0, out.stderr
    try:
        options = ApplyOptions(owner=owner(), allow_empty=True)
        applier = Applier(kube)
        first = await applier.sync([configmap(name, ns), configmap("plain", ns)], Inventory(), options)

        def denied() -> bool:
            probe = kubectl(cluster_ipv4, "delete", "configmap", name, "-n", ns, "--dry-run=server")
            return probe.returncode != 0 and "kept by policy" in probe.stderr

        procs.wait_until("the admission policy to take effect", denied, timeout=30)
        with pytest.raises(PruneFailed) as caught:
            await applier.sync([], first.inventory, options)
        assert caught.value.reason == "PruneFailed"
        assert f"1 of 2 objects that left Git could not be deleted: ConfigMap/{ns}/{name}: delete refused:" in str(
            caught.value
        )
        assert "kept by policy" in str(caught.value)
        assert {e.ref.name for e in caught.value.result.inventory} == {name}
        assert caught.value.inventory == caught.value.result.inventory
        assert [o.ref.name for o in caught.value.result.with_action(Action.PRUNED)] == ["plain"]
        assert get(cluster_ipv4, "configmap", name, ns) is not None
    finally:
        kubectl(cluster_ipv4, "delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", name)
