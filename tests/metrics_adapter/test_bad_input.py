"""Hostile and malformed requests sent to the real adapter byte for byte: clear Status errors, nothing else affected.

Path traversal, percent-encoded slashes, absurd lengths, unknown groups, wrong methods: each
is answered with the right code and a message naming what was wrong, and the adapter keeps
serving the next normal request.
"""

from __future__ import annotations

import http.client
import json
import ssl
from typing import Any

import pytest

from tests.metrics_adapter.conftest import Stack

pytestmark = [pytest.mark.cluster, pytest.mark.services]

CM = "/apis/custom.metrics.k8s.io/v1beta1"


def raw(stack: Stack, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
    """Send ``path`` exactly as written, as the aggregator (front-proxy certificate, admin user)."""
    ctx = ssl.create_default_context(cafile=str(stack.cluster.ca_cert))
    cert, key = stack.adapter.front_proxy_cert()
    ctx.load_cert_chain(str(cert), str(key))
    conn = http.client.HTTPSConnection("localhost", stack.adapter.port, context=ctx, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        conn.putheader("X-Remote-User", "kubernetes-admin")
        conn.putheader("X-Remote-Group", "system:masters")
        conn.putheader("Accept", "application/vnd.kubernetes.protobuf, application/json")
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        assert resp.getheader("Content-Type", "").startswith("application/json"), "always JSON"
        return resp.status, json.loads(data)
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("method", "path", "status", "fragment"),
    [
        ("GET", f"{CM}/namespaces/default/pods/../../../../etc/passwd", 400, "invalid path segment '..'"),
        ("GET", f"{CM}/namespaces/default/pods/%2e%2e/x", 400, "invalid path segment '%2e%2e'"),
        ("GET", f"{CM}/namespaces/default/pods/a%2Fb/x", 400, "invalid path segment 'a%2Fb'"),
        ("GET", f"{CM}/namespaces/default/pods/%ff/x", 400, "not valid percent-encoded UTF-8"),
        ("GET", f"{CM}/namespaces/Not_A_Namespace/pods/x/m", 400, "invalid namespace 'Not_A_Namespace'"),
        ("GET", f"{CM}/namespaces/default/pods/x/" + "m" * 600, 400, "longer than 512 characters"),
        ("GET", f"{CM}/namespaces/default/pods/" + "p" * 300 + "/m", 400, "longer than 253 characters"),
        ("GET", f"{CM}/namespaces/default/pods/x/m?labelSelector=" + "a%3Db%2C" * 2100, 414, "at most 16384"),
        (
            "GET",
            f"{CM}/namespaces/default/pods/*/m?labelSelector=" + "a" * 70 + "%3Db",
            400,
            "labelSelector: invalid label key",
        ),
        ("GET", "/apis/metrics.k8s.io/v1beta1/nodes", 404, "API group 'metrics.k8s.io' is not served here"),
        ("GET", "/apis/custom.metrics.k8s.io/v2/foo", 404, "custom.metrics.k8s.io/v2 is not served here"),
        ("GET", f"{CM}/a/b/c/d/e/f/g", 404, "custom metrics are at"),
        ("GET", "/apis/external.metrics.k8s.io/v1beta1/queue_messages", 404, "external metrics are at"),
        ("GET", "/etc/passwd", 404, "could not find the requested resource"),
        ("POST", f"{CM}/namespaces/default/pods/x/m", 405, "read-only"),
        ("DELETE", CM, 405, "read-only"),
    ],
)
def test_bad_requests_get_clear_status_errors(
    stack_ipv4: Stack, method: str, path: str, status: int, fragment: str
) -> None:
    """Each malformed request gets the right code and a Status naming the problem."""
    code, body = raw(stack_ipv4, method, path, b"{}" if method == "POST" else None)
    assert code == status, body
    assert body["kind"] == "Status" and body["code"] == status
    assert fragment in body["message"], body["message"]


def test_adapter_keeps_serving_after_bad_input(stack_ipv4: Stack) -> None:
    """After the barrage above (and a request line too long to parse), normal requests are still answered."""
    ctx = ssl.create_default_context(cafile=str(stack_ipv4.cluster.ca_cert))
    conn = http.client.HTTPSConnection("localhost", stack_ipv4.adapter.port, context=ctx, timeout=30)
    conn.request("GET", CM + "?x=" + "y" * 100_000)
    assert 400 <= conn.getresponse().status < 500
    conn.close()
    code, body = raw(stack_ipv4, "GET", CM)
    assert code == 200 and body["kind"] == "APIResourceList"
    assert stack_ipv4.adapter.process.alive()
