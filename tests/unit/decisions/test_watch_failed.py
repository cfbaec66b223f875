"""A kind the watch cache cannot serve (its list refused, its CRD gone) is named by the
Environments that hold it, and by no other; the condition goes once the watch is back."""

from __future__ import annotations

import asyncio
from typing import Any

from gitopsd.events import EventRecorder
from gitopsd.kube.errors import Forbidden
from gitopsd.kube.watchcache import WatchCache
from gitopsd.model import ENVIRONMENT_LABEL, FIELD_MANAGER
from gitopsd.reconcile import Reconciler
from gitopsd.status import WATCH_FAILED
from tests.unit.decisions.conftest import World
from tests.unit.decisions.ports import app, deployment

CONFIGMAPS = "/api/v1/configmaps"  # the cluster-wide list and watch of a daemon serving every namespace
REFUSED = 'configmaps is forbidden: User "gitopsd" cannot list resource "configmaps" at the cluster scope'


def _with_cache(world: World, retry_failed: float) -> WatchCache:
    cache = WatchCache(world.kube, label=ENVIRONMENT_LABEL, field_manager=FIELD_MANAGER, retry_failed=retry_failed)  # type: ignore[arg-type]
    world.reconciler = Reconciler(
        world.kube, None, EventRecorder(world.kube), source=world.source, clock=world.clock, cache=cache
    )
    return cache


async def _until(what: str, check: Any) -> None:
    for _ in range(4000):  # 20 s: a loaded machine is slow, a broken cache never gets there
        if check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"not reached: {what}")


async def test_the_environment_holding_an_unwatchable_kind_names_it_and_others_do_not(world: World) -> None:
    world.kube.fail_next("GET", CONFIGMAPS, Forbidden(403, "Forbidden", REFUSED), times=10_000)
    cache = _with_cache(world, retry_failed=3600)
    try:
        world.source.push("A", app("1"))
        world.source.push("B", [deployment("api", "api:1", None)], branch="api")
        world.create("shop")
        world.create("api", targetNamespace="staging",
                     source={"url": "https://git.example.com/shop.git", "branch": "api", "path": "deploy"})  # fmt: skip
        await world.reconcile("shop")  # starts the watches; the ConfigMaps' list is refused
        await _until("configmaps marked failed", lambda: cache.failure_of("", "ConfigMap", "shop"))
        outcome = await world.reconcile("shop")
        await world.reconcile("api")

        assert outcome.result == "unchanged"  # read with GETs meanwhile: the sync itself goes on
        failed = await world.condition("shop", WATCH_FAILED)
        assert failed is not None and failed["status"] == "True", await world.status("shop")
        assert failed["message"].startswith("ConfigMap read with a GET each"), failed["message"]
        assert "configmaps.core in all namespaces may not be listed" in failed["message"]
        assert "Deployment" not in failed["message"]
        assert (await world.condition("shop", "Ready") or {}).get("status") == "True"
        assert await world.condition("api", WATCH_FAILED) is None  # holds no ConfigMap
        warnings = [e for e in await world.events("shop") if e[1] == WATCH_FAILED]
        assert len(warnings) == 1 and warnings[0][0] == "Warning"

        world.kube.stats.reset()
        await world.reconcile("shop")  # nothing new: no second Event, no status write
        assert world.kube.stats.writes == 0, world.kube.stats.snapshot()
        assert len([e for e in await world.events("shop") if e[1] == WATCH_FAILED]) == 1
    finally:
        await cache.close()


async def test_the_condition_goes_once_the_kind_is_watched_again(world: World) -> None:
    # Refused until healed: retried every 0.05 s, the kind stays failed however slow the machine is.
    world.kube.fail_next("GET", CONFIGMAPS, Forbidden(403, "Forbidden", REFUSED), times=10_000)
    cache = _with_cache(world, retry_failed=0.05)
    try:
        world.source.push("A", app("1"))
        world.create("shop")
        await world.reconcile("shop")
        await _until("configmaps marked failed", lambda: cache.failure_of("", "ConfigMap"))
        await world.reconcile("shop")
        assert await world.condition("shop", WATCH_FAILED) is not None
        world.kube.heal("GET", CONFIGMAPS)
        await _until("configmaps watched again", lambda: cache.failure_of("", "ConfigMap") is None)
        await world.reconcile("shop")
        assert await world.condition("shop", WATCH_FAILED) is None
    finally:
        await cache.close()
