"""One gitopsd on the management cluster deploys into two other clusters (IPv4 and IPv6) through kubeconfig Secrets.

What it applies and its release records land on the target; the Environment's status (with
``status.cluster``) and its Events stay on the management cluster, next to the Environment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import apply_objects, env_object, environment, get_json
from tests.gitopsd.multicluster.conftest import (
    Remote,
    configmap,
    configmap_data,
    kube_config,
    ready_at,
    release_secrets,
)

pytestmark = pytest.mark.cluster


def test_one_daemon_deploys_into_two_clusters(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    target_namespaces: Callable[[str, str], str],
    remote: Callable[..., Remote],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """Objects and records land on each target (and nowhere else); status and Events on the management cluster."""
    mgmt = gitopsd_crd
    ops = namespaces("ops")
    a, b = remote("a", ops), remote("b", ops)
    web_a, web_b = target_namespaces("a", "web"), target_namespaces("b", "web")
    c1 = repo.commit({"deploy/app.yaml": configmap("app", release="v1")})
    start_daemon(f"--namespace={ops}")
    apply_objects(
        mgmt,
        environment("east", ops, repo.file_url, target=web_a, branch="main", **kube_config(a.secret)),
        environment("west", ops, repo.file_url, target=web_b, branch="main", **kube_config(b.secret)),
    )
    for name in ("east", "west"):
        ready_at(mgmt, ops, name, f"main@sha1:{c1}")

    assert configmap_data(a.info, "app", web_a) == {"release": "v1"}
    assert configmap_data(b.info, "app", web_b) == {"release": "v1"}
    # Each only where its Secret points: not in the other target, not on the management cluster.
    assert configmap_data(a.info, "app", web_b) is None and configmap_data(b.info, "app", web_a) is None
    assert configmap_data(mgmt, "app", web_a) is None and configmap_data(mgmt, "app", web_b) is None

    # Release records live with what they restore.
    assert release_secrets(a.info, "east") == [f"{ops}/gitopsd.release.v1.east.v1"]
    assert release_secrets(b.info, "west") == [f"{ops}/gitopsd.release.v1.west.v1"]
    assert release_secrets(mgmt, "east") == [] and release_secrets(mgmt, "west") == []
    assert release_secrets(a.info, "west") == [] and release_secrets(b.info, "east") == []

    # Status and Events stay with the Environment.
    east = env_object(mgmt, ops, "east")
    assert east["status"]["cluster"] == a.secret
    assert east["status"]["release"] == 1
    assert env_object(mgmt, ops, "west")["status"]["cluster"] == b.secret
    assert _events_of(mgmt, ops, "east"), "no Event about east on the management cluster"
    assert not _events_of(a.info, ops, "east"), "Events about east were written to the target"

    # A push reaches both.
    c2 = repo.commit({"deploy/app.yaml": configmap("app", release="v2")})
    for name in ("east", "west"):
        ready_at(mgmt, ops, name, f"main@sha1:{c2}")
    assert configmap_data(a.info, "app", web_a) == {"release": "v2"}
    assert configmap_data(b.info, "app", web_b) == {"release": "v2"}
    assert release_secrets(b.info, "west") == [f"{ops}/gitopsd.release.v1.west.v1", f"{ops}/gitopsd.release.v1.west.v2"]


def _events_of(cluster: ClusterInfo, namespace: str, name: str) -> list[dict[str, Any]]:
    out = get_json(cluster, "events", "-n", namespace) if _has_namespace(cluster, namespace) else {"items": []}
    return [e for e in out["items"] if (e.get("involvedObject") or {}).get("name") == name]


def _has_namespace(cluster: ClusterInfo, namespace: str) -> bool:
    return kubectl(cluster, "get", "namespace", namespace).returncode == 0
