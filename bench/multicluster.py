"""Isolation between target clusters: a black-holed cluster must not slow the others down.

A real ``gitopsd run`` on a management cluster deploys into two target clusters (``e2e.multicluster``:
IPv4 and IPv6 LocalClusters), each reached through a TCP proxy the bench can black-hole
(connections accepted, never answered: the worst outage, only timeouts notice it).

- ``latency``: push → applied on a healthy target. Environment ``fast`` (target a) and five
  Environments on target b (interval 2s, so they keep trying). Each push is a commit followed by
  a sync request to all six (what a webhook does); the time is from the push until ``fast``'s
  ConfigMap on target a holds the new value (read straight from target a every 10 ms); one push
  every ``--gap`` seconds, so a phase outlasts the 20 s request timeout. Phases:
  all healthy, target b black-holed, all healthy again (the two healthy phases are the baseline).
  The issue wants p50 and p99 with one other target black-holed within 1.2 x the baseline.
- ``fleet``: Environments on 10 targets, one black-holed. Ten LocalClusters are too heavy for two
  cores, so the ten targets are ten kubeconfig Secrets through ten proxies onto the two clusters
  (five each): for gitopsd they are ten clusters (ten breakers, pools, watch caches, shares).
  ``--per-target`` Environments each (interval 2s, a push every 4 s); reconciles per minute of the nine healthy
  targets' Environments (``gitopsd_reconcile_total``) over ``--window`` seconds with every target
  healthy, then with target 9 black-holed; within 10% is the goal. Then the time for target 9's
  Environments to be Ready again once it is back.

The load average is recorded: compare figures from quiet runs.

    .venv/bin/python -m bench.multicluster [--pushes 30] [--window 60] [--per-target 3] [--workers 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from bench.cluster import emit, on_cluster
from bench.sync_environments import create
from e2e import multicluster
from e2e.binaries import ensure_binaries
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from e2e.multicluster import Route, Target, Targets
from gitopsd import environments
from gitopsd.kube import Kube, NotFound

OTHERS = 5
TARGETS = 10


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return round(ordered[rank - 1], 4)


def summary(samples: Sequence[float]) -> dict[str, Any]:
    return {
        "n": len(samples),
        "p50_s": percentile(samples, 50),
        "p99_s": percentile(samples, 99),
        "max_s": round(max(samples), 4),
    }


def configmap(seq: int) -> str:
    return yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app"}, "data": {"seq": str(seq)}}
    )


def environment(name: str, ns: str, url: str, target_ns: str, secret: str, interval: str) -> dict[str, Any]:
    return {
        "apiVersion": "gitopsd.dev/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "source": {"url": url, "branch": "main", "path": "deploy"},
            "targetNamespace": target_ns,
            "interval": interval,
            "kubeConfig": {"secretRef": {"name": secret}},
        },
    }


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


async def ensure_namespaces(kube: Kube, *names: str) -> None:
    await create(kube, [namespace(n) for n in names])


async def condition_of(kube: Kube, ns: str, name: str, type_: str = "Ready") -> dict[str, Any]:
    raw = await environments.get(kube, ns, name)
    for cond in (raw.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return {}


async def wait_ready(kube: Kube, ns: str, names: Sequence[str], timeout: float) -> float:
    started = time.monotonic()
    while True:
        states = [await condition_of(kube, ns, n) for n in names]
        if all(s.get("status") == "True" for s in states):
            return round(time.monotonic() - started, 2)
        if time.monotonic() - started > timeout:
            bad = {
                n: (s.get("reason"), s.get("message"))
                for n, s in zip(names, states, strict=True)
                if s.get("status") != "True"
            }
            raise RuntimeError(f"not Ready after {timeout:.0f}s: {bad}")
        await asyncio.sleep(0.5)


def reconciles(daemon: DaemonProcess, names: set[str]) -> float:
    """The sum of ``gitopsd_reconcile_total`` over the Environments in ``names`` (``namespace.name``)."""
    total = 0.0
    for line in daemon.metrics().splitlines():
        if not line.startswith("gitopsd_reconcile_total{"):
            continue
        match = re.search(r'environment="([^"]+)"', line)
        if match and match[1] in names:
            total += float(line.rpartition(" ")[2])
    return total


def secret_for(route: Route, name: str, ns: str) -> dict[str, Any]:
    config = multicluster.kubeconfig(route.server, route.target.ca_pem, multicluster.admin_credential(route.target))
    return multicluster.kubeconfig_secret(name, ns, config)


def target_kube(target: Target) -> Kube:
    return Kube.from_kubeconfig(target.info.kubeconfig)


# -- latency ---------------------------------------------------------------------------------


async def latency(
    mgmt: Kube, kubeconfig: Path, targets: Targets, work: Path, pushes: int, workers: int, gap: float
) -> dict[str, Any]:
    ops = f"mc-lat-{uuid.uuid4().hex[:5]}"
    web = "mc-web-fast"  # each Environment its own target namespace (one owner per object)
    a, b = targets["a"], targets["b"]
    await ensure_namespaces(mgmt, ops)
    kube_a, kube_b = target_kube(a), target_kube(b)
    try:
        await ensure_namespaces(kube_a, ops, web)
        await ensure_namespaces(kube_b, ops, *(f"mc-web-other-{i}" for i in range(OTHERS)))
        healthy, other = targets.route(a), targets.route(b)
        repo = WorkRepo.create(work / "lat" / "remote.git", work / "lat" / "work")
        repo.commit({"deploy/app.yaml": configmap(0)})
        await create(mgmt, [secret_for(healthy, "healthy", ops), secret_for(other, "other", ops)])
        names = ["fast", *(f"other-{i}" for i in range(OTHERS))]
        envs = [environment("fast", ops, repo.file_url, web, "healthy", "1h")]
        envs += [environment(n, ops, repo.file_url, f"mc-web-{n}", "other", "2s") for n in names[1:]]
        daemon = DaemonProcess(kubeconfig, work / "lat" / "daemon", f"--namespace={ops}", f"--workers={workers}")
        daemon.start(timeout=120)
        try:
            await create(mgmt, envs)
            await wait_ready(mgmt, ops, names, timeout=180)
            seq = 0

            async def push() -> float:
                nonlocal seq
                seq += 1
                repo.commit({"deploy/app.yaml": configmap(seq)})
                started = time.monotonic()
                token = str(time.time_ns())
                await asyncio.gather(
                    *(environments.annotate(mgmt, ops, n, {environments.REQUESTED_AT: token}) for n in names)
                )
                path = f"/api/v1/namespaces/{web}/configmaps/app"
                while True:
                    try:
                        obj = await kube_a.get(path)
                        if (obj.get("data") or {}).get("seq") == str(seq):
                            return time.monotonic() - started
                    except NotFound:
                        pass
                    if time.monotonic() - started > 120:
                        raise RuntimeError(f"push {seq} not applied on target a after 120 s; see {daemon.log}")
                    await asyncio.sleep(0.01)

            async def phase(n: int) -> list[float]:
                """``n`` pushes, one every ``gap`` seconds: a phase outlasts the target's request
                timeout, so a black hole's hung requests, open circuit and probes are all in it."""
                samples = []
                for _ in range(n):
                    started = time.monotonic()
                    samples.append(await push())
                    await asyncio.sleep(max(0.0, gap - (time.monotonic() - started)))
                return samples

            before = await phase(pushes)
            other.blackhole()
            during = await phase(pushes)
            unreachable = [(await condition_of(mgmt, ops, n)).get("reason") == "ClusterUnreachable" for n in names[1:]]
            other.forward()
            back = await wait_ready(mgmt, ops, names, timeout=240)
            after = await phase(pushes)
        finally:
            code = daemon.stop()
        baseline = before + after
        base, hole = summary(baseline), summary(during)
        return {
            "pushes_per_phase": pushes,
            "seconds_between_pushes": gap,
            "healthy": base,
            "healthy_first": summary(before),
            "healthy_again": summary(after),
            "other_blackholed": hole,
            "ratio_p50": round(hole["p50_s"] / base["p50_s"], 3),
            "ratio_p99": round(hole["p99_s"] / base["p99_s"], 3),
            "goal": "ratio <= 1.2",
            "others_clusterunreachable_at_end_of_blackhole": f"{sum(unreachable)}/{len(unreachable)}",
            "others_ready_again_after_s": back,
            "daemon_exit": code,
        }
    finally:
        await kube_a.close()
        await kube_b.close()


