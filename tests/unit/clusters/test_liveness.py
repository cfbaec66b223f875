"""The liveness check of a target: one probe per window, shared by concurrent runs, through the
breaker and step-aside; a failed probe with silent watches marks them stale, renewed on recovery."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gitopsd.clusters.aside import running
from gitopsd.clusters.breaker import Breaker
from gitopsd.clusters.errors import ClusterUnreachable
from gitopsd.clusters.liveness import PROBE_PATH, WINDOW, Liveness


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


class Target:
    """A target's client: answers ``/version`` when ``up``, else raises ClusterUnreachable; ``gate``
    holds every probe until set (a black hole); drives the breaker as ``TargetKube`` does."""

    def __init__(self, breaker: Breaker) -> None:
        self.breaker = breaker
        self.up = True
        self.gate = asyncio.Event()
        self.gate.set()
        self.paths: list[str] = []

    async def request(self, method: str, path: str, **_: Any) -> dict[str, str]:
        assert self.breaker.admit()
        self.paths.append(path)
        await self.gate.wait()
        if not self.up:
            self.breaker.failure("timed out")
            raise ClusterUnreachable("apps/prod", "unreachable: timed out")
        self.breaker.success()
        return {"gitVersion": "v1.31.0"}


def liveness(clock: Clock, heard: float | None = None) -> tuple[Liveness, Target, list[str]]:
    breaker = Breaker(clock=clock)
    target = Target(breaker)
    renewed: list[str] = []

    async def renew() -> None:
        renewed.append("renewed")

    live = Liveness("apps/prod", target, breaker, clock=clock, heard=lambda: heard, renew=renew)  # type: ignore[arg-type]
    return live, target, renewed


async def test_concurrent_runs_share_one_probe_and_an_idle_cluster_is_probed_once_per_window() -> None:
    """Fifty runs after the window: one GET /version; within the next window: none; a dead
    target: every waiter gets ClusterUnreachable from that one probe."""
    clock = Clock()
    live, target, _ = liveness(clock)
    await asyncio.gather(*(live.check() for _ in range(50)))
    assert target.paths == []  # just built: not asked
    clock.now += WINDOW + 1
    await asyncio.gather(*(live.check() for _ in range(50)))
    assert target.paths == [PROBE_PATH]
    clock.now += WINDOW - 1
    await asyncio.gather(*(live.check() for _ in range(50)))
    assert target.paths == [PROBE_PATH]
    target.up = False
    clock.now += 2
    results = await asyncio.gather(*(live.check() for _ in range(50)), return_exceptions=True)
    assert all(isinstance(r, ClusterUnreachable) and "apps/prod" in str(r) for r in results), results
    assert target.paths == [PROBE_PATH] * 2 and live.probes == 2


async def test_a_probe_of_a_suspect_cluster_waits_aside() -> None:
    """The last request failed: the run waits for the probe without its worker (as any request to
    a suspect cluster does), and the probe's failure reaches it."""
    clock = Clock()
    live, target, _ = liveness(clock)
    target.breaker.failure("connection refused")  # suspect
    target.up, steps = False, []
    target.gate.clear()  # black hole: the probe hangs until the gate opens

    @contextlib.asynccontextmanager
    async def aside() -> AsyncIterator[None]:
        steps.append("aside")
        try:
            yield
        finally:
            steps.append("back")

    async def run() -> None:
        with running(aside):
            await live.check()

    task = asyncio.create_task(run())
    for _ in range(5):
        await asyncio.sleep(0)
    assert steps == ["aside"] and target.paths == [PROBE_PATH]
    target.gate.set()
    with pytest.raises(ClusterUnreachable):
        await task
    assert steps == ["aside", "back"]


async def test_silent_watches_are_stale_and_renewed_when_the_cluster_answers_again() -> None:
    """A failed probe while the watch cache heard nothing since: the next run probes whatever the
    window, and the probe that succeeds starts the watches over, once."""
    clock = Clock()
    live, target, renewed = liveness(clock, heard=50.0)  # the watches last heard at 50
    clock.now += WINDOW + 1
    target.up = False
    with pytest.raises(ClusterUnreachable):
        await live.check()
    assert live.stale
    target.up = True
    clock.now += 1
    target.breaker.success()  # even a request that got through meanwhile does not lift it
    await live.check()
    assert renewed == ["renewed"] and not live.stale and live.probes == 2
    await live.check()
    assert renewed == ["renewed"] and live.probes == 2


async def test_watches_that_still_hear_from_the_cluster_are_not_renewed() -> None:
    """A probe that fails while the watches keep hearing (a slow /version, not a dead link): no renewal."""
    clock = Clock()
    live, target, renewed = liveness(clock, heard=1e9)
    clock.now += WINDOW + 1
    target.up = False
    with pytest.raises(ClusterUnreachable):
        await live.check()
    assert not live.stale
    target.up = True
    clock.now += 1
    await live.check()
    assert renewed == [] and live.probes == 2
