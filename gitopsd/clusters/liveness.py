"""Is a target cluster still there, when nothing else would ask it?

An idle Environment sends its target nothing: live state comes from the watch cache and the
apply memo skips the dry-runs. A black-holed target (connections accepted, never answered)
then fails no request, and its watches stall without closing, so the Environment would stay
Ready on a cache that no longer hears anything. So a run on a remote target first asks
``check``: when the target has given no answer for ``window`` seconds, one cheap request
(``GET /version``, readable by every authenticated user: no RBAC beyond what the docs list)
goes out through the target's client, so its breaker and step-aside apply as to any request,
and a dead target gives ``ClusterUnreachable`` naming the cluster. Runs at the same time share
one probe in flight; a target answering other requests is never probed (at most one probe per
``window`` per cluster, whatever the number of Environments).

A probe that fails while the watch cache heard nothing since it started (no event, no bookmark,
no list) marks the cache **stale**: the next probe is made whatever the window, and when the
target answers again its watches are started over (``renew``) before the run reads live state.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
from collections.abc import Awaitable, Callable

import structlog

from gitopsd.clusters.aside import CURRENT, stay
from gitopsd.clusters.breaker import Breaker
from gitopsd.kube.errors import ApiError, Unreachable
from gitopsd.kube.port import KubeAPI

log = structlog.get_logger("gitopsd.clusters")

#: A target that answered within this many seconds is not probed.
WINDOW = 10.0
#: The probe's own timeout (a request's is 20 s): ``/version`` is answered from memory.
PROBE_TIMEOUT = 10.0
#: A waiter keeps its worker this long, then waits for the probe aside (without a worker).
QUICK = 1.0
PROBE_PATH = "/version"


async def _nothing() -> None:
    return None


def _never() -> float | None:
    return None


class Liveness:
    """The liveness check of one target (``Registry`` makes one per target; see the module docstring)."""

    def __init__(
        self,
        cluster: str,
        kube: KubeAPI,
        breaker: Breaker | None,
        *,
        clock: Callable[[], float],
        heard: Callable[[], float | None] = _never,
        renew: Callable[[], Awaitable[None]] = _nothing,
        window: float = WINDOW,
        timeout: float = PROBE_TIMEOUT,
    ) -> None:
        """``heard``: when the target's watch cache last heard from it (None: it watches nothing);
        ``renew``: start its watches over."""
        self.cluster = cluster
        self.kube = kube
        self.breaker = breaker
        self.clock = clock
        self.heard = heard
        self.renew = renew
        self.window = window
        self.timeout = timeout
        self.answered = clock()  # just built: the first run's own requests say whether it answers
        self.stale = False
        self.probes = 0  # made, for tests and benches
        self._task: asyncio.Task[None] | None = None

    def fresh(self) -> bool:
        """Answered within the window, its last request did not fail, its watch cache is not known
        stale: no probe needed."""
        breaker = self.breaker
        if self.stale or (breaker is not None and breaker.suspect):
            return False
        last = max(self.answered, breaker.answered if breaker is not None else -math.inf)
        return self.clock() - last < self.window

    async def check(self) -> None:
        """Return at once when ``fresh``; else probe (or join the probe in flight). Raises what
        the target's client raises for a target that does not answer (``ClusterUnreachable``)."""
        if self.fresh():
            return
        task = self._task
        if task is None or task.done():
            context = contextvars.copy_context()
            context.run(CURRENT.set, stay)  # the probe holds no worker: each waiter steps aside itself
            task = asyncio.get_running_loop().create_task(
                self._probe(), name=f"probe cluster {self.cluster}", context=context
            )
            task.add_done_callback(_retrieve)
            self._task = task
        if self.breaker is None or not self.breaker.suspect:
            done, _ = await asyncio.wait({task}, timeout=QUICK)
            if done:
                return task.result()
        async with CURRENT.get()():
            await asyncio.shield(task)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _probe(self) -> None:
        started = self.clock()
        self.probes += 1
        try:
            await self.kube.request("GET", PROBE_PATH, timeout=self.timeout)
        except ApiError:
            pass  # an answer (401, 403...): the cluster is there; the run's own requests say the rest
        except Unreachable:
            heard = self.heard()
            if not self.stale and (heard is None or heard < started):
                self.stale = True
                log.warning("cluster unreachable: its watched state is stale until it answers", cluster=self.cluster)
            raise
        self.answered = self.clock()
        if self.stale:
            self.stale = False
            log.info("cluster answers again: starting its watches over", cluster=self.cluster)
            try:
                await self.renew()
            except Exception:  # the run reads with GETs meanwhile; the next outage renews again
                log.exception("watches not renewed", cluster=self.cluster)


def _retrieve(task: asyncio.Task[None]) -> None:
    """Nobody may wait for a probe (every waiter cancelled): its failure is not an unhandled error."""
    if not task.cancelled():
        with contextlib.suppress(BaseException):
            task.exception()


__all__ = ["PROBE_PATH", "PROBE_TIMEOUT", "WINDOW", "Liveness"]
