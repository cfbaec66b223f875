"""A real adapter against callers without credentials and callers asking ever-new questions.

Nothing an unauthenticated request sends stays in memory (the parse memos and the value cache
are read from the adapter's own ``metrics_adapter_memory_entries``); over-long request lines,
paths, queries and headers are refused at once with their status; the value cache keeps at
most ``--max-cached-values`` questions, drops the least recently asked and counts it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from e2e import procs, services
from e2e.adapter import RunningAdapter, start_adapter
from e2e.cluster import ClusterInfo
from e2e.exporter import Exporter
from tests.metrics_adapter.conftest import FAST
from tests.metrics_adapter.rawhttp import metric, send, stores

pytestmark = [pytest.mark.cluster, pytest.mark.services]

CONFIG = """
externalRules:
- seriesQuery: '{__name__="e2e_hard_jobs",queue!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
  name: {as: "hard_jobs"}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (queue)
"""
EXTERNAL = "/apis/external.metrics.k8s.io/v1beta1"
NO_CREDENTIALS = "no credentials: present the front-proxy client certificate or a bearer token"


@dataclass
class Hard:
    adapter: RunningAdapter
    exporter: Exporter


@pytest.fixture(scope="module")
def hard(
    cluster_ipv4: ClusterInfo, prometheus: services.Prometheus, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hard]:
    """An adapter holding at most 2 values, serving one external metric with four series."""
    exporter = Exporter("127.0.0.1").start()
    for q in "abcd":
        exporter.set("e2e_hard_jobs", {"queue": q, "namespace": "hard-ns"}, 1)
    prometheus.add_target(f"e2e-hard-{exporter.port}", exporter.address)
    adapter = start_adapter(
        cluster_ipv4,
        tmp_path_factory.mktemp("hard-adapter"),
        CONFIG,
        prometheus_url=prometheus.url,
        extra_args=[*FAST, "--max-cached-values=2"],
    )
    try:

        def discovered() -> bool:
            status, body = send(adapter, "GET", EXTERNAL)
            return status == 200 and any(r["name"] == "hard_jobs" for r in body["resources"])

        procs.wait_until("hard_jobs discovered", discovered, timeout=60, interval=0.5)
        yield Hard(adapter, exporter)
    finally:
        adapter.stop()
        exporter.stop()


def test_unauthenticated_requests_leave_nothing_in_memory(hard: Hard) -> None:
    """50 distinct 3 KiB paths and queries without credentials: 401 each, no memo or value grows."""
    a = hard.adapter
    stores(a)  # /metrics itself is remembered on first use
    before = stores(a)
    for i in range(50):
        path = f"{EXTERNAL}/namespaces/hard-ns/{i:03d}" + "x" * 3000 + f"?labelSelector=queue%3D{i}&k{i}=" + "v" * 500
        status, body = send(a, "GET", path, authenticated=False)
        assert (status, body["message"]) == (401, NO_CREDENTIALS)
    assert stores(a) == before
    # The same path, authorized and answered, is remembered: the memo works, only for the authorized.
    status, _ = send(a, "GET", f"{EXTERNAL}/namespaces/hard-ns/hard_jobs?labelSelector=queue%3Da")
    assert status == 200
    after = stores(a)
    assert after["paths"] == before["paths"] + 1 and after["selectors"] >= before["selectors"] + 1


def test_over_long_lines_paths_and_headers_are_refused_at_once(hard: Hard) -> None:
    """Path > 4096 or query > 16384: 414; headers > 64 KiB in all: 431; a line or header past the parser: 400."""
    a = hard.adapter
    path = f"{EXTERNAL}/namespaces/hard-ns/" + "p" * 5000
    status, body = send(a, "GET", path, authenticated=False)
    assert (status, body["reason"]) == (414, "RequestURITooLong")
    assert body["message"] == f"request path is {len(path)} bytes; at most 4096 are accepted"
    query = "labelSelector=" + "a" * 17000
    status, body = send(a, "GET", f"{EXTERNAL}?{query}", authenticated=False)
    assert (status, body["message"]) == (414, f"query string is {len(query)} bytes; at most 16384 are accepted")
    big = {f"X-Filler-{i}": "f" * 15000 for i in range(5)}
    status, body = send(a, "GET", EXTERNAL, authenticated=False, headers=big)
    size = sum(len(k) + len(v) + 4 for k, v in big.items())
    assert status == 431 and body["message"].startswith("request headers are ")
    assert body["message"].endswith(" bytes in all; at most 65536 are accepted") and size < int(
        body["message"].split()[3]
    )
    status, text = send(a, "GET", EXTERNAL + "?q=" + "y" * 30000, authenticated=False)
    assert status == 400 and "Got more than 20544 bytes when reading" in text
    status, text = send(a, "GET", EXTERNAL, authenticated=False, headers={"X-Huge": "h" * 20000})
    assert status == 400 and "Got more than 16384 bytes" in text
    status, body = send(a, "GET", EXTERNAL)
    assert status == 200 and body["kind"] == "APIResourceList"
    assert "Traceback" not in a.log_text()


def test_value_cache_keeps_the_most_recent_questions_and_counts_evictions(hard: Hard) -> None:
    """--max-cached-values=2: four distinct selectors evict two; the newest is still served from memory."""
    a = hard.adapter
    evicted = metric(a, "metrics_adapter_cache_evictions_total")
    for q in "abcd":
        status, body = send(a, "GET", f"{EXTERNAL}/namespaces/hard-ns/hard_jobs?labelSelector=queue%3D{q}")
        assert status == 200, body
        assert [i["metricLabels"]["queue"] for i in body["items"]] == [q]
    assert metric(a, "metrics_adapter_cache_evictions_total") >= evicted + 2
    assert stores(a)["values"] == 2
    hits, evicted = metric(a, "metrics_adapter_cache_hits_total"), metric(a, "metrics_adapter_cache_evictions_total")
    status, _ = send(a, "GET", f"{EXTERNAL}/namespaces/hard-ns/hard_jobs?labelSelector=queue%3Dd")
    assert status == 200
    assert metric(a, "metrics_adapter_cache_hits_total") == hits + 1
    assert metric(a, "metrics_adapter_cache_evictions_total") == evicted
