"""Values served from memory: refreshed in the background, coalesced, bounded in age, per-source guarded.

Every distinct upstream question (a PromQL string, a queue) is one ``Entry``. A request reads
the entry's last value if it is younger than ``max_staleness``; otherwise it waits for a fetch,
joining the one already in flight if there is one, so identical concurrent questions cost one
upstream call. The background loop refreshes every entry asked for within ``idle_after`` once
per ``refresh_interval`` and forgets the others, so upstream load follows the number of distinct
questions, not the number of HPAs asking them.

At most ``max_entries`` questions are held: asking a new one beyond that drops the one asked
least recently (counted in ``metrics_adapter_cache_evictions_total``), so an authorized caller
asking ever-new questions (distinct selectors) costs a bounded amount of memory and upstream load.

A value older than ``max_staleness`` is never served: the request gets ``Unavailable`` naming the
source and the last error. Each source has a timeout, a concurrency limit and a circuit breaker
that stops calling a source after consecutive failures and retries it with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import structlog

from gitopsd.aio import wait_set
from metrics_adapter.errors import Unavailable, UpstreamError
from metrics_adapter.metrics import AdapterMetrics

T = TypeVar("T")
DEFAULT_MAX_ENTRIES = 10000
log = structlog.get_logger("metrics_adapter.cache")


@dataclass(slots=True)
class CircuitBreaker:
    """Closed → open after ``threshold`` consecutive failures → one trial call after the cooldown."""

    threshold: int = 5
    cooldown: float = 2.0
    max_cooldown: float = 30.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_until: float = 0.0
    _current_cooldown: float = 0.0
    _trial_in_flight: bool = False

    @property
    def is_open(self) -> bool:
        return self.failures >= self.threshold

    def allow(self) -> bool:
        if not self.is_open:
            return True
        if self.clock() >= self.opened_until and not self._trial_in_flight:
            self._trial_in_flight = True  # half-open: exactly one call probes the source
            return True
        return False

    def retry_in(self) -> float:
        return max(0.0, self.opened_until - self.clock())

    def success(self) -> None:
        self.failures, self.opened_until, self._current_cooldown, self._trial_in_flight = 0, 0.0, 0.0, False

    def failure(self) -> None:
        self.failures += 1
        self._trial_in_flight = False
        if self.failures >= self.threshold:
            self._current_cooldown = min(self.max_cooldown, (self._current_cooldown * 2) or self.cooldown)
            self.opened_until = self.clock() + self._current_cooldown


@dataclass(slots=True)
class Source:
    """One upstream (a Prometheus server, a broker queue): its timeout, limit and breaker."""

    name: str
    timeout: float = 5.0
    concurrency: int = 8
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    last_error: UpstreamError | None = None
    _sem: asyncio.Semaphore | None = None

    @property
    def semaphore(self) -> asyncio.Semaphore:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.concurrency)
        return self._sem


@dataclass(slots=True)
class Entry(Generic[T]):
    key: Hashable
    source: Source
    fetch: Callable[[], Awaitable[T]]
    value: T | None = None
    fetched_at: float | None = None  # clock() when the value arrived
    version: int = 0
    error: UpstreamError | None = None
    last_asked: float = 0.0
    attempted_at: float = float("-inf")
    task: asyncio.Task[None] | None = None


@dataclass(frozen=True, slots=True)
class Served(Generic[T]):
    value: T
    version: int
    age: float


class ValueCache:
    def __init__(
        self,
        metrics: AdapterMetrics,
        *,
        refresh_interval: float = 10.0,
        max_staleness: float = 30.0,
        idle_after: float = 120.0,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"the value cache holds at least one entry (max entries {max_entries})")
        if max_staleness < refresh_interval:
            raise ValueError(
                f"max staleness ({max_staleness:g}s) must not be below the refresh interval ({refresh_interval:g}s)"
            )
        self.metrics = metrics
        self.refresh_interval = refresh_interval
        self.max_staleness = max_staleness
        self.idle_after = idle_after
        self.clock = clock
        self.max_entries = max_entries
        # Least recently asked first: the order eviction follows.
        self.entries: OrderedDict[Hashable, Entry[Any]] = OrderedDict()
        metrics.watch_ages(self._ages)
        metrics.track_size("values", lambda: len(self.entries))

    def _ages(self) -> Iterator[tuple[str, float]]:
        now = self.clock()
        for e in list(self.entries.values()):
            if e.fetched_at is not None:
                yield e.source.name, now - e.fetched_at

    async def get(self, key: Hashable, source: Source, fetch: Callable[[], Awaitable[T]]) -> Served[T]:
        """The value for ``key``: from memory when young enough, else after (joining) a fetch."""
        now = self.clock()
        entry = self.entries.get(key)
        if entry is None:
            entry = Entry(key, source, fetch)
            self.entries[key] = entry
            self._evict_over_limit()
        else:
            self.entries.move_to_end(key)
        entry.last_asked = now
        if entry.value is not None and entry.fetched_at is not None and now - entry.fetched_at <= self.max_staleness:
            self.metrics.cache_hits.inc()
            return Served(entry.value, entry.version, now - entry.fetched_at)
        self.metrics.cache_misses.inc()
        if entry.task is not None:
            self.metrics.coalesced.inc()
        task = entry.task or self._start(entry)
        with contextlib.suppress(TimeoutError):
            # The fetch has its own timeout; this bound only guards against a wedged task.
            await asyncio.wait_for(asyncio.shield(task), source.timeout + 1.0)
        now = self.clock()
        if entry.value is not None and entry.fetched_at is not None and now - entry.fetched_at <= self.max_staleness:
            return Served(entry.value, entry.version, now - entry.fetched_at)
        raise self._unavailable(entry, now)

    def _evict_over_limit(self) -> None:
        # An evicted entry's fetch in flight is left to finish: requests waiting on it still get
        # its answer; it is only no longer remembered or refreshed.
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)
            self.metrics.cache_evictions.inc()

    def _unavailable(self, entry: Entry[Any], now: float) -> Unavailable:
        err = entry.error or entry.source.last_error
        reason = err.message if err else "no answer yet"
        if entry.fetched_at is None:
            return Unavailable(entry.source.name, f"no value yet: {reason}")
        self.metrics.stale.labels(entry.source.name).inc()
        age = now - entry.fetched_at
        return Unavailable(
            entry.source.name,
            f"newest value is {age:.0f}s old, older than the {self.max_staleness:g}s allowed (--max-staleness); "
            f"refreshing failed: {reason}",
        )

    def _start(self, entry: Entry[Any]) -> asyncio.Task[None]:
        entry.attempted_at = self.clock()
        entry.task = asyncio.get_running_loop().create_task(self._refresh(entry), name=f"refresh {entry.key!r:.80}")
        return entry.task

    async def _refresh(self, entry: Entry[Any]) -> None:
        src = entry.source
        try:
            if not src.breaker.allow():
                last = src.last_error.message if src.last_error else "repeated failures"
                entry.error = UpstreamError(
                    src.name,
                    f"not asked for {src.breaker.retry_in():.0f}s after {src.breaker.failures} consecutive failures "
                    f"(last: {last})",
                )
                return
            async with src.semaphore:
                self.metrics.upstream_queries.labels(src.name).inc()
                started = time.perf_counter()
                try:
                    value = await asyncio.wait_for(entry.fetch(), src.timeout)
                except TimeoutError:
                    self._failed(entry, UpstreamError(src.name, f"no answer within {src.timeout:g}s"))
                except UpstreamError as exc:
                    self._failed(entry, exc)
                except Exception as exc:  # a bug must not kill the refresher; it is reported like an outage
                    log.exception("refresh failed unexpectedly", key=str(entry.key)[:200])
                    self._failed(entry, UpstreamError(src.name, f"internal error: {exc.__class__.__name__}: {exc}"))
                else:
                    entry.value, entry.fetched_at, entry.error = value, self.clock(), None
                    entry.version += 1
                    src.breaker.success()
                    src.last_error = None
                    self.metrics.refreshes.labels(src.name).inc()
                finally:
                    self.metrics.upstream_seconds.labels(src.name).observe(time.perf_counter() - started)
                    self.metrics.circuit_open.labels(src.name).set(1 if src.breaker.is_open else 0)
        finally:
            entry.task = None

    def _failed(self, entry: Entry[Any], exc: UpstreamError) -> None:
        was_open = entry.source.breaker.is_open
        entry.error = exc
        self.metrics.upstream_errors.labels(entry.source.name).inc()
        if not exc.outage:
            entry.source.breaker.success()  # the source answered; only this question was bad
            log.info("upstream refused a call", source=entry.source.name, error=exc.message)
            return
        entry.source.last_error = exc
        entry.source.breaker.failure()
        if entry.source.breaker.is_open and not was_open:
            log.warning("upstream failing; calls suspended", source=entry.source.name, error=exc.message)
        else:
            log.info("upstream call failed", source=entry.source.name, error=exc.message)

    def tick(self) -> None:
        """One pass of the background loop: refresh what is due, drop what nobody asked for lately."""
        now = self.clock()
        for key, entry in list(self.entries.items()):
            if now - entry.last_asked > self.idle_after:
                if entry.task is not None:
                    entry.task.cancel()
                del self.entries[key]
                continue
            if entry.task is None and now - entry.attempted_at >= self.refresh_interval:
                self._start(entry)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until ``stop`` is set."""
        period = min(1.0, self.refresh_interval / 4)
        while not stop.is_set():
            self.tick()
            await wait_set(stop, period)
        for entry in self.entries.values():
            if entry.task is not None:
                entry.task.cancel()
