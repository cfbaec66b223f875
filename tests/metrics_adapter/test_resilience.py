"""Upstream outages: Prometheus or a broker unreachable gives a 503 naming it, never a crash, and serving recovers.

A second adapter (not registered with the aggregator, asked directly as the aggregator would)
reaches the real Prometheus and RabbitMQ through TCP proxies the test takes down and brings
back on the same port. It even starts while Prometheus is unreachable.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from e2e import procs
from e2e.adapter import RunningAdapter, start_adapter
from e2e.tcpproxy import TcpProxy
from tests.metrics_adapter.conftest import Stack

pytestmark = [pytest.mark.cluster, pytest.mark.services]

CONFIG = """
rules:
- seriesQuery: '{__name__="e2e_resilience_gauge",namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)
queues:
- name: proxied_backlog
  rabbitmq: {url: "RABBIT", vhost: /, queue: resilience, count: ready}
"""
POD = "/apis/custom.metrics.k8s.io/v1beta1/namespaces/res/pods/p1/e2e_resilience_gauge"
QUEUE = "/apis/external.metrics.k8s.io/v1beta1/namespaces/res/proxied_backlog"


@dataclass
class Rig:
    adapter: RunningAdapter
    prom_proxy: TcpProxy
    rabbit_proxy: TcpProxy

    def status(self, path: str) -> tuple[int, dict[str, object]]:
        code, body = self.adapter.get(path)
        assert isinstance(body, dict), body
        return code, body


@pytest.fixture(scope="module")
def rig(stack_ipv4: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    prom, rabbit = stack_ipv4.prometheus, stack_ipv4.rabbitmq
    prom_proxy = TcpProxy(prom.host, prom.port)  # down: Prometheus unreachable at start-up
    rabbit_proxy = TcpProxy(rabbit.host, rabbit.management_port).up()
    rabbit.declare_queue("resilience")
    stack_ipv4.exporter.set("e2e_resilience_gauge", {"namespace": "res", "pod": "p1"}, 3)
    url = f"http://guest:guest@{rabbit_proxy.address}"
    adapter = start_adapter(
        stack_ipv4.cluster,
        Path(tmp_path_factory.mktemp("resilience")),
        CONFIG.replace("RABBIT", url),
        prometheus_url=f"http://{prom_proxy.address}",
        extra_args=[
            "--metrics-relist-interval=2s",
            "--refresh-interval=1s",
            "--max-staleness=3s",
            "--prometheus-timeout=1s",
        ],
    )
    try:
        yield Rig(adapter, prom_proxy, rabbit_proxy)
    finally:
        adapter.stop()
        prom_proxy.down()
        rabbit_proxy.down()


def test_prometheus_down_then_back(rig: Rig) -> None:
    """Unreachable at start-up: 503 naming Prometheus; up: served; down again: 503 once stale; back: served."""
    source = f"prometheus http://{rig.prom_proxy.address}"
    code, body = rig.status(POD)
    assert code == 503 and body["reason"] == "ServiceUnavailable"
    assert str(body["message"]).startswith(f"{source}: metrics are not discovered yet")
    assert "unreachable" in str(body["message"])

    rig.prom_proxy.up()
    procs.wait_until("served after Prometheus came up", lambda: rig.status(POD)[0] == 200, timeout=30)
    assert rig.status(POD)[1]["items"][0]["value"] == "3"  # type: ignore[index]
    _, discovery = rig.status("/apis/custom.metrics.k8s.io/v1beta1")

    rig.prom_proxy.down()
    body = procs.wait_until(
        "503 once the value is stale", lambda: (r := rig.status(POD))[0] == 503 and r[1], timeout=20
    )
    assert str(body["message"]).startswith(f"{source}: ")
    assert "older than the 3s allowed" in str(body["message"]) or "no value yet" in str(body["message"])
    # Discovery keeps the last list instead of going empty; other APIs keep answering.
    assert rig.status("/apis/custom.metrics.k8s.io/v1beta1") == (200, discovery)
    assert rig.adapter.process.alive()

    rig.prom_proxy.up()
    procs.wait_until("served again", lambda: rig.status(POD)[0] == 200, timeout=40)
    _, metrics = rig.adapter.get("/metrics")
    assert isinstance(metrics, str)
    errors = re.search(rf'metrics_adapter_upstream_errors_total{{source="{re.escape(source)}"}} (\d+)', metrics)
    assert errors and int(errors.group(1)) > 0
    assert "metrics_adapter_request_duration_seconds_bucket" in metrics


def test_broker_down_then_back(rig: Rig) -> None:
    """A broker outage is a 503 naming the broker for its metric only; serving recovers when it returns."""
    procs.wait_until("queue served", lambda: rig.status(QUEUE)[0] == 200, timeout=20)
    rig.rabbit_proxy.down()
    body = procs.wait_until("503 for the queue", lambda: (r := rig.status(QUEUE))[0] == 503 and r[1], timeout=20)
    assert "rabbitmq" in str(body["message"]) and "resilience" in str(body["message"])
    assert "guest" not in str(body["message"])  # credentials never appear in messages
    rig.rabbit_proxy.up()
    procs.wait_until("queue served again", lambda: rig.status(QUEUE)[0] == 200, timeout=40)
    assert rig.adapter.process.alive()
