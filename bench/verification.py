"""What the verification gate costs a release: reconciles, Kubernetes requests, Prometheus queries, CPU.

On a local cluster (fresh, or ``--cluster-dir``) and a real Prometheus scraping a test exporter,
an in-process ``Reconciler`` (the daemon's engine) deploys one Environment of 20 objects whose
``spec.verification`` has ``--metrics`` metrics and ``--samples`` samples a second apart, and
reconciles it whenever the gate asks (``Outcome.requeue_after``) until the verdict. Measured:

- the deploying reconcile with and without the gate (the baseline: the same Environment with no
  ``spec.verification``): seconds, requests by kind, CPU;
- each sampling reconcile (one round of queries), against a no-op reconcile of the baseline
  Environment: seconds, requests, CPU, and the ratio;
- Prometheus queries per release, counted by Prometheus itself
  (``prometheus_http_requests_total`` of ``/api/v1/query`` and ``/api/v1/format_query``), next
  to the expected ``metrics x samples`` queries plus ``metrics`` parse checks.

    .venv/bin/python -m bench.verification [--metrics 3] [--samples 5] [--cluster-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from bench.cluster import emit, on_cluster
from e2e import services
from e2e.exporter import Exporter
from e2e.gitrepo import WorkRepo
from gitopsd import environments
from gitopsd import log as logging_setup
from gitopsd.events import EventRecorder
from gitopsd.kube import Kube
from gitopsd.metrics import Metrics
from gitopsd.reconcile import Reconciler
from gitopsd.sources import GitSources
from gitopsd.spec import parse_environment
from gitopsd.tenancy import Tenancy

#: The repositories here are read over file://.
FILE_SOURCES = Tenancy(allow_file_sources=True)

ROOT = Path(__file__).resolve().parents[1]


def manifests() -> str:
    docs = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"config-{i}"}, "data": {"i": str(i)}}
        for i in range(20)
    ]
    return yaml.safe_dump_all(docs)


def prometheus_requests(url: str) -> Counter[str]:
    """Prometheus' own count of HTTP requests by handler."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:  # noqa: S310 (loopback)
        text = resp.read().decode()
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith("prometheus_http_requests_total{"):
            labels, _, value = line.rpartition(" ")
            handler = labels.split('handler="', 1)[1].split('"', 1)[0]
            counts[handler] += int(float(value))
    return counts


def environment(name: str, ns: str, url: str, target: str, verification: dict[str, Any] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "source": {"url": url, "branch": "main", "path": "deploy"},
        "targetNamespace": target,
        "interval": "1h",
        "wait": {"timeout": "60s"},
    }
    if verification is not None:
        spec["verification"] = verification
    return {"apiVersion": "gitopsd.dev/v1alpha1", "kind": "Environment", "metadata": {"name": name, "namespace": ns},
            "spec": spec}  # fmt: skip


async def measured(rec: Reconciler, kube: Kube, ns: str, name: str) -> tuple[Any, dict[str, Any]]:
    env = parse_environment(await environments.get(kube, ns, name))
    before = Counter(kube.stats.calls)
    wall, cpu = time.monotonic(), time.process_time()
    outcome = await rec.reconcile(env)
    figures = {
        "seconds": time.monotonic() - wall,
        "cpu_seconds": time.process_time() - cpu,
        "requests": sum((Counter(kube.stats.calls) - before).values()),
    }
    if outcome.result == "failed":
        raise RuntimeError(f"reconcile of {name} failed: {outcome.error or outcome.message}")
    return outcome, figures


