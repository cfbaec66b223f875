"""The daemon's work queue: one queued entry per key, no key run twice at once, schedules superseded."""

from __future__ import annotations

import asyncio

from gitopsd.workqueue import WorkQueue


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
