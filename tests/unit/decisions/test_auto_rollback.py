"""``spec.rollback.auto``: a release that fails its health gate is rolled back to the last Healthy one and held."""

from __future__ import annotations

from tests.unit.decisions.conftest import World
from tests.unit.decisions.ports import app

AUTO = {"auto": True}


async def test_a_failed_release_is_rolled_back_and_its_revision_held(world: World) -> None:
    """Release 2's Deployment fails: release 2 Failed then RolledBack, release 3 restores 1, revision 2 held."""
    a = world.source.push("A", app("1"))
    world.create("shop", rollback=AUTO)
    await world.reconcile("shop")
    b = world.source.push("B", app("2", image="shop:2:bad"))
    outcome = await world.reconcile("shop")
    assert (outcome.release, outcome.verdict) == (3, "Healthy")
    records = await world.records("shop")
    assert {n: str(r.result) for n, r in records.items()} == {1: "Healthy", 2: "RolledBack", 3: "Healthy"}
    assert records[3].restored_from == 1 and records[3].trigger == "auto:HealthCheckFailed"
    st = await world.status("shop")
    assert st["release"] == 3 and st["lastAppliedRevision"] == str(a)
    assert (st["held"]["revision"], st["held"]["reason"], st["held"]["release"]) == (str(b), "HealthCheckFailed", 2)
    assert world.image() == "shop:1"
    rolled = [e for e in await world.events("shop") if e[1] == "RolledBack"]
    assert len(rolled) == 1 and rolled[0][0] == "Warning" and "automatically" in rolled[0][2]
    assert "HealthCheckFailed" in await world.reasons("shop")
    again = await world.reconcile("shop")  # B stays held: no loop of deploy and rollback
    assert again.release == 3 and set(await world.records("shop")) == {1, 2, 3}


async def test_without_auto_a_failed_release_stays_failed(world: World) -> None:
    """No rollback.auto: release 2 is Failed, current, Ready False HealthCheckFailed, no hold."""
    world.source.push("A", app("1"))
    world.create("shop")
    await world.reconcile("shop")
    world.source.push("B", app("2", image="shop:2:bad"))
    outcome = await world.reconcile("shop")
    assert (outcome.release, outcome.verdict) == (2, "Failed")
    assert await world.results("shop") == {1: "Healthy", 2: "Failed"}
    st = await world.status("shop")
    assert st["release"] == 2 and "held" not in st
    ready = await world.condition("shop", "Ready")
    assert ready is not None and (ready["status"], ready["reason"]) == ("False", "HealthCheckFailed")
    assert await world.condition("shop", "Stalled") is None


async def test_with_no_healthy_release_to_go_back_to_it_only_holds(world: World) -> None:
    """The first release fails: nothing to restore, so revision A is held (not retried) with a Warning."""
    a = world.source.push("A", app("1", image="shop:1:bad"))
    world.create("shop", rollback=AUTO)
    outcome = await world.reconcile("shop")
    assert (outcome.result, outcome.release) == ("failed", 1)
    assert await world.results("shop") == {1: "Failed"}
    st = await world.status("shop")
    assert st["release"] == 1 and (st["held"]["revision"], st["held"]["release"]) == (str(a), 1)
    held = [e for e in await world.events("shop") if e[1] == "RevisionHeld"]
    assert len(held) == 1 and held[0][0] == "Warning" and "no Healthy release" in held[0][2]
    again = await world.reconcile("shop")
    assert again.release == 1 and set(await world.records("shop")) == {1}


async def test_a_new_commit_after_an_automatic_rollback_deploys(world: World) -> None:
    """The fix pushed after the rollback lifts the hold and becomes release 4."""
    world.source.push("A", app("1"))
    world.create("shop", rollback=AUTO)
    await world.reconcile("shop")
    world.source.push("B", app("2", image="shop:2:bad"))
    await world.reconcile("shop")
    c = world.source.push("C", app("3"))
    outcome = await world.reconcile("shop")
    assert (outcome.release, outcome.verdict) == (4, "Healthy")
    st = await world.status("shop")
    assert "held" not in st and st["lastAppliedRevision"] == str(c)
