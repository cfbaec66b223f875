"""gitopsd deploys onto the real node: health comes from a real readiness probe (no kwok policy
in the path), so a release whose probe fails is rolled back and held, and one whose Pods really
become Ready passes its gate."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from e2e.realnode.images import HTTPD_IMAGE
from e2e.realnode.layout import NODE_LABEL, NODE_NAME
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import (
    apply_objects,
    condition,
    env_object,
    environment,
    get_json,
    wait_for,
    wait_ready,
)
from tests.gitopsd.test_releases import results, status_of
from tests.realnode.conftest import RealCluster

pytestmark = pytest.mark.cluster


def _app(release: str, *, ready: bool) -> dict[str, str]:
    """A Deployment pinned to the real node whose readiness probe answers per READY."""
    return {
        "deploy/app.yaml": f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}, annotations: {{release: "{release}"}}}}
    spec:
      nodeSelector: {{{NODE_LABEL}: "true"}}
      terminationGracePeriodSeconds: 0
      containers:
      - name: web
        image: {HTTPD_IMAGE}
        imagePullPolicy: Never
        env: [{{name: READY, value: "{"true" if ready else "false"}"}}]
        ports: [{{containerPort: 8080}}]
        readinessProbe: {{httpGet: {{path: /ready, port: 8080}}, periodSeconds: 1, failureThreshold: 1}}
        securityContext:
          allowPrivilegeEscalation: false
          runAsNonRoot: true
          readOnlyRootFilesystem: true
          capabilities: {{drop: [ALL]}}
          seccompProfile: {{type: RuntimeDefault}}
""",
    }


def _namespace(rc: RealCluster, prefix: str) -> str:
    name = f"{prefix}-{hex(time.monotonic_ns())[-8:]}"
    assert kubectl(rc.info, "create", "namespace", name).returncode == 0
    return name


def _ready_pods(rc: RealCluster, ns: str) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = get_json(rc.info, "pods", "-n", ns, "-l", "app=web")["items"]
    return [p for p in pods if condition(p, "Ready").get("status") == "True"]


def test_a_failing_real_probe_rolls_back_and_holds_a_ready_one_passes(
    real_cluster_ipv4: RealCluster,
    real_gitopsd_crd: object,
    start_daemon: Callable[..., DaemonProcess],
    tmp_path: Path,
) -> None:
    """v1 Ready on the real node → v2's probe answers 503 → gate fails, auto rollback to v1, v2 held."""
    rc = real_cluster_ipv4
    info = rc.info
    ops, app_ns = _namespace(rc, "ops"), _namespace(rc, "web")
    repo = WorkRepo.create(tmp_path / "remote" / "web.git", tmp_path / "work")
    try:
        v1 = repo.commit(_app("v1", ready=True))
        start_daemon(f"--namespace={ops}")
        manifest = environment("web", ops, repo.file_url, target=app_ns, branch="main")
        manifest["spec"].update(wait={"timeout": "20s"}, rollback={"auto": True})
        apply_objects(info, manifest)

        # v1 passes its gate only once both Pods are Ready on the real node (kubelet's probe).
        wait_ready(info, ops, "web", revision=f"main@sha1:{v1}")
        assert results(info, ops, "web") == {1: "Healthy"}
        ready = _ready_pods(rc, app_ns)
        assert len(ready) == 2 and {p["spec"]["nodeName"] for p in ready} == {NODE_NAME}

        # v2's probe fails (a real HTTP 503): release 2 fails its gate, release 3 restores v1.
        v2 = repo.commit(_app("v2", ready=False))

        def rolled_back() -> dict[str, Any] | None:
            st = status_of(info, ops, "web")
            ok = st.get("release") == 3 and (st.get("held") or {}).get("revision") == f"main@sha1:{v2}"
            return st if ok and condition({"status": st}, "Ready").get("status") == "True" else None

        st = wait_for("automatic rollback of v2", rolled_back, timeout=120)
        assert st["held"]["reason"] == "HealthCheckFailed" and st["held"]["release"] == 2
        assert st["lastAppliedRevision"] == f"main@sha1:{v1}"
        assert results(info, ops, "web") == {1: "Healthy", 2: "RolledBack", 3: "Healthy"}
        template = get_json(info, "deployment", "web", "-n", app_ns)["spec"]["template"]
        assert template["metadata"]["annotations"]["release"] == "v1"
        # The failing Pods did run: the kubelet reported their probe failures.
        events = get_json(info, "events", "-n", app_ns, "--field-selector", "reason=Unhealthy")["items"]
        assert any("503" in e["message"] for e in events), events
        wait_for("v1's Pods Ready again", lambda: len(_ready_pods(rc, app_ns)) == 2, timeout=60)
    finally:
        for ns in (ops, app_ns):
            kubectl(info, "delete", "namespace", ns, "--wait=false")


