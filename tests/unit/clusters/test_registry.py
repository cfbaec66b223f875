"""The registry's life cycle of targets: recovery starts watches over and queues, idle targets close."""

from __future__ import annotations

import asyncio
import base64

from gitopsd.clusters.breaker import Breaker
from gitopsd.clusters.registry import Built, Registry
from gitopsd.kube.config import Connection
from gitopsd.kube.secretwatch import PlainSecretReader
from gitopsd.kube.watchcache import WatchCache
from gitopsd.spec import Environment, parse_environment
from tests.fakes import FakeKube

CONFIG = """
current-context: t
contexts: [{name: t, context: {cluster: c, user: u}}]
clusters: [{name: c, cluster: {server: "https://prod.example"}}]
users: [{name: u, user: {token: abc}}]
"""


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def world() -> tuple[FakeKube, FakeKube, Environment]:
    management, target = FakeKube(namespaces=("apps",)), FakeKube(namespaces=("apps",))
    management.seed({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "prod", "namespace": "apps"},
                     "data": {"value": base64.b64encode(CONFIG.encode()).decode()}})  # fmt: skip
    env = parse_environment(
        {"metadata": {"name": "shop", "namespace": "apps", "uid": "u1"},
         "spec": {"source": {"url": "https://git.example.com/x.git", "branch": "main"},
                  "kubeConfig": {"secretRef": {"name": "prod"}}}}
    )  # fmt: skip
    return management, target, env


async def test_a_cluster_that_answers_again_gets_new_watches_and_its_environments_queued() -> None:
    """Breaker closes after an outage: on_recovered names the cluster; the applier reads a renewed cache."""
    management, target, env = world()
    recovered: list[str] = []
    renewed: list[object] = []
    breakers: list[Breaker] = []

    def make(name: str, connection: Connection, breaker: Breaker) -> Built:
        breakers.append(breaker)

        async def close() -> None:
            return None

        async def renew() -> WatchCache | None:
            fresh = object.__new__(WatchCache)
            renewed.append(fresh)
            return fresh

        return Built(target, None, close, renew)

    registry = Registry(PlainSecretReader(management), make=make, on_recovered=recovered.append)
    built = await registry.acquire(env)
    registry.release(built)
    breaker = breakers[0]
    for _ in range(breaker.threshold):
        breaker.failure("connection refused")
    assert breaker.state == "open"
    breaker.retry_at = 0.0
    assert breaker.admit()
    breaker.success()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert recovered == ["apps/prod"]
    assert renewed and built.applier.cache is renewed[0]


async def test_an_idle_target_is_closed_and_a_used_one_is_kept() -> None:
    """A target no run used for ``idle`` seconds is closed at the next acquire; in use, never."""
    management, target, env = world()
    closed: list[str] = []
    clock = Clock()

    def make(name: str, connection: Connection, breaker: Breaker) -> Built:
        async def close() -> None:
            closed.append(name)

        return Built(target, None, close)

    registry = Registry(PlainSecretReader(management), make=make, idle=60.0, clock=clock)
    first = await registry.acquire(env)
    clock.now = 1000.0
    again = await registry.acquire(env)  # still in use by ``first``: kept
    assert again is first and closed == []
    registry.release(first)
    registry.release(again)
    clock.now = 2000.0
    fresh = await registry.acquire(env)
    await asyncio.sleep(0)
    assert closed == ["apps/prod"] and fresh is not first
    await registry.close()
