"""What the liveness check of a remote target costs an idle daemon, and what it buys (issue 16).

A real ``gitopsd run`` on a fresh management cluster deploys ``--environments`` Environments
(interval ``--interval``) into one target cluster (``e2e.multicluster``, reached through a TCP
proxy). Once all are Ready and nothing changes:

- ``target_requests_per_minute``: requests the daemon sent the target over ``--idle-minutes``
  (``gitopsd_cluster_request_duration_seconds_count`` of that cluster: every request through the
  target's client; the watch streams, opened apart, are not in it);
- ``blackhole_detected_s``: the target is black-holed (connections accepted, never answered) with
  nothing to apply; seconds until the first Environment is Ready False / ClusterUnreachable (None:
  not within ``--detect-timeout``), then ``recovered_s``: seconds from ``forward()`` until all are
  Ready again.

Run it on a tree before and after a change to compare (figures in docs/multicluster.md).

    .venv/bin/python -m bench.cluster_liveness [--environments 5] [--interval 30s] [--idle-minutes 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.cluster import emit, on_cluster
from bench.multicluster import (
    _established,
    condition_of,
    configmap,
    ensure_namespaces,
    environment,
    secret_for,
    target_kube,
    wait_ready,
)
from bench.sync_environments import create
from e2e import multicluster
from e2e.binaries import ensure_binaries
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from gitopsd.kube import Kube

REQUESTS = "gitopsd_cluster_request_duration_seconds_count"


async def _run(args: argparse.Namespace, kubeconfig: Path) -> dict[str, Any]:
    targets = multicluster.start_targets({"a": "ipv4"}, binaries=ensure_binaries())
    mgmt = Kube.from_kubeconfig(kubeconfig)
    report: dict[str, Any] = {"environments": args.environments, "interval": args.interval}
    report["load_before"] = os.getloadavg()
    try:
        crd = Path(__file__).resolve().parents[1] / "manifests" / "gitopsd" / "crd.yaml"
        await create(mgmt, list(yaml.safe_load_all(crd.read_text())))
        await _established(mgmt)
        ops = "liveness"
        names = [f"idle-{i}" for i in range(args.environments)]
        await ensure_namespaces(mgmt, ops)
        kube_a = target_kube(targets["a"])
        await ensure_namespaces(kube_a, ops, *(f"web-{n}" for n in names))
        await kube_a.close()
        route = targets.route(targets["a"])
        cluster = f"{ops}/a"
        with tempfile.TemporaryDirectory(prefix="bench-liveness-") as tmp:
            work = Path(tmp)
            repo = WorkRepo.create(work / "remote.git", work / "work")
            repo.commit({"deploy/app.yaml": configmap(0)})
            await create(mgmt, [secret_for(route, "a", ops)])
            daemon = DaemonProcess(kubeconfig, work / "daemon", f"--namespace={ops}").start(timeout=120)
            try:
                await create(mgmt, [environment(n, ops, repo.file_url, f"web-{n}", "a", args.interval) for n in names])
                await wait_ready(mgmt, ops, names, timeout=180)
                await asyncio.sleep(5)  # the first runs' tail
                before, started = daemon.metric(REQUESTS, cluster=cluster), time.monotonic()
                await asyncio.sleep(args.idle_minutes * 60)
                sent = daemon.metric(REQUESTS, cluster=cluster) - before
                report["target_requests_per_minute"] = round(sent * 60 / (time.monotonic() - started), 1)

                route.blackhole()
                started = time.monotonic()
                detected = None
                while time.monotonic() - started < args.detect_timeout:
                    states = [await condition_of(mgmt, ops, n) for n in names]
                    if any(s.get("reason") == "ClusterUnreachable" for s in states):
                        detected = round(time.monotonic() - started, 1)
                        break
                    await asyncio.sleep(0.5)
                report["blackhole_detected_s"] = detected
                route.forward()
                report["recovered_s"] = await wait_ready(mgmt, ops, names, timeout=300)
            finally:
                daemon.stop()
    finally:
        await mgmt.close()
        targets.stop()
    report["load_after"] = os.getloadavg()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--environments", type=int, default=5)
    parser.add_argument("--interval", default="30s")
    parser.add_argument("--idle-minutes", type=float, default=2.0)
    parser.add_argument("--detect-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    return emit(on_cluster("cluster-liveness", None, lambda kubeconfig, _pids: asyncio.run(_run(args, kubeconfig))))


if __name__ == "__main__":
    sys.exit(main())
