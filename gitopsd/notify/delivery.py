"""Sending one notifier's requests: a bounded queue, one sender, retries with backoff and jitter.

Each notifier has its own queue and sender task, so a slow or dead endpoint delays only its
own notifications, never another notifier's and never a reconcile (``offer`` only appends).
Requests leave in the order the events happened (a commit's ``pending`` before its ``success``).

Retried, with exponential backoff (``base`` doubling up to ``cap``, each delay drawn between
half and all of it, so many daemons do not retry in step): connection errors, timeouts,
408, 429 (after ``Retry-After`` when the server gives one, capped) and 5xx. Not retried: any
other 4xx (the request is wrong; sending it again will not help) and redirects. Each event is
sent until one attempt succeeds, so a receiver sees it once unless an answer is lost on the
way; the ``X-Event-Id`` header lets it drop such a duplicate.

A full queue drops the new event (counted and logged). At shutdown the queue gets ``drain``
seconds to empty; what is left is counted as dropped.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import structlog
from prometheus_client import CollectorRegistry, Counter

from gitopsd.lifecycle import LifecycleEvent
from gitopsd.notify.messages import Request

log = structlog.get_logger("gitopsd.notify")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retries: int = 6
    timeout: float = 10.0  # one attempt, connect to last byte
    base: float = 1.0
    cap: float = 60.0
    max_retry_after: float = 300.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds before retry number ``attempt + 1``."""
        if retry_after:
            told = _retry_after_seconds(retry_after)
            if told is not None:
                return min(max(told, 0.0), self.max_retry_after)
        ceiling = min(self.base * 2**attempt, self.cap)
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 (jitter, not crypto)


class NotificationMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.total = Counter(
            "gitopsd_notifications_total",
            "Notifications by notifier and result: delivered, failed (gave up), retried (one per retry), "
            "dropped (queue full or shutdown), skipped (commit status unchanged).",
            ["notifier", "result"],
            registry=registry,
        )


class Delivery:
    """The queue and sender of one notifier."""

    def __init__(
        self,
        name: str,
        render: Callable[[LifecycleEvent], Request | None],
        metrics: NotificationMetrics,
        *,
        policy: RetryPolicy | None = None,
        queue_size: int = 1000,
        drain: float = 5.0,
    ) -> None:
        self.name = name
        self.render = render
        self.metrics = metrics
        self.policy = policy or RetryPolicy()
        self.queue_size = queue_size
        self.drain = drain
        # Unbounded underneath (the bound is enforced in offer), so the stop marker always fits.
        self._queue: asyncio.Queue[LifecycleEvent | None] = asyncio.Queue()
        self._posted: dict[str, str] = {}  # commit-status key -> last state delivered
        self._deadline: float | None = None
        self._session: aiohttp.ClientSession | None = None

    def offer(self, event: LifecycleEvent) -> bool:
        """Queue ``event``; False (and counted as dropped) when the queue is full."""
        if self._queue.qsize() >= self.queue_size:
            self.metrics.total.labels(self.name, "dropped").inc()
            log.warning("notification dropped: queue full", notifier=self.name, event_type=event.type, id=event.id)
            return False
        self._queue.put_nowait(event)
        return True

    async def run(self, stop: asyncio.Event, session: aiohttp.ClientSession) -> None:
        self._session = session
        worker = asyncio.create_task(self._work(), name=f"notifier-{self.name}")
        try:
            await stop.wait()
        finally:
            self._deadline = time.monotonic() + self.drain
            self._queue.put_nowait(None)
            done, _ = await asyncio.wait({worker}, timeout=self.drain + 1.0)
            if not done:
                worker.cancel()
                await asyncio.gather(worker, return_exceptions=True)
            left = 0
            while not self._queue.empty():
                left += self._queue.get_nowait() is not None
            if left:
                self.metrics.total.labels(self.name, "dropped").inc(left)
                log.warning("notifications not sent before shutdown", notifier=self.name, count=left)

    async def _work(self) -> None:
        while True:
            if self._deadline is not None and time.monotonic() >= self._deadline:
                return  # out of drain time: what is left is counted as dropped
            event = await self._queue.get()
            if event is None:
                return
            try:
                request = self.render(event)
            except Exception:  # a bug in one message must not stop the notifier
                log.exception("notification not rendered", notifier=self.name, event_type=event.type)
                self.metrics.total.labels(self.name, "failed").inc()
                continue
            if request is None:
                continue
            if request.status_key is not None and self._posted.get(request.status_key[0]) == request.status_key[1]:
                self.metrics.total.labels(self.name, "skipped").inc()
                continue
            try:
                result = await self._send(request, event)
            except Exception:  # a bug must not stop this notifier's deliveries for good
                log.exception("notification crashed", notifier=self.name, event_type=event.type, id=event.id)
                result = "failed"
            self.metrics.total.labels(self.name, result).inc()
            if result == "delivered" and request.status_key is not None:
                self._posted[request.status_key[0]] = request.status_key[1]
                if len(self._posted) > 10_000:  # keep memory bounded: forget the oldest
                    self._posted.pop(next(iter(self._posted)))

    async def _send(self, request: Request, event: LifecycleEvent) -> str:
        assert self._session is not None
        policy = self.policy
        for attempt in range(policy.retries + 1):
            retry_after: str | None = None
            timeout = policy.timeout
            if self._deadline is not None:
                timeout = min(timeout, max(self._deadline - time.monotonic(), 0.1))
            try:
                async with self._session.request(
                    request.method,
                    request.url,
                    data=request.body,
                    headers=dict(request.headers),
                    timeout=aiohttp.ClientTimeout(total=timeout),
                    allow_redirects=False,
                ) as resp:
                    await resp.content.read(4096)
                    status = resp.status
                    retry_after = resp.headers.get("Retry-After")
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                problem = "timed out" if isinstance(exc, TimeoutError) else (str(exc) or type(exc).__name__)
                retryable = True
            else:
                if 200 <= status < 300:
                    log.info("notified", notifier=self.name, event_type=event.type, id=event.id, attempts=attempt + 1)
                    return "delivered"
                problem = f"HTTP {status}"
                retryable = status in (408, 429) or status >= 500
            delay = policy.delay(attempt, retry_after)
            out_of_time = self._deadline is not None and time.monotonic() + delay > self._deadline
            if not retryable or attempt == policy.retries or out_of_time:
                log.warning(
                    "notification failed",
                    notifier=self.name,
                    event_type=event.type,
                    id=event.id,
                    error=problem,
                    attempts=attempt + 1,
                    retryable=retryable,
                )
                return "failed"
            self.metrics.total.labels(self.name, "retried").inc()
            log.info(
                "notification retry", notifier=self.name, event_type=event.type, error=problem, retry_in=round(delay, 2)
            )
            await asyncio.sleep(delay)
        return "failed"  # not reached


def _retry_after_seconds(value: str) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date."""
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()
