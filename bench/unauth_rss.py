"""Memory under unauthenticated load: does a caller without credentials make the servers grow?

Two real processes on one local cluster, one after the other:

- ``metrics-adapter`` (started as ``e2e.adapter`` starts it): ``--requests`` GETs (default
  2 000) over TLS without a client certificate or token, each with a distinct path of
  ``--path-kib`` KiB (default 64, just under the request-line limit the adapter had when the
  issue was filed, so such paths reached its handler);
- ``gitopsd run`` with a webhook receiver (generic hook configured, as tests/gitopsd/webhooks
  start it): ``--requests`` POSTs of a ``--path-kib`` KiB body with a wrong signature, then
  ``--stalled`` connections (default 200) that send their headers and all but 1 KiB of a 1 MiB
  body, stall for ``--stall-seconds`` and then drop the connection (a client disconnect each).

For each: VmRSS before, its peak (sampled every 20 ms during the load) and after (2 s after the
load), the statuses seen, the same for a second round of as many requests (a bounded server
stays where the first round left it; one that keeps what it is sent grows again), and for the
receiver the number of log lines carrying a traceback (one per disconnect is the bug this
measures). Prints one JSON report.

    .venv/bin/python -m bench.unauth_rss [--cluster-dir DIR] [--requests 2000] [--stalled 200]

To measure another checkout (before a change), run it with ``PYTHONPATH=/that/checkout``: the
adapter and the daemon are started from whatever ``gitopsd`` and ``metrics_adapter`` import.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import ssl
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.cluster import emit
from bench.idle_requests import install_crd
from e2e import procs
from e2e.adapter import start_adapter
from e2e.binaries import ensure_binaries
from e2e.cluster import STATE_FILE, ClusterInfo, LocalCluster, new_cluster_dir
from e2e.daemon import DaemonProcess

MIB = 1024 * 1024
STALL_BODY = 1024 * 1024 - 1  # announced; all but the last KiB is sent
SECRET = b"bench-unauth-secret"
# Something to serve without a Prometheus: a queue whose broker need not be up.
QUEUE_ONLY = 'queues:\n- name: backlog\n  redis: {url: "redis://127.0.0.1:1", list: jobs}\n'


class RssSampler:
    """VmRSS of one process every 20 ms in a thread: the peak of a phase, not the lifetime's."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
        return 0.0

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, self.rss())
            self._stop.wait(0.02)

    def __enter__(self) -> RssSampler:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


