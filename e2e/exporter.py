"""A tiny Prometheus exporter for tests: serves whatever series a test sets, for Prometheus to scrape.

Tests of the metrics adapter need series with ``namespace`` / ``pod`` labels whose values they
control (pod names are only known once the Deployment's pods exist). The exporter serves the
text exposition format from a thread on a loopback port; a test changes values with ``set``
or gives a callback computed at every scrape.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from e2e import procs

Series = tuple[str, Mapping[str, str], float]  # name, labels, value


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def exposition(series: Iterable[Series]) -> str:
    lines = []
    for name, labels, value in series:
        lbl = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
        lines.append(f"{name}{{{lbl}}} {value!r}" if lbl else f"{name} {value!r}")
    return "\n".join(lines) + "\n"


class Exporter:
    """Serve ``/metrics`` on ``host``; values come from ``set`` and from ``callbacks``."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = procs.free_port(host)
        self._lock = threading.Lock()
        self._static: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.callbacks: list[Callable[[], Iterable[Series]]] = []
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_cls = type("Server", (ThreadingHTTPServer,), {"address_family": family})
        self._server = server_cls((host, self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="e2e-exporter", daemon=True)

    @property
    def address(self) -> str:
        return f"{procs.url_host(self.host)}:{self.port}"

    def set(self, name: str, labels: Mapping[str, str], value: float | None) -> None:
        """Set a series (``None`` removes it, so Prometheus marks it stale)."""
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            if value is None:
                self._static.pop(key, None)
            else:
                self._static[key] = value

    def render(self) -> str:
        with self._lock:
            series: list[Series] = [(n, dict(lbl), v) for (n, lbl), v in self._static.items()]
        for cb in list(self.callbacks):
            series.extend(cb())
        return exposition(series)

    def start(self) -> Exporter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
