"""The demo's web app: answers HTTP requests on behalf of the prod Deployment's Ready pods.

kwok pods run no code, so this one process stands in for them: like a Service, it sends each
request to the next Ready pod of the Deployment (round robin) and counts it in
``demo_http_requests_total{namespace, service, pod}``, which Prometheus scrapes from ``/metrics``.
The request rate the HPA sees is therefore the rate of real requests sent to this process,
spread over however many pods are Ready at the moment. Run as a process of its own so that
``--keep`` leaves it serving::

    python -m e2e.demo.app --api-url URL --ca CA --cert CRT --key KEY \
        --namespace shop-prod --selector app=web --service web --port 8080
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import signal
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

from prometheus_client import CollectorRegistry, Counter, disable_created_metrics, generate_latest

from e2e.bootstrap import Api

POLL_SECONDS = 1.0


class ReadyPods:
    """The Deployment's Ready pods, re-listed every second (what a Service's endpoints would hold)."""

    def __init__(self, api: Api, namespace: str, selector: str, service: str, counter: Counter) -> None:
        self.api, self.namespace, self.selector, self.counter = api, namespace, selector, counter
        self.service = service
        self._lock = threading.Lock()
        self._names: list[str] = []
        self._cycle: Any = iter(())

    def refresh(self) -> None:
        query = urllib.parse.urlencode({"labelSelector": self.selector})
        pods = (self.api.get(f"/api/v1/namespaces/{self.namespace}/pods?{query}") or {}).get("items") or []
        ready: list[str] = sorted(
            p["metadata"]["name"]
            for p in pods
            if not p["metadata"].get("deletionTimestamp")
            and any(c.get("type") == "Ready" and c.get("status") == "True" for c in p["status"].get("conditions") or [])
        )
        with self._lock:
            for gone in set(self._names) - set(ready):
                # Dropping the series lets Prometheus mark it stale, as when a real pod goes away.
                with contextlib.suppress(KeyError):
                    self.counter.remove(self.namespace, self.service, gone)
            for name in ready:
                self.counter.labels(self.namespace, self.service, name)  # a new pod's series starts at 0
            if ready != self._names:
                self._names = ready
                self._cycle = itertools.cycle(ready)

    def pick(self) -> str | None:
        with self._lock:
            return next(self._cycle, None)


def serve(api: Api, namespace: str, selector: str, service: str, host: str, port: int) -> None:
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry()
    counter = Counter(
        "demo_http_requests",
        "Requests answered, by the pod that answered",
        ["namespace", "service", "pod"],
        registry=registry,
    )
    pods = ReadyPods(api, namespace, selector, service, counter)
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):  # the API server may be briefly busy; try again next tick
                pods.refresh()
            stop.wait(POLL_SECONDS)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so a load generator reuses its connection
        # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and the
        # client's delayed ACK hold every response back ~40 ms (about 25 requests/s at most).
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._reply(200, generate_latest(registry), "text/plain; version=0.0.4")
                return
            pod = pods.pick()
            if pod is None:
                self._reply(503, b"no Ready pod\n")
                return
            counter.labels(namespace, service, pod).inc()
            self._reply(200, f"served by {pod}\n".encode())

        def _reply(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True

    def shutdown(signum: int, frame: FrameType | None) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    threading.Thread(target=poll, name="pods", daemon=True).start()
    print(f"demo app: answering for {namespace}/{selector} on http://{host}:{port}/", flush=True)
    server.serve_forever(poll_interval=0.2)
    server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.demo.app", description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-url", required=True, help="the cluster's API server")
    parser.add_argument("--ca", required=True, help="its CA certificate")
    parser.add_argument("--cert", required=True, help="a client certificate allowed to list pods")
    parser.add_argument("--key", required=True, help="its key")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--selector", required=True, help="label selector of the Deployment's pods")
    parser.add_argument("--service", required=True, help="the Service the requests are addressed to")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    started = time.monotonic()
    ctx = ssl.create_default_context(cafile=args.ca)
    ctx.load_cert_chain(args.cert, args.key)
    serve(Api(args.api_url, ctx), args.namespace, args.selector, args.service, args.host, args.port)
    print(f"demo app: stopped after {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
