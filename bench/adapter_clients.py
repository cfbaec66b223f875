"""The client libraries the adapter could use for its upstream calls, measured against going direct with aiohttp.

Two choices the design card left open, settled by measurement on this machine:

- Prometheus: ``prometheus_api_client.PrometheusConnect.custom_query`` (blocking ``requests``,
  run in a thread pool as the adapter would have to) versus the adapter's aiohttp client
  (``metrics_adapter.sources.prometheus``), same instant query, same concurrency.
- Kubernetes: the ``kubernetes`` package's blocking client in threads versus the adapter's
  aiohttp client (``metrics_adapter.kube.client``), for a SubjectAccessReview (the call on the
  request path) and a metadata list of 1000 pods (what the object index loads).

Each figure is wall time per call and process CPU per call for N calls at fixed concurrency;
the library figures are also given as ratios over the aiohttp ones, measured in the same run.

    .venv/bin/python -m bench.adapter_clients [--calls 400] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from e2e import services
from e2e.binaries import ensure_binaries
from e2e.cluster import LocalCluster, new_cluster_dir
from metrics_adapter.kube.client import KubeClient, load_settings
from metrics_adapter.sources.prometheus import PrometheusClient, PrometheusSettings


async def _measure(n: int, concurrency: int, call: Callable[[], Awaitable[Any]]) -> dict[str, float]:
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            await call()

    await call()  # warm connections
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one() for _ in range(n)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"ms_per_call": round(wall * 1000 / n, 3), "cpu_ms_per_call": round(cpu * 1000 / n, 3)}


def _ratios(lib: dict[str, float], ours: dict[str, float]) -> dict[str, float]:
    return {k: round(lib[k] / ours[k], 2) for k in ours if ours[k]}


async def prometheus_figures(url: str, n: int, concurrency: int) -> dict[str, Any]:
    from prometheus_api_client import PrometheusConnect

    query = "sum(up) by (job)"
    pool = ThreadPoolExecutor(max_workers=concurrency)
    lib = PrometheusConnect(url=url, disable_ssl=True)
    loop = asyncio.get_running_loop()

    async def via_lib() -> Any:
        return await loop.run_in_executor(pool, lib.custom_query, query)

    ours = PrometheusClient(PrometheusSettings(url))
    try:
        a = await _measure(n, concurrency, via_lib)
        b = await _measure(n, concurrency, lambda: ours.query(query))
    finally:
        await ours.close()
        pool.shutdown()
    return {"prometheus_api_client_in_threads": a, "aiohttp_direct": b, "ratio_library_over_aiohttp": _ratios(a, b)}


async def kubernetes_figures(kubeconfig: str, n: int, concurrency: int) -> dict[str, Any]:
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    authz = client.AuthorizationV1Api(api)
    core = client.CoreV1Api(api)
    pool = ThreadPoolExecutor(max_workers=concurrency)
    loop = asyncio.get_running_loop()
    # Plain dicts, which the package serializes as it does its models (and as the adapter sends).
    sar: Any = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
            "resourceAttributes": {
                "verb": "get",
                "group": "custom.metrics.k8s.io",
                "resource": "pods",
                "namespace": "x",
            },
        },
    }
    ours = KubeClient(load_settings(kubeconfig))
    ns = "bench-clients"
    core.create_namespace({"metadata": {"name": ns}})  # type: ignore[arg-type]
    for i in range(1000):
        cm: Any = {"metadata": {"name": f"c{i}", "labels": {"app": f"a{i % 10}"}}}
        core.create_namespaced_config_map(ns, cm)
    path = f"/api/v1/namespaces/{ns}/configmaps"
    meta = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
    try:
        out: dict[str, Any] = {}
        a = await _measure(
            n, concurrency, lambda: loop.run_in_executor(pool, lambda: authz.create_subject_access_review(sar))
        )
        b = await _measure(n, concurrency, lambda: ours.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", sar))
        out["subject_access_review"] = {
            "kubernetes_client_in_threads": a,
            "aiohttp_direct": b,
            "ratio_library_over_aiohttp": _ratios(a, b),
        }
        m = max(10, n // 20)
        a = await _measure(m, 2, lambda: loop.run_in_executor(pool, lambda: core.list_namespaced_config_map(ns)))
        b = await _measure(m, 2, lambda: ours.get(path, accept=meta))
        out["list_1000_objects"] = {
            "kubernetes_client_in_threads": a,
            "aiohttp_metadata_only": b,
            "ratio_library_over_aiohttp": _ratios(a, b),
        }
        return out
    finally:
        await ours.close()
        pool.shutdown()
        core.delete_namespace(ns)


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    prom = services.start_prometheus()
    cluster = LocalCluster(new_cluster_dir("bench-clients"), "ipv4")
    try:
        info = cluster.start()
        report = {
            "calls": args.calls,
            "concurrency": args.concurrency,
            "prometheus_instant_query": await prometheus_figures(prom.url, args.calls, args.concurrency),
            "kubernetes": await kubernetes_figures(str(info.kubeconfig), args.calls, args.concurrency),
        }
    finally:
        cluster.stop(remove=True)
        prom.stop()
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    ensure_binaries()
    print(json.dumps(asyncio.run(amain(args)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
