"""Fixtures for the adapter's integration tests: one real adapter per harness cluster, behind its aggregator.

A *stack* is what one cluster's tests share: a Prometheus and an exporter of the cluster's IP
family (so the IPv6 stack is IPv6 end to end), the session's RabbitMQ, and the
``metrics-adapter`` program started with ``STACK_CONFIG`` and registered as the cluster's three
metrics APIServices. Tests put series in the exporter and messages in RabbitMQ and read through
``kubectl get --raw`` or directly.
"""

from __future__ import annotations

import calendar
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from e2e import procs, services
from e2e.adapter import RunningAdapter, available, register, start_adapter, unregister
from e2e.cluster import ClusterInfo
from e2e.exporter import Exporter
from tests.e2e.kube import kubectl

# A realistic prometheus-adapter config: overrides and templates, name mapping, series filters,
# a group-qualified resource, a cluster-scoped one, an externalRule, plus queues.
STACK_CONFIG = """
rules:
# a gauge per pod, renamed (and served for namespaces too)
- seriesQuery: '{__name__=~"^e2e_inflight_requests$",namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  name: {matches: "^e2e_(.*)$", as: "${1}"}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)
# counters turned into rates; seconds counters filtered out; resources from a template
- seriesQuery: '{__name__=~"^e2e_.*_total$",namespace!="",pod!=""}'
  seriesFilters:
  - isNot: "^e2e_.*_seconds_total$"
  resources:
    template: <<.Resource>>
  name: {matches: "^e2e_(.*)_total$", as: "${1}_per_second"}
  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[20s])) by (<<.GroupBy>>)
# a Deployment-level metric through a group-qualified override
- seriesQuery: '{__name__="e2e_deployment_queue_length",namespace!="",deployment!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      deployment: {group: apps, resource: deployment}
  name: {as: "queue_length"}
  metricsQuery: max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)
# a cluster-scoped resource
- seriesQuery: '{__name__="e2e_node_load",node!=""}'
  resources:
    overrides:
      node: {resource: node}
  metricsQuery: max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)
externalRules:
- seriesQuery: '{__name__=~"^e2e_queue_messages$",queue!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
  name: {matches: "^e2e_queue_(.*)$", as: "queue_${1}"}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (queue)
queues:
- name: orders_backlog
  rabbitmq: {url: "RABBIT", vhost: /, queue: orders, count: ready}
- name: hpa_backlog
  rabbitmq: {url: "RABBIT", vhost: /, queue: hpa-orders, count: ready}
- name: shop_backlog
  namespace: ma-shop
  labels: {queue: a}
  rabbitmq: {url: "RABBIT", vhost: /, queue: shop-a, count: ready}
- name: shop_backlog
  namespace: ma-shop
  labels: {queue: b}
  rabbitmq: {url: "RABBIT", vhost: /, queue: shop-b, count: total}
- name: jobs_backlog
  redis: {url: "REDIS", list: ma-jobs}
"""

FAST = ["--metrics-relist-interval=2s", "--refresh-interval=1s", "--max-staleness=10s"]


@dataclass
class Stack:
    cluster: ClusterInfo
    prometheus: services.Prometheus
    exporter: Exporter
    rabbitmq: services.RabbitMQ
    redis: services.Redis
    adapter: RunningAdapter
    apiserver_log_offset: int = 0  # kube-apiserver's log size when the APIServices were registered
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    def apiserver_errors_about_metrics(self) -> list[str]:
        """kube-apiserver error lines about the metrics APIs since registration."""
        log = self.cluster.directory / "logs" / "kube-apiserver.log"
        with open(log, "rb") as f:
            f.seek(self.apiserver_log_offset)
            text = f.read().decode(errors="replace")
        return [
            line
            for line in text.splitlines()
            if line.startswith("E") and ("custom.metrics.k8s.io" in line or "external.metrics.k8s.io" in line)
        ]

    def raw(self, path: str, *extra: str) -> tuple[int, Any]:
        """``kubectl get --raw path`` through kube-apiserver: (exit code, JSON or stderr)."""
        out = kubectl(self.cluster, "get", "--raw", path, *extra)
        if out.returncode != 0:
            return out.returncode, out.stderr.strip()
        return 0, json.loads(out.stdout)

    def wait_raw(self, path: str, check: Callable[[Any], bool], timeout: float = 45) -> Any:
        """Poll ``path`` through the aggregator until ``check`` accepts the body; return it."""

        def probe() -> Any:
            code, body = self.raw(path)
            if code != 0:
                raise AssertionError(f"{path}: {body}")
            return body if check(body) else None

        return procs.wait_until(f"GET {path}", probe, timeout=timeout, interval=0.5)


