"""Where a bench runs: an already running harness cluster, or a fresh one started and removed here.

Every bench that needs a cluster takes ``--cluster-dir DIR`` (a cluster from ``python -m
e2e.cluster up``) or starts its own, and prints one JSON report saying which it used.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from e2e.binaries import ensure_binaries
from e2e.cluster import STATE_FILE, LocalCluster, new_cluster_dir

Measure = Callable[[Path, dict[str, int]], dict[str, Any]]


def on_cluster(
    name: str, cluster_dir: Path | None, measure: Measure, *, apiserver_args: Sequence[str] = ()
) -> dict[str, Any]:
    """``measure(kubeconfig, component pids)`` on the cluster in ``cluster_dir``, else on a fresh one
    (whose kube-apiserver gets ``apiserver_args`` too, e.g. an audit policy)."""
    if cluster_dir is not None:
        if apiserver_args:
            raise ValueError(f"{name} needs kube-apiserver flags of its own: run it without --cluster-dir")
        state = json.loads((cluster_dir / STATE_FILE).read_text())
        report = measure(cluster_dir / "kubeconfig", state["processes"])
        report["cluster"] = "existing"
        return report
    ensure_binaries()
    cluster = LocalCluster(new_cluster_dir(name), "ipv4", apiserver_args=apiserver_args)
    try:
        info = cluster.start()
        report = measure(info.kubeconfig, cluster.processes)
    finally:
        cluster.stop(remove=True)
    report["cluster"] = "fresh"
    return report


def emit(report: dict[str, Any]) -> int:
    """Print the report as the bench's only stdout; the exit code."""
    json.dump(report, sys.stdout, indent=2, default=str)
    print()
    return 0
