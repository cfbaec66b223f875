"""Bad input reaching a running daemon: each gives a precise status and changes nothing in the cluster."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import (
    apply_objects,
    condition,
    env_object,
    environment,
    versions,
    wait_ready,
    wait_reason,
)

pytestmark = pytest.mark.cluster

GOOD = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {color: blue}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 1
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: api, image: registry.invalid/api:1}]}
"""


def _patch_source(cluster: ClusterInfo, ns: str, name: str, source: str) -> None:
    out = kubectl(cluster, "patch", "environments.gitopsd.dev", name, "-n", ns, "--type=merge", "-p", source)
    assert out.returncode == 0, out.stderr


def test_bad_manifests_stall_with_the_file_named_and_change_nothing(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """Malformed YAML, no kind, unknown kind, duplicates, a rejected field: Stalled, file named, cluster untouched."""
    cluster = gitopsd_crd
    ops, app = namespaces("ops"), namespaces("app")
    good = repo.commit({"deploy/app.yaml": GOOD})
    start_daemon(f"--namespace={ops}")
    apply_objects(cluster, environment("app", ops, repo.file_url, target=app, branch="main"))
    wait_ready(cluster, ops, "app", revision=f"main@sha1:{good}")
    before = versions(cluster, app)
    assert set(before) == {"ConfigMap/settings", "Deployment/api"}

    rejected = GOOD.split("---\n")[1].replace("name: api}", "name: api2}").replace("replicas: 1", "replicas: -1")
    no_kind = "apiVersion: v1\nmetadata: {name: x}\n"
    cases = [
        ({"deploy/broken.yaml": "kind: ConfigMap\nmetadata: {name: x\n"}, "MalformedManifest", ["deploy/broken.yaml"]),
        ({"deploy/broken.yaml": no_kind}, "InvalidManifest", ["deploy/broken.yaml", "kind"]),
        (
            {"deploy/broken.yaml": "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g}\n"},
            "UnknownKind",
            ["deploy/broken.yaml", "Gadget"],
        ),
        (
            {"deploy/broken.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n"},
            "DuplicateObject",
            ["deploy/broken.yaml", "deploy/app.yaml"],
        ),
        (
            {"deploy/broken.yaml": rejected},
            "DryRunFailed",
            ["deploy/broken.yaml", "api2", "replicas"],
        ),
    ]
    for files, reason, words in cases:
        bad = repo.commit(files, message=reason)
        ready = wait_reason(cluster, ops, "app", reason)
        for word in words:
            assert word in ready["message"], (reason, ready["message"])
        env = env_object(cluster, ops, "app")
        assert condition(env, "Stalled").get("status") == "True", reason
        assert env["status"]["lastAttemptedRevision"] == f"main@sha1:{bad}"
        assert env["status"]["lastAppliedRevision"] == f"main@sha1:{good}"
        assert versions(cluster, app) == before, f"{reason} changed the cluster"

    fixed = repo.commit({"deploy/broken.yaml": None}, message="fix")
    env = wait_ready(cluster, ops, "app", revision=f"main@sha1:{fixed}")
    assert condition(env, "Stalled") == {}
    assert versions(cluster, app) == before  # the same objects as before, not rewritten

    refs = [
        ('{"spec":{"source":{"branch":"nope"}}}', "RefNotFound", ["nope", "main"]),
        ('{"spec":{"source":{"branch":null,"semver":">=9.0.0"}}}', "RefNotFound", [">=9.0.0"]),
        ('{"spec":{"source":{"semver":null,"branch":"main","path":"missing"}}}', "PathNotFound", ["missing"]),
    ]
    for patch, reason, words in refs:
        _patch_source(cluster, ops, "app", patch)
        ready = wait_reason(cluster, ops, "app", reason)
        for word in words:
            assert word in ready["message"], (reason, ready["message"])
        assert versions(cluster, app) == before

    # An unreachable server is not Stalled: the daemon keeps retrying.
    _patch_source(cluster, ops, "app", '{"spec":{"source":{"path":"deploy","url":"https://127.0.0.1:9/shop.git"}}}')
    wait_reason(cluster, ops, "app", "GitUnreachable")
    env = env_object(cluster, ops, "app")
    assert condition(env, "Reconciling").get("status") == "True" and condition(env, "Stalled") == {}
    assert versions(cluster, app) == before


def test_never_ready_deployment_is_reported_with_the_object_named(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """A Deployment whose pods never turn Ready fails the health gate, naming it."""
    cluster = gitopsd_crd
    ops, app = namespaces("ops"), namespaces("app")
    never = GOOD.replace("labels: {app: api}}", 'labels: {app: api, "e2e.gitopsd.dev/never-ready": "true"}}')
    repo.commit({"deploy/app.yaml": never})
    start_daemon(f"--namespace={ops}")
    manifest = environment("app", ops, repo.file_url, target=app, branch="main")
    manifest["spec"]["wait"] = {"timeout": "8s"}
    apply_objects(cluster, manifest)
    ready = wait_reason(cluster, ops, "app", "HealthCheckFailed")
    assert "Deployment" in ready["message"] and "api" in ready["message"], ready["message"]
    env = env_object(cluster, ops, "app")
    assert condition(env, "Stalled") == {}  # may still become healthy: rechecked each interval