async def _exchange(host: str, port: int, head: bytes, body: bytes, ctx: ssl.SSLContext | None) -> str:
    """Send one request on its own connection; the status code (or why there is none)."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=ctx, server_hostname="localhost" if ctx else None), 30
        )
    except (OSError, TimeoutError) as exc:
        return f"connect: {type(exc).__name__}"
    try:
        writer.write(head + body)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 30)
        return line.split(b" ")[1].decode() if line.count(b" ") >= 1 else "no answer"
    except (OSError, TimeoutError, IndexError) as exc:
        return f"error: {type(exc).__name__}"
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 5)


async def _flood(requests: list[tuple[bytes, bytes]], port: int, ctx: ssl.SSLContext | None) -> dict[str, int]:
    sem = asyncio.Semaphore(50)

    async def one(head: bytes, body: bytes) -> str:
        async with sem:
            return await _exchange("127.0.0.1", port, head, body, ctx)

    return dict(Counter(await asyncio.gather(*(one(h, b) for h, b in requests))))


def _phase(sampler_pid: int, run: Any) -> dict[str, Any]:
    s = RssSampler(sampler_pid)
    before = s.rss()
    started = time.monotonic()
    with s:
        statuses = run()
    seconds = round(time.monotonic() - started, 1)
    time.sleep(2)
    after = s.rss()
    peak = max(s.peak, after)
    return {
        "rss_before_mib": before,
        "rss_peak_mib": peak,
        "rss_after_mib": after,
        "growth_peak_mib": round(peak - before, 1),
        "growth_after_mib": round(after - before, 1),
        "seconds": seconds,
        "statuses": statuses,
    }


# -- metrics-adapter ---------------------------------------------------------------------------


def measure_adapter(info: ClusterInfo, work: Path, requests: int, kib: int) -> dict[str, Any]:
    adapter = start_adapter(info, work / "adapter", QUEUE_ONLY, prometheus_url=None)
    try:
        for _ in range(20):  # warm up: the authenticated path once, so its imports and caches are in
            adapter.get("/apis/custom.metrics.k8s.io/v1beta1")
        ctx = ssl.create_default_context(cafile=str(info.ca_cert))
        size = kib * 1024 - len("GET  HTTP/1.1\r\n") - 1
        base = "/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/pods/"

        def flood(round_: int) -> dict[str, int]:
            reqs = []
            for i in range(requests):
                path = f"{base}{round_}-{i:06d}-".ljust(size - len("/m"), "a") + "/m"
                reqs.append((f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode(), b""))
            return asyncio.run(_flood(reqs, adapter.port, ctx))

        first = _phase(adapter.process.pid, lambda: flood(1))
        first["second_round"] = _phase(adapter.process.pid, lambda: flood(2))
        return first
    finally:
        adapter.stop()


# -- gitopsd's webhook receiver ----------------------------------------------------------------


def _kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> None:
    argv = ["kubectl", f"--kubeconfig={kubeconfig}", *args]
    out = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {out.stderr.strip()}")


def _post_head(port: int, length: int, extra: str = "") -> bytes:
    return (
        f"POST /hooks/generic HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\nX-Signature: sha256={'0' * 64}\r\n{extra}\r\n"
    ).encode()


async def _stall(port: int, count: int, hold: float) -> dict[str, int]:
    """``count`` connections send all but 1 KiB of a 1 MiB body, wait ``hold`` s, then drop."""
    conns = []
    for _ in range(count):
        with contextlib.suppress(OSError):
            conns.append(await asyncio.open_connection("127.0.0.1", port))

    async def send(writer: asyncio.StreamWriter) -> None:
        writer.write(_post_head(port, STALL_BODY) + b"{" + b" " * (STALL_BODY - 1024 - 1))
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.drain(), hold)

    await asyncio.gather(*(send(w) for _, w in conns))
    await asyncio.sleep(hold)
    seen: Counter[str] = Counter()
    for reader, writer in conns:
        try:
            line = await asyncio.wait_for(reader.readline(), 0.05)
            seen[line.split(b" ")[1].decode() if line.count(b" ") else "closed"] += 1
        except (OSError, TimeoutError, IndexError):
            seen["no answer yet"] += 1
        transport = writer.transport
        transport.abort()  # the client goes away mid-body
    await asyncio.sleep(1)
    return dict(seen)


def measure_webhooks(
    kubeconfig: Path, work: Path, requests: int, kib: int, stalled: int, hold: float
) -> dict[str, Any]:
    install_crd(kubeconfig)
    ns = f"unauth-rss-{secrets.token_hex(3)}"
    _kubectl(kubeconfig, "create", "namespace", ns)
    _kubectl(kubeconfig, "-n", ns, "create", "secret", "generic", "hooks", f"--from-literal=generic={SECRET.decode()}")
    config = work / "daemon-config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        json.dumps(
            {
                "apiVersion": "gitopsd.dev/v1alpha1",
                "kind": "DaemonConfig",
                "secretNamespace": ns,
                "webhooks": {"generic": {"secretRef": {"name": "hooks", "key": "generic"}}},
            }
        )
    )
    port = procs.free_port("127.0.0.1")
    daemon = DaemonProcess(
        kubeconfig, work / "daemon", f"--namespace={ns}", f"--config={config}",
        f"--webhook-bind-address=127.0.0.1:{port}", f"--webhook-read-timeout={hold + 5:g}", name="gitopsd-unauth",
    ).start()  # fmt: skip
    try:
        pid = daemon.proc.pid if daemon.proc else 0
        body = b"{" + b" " * (kib * 1024 - 2) + b"}"
        reqs = [(_post_head(port, len(body)), body) for _ in range(requests)]
        bodies = _phase(pid, lambda: asyncio.run(_flood(reqs, port, None)))
        bodies["second_round"] = _phase(pid, lambda: asyncio.run(_flood(reqs, port, None)))
        stalls = _phase(pid, lambda: asyncio.run(_stall(port, stalled, hold)))
        text = daemon.log_text()
        return {
            "bodies": bodies,
            "stalled_connections": stalls,
            "log_lines_with_traceback": text.count("Traceback (most recent call last)"),
            "log_lines_about_disconnects": sum(1 for line in text.splitlines() if "disconnect" in line.lower()),
        }
    finally:
        daemon.stop()
        _kubectl(kubeconfig, "delete", "namespace", ns, "--wait=false")


def _info(cluster_dir: Path) -> ClusterInfo:
    state = json.loads((cluster_dir / STATE_FILE).read_text())
    lines = (cluster_dir / "kubeconfig").read_text().splitlines()
    server = next(line.split()[-1] for line in lines if "server:" in line)
    pki = cluster_dir / "pki"
    return ClusterInfo(
        cluster_dir, state["ip_family"], "127.0.0.1" if state["ip_family"] == "ipv4" else "::1", server,
        cluster_dir / "kubeconfig", pki / "ca.crt", pki / "ca.key", pki / "admin.crt", pki / "admin.key", (),
    )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cluster-dir", type=Path, help="a running harness cluster (default: start one)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--path-kib", type=int, default=64, help="size of each path / body")
    parser.add_argument("--stalled", type=int, default=200)
    parser.add_argument("--stall-seconds", type=float, default=8.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-unauth-"))
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()},
        "requests": args.requests,
        "path_or_body_kib": args.path_kib,
        "stalled_connections": args.stalled,
        "pythonpath": os.environ.get("PYTHONPATH", ""),
    }
    cluster = None
    if args.cluster_dir is not None:
        info = _info(args.cluster_dir)
        report["cluster"] = "existing"
    else:
        ensure_binaries()
        cluster = LocalCluster(new_cluster_dir("bench-unauth"), "ipv4", nodes=1)
        info = cluster.start()
        report["cluster"] = "fresh"
    try:
        report["metrics_adapter"] = measure_adapter(info, work, args.requests, args.path_kib)
        report["gitopsd_webhooks"] = measure_webhooks(
            info.kubeconfig, work, args.requests, args.path_kib, args.stalled, args.stall_seconds
        )
    finally:
        if cluster is not None:
            cluster.stop(remove=True)
    report["machine"]["load_average_at_end"] = os.getloadavg()
    return emit(report)


if __name__ == "__main__":
    raise SystemExit(main())
