"""Request traffic spread over a Deployment's Ready Pods, as per-pod counters for Prometheus.

The real-node HPA test needs a Prometheus series whose rate it controls and that carries the
real Pods' names (the adapter maps ``namespace``/``pod`` labels to Pods). :class:`Traffic` serves
a counter (``http_requests_total{namespace, pod}`` unless named) through :class:`e2e.exporter.Exporter`: a total rate
shared evenly by the Pods the test last saw Ready, as a load balancer would send it. A Pod's
series appears with its first request: a counter served flat at 0 before the traffic starts would
hold ``rate(...[W])`` below the new rate for a whole window W.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from e2e.exporter import Exporter, Series


class Traffic:
    """Counters that grow at ``rate`` requests per second in total, split over ``ready`` Pods."""

    def __init__(self, exporter: Exporter, namespace: str, series: str = "http_requests_total") -> None:
        self.namespace = namespace
        self.series = series
        self._lock = threading.Lock()
        self._rate = 0.0
        self._counters: dict[str, tuple[float, float]] = {}  # pod -> (count, when last advanced)
        exporter.callbacks.append(self._render)

    def set_rate(self, rate: float) -> None:
        with self._lock:
            self._advance(time.monotonic())
            self._rate = rate

    def ready(self, pods: Iterable[str]) -> None:
        """The Pods that receive traffic from now on (a Pod that left drops its series)."""
        names = set(pods)
        with self._lock:
            now = time.monotonic()
            self._advance(now)
            self._counters = {p: self._counters.get(p, (0.0, now)) for p in names}

    def _advance(self, now: float) -> None:
        if not self._counters:
            return
        share = self._rate / len(self._counters)
        self._counters = {p: (count + share * (now - last), now) for p, (count, last) in self._counters.items()}

    def _render(self) -> Iterable[Series]:
        with self._lock:
            self._advance(time.monotonic())
            counters = dict(self._counters)
        return [(self.series, {"namespace": self.namespace, "pod": p}, c) for p, (c, _) in counters.items() if c > 0]
