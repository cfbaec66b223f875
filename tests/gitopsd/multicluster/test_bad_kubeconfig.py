"""A kubeconfig Secret gitopsd cannot use: a condition naming the Secret and the problem; nothing applied or logged."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from e2e import multicluster
from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from e2e.multicluster import Targets
from tests.gitopsd.conftest import apply_objects, condition, env_object, environment, wait_for
from tests.gitopsd.multicluster.conftest import Remote, configmap, configmap_data, kube_config, release_secrets

pytestmark = pytest.mark.cluster


def test_bad_kubeconfig_secrets_name_the_secret_and_apply_nothing(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    target_namespaces: Callable[[str, str], str],
    targets: Targets,
    remote: Callable[..., Remote],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """Missing, key missing, not YAML, no current context, wrong CA, exec plugin, http://: each refused, by name."""
    mgmt = gitopsd_crd
    ops = namespaces("ops")
    web = target_namespaces("a", "web")
    good = remote("a", ops)  # a route and a working kubeconfig to spoil
    token, _ = multicluster.service_account_token(targets["a"], "kube-system", "gitopsd-bad-input")
    base = good.kubeconfig(token)

    def spoiled(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        config = copy.deepcopy(base)
        change(config)
        return config

    no_context = spoiled(lambda c: c.pop("current-context"))
    wrong_ca = multicluster.kubeconfig(good.route.server, targets["b"].ca_pem, token)
    exec_user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "/bin/sh", "args": ["-c", "id"]}}
    exec_plugin = spoiled(lambda c: c["users"][0].__setitem__("user", exec_user))
    http_server = good.route.server.replace("https://", "http://")
    plain_http = spoiled(lambda c: c["clusters"][0]["cluster"].__setitem__("server", http_server))
    secrets = [
        multicluster.kubeconfig_secret("bad-key", ops, base, key="config"),
        multicluster.kubeconfig_secret("bad-yaml", ops, "clusters: [unclosed\n  token: " + token.token[-16:]),
        multicluster.kubeconfig_secret("bad-context", ops, no_context),
        multicluster.kubeconfig_secret("bad-ca", ops, wrong_ca),
        multicluster.kubeconfig_secret("bad-exec", ops, exec_plugin),
        multicluster.kubeconfig_secret("bad-http", ops, plain_http),
    ]
    expected = {  # Secret -> (reason, what the message must say)
        "bad-missing": ("KubeConfigInvalid", "not found"),
        "bad-key": ("KubeConfigInvalid", "has no key 'value' or 'value.yaml'"),
        "bad-yaml": ("KubeConfigInvalid", "not YAML"),
        "bad-context": ("KubeConfigInvalid", "no current-context"),
        "bad-ca": ("ClusterCertificateInvalid", "certificate"),
        "bad-exec": ("KubeConfigInvalid", "exec credential plugins are not supported"),
        "bad-http": ("KubeConfigInvalid", "is not an https:// URL"),
    }
    repo.commit({"deploy/app.yaml": configmap("app")})
    daemon = start_daemon(f"--namespace={ops}")
    apply_objects(mgmt, *secrets)
    apply_objects(
        mgmt,
        *(environment(name, ops, repo.file_url, target=web, branch="main", **kube_config(name)) for name in expected),
    )

    def refused() -> dict[str, dict[str, Any]] | None:
        found = {name: condition(env_object(mgmt, ops, name), "Ready") for name in expected}
        return found if all(c.get("status") == "False" and c.get("reason") for c in found.values()) else None

    conditions = wait_for("every Environment refused", refused, timeout=120)
    for name, (reason, says) in expected.items():
        ready = conditions[name]
        assert ready["reason"] == reason, (name, ready)
        assert name in ready["message"] and says in ready["message"], (name, ready)
        if reason == "KubeConfigInvalid":
            stalled = condition(env_object(mgmt, ops, name), "Stalled")
            assert stalled.get("status") == "True", (name, stalled)

    # Nothing applied anywhere, no record written, no credential in the log.
    for cluster in (targets["a"].info, targets["b"].info, mgmt):
        assert configmap_data(cluster, "app", web) is None
        assert all(release_secrets(cluster, name) == [] for name in expected)
    log = daemon.log_text()
    assert token.token[-16:] not in log, "the daemon logged a credential"
