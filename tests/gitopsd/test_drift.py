"""Drift from watch events: a hand edit or delete of a managed object is reverted long before the
Environment's interval (10 minutes here), by a real daemon against the real API server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import apply_objects, environment, wait_for, wait_ready

pytestmark = pytest.mark.cluster

APP = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: registry.example/web:1}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: blue}
"""

#: Far below the 10 minute interval, generous for a loaded machine.
DEADLINE = 30.0


def replicas(cluster: ClusterInfo, namespace: str) -> int | None:
    out = kubectl(cluster, "get", "deployment", "web", "-n", namespace, "-o", "json")
    return int(json.loads(out.stdout)["spec"]["replicas"]) if out.returncode == 0 else None


def settings(cluster: ClusterInfo, namespace: str) -> dict[str, str] | None:
    out = kubectl(cluster, "get", "configmap", "settings", "-n", namespace, "-o", "json")
    return dict(json.loads(out.stdout)["data"]) if out.returncode == 0 else None


def test_hand_edits_and_deletes_are_reverted_from_watch_events(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """kubectl scale / edit / delete of managed objects are undone within seconds with a 10m interval."""
    ops, target = namespaces("drift-ops"), namespaces("drift")
    repo.commit({"deploy/app.yaml": APP})
    daemon = start_daemon(f"--namespace={ops}")
    apply_objects(gitopsd_crd, environment("shop", ops, repo.file_url, target=target, branch="main", interval="10m"))
    wait_ready(gitopsd_crd, ops, "shop")
    wait_for("the cache serving the Environment's kinds", lambda: daemon.metric("gitopsd_watch_cache_objects") >= 2)

    out = kubectl(gitopsd_crd, "scale", "deployment", "web", "-n", target, "--replicas=5")
    assert out.returncode == 0, out.stderr
    wait_for("kubectl scale reverted", lambda: replicas(gitopsd_crd, target) == 2, timeout=DEADLINE)

    out = kubectl(gitopsd_crd, "patch", "configmap", "settings", "-n", target, "-p", '{"data":{"mode":"green"}}')
    assert out.returncode == 0, out.stderr
    wait_for("kubectl patch reverted", lambda: settings(gitopsd_crd, target) == {"mode": "blue"}, timeout=DEADLINE)

    out = kubectl(gitopsd_crd, "delete", "configmap", "settings", "-n", target)
    assert out.returncode == 0, out.stderr
    wait_for(
        "the deleted ConfigMap recreated", lambda: settings(gitopsd_crd, target) == {"mode": "blue"}, timeout=DEADLINE
    )

    owner = f"{ops}.shop"
    assert daemon.metric("gitopsd_drift_events_total", environment=owner) >= 3
    assert daemon.metric("gitopsd_drift_corrected_total", environment=owner) >= 2
    # Our own reverting writes come back through the watch too, and must not queue more work.
    settled = daemon.metric("gitopsd_drift_events_total", environment=owner)
    time.sleep(5)
    assert daemon.metric("gitopsd_drift_events_total", environment=owner) == settled
