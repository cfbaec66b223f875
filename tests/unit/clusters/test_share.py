"""A remote cluster's share of the workers: its runs beyond the share wait without a worker."""

from __future__ import annotations

import asyncio

from gitopsd.clusters import IN_CLUSTER
from gitopsd.clusters.share import Shares
from gitopsd.workqueue import Slots


async def test_a_cluster_over_its_share_waits_aside_and_another_cluster_gets_the_worker() -> None:
    """Two workers, share 1: a second run of cluster X waits without a worker; cluster Y's run works."""
    slots, shares = Slots(2), Shares(1)
    x_started = asyncio.Event()
    release_x = asyncio.Event()
    order: list[str] = []

    async def run(cluster: str, name: str, hold: asyncio.Event | None = None) -> None:
        async with slots.hold() as slot, shares.hold(cluster, slot.aside):
            order.append(name)
            if hold is not None:
                x_started.set()
                await hold.wait()

    first = asyncio.create_task(run("ns/x", "x1", release_x))
    await x_started.wait()
    second = asyncio.create_task(run("ns/x", "x2"))
    await asyncio.sleep(0.01)
    assert order == ["x1"] and slots.working == 1  # x2 gave its worker up while it waits
    await run("ns/y", "y1")  # gets the free worker at once
    assert order == ["x1", "y1"]
    release_x.set()
    await asyncio.gather(first, second)
    assert order == ["x1", "y1", "x2"]


async def test_stepping_aside_gives_the_share_up_too() -> None:
    """A run waiting aside (a health wait) does not count against its cluster's share."""
    slots, shares = Slots(2), Shares(1)
    waiting = asyncio.Event()
    done = asyncio.Event()

    async def health_wait() -> None:
        async with slots.hold() as slot, shares.hold("ns/x", slot.aside) as aside, aside():
            waiting.set()
            await done.wait()

    task = asyncio.create_task(health_wait())
    await waiting.wait()
    assert shares.working.get("ns/x") == 0
    async with slots.hold() as slot, shares.hold("ns/x", slot.aside):
        assert shares.working["ns/x"] == 1
    done.set()
    await task
    assert shares.working["ns/x"] == 0


async def test_in_cluster_has_no_share() -> None:
    """The management cluster's runs are not capped."""
    shares = Shares(1)
    slots = Slots(3)
    async with slots.hold() as a, shares.hold(IN_CLUSTER, a.aside), slots.hold() as b, shares.hold(IN_CLUSTER, b.aside):
        assert IN_CLUSTER not in shares.working
