"""Run one coroutine per item with at most ``limit`` in flight, keeping results in order.

A fixed pool of workers pulls the next item, rather than one task per item behind a semaphore:
thousands of objects then cost ``limit`` tasks, not thousands. Errors are returned in place of
results, so one refused object never hides what happened to the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def bounded(items: Sequence[T], fn: Callable[[T], Awaitable[R]], limit: int) -> list[R | Exception]:
    results: list[R | Exception] = [Exception("not run")] * len(items)
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < len(items):
            i = next_index
            next_index += 1
            try:
                results[i] = await fn(items[i])
            except Exception as exc:  # returned to the caller, which names the object
                results[i] = exc

    await asyncio.gather(*(worker() for _ in range(max(1, min(limit, len(items))))))
    return results
