"""The value cache: coalescing, background refresh, staleness bound, circuit breaking (fake clock, plain data)."""

from __future__ import annotations

import asyncio

import pytest

from metrics_adapter.cache import CircuitBreaker, Source, ValueCache
from metrics_adapter.errors import Unavailable, UpstreamError
from metrics_adapter.metrics import AdapterMetrics


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Upstream:
    """Counts calls; can be slowed or made to fail."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail: str | None = None
        self.outage = True
        self.delay = 0.0
        self.value = 1

    async def fetch(self) -> int:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise UpstreamError("prometheus http://p", self.fail, outage=self.outage)
        return self.value


async def _settled(cache: ValueCache) -> None:
    for _ in range(100):
        if all(e.task is None for e in cache.entries.values()):
            return
        await asyncio.sleep(0)


def _cache(clock: Clock, **kw: float) -> ValueCache:
    return ValueCache(AdapterMetrics(), refresh_interval=10, max_staleness=30, idle_after=60, clock=clock, **kw)


async def test_concurrent_identical_requests_share_one_upstream_call() -> None:
    """A hundred concurrent asks for the same key make one upstream call."""
    clock, up = Clock(), Upstream()
    up.delay = 0.05
    cache, src = _cache(clock), Source("prometheus http://p")
    results = await asyncio.gather(*(cache.get("q", src, up.fetch) for _ in range(100)))
    assert up.calls == 1
    assert {r.value for r in results} == {1}


async def test_values_are_served_from_memory_and_refreshed_in_the_background() -> None:
    """Asks within the refresh interval hit memory; the background tick refreshes what was asked recently."""
    clock, up = Clock(), Upstream()
    cache, src = _cache(clock), Source("s")
    assert (await cache.get("q", src, up.fetch)).value == 1
    up.value = 2
    clock.now += 5
    assert (await cache.get("q", src, up.fetch)).value == 1  # from memory, no call
    assert up.calls == 1
    clock.now += 6  # past the refresh interval since the last attempt
    cache.tick()
    await _settled(cache)
    assert up.calls == 2
    assert (await cache.get("q", src, up.fetch)).value == 2


async def test_upstream_calls_do_not_grow_with_the_number_of_askers() -> None:
    """Over a simulated minute, 1000 askers of one key cost as many calls as one asker: one per refresh."""
    clock, up = Clock(), Upstream()
    cache, src = _cache(clock), Source("s")
    for _second in range(60):
        await asyncio.gather(*(cache.get("q", src, up.fetch) for _ in range(1000)))
        clock.now += 1
        cache.tick()
        await _settled(cache)
    assert up.calls <= 7  # the first fetch plus one per 10 s refresh


async def test_stale_values_are_refused_naming_the_source() -> None:
    """When refreshing fails past max staleness, the request gets 503 naming the source and the error."""
    clock, up = Clock(), Upstream()
    cache, src = _cache(clock), Source("prometheus http://p")
    await cache.get("q", src, up.fetch)
    up.fail = "unreachable: connection refused"
    clock.now += 20
    assert (await cache.get("q", src, up.fetch)).value == 1  # old but within bounds
    clock.now += 15  # 35 s old now
    with pytest.raises(Unavailable) as err:
        await cache.get("q", src, up.fetch)
    assert err.value.source == "prometheus http://p"
    assert "older than the 30s allowed" in err.value.message
    assert "connection refused" in err.value.message
    up.fail = None
    assert (await cache.get("q", src, up.fetch)).value == 1  # recovers as soon as the source answers


async def test_never_fetched_value_reports_the_first_error() -> None:
    """A key whose first fetch fails is a 503 with the upstream's reason."""
    clock, up = Clock(), Upstream()
    up.fail = "HTTP 503 from /api/v1/query"
    with pytest.raises(Unavailable, match="no value yet: HTTP 503"):
        await _cache(clock).get("q", Source("s"), up.fetch)


async def test_slow_upstream_is_cut_off_by_the_source_timeout() -> None:
    """A source that does not answer within its timeout fails the request instead of hanging it."""
    up = Upstream()
    up.delay = 5
    cache = ValueCache(AdapterMetrics(), refresh_interval=1, max_staleness=2)
    with pytest.raises(Unavailable, match=r"no answer within 0\.1s"):
        await cache.get("q", Source("s", timeout=0.1), up.fetch)


async def test_circuit_opens_after_repeated_outages_and_probes_after_cooldown() -> None:
    """After `threshold` outages calls stop; after the cooldown one trial call goes through."""
    clock, up = Clock(), Upstream()
    up.fail = "unreachable"
    src = Source("s", breaker=CircuitBreaker(threshold=3, cooldown=5, clock=clock))
    cache = _cache(clock)
    for _ in range(3):
        with pytest.raises(Unavailable):
            await cache.get("q", src, up.fetch)
    assert up.calls == 3 and src.breaker.is_open
    with pytest.raises(Unavailable, match="consecutive failures"):
        await cache.get("q", src, up.fetch)
    assert up.calls == 3  # suspended
    clock.now += 6
    up.fail = None
    assert (await cache.get("q", src, up.fetch)).value == 1
    assert not src.breaker.is_open


async def test_rejected_queries_do_not_open_the_circuit() -> None:
    """A query the upstream rejects (HTTP 400) says nothing about its health."""
    clock, up = Clock(), Upstream()
    up.fail, up.outage = "HTTP 400: parse error", False
    src = Source("s", breaker=CircuitBreaker(threshold=2, clock=clock))
    cache = _cache(clock)
    for _ in range(5):
        with pytest.raises(Unavailable):
            await cache.get("bad", src, up.fetch)
    assert not src.breaker.is_open


async def test_keys_nobody_asks_for_are_dropped() -> None:
    """Keys not asked for within idle_after stop being refreshed and are forgotten."""
    clock, up = Clock(), Upstream()
    cache = _cache(clock)
    await cache.get("q", Source("s"), up.fetch)
    clock.now += 61
    cache.tick()
    assert "q" not in cache.entries


async def test_past_max_entries_the_least_recently_asked_is_dropped_and_counted() -> None:
    """max_entries=2: asking a, b, a, c drops b (not a, asked since), counted once; a is still served from memory."""
    clock, up = Clock(), Upstream()
    metrics = AdapterMetrics()
    cache = ValueCache(metrics, refresh_interval=10, max_staleness=30, idle_after=60, max_entries=2, clock=clock)
    src = Source("prometheus http://p")
    for key in ("a", "b", "a", "c"):
        await cache.get(key, src, up.fetch)
    assert list(cache.entries) == ["a", "c"]
    calls = up.calls
    await cache.get("a", src, up.fetch)
    assert up.calls == calls  # a hit, not a new question
    assert b"metrics_adapter_cache_evictions_total 1.0" in metrics.exposition()
    assert b'metrics_adapter_memory_entries{store="values"} 2.0' in metrics.exposition()


def test_max_entries_below_one_is_refused() -> None:
    """A cache that can hold nothing is a configuration error, said at construction."""
    with pytest.raises(ValueError, match="at least one entry"):
        ValueCache(AdapterMetrics(), max_entries=0)
