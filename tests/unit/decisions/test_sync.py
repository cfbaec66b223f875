"""A first sync, a no-op second one, and which failures stall an Environment and which retry."""

from __future__ import annotations

from gitopsd.kube.errors import Unreachable
from gitopsd.sources.errors import GitUnreachable, InvalidSourceURL
from tests.unit.decisions.conftest import World
from tests.unit.decisions.ports import app


async def test_first_sync_records_release_1_healthy_and_ready(world: World) -> None:
    """The first revision is applied as release 1, Healthy on record and in status, Ready True."""
    revision = world.source.push("A", app("1"))
    world.create("shop")
    outcome = await world.reconcile("shop")
    assert (outcome.result, outcome.release, outcome.verdict) == ("applied", 1, "Healthy")
    st = await world.status("shop")
    assert st["release"] == 1 and st["lastAppliedRevision"] == str(revision)
    assert [h["result"] for h in st["history"]] == ["Healthy"]
    ready = await world.condition("shop", "Ready")
    assert ready is not None and ready["status"] == "True" and str(revision) in ready["message"]
    assert await world.condition("shop", "Reconciling") is None
    assert await world.results("shop") == {1: "Healthy"}
    assert world.image() == "shop:1"
    assert "ReconciliationSucceeded" in await world.reasons("shop")


async def test_a_second_reconcile_with_nothing_new_writes_nothing(world: World) -> None:
    """Same revision, same objects: the reconcile keeps release 1 and makes 0 writes to the cluster."""
    world.source.push("A", app("1"))
    world.create("shop")
    await world.reconcile("shop")
    before = await world.status("shop")
    world.kube.stats.reset()
    outcome = await world.reconcile("shop")
    assert (outcome.result, outcome.release) == ("unchanged", 1)
    assert world.kube.stats.writes == 0, world.kube.stats.snapshot()
    assert await world.status("shop") == before


async def test_a_new_commit_is_release_2_and_the_old_one_stays_healthy_on_record(world: World) -> None:
    """A push becomes release 2 applied over release 1; numbers follow each other."""
    world.source.push("A", app("1"))
    world.create("shop")
    await world.reconcile("shop")
    revision = world.source.push("B", app("2"))
    outcome = await world.reconcile("shop")
    assert (outcome.release, outcome.verdict) == (2, "Healthy")
    assert (await world.status("shop"))["lastAppliedRevision"] == str(revision)
    assert await world.results("shop") == {1: "Healthy", 2: "Healthy"}
    assert world.image() == "shop:2"


async def test_api_server_unreachable_is_retried_not_stalled(world: World) -> None:
    """An Unreachable from the cluster: Ready False with its reason, Reconciling True, no Stalled."""
    world.source.push("A", app("1"))
    world.create("shop")
    world.kube.fail_next("GET", "/api/v1/namespaces/gitopsd-system/secrets", Unreachable("connection refused"))
    outcome = await world.reconcile("shop")
    assert outcome.result == "failed" and outcome.error is not None and outcome.error.transient
    ready = await world.condition("shop", "Ready")
    assert ready is not None and (ready["status"], ready["reason"]) == ("False", "KubernetesUnreachable")
    reconciling = await world.condition("shop", "Reconciling")
    assert reconciling is not None and reconciling["status"] == "True"
    assert await world.condition("shop", "Stalled") is None
    assert world.live("ConfigMap", "settings") is None
    again = await world.reconcile("shop")  # the next interval: it passes by itself
    assert (again.release, again.verdict) == (1, "Healthy")
    assert await world.condition("shop", "Reconciling") is None


async def test_git_unreachable_is_retried_not_stalled(world: World) -> None:
    """A Git server that cannot be reached: Reconciling (retry), not Stalled."""
    world.source.push("A", app("1"))
    world.create("shop")
    world.source.error = GitUnreachable("https://git.example.com/shop.git: connection refused")
    await world.reconcile("shop")
    assert await world.condition("shop", "Stalled") is None
    reconciling = await world.condition("shop", "Reconciling")
    assert reconciling is not None and "connection refused" in reconciling["message"]


async def test_a_source_url_that_cannot_work_stalls(world: World) -> None:
    """An InvalidSourceURL from the source: Stalled True with the reason, nothing applied, one Warning."""
    world.source.push("A", app("1"))
    world.create("shop")
    world.source.error = InvalidSourceURL("spec.source.url: 'https://git.example.com/shop.git' has no repository")
    outcome = await world.reconcile("shop")
    assert outcome.result == "failed"
    stalled = await world.condition("shop", "Stalled")
    assert stalled is not None and (stalled["status"], stalled["reason"]) == ("True", "InvalidSourceURL")
    assert "spec.source.url" in stalled["message"]
    assert await world.condition("shop", "Reconciling") is None
    assert world.live("ConfigMap", "settings") is None and await world.records("shop") == {}
    await world.reconcile("shop")  # the same failure again: no second Event
    warnings = [e for e in await world.events("shop") if e[1] == "InvalidSourceURL"]
    assert len(warnings) == 1 and warnings[0][0] == "Warning"
