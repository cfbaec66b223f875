"""Put a process on this machine behind the cluster's aggregation layer.

kube-apiserver reaches an aggregated API through a Service. Endpoints may not hold loopback
addresses, so the Service is of type ExternalName pointing at ``localhost``; the aggregator
then dials ``localhost:<port>`` while verifying the serving certificate against
``<service>.<namespace>.svc``. This module issues such a certificate from the cluster CA and
creates the Service and APIService; it also runs an aiohttp app in a background thread so
synchronous tests can serve one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from e2e import pki, procs
from e2e.cluster import ClusterInfo


@dataclass(frozen=True, slots=True)
class ServingCert:
    cert: Path
    key: Path
    ca_bundle_b64: str


def serving_cert(cluster: ClusterInfo, directory: Path, service: str, namespace: str) -> ServingCert:
    """A server certificate, signed by the cluster CA, valid for the Service and localhost."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = pki.load_ca(cluster.ca_cert, cluster.ca_key)
    cert, key = pki.issue(
        ca_cert,
        ca_key,
        f"{service}.{namespace}.svc",
        server=True,
        dns=(f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local", "localhost"),
        ips=("127.0.0.1", "::1"),
    )
    crt_path, key_path = pki.write_pair(directory, service, cert, key)
    return ServingCert(crt_path, key_path, base64.b64encode(cluster.ca_cert.read_bytes()).decode())


def apiservice_objects(
    group: str, version: str, port: int, ca_bundle_b64: str, *, service: str, namespace: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ExternalName Service and the APIService that route ``group/version`` to ``localhost:port``."""
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": service, "namespace": namespace},
        "spec": {"type": "ExternalName", "externalName": "localhost", "ports": [{"name": "https", "port": port}]},
    }
    apisvc = {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": f"{version}.{group}"},
        "spec": {
            "group": group,
            "version": version,
            "service": {"name": service, "namespace": namespace, "port": port},
            "caBundle": ca_bundle_b64,
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
        },
    }
    return svc, apisvc


class ThreadedApp:
    """Serve an aiohttp application over TLS from a background thread (for synchronous tests)."""

    def __init__(self, app: web.Application, hosts: tuple[str, ...], port: int, cert: ServingCert) -> None:
        self.app, self.hosts, self.port = app, hosts, port
        self._ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ssl.load_cert_chain(str(cert.cert), str(cert.key))
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="e2e-aiohttp", daemon=True)
        self.bound: list[str] = []

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        for host in self.hosts:
            site = web.TCPSite(self._runner, host, self.port, ssl_context=self._ssl)
            with contextlib.suppress(OSError):  # e.g. ::1 taken by someone else: one family is enough
                await site.start()
                self.bound.append(host)
        if not self.bound:
            raise OSError(f"could not listen on port {self.port} of any of {self.hosts}")

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


def free_dual_port() -> int:
    """A port free on both 127.0.0.1 and ::1 (``localhost`` may resolve to either)."""
    for _ in range(50):
        port = procs.free_port("127.0.0.1")
        try:
            procs.free_port_exact("::1", port)
        except OSError:
            continue
        return port
    raise OSError("no port free on both 127.0.0.1 and ::1")
