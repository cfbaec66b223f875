"""A target that stops answering while its Environment has nothing new to apply (issue 16).

An idle run sends the target nothing (watch cache, apply memo), so only the liveness check
(``gitopsd.clusters.liveness``) can notice: at most one ``GET /version`` per cluster per window.
"""

from __future__ import annotations

from gitopsd.clusters import ClusterUnreachable
from gitopsd.clusters.liveness import WINDOW
from gitopsd.clusters.registry import Registry
from gitopsd.events import EventRecorder
from gitopsd.kube.secretwatch import PlainSecretReader
from gitopsd.reconcile import Reconciler
from tests.unit.decisions.conftest import NAMESPACE, World
from tests.unit.decisions.ports import app
from tests.unit.decisions.test_clusters import Clusters, kubeconfig


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def remote(world: World, clock: Clock) -> Clusters:
    """``Clusters`` whose registry runs on ``clock`` (the liveness window's time)."""
    clusters = Clusters(world)
    clusters.registry = Registry(PlainSecretReader(world.kube), make=clusters.make, clock=clock)
    world.reconciler = Reconciler(
        world.kube, None, EventRecorder(world.kube), source=world.source, clock=world.clock, clusters=clusters.registry
    )
    world.reconciler.services.prometheus = world.prometheus.open
    return clusters


async def test_an_idle_environment_on_a_target_that_stops_answering_goes_cluster_unreachable(world: World) -> None:
    """Ready on prod, nothing new: runs within the window ask prod nothing; the first run after it
    sends one probe (and nothing else); prod silent -> Ready False ClusterUnreachable naming it; it answers -> Ready."""
    clock = Clock()
    clusters = remote(world, clock)
    prod = clusters.cluster("https://prod.example")
    clusters.secret("prod", kubeconfig("https://prod.example"))
    world.source.push("A", app("1"))
    world.create("shop", kubeConfig={"secretRef": {"name": "prod"}})
    assert (await world.reconcile("shop")).result == "applied"

    liveness = clusters.registry.targets()[f"{NAMESPACE}/prod"].liveness
    assert liveness is not None
    clock.now += WINDOW / 2
    assert (await world.reconcile("shop")).error is None
    assert liveness.probes == 0  # answered lately (built): not asked

    silent = ClusterUnreachable(f"{NAMESPACE}/prod", "unreachable: timed out")
    prod.fail_next("GET", "/version", silent, times=1000)
    clock.now += WINDOW + 1
    before = prod.stats.total
    outcome = await world.reconcile("shop")
    assert outcome.result == "failed" and isinstance(outcome.error, ClusterUnreachable), outcome
    ready = await world.condition("shop", "Ready")
    assert ready is not None and ready["status"] == "False" and ready["reason"] == "ClusterUnreachable"
    assert f"cluster {NAMESPACE}/prod" in ready["message"]
    assert await world.condition("shop", "Stalled") is None
    assert prod.stats.total == before + 1 and liveness.probes == 1, prod.stats.snapshot()  # the probe only

    prod.heal("GET", "/version")
    clock.now += 2
    outcome = await world.reconcile("shop")
    assert outcome.error is None, outcome.error
    assert (await world.condition("shop", "Ready") or {}).get("status") == "True"
    assert liveness.probes == 2  # a failed probe leaves no window: the next run asks again
