"""Drift: hand edits of fields we manage are reverted and reported; others' fields are left alone;
an unchanged sync writes nothing."""

from __future__ import annotations

import os
import subprocess
from typing import Any

from e2e import procs
from e2e.cluster import ClusterInfo
from gitopsd.apply import Action, Applier, ApplyMemo, ApplyOptions, Change, Inventory
from gitopsd.kube import Kube
from gitopsd.model import Manifest
from tests.e2e.kube import api_client, kubectl, new_namespace
from tests.gitopsd.apply.helpers import configmap, connect, deploy, get, owner, resource_versions, service


def replicas(cluster: ClusterInfo, ns: str, name: str = "web") -> int:
    live = get(cluster, "deployment", name, ns)
    assert live is not None
    value: int = live["spec"]["replicas"]
    return value


async def test_kubectl_scale_is_reverted_and_reported(kube: Kube, ns: str, cluster_ipv4: ClusterInfo) -> None:
    """`kubectl scale` of replicas we set is drift: restored, with the field and the hand named."""
    options, memo = ApplyOptions(owner=owner()), ApplyMemo()
    applier = Applier(kube)
    first = await applier.sync([deploy("web", ns, replicas=2)], Inventory(), options, memo)
    out = kubectl(cluster_ipv4, "scale", "deployment/web", "-n", ns, "--replicas=5")
    assert out.returncode == 0, out.stderr
    result = await applier.sync([deploy("web", ns, replicas=2)], first.inventory, options, memo)
    (outcome,) = result.objects
    assert outcome.action is Action.DRIFT_CORRECTED and result.drift_count == 1
    assert outcome.fields == (".spec.replicas",) and "kubectl" in outcome.detail and "scale" in outcome.detail
    assert result.drifted() == [outcome.ref]
    assert replicas(cluster_ipv4, ns) == 2


async def test_kubectl_edit_is_reverted_and_reported(kube: Kube, ns: str, cluster_ipv4: ClusterInfo) -> None:
    """`kubectl edit` of the image we set is drift: restored to Git's image, also after a restart (no memo)."""
    options = ApplyOptions(owner=owner())
    applier = Applier(kube)
    first = await applier.sync([deploy("web", ns)], Inventory(), options, ApplyMemo())
    editor = "sed -i -e s#registry.invalid/app:1#registry.invalid/app:hotfix#"
    out = subprocess.run(
        [
            os.environ.get("KUBECTL") or "kubectl",
            f"--kubeconfig={cluster_ipv4.kubeconfig}",
            "edit",
            "deployment/web",
            "-n",
            ns,
        ],
        env={**os.environ, "KUBE_EDITOR": editor},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    edited = get(cluster_ipv4, "deployment", "web", ns)
    assert (
        edited is not None
        and edited["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.invalid/app:hotfix"
    )
    result = await applier.sync([deploy("web", ns)], first.inventory, options, None)
    (outcome,) = result.objects
    assert outcome.action is Action.DRIFT_CORRECTED
    assert len(outcome.fields) == 1 and outcome.fields[0].endswith(".image"), outcome.fields
    assert "kubectl-edit" in outcome.detail
    live = get(cluster_ipv4, "deployment", "web", ns)
    assert live is not None and live["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.invalid/app:1"


async def test_replicas_set_by_an_hpa_are_left_alone(kube: Kube, ns: str, cluster_ipv4: ClusterInfo) -> None:
    """A manifest without replicas does not manage them: the HPA's choice survives syncs with and without memo."""
    hpa: dict[str, Any] = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 3,
            "maxReplicas": 5,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
                }
            ],
        },
    }
    manifests = [deploy("web", ns, replicas=None), Manifest(hpa, "deploy/hpa.yaml")]
    options, memo = ApplyOptions(owner=owner()), ApplyMemo()
    applier = Applier(kube)
    first = await applier.sync(manifests, Inventory(), options, memo)
    # Below minReplicas the HPA controller scales up without needing any metric.
    procs.wait_until("the HPA to scale web to 3", lambda: replicas(cluster_ipv4, ns) == 3, timeout=60)
    for run_memo in (memo, None):
        result = await applier.sync(manifests, first.inventory, options, run_memo)
        assert result.writes == 0 and result.action_counts()["unchanged"] == 2
    assert replicas(cluster_ipv4, ns) == 3


async def test_unchanged_sync_makes_no_writes(cluster: ClusterInfo) -> None:
    """Nothing moved: no writes; one GET per object with the memo, dry-runs only without it (IPv4 and IPv6)."""
    ns = new_namespace(api_client(cluster), "noop")
    manifests = [deploy("web", ns), service("web", ns), configmap("cfg", ns)]
    manifests.append(
        Manifest(
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web", "namespace": ns}},
            "deploy/sa.yaml",
        )
    )
    options, memo = ApplyOptions(owner=owner()), ApplyMemo()
    async with connect(cluster) as kube:
        applier = Applier(kube)
        first = await applier.sync(manifests, Inventory(), options, memo)
        # Let the Deployment controller finish its status updates, which move resourceVersions too.
        assert (await applier.wait(first.inventory, 90, owner=options.owner)).healthy
        before = resource_versions(cluster, ns)
        with_memo = await applier.sync(manifests, first.inventory, options, memo)
        after_restart = await Applier(kube).sync(manifests, first.inventory, options, None)
    assert with_memo.writes == 0 and with_memo.action_counts()["unchanged"] == 4
    assert with_memo.requests_by_kind == {
        "GET configmaps": 1,
        "GET deployments": 1,
        "GET serviceaccounts": 1,
        "GET services": 1,
    }
    assert after_restart.writes == 0 and after_restart.action_counts()["unchanged"] == 4
    assert sum(n for k, n in after_restart.requests_by_kind.items() if k.startswith("DRYRUN")) == 4
    assert resource_versions(cluster, ns) == before
    kubectl(cluster, "delete", "namespace", ns, "--wait=false")


async def test_diff_shows_drift_and_prune_without_writing(kube: Kube, ns: str, cluster_ipv4: ClusterInfo) -> None:
    """diff: the scaled Deployment as a drift update, the removed ConfigMap as a prune, no write made."""
    options = ApplyOptions(owner=owner())
    applier = Applier(kube)
    first = await applier.sync([deploy("web", ns), configmap("a", ns), configmap("b", ns)], Inventory(), options)
    kubectl(cluster_ipv4, "scale", "deployment/web", "-n", ns, "--replicas=4")
    writes = kube.stats.writes
    result = await applier.diff([deploy("web", ns), configmap("a", ns)], first.inventory, options)
    assert kube.stats.writes == writes
    changes = {(o.ref.name, o.change, o.drift) for o in result.objects}
    assert changes == {("web", Change.UPDATE, True), ("b", Change.PRUNE, False)}
    assert result.changed and result.unchanged == 1
    web = next(o for o in result.objects if o.ref.name == "web")
    assert "-  replicas: 4\n" in web.diff and "+  replicas: 2\n" in web.diff
    text = result.render()
    assert (
        f"# Deployment.apps/{ns}/web (deploy/web.yaml): update (drift" in text and f"# ConfigMap/{ns}/b: prune" in text
    )
    assert replicas(cluster_ipv4, ns) == 4