# -- ten targets -----------------------------------------------------------------------------


async def fleet(
    mgmt: Kube, kubeconfig: Path, targets: Targets, work: Path, per_target: int, window: float, workers: int
) -> dict[str, Any]:
    ops = f"mc-fleet-{uuid.uuid4().hex[:5]}"
    clusters = [targets["a"], targets["b"]]
    await ensure_namespaces(mgmt, ops)
    kubes = [target_kube(t) for t in clusters]
    by_target = {i: [f"t{i}-env-{j}" for j in range(per_target)] for i in range(TARGETS)}
    try:
        for c, kube in enumerate(kubes):  # target i is cluster i % 2; each Environment its own namespace
            mine = [n for i, names in by_target.items() if i % 2 == c for n in names]
            await ensure_namespaces(kube, ops, *(f"mc-{n}" for n in mine))
        routes = [targets.route(clusters[i % 2]) for i in range(TARGETS)]
        repo = WorkRepo.create(work / "fleet" / "remote.git", work / "fleet" / "work")
        repo.commit({"deploy/app.yaml": configmap(0)})
        await create(mgmt, [secret_for(r, f"target-{i}", ops) for i, r in enumerate(routes)])
        envs = [
            environment(name, ops, repo.file_url, f"mc-{name}", f"target-{i}", "2s")
            for i, names in by_target.items()
            for name in names
        ]
        healthy = {f"{ops}.{n}" for i, names in by_target.items() if i != TARGETS - 1 for n in names}
        daemon = DaemonProcess(kubeconfig, work / "fleet" / "daemon", f"--namespace={ops}", f"--workers={workers}")
        daemon.start(timeout=120)
        try:
            await create(mgmt, envs)
            first_ready = await wait_ready(mgmt, ops, [n for names in by_target.values() for n in names], timeout=300)
            await asyncio.sleep(10)  # past the first round of syncs

            seq = 0

            async def per_minute() -> float:
                """Healthy nine's reconciles per minute over ``window``, with a push every 4 s (so every
                Environment, the black-holed ones too, has something to apply)."""
                nonlocal seq
                start, t0 = reconciles(daemon, healthy), time.monotonic()
                while time.monotonic() - t0 < window:
                    seq += 1
                    await asyncio.to_thread(repo.commit, {"deploy/app.yaml": configmap(seq)})
                    await asyncio.sleep(4)
                return round((reconciles(daemon, healthy) - start) / (time.monotonic() - t0) * 60, 1)

            all_healthy = await per_minute()
            routes[-1].blackhole()
            one_blackholed = await per_minute()
            reasons = [(await condition_of(mgmt, ops, n)).get("reason") for n in by_target[TARGETS - 1]]
            routes[-1].forward()
            back = await wait_ready(mgmt, ops, by_target[TARGETS - 1], timeout=300)
        finally:
            code = daemon.stop()
        return {
            "targets": f"{TARGETS} kubeconfig Secrets through {TARGETS} proxies onto 2 LocalClusters (5 each)",
            "environments": TARGETS * per_target,
            "interval": "2s",
            "window_s": window,
            "all_ready_after_s": first_ready,
            "healthy_nine_reconciles_per_minute": {"all_healthy": all_healthy, "one_blackholed": one_blackholed},
            "change": round(one_blackholed / all_healthy - 1, 3) if all_healthy else None,
            "goal": "|change| <= 0.10",
            "blackholed_target_reasons": reasons,
            "blackholed_ready_again_after_s": back,
            "daemon_exit": code,
        }
    finally:
        for kube in kubes:
            await kube.close()


