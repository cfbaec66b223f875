"""How a sync and its health gate read the cluster: GETs for kinds with few objects, one labelled
list (in their namespace when they share one) for kinds with many. A labelled list costs
kube-apiserver a filter over every object of its kind in scope, so a small Environment in a big
cluster must not make one per kind per sync and per poll."""

from __future__ import annotations

from typing import Any

import pytest

from gitopsd.apply import Applier, ApplyOptions, Inventory
from gitopsd.apply.live import LIST_THRESHOLD, list_scopes
from gitopsd.kube import Kube
from gitopsd.kube.client import ListResult, RequestStats, is_collection, resource_of
from gitopsd.kube.discovery import Resource
from gitopsd.model import Manifest, ObjectRef
from tests.gitopsd.apply.helpers import configmap, deploy, owner, service

CONFIGMAPS = Resource("", "v1", "ConfigMap", "configmaps", namespaced=True)
NAMESPACES = Resource("", "v1", "Namespace", "namespaces", namespaced=False)


def _refs(resource: Resource, count: int, namespaces: list[str]) -> list[tuple[ObjectRef, Resource]]:
    return [
        (ObjectRef(resource.group, resource.kind, namespaces[i % len(namespaces)], f"o{i}"), resource)
        for i in range(count)
    ]


# -- pure logic ---------------------------------------------------------------------------------


def test_a_kind_with_few_objects_is_not_listed() -> None:
    assert list_scopes(_refs(CONFIGMAPS, LIST_THRESHOLD, ["a"])) == []


def test_a_kind_with_many_objects_in_one_namespace_is_listed_there() -> None:
    assert list_scopes(_refs(CONFIGMAPS, LIST_THRESHOLD + 1, ["a"])) == [(CONFIGMAPS, "a")]


def test_a_kind_with_many_objects_across_namespaces_is_listed_cluster_wide() -> None:
    assert list_scopes(_refs(CONFIGMAPS, LIST_THRESHOLD + 1, ["a", "b"])) == [(CONFIGMAPS, None)]


def test_an_impersonated_account_lists_per_namespace_never_cluster_wide() -> None:
    """A ServiceAccount's rights usually end at its namespaces: a cluster-wide list would be refused."""
    scopes = list_scopes(_refs(CONFIGMAPS, LIST_THRESHOLD + 1, ["a", "b"]), per_namespace=True)
    assert sorted(scopes, key=lambda s: str(s[1])) == [(CONFIGMAPS, "a"), (CONFIGMAPS, "b")]


def test_a_cluster_scoped_kind_is_listed_cluster_wide() -> None:
    assert list_scopes(_refs(NAMESPACES, LIST_THRESHOLD + 1, [""])) == [(NAMESPACES, None)]


def test_the_same_object_wanted_twice_counts_once() -> None:
    """Desired and inventory name the same objects in steady state: they are one object each."""
    refs = _refs(CONFIGMAPS, LIST_THRESHOLD, ["a"])
    assert list_scopes(refs + refs) == []


def test_request_stats_tell_a_list_from_a_get() -> None:
    stats = RequestStats()
    for path in (
        "/api/v1/namespaces/a/configmaps",
        "/api/v1/configmaps",
        "/api/v1/namespaces/a/configmaps/x",
        "/apis/apps/v1/namespaces/a/deployments/web/status",
        "/api/v1/namespaces",
        "/api/v1/namespaces/a",
    ):
        stats.record("GET", path, dry_run=False)
    stats.record("PATCH", "/api/v1/namespaces/a/configmaps/x", dry_run=True)
    assert stats.snapshot() == {
        "DRYRUN configmaps": 1,
        "GET configmaps": 1,
        "GET deployments/status": 1,
        "GET namespaces": 1,
        "LIST configmaps": 2,
        "LIST namespaces": 1,
    }
    assert is_collection("/apis/gitopsd.dev/v1alpha1/environments") and not is_collection("/api/v1")
    assert resource_of("/version") == "/version"


# -- on the cluster -----------------------------------------------------------------------------


async def test_a_small_environment_reads_objects_by_get_never_by_list(kube: Kube, ns: str) -> None:
    """First sync, health gate and a no-op re-sync of 3 objects of 3 kinds: no list request at all."""
    options = ApplyOptions(owner=owner())
    applier = Applier(kube)
    manifests = [deploy("web", ns, replicas=0), service("web", ns), configmap("cfg", ns)]
    kube.stats.reset()
    first = await applier.sync(manifests, Inventory(), options)
    report = await applier.wait(first.inventory, 60, owner=options.owner)
    again = await applier.sync(manifests, first.inventory, options)
    assert report.healthy, report.message
    assert first.writes == 3 and again.writes == 0
    reads = kube.stats.snapshot()
    assert not [key for key in reads if key.startswith("LIST")], reads
    # The no-op re-sync (no memo: dry-runs) read each object once.
    assert {k: n for k, n in again.requests_by_kind.items() if k.startswith("GET")} == {
        "GET configmaps": 1,
        "GET deployments": 1,
        "GET services": 1,
    }


async def test_a_kind_with_many_objects_is_read_with_one_labelled_list_in_its_namespace(
    kube: Kube, ns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twelve ConfigMaps: a re-sync reads them with one list of their namespace, the Deployment by GET."""
    options = ApplyOptions(owner=owner())
    applier = Applier(kube)
    manifests: list[Manifest] = [configmap(f"cfg-{i}", ns) for i in range(LIST_THRESHOLD + 4)]
    manifests.append(deploy("web", ns, replicas=0))
    first = await applier.sync(manifests, Inventory(), options)
    listed: list[tuple[str, str | None]] = []
    real_list = kube.list

    async def spy(path: str, **kwargs: Any) -> ListResult:
        listed.append((path, kwargs.get("label_selector")))
        return await real_list(path, **kwargs)

    monkeypatch.setattr(kube, "list", spy)
    again = await applier.sync(manifests, first.inventory, options)
    assert again.writes == 0 and again.action_counts()["unchanged"] == len(manifests)
    reads = {k: n for k, n in again.requests_by_kind.items() if not k.startswith("DRYRUN")}
    assert reads == {"LIST configmaps": 1, "GET deployments": 1}
    assert listed == [(f"/api/v1/namespaces/{ns}/configmaps", f"gitopsd.dev/environment={options.owner}")]
