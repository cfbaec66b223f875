"""Each remote cluster's share of the daemon's workers: a dead or slow cluster never holds them all.

The daemon's ``Slots`` bound how many runs work at once. ``Shares`` bound, per remote
cluster, how many of those working runs are its Environments' (``limit``, by default half the
workers). A run over its cluster's share waits for it *aside* (without a worker), and a run
that steps aside (a health wait, a request to a suspect cluster) gives its share up too, so
the share counts only runs that hold a worker. The management cluster (``in-cluster``) has no
share: when it is down, nothing works anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from gitopsd.clusters import IN_CLUSTER
from gitopsd.clusters.aside import Aside


class Shares:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"cluster share: limit must be at least 1, got {limit}")
        self.limit = limit
        self._free: dict[str, asyncio.Semaphore] = {}
        self.working: dict[str, int] = {}

    def _semaphore(self, cluster: str) -> asyncio.Semaphore:
        sem = self._free.get(cluster)
        if sem is None:
            sem = self._free[cluster] = asyncio.Semaphore(self.limit)
        return sem

    @contextlib.asynccontextmanager
    async def hold(self, cluster: str, aside: Aside) -> AsyncIterator[Aside]:
        """Hold a place of ``cluster``'s share for the run; yields the run's ``Aside`` (which
        gives the place up with the worker)."""
        if cluster == IN_CLUSTER:
            yield aside
            return
        sem = self._semaphore(cluster)
        held = False

        async def take() -> None:
            nonlocal held
            if sem.locked():
                async with aside():  # over the share: wait without a worker
                    await sem.acquire()
            else:
                await sem.acquire()
            held = True
            self.working[cluster] = self.working.get(cluster, 0) + 1

        def give() -> None:
            nonlocal held
            if held:
                held = False
                self.working[cluster] -= 1
                sem.release()

        @contextlib.asynccontextmanager
        async def step_aside() -> AsyncIterator[None]:
            if not held:  # nested: already aside
                async with aside():
                    yield
                return
            give()
            async with aside():
                try:
                    yield
                finally:
                    await sem.acquire()  # still aside: a worker is taken only with the share
                    held_again()

        def held_again() -> None:
            nonlocal held
            held = True
            self.working[cluster] = self.working.get(cluster, 0) + 1

        await take()
        try:
            yield step_aside
        finally:
            give()


__all__ = ["Shares"]
