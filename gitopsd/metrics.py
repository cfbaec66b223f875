"""The daemon's Prometheus metrics (prefix ``gitopsd_``), on a registry of their own.

A private registry, not the process-global one, so tests and benchmarks can run several
daemons in one process and read each one's figures.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

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


#: Every value of ``gitopsd_reconcile_total{result}`` and ``gitopsd_rollbacks_total{reason}``.
RECONCILE_RESULTS = ("applied", "unchanged", "failed", "suspended", "preempted")
ROLLBACK_REASONS = ("HealthCheckFailed", "VerificationFailed", "Manual")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.reconcile_duration = Histogram(
            "gitopsd_reconcile_duration_seconds",
            "Time of one reconcile of one Environment, fetch to status.",
            ["environment"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.reconcile_total = Counter(
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
        self.objects_applied = Counter(
            "gitopsd_objects_applied_total",
            "Objects created or changed by server-side apply.",
            ["environment", "action"],
            registry=r,
        )
        self.objects_pruned = Counter(
            "gitopsd_objects_pruned_total", "Objects deleted because they left Git.", ["environment"], registry=r
        )
        self.drift_corrected = Counter(
            "gitopsd_drift_corrected_total",
            "Objects changed by hand in a field gitopsd manages, and restored.",
            ["environment"],
            registry=r,
        )
        self.ready = Gauge(
            "gitopsd_environment_ready",
            "1 when the Environment's Ready condition is True, else 0.",
            ["environment"],
            registry=r,
        )
        self.inventory_objects = Gauge(
            "gitopsd_inventory_objects", "Objects in the Environment's inventory.", ["environment"], registry=r
        )
        self.rollbacks = Counter(
            "gitopsd_rollbacks_total",
            "Rollbacks carried out, by reason (HealthCheckFailed for automatic ones, Manual).",
            ["environment", "reason"],
            registry=r,
        )
        self.verification_total = Counter(
            "gitopsd_verification_total",
            "Verification gates concluded, by result (Passed, Failed, Inconclusive, Cancelled).",
            ["environment", "result"],
            registry=r,
        )
        self.verification_samples = Counter(
            "gitopsd_verification_samples_total",
            "Verification samples (one instant query each), by outcome (Pass, Fail, NoData, Error).",
            ["environment", "outcome"],
            registry=r,
        )
        self.queue_depth = Gauge("gitopsd_work_queue_depth", "Environments waiting for a worker.", registry=r)
        self.drift_events = Counter(
            "gitopsd_drift_events_total",
            "Managed objects edited or deleted by someone else, seen by the watch (each queues a reconcile).",
            ["environment"],
            registry=r,
        )
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
        for metric in (
            self.reconcile_duration,
            self.objects_pruned,
            self.drift_corrected,
            self.ready,
            self.inventory_objects,
            self.drift_events,
        ):
            with contextlib.suppress(KeyError):
                metric.remove(environment)
        for counter, values in ((self.reconcile_total, RECONCILE_RESULTS), (self.rollbacks, ROLLBACK_REASONS)):
            for value in values:
                with contextlib.suppress(KeyError):
                    counter.remove(environment, value)