def _failing_presync(marker: str) -> dict[str, str]:
    """An Argo CD PreSync Job on the real node whose container writes a line naming ``marker`` and
    exits 1 (the test server's client mode: a GET to a closed port), and a ConfigMap it guards."""
    return {
        "deploy/guarded.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: guarded}\ndata: {a: b}\n",
        "deploy/migrate.yaml": f"""\
apiVersion: batch/v1
kind: Job
metadata:
  generateName: migrate-
  annotations: {{argocd.argoproj.io/hook: PreSync}}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      nodeSelector: {{{NODE_LABEL}: "true"}}
      terminationGracePeriodSeconds: 0
      containers:
      - name: migrate
        image: {HTTPD_IMAGE}
        imagePullPolicy: Never
        args: [get, "http://127.0.0.1:1/{marker}"]
        securityContext:
          allowPrivilegeEscalation: false
          runAsNonRoot: true
          readOnlyRootFilesystem: true
          capabilities: {{drop: [ALL]}}
          seccompProfile: {{type: RuntimeDefault}}
""",
    }


def test_a_failed_hook_quotes_its_pods_log_lines(
    real_cluster_ipv4: RealCluster,
    real_gitopsd_crd: object,
    start_daemon: Callable[..., DaemonProcess],
    tmp_path: Path,
) -> None:
    """A PreSync Job that fails on the real node: Ready=False HookFailed and the HookFailed Event
    quote the line its container wrote (read from the kubelet), and the guarded ConfigMap is not applied."""
    rc = real_cluster_ipv4
    info = rc.info
    ops, app_ns = _namespace(rc, "ops"), _namespace(rc, "hook")
    marker = f"migration-marker-{hex(time.monotonic_ns())[-8:]}"
    repo = WorkRepo.create(tmp_path / "remote" / "hook.git", tmp_path / "work")
    try:
        repo.commit(_failing_presync(marker))
        start_daemon(f"--namespace={ops}")
        manifest = environment("hook", ops, repo.file_url, target=app_ns, branch="main")
        manifest["spec"].update(wait={"timeout": "45s"})
        apply_objects(info, manifest)

        def failed() -> dict[str, Any] | None:
            ready = condition(env_object(info, ops, "hook"), "Ready")
            return ready if ready.get("reason") == "HookFailed" else None

        ready = wait_for("the PreSync hook to fail", failed, timeout=150)
        message = ready["message"]
        assert f"Job.batch/{app_ns}/migrate-" in message, message
        assert "last log lines of pod migrate-" in message and marker in message, message

        def event() -> str | None:
            events = get_json(info, "events", "-n", ops, "--field-selector", "involvedObject.name=hook")["items"]
            return next((e["message"] for e in events if e["reason"] == "HookFailed" and marker in e["message"]), None)

        wait_for("a HookFailed Event quoting the pod's line", event, timeout=30)
        # The pod did run on the real node and exit 1; the hook's guarded object was never applied.
        pods = get_json(info, "pods", "-n", app_ns, "-l", "batch.kubernetes.io/job-name")["items"]
        assert pods and all(p["spec"]["nodeName"] == NODE_NAME for p in pods), pods
        terminated = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
        assert terminated["exitCode"] == 1, terminated
        assert get_json(info, "configmaps", "-n", app_ns, "-l", "gitopsd.dev/environment")["items"] == []
    finally:
        for ns in (ops, app_ns):
            kubectl(info, "delete", "namespace", ns, "--wait=false")
