"""The daemon's Prometheus metrics (prefix ``gitopsd_``), on a registry of their own.

A private registry, not the process-global one, so tests and benchmarks can run several
daemons in one process and read each one's figures.

The series of each Environment (about 30: a histogram's buckets, counters seeded at 0) are
plain numbers in a ``PerEnvironment`` family rather than prometheus_client metric objects,
which hold a dict, two locks and several attributes per label set: about 11 KiB per
Environment for the same exposition (measured with ``bench.memory``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import INF

from gitopsd.kube.watchcache import Figures

_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

# (environment label, status) of each Environment this daemon reconciles.
StatusSource = Callable[[], Iterable[tuple[str, Mapping[str, Any]]]]


class _StatusCollector(Collector):
    """Release number and hold per Environment, read at scrape time from the watched status.

    Read from status rather than counted where releases happen, so the figures are right after
    a restart or a leader change, and a standby (which reconciles nothing) exports none.
    """

    def __init__(self) -> None:
        self.source: StatusSource = lambda: ()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        release = GaugeMetricFamily(
            "gitopsd_environment_release",
            "The current release number (status.release); one more per release, rollbacks included.",
            labels=["environment"],
        )
        held = GaugeMetricFamily(
            "gitopsd_environment_held",
            "1 while a revision is held back after a failed release or a rollback (status.held), else 0.",
            labels=["environment"],
        )
        for environment, status in self.source():
            number = status.get("release")
            if isinstance(number, int):
                release.add_metric([environment], number)
            revision = (status.get("held") or {}).get("revision")
            held.add_metric([environment], 1 if revision else 0)
        yield release
        yield held


class _WatchCacheCollector(Collector):
    """The watch cache's figures per watched scope (kind, namespace ""=cluster-wide), read at scrape time."""

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[Figures]] = lambda: ()

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        labels = ["kind", "namespace"]
        objects = GaugeMetricFamily(
            "gitopsd_watch_cache_objects", "Managed objects held in the watch cache.", labels=labels
        )
        failed = GaugeMetricFamily(
            "gitopsd_watch_cache_failed",
            "1 while a watched kind cannot be listed (Forbidden, CRD deleted); retried later.",
            labels=labels,
        )
        relists = CounterMetricFamily(
            "gitopsd_watch_cache_relists",
            "Lists after the first (410 Gone: the watch fell behind compaction; or after a failure).",
            labels=labels,
        )
        restarts = CounterMetricFamily(
            "gitopsd_watch_restarts",
            "Watches reopened after a dropped connection, an error or an API server restart.",
            labels=labels,
        )
        for f in self.source():
            values = [f.kind, f.namespace]
            objects.add_metric(values, f.objects)
            failed.add_metric(values, 1 if f.failure else 0)
            relists.add_metric(values, f.relists)
            restarts.add_metric(values, f.restarts)
        yield from (objects, failed, relists, restarts)


Kind = Literal["counter", "gauge", "histogram"]


