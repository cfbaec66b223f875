"""A rollout that takes long does not hold a worker: with ``--workers 1`` another Environment is
applied and Ready while the first is still waiting on its health gate."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from e2e.cluster import NEVER_READY_LABEL, ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from tests.gitopsd.conftest import apply_objects, condition, env_object, environment, wait_for, wait_ready

pytestmark = pytest.mark.cluster

SLOW = f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: slow}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: slow}}}}
  template:
    metadata: {{labels: {{app: slow, {NEVER_READY_LABEL}: "true"}}}}
    spec:
      containers: [{{name: app, image: registry.invalid/slow:1}}]
"""

QUICK = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: quick}
data: {ready: "yes"}
"""


def test_a_health_wait_steps_aside_for_another_environment(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    ops, target = namespaces("workers-ops"), namespaces("workers")
    repo.commit({"slow/app.yaml": SLOW, "quick/cm.yaml": QUICK})
    daemon = start_daemon(f"--namespace={ops}", "--workers=1", "--shutdown-grace=2")
    slow = environment("slow", ops, repo.file_url, target=target, path="slow", branch="main", interval="1h")
    slow["spec"]["wait"] = {"timeout": "10m"}
    apply_objects(gitopsd_crd, slow)

    def waiting_on_health() -> bool:
        env = env_object(gitopsd_crd, ops, "slow")
        applied = (env.get("status") or {}).get("release") == 1
        return applied and condition(env, "Reconciling").get("status") == "True"

    wait_for("slow applied and in its health wait", waiting_on_health, timeout=60)

    apply_objects(gitopsd_crd, environment("quick", ops, repo.file_url, target=target, path="quick", branch="main"))
    wait_ready(gitopsd_crd, ops, "quick")

    # ... while the only worker's first Environment is still waiting (its 10 min timeout not reached).
    still = env_object(gitopsd_crd, ops, "slow")
    assert condition(still, "Ready").get("status") != "True"
    assert condition(still, "Reconciling").get("status") == "True", still.get("status")
    assert daemon.metric("gitopsd_reconcile_total", environment=f"{ops}.slow") == 0
