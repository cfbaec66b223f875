"""Several teams in one cluster: an Environment's writes act as its ServiceAccount, so RBAC decides.

A real ``gitopsd run`` (one namespace, impersonating) against the local control plane with RBAC
on: the team's ServiceAccount may write only in its own namespace. What it may write is applied
and pruned; anything else is refused whole, nothing applied, and the condition names the object
and the API server's RBAC message.
"""

from __future__ import annotations

from typing import Any

import pytest

from e2e.cluster import ClusterInfo
from e2e.gitrepo import WorkRepo
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import apply_objects, environment, wait_for, wait_ready, wait_reason

pytestmark = pytest.mark.cluster


def team_rbac(namespace: str, account: str) -> list[dict[str, Any]]:
    """``account`` in ``namespace`` with the built-in ``edit`` role there, and nothing else."""
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, "namespace": namespace}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": f"{account}-edit", "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        },
    ]


def configmap(name: str, namespace: str | None = None) -> str:
    ns = f", namespace: {namespace}" if namespace else ""
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}{ns}}}\ndata: {{a: b}}\n"


def exists(cluster: ClusterInfo, kind: str, name: str, namespace: str) -> bool:
    return kubectl(cluster, "get", kind, name, "-n", namespace).returncode == 0


def test_a_team_applies_in_its_namespace_and_nothing_elsewhere(
    gitopsd_crd: ClusterInfo, namespaces: Any, repo: WorkRepo, start_daemon: Any
) -> None:
    cluster = gitopsd_crd
    team, other = namespaces("team"), namespaces("victim")
    apply_objects(cluster, *team_rbac(team, "deployer"))
    start_daemon("-n", team, "--allow-file-sources", "--default-service-account=nobody")

    # 1. Its own namespace: applied, then pruned, as the ServiceAccount.
    repo.commit({"own/a.yaml": configmap("a"), "own/b.yaml": configmap("b")})
    apply_objects(cluster, environment("own", team, repo.file_url, target=team, path="own", branch="main",
                                       serviceAccountName="deployer"))  # fmt: skip
    wait_ready(cluster, team, "own")
    assert exists(cluster, "configmap", "a", team) and exists(cluster, "configmap", "b", team)
    repo.commit({"own/b.yaml": None})
    wait_for("b pruned", lambda: not exists(cluster, "configmap", "b", team))

    # 2. One object in another namespace: the whole sync refused, naming it and RBAC's reason.
    repo.commit({"reach/mine.yaml": configmap("mine"), "reach/theirs.yaml": configmap("planted", other)})
    apply_objects(cluster, environment("reach", team, repo.file_url, target=team, path="reach", branch="main",
                                       serviceAccountName="deployer"))  # fmt: skip
    ready = wait_reason(cluster, team, "reach", "DryRunFailed")
    message = ready["message"]
    assert f"ConfigMap/{other}/planted" in message, message
    assert f'User "system:serviceaccount:{team}:deployer" cannot' in message, message
    assert "nothing applied" in message, message
    assert not exists(cluster, "configmap", "mine", team) and not exists(cluster, "configmap", "planted", other)

    # 3. No serviceAccountName: the daemon's --default-service-account, which has no rights here.
    repo.commit({"plain/c.yaml": configmap("c")})
    apply_objects(cluster, environment("plain", team, repo.file_url, target=team, path="plain", branch="main"))
    ready = wait_reason(cluster, team, "plain", "DryRunFailed")
    assert f'User "system:serviceaccount:{team}:nobody" cannot' in ready["message"], ready
    assert not exists(cluster, "configmap", "c", team)

    # 4. The admin grants the account its rights: the next interval applies, no edit needed.
    apply_objects(cluster, *team_rbac(team, "nobody"))
    wait_ready(cluster, team, "plain")
    assert exists(cluster, "configmap", "c", team)
