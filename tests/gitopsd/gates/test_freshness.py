"""Verification samples against a real Prometheus: data older than the release is NoData, not Fail.

The scenario of issue 13: Prometheus goes down while the error ratio's last scraped value comes
from the previous (bad) release; the good release is applied during the outage; after the
restart Prometheus answers with that pre-outage value (its 5-minute lookback) until it scrapes
again. Those answers must be NoData; the first fresh scrapes give real samples again.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TypeVar, cast

import pytest

from e2e import procs, services
from e2e.exporter import Exporter, Series
from gitopsd.gates.evaluate import Reading, SampleOutcome, classify
from gitopsd.gates.prometheus import Connection, HttpPrometheus
from gitopsd.gates.spec import Range

pytestmark = pytest.mark.services

T = TypeVar("T")
MAX = Range(None, 0.01)


class App:
    """Counters of an application whose error share depends on the release it runs."""

    def __init__(self, run: str) -> None:
        self.labels = {"run": run}
        self.lock = threading.Lock()
        self.share = 0.5  # the bad release
        self.errors = self.requests = 0.0
        self.last = time.monotonic()

    def series(self) -> Iterable[Series]:
        with self.lock:
            now = time.monotonic()
            self.requests += 100 * (now - self.last)
            self.errors += 100 * (now - self.last) * self.share
            self.last = now
            return [
                ("gitopsd_test_requests_total", self.labels, self.requests),
                ("gitopsd_test_errors_total", self.labels, self.errors),
                ("gitopsd_test_error_ratio", self.labels, self.share),
            ]


@pytest.fixture
def outage_prometheus() -> Iterator[services.Prometheus]:
    """A Prometheus of this test's own, since the test kills and restarts it (and stops the restarted one)."""
    prom = services.start_prometheus(scrape_interval="1s")
    yield prom
    if all(p.alive() for p in prom.processes):
        prom.stop()
    else:  # killed and reaped by the test: its pid may belong to someone else by now
        shutil.rmtree(prom.directory, ignore_errors=True)


async def eventually(what: str, check: Callable[[], Awaitable[T | None]], timeout: float = 60) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last is not None:
            return last
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")


def outage(prom: services.Prometheus, during: Callable[[], None]) -> tuple[procs.Process, datetime]:
    """SIGKILL the server (nothing is written at exit), run ``during``, start it again on the same data and port.

    Returns the new server and the instant the release was applied, while the server was down.
    """
    old = prom.processes[0]
    os.killpg(old.pid, signal.SIGKILL)
    old.popen.wait(timeout=30)
    during()
    applied = datetime.now(UTC)
    argv = [str(a) for a in cast(list[str], old.popen.args)]
    new = procs.start("prometheus-restarted", argv, prom.directory / "logs")
    ready = f"{prom.url}/-/ready"
    procs.wait_until("restarted prometheus /-/ready", lambda: procs.http_ok(ready), timeout=60, watch=[new])
    return new, applied


async def test_pre_outage_values_are_no_data_until_prometheus_scrapes_again(
    outage_prometheus: services.Prometheus,
) -> None:
    """Right after a restart the bad release's 0.5 is served: NoData (not Fail); fresh scrapes pass."""
    prom, run = outage_prometheus, uuid.uuid4().hex[:10]
    app, exporter = App(run), Exporter().start()
    exporter.callbacks.append(app.series)
    gauge = f'max(gitopsd_test_error_ratio{{run="{run}"}})'
    ratio = (
        f'sum(rate(gitopsd_test_errors_total{{run="{run}"}}[1m]))'
        f' / sum(rate(gitopsd_test_requests_total{{run="{run}"}}[1m]))'
    )
    restarted: procs.Process | None = None
    try:
        prom.add_target(f"app-{run}", exporter.address)
        procs.wait_until("the bad release's ratio in Prometheus", lambda: prom.query(ratio), timeout=60)

        def good_release_unscraped() -> None:
            (prom.directory / "targets" / f"app-{run}.json").unlink()  # not scraped until the test says
            with app.lock:
                app.share = 0.001

        restarted, not_before = outage(prom, good_release_unscraped)
        async with HttpPrometheus.open(Connection(prom.url, timeout=10)) as client:
            for query in (gauge, ratio):
                served = await client.query(query)  # what the gate saw before this fix: the old value
                assert served.value == pytest.approx(0.5, abs=0.05)
                assert classify(served, MAX)[0] is SampleOutcome.FAIL
                reading = await client.query(query, not_before)
                outcome, message = classify(reading, MAX)
                assert outcome is SampleOutcome.NO_DATA, message
                assert "before" in message and "evidence starts then" in message

            prom.add_target(f"app-{run}", exporter.address)  # the application is scraped again

            async def fresh() -> Reading | None:
                reading = await client.query(gauge, not_before)
                return reading if not reading.stale else None

            reading = await eventually("a fresh scrape after the restart", fresh)
            assert classify(reading, MAX)[0] is SampleOutcome.PASS
            assert reading.value == pytest.approx(0.001)
            rate = await client.query(ratio, not_before)
            assert rate.value is not None and rate.stale == ""  # a fresh point behind the rate: it counts
    finally:
        if restarted is not None:
            procs.kill_group(restarted.pid)
        exporter.stop()