class PerEnvironment(Collector):
    """A counter, gauge or histogram whose series are lists of floats, one per label set.

    The same samples as prometheus_client's own (``_total`` and ``_created`` for a counter;
    cumulative ``_bucket``, ``_count``, ``_sum`` and ``_created`` for a histogram), and the same
    calls: ``labels(...).inc()``, ``.set()``, ``.observe()``, ``remove(...)``.
    """

    def __init__(
        self,
        kind: Kind,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        registry: CollectorRegistry,
        buckets: Sequence[float] = (),
    ) -> None:
        self.kind = kind
        self.name = name.removesuffix("_total") if kind == "counter" else name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds = (*(float(b) for b in buckets), INF) if kind == "histogram" else ()
        self._series: dict[tuple[str, ...], list[float]] = {}
        self._lock = threading.Lock()  # a scrape may run in another thread
        registry.register(self)

    def labels(self, *values: str) -> Series:
        """The series of ``values`` (created at 0 if new)."""
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected values for {list(self.labelnames)}, got {list(values)}")
        key = tuple(str(v) for v in values)
        with self._lock:
            if key not in self._series:
                self._series[key] = self._new()
        return Series(self, key)

    def remove(self, *values: str) -> None:
        """Drop the series of ``values`` (KeyError when there is none)."""
        with self._lock:
            del self._series[tuple(str(v) for v in values)]

    def remove_first(self, value: str) -> None:
        """Drop every series whose first label is ``value`` (an Environment's)."""
        with self._lock:
            for key in [k for k in self._series if k[0] == value]:
                del self._series[key]

    def _new(self) -> list[float]:
        if self.kind == "gauge":
            return [0.0]
        if self.kind == "counter":
            return [0.0, time.time()]
        return [0.0] * len(self.bounds) + [0.0, time.time()]  # bucket counts, sum, created

    def add(self, key: tuple[str, ...], amount: float) -> None:
        if self.kind == "histogram":
            raise TypeError(f"{self.name} is a histogram: observe() a value")
        if self.kind == "counter" and amount < 0:
            raise ValueError(f"{self.name}: a counter only goes up (got {amount})")
        with self._lock:
            self._series[key][0] += amount

    def set(self, key: tuple[str, ...], value: float) -> None:
        if self.kind != "gauge":
            raise TypeError(f"{self.name} is a {self.kind}: only a gauge is set")
        with self._lock:
            self._series[key][0] = float(value)

    def observe(self, key: tuple[str, ...], value: float) -> None:
        if self.kind != "histogram":
            raise TypeError(f"{self.name} is a {self.kind}: only a histogram observes")
        with self._lock:
            series = self._series[key]
            series[next(i for i, bound in enumerate(self.bounds) if value <= bound)] += 1
            series[-2] += value

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            series = [(key, list(values)) for key, values in self._series.items()]
        family = Metric(self.name, self.documentation, self.kind)
        for key, values in series:
            labels = dict(zip(self.labelnames, key, strict=True))
            if self.kind == "gauge":
                family.add_sample(self.name, labels, values[0])
            elif self.kind == "counter":
                family.add_sample(f"{self.name}_total", labels, values[0])
                family.add_sample(f"{self.name}_created", labels, values[1])
            else:
                count = 0.0
                for bound, n in zip(self.bounds, values, strict=False):
                    count += n
                    family.add_sample(f"{self.name}_bucket", {**labels, "le": _le(bound)}, count)
                family.add_sample(f"{self.name}_count", labels, count)
                family.add_sample(f"{self.name}_sum", labels, values[-2])
                family.add_sample(f"{self.name}_created", labels, values[-1])
        yield family


def _le(bound: float) -> str:
    """A bucket's ``le`` as prometheus_client writes it ("0.5", "10.0", "+Inf")."""
    return "+Inf" if bound == INF else repr(bound)


@dataclass(frozen=True, slots=True)
class Series:
    """One label set of a ``PerEnvironment`` family."""

    family: PerEnvironment
    key: tuple[str, ...]

    def inc(self, amount: float = 1) -> None:
        self.family.add(self.key, amount)

    def set(self, value: float) -> None:
        self.family.set(self.key, value)

    def observe(self, value: float) -> None:
        self.family.observe(self.key, value)


#: Every value of ``gitopsd_reconcile_total{result}`` and ``gitopsd_rollbacks_total{reason}``.
RECONCILE_RESULTS = ("applied", "unchanged", "failed", "suspended", "preempted")
ROLLBACK_REASONS = ("HealthCheckFailed", "HookFailed", "VerificationFailed", "Manual")


_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20)


