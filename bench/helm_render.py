"""Charts: what rendering through gitopsd costs over ``helm template`` alone, and what a repository serves.

1. **Render**: a chart printing 100 objects, rendered ``--runs`` times by ``helm template`` alone
   (the same arguments gitopsd passes: namespace, kube version, the API versions of a cluster,
   ``--include-crds``, one values file) and by ``gitopsd.render.render`` (the same helm call plus
   the sandbox, splitting by template, parsing, limits, identity and namespace checks). Median
   wall time of each and the ratio, measured in one process, one after the other.
2. **Repository**: ``--environments`` Environments (default 50) of one chart from one HTTP Helm
   repository (``e2e.helmrepo``, counting requests), with a real daemon on a harness cluster. After
   all are Ready at 1.0.0 the run watches ``--intervals`` intervals, then publishes 1.1.0 and waits
   for all to be Ready at it. Reported: index fetches over the watched intervals (per interval),
   and downloads of each version's archive.

    .venv/bin/python -m bench.helm_render [--runs 20] [--environments 50] [--intervals 4] [--cluster-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cluster import emit, on_cluster
from bench.sync_environments import CRD, count_ready, create
from e2e.binaries import ensure_helm
from e2e.daemon import DaemonProcess
from e2e.helmrepo import HelmRepo, write_chart
from gitopsd.kube import Kube
from gitopsd.render import HelmOptions, OfflineScopes, RenderOptions, render
from gitopsd.render.helm import HELM_VARIABLE
from gitopsd.sources import LocalTree

CHART_OBJECTS = 100
TEMPLATE = """\
{{- range $i := until (int .Values.count) }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $.Release.Name }}-{{ $i }}
  labels: {app: {{ $.Chart.Name }}, index: "{{ $i }}"}
