"""Delivery of one notifier's requests over real HTTP: retries, backoff, order, bounds, dedup, shutdown."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from gitopsd.lifecycle import LifecycleEvent
from gitopsd.notify import messages
from gitopsd.notify.delivery import Delivery, NotificationMetrics, RetryPolicy
from gitopsd.notify.messages import Request
from tests.gitopsd.notify.events import event


@dataclass
class Script:
    """A local endpoint: answers[i] is the status of the i-th request (then 200); delays per request."""

    answers: list[int | tuple[int, dict[str, str]]] = field(default_factory=list)
    delay: float = 0.0
    seen: list[tuple[float, str, bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append((time.monotonic(), request.headers.get("X-Event-Id", ""), body))
        if self.delay:
            await asyncio.sleep(self.delay)
        answer = self.answers.pop(0) if self.answers else 200
        status, headers = answer if isinstance(answer, tuple) else (answer, {})
        return web.Response(status=status, headers=headers, text="{}")


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[Script, str]]:
    script = Script()
    app = web.Application()
    app.router.add_post("/in", script.handle)
    app.router.add_get("/landing", script.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield script, f"http://127.0.0.1:{port}/in"
    await runner.cleanup()


def _delivery(
    url: str, *, retries: int = 3, timeout: float = 2.0, queue: int = 100, drain: float = 2.0,
    render: Callable[[LifecycleEvent], Request | None] | None = None,
) -> tuple[Delivery, NotificationMetrics]:  # fmt: skip
    metrics = NotificationMetrics(CollectorRegistry())
    policy = RetryPolicy(retries=retries, timeout=timeout, base=0.05, cap=0.2)
    make = render or (lambda e: messages.webhook(e, url, b"k"))
    return Delivery("n", make, metrics, policy=policy, queue_size=queue, drain=drain), metrics


def _count(metrics: NotificationMetrics, result: str) -> float:
    return metrics.total.labels("n", result)._value.get()


async def _run(delivery: Delivery, events: list[LifecycleEvent], until: Callable[[], bool], limit: float = 10) -> None:
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(delivery.run(stop, session))
        for e in events:
            delivery.offer(e)
        deadline = time.monotonic() + limit
        while not until() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        stop.set()
        await task


async def test_5xx_is_retried_until_accepted_once(endpoint: tuple[Script, str]) -> None:
    """503, 503, then 200: three attempts of the identical request, one delivery, two retries counted."""
    script, url = endpoint
    script.answers = [503, 503]
    delivery, metrics = _delivery(url)
    await _run(delivery, [event()], lambda: _count(metrics, "delivered") == 1)
    assert len(script.seen) == 3 and len({body for _, _, body in script.seen}) == 1
    assert (_count(metrics, "delivered"), _count(metrics, "retried"), _count(metrics, "failed")) == (1, 2, 0)


@pytest.mark.parametrize(("status", "attempts"), [(400, 1), (401, 1), (404, 1), (422, 1), (408, 2), (429, 2), (502, 2)])
async def test_which_statuses_are_retried(endpoint: tuple[Script, str], status: int, attempts: int) -> None:
    """Other 4xx give up at once; 408, 429 and 5xx are retried."""
    script, url = endpoint
    script.answers = [status]
    delivery, metrics = _delivery(url)
    await _run(delivery, [event()], lambda: _count(metrics, "delivered") + _count(metrics, "failed") == 1)
    assert len(script.seen) == attempts
    assert _count(metrics, "failed" if attempts == 1 else "delivered") == 1


async def test_redirects_are_not_followed(endpoint: tuple[Script, str]) -> None:
    """A 302 is a failure of its own, never a POST replayed somewhere else."""
    script, url = endpoint
    script.answers = [(302, {"Location": url.replace("/in", "/landing")})]
    delivery, metrics = _delivery(url)
    await _run(delivery, [event()], lambda: _count(metrics, "failed") == 1)
    assert len(script.seen) == 1


async def test_retry_after_is_honoured(endpoint: tuple[Script, str]) -> None:
    """429 with Retry-After: 1 → the next attempt waits about a second (not the 50 ms backoff)."""
    script, url = endpoint
    script.answers = [(429, {"Retry-After": "1"})]
    delivery, metrics = _delivery(url)
    await _run(delivery, [event()], lambda: _count(metrics, "delivered") == 1)
    assert len(script.seen) == 2 and script.seen[1][0] - script.seen[0][0] >= 0.9


async def test_timeouts_and_refused_connections_are_retried_then_given_up() -> None:
    """An endpoint that never answers, and a closed port: retries+1 attempts, then failed."""
    silent = await asyncio.start_server(lambda r, w: asyncio.sleep(30), "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    delivery, metrics = _delivery(f"http://127.0.0.1:{port}/x", retries=2, timeout=0.3)
    started = time.monotonic()
    await _run(delivery, [event()], lambda: _count(metrics, "failed") == 1)
    assert _count(metrics, "retried") == 2 and time.monotonic() - started >= 0.9
    silent.close()
    delivery, metrics = _delivery("http://127.0.0.1:9/closed", retries=1)
    await _run(delivery, [event()], lambda: _count(metrics, "failed") == 1)
    assert _count(metrics, "retried") == 1


async def test_order_is_kept_through_retries(endpoint: tuple[Script, str]) -> None:
    """Events are delivered in the order offered even when the first needs retries."""
    script, url = endpoint
    script.answers = [500, 500]
    events = [event("deploy.started"), event("deploy.succeeded"), event("health.failed"), event("revision.held")]
    delivery, metrics = _delivery(url)
    await _run(delivery, events, lambda: _count(metrics, "delivered") == 4)
    accepted = [eid for _, eid, _ in script.seen[2:]]
    assert accepted == [e.id for e in events]


async def test_a_full_queue_drops_new_events(endpoint: tuple[Script, str]) -> None:
    """Queue of 2 behind a slow endpoint: the rest are dropped and counted, nothing blocks."""
    script, url = endpoint
    script.delay = 0.5
    delivery, metrics = _delivery(url, queue=2)
    offered = [delivery.offer(event(revision=f"main@sha1:{i:040x}")) for i in range(5)]
    assert offered == [True, True, False, False, False] and _count(metrics, "dropped") == 3


async def test_unchanged_commit_status_is_not_posted_again(endpoint: tuple[Script, str]) -> None:
    """The same state for the same commit and context is sent once; a new state is sent."""
    _, url = endpoint
    base = url.removesuffix("/in")

    def render(e: LifecycleEvent) -> Request | None:
        request = messages.commit_status("github", e, base, b"T", "org/shop")
        assert request is not None
        return Request(request.method, url, request.headers, request.body, request.event_id, request.status_key)

    delivery, metrics = _delivery(url, render=render)
    events = [event("deploy.started"), event("freeze.blocked"), event("deploy.succeeded"), event("deploy.succeeded")]
    await _run(delivery, events, lambda: _count(metrics, "delivered") + _count(metrics, "skipped") == 4)
    assert (_count(metrics, "delivered"), _count(metrics, "skipped")) == (2, 2)


async def test_shutdown_drains_then_counts_the_rest_as_dropped(endpoint: tuple[Script, str]) -> None:
    """At stop the queue gets the drain time; what is still queued after it is dropped (counted), not lost silently."""
    script, url = endpoint
    script.delay = 0.4
    delivery, metrics = _delivery(url, drain=0.5, timeout=5)
    await _run(delivery, [event(revision=f"main@sha1:{i:040x}") for i in range(6)], lambda: True, limit=0)
    assert _count(metrics, "delivered") >= 1
    assert _count(metrics, "delivered") + _count(metrics, "dropped") + _count(metrics, "failed") == 6
    assert _count(metrics, "dropped") >= 3


def test_backoff_is_exponential_with_jitter_and_caps() -> None:
    """Delay n in [base·2ⁿ/2, base·2ⁿ], capped; Retry-After seconds or HTTP date win (bounded)."""
    policy = RetryPolicy(base=1.0, cap=8.0, max_retry_after=60)
    for attempt in range(6):
        ceiling = min(2.0**attempt, 8.0)
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays) and len(set(delays)) > 1
    assert policy.delay(0, "7") == 7 and policy.delay(0, "9999") == 60 and policy.delay(0, "-3") == 0
    date = email.utils.formatdate(time.time() + 20, usegmt=True)
    assert 15 <= policy.delay(0, date) <= 21
    assert 0.5 <= policy.delay(0, "soon") <= 1.0


async def test_a_render_error_fails_one_event_only(endpoint: tuple[Script, str]) -> None:
    """A notifier whose secret vanished fails that event (logged), and keeps delivering the next ones."""
    _, url = endpoint
    calls: list[Any] = []

    def render(e: LifecycleEvent) -> Request | None:
        calls.append(e)
        if len(calls) == 1:
            raise LookupError("secret gone")
        return messages.webhook(e, url, b"k")

    delivery, metrics = _delivery(url, render=render)
    await _run(delivery, [event("deploy.started"), event()], lambda: _count(metrics, "delivered") == 1)
    assert (_count(metrics, "failed"), _count(metrics, "delivered")) == (1, 1)