class ClusterMetrics:
    """Per target cluster (label ``cluster``: the kubeConfig Secret's namespace/name, or in-cluster):
    reachable, request latency, requests that did not reach it. ``gitopsd.clusters.Registry`` calls it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.reachable_ = Gauge(
            "gitopsd_cluster_reachable",
            "1 while the target cluster answers (its last request reached it), else 0.",
            ["cluster"],
            registry=registry,
        )
        self.request_duration = Histogram(
            "gitopsd_cluster_request_duration_seconds",
            "Time of one request to a target cluster's API server (retries included).",
            ["cluster"],
            buckets=_REQUEST_BUCKETS,
            registry=registry,
        )
        self.errors = Counter(
            "gitopsd_cluster_errors",
            "Requests that did not reach the target cluster (refused, reset, TLS failure, timeout).",
            ["cluster"],
            registry=registry,
        )

    def request(self, cluster: str, seconds: float, reached: bool) -> None:
        self.request_duration.labels(cluster).observe(seconds)
        self.reachable_.labels(cluster).set(1 if reached else 0)  # as Ready says: from the first failure
        if not reached:
            self.errors.labels(cluster).inc()

    def reachable(self, cluster: str, up: bool) -> None:
        self.reachable_.labels(cluster).set(1 if up else 0)
        self.errors.labels(cluster)  # seeded at 0: the first error counts in rate()

    def forget(self, cluster: str) -> None:
        for family in (self.reachable_, self.request_duration, self.errors):
            with contextlib.suppress(KeyError):
                family.remove(cluster)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.reconcile_duration = PerEnvironment(
            "histogram",
            "gitopsd_reconcile_duration_seconds",
            "Time of one reconcile of one Environment, fetch to status.",
            ["environment"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.reconcile_total = PerEnvironment(
            "counter",
            "gitopsd_reconcile_total",
            "Reconciles by result (applied, unchanged, failed, suspended, preempted).",
            ["environment", "result"],
            registry=r,
        )
        self.git_fetch_duration = Histogram(
            "gitopsd_git_fetch_duration_seconds",
            "Time of one fetch into a repository's mirror (one per new commit, shared by its Environments).",
            ["repository"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.objects_applied = PerEnvironment(
            "counter",
            "gitopsd_objects_applied_total",
            "Objects created or changed by server-side apply.",
            ["environment", "action"],
            registry=r,
        )
        self.objects_pruned = PerEnvironment(
            "counter",
            "gitopsd_objects_pruned_total",
            "Objects deleted because they left Git.",
            ["environment"],
            registry=r,
        )
        self.drift_corrected = PerEnvironment(
            "counter",
            "gitopsd_drift_corrected_total",
            "Objects changed by hand in a field gitopsd manages, and restored.",
            ["environment"],
            registry=r,
        )
        self.ready = PerEnvironment(
            "gauge",
            "gitopsd_environment_ready",
            "1 when the Environment's Ready condition is True, else 0.",
            ["environment"],
            registry=r,
        )
        self.inventory_objects = PerEnvironment(
            "gauge", "gitopsd_inventory_objects", "Objects in the Environment's inventory.", ["environment"], registry=r
        )
        self.rollbacks = PerEnvironment(
            "counter",
            "gitopsd_rollbacks_total",
            "Rollbacks carried out, by reason (HealthCheckFailed, HookFailed, VerificationFailed: automatic; Manual).",
            ["environment", "reason"],
            registry=r,
        )
        self.verification_total = PerEnvironment(
            "counter",
            "gitopsd_verification_total",
            "Verification gates concluded, by result (Passed, Failed, Inconclusive, Cancelled).",
            ["environment", "result"],
            registry=r,
        )
        self.verification_samples = PerEnvironment(
            "counter",
            "gitopsd_verification_samples_total",
            "Verification samples (one instant query each), by outcome (Pass, Fail, NoData, Error).",
            ["environment", "outcome"],
            registry=r,
        )
        self.queue_depth = Gauge("gitopsd_work_queue_depth", "Environments waiting for a worker.", registry=r)
        self.drift_events = PerEnvironment(
            "counter",
            "gitopsd_drift_events_total",
            "Managed objects edited or deleted by someone else, seen by the watch (each queues a reconcile).",
            ["environment"],
            registry=r,
        )
        self.clusters = ClusterMetrics(r)
        self._watch_cache = _WatchCacheCollector()
        r.register(self._watch_cache)
        self._statuses = _StatusCollector()
        r.register(self._statuses)

    def seed(self, environment: str) -> None:
        """Create an Environment's counters at 0 (idempotent, cheap).

        Prometheus' ``increase()`` and ``rate()`` cannot see a series' first increment when the
        series appears already at 1, so the first rollback or failed reconcile of a daemon's
        lifetime would be invisible to alerts and the dashboard. Series that exist from the
        start at 0 make every increment count.
        """
        for result in RECONCILE_RESULTS:
            self.reconcile_total.labels(environment, result)
        for reason in ROLLBACK_REASONS:
            self.rollbacks.labels(environment, reason)

    def watch_statuses(self, source: StatusSource) -> None:
        """Export ``gitopsd_environment_release`` and ``gitopsd_environment_held`` from ``source``."""
        self._statuses.source = source

    def watch_cache(self, source: Callable[[], Iterable[Figures]]) -> None:
        """Export the watch cache's figures (``gitopsd_watch_cache_*``, ``gitopsd_watch_restarts_total``)."""
        self._watch_cache.source = source

    def forget(self, environment: str) -> None:
        """Drop the series of a deleted Environment."""
        for family in (
            self.reconcile_duration,
            self.reconcile_total,
            self.objects_applied,
            self.objects_pruned,
            self.drift_corrected,
            self.ready,
            self.inventory_objects,
            self.rollbacks,
            self.verification_total,
            self.verification_samples,
            self.drift_events,
        ):
            family.remove_first(environment)
