"""A fixed kubeconfig Secret is used at once: the daemon's watch of the Secret queues its Environments."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from e2e import multicluster
from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from tests.gitopsd.conftest import apply_objects, environment, wait_reason
from tests.gitopsd.multicluster.conftest import Remote, configmap, configmap_data, kube_config, ready_at

pytestmark = pytest.mark.cluster


def test_a_fixed_kubeconfig_secret_deploys_at_once_not_at_the_next_interval(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    target_namespaces: Callable[[str, str], str],
    remote: Callable[..., Remote],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """interval 1h: Stalled on a refused kubeconfig (an exec plugin), then Ready on target a seconds after the fix."""
    mgmt = gitopsd_crd
    ops = namespaces("ops")
    web = target_namespaces("a", "web")
    a = remote("a", ops)
    refused = a.kubeconfig()
    refused["users"][0]["user"] = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "login"}}
    apply_objects(mgmt, multicluster.kubeconfig_secret(a.secret, ops, refused))
    commit = repo.commit({"deploy/app.yaml": configmap("app", release="v1")})
    start_daemon(f"--namespace={ops}")
    east = environment("east", ops, repo.file_url, target=web, branch="main", interval="1h", **kube_config(a.secret))
    apply_objects(mgmt, east)
    ready = wait_reason(mgmt, ops, "east", "KubeConfigInvalid", timeout=90)
    assert "exec" in ready["message"], ready
    a.write_secret(mgmt)  # fixed: the next reconcile would be an hour away
    ready_at(mgmt, ops, "east", f"main@sha1:{commit}", timeout=60)
    assert configmap_data(a.info, "app", web) == {"release": "v1"}