async def run(kubeconfig: Path, metrics: int, samples: int) -> dict[str, Any]:
    report: dict[str, Any] = {"benchmark": "verification", "metrics": metrics, "samples": samples, "objects": 20}
    crd = ["kubectl", f"--kubeconfig={kubeconfig}", "apply", "--server-side", "--force-conflicts", "-f",
           str(ROOT / "manifests/gitopsd/crd.yaml")]  # fmt: skip
    subprocess.run(crd, check=True, capture_output=True)
    subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", "wait", "--for=condition=Established",
                    "crd/environments.gitopsd.dev"], check=True, capture_output=True)  # fmt: skip
    prom = services.start_prometheus()
    exporter = Exporter().start()
    prom.add_target("bench", exporter.address)
    tmp = Path(tempfile.mkdtemp(prefix="bench-verification-"))
    try:
        ns = f"bench-v-{int(time.time()) % 100000}"
        target = f"{ns}-app"
        for i in range(metrics):
            exporter.set(f"bench_metric_{i}", {"namespace": target}, 0.001)
        deadline = time.monotonic() + 60
        while len(prom.query(f'{{__name__=~"bench_metric_.*",namespace="{target}"}}')) < metrics:
            if time.monotonic() > deadline:
                raise RuntimeError("Prometheus did not scrape the exporter within 60s")
            time.sleep(0.5)
        gate = {
            "prometheus": {"url": prom.url, "timeout": "5s"}, "startDelay": "0s", "interval": "1s",
            "samples": samples, "deadline": f"{samples * 10}s",
            "metrics": [{"name": f"m{i}", "query": f'bench_metric_{i}{{namespace="{{{{.namespace}}}}"}}',
                         "range": {"max": 0.01}} for i in range(metrics)],
        }  # fmt: skip
        repo = WorkRepo.create(tmp / "shop.git", tmp / "work")
        repo.commit({"deploy/all.yaml": manifests()})
        async with Kube.from_kubeconfig(kubeconfig) as kube:
            for name in (ns, target, f"{ns}-base", f"{ns}-warm"):
                await kube.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                         "metadata": {"name": name}})  # fmt: skip
            await kube.create(environments.RESOURCE.path(ns), environment("gated", ns, repo.file_url, target, gate))
            await kube.create(environments.RESOURCE.path(ns),
                              environment("base", ns, repo.file_url, f"{ns}-base", None))  # fmt: skip
            # Warms discovery, the Git mirror and the render path, so neither measured deploy pays for it.
            await kube.create(environments.RESOURCE.path(ns),
                              environment("warm", ns, repo.file_url, f"{ns}-warm", None))  # fmt: skip
            sources = GitSources(tmp / "cache")
            rec = Reconciler(kube, sources, EventRecorder(kube), Metrics(), tenancy=FILE_SOURCES)
            try:
                await measured(rec, kube, ns, "warm")
                before_prom = prometheus_requests(prom.url)
                _, base_deploy = await measured(rec, kube, ns, "base")
                outcome, gated_deploy = await measured(rec, kube, ns, "gated")
                rounds: list[dict[str, Any]] = []
                started = time.monotonic()
                while outcome.requeue_after is not None and time.monotonic() - started < samples * 10:
                    await asyncio.sleep(outcome.requeue_after)
                    outcome, figures = await measured(rec, kube, ns, "gated")
                    rounds.append(figures)
                gate_status = outcome.status.get("verification") or {}
                after_prom = prometheus_requests(prom.url)
                noops = [(await measured(rec, kube, ns, "base"))[1] for _ in range(max(len(rounds), 3))]
                queries = after_prom["/api/v1/query"] - before_prom["/api/v1/query"]
                checks = after_prom["/api/v1/format_query"] - before_prom["/api/v1/format_query"]
                report.update(
                    verdict=gate_status.get("phase"),
                    gate_seconds_wall=round(time.monotonic() - started, 2),
                    deploy_reconcile={"with_gate": _round(gated_deploy), "without": _round(base_deploy)},
                    sampling_reconcile=_median(rounds),
                    noop_reconcile_without_gate=_median(noops),
                    ratio_sampling_to_noop={
                        k: round(_median(rounds)[k] / max(_median(noops)[k], 1e-9), 2)
                        for k in ("seconds", "cpu_seconds", "requests")
                    },
                    reconciles_the_gate_added=len(rounds),
                    prometheus_queries_per_release=queries,
                    prometheus_parse_checks_per_release=checks,
                    # Each sample is a value query and, when it returned a number, the age check of
                    # its newest data point (gates.prometheus); a round whose data predates the
                    # release counts as NoData and is taken again.
                    expected_queries_at_least=2 * metrics * samples,
                    expected_parse_checks=metrics,
                )
            finally:
                await sources.close()
                for name in (ns, target, f"{ns}-base", f"{ns}-warm"):
                    await kube.delete(f"/api/v1/namespaces/{name}")
    finally:
        exporter.stop()
        prom.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def _round(figures: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}


def _median(samples: list[dict[str, Any]]) -> dict[str, Any]:
    if not samples:
        return {}
    return {k: round(statistics.median(s[k] for s in samples), 4) for k in samples[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--metrics", type=int, default=3)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--cluster-dir", type=Path, help="use this running harness cluster instead of a fresh one")
    args = parser.parse_args()
    logging_setup.configure("warning")  # stdout is for the JSON report
    return emit(
        on_cluster(
            "bench-verification",
            args.cluster_dir,
            lambda kubeconfig, _pids: asyncio.run(run(kubeconfig, args.metrics, args.samples)),
        )
    )


if __name__ == "__main__":
    sys.exit(main())
