"""A crash at each step of the release write order, then a new process: it converges with no
duplicate release, numbers that follow each other, and the leftover finished or superseded.

A crash is a ``Crash`` (a ``BaseException``, so no ``except Exception`` in the engine catches it)
raised by the fake at one request; the Reconciler is then thrown away (``world.restart()``).
"""

from __future__ import annotations

from gitopsd.releases import secret_name
from tests.unit.decisions.conftest import NAMESPACE, World, crash
from tests.unit.decisions.ports import Crash, app

STATUS = f"/apis/gitopsd.dev/v1alpha1/namespaces/{NAMESPACE}/environments/shop/status"
SECRETS = f"/api/v1/namespaces/{NAMESPACE}/secrets"


def record_path(number: int) -> str:
    return f"{SECRETS}/{secret_name('shop', number)}"


async def contiguous(world: World) -> dict[int, str]:
    """The records' results; asserts one Secret per record and numbers 1..n with no gap."""
    results = await world.results("shop")
    assert list(results) == list(range(1, len(results) + 1)), results
    assert len((await world.kube.list(SECRETS)).items) == len(results)
    return results


async def deployed_a_then_push_b(world: World, **fields: object) -> tuple[str, str]:
    a = world.source.push("A", app("1"))
    world.create("shop", **fields)
    await world.reconcile("shop")
    b = world.source.push("B", app("2"))
    return str(a), str(b)


async def test_crash_after_the_record_before_status_reuses_it(world: World) -> None:
    """Record 2 written Pending, status not: the new process reuses record 2 for the same revision."""
    _, b = await deployed_a_then_push_b(world)
    world.kube.fail_next("PATCH", STATUS, Crash())
    await crash(world)
    assert (await world.status("shop"))["release"] == 1
    assert await world.results("shop") == {1: "Healthy", 2: "Pending"}
    outcome = await world.reconcile("shop")
    assert (outcome.release, outcome.verdict) == (2, "Healthy")
    assert await contiguous(world) == {1: "Healthy", 2: "Healthy"}
    assert (await world.status("shop"))["lastAppliedRevision"] == b and world.image() == "shop:2"


async def test_crash_after_the_record_then_the_source_moved_supersedes_it(world: World) -> None:
    """Record 2 (B) left Pending and the source now at C: record 2 Superseded, C is release 3."""
    await deployed_a_then_push_b(world)
    world.kube.fail_next("PATCH", STATUS, Crash())
    await crash(world)
    world.source.push("C", app("3"))
    outcome = await world.reconcile("shop")
    assert (outcome.release, outcome.verdict) == (3, "Healthy")
    assert await contiguous(world) == {1: "Healthy", 2: "Superseded", 3: "Healthy"}
    assert world.image() == "shop:3"


async def test_crash_after_status_before_the_apply_applies_the_current_release(world: World) -> None:
    """Status says release 2 (Pending), nothing of it applied: the new process applies and gates it."""
    _, b = await deployed_a_then_push_b(world)
    world.kube.fail_next("PATCH", "/api/v1/namespaces/shop/configmaps", Crash(), dry_run=False)
    await crash(world)
    st = await world.status("shop")
    assert st["release"] == 2 and st["lastAppliedRevision"] != b
    outcome = await world.reconcile("shop")
    assert (outcome.release, outcome.verdict) == (2, "Healthy")
    assert await contiguous(world) == {1: "Healthy", 2: "Healthy"}
    live = world.live("ConfigMap", "settings")
    assert live is not None and live["data"] == {"version": "2"} and world.image() == "shop:2"
    assert (await world.status("shop"))["lastAppliedRevision"] == b


async def test_crash_after_the_apply_before_the_verdict_gives_the_verdict(world: World) -> None:
    """Applied and healthy but the verdict not written: the new process gates again and records Healthy."""
    _, b = await deployed_a_then_push_b(world)
    world.kube.fail_next("PATCH", record_path(2), Crash())
    await crash(world)
    assert world.image() == "shop:2" and await world.results("shop") == {1: "Healthy", 2: "Pending"}
    outcome = await world.reconcile("shop")
    assert (outcome.release, outcome.verdict) == (2, "Healthy")
    assert await contiguous(world) == {1: "Healthy", 2: "Healthy"}
    ready = await world.condition("shop", "Ready")
    assert ready is not None and ready["status"] == "True" and b in ready["message"]


