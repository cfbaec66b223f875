"""The daemon's work queue: one queued entry per key, no key run twice at once, schedules superseded."""

from __future__ import annotations

import asyncio

import pytest

from gitopsd.workqueue import Slots, WorkQueue


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def _drain(q: WorkQueue) -> list[str]:
    out = []
    while q.depth:
        out.append(await q.get())
    return out


async def test_a_burst_of_adds_queues_a_key_once() -> None:
    """Adding a waiting key again does nothing: one reconcile for a burst of events."""
    depths: list[int] = []
    q = WorkQueue(on_depth=depths.append)
    for key in ("a", "b", "a", "a", "b"):
        q.add(key)
    assert await _drain(q) == ["a", "b"]
    assert depths[:5] == [1, 2, 2, 2, 2]


async def test_a_key_added_while_running_runs_again_after_not_alongside() -> None:
    """A change arriving mid-run is queued once the run is done, never concurrently."""
    q = WorkQueue()
    q.add("a")
    assert await q.get() == "a"
    q.add("a")
    q.add("a")
    assert q.depth == 0 and q.running == {"a"}
    assert q.done("a") is True
    assert await _drain(q) == ["a"]
    assert q.done("a") is False
    assert q.depth == 0 and q.running == frozenset()


async def test_a_later_schedule_supersedes_and_cancel_drops() -> None:
    """Only the newest schedule of a key fires; a cancelled one never does."""
    clock = Clock()
    q = WorkQueue(clock=clock)
    q.add_after("a", 10)
    q.add_after("a", 30)
    q.add_after("b", 5)
    q.add_after("c", 1)
    q.cancel("c")
    clock.now += 11
    assert q.move_due() == 5.0  # the timer's bound: a's next schedule is 19 s away
    assert await _drain(q) == ["b"]
    clock.now += 19
    assert q.move_due() == 5.0
    assert await _drain(q) == ["a"]
    assert q.scheduled("a") is None and q.scheduled("c") is None


async def test_the_timer_sleeps_until_the_next_due_key() -> None:
    """move_due returns the seconds to the next schedule when that is sooner than the bound."""
    clock = Clock()
    q = WorkQueue(clock=clock)
    q.add_after("a", 2.5)
    assert q.move_due() == 2.5
    assert q.depth == 0


async def test_run_timer_queues_a_key_when_due_and_stops() -> None:
    """The timer task moves a scheduled key into the queue and ends when told to stop."""
    q = WorkQueue()
    stop = asyncio.Event()
    timer = asyncio.create_task(q.run_timer(stop))
    q.add_after("a", 0.05)
    assert await asyncio.wait_for(q.get(), timeout=5) == "a"
    stop.set()
    q.add_after("wake", 0)  # wakes the timer so it sees stop
    await asyncio.wait_for(timer, timeout=5)


# -- Slots: runs doing work at once, and stepping aside while they only wait ---------------------


async def test_a_run_aside_lets_another_work_and_comes_back_in_turn() -> None:
    """One slot: B waits while A works; A steps aside, B works; A comes back only once B is done."""
    slots = Slots(1)
    order: list[str] = []
    a_waiting, b_done = asyncio.Event(), asyncio.Event()

    async def a() -> None:
        async with slots.hold() as slot:
            order.append("a works")
            async with slot.aside():
                order.append("a aside")
                a_waiting.set()
                await b_done.wait()
            order.append("a back")

    async def b() -> None:
        await a_waiting.wait()
        async with slots.hold():
            order.append("b works")
            assert slots.working == 1
            await asyncio.sleep(0.01)
            b_done.set()
            await asyncio.sleep(0.01)
            order.append("b done")

    await asyncio.wait_for(asyncio.gather(a(), b()), timeout=5)
    assert order == ["a works", "a aside", "b works", "b done", "a back"]
    assert (slots.working, slots.waiting) == (0, 0)


async def test_runs_beyond_the_slots_wait_and_are_counted() -> None:
    slots = Slots(2)
    release = asyncio.Event()
    peak = 0

    async def run() -> None:
        nonlocal peak
        async with slots.hold():
            peak = max(peak, slots.working)
            await release.wait()

    tasks = [asyncio.create_task(run()) for _ in range(5)]
    await asyncio.sleep(0.01)
    assert (slots.working, slots.waiting) == (2, 3)
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
    assert peak == 2 and (slots.working, slots.waiting) == (0, 0)


async def test_a_run_cancelled_while_coming_back_gives_back_nothing_it_does_not_hold() -> None:
    """Cancelled while waiting to come back from aside: the slot count stays right (no extra place)."""
    slots = Slots(1)
    aside, other_in = asyncio.Event(), asyncio.Event()

    async def parked() -> None:
        async with slots.hold() as slot, slot.aside():
            aside.set()
            await other_in.wait()

    async def other() -> None:
        await aside.wait()
        async with slots.hold():
            other_in.set()
            await asyncio.sleep(3600)

    p, o = asyncio.create_task(parked()), asyncio.create_task(other())
    await asyncio.wait_for(other_in.wait(), timeout=5)
    await asyncio.sleep(0.01)  # parked is now waiting to come back
    assert (slots.working, slots.waiting) == (1, 1)
    p.cancel()
    await asyncio.gather(p, return_exceptions=True)
    assert (slots.working, slots.waiting) == (1, 0)
    o.cancel()
    await asyncio.gather(o, return_exceptions=True)
    assert (slots.working, slots.waiting) == (0, 0)
    # Still exactly one place: a second holder waits while a first holds it.
    first_in = asyncio.Event()

    async def hold_forever() -> None:
        async with slots.hold():
            first_in.set()
            await asyncio.sleep(3600)

    h1 = asyncio.create_task(hold_forever())
    await first_in.wait()
    h2 = asyncio.create_task(hold_forever())
    await asyncio.sleep(0.01)
    assert (slots.working, slots.waiting) == (1, 1)
    for t in (h1, h2):
        t.cancel()
    await asyncio.gather(h1, h2, return_exceptions=True)


def test_slots_need_at_least_one_place() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Slots(0)
