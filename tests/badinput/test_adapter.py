"""Bad metrics-adapter requests, one per row, against the real program: exact status and message, nothing kept.

Each path is sent byte for byte (``tests/metrics_adapter/rawhttp.py``), as the aggregator
(front-proxy certificate) unless the row says otherwise. After each, the adapter's own
``metrics_adapter_memory_entries`` must be unchanged: no value asked upstream, no path,
query or selector remembered for a request it refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from e2e.adapter import RunningAdapter, start_adapter
from e2e.cluster import ClusterInfo
from tests.metrics_adapter.rawhttp import QUEUE_ONLY, send, stores

pytestmark = [pytest.mark.cluster]

EXT = "/apis/external.metrics.k8s.io/v1beta1"
CM = "/apis/custom.metrics.k8s.io/v1beta1"
DNS_LABEL = "a DNS label (lower-case alphanumerics and '-', at most 63)"
NOTHING_ODD = "no whitespace or control characters"
LONG_PATH = f"{EXT}/namespaces/default/" + "b" * 5000


@dataclass(frozen=True)
class Case:
    path: str
    status: int
    message: str | Callable[[RunningAdapter], str]
    method: str = "GET"
    authenticated: bool = True
    headers: dict[str, str] = field(default_factory=dict)


CASES: dict[str, Case] = {
    "namespace with a trailing newline": Case(
        f"{EXT}/namespaces/default%0A/backlog", 400, f"invalid namespace 'default\\n': {DNS_LABEL}"
    ),
    "namespace in upper case": Case(
        f"{EXT}/namespaces/Default/backlog", 400, f"invalid namespace 'Default': {DNS_LABEL}"
    ),
    "namespace of 64 characters": Case(
        f"{EXT}/namespaces/{'n' * 64}/backlog", 400, f"invalid namespace '{'n' * 64}': {DNS_LABEL}"
    ),
    "namespace starting with '-'": Case(f"{EXT}/namespaces/-ns/backlog", 400, f"invalid namespace '-ns': {DNS_LABEL}"),
    "traversal": Case(f"{CM}/namespaces/default/pods/../../../etc/passwd", 400, "invalid path segment '..'"),
    "encoded slash": Case(f"{CM}/namespaces/default/pods/a%2Fb/m", 400, "invalid path segment 'a%2Fb'"),
    "encoded dot-dot": Case(f"{CM}/namespaces/default/pods/%2e%2E/m", 400, "invalid path segment '%2e%2E'"),
    "encoded NUL": Case(f"{CM}/namespaces/default/pods/x%00/m", 400, "invalid path segment 'x%00'"),
    "percent-encoding that is not UTF-8": Case(
        f"{CM}/namespaces/default/pods/%C3%28/m", 400, "path segment '%C3%28' is not valid percent-encoded UTF-8"
    ),
    "object name with a newline": Case(
        f"{CM}/namespaces/default/pods/web%0A/m", 400, f"invalid object name 'web\\n': {NOTHING_ODD}"
    ),
    "resource with a tab": Case(
        f"{CM}/namespaces/default/po%09ds/web/m", 400, f"invalid resource 'po\\tds': {NOTHING_ODD}"
    ),
    "metric with a space": Case(
        f"{CM}/namespaces/default/pods/web/m%20x", 400, f"invalid metric name 'm x': {NOTHING_ODD}"
    ),
    "path over 4096 bytes": Case(
        LONG_PATH, 414, f"request path is {len(LONG_PATH)} bytes; at most 4096 are accepted", authenticated=False
    ),
    "huge label selector": Case(
        f"{EXT}/namespaces/default/backlog?labelSelector=" + "a" * 9000,
        400,
        "labelSelector: selector is 9000 characters long; at most 8192 are accepted",
    ),
    "label selector with '==='": Case(
        f"{EXT}/namespaces/default/backlog?labelSelector=a%3D%3D%3Db",
        400,
        "labelSelector: expected a value after 'a==', found '='",
    ),
    "label selector with a bad key": Case(
        f"{EXT}/namespaces/default/backlog?labelSelector=-a%3Db",
        400,
        "labelSelector: invalid label key '-a': the name part must be 1-63 characters of [A-Za-z0-9-_.], "
        "starting and ending alphanumeric",
    ),
    "metric label selector left open": Case(
        f"{EXT}/namespaces/default/backlog?metricLabelSelector=x%20in%20(",
        400,
        "metricLabelSelector: unterminated value list after 'x in ('",
    ),
    "wrong group": Case(
        "/apis/metrics.k8s.io/v1beta1/nodes",
        404,
        "the server could not find the requested resource: API group 'metrics.k8s.io' is not served here",
    ),
    "wrong version": Case(
        "/apis/external.metrics.k8s.io/v1beta2/namespaces/default/backlog",
        404,
        "the server could not find the requested resource: external.metrics.k8s.io/v1beta2 is not served here",
    ),
    "unknown external metric": Case(
        f"{EXT}/namespaces/default/nope", 404, "the server could not find the external metric nope"
    ),
    "POST": Case(f"{EXT}/namespaces/default/backlog", 405, "POST is not allowed: these APIs are read-only", "POST"),
    "DELETE": Case(EXT, 405, "DELETE is not allowed: these APIs are read-only", "DELETE"),
    "no credentials": Case(
        f"{EXT}/namespaces/default/backlog",
        401,
        "no credentials: present the front-proxy client certificate or a bearer token",
        authenticated=False,
    ),
    "headers over 64 KiB in all": Case(
        EXT,
        431,
        # 5 fillers of 10 + 15 000 + 4 bytes, and Host: localhost:PORT
        lambda a: f"request headers are {75078 + len(f'localhost:{a.port}')} bytes in all; at most 65536 are accepted",
        authenticated=False,
        headers={f"X-Filler-{i}": "f" * 15000 for i in range(5)},
    ),
}


@pytest.fixture(scope="module")
def adapter(cluster_ipv4: ClusterInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAdapter]:
    """The real adapter serving one queue metric (``backlog``), no Prometheus."""
    running = start_adapter(cluster_ipv4, tmp_path_factory.mktemp("badinput-adapter"), QUEUE_ONLY, prometheus_url=None)
    stores(running)  # /metrics' own path is remembered on first use
    yield running
    running.stop()


@pytest.mark.parametrize("name", list(CASES))
def test_bad_adapter_request(adapter: RunningAdapter, name: str) -> None:
    """The exact status and Status message; nothing asked upstream or remembered."""
    case = CASES[name]
    before = stores(adapter)
    status, body = send(
        adapter, case.method, case.path, authenticated=case.authenticated, headers=case.headers,
        body=b"{}" if case.method == "POST" else None,
    )  # fmt: skip
    message = case.message if isinstance(case.message, str) else case.message(adapter)
    assert (status, body["kind"], body["code"], body["message"]) == (case.status, "Status", case.status, message)
    assert stores(adapter) == before
