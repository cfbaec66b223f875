"""How long a hand edit of a managed field survives: drift-revert latency through a real daemon.

On one fresh local cluster: E Environments (4 objects each, ``bench.fleet``) with interval 10m,
synced by ``gitopsd run``. Then R edits by someone else, one at a time, alternating between
``kubectl scale`` of a Deployment (Git says ``replicas: 0``) and ``kubectl patch --type=merge``
of a ConfigMap's data (field manager ``bench-human``). For each, a watch on the object times
from the event carrying the edit to the event carrying the Git value back. An edit not undone
within ``--timeout`` is reported as not reverted; with interval 10m and no watch on managed
objects, that is what a daemon that only re-applies at its interval does.

    .venv/bin/python -m bench.drift [--environments 20] [--edits 20] [--timeout 30] [--cluster-dir DIR]

``--interval 15s`` (with ``--timeout 30``) checks the bench itself: each edit is then undone at
the next interval, and the figures show the interval's share of the latency.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.cluster import emit, on_cluster
from bench.fleet import Fleet, bench_kube, create_fleet, start_daemon, wait_all_ready
from bench.idle_requests import install_crd
from bench.sync_environments import write_repo
from gitopsd.kube import Kube


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def edit_for(fleet: Fleet, index: int, name: str, kubeconfig: Path) -> tuple[str, str, list[str], Any]:
    """(method, object path, kubectl argv, the Git value of the edited field) of edit ``index``."""
    kubectl = [os.environ.get("KUBECTL") or shutil.which("kubectl") or "kubectl", f"--kubeconfig={kubeconfig}"]
    if index % 2 == 0:
        path = f"/apis/apps/v1/namespaces/{fleet.target}/deployments/{name}"
        argv = [*kubectl, "-n", fleet.target, "scale", f"deployment/{name}", f"--replicas={index + 1}"]
        return "kubectl scale", path, argv, 0
    path = f"/api/v1/namespaces/{fleet.target}/configmaps/{name}"
    patch = f'{{"data":{{"GREETING":"edited by hand {index}"}}}}'
    argv = [*kubectl, "-n", fleet.target, "patch", f"configmap/{name}", "--type=merge", "-p", patch]
    return "kubectl patch (merge)", path, [*argv, "--field-manager=bench-human"], f"hello from {name}"


def field_of(obj: dict[str, Any], method: str) -> Any:
    if method == "kubectl scale":
        return (obj.get("spec") or {}).get("replicas")
    return (obj.get("data") or {}).get("GREETING")


async def watch_revert(kube: Kube, path: str, method: str, git_value: Any, rv: str, timeout: float) -> float | None:
    """Seconds from the watch event showing the edit to the one showing ``git_value`` again; None on timeout."""
    collection, name = path.rsplit("/", 1)
    edited_at: float | None = None

    async def follow() -> float:
        nonlocal edited_at
        resource_version = rv
        while True:  # a watch the server ends early is opened again where it stopped
            async for event in kube.watch(
                collection,
                resource_version=resource_version,
                field_selector=f"metadata.name={name}",
                timeout_seconds=int(timeout) + 30,
            ):
                resource_version = str((event.object.get("metadata") or {}).get("resourceVersion", resource_version))
                if event.type != "MODIFIED":
                    continue
                value = field_of(event.object, method)
                if value != git_value and edited_at is None:
                    edited_at = time.monotonic()
                elif value == git_value and edited_at is not None:
                    return time.monotonic() - edited_at

    try:
        return round(await asyncio.wait_for(follow(), timeout), 3)
    except TimeoutError:
        return None


async def one_edit(kube: Kube, kubeconfig: Path, fleet: Fleet, index: int, timeout: float) -> dict[str, Any]:
    name = fleet.names[index % len(fleet.names)]
    method, path, argv, git_value = edit_for(fleet, index, name, kubeconfig)
    current = await kube.get(path)
    rv = str(current["metadata"]["resourceVersion"])
    watcher = asyncio.ensure_future(watch_revert(kube, path, method, git_value, rv, timeout))
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0:
        watcher.cancel()
        raise RuntimeError(f"{' '.join(argv[2:])}: {err.decode(errors='replace').strip()}")
    seconds = await watcher
    return {"method": method, "object": path, "reverted_seconds": seconds}


async def measure(kubeconfig: Path, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    repo = write_repo(workdir / "repo", args.environments)
    fleet = Fleet(f"bench-drift-{run_id}-ops", f"bench-drift-{run_id}", repo.file_url, args.interval)
    report: dict[str, Any] = {}
    async with bench_kube(kubeconfig) as kube:
        await create_fleet(kube, fleet, args.environments, None)
        daemon = start_daemon(kubeconfig, workdir, fleet, args.workers)
        try:
            report["all_ready_seconds"] = await wait_all_ready(kube, fleet, daemon, args.ready_timeout)
            report["load_average_edits_start"] = os.getloadavg()[0]
            samples = []
            for index in range(args.edits):
                samples.append(await one_edit(kube, kubeconfig, fleet, index, args.timeout))
                await asyncio.sleep(1.0)
            report["drift_corrected_metric"] = daemon.metric("gitopsd_drift_corrected_total")
        finally:
            code = daemon.stop()
        if code != 0:
            raise RuntimeError(f"the daemon did not exit 0 at SIGTERM (exit {code}); see {daemon.log}")
    reverted = [s["reverted_seconds"] for s in samples if s["reverted_seconds"] is not None]
    report.update(
        {
            "samples": samples,
            "reverted": len(reverted),
            "not_reverted": len(samples) - len(reverted),
            "p50_seconds": percentile(reverted, 50),
            "p99_seconds": percentile(reverted, 99),
            "max_seconds": max(reverted) if reverted else None,
            "goal_p50_at_most_2s_p99_at_most_5s": bool(reverted)
            and len(reverted) == len(samples)
            and (percentile(reverted, 50) or 0) <= 2
            and (percentile(reverted, 99) or 0) <= 5,
        }
    )
    return report


def run(kubeconfig: Path, args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "benchmark": "drift",
        "environments": args.environments,
        "interval": args.interval,
        "edits": args.edits,
        "timeout_seconds": args.timeout,
        "load_average_at_start": os.getloadavg()[0],
    }
    install_crd(kubeconfig)
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        report.update(asyncio.run(measure(kubeconfig, Path(tmp), args)))
    report["load_average_at_end"] = os.getloadavg()[0]
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--environments", type=int, default=20, help="Environments of 4 objects each")
    parser.add_argument("--edits", type=int, default=20, help="hand edits, one at a time")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds after which an edit counts as not reverted"
    )
    parser.add_argument(
        "--interval", default="10m", help="spec.interval (shorter only to check the bench sees a revert)"
    )
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--ready-timeout", type=float, default=600.0, help="seconds for the first sync")
    parser.add_argument("--cluster-dir", type=Path, help="a running harness cluster (python -m e2e.cluster up)")
    args = parser.parse_args()
    for name in ("environments", "edits"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.timeout <= 0:
        parser.error("--timeout must be more than 0 seconds")
    return emit(on_cluster("bench-drift", args.cluster_dir, lambda kubeconfig, _pids: run(kubeconfig, args)))


if __name__ == "__main__":
    sys.exit(main())
