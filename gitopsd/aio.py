"""Waiting on an ``asyncio.Event`` with a timeout, without losing a cancellation.

On Python 3.11, ``asyncio.wait_for(event.wait(), t)`` returns normally when the task is
cancelled in the same loop iteration as the event is set: the cancellation is lost and the task
runs on (a sync preempted during its health wait finishes anyway, a watch never stops on
close). ``asyncio.timeout`` has no such gap (and is what ``wait_for`` became in 3.12).
"""

from __future__ import annotations

import asyncio


async def wait_set(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds have passed; True when it is set."""
    try:
        async with asyncio.timeout(max(0.0, timeout)):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True
