"""A requested rollback holds the revision rolled away from; resume or a new source revision lifts it."""

from __future__ import annotations

from tests.unit.decisions.conftest import World
from tests.unit.decisions.ports import app


async def rolled_back(world: World) -> tuple[str, str]:
    """Releases 1 (A) and 2 (B) Healthy, then ``gitopsd rollback shop``: returns (revision A, revision B)."""
    a = world.source.push("A", app("1"))
    world.create("shop")
    await world.reconcile("shop")
    b = world.source.push("B", app("2"))
    await world.reconcile("shop")
    token = await world.ask_rollback("shop")
    outcome = await world.reconcile("shop")
    assert (outcome.release, outcome.verdict) == (3, "Healthy")
    handled = (await world.status("shop"))["lastHandledRollback"]
    assert (handled["token"], handled["result"], handled["release"]) == (token, "Succeeded", 3)
    return str(a), str(b)


async def test_rollback_restores_release_1_as_release_3_and_holds_revision_2(world: World) -> None:
    """Release 3 restores release 1's objects; release 2 is RolledBack and its revision held."""
    a, b = await rolled_back(world)
    records = await world.records("shop")
    assert {n: str(r.result) for n, r in records.items()} == {1: "Healthy", 2: "RolledBack", 3: "Healthy"}
    assert records[3].restored_from == 1 and records[3].revision == a and records[3].applied_by == "alice"
    st = await world.status("shop")
    assert st["release"] == 3 and st["lastAppliedRevision"] == a
    assert st["held"]["revision"] == b and st["held"]["release"] == 2
    assert world.image() == "shop:1"
    assert ("Normal", "RolledBack") in [(t, r) for t, r, _ in await world.events("shop")]


async def test_the_held_revision_is_not_applied_again(world: World) -> None:
    """With the source still at the held revision, the next reconcile keeps release 3 and says why."""
    _, b = await rolled_back(world)
    outcome = await world.reconcile("shop")
    assert outcome.release == 3 and outcome.result == "unchanged"
    assert set(await world.records("shop")) == {1, 2, 3}
    assert world.image() == "shop:1"
    ready = await world.condition("shop", "Ready")
    assert ready is not None and ready["reason"] == "RevisionHeld" and f"holding {b}" in ready["message"]
    assert (await world.status("shop"))["held"]["revision"] == b


async def test_the_kept_release_is_restored_when_changed_by_hand_while_held(world: World) -> None:
    """Holding still corrects drift: the kept release is re-applied from its record, not from Git."""
    await rolled_back(world)
    await world.kube.patch("/api/v1/namespaces/shop/configmaps/settings", {"data": {"version": "edited"}},
                           field_manager="kubectl-edit")  # fmt: skip
    renders = world.source.renders
    outcome = await world.reconcile("shop")
    assert outcome.drift == 1 and outcome.release == 3
    live = world.live("ConfigMap", "settings")
    assert live is not None and live["data"] == {"version": "1"}
    assert world.source.renders == renders  # the held revision is not rendered


async def test_resume_lifts_the_hold_and_the_revision_deploys_as_a_new_release(world: World) -> None:
    """``gitopsd resume``: the hold is gone, revision B becomes release 4, the resume is marked handled."""
    _, b = await rolled_back(world)
    token = await world.ask_resume("shop")
    outcome = await world.reconcile("shop")
    assert (outcome.release, outcome.verdict) == (4, "Healthy")
    st = await world.status("shop")
    assert "held" not in st and st["lastHandledResume"] == token and st["lastAppliedRevision"] == b
    records = await world.records("shop")
    assert records[4].revision == b and not records[4].is_rollback
    assert world.image() == "shop:2"
    assert "Resumed" in await world.reasons("shop")
    again = await world.reconcile("shop")  # the resume request is not handled twice
    assert again.release == 4 and again.result == "unchanged"


async def test_the_source_moving_on_lifts_the_hold_by_itself(world: World) -> None:
    """A new commit (neither held nor current) is deployed as release 4 and the hold disappears."""
    await rolled_back(world)
    c = world.source.push("C", app("3"))
    outcome = await world.reconcile("shop")
    assert (outcome.release, outcome.verdict) == (4, "Healthy")
    st = await world.status("shop")
    assert "held" not in st and st["lastAppliedRevision"] == str(c)
    assert world.image() == "shop:3"


async def test_a_rollback_to_the_current_release_is_refused_and_changes_nothing(world: World) -> None:
    """``--to`` the current release: refused in lastHandledRollback with a Warning; no record is written."""
    world.source.push("A", app("1"))
    world.create("shop")
    await world.reconcile("shop")
    token = await world.ask_rollback("shop", to=1)
    outcome = await world.reconcile("shop")
    assert outcome.release is None or outcome.release == 1
    handled = (await world.status("shop"))["lastHandledRollback"]
    assert (handled["token"], handled["result"]) == (token, "Refused")
    assert set(await world.records("shop")) == {1}
    assert ("Warning", "RollbackRefused") in [(t, r) for t, r, _ in await world.events("shop")]
