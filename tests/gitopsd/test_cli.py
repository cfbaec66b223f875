"""The ``gitopsd`` CLI against a running daemon: get, sync --wait, diff, render, suspend, resume; drift."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import apply_objects, environment, get_json, gitopsd_cli, wait_ready

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
    spec: {containers: [{name: web, image: "registry.invalid/web:${GITOPSD_REVISION_SHORT}"}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: worker}
spec:
  selector: {matchLabels: {app: worker}}
  template:
    metadata: {labels: {app: worker}}
    spec: {containers: [{name: worker, image: registry.invalid/worker:1}]}
"""


def test_cli_steers_the_daemon_and_drift_is_reverted(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """get/sync/diff/suspend/resume work; a hand-scaled managed field is reverted, an unmanaged one is not."""
    cluster = gitopsd_crd
    ops, app = namespaces("ops"), namespaces("app")
    first = repo.commit({"deploy/app.yaml": APP})
    start_daemon(f"--namespace={ops}")
    manifest = environment("shop", ops, repo.file_url, target=app, branch="main", interval="1h", substitute={})
    apply_objects(cluster, manifest)
    wait_ready(cluster, ops, "shop", revision=f"main@sha1:{first}")

    out = gitopsd_cli(cluster, "get", "-n", ops)
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.splitlines()
    assert header.split() == ["NAME", "READY", "VERIFIED", "REVISION", "RELEASE", "HELD", "CLUSTER", "AGE", "STATUS"]
    assert row.split()[:3] == ["shop", "True", f"main@sha1:{first[:7]}"]
    assert row.split()[4] == "in-cluster"  # VERIFIED and HELD are empty
    assert json.loads(gitopsd_cli(cluster, "get", "shop", "-n", ops, "-o", "json").stdout)["metadata"]["name"] == "shop"

    out = gitopsd_cli(cluster, "diff", "shop", "-n", ops)
    assert out.returncode == 0, out.stdout + out.stderr
    # Hand edits while suspended (the daemon reverts a watched edit at once otherwise): web's replicas
    # are ours (in Git), worker's are not (the manifest leaves them to an HPA).
    assert gitopsd_cli(cluster, "suspend", "shop", "-n", ops).returncode == 0
    assert kubectl(cluster, "scale", "deployment/web", "-n", app, "--replicas=5").returncode == 0
    assert kubectl(cluster, "scale", "deployment/worker", "-n", app, "--replicas=3").returncode == 0
    out = gitopsd_cli(cluster, "diff", "shop", "-n", ops)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "replicas: 5" in out.stdout and "replicas: 2" in out.stdout
    assert "worker" not in out.stdout
    assert gitopsd_cli(cluster, "resume", "shop", "-n", ops).returncode == 0

    # The interval is an hour: sync now, fetching afresh, and wait for the daemon's answer.
    second = repo.commit({"README.md": "docs\n"})
    out = gitopsd_cli(cluster, "sync", "shop", "-n", ops, "--wait", "--timeout", "60s")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"main@sha1:{second}" in out.stdout
    assert get_json(cluster, "deployment", "web", "-n", app)["spec"]["replicas"] == 2
    assert get_json(cluster, "deployment", "worker", "-n", app)["spec"]["replicas"] == 3
    reasons = {e["reason"] for e in get_json(cluster, "events", "-n", ops)["items"]}
    assert "DriftCorrected" in reasons
    assert gitopsd_cli(cluster, "diff", "shop", "-n", ops).returncode == 0

    assert gitopsd_cli(cluster, "suspend", "shop", "-n", ops).returncode == 0
    out = gitopsd_cli(cluster, "sync", "shop", "-n", ops, "--wait")
    assert out.returncode == 1 and "suspended" in out.stderr
    third = repo.commit({"deploy/app.yaml": APP.replace("replicas: 2", "replicas: 1")})
    assert gitopsd_cli(cluster, "resume", "shop", "-n", ops).returncode == 0
    wait_ready(cluster, ops, "shop", revision=f"main@sha1:{third}")
    assert get_json(cluster, "deployment", "web", "-n", app)["spec"]["replicas"] == 1

    out = gitopsd_cli(cluster, "render", "shop", "-n", ops)
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    image = docs[0]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"registry.invalid/web:{third[:7]}"

    out = gitopsd_cli(cluster, "sync", "nope", "-n", ops)
    assert out.returncode == 1 and out.stderr.strip() == f'error: Environment "nope" not found in namespace "{ops}"'


def test_render_path_needs_no_cluster(tmp_path: Path) -> None:
    """``render --path`` renders a local directory with substitutions and no kubeconfig at all."""
    (tmp_path / "cm.yaml").write_text('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {r: "${REGION}"}\n')
    (tmp_path / "ns.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n")
    (tmp_path / "README.md").write_text("not a manifest\n")
    out = gitopsd_cli(
        None, "render", "--path", str(tmp_path), "--target-namespace", "shop", "--substitute", "REGION=eu-1"
    )
    assert out.returncode == 0, out.stderr
    docs = {d["kind"]: d for d in yaml.safe_load_all(out.stdout) if d}
    assert docs["ConfigMap"]["metadata"]["namespace"] == "shop" and docs["ConfigMap"]["data"] == {"r": "eu-1"}
    assert "namespace" not in docs["Namespace"]["metadata"]
    out = gitopsd_cli(None, "render", "--path", str(tmp_path), "--target-namespace", "shop")
    assert out.returncode == 0, out.stderr  # no --substitute: ${...} is left as written
    docs = {d["kind"]: d for d in yaml.safe_load_all(out.stdout) if d}
    assert docs["ConfigMap"]["data"] == {"r": "${REGION}"}
    out = gitopsd_cli(None, "render", "--path", str(tmp_path), "-n", "shop", "--substitute", "OTHER=x")
    assert out.returncode == 1 and "REGION" in out.stderr and "cm.yaml" in out.stderr
    assert gitopsd_cli(None, "render").returncode == 2
