"""Byte-exact requests to a real adapter, with or without the aggregator's credentials, and its own gauges.

``http.client`` sends a path exactly as written (no normalisation), so traversal, encoded
slashes, control characters and over-long lines reach the server as an attacker would send
them. ``metric`` reads one sample from the adapter's ``/metrics`` (asked as the aggregator).
"""

from __future__ import annotations

import http.client
import json
import ssl
from typing import Any

from e2e.adapter import RunningAdapter

# Something to serve without a Prometheus: a queue whose broker need not be up.
QUEUE_ONLY = 'queues:\n- name: backlog\n  redis: {url: "redis://127.0.0.1:1", list: jobs}\n'


def send(
    adapter: RunningAdapter,
    method: str,
    path: str,
    *,
    authenticated: bool = True,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, Any]:
    """(status, decoded JSON or text) of one request on a connection of its own."""
    ctx = ssl.create_default_context(cafile=str(adapter.cluster.ca_cert))
    if authenticated:
        cert, key = adapter.front_proxy_cert()
        ctx.load_cert_chain(str(cert), str(key))
    conn = http.client.HTTPSConnection("localhost", adapter.port, context=ctx, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True, skip_host=False)
        if authenticated:
            conn.putheader("X-Remote-User", "kubernetes-admin")
            conn.putheader("X-Remote-Group", "system:masters")
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(data)
    except ValueError:
        return resp.status, data.decode(errors="replace")


def metric(adapter: RunningAdapter, name: str, **labels: str) -> float:
    """The adapter's own sample ``name{labels}`` (0 when absent)."""
    status, text = send(adapter, "GET", "/metrics")
    assert status == 200, text
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    series = f"{name}{{{want}}}" if want else name
    for line in str(text).splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def stores(adapter: RunningAdapter) -> dict[str, float]:
    """``metrics_adapter_memory_entries`` by store: what the adapter holds in memory."""
    return {
        s: metric(adapter, "metrics_adapter_memory_entries", store=s)
        for s in ("paths", "queries", "selectors", "values")
    }
