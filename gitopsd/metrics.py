"""The daemon's Prometheus metrics (prefix ``gitopsd_``), on a registry of their own.

A private registry, not the process-global one, so tests and benchmarks can run several
daemons in one process and read each one's figures.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


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
            "Reconciles by result (applied, unchanged, failed, suspended).",
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
        self.queue_depth = Gauge(
            "gitopsd_work_queue_depth", "Environments waiting for a worker.", registry=r
        )

    def forget(self, environment: str) -> None:
        """Drop the series of a deleted Environment."""
        for metric in (
            self.reconcile_duration,
            self.objects_pruned,
            self.drift_corrected,
            self.ready,
            self.inventory_objects,
        ):
            with contextlib.suppress(KeyError):
                metric.remove(environment)
