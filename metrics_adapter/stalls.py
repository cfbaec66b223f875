"""What holds up the one event loop, measured for ``/metrics``: garbage-collector pauses and loop lag.

Every request, watch and refresh of the adapter shares one asyncio loop, so anything that keeps
it busy for 20 ms delays every request that arrives meanwhile by up to 20 ms. Measured at 700
req/s (``bench.adapter_load``), the tail came from TLS handshakes of new client connections
(~2 ms of CPU each; a client opening 64 at once held the loop 137 ms), full collections of the
garbage collector (their cost grows with what is kept in memory: a pod list held by a watch
made them 10-30 ms), requests waiting for an expired authorization decision (auth.py now
renews it ahead), and the CPU being taken by other processes. Collections are visible here
directly, everything else that holds the loop through its delay:

- ``metrics_adapter_gc_pause_seconds{generation}``: each collection's duration, from
  ``gc.callbacks`` (two calls per collection; negligible next to a collection).
- ``metrics_adapter_event_loop_delay_seconds``: how late a 100 ms timer fires, every 100 ms;
  its tail is the longest wait a ready request had.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import structlog

from metrics_adapter.metrics import AdapterMetrics

log = structlog.get_logger("metrics_adapter")


class GcPauses:
    """Observe every garbage collection's duration, by generation, while installed."""

    def __init__(self, metrics: AdapterMetrics) -> None:
        self._children = [metrics.gc_pause.labels(str(g)) for g in range(3)]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._children[info["generation"]].observe(time.perf_counter() - self._started)

    def install(self) -> None:
        gc.callbacks.append(self)

    def remove(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)


async def watch_loop_lag(metrics: AdapterMetrics, stop: asyncio.Event, tick: float = 0.1, window: float = 10.0) -> None:
    """Sample how late the loop runs a timer; keep the worst of each ``window`` as a gauge too."""
    loop = asyncio.get_running_loop()
    worst, window_start = 0.0, loop.time()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(tick)
        lag = max(0.0, loop.time() - before - tick)
        metrics.loop_delay.observe(lag)
        worst = max(worst, lag)
        if lag > 0.5:
            log.warning("event loop was blocked", seconds=round(lag, 3))
        if loop.time() - window_start >= window:
            metrics.loop_lag.set(worst)
            worst, window_start = 0.0, loop.time()
