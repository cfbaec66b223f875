"""A sync cancelled while it waits for health: preempted by a rollback request, or cut by shutdown."""

from __future__ import annotations

import asyncio

import pytest

from gitopsd.outcome import Outcome
from tests.fakes import rolled_out
from tests.unit.decisions.conftest import World
from tests.unit.decisions.ports import app


async def slow_release_2_in_flight(world: World) -> asyncio.Task[Outcome]:
    """Release 1 deployed; B's Deployment never rolls out by itself; returns the reconcile of B, mid-way."""
    world.source.push("A", app("1"))
    world.create("shop", wait={"timeout": "30s"})
    await world.reconcile("shop")
    world.source.push("B", app("2", image="shop:2:slow"))
    task = asyncio.create_task(world.reconcile("shop"))
    for _ in range(1000):  # until release 2 is current in status (write-order step 3) and applied
        await asyncio.sleep(0)
        if world.image() == "shop:2:slow":
            break
    assert world.image() == "shop:2:slow" and not task.done()
    return task


async def test_a_rollback_request_preempts_the_sync_in_flight(world: World) -> None:
    """The sync of release 2 is cancelled for the request; the restore is release 3 and release 2 RolledBack."""
    task = await slow_release_2_in_flight(world)
    token = await world.ask_rollback("shop")
    uid = (await world.env("shop")).uid
    assert world.reconciler.preempt(uid)
    assert (await task).result == "preempted"
    outcome = await world.reconcile("shop")
    assert (outcome.release, outcome.verdict) == (3, "Healthy")
    assert await world.results("shop") == {1: "Healthy", 2: "RolledBack", 3: "Healthy"}
    st = await world.status("shop")
    assert st["lastHandledRollback"]["token"] == token and st["held"]["release"] == 2
    assert world.image() == "shop:1"


async def test_a_sync_cut_by_shutdown_is_finished_by_the_next_process(world: World) -> None:
    """Cancelled mid health wait (SIGTERM): the next process gates release 2 again, with no new record."""
    task = await slow_release_2_in_flight(world)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await world.results("shop") == {1: "Healthy", 2: "Pending"}
    live = world.live("Deployment", "web")
    assert live is not None
    world.kube.set_status(world.kube_ref("Deployment", "web"), rolled_out(live))
    world.restart()
    outcome = await world.reconcile("shop")
    assert (outcome.release, outcome.verdict) == (2, "Healthy")
    assert await world.results("shop") == {1: "Healthy", 2: "Healthy"}
