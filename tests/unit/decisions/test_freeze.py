"""Freeze windows: a new revision waits (Frozen, nothing applied); ``sync --force-freeze`` deploys it once."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.unit.decisions.conftest import World
from tests.unit.decisions.ports import app

WINDOW = [{"start": "2026-12-24T00:00:00Z", "end": "2026-12-27T00:00:00Z"}]


async def frozen_with_b_waiting(world: World) -> str:
    """Release 1 (A) deployed before the window; inside it, B is pushed and reconciled. Returns B."""
    world.source.push("A", app("1"))
    world.create("shop", freeze=WINDOW)
    await world.reconcile("shop")
    world.clock.now = datetime(2026, 12, 25, 9, 0, tzinfo=UTC)
    return str(world.source.push("B", app("2")))


async def test_a_new_revision_waits_inside_a_window(world: World) -> None:
    """Inside the window: Frozen True naming until when, release 1 kept, nothing of B applied or recorded."""
    b = await frozen_with_b_waiting(world)
    outcome = await world.reconcile("shop")
    assert outcome.release == 1
    frozen = await world.condition("shop", "Frozen")
    assert frozen is not None and frozen["status"] == "True" and frozen["reason"] == "FreezeWindow"
    assert b in frozen["message"] and "2026-12-27T00:00:00Z" in frozen["message"]
    assert "spec.freeze[0]" in frozen["message"]
    assert set(await world.records("shop")) == {1}
    assert world.image() == "shop:1"
    st = await world.status("shop")
    assert st["release"] == 1 and st["lastAppliedRevision"] != b
    world.kube.stats.reset()
    await world.reconcile("shop")  # still frozen: nothing new to say
    assert world.kube.stats.writes == 0, world.kube.stats.snapshot()


async def test_the_revision_deploys_by_itself_once_the_window_closes(world: World) -> None:
    """After the window's end the waiting revision is release 2 and Frozen is gone."""
    b = await frozen_with_b_waiting(world)
    await world.reconcile("shop")
    world.clock.now = datetime(2026, 12, 27, 0, 0, 1, tzinfo=UTC)
    outcome = await world.reconcile("shop")
    assert (outcome.release, outcome.verdict) == (2, "Healthy")
    assert await world.condition("shop", "Frozen") is None
    assert (await world.status("shop"))["lastAppliedRevision"] == b


async def test_force_freeze_deploys_once_with_a_warning_event(world: World) -> None:
    """``sync --force-freeze``: B deploys as release 2 with a FreezeOverridden Warning; C pushed later waits."""
    b = await frozen_with_b_waiting(world)
    await world.reconcile("shop")
    token = await world.ask_sync("shop", force_freeze=True)
    outcome = await world.reconcile("shop")
    assert (outcome.release, outcome.verdict) == (2, "Healthy")
    st = await world.status("shop")
    assert st["lastAppliedRevision"] == b and st["lastHandledReconcileAt"] == token
    assert await world.condition("shop", "Frozen") is None
    overridden = [e for e in await world.events("shop") if e[1] == "FreezeOverridden"]
    assert len(overridden) == 1 and overridden[0][0] == "Warning" and "alice" in overridden[0][2]
    world.source.push("C", app("3"))  # the override was for that one request only
    again = await world.reconcile("shop")
    assert again.release == 2 and world.image() == "shop:2"
    assert await world.condition("shop", "Frozen") is not None


async def test_a_sync_request_without_force_does_not_pass_the_freeze(world: World) -> None:
    """A plain ``gitopsd sync`` inside the window is handled but deploys nothing."""
    await frozen_with_b_waiting(world)
    token = await world.ask_sync("shop")
    outcome = await world.reconcile("shop")
    assert outcome.release == 1 and world.image() == "shop:1"
    assert (await world.status("shop"))["lastHandledReconcileAt"] == token
    assert "FreezeOverridden" not in await world.reasons("shop")


async def test_a_rollback_is_allowed_inside_a_window(world: World) -> None:
    """Rollbacks are never frozen: release 2 rolled back to 1 inside the window."""
    world.source.push("A", app("1"))
    world.create("shop", freeze=WINDOW)
    await world.reconcile("shop")
    world.source.push("B", app("2"))
    await world.reconcile("shop")
    world.clock.now = datetime(2026, 12, 25, tzinfo=UTC)
    await world.ask_rollback("shop")
    outcome = await world.reconcile("shop")
    assert (outcome.release, outcome.verdict) == (3, "Healthy") and world.image() == "shop:1"
