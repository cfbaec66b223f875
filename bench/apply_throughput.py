"""How fast gitopsd applies one large Environment, against ``kubectl apply --server-side``.

On one fresh local cluster: N apps (default 1000) of 4 objects each (Deployment with 0
replicas, ServiceAccount, Service, ConfigMap: the shape of Flux's published benchmark) are
applied once by ``kubectl apply --server-side`` (the baseline) and once by ``Applier.sync``,
each into a fresh namespace, from the same rendered objects. Then two no-op re-syncs: with the
applier's memo (a reconcile in a running daemon) and without (just after a restart).

For each run: wall time, our process' CPU time (kubectl's for the baseline), the CPU time of
kube-apiserver, etcd and kube-controller-manager during the run, requests by kind and writes.
Between runs the controllers are given time to settle (bounded), so one run's follow-up work
(ReplicaSets, EndpointSlices) does not land in the next one's figures.

    .venv/bin/python -m bench.apply_throughput [--apps 1000] [--concurrency 16] [--cluster-dir DIR] [--skip-baseline]

``--cluster-dir`` uses an already running harness cluster (``python -m e2e.cluster up``)
instead of starting a fresh one, ``--skip-baseline`` leaves out the kubectl run: both for
iterating, not for figures to report. The load average is recorded at start and end: other
work on the machine slows both runs, so compare figures from quiet runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from bench.cluster import emit, on_cluster
from gitopsd.apply import Applier, ApplyMemo, ApplyOptions, Inventory, SyncResult
from gitopsd.kube import Kube
from gitopsd.model import Manifest

WATCHED = ("kube-apiserver", "etcd", "kube-controller-manager")


def app(namespace: str, i: int) -> list[dict[str, Any]]:
    """One app: the four objects of Flux's benchmark shape."""
    name = f"app-{i:04d}"
    labels = {"app": name}
    meta = {"name": name, "namespace": namespace, "labels": labels}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": name,
                        "containers": [
                            {
                                "name": "app",
                                "image": "registry.invalid/app:1.0.0",
                                "ports": [{"containerPort": 8080, "name": "http"}],
                                "envFrom": [{"configMapRef": {"name": name}}],
                            }
                        ],
                    },
                },
            },
        },
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"GREETING": f"hello from {name}"}},
    ]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(v) for v in fields[11:15]) / ticks


