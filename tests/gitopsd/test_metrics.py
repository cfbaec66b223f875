"""gitopsd's Prometheus metrics: counters exist at 0 before their first increment."""

from __future__ import annotations

from typing import get_args

from prometheus_client import generate_latest

from gitopsd.metrics import RECONCILE_RESULTS, ROLLBACK_REASONS, Metrics
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
