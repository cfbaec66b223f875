"""The daemon's own HTTP port: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz`` for the kubelet.

Kept apart from the webhook receiver (its own port) so that probes and scrapes never compete
with, or are exposed like, the public push endpoint. ``/healthz`` answers as long as the event
loop runs; ``/readyz`` once the daemon has listed its Environments and is working.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gitopsd.metrics import Metrics


def app(metrics: Metrics, ready: Callable[[], tuple[bool, str]]) -> web.Application:
    async def get_metrics(_: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        ok, why = ready()
        return web.Response(text=f"{why}\n", status=200 if ok else 503)

    application = web.Application()
    application.router.add_get("/metrics", get_metrics)
    application.router.add_get("/healthz", healthz)
    application.router.add_get("/livez", healthz)
    application.router.add_get("/readyz", readyz)
    return application
