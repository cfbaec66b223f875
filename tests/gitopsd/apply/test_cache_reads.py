"""The applier with the cluster's watch cache: a no-op sync reads nothing over the network, a hand
edit seen by the watch is re-applied, and a health wait is answered from memory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from e2e.cluster import ClusterInfo
from gitopsd.apply import Action, Applier, ApplyMemo, ApplyOptions, Inventory, Overall
from gitopsd.apply.wait import caught_up
from gitopsd.kube import Kube
from gitopsd.kube.watchcache import WatchCache
from gitopsd.model import ENVIRONMENT_LABEL, FIELD_MANAGER, Manifest
from tests.e2e.kube import kubectl
from tests.gitopsd.apply.helpers import configmap, deploy, owner, service


@pytest.fixture
async def cache(kube: Kube) -> AsyncIterator[WatchCache]:
    """A watch cache like the daemon's, over its own connection."""
    async with Kube(kube.connection) as client:
        made = WatchCache(client, label=ENVIRONMENT_LABEL, field_manager=FIELD_MANAGER)
        yield made
        await made.close()


def bundle(ns: str, size: int) -> list[Manifest]:
    """``size`` objects: a third each Deployments, Services, ConfigMaps."""
    makers: list[Callable[[str, str], Manifest]] = [lambda n, s: deploy(n, s, replicas=1), service, configmap]
    return [makers[i % 3](f"o{i}", ns) for i in range(size)]


async def caught_up_with(cache: WatchCache, kube: Kube, inventory: Inventory) -> None:
    """Wait (bounded) until the cache holds every object as it is now."""
    for entry in inventory:
        resource = await kube.discovery.resource(entry.api_version, entry.ref.kind)
        assert await cache.wait_synced(resource, entry.ref.namespace, timeout=30)
        live = await kube.get(resource.path(entry.ref.namespace, entry.ref.name))
        for _ in range(300):
            held = cache.get(resource, entry.ref.namespace, entry.ref.name)
            if held is not None and caught_up(held, live):
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail(f"the cache never caught up with {entry.ref}")


async def test_a_noop_sync_of_50_objects_makes_no_request(kube: Kube, cache: WatchCache, ns: str) -> None:
    """Once the cache holds the objects, syncing the same 50 objects again sends nothing at all."""
    applier, memo = Applier(kube, cache=cache), ApplyMemo()
    options = ApplyOptions(owner=owner())
    manifests = bundle(ns, 50)
    first = await applier.sync(manifests, Inventory(), options, memo)
    await caught_up_with(cache, kube, first.inventory)
    again = await applier.sync(manifests, first.inventory, options, memo)
    assert again.requests == 0, again.requests_by_kind
    assert {o.action for o in again.objects} == {Action.UNCHANGED}
    without = await Applier(kube).sync(manifests, first.inventory, options, memo)
    assert without.requests > 0, "the same sync without the cache reads the cluster"


async def test_an_edit_seen_by_the_watch_is_reapplied(
    cluster_ipv4: ClusterInfo, kube: Kube, cache: WatchCache, ns: str
) -> None:
    """kubectl scale moves the object the cache holds: the memo does not skip it, the sync takes it back."""
    applier, memo = Applier(kube, cache=cache), ApplyMemo()
    options = ApplyOptions(owner=owner())
    manifests = [deploy("web", ns, replicas=2), configmap("cfg", ns)]
    first = await applier.sync(manifests, Inventory(), options, memo)
    await caught_up_with(cache, kube, first.inventory)
    out = kubectl(cluster_ipv4, "scale", "deployment", "web", "-n", ns, "--replicas=4")
    assert out.returncode == 0, out.stderr
    await caught_up_with(cache, kube, first.inventory)
    again = await applier.sync(manifests, first.inventory, options, memo)
    actions = {o.ref.name: o.action for o in again.objects}
    assert actions == {"web": Action.DRIFT_CORRECTED, "cfg": Action.UNCHANGED}
    live = await kube.get(f"/apis/apps/v1/namespaces/{ns}/deployments/web")
    assert live["spec"]["replicas"] == 2


async def test_a_health_wait_is_answered_from_the_cache(kube: Kube, cache: WatchCache, ns: str) -> None:
    """Objects the cache holds are assessed from memory and re-assessed on their events: no request."""
    applier = Applier(kube, cache=cache)
    options = ApplyOptions(owner=owner())
    result = await applier.sync([deploy("web", ns, replicas=1), service("web", ns)], Inventory(), options)
    await caught_up_with(cache, kube, result.inventory)
    before = kube.stats.total
    report = await applier.wait(result.inventory, 120, owner=options.owner)
    assert report.overall is Overall.HEALTHY, report.message
    assert kube.stats.total == before, kube.stats.snapshot()


def test_a_cached_copy_older_than_our_write_is_not_assessed() -> None:
    """The health gate must not pass on the pre-apply copy a lagging watch still holds."""
    wrote: dict[str, Any] = {"metadata": {"uid": "u", "generation": 3, "resourceVersion": "30"}}
    assert not caught_up({"metadata": {"uid": "u", "generation": 2, "resourceVersion": "20"}}, wrote)
    assert caught_up({"metadata": {"uid": "u", "generation": 3, "resourceVersion": "31"}}, wrote)
    assert not caught_up({"metadata": {"uid": "other", "generation": 9}}, wrote)
    no_generation: dict[str, Any] = {"metadata": {"uid": "u", "resourceVersion": "30"}}
    assert caught_up({"metadata": {"uid": "u", "resourceVersion": "30"}}, no_generation)
    assert not caught_up({"metadata": {"uid": "u", "resourceVersion": "29"}}, no_generation)
    assert caught_up({"metadata": {"uid": "u"}}, None)
