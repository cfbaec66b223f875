"""The adapter's own metrics on ``/metrics`` (prefix ``metrics_adapter_``), via prometheus-client.

What an operator needs to trust a metrics server: how fast requests are answered (by route and
code), how often each upstream is asked and fails, how often values are refreshed and served
from memory, how old the served values are, whether a circuit is open, and what discovery
found. Each app gets its own registry, so several adapters can live in one test process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_STALL_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)


class _AgeCollector(Collector):
    def __init__(self, ages: Callable[[], Iterable[tuple[str, float]]]) -> None:
        self._ages = ages

    def collect(self) -> Iterable[GaugeMetricFamily]:
        oldest: dict[str, float] = {}
        for source, age in self._ages():
            oldest[source] = max(age, oldest.get(source, 0.0))
        fam = GaugeMetricFamily(
            "metrics_adapter_value_age_seconds",
            "Age of the oldest value held in memory for recently requested metrics, per source.",
            labels=["source"],
        )
        for source, age in sorted(oldest.items()):
            fam.add_metric([source], age)
        yield fam


class _SizeCollector(Collector):
    def __init__(self, sizes: dict[str, Callable[[], int]]) -> None:
        self._sizes = sizes

    def collect(self) -> Iterable[GaugeMetricFamily]:
        fam = GaugeMetricFamily(
            "metrics_adapter_memory_entries",
            "Entries held in each bounded in-memory store: values (--max-cached-values), and the paths, "
            "queries and selectors parsed for authorized requests.",
            labels=["store"],
        )
        for name, size in sorted(self._sizes.items()):
            fam.add_metric([name], size())
        yield fam


class AdapterMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._sizes: dict[str, Callable[[], int]] = {}
        r.register(_SizeCollector(self._sizes))
        self.request_seconds = Histogram(
            "metrics_adapter_request_duration_seconds",
            "Time to answer an API request, by route and HTTP status code.",
            ["route", "code"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_queries = Counter(
            "metrics_adapter_upstream_queries", "Calls made to an upstream, by source.", ["source"], registry=r
        )
        self.upstream_errors = Counter(
            "metrics_adapter_upstream_errors", "Upstream calls that failed, by source.", ["source"], registry=r
        )
        self.upstream_seconds = Histogram(
            "metrics_adapter_upstream_duration_seconds",
            "Duration of upstream calls, by source.",
            ["source"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.refreshes = Counter(
            "metrics_adapter_refreshes",
            "Background refreshes of values held in memory, by source.",
            ["source"],
            registry=r,
        )
        self.cache_hits = Counter(
            "metrics_adapter_cache_hits", "Requests answered from a value held in memory.", registry=r
        )
        self.cache_misses = Counter(
            "metrics_adapter_cache_misses", "Requests that had to wait for an upstream.", registry=r
        )
        self.cache_evictions = Counter(
            "metrics_adapter_cache_evictions",
            "Values dropped from memory, least recently asked first, because more distinct questions were "
            "asked than --max-cached-values.",
            registry=r,
        )
        self.coalesced = Counter(
            "metrics_adapter_coalesced_requests",
            "Requests that joined an upstream call already in flight instead of making their own.",
            registry=r,
        )
        self.stale = Counter(
            "metrics_adapter_stale_refusals",
            "Requests refused because the newest value was older than --max-staleness, by source.",
            ["source"],
            registry=r,
        )
        self.circuit_open = Gauge(
            "metrics_adapter_circuit_open",
            "1 while calls to a source are suspended after repeated failures.",
            ["source"],
            registry=r,
        )
        self.relists = Counter("metrics_adapter_relists", "Series discovery runs, by result.", ["result"], registry=r)
        self.discovered = Gauge(
            "metrics_adapter_discovered_metrics", "Metrics currently served, by API.", ["api"], registry=r
        )
        self.loop_lag = Gauge(
            "metrics_adapter_event_loop_lag_seconds",
            "Longest time the event loop was late in the last 10 s: how long a ready request could wait.",
            registry=r,
        )
        self.loop_delay = Histogram(
            "metrics_adapter_event_loop_delay_seconds",
            "How late a 100 ms timer of the event loop fired, sampled every 100 ms (stalls.py).",
            buckets=_STALL_BUCKETS,
            registry=r,
        )
        self.gc_pause = Histogram(
            "metrics_adapter_gc_pause_seconds",
            "Duration of each garbage collection, by generation (2 is a full collection).",
            ["generation"],
            buckets=_STALL_BUCKETS,
            registry=r,
        )
        self.authz = Counter(
            "metrics_adapter_authorization_checks",
            "Authorization decisions, by result and whether the decision came from the cache.",
            ["result", "cached"],
            registry=r,
        )

    def track_size(self, store: str, size: Callable[[], int]) -> None:
        """Report ``size()`` as ``metrics_adapter_memory_entries{store=...}`` at every scrape."""
        self._sizes[store] = size

    def watch_ages(self, ages: Callable[[], Iterable[tuple[str, float]]]) -> None:
        self.registry.register(_AgeCollector(ages))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
