"""The promotion guard: prod takes a commit only once staging ran it Healthy; cycles and missing
Environments stall with the field named."""

from __future__ import annotations

from tests.unit.decisions.conftest import World
from tests.unit.decisions.ports import app, commit_of

REQUIRE_STAGING = {"requireHealthyIn": [{"name": "staging"}]}


def pipeline(world: World) -> None:
    world.create("staging", targetNamespace="staging")
    world.create("prod", targetNamespace="prod", promotion=REQUIRE_STAGING)


async def test_prod_waits_for_a_commit_staging_never_deployed(world: World) -> None:
    """Nothing in staging yet: prod is AwaitingPromotion naming staging and the commit; nothing applied."""
    pipeline(world)
    world.source.push("A", app("1", namespace=None))
    outcome = await world.reconcile("prod")
    assert outcome.release is None
    ready = await world.condition("prod", "Ready")
    assert ready is not None and (ready["status"], ready["reason"]) == ("False", "AwaitingPromotion")
    assert f"staging never deployed commit {commit_of('A')[:7]}" in ready["message"]
    assert "nothing deployed yet" in ready["message"]
    assert await world.condition("prod", "Stalled") is None
    assert await world.records("prod") == {} and world.image(namespace="prod") is None
    assert "AwaitingPromotion" in await world.reasons("prod")


async def test_prod_keeps_its_release_while_the_new_commit_waits_then_takes_it(world: World) -> None:
    """Prod keeps release 1 while B is only in Git; once staging has B Healthy, prod deploys it as release 2."""
    pipeline(world)
    world.source.push("A", app("1", namespace=None))
    await world.reconcile("staging")
    admitted = await world.reconcile("prod")
    assert (admitted.release, admitted.verdict) == (1, "Healthy")
    world.source.push("B", app("2", namespace=None))
    waiting = await world.reconcile("prod")
    assert waiting.release == 1 and world.image(namespace="prod") == "shop:1"
    ready = await world.condition("prod", "Ready")
    assert ready is not None and ready["reason"] == "AwaitingPromotion"
    assert f"commit {commit_of('B')[:7]}" in ready["message"] and "it runs release 1" in ready["message"]
    world.kube.stats.reset()
    await world.reconcile("prod")  # still waiting: nothing new to write
    assert world.kube.stats.writes == 0, world.kube.stats.snapshot()
    await world.reconcile("staging")
    promoted = await world.reconcile("prod")
    assert (promoted.release, promoted.verdict) == (2, "Healthy")
    assert world.image(namespace="prod") == "shop:2"
    ready = await world.condition("prod", "Ready")
    assert ready is not None and ready["status"] == "True"


async def test_a_commit_that_failed_in_staging_is_not_promoted(world: World) -> None:
    """Staging ran B and it Failed its health gate: prod waits, saying staging's release is Failed."""
    pipeline(world)
    world.source.push("A", app("1", namespace=None))
    await world.reconcile("staging")
    await world.reconcile("prod")
    world.source.push("B", app("2", image="shop:2:bad", namespace=None))
    await world.reconcile("staging")
    outcome = await world.reconcile("prod")
    assert outcome.release == 1 and world.image(namespace="prod") == "shop:1"
    ready = await world.condition("prod", "Ready")
    assert ready is not None and "staging deployed commit" in ready["message"] and "Failed" in ready["message"]


async def test_a_missing_source_environment_stalls_naming_the_field(world: World) -> None:
    """requireHealthyIn names an Environment that does not exist: Stalled, the field and name in the message."""
    world.create("prod", targetNamespace="prod", promotion={"requireHealthyIn": [{"name": "qa"}]})
    world.source.push("A", app("1", namespace=None))
    await world.reconcile("prod")
    stalled = await world.condition("prod", "Stalled")
    assert stalled is not None and stalled["reason"] == "PromotionSourceNotFound"
    assert "spec.promotion.requireHealthyIn[0].name" in stalled["message"] and "qa" in stalled["message"]
    assert await world.records("prod") == {}


async def test_a_cycle_of_requirements_stalls_naming_the_field(world: World) -> None:
    """prod requires staging which requires prod: Stalled PromotionCycle with the path, nothing deployed."""
    world.create("staging", targetNamespace="staging", promotion={"requireHealthyIn": [{"name": "prod"}]})
    world.create("prod", targetNamespace="prod", promotion=REQUIRE_STAGING)
    world.source.push("A", app("1", namespace=None))
    await world.reconcile("prod")
    stalled = await world.condition("prod", "Stalled")
    assert stalled is not None and stalled["reason"] == "PromotionCycle"
    assert "spec.promotion.requireHealthyIn[0].name" in stalled["message"]
    assert "prod → staging → prod" in stalled["message"]
    assert await world.records("prod") == {} and world.image(namespace="prod") is None
