"""Chart repositories for the tests: an HTTP Helm repository and an OCI registry, on loopback.

``HelmRepo`` serves a directory of charts packaged by ``helm package`` with an ``index.yaml``
written by ``helm repo index``, from a small threaded HTTP server that counts requests per path
(the bench reads the counts) and can require HTTP basic authentication. ``stop``/``start`` keep
the port, so a test can make the repository unreachable and bring it back.

``OciRegistry`` runs go-containerregistry's ``registry`` (in memory) and pushes charts with
``helm push --plain-http``. That registry has no authentication, so ``OciTokenProxy`` stands in
front of it the way Docker Hub or GHCR do: 401 with a ``Bearer`` challenge, a token realm that
takes HTTP basic credentials, then every request forwarded with the token checked.
"""

from __future__ import annotations

import base64
import secrets
import shutil
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from e2e import procs
from e2e.binaries import ensure_helm, ensure_registry


def helm(*args: str, cwd: Path | None = None) -> str:
    """Run the harness's helm (its own empty home) and return stdout; fail with its stderr."""
    home = Path(tempfile.gettempdir()) / "gitopsd-test-helm-home"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    out = subprocess.run([str(ensure_helm()), *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"helm {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


def write_chart(directory: Path, files: dict[str, str]) -> Path:
    """A chart directory made of ``files`` (relative path -> text)."""
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return directory


def package(chart: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    line = helm("package", str(chart), "--destination", str(dest)).strip().splitlines()[-1]
    return Path(line.rsplit(": ", 1)[-1])


class _Handler(SimpleHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.counts[self.path] += 1
        if self.server.login:
            expected = "Basic " + base64.b64encode(self.server.login.encode()).decode()
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="charts"')
                self.end_headers()
                return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _Server(ThreadingHTTPServer):
    counts: Counter[str]
    login: str | None


class HelmRepo:
    """An HTTP Helm repository on 127.0.0.1; ``url`` is what ``spec.chart.repository`` names."""

    def __init__(self, root: Path, *, login: str | None = None) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = procs.free_port("127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port}"
        self.counts: Counter[str] = Counter()
        self.login = login  # "user:password" required when set
        self._server: _Server | None = None

    def start(self) -> HelmRepo:
        root = str(self.root)

        class Handler(_Handler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=root, **kwargs)

        server = _Server(("127.0.0.1", self.port), Handler)
        server.counts, server.login = self.counts, self.login
        threading.Thread(target=server.serve_forever, daemon=True, name=f"helmrepo-{self.port}").start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def publish(self, chart: Path) -> Path:
        """Package ``chart`` into the repository and rewrite its index."""
        archive = package(chart, self.root)
        helm("repo", "index", str(self.root), "--url", self.url)
        return archive


class OciRegistry:
    """go-containerregistry's in-memory registry on loopback; charts live under ``url`` (oci://)."""

    def __init__(self, logs: Path) -> None:
        self.port = procs.free_port("127.0.0.1")
        self.host = f"localhost:{self.port}"
        self.url = f"oci://{self.host}/charts"
        self.logs = logs
        self.proc: procs.Process | None = None

    def start(self) -> OciRegistry:
        self.proc = procs.start("registry", [str(ensure_registry()), f"-port={self.port}"], self.logs)
        procs.wait_until(
            "OCI registry", lambda: procs.http_ok(f"http://{self.host}/v2/"), timeout=30, watch=[self.proc]
        )
        return self

    def push(self, chart: Path, scratch: Path) -> None:
        archive = package(chart, scratch)
        helm("push", str(archive), self.url, "--plain-http")

    def stop(self) -> None:
        if self.proc is not None:
            procs.kill_group(self.proc.pid)
            self.proc = None


class OciTokenProxy:
    """A registry front that wants a token (from ``/token`` with ``login``) before forwarding to ``backend``."""

    def __init__(self, backend: OciRegistry, login: str) -> None:
        self.backend, self.login = backend, login
        self.port = procs.free_port("127.0.0.1")
        self.url = f"oci://localhost:{self.port}/charts"
        self.token = secrets.token_hex(16)
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> OciTokenProxy:
        proxy = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/token"):
                    expected = "Basic " + base64.b64encode(proxy.login.encode()).decode()
                    if self.headers.get("Authorization") != expected:
                        self._answer(401, b'{"errors": [{"code": "UNAUTHORIZED"}]}', {})
                    else:
                        self._answer(200, f'{{"token": "{proxy.token}"}}'.encode(), {})
                    return
                if self.headers.get("Authorization") != f"Bearer {proxy.token}":
                    realm = f'Bearer realm="http://localhost:{proxy.port}/token",service="test-registry"'
                    self._answer(401, b'{"errors": [{"code": "UNAUTHORIZED"}]}', {"WWW-Authenticate": realm})
                    return
                request = urllib.request.Request(f"http://{proxy.backend.host}{self.path}")
                if self.headers.get("Accept"):
                    request.add_header("Accept", self.headers["Accept"])
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback only
                        self._answer(answer.status, answer.read(), {"Content-Type": answer.headers["Content-Type"]})
                except urllib.error.HTTPError as exc:
                    self._answer(exc.code, exc.read(), {})

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True, name=f"ociproxy-{self.port}").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def copy_chart(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest)
    return dest
