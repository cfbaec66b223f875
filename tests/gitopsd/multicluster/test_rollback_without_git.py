"""Rollback of a remote-target Environment while the management side's Git is gone.

The release records live on the target, next to what they restore: ``gitopsd rollback`` restores
an earlier release there from those records alone, with the Environment's repository unreachable
and a daemon that never fetched it (no cache of it either).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from tests.gitopsd.conftest import apply_objects, env_object, environment, gitopsd_cli
from tests.gitopsd.multicluster.conftest import Remote, configmap, configmap_data, kube_config, ready_at

pytestmark = pytest.mark.cluster


def test_a_remote_rollback_is_restored_from_the_target_records_while_git_is_gone(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    target_namespaces: Callable[[str, str], str],
    remote: Callable[..., Remote],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """Two releases on target b; the repository moved away and a fresh daemon (empty cache) in charge;
    rollback --to 1 restores v1 on b as release 3."""
    mgmt = gitopsd_crd
    ops = namespaces("ops")
    b = remote("b", ops)
    web = target_namespaces("b", "web")
    c1 = repo.commit({"deploy/app.yaml": configmap("app", release="v1")})
    first = start_daemon(f"--namespace={ops}")
    apply_objects(
        mgmt,
        environment("far", ops, repo.file_url, target=web, branch="main", interval="1h", **kube_config(b.secret)),
    )
    ready_at(mgmt, ops, "far", f"main@sha1:{c1}")
    c2 = repo.commit({"deploy/app.yaml": configmap("app", release="v2")})
    assert gitopsd_cli(mgmt, "sync", "far", "-n", ops, "--wait").returncode == 0
    ready_at(mgmt, ops, "far", f"main@sha1:{c2}")
    assert configmap_data(b.info, "app", web) == {"release": "v2"}

    # The Environment's repository gone (this test's own bare repository, moved aside): Git is unavailable.
    repo.bare.rename(repo.bare.with_name("shop-gone.git"))
    out = gitopsd_cli(mgmt, "render", "far", "-n", ops)
    assert out.returncode != 0 and "no Git repository there" in out.stderr, out.stdout + out.stderr
    # And a new daemon with an empty cache takes over: nothing of the repository is left on the management side.
    code = first.stop(timeout=60)
    assert code == 0, first.log_text()[-3000:]
    start_daemon(f"--namespace={ops}", name="gitopsd-after")

    out = gitopsd_cli(mgmt, "rollback", "far", "-n", ops, "--to", "1", "--wait", "--timeout", "2m")
    assert out.returncode == 0, out.stdout + out.stderr
    assert configmap_data(b.info, "app", web) == {"release": "v1"}
    assert env_object(mgmt, ops, "far")["status"]["release"] == 3

    # Recorded on target b as release 3, restoring release 1's revision.
    out = gitopsd_cli(mgmt, "history", "far", "-n", ops, "-o", "json")
    assert out.returncode == 0, out.stderr
    releases = json.loads(out.stdout)["releases"]
    assert [(r["release"], r["revision"], r["current"]) for r in releases] == [
        (1, f"main@sha1:{c1}", False),
        (2, f"main@sha1:{c2}", False),
        (3, f"main@sha1:{c1}", True),
    ], releases
