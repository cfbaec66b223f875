"""The watch cache stops the scopes of target namespaces nobody uses any more, and only those."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gitopsd.kube.discovery import Resource
from gitopsd.kube.watchcache import WatchCache
from gitopsd.model import ENVIRONMENT_LABEL
from tests.fakes import FakeKube

CONFIGMAPS = Resource("", "v1", "ConfigMap", "configmaps", namespaced=True)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake() -> FakeKube:
    return FakeKube(namespaces=("default", "ops", "gone", "kept", "busy"))


@pytest.fixture
async def cache(fake: FakeKube, clock: Clock) -> AsyncIterator[WatchCache]:
    watch = WatchCache(fake, namespaces=("ops",), label=ENVIRONMENT_LABEL, idle_scope=600, clock=clock)  # type: ignore[arg-type]
    yield watch
    await watch.close()


def _scopes(cache: WatchCache) -> set[str]:
    return {f.namespace for f in cache.figures()}


async def test_an_empty_unread_target_scope_stops_and_others_stay(
    fake: FakeKube, clock: Clock, cache: WatchCache
) -> None:
    fake.seed({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "a", "namespace": "kept", "labels": {ENVIRONMENT_LABEL: "ops.app"}}})  # fmt: skip
    for namespace in ("gone", "kept", "busy"):
        assert await cache.wait_synced(CONFIGMAPS, namespace, timeout=5)
    assert _scopes(cache) == {"ops", "gone", "kept", "busy"}

    clock.now += 300
    cache.covers(CONFIGMAPS, "busy")  # read by a reconcile meanwhile
    clock.now += 400  # "gone" and "kept" unread for 700 s, "busy" for 400 s
    cache.covers(CONFIGMAPS, "busy")

    assert _scopes(cache) == {"ops", "kept", "busy"}  # "kept" holds an object, "ops" is served
    assert cache.retired == 1

    assert await cache.wait_synced(CONFIGMAPS, "gone", timeout=5)  # read again: watched again
    assert _scopes(cache) == {"ops", "gone", "kept", "busy"}
    await asyncio.sleep(0)