data:
  greeting: {{ $.Values.greeting | quote }}
  kube: {{ $.Capabilities.KubeVersion.Version | quote }}
{{- end }}
"""


def chart(directory: Path, version: str, count: int) -> Path:
    return write_chart(
        directory,
        {
            "Chart.yaml": f"apiVersion: v2\nname: shop\nversion: {version}\n",
            "values.yaml": f"count: {count}\ngreeting: hello\n",
            "values-prod.yaml": "greeting: prod\n",
            "templates/configmaps.yaml": TEMPLATE,
        },
    )


def render_figures(runs: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-helm-"))
    chart(work / "shop", "1.0.0", CHART_OBJECTS)
    api_versions = (*(f"g{n}.example.com/v1" for n in range(150)), "apps/v1", "apps/v1/Deployment")
    settings = HelmOptions("web", "apps", "v1.33.13", api_versions, True, ("values-prod.yaml",))
    options = RenderOptions(path="shop", environment="web", revision=None, target_namespace="apps", helm=settings)
    helm = str(ensure_helm())
    os.environ[HELM_VARIABLE] = helm
    argv = [helm, "template", "web", str(work / "shop"), "--skip-tests", "--namespace", "apps"]
    argv += ["--kube-version", "v1.33.13", "--api-versions", ",".join(api_versions), "--include-crds"]
    argv += ["--values", str(work / "shop" / "values-prod.yaml")]
    tree = LocalTree(work)
    objects = len(render(tree, options, OfflineScopes()))  # warm both (page cache, helm binary)
    subprocess.run(argv, capture_output=True, check=True)
    alone, ours = [], []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        alone.append(time.perf_counter() - started)
        started = time.perf_counter()
        render(tree, options, OfflineScopes())
        ours.append(time.perf_counter() - started)
    shutil.rmtree(work, ignore_errors=True)
    helm_ms, gitopsd_ms = statistics.median(alone) * 1000, statistics.median(ours) * 1000
    return {
        "objects": objects,
        "runs": runs,
        "helm_template_ms_median": round(helm_ms, 1),
        "gitopsd_render_ms_median": round(gitopsd_ms, 1),
        "ratio": round(gitopsd_ms / helm_ms, 2),
    }


def chart_environment(name: str, namespace: str, target: str, url: str, interval: int) -> dict[str, Any]:
    return {
        "apiVersion": "gitopsd.dev/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "chart": {"repository": url, "name": "shop", "version": "1.x"},
            "helm": {"releaseName": name, "values": {"count": 2}},
            "targetNamespace": target,
            "interval": f"{interval}s",
            "wait": {"timeout": "0s"},
        },
    }


async def _all_at(kube: Kube, namespace: str, revision: str, count: int, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        items = (await kube.list(f"/apis/gitopsd.dev/v1alpha1/namespaces/{namespace}/environments")).items
        at = [i for i in items if (i.get("status") or {}).get("lastAppliedRevision") == revision]
        if len(at) == count and await count_ready(kube, namespace) == count:
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    raise RuntimeError(f"not all {count} Environments Ready at {revision} after {timeout:.0f} s")


async def repository_figures(kubeconfig: Path, environments: int, intervals: int, interval: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-helmrepo-"))
    repo = HelmRepo(work / "repo").start()
    ops, target = "bench-helm-ops", "bench-helm-apps"
    try:
        repo.publish(chart(work / "v100", "1.0.0", 2))
        envs = [chart_environment(f"shop-{n:02d}", ops, target, repo.url, interval) for n in range(environments)]
        os.environ[HELM_VARIABLE] = str(ensure_helm())
        kubectl = ["kubectl", f"--kubeconfig={kubeconfig}"]
        subprocess.run([*kubectl, "apply", "--server-side", "-f", str(CRD)], capture_output=True, check=True)
        established = ["wait", "--for=condition=established", "--timeout=60s", "crd/environments.gitopsd.dev"]
        subprocess.run([*kubectl, *established], capture_output=True, check=True)
        async with Kube.from_kubeconfig(kubeconfig, max_connections=32) as kube:
            await kube.discovery.refresh()
            await create(
                kube, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in (ops, target)]
            )
            await create(kube, envs)
            daemon = DaemonProcess(kubeconfig, work / "daemon", f"--namespace={ops}").start(timeout=120)
            try:
                first = await _all_at(kube, ops, "shop@1.0.0", environments, 600)
                before = repo.counts["/index.yaml"]
                await asyncio.sleep(intervals * interval)
                steady = repo.counts["/index.yaml"] - before
                repo.publish(chart(work / "v110", "1.1.0", 2))
                upgrade = await _all_at(kube, ops, "shop@1.1.0", environments, 600)
            finally:
                daemon.stop()
    finally:
        repo.stop()
        shutil.rmtree(work, ignore_errors=True)
    return {
        "environments": environments,
        "interval_seconds": interval,
        "all_ready_at_1.0.0_seconds": round(first, 1),
        "index_fetches_over_watched_intervals": steady,
        "watched_intervals": intervals,
        "index_fetches_per_interval": round(steady / intervals, 2),
        "downloads_1.0.0": repo.counts["/shop-1.0.0.tgz"],
        "downloads_1.1.0": repo.counts["/shop-1.1.0.tgz"],
        "all_ready_at_1.1.0_after_publish_seconds": round(upgrade, 1),
        "index_fetches_total": repo.counts["/index.yaml"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--environments", type=int, default=50)
    parser.add_argument("--intervals", type=int, default=4)
    parser.add_argument("--interval", type=int, default=10, help="the Environments' interval, seconds")
    parser.add_argument("--cluster-dir", type=Path)
    args = parser.parse_args()
    report: dict[str, Any] = {"render": render_figures(args.runs)}

    def measure(kubeconfig: Path, _pids: dict[str, int]) -> dict[str, Any]:
        return asyncio.run(repository_figures(kubeconfig, args.environments, args.intervals, args.interval))

    report["repository"] = on_cluster("bench-helm", args.cluster_dir, measure)
    return emit(report)


if __name__ == "__main__":
    raise SystemExit(main())
