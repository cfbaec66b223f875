"""The daemon's work queue: each Environment queued at most once, never run twice at a time.

The rules client-go's rate-limited work queue taught controllers, for string keys:

* ``add(key)`` while the key waits does nothing (a burst of events is one reconcile);
  while it runs, the key is marked and queued again once that run is ``done`` (the change
  that arrived mid-run is never lost, and never runs concurrently with the run it follows).
* ``add_after(key, delay)`` schedules the next regular reconcile; a later schedule of the
  same key supersedes the earlier one, ``cancel(key)`` drops it.
* ``run_timer(stop)`` moves due keys into the queue; it sleeps until the next one is due.

``Slots`` bound how many runs do work at once. A run may step aside while it only waits (the
health gate polling a rollout), so a slow rollout does not keep another Environment waiting for
a worker; it takes a slot again, in turn, before it goes on.

No I/O and no Kubernetes here: the daemon decides what a key means.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections.abc import AsyncIterator, Callable

from gitopsd.aio import wait_set

#: The timer re-checks at least this often (a bound, in case of a missed wake-up).
_MAX_SLEEP = 5.0


class WorkQueue:
    def __init__(self, *, on_depth: Callable[[int], None] | None = None, clock: Callable[[], float] = time.monotonic):
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._running: set[str] = set()
        self._again: set[str] = set()
        self._due: list[tuple[float, str]] = []  # heap; superseded entries are skipped
        self._next_due: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._on_depth = on_depth or (lambda depth: None)
        self._clock = clock

    @property
    def depth(self) -> int:
        """Keys waiting for a worker."""
        return self._queue.qsize()

    @property
    def running(self) -> frozenset[str]:
        return frozenset(self._running)

    def add(self, key: str) -> None:
        """Queue ``key`` now (once; after the run in progress if it is running)."""
        if key in self._running:
            self._again.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)
        self._on_depth(self.depth)

    def add_after(self, key: str, delay: float) -> None:
        """Queue ``key`` in ``delay`` seconds, replacing an earlier schedule of it."""
        due = self._clock() + delay
        self._next_due[key] = due
        heapq.heappush(self._due, (due, key))
        self._wake.set()

    def cancel(self, key: str) -> None:
        """Drop the scheduled (not the queued or running) reconcile of ``key``."""
        self._next_due.pop(key, None)

    def scheduled(self, key: str) -> float | None:
        """When ``key`` is due (clock time), if it is scheduled."""
        return self._next_due.get(key)

    async def get(self) -> str:
        """The next key to work on; it counts as running until ``done`` or ``skip``."""
        key = await self._queue.get()
        self._queued.discard(key)
        self._running.add(key)
        self._on_depth(self.depth)
        return key

    def done(self, key: str) -> bool:
        """End the run of ``key``; True when it was added meanwhile (it is queued again)."""
        self._running.discard(key)
        if key in self._again:
            self._again.discard(key)
            self.add(key)
            return True
        return False

    def move_due(self) -> float:
        """Queue every key that is due; return the seconds until the next one (at most 5)."""
        now = self._clock()
        while self._due and self._due[0][0] <= now:
            due, key = heapq.heappop(self._due)
            if self._next_due.get(key) == due:  # else superseded by a later schedule, or cancelled
                del self._next_due[key]
                self.add(key)
        return min(self._due[0][0] - now, _MAX_SLEEP) if self._due else _MAX_SLEEP

    async def run_timer(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            timeout = self.move_due()
            self._wake.clear()
            await wait_set(self._wake, max(timeout, 0.01))


class Slot:
    """One run's claim on a ``Slots`` place, held from ``Slots.hold`` until the run ends."""

    def __init__(self, slots: Slots) -> None:
        self._slots = slots
        self.held = False

    @contextlib.asynccontextmanager
    async def aside(self) -> AsyncIterator[None]:
        """Give the place up while the body only waits; take one again (in turn) after it."""
        if not self.held:  # already aside (nested): nothing to give up
            yield
            return
        self._slots.give_up(self)
        try:
            yield
        finally:
            await self._slots.take(self)


class Slots:
    """At most ``size`` runs ``working`` at once; ``waiting`` counts the runs waiting for a place."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"slots: size must be at least 1, got {size}")
        self.size = size
        self._free = asyncio.Semaphore(size)
        self.waiting = 0
        self.working = 0

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[Slot]:
        slot = Slot(self)
        await self.take(slot)
        try:
            yield slot
        finally:
            if slot.held:  # not when cancelled while waiting to come back from ``aside``
                self.give_up(slot)

    async def take(self, slot: Slot) -> None:
        self.waiting += 1
        try:
            await self._free.acquire()
        finally:
            self.waiting -= 1
        slot.held = True
        self.working += 1

    def give_up(self, slot: Slot) -> None:
        slot.held = False
        self.working -= 1
        self._free.release()