class Meter:
    """Wall time and CPU of the control plane (and of us or a child) over one run."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = {name: pid for name, pid in pids.items() if name in WATCHED}

    def __enter__(self) -> Meter:
        self._wall = time.monotonic()
        self._self = time.process_time()
        self._children = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._cpu = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self._wall
        self.own_cpu = time.process_time() - self._self
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.child_cpu = (children.ru_utime - self._children.ru_utime) + (children.ru_stime - self._children.ru_stime)
        self.cluster_cpu = {name: round(cpu_seconds(pid) - self._cpu[name], 2) for name, pid in self.pids.items()}

    def figures(self, client_cpu: float) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 2),
            "client_cpu_seconds": round(client_cpu, 2),
            "cluster_cpu_seconds": self.cluster_cpu,
        }


def settle(pids: dict[str, int], limit: float = 90.0) -> float:
    """Wait (bounded) until the control plane is nearly idle: < 10% of a core over one second."""
    started = time.monotonic()
    watched = [pid for name, pid in pids.items() if name in WATCHED]
    while time.monotonic() - started < limit:
        before = sum(cpu_seconds(p) for p in watched)
        time.sleep(1.0)
        if sum(cpu_seconds(p) for p in watched) - before < 0.1:
            break
    return round(time.monotonic() - started, 1)


def kubectl_apply(kubeconfig: Path, namespace: str, objects: list[dict[str, Any]], workdir: Path) -> dict[str, Any]:
    files = workdir / namespace
    files.mkdir(parents=True)
    # kubectl applies files in name order: the Namespace first.
    namespace_doc = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    (files / "00-namespace.yaml").write_text(yaml.safe_dump(namespace_doc))
    for i in range(0, len(objects), 4):
        name = objects[i]["metadata"]["name"]
        (files / f"{name}.yaml").write_text(yaml.safe_dump_all(objects[i : i + 4]))
    binary = os.environ.get("KUBECTL") or shutil.which("kubectl") or "kubectl"
    argv = [binary, f"--kubeconfig={kubeconfig}", "apply", "--server-side", "--field-manager=bench", "-f", str(files)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"kubectl apply failed: {out.stderr[-2000:]}")
    return {"applied": len(out.stdout.splitlines())}


async def gitopsd_runs(
    kubeconfig: Path, namespace: str, objects: list[dict[str, Any]], concurrency: int, pids: dict[str, int]
) -> dict[str, Any]:
    manifests = [Manifest({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}, "namespace.yaml")]
    manifests += [Manifest(obj, f"{obj['metadata']['name']}.yaml") for obj in objects]
    options = ApplyOptions(owner=f"bench.{namespace}"[:63])
    memo = ApplyMemo()
    out: dict[str, Any] = {}
    async with Kube.from_kubeconfig(kubeconfig, max_connections=max(32, concurrency * 2)) as kube:
        await kube.discovery.refresh()
        applier = Applier(kube, concurrency=concurrency)
        with Meter(pids) as meter:
            first = await applier.sync(manifests, Inventory(), options, memo)
        out["initial"] = {**meter.figures(meter.own_cpu), **_counts(first)}
        out["settle_seconds_after_initial"] = settle(pids)
        with Meter(pids) as meter:
            again = await applier.sync(manifests, first.inventory, options, memo)
        out["noop_with_memo"] = {**meter.figures(meter.own_cpu), **_counts(again)}
        with Meter(pids) as meter:
            restart = await Applier(kube, concurrency=concurrency).sync(manifests, first.inventory, options, None)
        out["noop_after_restart"] = {**meter.figures(meter.own_cpu), **_counts(restart)}
    return out


def _counts(result: SyncResult) -> dict[str, Any]:
    return {
        "actions": {k: v for k, v in result.action_counts().items() if v},
        "requests": result.requests,
        "writes": result.writes,
        "requests_by_kind": result.requests_by_kind,
        "phases_seconds": result.timings,
    }


def run(kubeconfig: Path, pids: dict[str, int], apps: int, concurrency: int, baseline: bool = True) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    report: dict[str, Any] = {"benchmark": "apply_throughput", "apps": apps, "objects": apps * 4 + 1}
    report["concurrency"] = concurrency
    report["load_average_at_start"] = os.getloadavg()[0]
    if baseline:
        _baseline(report, kubeconfig, pids, apps, run_id)
    ns = f"bench-gitopsd-{run_id}"
    objects = [obj for i in range(apps) for obj in app(ns, i)]
    report["gitopsd"] = asyncio.run(gitopsd_runs(kubeconfig, ns, objects, concurrency, pids))
    # Peak resident memory of this process (the applier's working set for the largest sync).
    report["gitopsd"]["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    report["load_average_at_end"] = os.getloadavg()[0]
    if baseline:
        initial = report["gitopsd"]["initial"]["seconds"]
        report["ratio_gitopsd_to_kubectl"] = round(initial / report["kubectl"]["seconds"], 3)
        report["goal"] = {
            "under_60s": initial < 60,
            "at_most_half_of_kubectl": report["ratio_gitopsd_to_kubectl"] <= 0.5,
        }
    return report


def _baseline(report: dict[str, Any], kubeconfig: Path, pids: dict[str, int], apps: int, run_id: str) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-apply-") as tmp:
        ns = f"bench-kubectl-{run_id}"
        objects = [obj for i in range(apps) for obj in app(ns, i)]
        report["settle_seconds_before"] = settle(pids)
        with Meter(pids) as meter:
            kubectl_apply(kubeconfig, ns, objects, Path(tmp))
        report["kubectl"] = meter.figures(meter.child_cpu)
    report["settle_seconds_after_kubectl"] = settle(pids)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--cluster-dir", type=Path, help="use this running harness cluster instead of a fresh one")
    parser.add_argument("--skip-baseline", action="store_true", help="no kubectl run (for iterating on gitopsd alone)")
    args = parser.parse_args()
    return emit(
        on_cluster(
            "bench-apply",
            args.cluster_dir,
            lambda kubeconfig, pids: run(kubeconfig, pids, args.apps, args.concurrency, not args.skip_baseline),
        )
    )


if __name__ == "__main__":
    sys.exit(main())
