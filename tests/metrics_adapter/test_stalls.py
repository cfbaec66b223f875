"""The stall measurements on /metrics: garbage-collector pauses and event-loop delay."""

from __future__ import annotations

import asyncio
import gc
import time

from metrics_adapter.metrics import AdapterMetrics
from metrics_adapter.stalls import GcPauses, watch_loop_lag


def _sample(metrics: AdapterMetrics, name: str, labels: dict[str, str] | None = None) -> float:
    value = metrics.registry.get_sample_value(name, labels or {})
    return value or 0.0


def test_gc_pauses_observed_by_generation_while_installed() -> None:
    """A full collection is counted under generation 2 while installed, and no longer after remove()."""
    metrics = AdapterMetrics()
    pauses = GcPauses(metrics)
    pauses.install()
    try:
        gc.collect()
        gc.collect()
    finally:
        pauses.remove()
    counted = _sample(metrics, "metrics_adapter_gc_pause_seconds_count", {"generation": "2"})
    assert counted >= 2
    assert _sample(metrics, "metrics_adapter_gc_pause_seconds_sum", {"generation": "2"}) > 0
    assert pauses not in gc.callbacks
    gc.collect()
    assert _sample(metrics, "metrics_adapter_gc_pause_seconds_count", {"generation": "2"}) == counted
    assert b"metrics_adapter_gc_pause_seconds_bucket" in metrics.exposition()


def test_loop_delay_sees_a_blocked_loop() -> None:
    """A callback that blocks the loop for 60 ms shows up as a delay sample over 50 ms."""
    metrics = AdapterMetrics()

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(watch_loop_lag(metrics, stop, tick=0.01, window=0.05))
        await asyncio.sleep(0.03)
        asyncio.get_running_loop().call_soon(time.sleep, 0.06)  # blocks the loop
        await asyncio.sleep(0.15)
        stop.set()
        await task

    asyncio.run(main())
    total = _sample(metrics, "metrics_adapter_event_loop_delay_seconds_count")
    under_50ms = _sample(metrics, "metrics_adapter_event_loop_delay_seconds_bucket", {"le": "0.05"})
    assert total >= 3
    assert total - under_50ms >= 1
