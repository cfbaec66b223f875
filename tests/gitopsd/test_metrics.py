"""gitopsd's Prometheus metrics: counters exist at 0 before their first increment; per-Environment
families expose what prometheus_client would."""

from __future__ import annotations

from typing import get_args

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from gitopsd.metrics import RECONCILE_RESULTS, ROLLBACK_REASONS, Metrics, PerEnvironment
from gitopsd.outcome import Result_


def _samples(metrics: Metrics) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_seed_creates_every_result_and_reason_at_zero() -> None:
    """After seed(), each reconcile result and rollback reason of the Environment is a 0 series."""
    m = Metrics()
    m.seed("apps.prod")
    samples = _samples(m)
    for result in RECONCILE_RESULTS:
        assert samples[f'gitopsd_reconcile_total{{environment="apps.prod",result="{result}"}}'] == 0
    for reason in ROLLBACK_REASONS:
        assert samples[f'gitopsd_rollbacks_total{{environment="apps.prod",reason="{reason}"}}'] == 0


def test_seed_keeps_counts_and_forget_drops_the_series() -> None:
    """Seeding again does not reset a count; forgetting the Environment removes its seeded series."""
    m = Metrics()
    m.seed("apps.prod")
    m.rollbacks.labels("apps.prod", "HealthCheckFailed").inc()
    m.seed("apps.prod")
    assert _samples(m)['gitopsd_rollbacks_total{environment="apps.prod",reason="HealthCheckFailed"}'] == 1
    m.forget("apps.prod")
    assert not [k for k in _samples(m) if 'environment="apps.prod"' in k]


def test_seeded_results_cover_every_outcome() -> None:
    """The seeded results are exactly the results a reconcile can report."""
    assert set(RECONCILE_RESULTS) == set(get_args(Result_))


def _without_created(registry: CollectorRegistry) -> list[str]:
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


def test_per_environment_families_expose_what_prometheus_client_does() -> None:
    """A PerEnvironment counter, gauge and histogram expose the same samples as prometheus_client's own."""
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    runs = PerEnvironment("counter", "t_runs_total", "Runs.", ["environment", "result"], registry=ours)
    ready = PerEnvironment("gauge", "t_ready", "Ready.", ["environment"], registry=ours)
    seconds = PerEnvironment("histogram", "t_seconds", "Time.", ["environment"], buckets=(0.5, 1, 10), registry=ours)
    their_runs = Counter("t_runs_total", "Runs.", ["environment", "result"], registry=theirs)
    their_ready = Gauge("t_ready", "Ready.", ["environment"], registry=theirs)
    their_seconds = Histogram("t_seconds", "Time.", ["environment"], buckets=(0.5, 1, 10), registry=theirs)
    for counter in (runs, their_runs):
        counter.labels("ops.a", "applied").inc(2)
        counter.labels("ops.a", "failed")
    for gauge in (ready, their_ready):
        gauge.labels("ops.a").set(1)
    for histogram in (seconds, their_seconds):
        for value in (0.2, 1, 7, 60):
            histogram.labels("ops.a").observe(value)
    assert _without_created(ours) == _without_created(theirs)
    created = [line for line in generate_latest(ours).decode().splitlines() if line.startswith("t_runs_created")]
    assert len(created) == 2, "a counter's series carry their creation time, as prometheus_client's do"


def test_forget_drops_every_series_of_the_environment() -> None:
    """Applied-object and verification series of a deleted Environment go too; another's stay."""
    m = Metrics()
    for env in ("apps.gone", "apps.kept"):
        m.seed(env)
        m.objects_applied.labels(env, "created").inc(4)
        m.verification_samples.labels(env, "Pass").inc()
        m.reconcile_duration.labels(env).observe(1.5)
    m.forget("apps.gone")
    samples = _samples(m)
    assert not [k for k in samples if 'environment="apps.gone"' in k]
    assert samples['gitopsd_objects_applied_total{action="created",environment="apps.kept"}'] == 4


def test_a_counter_refuses_to_go_down_and_labels_are_checked() -> None:
    """A negative increment and a wrong number of label values are refused, naming the metric."""
    m = Metrics()
    with pytest.raises(ValueError, match="gitopsd_objects_pruned"):
        m.objects_pruned.labels("apps.prod").inc(-1)
    with pytest.raises(ValueError, match="gitopsd_reconcile"):
        m.reconcile_total.labels("apps.prod")
