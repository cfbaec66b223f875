"""Per-provider figures on ``/metrics``: calls, errors by kind, upstream latency, breaker state.

Registered on the adapter's own registry, so they appear next to its other metrics. The breaker
state is read at scrape time from the breakers themselves, so it can never disagree with them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Error kinds, as the ``kind`` label: a stable, small set an alert can name.
ERROR_KINDS = (
    "connect",  # refused, reset, DNS, TLS handshake
    "timeout",  # no complete answer within the provider's timeout
    "unauthorized",  # 401/403: the provider refused our credentials
    "status",  # another error status (5xx, 429, ...)
    "invalid",  # not an ExternalMetricValueList / APIResourceList
    "wrong_metric",  # items for another metric than the one asked
    "not_found",  # 404: the provider does not have the metric (not an outage)
    "bad_request",  # 400: the provider refused the request (not an outage)
    "circuit_open",  # refused without calling: the breaker is open
)
CLOSED, OPEN, HALF_OPEN = 0, 1, 2


class _BreakerCollector(Collector):
    def __init__(self, states: Callable[[], Iterable[tuple[str, int]]]) -> None:
        self._states = states

    def collect(self) -> Iterable[GaugeMetricFamily]:
        fam = GaugeMetricFamily(
            "metrics_adapter_federation_circuit_state",
            "Circuit breaker of each external provider: 0 closed, 1 open (calls refused), "
            "2 half-open (the next call probes the provider).",
            labels=["provider"],
        )
        for name, state in self._states():
            fam.add_metric([name], state)
        yield fam


class FederationMetrics:
    def __init__(self, registry: CollectorRegistry, states: Callable[[], Iterable[tuple[str, int]]]) -> None:
        self.requests = Counter(
            "metrics_adapter_federation_requests",
            "Calls to external providers, by provider and call (metric, discovery), refused ones included.",
            ["provider", "call"],
            registry=registry,
        )
        self.errors = Counter(
            "metrics_adapter_federation_errors",
            "Failed calls to external providers, by provider and kind: " + ", ".join(ERROR_KINDS) + ".",
            ["provider", "kind"],
            registry=registry,
        )
        self.latency = Histogram(
            "metrics_adapter_federation_upstream_duration_seconds",
            "Time an external provider took to answer (calls that reached it), by provider.",
            ["provider"],
            buckets=_BUCKETS,
            registry=registry,
        )
        registry.register(_BreakerCollector(states))
