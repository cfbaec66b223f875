"""``wait_set``: an Event wait with a timeout that never swallows a cancellation."""

from __future__ import annotations

import asyncio

from gitopsd.aio import wait_set


async def test_true_when_set_false_on_timeout() -> None:
    event = asyncio.Event()
    assert await wait_set(event, 0.01) is False
    event.set()
    assert await wait_set(event, 5) is True


async def test_a_cancel_arriving_as_the_event_is_set_is_not_lost() -> None:
    """asyncio.wait_for on 3.11 returns normally here and the loop below would run on for ever."""
    event = asyncio.Event()
    woken = 0

    async def loop() -> None:
        nonlocal woken
        while True:
            event.clear()
            await wait_set(event, 100)
            woken += 1

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.01)
    event.set()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=5)
    assert done == {task} and task.cancelled(), "the cancellation was lost"
    assert woken == 0
