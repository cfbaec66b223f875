"""Run the real ``metrics-adapter`` program against a harness cluster, behind its aggregation layer.

Tests and benches start the console script as a subprocess, with a serving certificate from
the cluster CA (``aggregation.serving_cert``), the cluster's admin kubeconfig, and a config
file; ``register`` creates the ExternalName Service and the three APIServices
(custom.metrics.k8s.io v1beta1 + v1beta2, external.metrics.k8s.io v1beta1) that send the
aggregator to it. A client for talking to the adapter directly, as the aggregator does (with
the front-proxy client certificate and ``X-Remote-*`` headers), is included for tests that
must bypass kube-apiserver.
"""

from __future__ import annotations

import json
import shutil
import ssl
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e import procs
from e2e.aggregation import ServingCert, apiservice_objects, free_dual_port, serving_cert
from e2e.cluster import ClusterInfo

GROUP_VERSIONS = (
    ("custom.metrics.k8s.io", "v1beta1"),
    ("custom.metrics.k8s.io", "v1beta2"),
    ("external.metrics.k8s.io", "v1beta1"),
)
SERVICE = "metrics-adapter"


def adapter_binary() -> str:
    """The installed console script next to the running interpreter."""
    candidate = Path(sys.executable).with_name("metrics-adapter")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("metrics-adapter")
    if not found:
        raise RuntimeError("metrics-adapter console script not found: pip install -e . first")
    return found


@dataclass(slots=True)
class RunningAdapter:
    port: int
    directory: Path
    cert: ServingCert
    cluster: ClusterInfo
    _procs: procs.ProcessSet = field(default_factory=procs.ProcessSet)

    @property
    def process(self) -> procs.Process:
        return self._procs.procs[0]

    @property
    def log(self) -> Path:
        return self.process.log

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        self._procs.stop()

    # -- talking to the adapter directly --------------------------------------------------------

    def _ctx(self, client_cert: tuple[Path, Path] | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.cluster.ca_cert))
        if client_cert is not None:
            ctx.load_cert_chain(str(client_cert[0]), str(client_cert[1]))
        return ctx

    def front_proxy_cert(self) -> tuple[Path, Path]:
        pki = self.cluster.directory / "pki"
        return pki / "front-proxy-client.crt", pki / "front-proxy-client.key"

    def get(
        self,
        path: str,
        *,
        user: str | None = "kubernetes-admin",
        groups: tuple[str, ...] = ("system:masters",),
        client_cert: tuple[Path, Path] | str | None = "front-proxy",
        headers: dict[str, str] | None = None,
        host: str = "localhost",
    ) -> tuple[int, Any]:
        """GET ``path`` from the adapter itself; returns (status, decoded JSON or text)."""
        cert = self.front_proxy_cert() if client_cert == "front-proxy" else client_cert
        req = urllib.request.Request(f"https://{procs.url_host(host)}:{self.port}{path}")
        if user is not None:
            req.add_header("X-Remote-User", user)
            for g in groups:
                req.add_header("X-Remote-Group", g)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        ctx = self._ctx(cert if not isinstance(cert, str) else None)
        ctx.check_hostname = host == "localhost"
        try:
            with urllib.request.urlopen(req, timeout=30, context=ctx) as resp:  # noqa: S310 - loopback
                status, body = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode(errors="replace")


def start_adapter(
    cluster: ClusterInfo,
    directory: Path,
    config_text: str,
    *,
    prometheus_url: str | None,
    extra_args: list[str] | None = None,
    port: int | None = None,
    wait_ready: bool = True,
    env: dict[str, str] | None = None,
    tie_to_parent: bool = True,
) -> RunningAdapter:
    """Start ``metrics-adapter`` listening on localhost (both families); wait for /readyz.

    ``tie_to_parent=False`` lets it outlive this process (the demo's ``--keep``).
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(config_text)
    port = port or free_dual_port()
    cert = serving_cert(cluster, directory / "serving", SERVICE, "kube-system")
    argv = [
        adapter_binary(),
        f"--config={directory / 'config.yaml'}",
        f"--secure-port={port}",
        "--bind-address=127.0.0.1",
        "--bind-address=::1",
        f"--tls-cert-file={cert.cert}",
        f"--tls-private-key-file={cert.key}",
        f"--kubeconfig={cluster.kubeconfig}",
        *([f"--prometheus-url={prometheus_url}"] if prometheus_url else []),
        *(extra_args or []),
    ]
    running = RunningAdapter(port, directory, cert, cluster)
    running._procs.add(procs.start("metrics-adapter", argv, directory / "logs", env=env, tie_to_parent=tie_to_parent))
    if wait_ready:
        ctx = ssl.create_default_context(cafile=str(cluster.ca_cert))
        try:
            procs.wait_until(
                "metrics-adapter /readyz",
                lambda: procs.http_ok(f"https://localhost:{port}/readyz", ctx),
                timeout=60,
                watch=[running.process],
            )
        except BaseException:
            running.stop()
            raise
    return running


def _admin(cluster: ClusterInfo, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Call the cluster's API as admin; 404 gives None. PATCH bodies are server-side apply."""
    ctx = ssl.create_default_context(cafile=str(cluster.ca_cert))
    ctx.load_cert_chain(str(cluster.admin_cert), str(cluster.admin_key))
    data = json.dumps(body).encode() if body is not None else None
    query = "?fieldManager=e2e-adapter&force=true" if method == "PATCH" else ""
    req = urllib.request.Request(cluster.api_url + path + query, data=data, method=method)  # noqa: S310
    req.add_header("Content-Type", "application/apply-patch+yaml" if method == "PATCH" else "application/json")
    try:
        with urllib.request.urlopen(req, timeout=20, context=ctx) as resp:  # noqa: S310 - loopback
            result: dict[str, Any] = json.loads(resp.read() or b"{}")
            return result
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise RuntimeError(f"{method} {path}: HTTP {exc.code}: {exc.read()[:500]!r}") from exc


def register(cluster: ClusterInfo, adapter: RunningAdapter, namespace: str = "kube-system") -> None:
    """Point the three metrics APIServices at ``adapter`` (replacing earlier registrations)."""
    for i, (group, version) in enumerate(GROUP_VERSIONS):
        svc, apisvc = apiservice_objects(
            group, version, adapter.port, adapter.cert.ca_bundle_b64, service=SERVICE, namespace=namespace
        )
        if i == 0:  # replaced, not applied: applying would merge the new port into the old one's list
            _admin(cluster, "DELETE", f"/api/v1/namespaces/{namespace}/services/{SERVICE}")
            _admin(cluster, "POST", f"/api/v1/namespaces/{namespace}/services", svc)
        _admin(cluster, "PATCH", f"/apis/apiregistration.k8s.io/v1/apiservices/{version}.{group}", apisvc)


def unregister(cluster: ClusterInfo) -> None:
    for group, version in GROUP_VERSIONS:
        _admin(cluster, "DELETE", f"/apis/apiregistration.k8s.io/v1/apiservices/{version}.{group}")


def available(cluster: ClusterInfo) -> bool:
    """All three APIServices report Available=True."""
    for group, version in GROUP_VERSIONS:
        obj = _admin(cluster, "GET", f"/apis/apiregistration.k8s.io/v1/apiservices/{version}.{group}") or {}
        conditions = (obj.get("status") or {}).get("conditions") or []
        if not any(c.get("type") == "Available" and c.get("status") == "True" for c in conditions):
            return False
    return True