async def test_crash_after_a_requested_rollback_record_finishes_the_rollback(world: World) -> None:
    """Rollback record 3 written, status still at 2: the new process carries the request out with record 3."""
    a, b = await deployed_a_then_push_b(world)
    await world.reconcile("shop")
    token = await world.ask_rollback("shop")
    world.kube.fail_next("PATCH", STATUS, Crash())
    await crash(world)
    assert (await world.status("shop"))["release"] == 2
    outcome = await world.reconcile("shop")
    assert (outcome.release, outcome.verdict) == (3, "Healthy")
    assert await contiguous(world) == {1: "Healthy", 2: "RolledBack", 3: "Healthy"}
    st = await world.status("shop")
    assert st["lastAppliedRevision"] == a and st["held"]["revision"] == b
    assert (st["lastHandledRollback"]["token"], st["lastHandledRollback"]["result"]) == (token, "Succeeded")
    assert world.image() == "shop:1"


async def test_crash_after_an_automatic_rollback_record_finishes_the_rollback(world: World) -> None:
    """Release 2 failed, rollback record 3 written, release 2 not yet marked RolledBack: finished on restart."""
    world.source.push("A", app("1"))
    world.create("shop", rollback={"auto": True})
    await world.reconcile("shop")
    b = world.source.push("B", app("2", image="shop:2:bad"))
    world.kube.fail_next("PATCH", record_path(2), Crash(), skip=1)  # after its verdict, at RolledBack
    await crash(world)
    assert await world.results("shop") == {1: "Healthy", 2: "Failed", 3: "Pending"}
    outcome = await world.reconcile("shop")
    assert (outcome.release, outcome.verdict) == (3, "Healthy")
    assert await contiguous(world) == {1: "Healthy", 2: "RolledBack", 3: "Healthy"}
    st = await world.status("shop")
    assert st["release"] == 3 and st["held"]["revision"] == str(b)
    assert world.image() == "shop:1"
    rolled = [e for e in await world.events("shop") if e[1] == "RolledBack"]
    assert len(rolled) == 1 and "automatically" in rolled[0][2]


async def test_a_rollback_leftover_whose_target_is_gone_is_superseded(world: World) -> None:
    """The rollback's target record deleted before the restart: leftover 3 Superseded, no new record after it."""
    world.source.push("A", app("1"))
    world.create("shop", rollback={"auto": True})
    await world.reconcile("shop")
    world.source.push("B", app("2", image="shop:2:bad"))
    world.kube.fail_next("PATCH", record_path(2), Crash(), skip=1)
    await crash(world)
    await world.kube.delete(record_path(1))
    outcome = await world.reconcile("shop")
    assert outcome.release == 2
    results = await world.results("shop")
    assert set(results) == {2, 3} and results[3] == "Superseded"
    assert (await world.records("shop"))[3].reason == "its target's record is gone"
    again = await world.reconcile("shop")
    assert again.release == 2 and set(await world.results("shop")) == {2, 3}


async def test_a_failed_release_stays_failed_after_a_crash_before_its_status(world: World) -> None:
    """Release 2 Failed on record, status not yet written: the new process still reports it Failed."""
    world.source.push("A", app("1"))
    world.create("shop")
    await world.reconcile("shop")
    world.source.push("B", app("2", image="shop:2:bad"))
    world.kube.fail_next("PATCH", STATUS, Crash(), skip=1)  # the status write at the end of the reconcile
    await crash(world)
    assert await world.results("shop") == {1: "Healthy", 2: "Failed"}
    outcome = await world.reconcile("shop")
    assert outcome.verdict == "Failed"
    assert await contiguous(world) == {1: "Healthy", 2: "Failed"}
    ready = await world.condition("shop", "Ready")
    assert ready is not None and (ready["status"], ready["reason"]) == ("False", "HealthCheckFailed")
