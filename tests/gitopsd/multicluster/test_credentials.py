"""Credentials for a target: rotated without a restart, and ``spec.serviceAccountName`` impersonating on the target."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e import multicluster
from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from e2e.multicluster import Targets
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import apply_objects, environment, wait_for, wait_reason
from tests.gitopsd.multicluster.conftest import (
    Remote,
    configmap,
    configmap_data,
    exists,
    kube_config,
    ready_at,
)

pytestmark = pytest.mark.cluster


def test_rotated_credentials_are_picked_up_without_a_restart(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    target_namespaces: Callable[[str, str], str],
    targets: Targets,
    remote: Callable[..., Remote],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
    tmp_path: Path,
) -> None:
    """A new token replaces a revoked one, then the route moves: each push lands, the daemon never restarts."""
    mgmt, target = gitopsd_crd, targets["a"]
    ops = namespaces("ops")
    web = target_namespaces("a", "web")
    account = f"gitopsd-{hex(time.monotonic_ns())[-6:]}"
    old, old_secret = multicluster.service_account_token(target, "kube-system", account)
    multicluster.bind_cluster_role(target, {"kind": "ServiceAccount", "name": account, "namespace": "kube-system"})
    a = remote("a", ops, credential=old)
    c1 = repo.commit({"deploy/app.yaml": configmap("app", release="v1")})
    daemon = start_daemon(f"--namespace={ops}")
    apply_objects(mgmt, environment("east", ops, repo.file_url, target=web, branch="main", **kube_config(a.secret)))
    ready_at(mgmt, ops, "east", f"main@sha1:{c1}")

    # 1. Rotate: a second token goes into the Secret, then the first is revoked.
    old_config = tmp_path / "old.kubeconfig"
    old_config.write_text(yaml.safe_dump(a.kubeconfig()))
    new, _ = multicluster.service_account_token(target, "kube-system", account)
    a.write_secret(mgmt, new)
    multicluster.revoke_token(target, "kube-system", old_secret)
    wait_for(  # the API server caches a token's success for a few seconds
        "the old token refused",
        lambda: kubectl(old_config, "get", "namespace", web, "--request-timeout=5s").returncode != 0,
        timeout=60,
    )
    c2 = repo.commit({"deploy/app.yaml": configmap("app", release="v2")})
    ready_at(mgmt, ops, "east", f"main@sha1:{c2}")
    assert configmap_data(target.info, "app", web) == {"release": "v2"}

    # 2. The API server moves (a new address): the Secret follows, the old address goes dark.
    moved = targets.route(target)
    old_route, a.route = a.route, moved
    a.write_secret(mgmt)
    old_route.close()
    c3 = repo.commit({"deploy/app.yaml": configmap("app", release="v3")})
    ready_at(mgmt, ops, "east", f"main@sha1:{c3}")
    assert configmap_data(target.info, "app", web) == {"release": "v3"}
    assert daemon.starts == 1 and daemon.proc is not None, "gitopsd was restarted"
    assert new.token not in daemon.log_text() and old.token not in daemon.log_text(), "a token was logged"


def team_rbac(namespace: str, account: str, account_namespace: str) -> list[dict[str, Any]]:
    """The built-in ``edit`` role in ``namespace`` for ServiceAccount ``account_namespace/account``, nothing else."""
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": f"{account}-edit", "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": account_namespace}],
        }
    ]


def test_service_account_name_impersonates_on_the_target(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    target_namespaces: Callable[[str, str], str],
    remote: Callable[..., Remote],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """On target b (IPv6), the target's RBAC for the Environment's ServiceAccount decides, not the Secret's rights."""
    mgmt = gitopsd_crd
    ops = namespaces("ops")
    b = remote("b", ops)
    team, other = target_namespaces("b", "team"), target_namespaces("b", "victim")
    apply_objects(b.info, *team_rbac(team, "deployer", ops))
    start_daemon(f"--namespace={ops}")
    repo.commit(
        {
            "own/a.yaml": configmap("a"),
            "reach/mine.yaml": configmap("mine"),
            "reach/theirs.yaml": configmap("planted").replace(
                '"name": "planted"', f'"name": "planted", "namespace": "{other}"'
            ),
        }
    )
    remote_env = {**kube_config(b.secret), "serviceAccountName": "deployer"}
    apply_objects(
        mgmt,
        environment("own", ops, repo.file_url, target=team, path="own", branch="main", **remote_env),
        environment("reach", ops, repo.file_url, target=team, path="reach", branch="main", **remote_env),
    )
    wait_for("own Ready", lambda: exists(b.info, "configmap", "a", team), timeout=90)
    ready = wait_reason(mgmt, ops, "reach", "DryRunFailed", timeout=90)
    message = ready["message"]
    assert f"ConfigMap/{other}/planted" in message, message
    assert f'User "system:serviceaccount:{ops}:deployer" cannot' in message, message
    assert not exists(b.info, "configmap", "mine", team) and not exists(b.info, "configmap", "planted", other)