def rabbit_url(rabbit: services.RabbitMQ) -> str:
    return f"http://{rabbit.username}:{rabbit.password}@{procs.url_host(rabbit.host)}:{rabbit.management_port}"


def stack_config(rabbit: services.RabbitMQ, redis: services.Redis) -> str:
    return STACK_CONFIG.replace("RABBIT", rabbit_url(rabbit)).replace("REDIS", redis.url)


def _start_stack(cluster: ClusterInfo, rabbit: services.RabbitMQ, redis: services.Redis, directory: Path) -> Stack:
    prom = services.start_prometheus(cluster.ip_family)
    exporter = Exporter(cluster.host).start()
    prom.add_target("e2e-exporter", exporter.address)
    for q in ("orders", "hpa-orders", "shop-a", "shop-b"):
        rabbit.declare_queue(q)
    adapter = start_adapter(cluster, directory, stack_config(rabbit, redis), prometheus_url=prom.url, extra_args=FAST)
    stack = Stack(cluster, prom, exporter, rabbit, redis, adapter)
    stack.cleanup += [prom.stop, exporter.stop, adapter.stop]
    try:
        stack.apiserver_log_offset = (cluster.directory / "logs" / "kube-apiserver.log").stat().st_size
        register(cluster, adapter)
        procs.wait_until("metrics APIServices Available", lambda: available(cluster), timeout=90, interval=0.5)
    except BaseException:
        _stop(stack)
        raise
    return stack


def _stop(stack: Stack) -> None:
    for fn in reversed(stack.cleanup):
        fn()


@pytest.fixture(scope="session")
def stacks(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Stack]]:
    """Stacks by IP family, started on first use and stopped at the end of the session."""
    made: dict[str, Stack] = {}
    yield made
    for family, stack in made.items():
        if request.session.testsfailed:
            print(f"\n--- metrics-adapter ({family}) log tail ---\n{procs.log_tail(stack.adapter.log, 40)}")
        try:
            unregister(stack.cluster)
        except Exception as exc:  # the cluster may already be gone
            print(f"unregister failed: {exc}")
        _stop(stack)


def _stack_for(
    cluster: ClusterInfo, stacks: dict[str, Stack], request: pytest.FixtureRequest, tmp: pytest.TempPathFactory
) -> Stack:
    if cluster.ip_family not in stacks:
        rabbit: services.RabbitMQ = request.getfixturevalue("rabbitmq")
        redis: services.Redis = request.getfixturevalue("redis_server")
        directory = Path(tmp.mktemp(f"adapter-{cluster.ip_family}"))
        stacks[cluster.ip_family] = _start_stack(cluster, rabbit, redis, directory)
    return stacks[cluster.ip_family]


@pytest.fixture(scope="session")
def stack(
    cluster: ClusterInfo,
    stacks: dict[str, Stack],
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Stack:
    """The stack of the cluster under test (IPv4 and IPv6)."""
    return _stack_for(cluster, stacks, request, tmp_path_factory)


@pytest.fixture(scope="session")
def stack_ipv4(
    cluster_ipv4: ClusterInfo,
    stacks: dict[str, Stack],
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Stack:
    """The IPv4 cluster's stack, for tests that run once."""
    return _stack_for(cluster_ipv4, stacks, request, tmp_path_factory)


def strip_times(body: Any) -> Any:
    """A list body with timestamps replaced, for exact comparison (the times are checked separately)."""
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        body = dict(body)
        body["items"] = [{**i, "timestamp": "T"} for i in body["items"]]
    return body


def recent(ts: str, within: float = 120) -> bool:
    """An RFC 3339 timestamp within ``within`` seconds of now."""
    return abs(time.time() - calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))) < within
