"""Who may change an object: not a second Environment, and not over another server-side applier without force."""

from __future__ import annotations

import json

import pytest

from e2e.cluster import ClusterInfo
from gitopsd.apply import Action, Applier, ApplyOptions, FieldConflict, Inventory, OwnershipConflict
from gitopsd.kube import Kube
from gitopsd.model import ENVIRONMENT_LABEL
from tests.e2e.kube import kubectl
from tests.gitopsd.apply.helpers import configmap, get, owner


async def test_object_of_another_environment_is_refused_and_nothing_taken_over(
    kube: Kube, ns: str, cluster_ipv4: ClusterInfo
) -> None:
    """The second Environment claiming an object fails naming the owner; no object of its render is written."""
    first, second = ApplyOptions(owner=owner("first")), ApplyOptions(owner=owner("second"))
    applier = Applier(kube)
    await applier.sync([configmap("shared", ns, {"from": "first"})], Inventory(), first)
    writes = kube.stats.writes
    with pytest.raises(OwnershipConflict) as caught:
        await applier.sync([configmap("shared", ns, {"from": "second"}), configmap("own", ns)], Inventory(), second)
    assert kube.stats.writes == writes
    assert caught.value.reason == "OwnershipConflict"
    assert f"deploy/shared.yaml: ConfigMap/{ns}/shared: already belongs to Environment {first.owner}" in str(
        caught.value
    )
    live = get(cluster_ipv4, "configmap", "shared", ns)
    assert live is not None
    assert live["data"] == {"from": "first"} and live["metadata"]["labels"][ENVIRONMENT_LABEL] == first.owner
    assert get(cluster_ipv4, "configmap", "own", ns) is None


async def test_field_of_another_apply_manager_needs_force(kube: Kube, ns: str, cluster_ipv4: ClusterInfo) -> None:
    """Another server-side applier's field is refused naming manager and field; with force it is taken over."""
    theirs = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": ns},
        "data": {"key": "theirs"},
    }
    out = kubectl(
        cluster_ipv4, "apply", "--server-side", "--field-manager=other-tool", "-f", "-", input=json.dumps(theirs)
    )
    assert out.returncode == 0, out.stderr
    options = ApplyOptions(owner=owner())
    applier = Applier(kube)
    with pytest.raises(FieldConflict) as caught:
        await applier.sync([configmap("cfg", ns, {"key": "ours"})], Inventory(), options)
    assert (
        "'other-tool'" in str(caught.value) and ".data.key" in str(caught.value) and "spec.force" in str(caught.value)
    )
    live = get(cluster_ipv4, "configmap", "cfg", ns)
    assert live is not None and live["data"] == {"key": "theirs"}
    forced = ApplyOptions(owner=options.owner, force=True)
    result = await applier.sync([configmap("cfg", ns, {"key": "ours"})], Inventory(), forced)
    (outcome,) = result.objects
    assert outcome.action is Action.CONFIGURED and "other-tool" in outcome.detail
    live = get(cluster_ipv4, "configmap", "cfg", ns)
    assert live is not None and live["data"] == {"key": "ours"}