@pytest.fixture
def live(prometheus: services.Prometheus) -> Iterator[tuple[services.Prometheus, str]]:
    """Series scraped every second by the session's Prometheus, for 3 s at least: two gauges, a histogram."""
    run = uuid.uuid4().hex[:10]
    exporter = Exporter().start()
    labels = {"run": run}
    exporter.set("gitopsd_test_a", labels, 1.0)
    exporter.set("gitopsd_test_b", labels, 2.0)
    for le, count in (("0.1", 5.0), ("1", 9.0), ("+Inf", 10.0)):
        exporter.set("gitopsd_test_seconds_bucket", {**labels, "le": le}, count)
    prometheus.add_target(f"live-{run}", exporter.address)
    procs.wait_until(
        "the live series", lambda: prometheus.query(f'gitopsd_test_a{{run="{run}"}} offset 3s'), timeout=60
    )
    try:
        yield prometheus, run
    finally:
        (prometheus.directory / "targets" / f"live-{run}.json").unlink(missing_ok=True)
        exporter.stop()


async def test_the_age_is_told_for_assorted_queries_on_a_real_server(live: tuple[services.Prometheus, str]) -> None:
    """Quantiles, rates, label_replace, offset, @ end(): fresh data counts, data older than not_before does not."""
    prom, run = live
    a, b, seconds = (f'gitopsd_test_{m}{{run="{run}"}}' for m in ("a", "b", "seconds_bucket"))
    queries = [
        f"histogram_quantile(0.9, sum by (le) ({seconds}))",
        f"sum(rate({a}[1m])) + max({b}) / ON () GROUP_LEFT max({a})",
        f'max(label_replace({a}, "x", "$1", "run", "(.*)"))',
        f"max({a} - {a} offset 2s)",
        f"max({b} @ end())",
    ]
    async with HttpPrometheus.open(Connection(prom.url, timeout=10)) as client:
        for query in queries:
            now = datetime.now(UTC)
            recent = await client.query(query, now - timedelta(minutes=1))
            assert recent.value is not None and recent.stale == "", (query, recent)
            future = await client.query(query, now + timedelta(minutes=1))
            assert future.value is not None and "evidence starts then" in future.stale, (query, future)


async def test_what_cannot_be_told_is_never_counted(live: tuple[services.Prometheus, str]) -> None:
    """A selector over two metric names (timestamp() refuses it), a moved subquery, offset only: NoData."""
    prom, run = live
    queries = {
        f'sum({{__name__=~"gitopsd_test_a|gitopsd_test_b", run="{run}"}})': "cannot be told",
        f'max_over_time(max(gitopsd_test_a{{run="{run}"}})[1m:1s] offset 1s)': "cannot be told",
        f'max(gitopsd_test_a{{run="{run}"}} offset 1s)': "moved back in time",
    }
    async with HttpPrometheus.open(Connection(prom.url, timeout=10)) as client:
        for query, why in queries.items():
            reading = await client.query(query, datetime.now(UTC) - timedelta(minutes=1))
            outcome, message = classify(reading, Range(None, None))
            assert reading.value is not None and outcome is SampleOutcome.NO_DATA, (query, message)
            assert why in message, (query, message)
            assert (await client.query(query)).stale == ""  # without not_before nothing is checked
