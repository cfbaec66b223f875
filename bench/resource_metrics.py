"""metrics.k8s.io ``pods`` list of 1,000 pods: metrics-adapter vs prometheus-adapter v0.12.0, same run.

A local cluster (10 kwok nodes) holds 1,000 pods in 100 Deployments; a Prometheus scrapes
cAdvisor-style series for each of them (``container_cpu_usage_seconds_total`` as a counter,
``container_memory_working_set_bytes``) and for each node. Both adapters run with
prometheus-adapter's own deploy config (``deploy/manifests/config-map.yaml``, kept as the
test fixture ``tests/metrics_adapter/resource_metrics_config_map.yaml``) against the same
Prometheus, and are asked directly as the aggregator asks (front-proxy certificate,
``X-Remote-User``) for ``/apis/metrics.k8s.io/v1beta1/namespaces/bench/pods``, what
``kubectl top pods -n bench`` and an HPA over the namespace read:

- closed loop at a few concurrencies for ``--seconds`` each: throughput and p50/p99;
- one answer of each checked: 1,000 items, the same pods, cpu and memory per container.

metrics-server v0.8.0 is not measured: it scrapes each kubelet's ``/metrics/resource``, and
kwok nodes have no kubelet, so it would serve nothing here; the report says so.

    .venv/bin/python -m bench.resource_metrics [--seconds 15] [--concurrency 1,8]
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import yaml

from bench import adapter_loadgen as loadgen
from bench import adapter_promadapter as promadapter
from bench.adapter_load import GROUPS, NS, make_pods
from bench.adapter_promadapter import VERSION as PROMADAPTER_VERSION
from bench.adapter_promadapter import ensure_prometheus_adapter
from e2e import procs, services
from e2e.adapter import start_adapter
from e2e.aggregation import free_dual_port, serving_cert
from e2e.binaries import ensure_binaries
from e2e.cluster import ClusterInfo, LocalCluster, new_cluster_dir
from e2e.exporter import Exporter, Series

CONFIG_MAP = Path(__file__).resolve().parents[1] / "tests" / "metrics_adapter" / "resource_metrics_config_map.yaml"
PATH = f"/apis/metrics.k8s.io/v1beta1/namespaces/{NS}/pods"
HEADERS = ("X-Remote-User: kubernetes-admin", "X-Remote-Group: system:masters")
NOT_MEASURABLE = (
    "metrics-server v0.8.0 reads each node's kubelet (/metrics/resource); the bench cluster's nodes are "
    "kwok nodes with no kubelet, so it would list no pods at all: not measurable here"
)


def log(msg: str) -> None:
    print(f"[bench.resource_metrics] {msg}", file=sys.stderr, flush=True)


def config_text() -> str:
    text: str = yaml.safe_load(CONFIG_MAP.read_text())["data"]["config.yaml"]
    return text


class Cadvisor:
    """cAdvisor-style series for ``pods`` (one container each) and the nodes, counters computed at scrape."""

    def __init__(self, pods: list[str], nodes: list[str]) -> None:
        self.pods, self.nodes, self.start = pods, nodes, time.time()

    def series(self) -> list[Series]:
        elapsed = time.time() - self.start
        out: list[Series] = []
        for i, pod in enumerate(self.pods):
            lbl = {"namespace": NS, "pod": pod, "container": "app"}
            cores = 0.01 * (1 + i % 50)
            out.append(("container_cpu_usage_seconds_total", lbl, 100 + cores * elapsed))
            out.append(("container_memory_working_set_bytes", lbl, float((16 + i % 64) * 2**20)))
        for node in self.nodes:
            out.append(("node_cpu_usage_seconds_total", {"node": node}, 1000 + 2.0 * elapsed))
            out.append(("node_memory_working_set_bytes", {"node": node}, float(4 * 2**30)))
        return out


@contextmanager
def prometheus_adapter(info: ClusterInfo, prom: services.Prometheus, directory: Path) -> Iterator[loadgen.Target]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(config_text())
    cert = serving_cert(info, directory / "serving", "prometheus-adapter", "kube-system")
    port = free_dual_port()
    argv = promadapter.argv(
        ensure_prometheus_adapter(), directory / "config.yaml", prom.url, port, cert.cert, cert.key, info.kubeconfig
    )
    proc = procs.start("prometheus-adapter", argv, directory / "logs")
    pki = info.directory / "pki"
    try:
        yield loadgen.Target(
            f"https://localhost:{port}", info.ca_cert, pki / "front-proxy-client.crt", pki / "front-proxy-client.key",
            HEADERS,
        )  # fmt: skip
    finally:
        procs.kill_group(proc.pid)


def fetch(target: loadgen.Target) -> dict[str, Any] | None:
    """One answer of PATH, or None while it fails or lists fewer than all pods."""
    ctx = ssl.create_default_context(cafile=str(target.ca))
    assert target.cert is not None and target.key is not None
    ctx.load_cert_chain(str(target.cert), str(target.key))
    req = urllib.request.Request(target.base + PATH)  # noqa: S310 - loopback
    for h in target.headers:
        k, _, v = h.partition(": ")
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30, context=ctx) as resp:  # noqa: S310
            body: dict[str, Any] = json.loads(resp.read())
    except (OSError, ValueError):
        return None
    return body


def summary(body: dict[str, Any]) -> dict[str, Any]:
    items = body.get("items") or []
    first = items[0] if items else {}
    return {
        "items": len(items),
        "bytes": len(json.dumps(body, separators=(",", ":"))),
        "example": {k: first.get(k) for k in ("window", "containers")},
    }


def measure(target: loadgen.Target, concurrencies: list[int], seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in concurrencies:
        r = loadgen.run(target, [PATH], duration=seconds, concurrency=c, warmup=2)
        out[f"concurrency_{c}"] = {
            k: r.get(k) for k in ("requests", "errors", "ok_rps", "p50_ms", "p90_ms", "p99_ms", "max_ms", "bytes_mean")
        }
    return out


def wait_full(target: loadgen.Target, want: int, what: str) -> dict[str, Any]:
    def full() -> dict[str, Any] | None:
        body = fetch(target)
        return body if body is not None and len(body.get("items") or []) >= want else None

    result: dict[str, Any] = procs.wait_until(f"{what} listing {want} pods", full, timeout=300, interval=2)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="per concurrency, per adapter")
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("--pods-per-group", type=int, default=10)
    args = parser.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    ensure_binaries()
    loadgen.ensure_loadgen()
    ensure_prometheus_adapter()
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()},
        "path": PATH,
        "config": "prometheus-adapter deploy/manifests/config-map.yaml (unchanged)",
    }
    with ExitStack() as stack:
        log("starting cluster (10 kwok nodes), Prometheus, exporter")
        cluster = LocalCluster(new_cluster_dir("bench-resource"), "ipv4", nodes=10)
        info = cluster.start()
        stack.callback(cluster.stop, remove=True)
        prom = services.start_prometheus(scrape_interval="5s")
        stack.callback(prom.stop)
        pods = make_pods(info, GROUPS, args.pods_per_group)
        want = len(pods)
        log(f"{want} pods")
        exporter = Exporter().start()
        stack.callback(exporter.stop)
        exporter.callbacks.append(Cadvisor(pods, list(info.node_names)).series)
        prom.add_target("bench-cadvisor", exporter.address)
        procs.wait_until(
            "rates computable", lambda: prom.query("irate(container_cpu_usage_seconds_total[4m])"), timeout=90
        )
        tmp = Path(tempfile.mkdtemp(prefix="bench-resource-"))
        adapter = start_adapter(info, tmp / "ours", config_text(), prometheus_url=prom.url)
        stack.callback(adapter.stop)
        cert, key = adapter.front_proxy_cert()
        ours = loadgen.Target(f"https://localhost:{adapter.port}", info.ca_cert, cert, key, HEADERS)
        ours_body = wait_full(ours, want, "metrics-adapter")
        log("measuring metrics-adapter")
        report["metrics_adapter"] = {"answer": summary(ours_body), "load": measure(ours, concurrencies, args.seconds)}
        adapter.stop()
        log(f"measuring prometheus-adapter {PROMADAPTER_VERSION}")
        with prometheus_adapter(info, prom, tmp / "promadapter") as theirs:
            theirs_body = wait_full(theirs, want, "prometheus-adapter")
            report["prometheus_adapter"] = {
                "version": PROMADAPTER_VERSION,
                "answer": summary(theirs_body),
                "load": measure(theirs, concurrencies, args.seconds),
            }
        report["metrics_server"] = {"version": "v0.8.0", "measured": False, "reason": NOT_MEASURABLE}
        ours_names = {i["metadata"]["name"] for i in ours_body["items"]}
        theirs_names = {i["metadata"]["name"] for i in theirs_body["items"]}
        report["same_pods_listed"] = ours_names == theirs_names
        report["ratios_ours_over_theirs"] = {
            k: {
                "ok_rps": _ratio(v["ok_rps"], report["prometheus_adapter"]["load"][k]["ok_rps"]),
                "p99_ms": _ratio(v["p99_ms"], report["prometheus_adapter"]["load"][k]["p99_ms"]),
            }
            for k, v in report["metrics_adapter"]["load"].items()
        }
    print(json.dumps(report, indent=2))
    return 0


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


if __name__ == "__main__":
    sys.exit(main())
