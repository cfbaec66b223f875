"""Initial sync through the real daemon: many small Environments, and one big one, against kubectl.

On one fresh local cluster, from one Git repository holding N apps of 4 objects each
(Deployment with 0 replicas, ServiceAccount, Service, ConfigMap: the shape of Flux's published
benchmark, 1000 such apps in 4 min 16 s on 16 cores):

- ``kubectl``: ``kubectl apply --server-side`` of the same rendered files, one invocation (the
  baseline, same cluster, same run);
- ``environments``: N Environments, one per app directory, all created before ``gitopsd run``
  starts; timed from the daemon's start to every object applied and to every Environment Ready
  (so Git fetch, render, dry-run, apply, release records, health and status are all in);
- ``one_environment``: one Environment whose path holds all N apps (N x 4 objects), same timing.

Then a no-op reconcile of a 50-object Environment, in process, reading live state with requests
(as ``gitopsd diff``) and from a watch cache (as the daemon): requests by kind, writes (must be
0), CPU time. The load average is recorded: compare figures from quiet runs.

    .venv/bin/python -m bench.sync_environments [--apps 1000] [--workers 16] [--skip-baseline]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from bench.apply_throughput import Meter, app, cpu_seconds, kubectl_apply, settle
from bench.cluster import emit, on_cluster
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from gitopsd import environments
from gitopsd.events import EventRecorder
from gitopsd.kube import Kube
from gitopsd.kube.watchcache import WatchCache
from gitopsd.model import ENVIRONMENT_LABEL, FIELD_MANAGER
from gitopsd.reconcile import Reconciler
from gitopsd.sources import GitSources
from gitopsd.spec import parse_environment
from gitopsd.tenancy import Tenancy

#: The repositories here are read over file://.
FILE_SOURCES = Tenancy(allow_file_sources=True)

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "manifests" / "gitopsd" / "crd.yaml"


def app_files(apps: int) -> dict[str, str | bytes | None]:
    """``apps/app-NNNN/app.yaml`` for each app: its four objects, without a namespace."""
    files: dict[str, str | bytes | None] = {}
    for i in range(apps):
        objects = app("placeholder", i)
        for obj in objects:
            obj["metadata"].pop("namespace", None)  # targetNamespace decides (the four share one metadata)
        files[f"apps/app-{i:04d}/app.yaml"] = yaml.safe_dump_all(objects)
    return files


def write_repo(directory: Path, apps: int) -> WorkRepo:
    repo = WorkRepo.create(directory / "remote" / "apps.git", directory / "work")
    repo.commit(app_files(apps), "apps")
    return repo


def environment(name: str, namespace: str, url: str, path: str, target: str) -> dict[str, Any]:
    return {
        "apiVersion": "gitopsd.dev/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "source": {"url": url, "branch": "main", "path": path},
            "targetNamespace": target,
            "interval": "1h",
            "wait": {"timeout": "5m"},
        },
    }


async def create(kube: Kube, objects: list[dict[str, Any]]) -> None:
    sem = asyncio.Semaphore(32)

    async def one(obj: dict[str, Any]) -> None:
        async with sem:
            resource = await kube.discovery.resource_for(obj)
            await kube.apply(resource.object_path(obj), obj, field_manager="bench", force=True)

    await asyncio.gather(*(one(o) for o in objects))


async def count_ready(kube: Kube, namespace: str) -> int:
    items = (await environments.list_all(kube, namespace)).items
    return sum(
        1
        for item in items
        for cond in (item.get("status") or {}).get("conditions") or []
        if cond.get("type") == "Ready" and cond.get("status") == "True"
    )


async def count_objects(kube: Kube, namespace: str) -> int:
    total = 0
    for path in (f"/api/v1/namespaces/{namespace}/configmaps", f"/apis/apps/v1/namespaces/{namespace}/deployments"):
        total += len((await kube.list(path, label_selector="gitopsd.dev/environment")).items)
    return total


async def daemon_run(
    kubeconfig: Path,
    pids: dict[str, int],
    workdir: Path,
    envs: list[dict[str, Any]],
    target: str,
    apps: int,
    workers: int,
    *,
    prepare: Sequence[dict[str, Any]] = (),
    extra: Sequence[str] = (),
) -> dict[str, Any]:
    """Create the Environments, start the daemon, time until all objects exist and all are Ready.

    ``prepare``: objects created after the two namespaces, before the Environments (RBAC);
    ``extra``: more ``gitopsd run`` arguments."""
    ops = envs[0]["metadata"]["namespace"]
    async with Kube.from_kubeconfig(kubeconfig, max_connections=64) as kube:
        await kube.discovery.refresh()
        namespaces = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in (ops, target)]
        await create(kube, namespaces)
        await create(kube, list(prepare))
        await create(kube, envs)
        settle(pids)
        daemon = DaemonProcess(
            kubeconfig, workdir / f"daemon-{ops}", f"--namespace={ops}", f"--workers={workers}", *extra
        )
        report: dict[str, Any] = {"environments": len(envs), "objects": apps * 4, "workers": workers}
        with Meter(pids) as meter:
            started = time.monotonic()
            daemon.start(timeout=120)
            report["daemon_ready_seconds"] = round(time.monotonic() - started, 2)
            applied_at = None
            deadline = started + 900
            while time.monotonic() < deadline:
                if applied_at is None and await count_objects(kube, target) >= apps * 2:
                    applied_at = time.monotonic() - started
                if await count_ready(kube, ops) == len(envs):
                    break
                await asyncio.sleep(0.5)
            else:
                raise RuntimeError(f"not all Environments Ready after 900 s; see {daemon.log}")
            report["all_ready_seconds"] = round(time.monotonic() - started, 2)
            report["all_applied_seconds"] = round(applied_at or report["all_ready_seconds"], 2)
            assert daemon.proc is not None
            report["daemon_cpu_seconds"] = round(cpu_seconds(daemon.proc.pid), 2)
            report["reconciles"] = daemon.metric("gitopsd_reconcile_total")
        report["cluster_cpu_seconds"] = meter.cluster_cpu
        if daemon.stop() != 0:
            raise RuntimeError(f"the daemon did not exit 0 at SIGTERM; see {daemon.log}")
    return report


async def noop_reconcile(kubeconfig: Path, workdir: Path, repo_url: str) -> dict[str, Any]:
    """A 50-object Environment reconciled once (applied), then again (nothing changed): reading
    live state with requests (as ``gitopsd diff`` does), then from a watch cache (as the daemon does)."""
    suffix = uuid.uuid4().hex[:6]
    ops, target = f"bench-noop-ops-{suffix}", f"bench-noop-{suffix}"
    env_obj = environment("noop", ops, repo_url, "apps", target)
    async with Kube.from_kubeconfig(kubeconfig) as kube, Kube.from_kubeconfig(kubeconfig) as watch_client:
        await kube.discovery.refresh()
        await create(kube, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in (ops, target)])
        await create(kube, [env_obj])
        sources = GitSources(workdir / "noop-git")
        cache = WatchCache(watch_client, label=ENVIRONMENT_LABEL, field_manager=FIELD_MANAGER)
        try:
            reconciler = Reconciler(kube, sources, EventRecorder(kube), tenancy=FILE_SOURCES)
            first = await reconciler.reconcile(parse_environment(await environments.get(kube, ops, "noop")))
            report: dict[str, Any] = {"first_result": first.result}
            report["without_cache"] = await _measured_noop(kube, reconciler, ops)
            cached = Reconciler(kube, sources, EventRecorder(kube), cache=cache, tenancy=FILE_SOURCES)
            await cached.reconcile(parse_environment(await environments.get(kube, ops, "noop")))  # starts the watches
            await asyncio.sleep(2.0)  # every kind's first list in
            report["with_watch_cache"] = await _measured_noop(kube, cached, ops)
            return report
        finally:
            await cache.close()
            await sources.close()


async def _measured_noop(kube: Kube, reconciler: Reconciler, ops: str) -> dict[str, Any]:
    raw = await environments.get(kube, ops, "noop")
    env = parse_environment(raw)
    kube.stats.reset()
    cpu = time.process_time()
    wall = time.monotonic()
    again = await reconciler.reconcile(env)
    return {
        "objects": len((raw.get("status") or {}).get("inventory", {}).get("entries", [])),
        "result": again.result,
        "seconds": round(time.monotonic() - wall, 3),
        "cpu_seconds": round(time.process_time() - cpu, 3),
        "requests": kube.stats.total,
        "writes": kube.stats.writes,
        "requests_by_kind": kube.stats.snapshot(),
    }


def run(kubeconfig: Path, pids: dict[str, int], apps: int, workers: int, baseline: bool) -> dict[str, Any]:
    report: dict[str, Any] = {"benchmark": "sync_environments", "apps": apps, "objects": apps * 4}
    report["load_average_at_start"] = os.getloadavg()[0]
    run_id = uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        workdir = Path(tmp)
        out = subprocess.run(
            ["kubectl", f"--kubeconfig={kubeconfig}", "apply", "--server-side", "-f", str(CRD)],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(out.stderr)
        repo = write_repo(workdir / "repo", apps)
        url = repo.file_url
        if baseline:
            ns = f"bench-kubectl-{run_id}"
            objects = [obj for i in range(apps) for obj in app(ns, i)]
            report["settle_seconds_before_kubectl"] = settle(pids)
            with Meter(pids) as meter:
                kubectl_apply(kubeconfig, ns, objects, workdir / "kubectl")
            report["kubectl"] = meter.figures(meter.child_cpu)
        target = f"bench-envs-{run_id}"
        envs = [
            environment(f"app-{i:04d}", f"bench-ops-{run_id}", url, f"apps/app-{i:04d}", target) for i in range(apps)
        ]
        report["environments"] = asyncio.run(daemon_run(kubeconfig, pids, workdir, envs, target, apps, workers))
        target = f"bench-one-{run_id}"
        one = [environment("all", f"bench-one-ops-{run_id}", url, "apps", target)]
        report["one_environment"] = asyncio.run(daemon_run(kubeconfig, pids, workdir, one, target, apps, workers))
        settle(pids)
        report["noop_reconcile"] = asyncio.run(noop_reconcile(kubeconfig, workdir, _small_repo(workdir, 13).file_url))
    report["load_average_at_end"] = os.getloadavg()[0]
    if baseline:
        for shape in ("environments", "one_environment"):
            ratio = report[shape]["all_applied_seconds"] / report["kubectl"]["seconds"]
            report[shape]["ratio_applied_to_kubectl"] = round(ratio, 3)
            report[shape]["goal"] = {
                "under_60s_applied": report[shape]["all_applied_seconds"] < 60,
                "at_most_half_of_kubectl": ratio <= 0.5,
            }
    return report


def _small_repo(workdir: Path, apps: int) -> WorkRepo:
    return write_repo(workdir / "small", apps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--skip-baseline", action="store_true", help="no kubectl run (for iterating, not reporting)")
    args = parser.parse_args()
    return emit(
        on_cluster(
            "bench-sync",
            None,
            lambda kubeconfig, pids: run(kubeconfig, pids, args.apps, args.workers, not args.skip_baseline),
        )
    )


if __name__ == "__main__":
    sys.exit(main())
