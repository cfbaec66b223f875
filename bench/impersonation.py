"""What impersonation costs: a first sync of N Environments acting as gitopsd, and as a ServiceAccount.

On one local cluster, from one Git repository of N apps (4 objects each, as
``bench.sync_environments``), the same N Environments are synced by a fresh ``gitopsd run``
twice per round, into fresh namespaces: once acting as gitopsd itself, once with
``--default-service-account=deployer`` (every request of the apply impersonates
``system:serviceaccount:<ns>:deployer``, which the ``edit`` role lets write the target
namespace). Rounds alternate the order, so a warmer cluster favours neither. Reported per run:
seconds from the daemon's start to every object applied and to every Environment Ready,
kube-apiserver CPU; and the ratio of the impersonating runs' medians to the plain ones'.

    .venv/bin/python -m bench.impersonation [--apps 100] [--rounds 2] [--cluster-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from bench.cluster import emit, on_cluster
from bench.sync_environments import CRD, daemon_run, environment, write_repo

ACCOUNT = "deployer"


def rbac(ops: str, target: str) -> list[dict[str, Any]]:
    """The ServiceAccount ``deployer`` in ``ops``, allowed ``edit`` in ``target`` only."""
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": ACCOUNT, "namespace": ops}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "deployer-edit", "namespace": target},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": ops}],
        },
    ]


async def one_run(
    kubeconfig: Path, pids: dict[str, int], workdir: Path, url: str, apps: int, impersonate: bool
) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    ops, target = f"bench-imp-ops-{run_id}", f"bench-imp-{run_id}"
    envs = [environment(f"app-{i:04d}", ops, url, f"apps/app-{i:04d}", target) for i in range(apps)]
    extra = [f"--default-service-account={ACCOUNT}"] if impersonate else []
    report = await daemon_run(kubeconfig, pids, workdir, envs, target, apps, 8, prepare=rbac(ops, target), extra=extra)
    report["impersonating"] = impersonate
    report["apiserver_cpu_seconds"] = report["cluster_cpu_seconds"].get("kube-apiserver")
    return report


def run(kubeconfig: Path, pids: dict[str, int], apps: int, rounds: int) -> dict[str, Any]:
    report: dict[str, Any] = {"benchmark": "impersonation", "apps": apps, "rounds": rounds}
    report["load_average_at_start"] = os.getloadavg()[0]
    out = subprocess.run(
        ["kubectl", f"--kubeconfig={kubeconfig}", "apply", "--server-side", "-f", str(CRD)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-imp-") as tmp:
        url = write_repo(Path(tmp) / "repo", apps).file_url
        for index in range(rounds):
            order = (False, True) if index % 2 == 0 else (True, False)
            for impersonate in order:
                runs.append(asyncio.run(one_run(kubeconfig, pids, Path(tmp), url, apps, impersonate)))
    report["runs"] = runs
    for key in ("all_applied_seconds", "all_ready_seconds", "apiserver_cpu_seconds", "daemon_cpu_seconds"):
        plain = statistics.median(r[key] for r in runs if not r["impersonating"])
        acting = statistics.median(r[key] for r in runs if r["impersonating"])
        report[f"ratio_{key}"] = round(acting / plain, 3) if plain else None
    report["load_average_at_end"] = os.getloadavg()[0]
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cluster-dir", type=Path)
    args = parser.parse_args()
    return emit(
        on_cluster(
            "bench-imp", args.cluster_dir, lambda kubeconfig, pids: run(kubeconfig, pids, args.apps, args.rounds)
        )
    )


if __name__ == "__main__":
    sys.exit(main())
