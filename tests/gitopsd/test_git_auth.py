"""Environments reading Git over https (basic auth) and ssh (key + known_hosts) through a running daemon."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitserver import GitHttpsServer, GitSshServer
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import (
    apply_objects,
    condition,
    env_object,
    environment,
    secret,
    versions,
    wait_ready,
    wait_reason,
)

pytestmark = pytest.mark.cluster

CONFIG = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {source: %s}\n"


def test_https_basic_auth_then_wrong_password_stalls_without_leaking_it(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    git_https_server: GitHttpsServer,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """Good credentials deploy; a wrong password stalls (GitAuthenticationFailed), changes nothing, leaks nothing."""
    cluster = gitopsd_crd
    ops, app = namespaces("ops"), namespaces("app")
    work = git_https_server.new_repo(f"auth-{ops}")
    commit = work.commit({"deploy/cm.yaml": CONFIG % "https"})
    manifest = environment("app", ops, git_https_server.url(f"auth-{ops}"), target=app, branch="main")
    manifest["spec"]["source"]["secretRef"] = {"name": "git"}
    apply_objects(cluster, secret("git", ops, git_https_server.secret_data()), manifest)
    daemon = start_daemon(f"--namespace={ops}")
    wait_ready(cluster, ops, "app", revision=f"main@sha1:{commit}")
    before = versions(cluster, app, "configmaps")

    wrong = "not-the-password-71f3"
    work.commit({"deploy/cm.yaml": CONFIG % "changed"})
    apply_objects(cluster, secret("git", ops, git_https_server.secret_data(password=wrong)))
    ready = wait_reason(cluster, ops, "app", "GitAuthenticationFailed")
    env = env_object(cluster, ops, "app")
    assert condition(env, "Stalled").get("status") == "True"
    assert versions(cluster, app, "configmaps") == before
    events = kubectl(cluster, "get", "events", "-n", ops, "-o", "json").stdout
    for text in (ready["message"], events, daemon.log_text()):
        assert wrong not in text and git_https_server.password not in text


def test_ssh_key_with_known_hosts_then_unknown_host_key_stalls(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    git_ssh_server: GitSshServer,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """ssh with the right key and host key deploys; a known_hosts without the server's key is refused."""
    cluster = gitopsd_crd
    ops, app = namespaces("ops"), namespaces("app")
    work = git_ssh_server.new_repo(f"ssh-{ops}")
    commit = work.commit({"deploy/cm.yaml": CONFIG % "ssh"})
    manifest = environment("app", ops, git_ssh_server.url(f"ssh-{ops}"), target=app, branch="main")
    manifest["spec"]["source"]["secretRef"] = {"name": "git"}
    apply_objects(cluster, secret("git", ops, git_ssh_server.secret_data()), manifest)
    start_daemon(f"--namespace={ops}")
    wait_ready(cluster, ops, "app", revision=f"main@sha1:{commit}")
    before = versions(cluster, app, "configmaps")

    stranger = b"[127.0.0.1]:1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
    work.commit({"deploy/cm.yaml": CONFIG % "changed"})
    apply_objects(cluster, secret("git", ops, git_ssh_server.secret_data(known_hosts=stranger)))
    wait_reason(cluster, ops, "app", "GitHostKeyUnknown")
    assert versions(cluster, app, "configmaps") == before