def measure(args: argparse.Namespace) -> Any:
    def run(kubeconfig: Path, pids: dict[str, int]) -> dict[str, Any]:
        targets = multicluster.start_targets({"a": "ipv4", "b": "ipv6"}, binaries=ensure_binaries())
        try:
            return asyncio.run(_measure(args, kubeconfig, targets))
        finally:
            targets.stop()

    return run


async def _measure(args: argparse.Namespace, kubeconfig: Path, targets: Targets) -> dict[str, Any]:
    crd = Path(__file__).resolve().parents[1] / "manifests" / "gitopsd" / "crd.yaml"
    mgmt = Kube.from_kubeconfig(kubeconfig)
    report: dict[str, Any] = {"workers": args.workers, "load_before": os.getloadavg()}
    try:
        await create(mgmt, list(yaml.safe_load_all(crd.read_text())))
        await _established(mgmt)
        with tempfile.TemporaryDirectory(prefix="bench-mc-") as tmp:
            work = Path(tmp)
            if not args.skip_latency:
                report["latency"] = await latency(mgmt, kubeconfig, targets, work, args.pushes, args.workers, args.gap)
                targets.close_routes()
            if not args.skip_fleet:
                report["fleet"] = await fleet(
                    mgmt, kubeconfig, targets, work, args.per_target, args.window, args.workers
                )
                targets.close_routes()
    finally:
        await mgmt.close()
    report["load_after"] = os.getloadavg()
    return report


async def _established(kube: Kube, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/environments.gitopsd.dev"
    while time.monotonic() < deadline:
        crd = await kube.get(path)
        if any(
            c.get("type") == "Established" and c.get("status") == "True"
            for c in (crd.get("status") or {}).get("conditions") or []
        ):
            await kube.discovery.refresh()
            return
        await asyncio.sleep(0.5)
    raise RuntimeError("the Environment CRD is not Established")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.multicluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cluster-dir", type=Path, help="management cluster from 'python -m e2e.cluster up'")
    parser.add_argument("--pushes", type=int, default=30, help="pushes per latency phase (default 30)")
    parser.add_argument("--gap", type=float, default=2.0, help="seconds between pushes (default 2)")
    parser.add_argument("--window", type=float, default=60.0, help="seconds per fleet phase (default 60)")
    parser.add_argument("--per-target", type=int, default=3, help="Environments per target in the fleet (default 3)")
    parser.add_argument("--workers", type=int, default=8, help="gitopsd run --workers (default 8)")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-fleet", action="store_true")
    args = parser.parse_args(argv)
    report = on_cluster("bench-multicluster", args.cluster_dir, measure(args))
    return emit(report)


if __name__ == "__main__":
    sys.exit(main())
