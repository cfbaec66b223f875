"""A target cluster that goes away never holds back the others, and converges when it returns.

Target ``a`` is reached through a proxy that a test can stop (connections refused, as when its
API server is down) or black-hole (connections accepted and never answered, as when the host
is gone: only timeouts notice). Meanwhile a push must still reach target ``b``; ``a``'s
Environment says ClusterUnreachable naming the cluster, and catches up, without a restart of
gitopsd, once the route is back.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from tests.gitopsd.conftest import apply_objects, environment, wait_reason
from tests.gitopsd.multicluster.conftest import Remote, configmap, configmap_data, kube_config, ready_at

pytestmark = pytest.mark.cluster


def test_an_unreachable_cluster_never_holds_back_another(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    target_namespaces: Callable[[str, str], str],
    remote: Callable[..., Remote],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """Refused, then black-holed: b still gets every push, a is ClusterUnreachable, then converges."""
    mgmt = gitopsd_crd
    ops = namespaces("ops")
    a, b = remote("a", ops), remote("b", ops)
    web_a, web_b = target_namespaces("a", "web"), target_namespaces("b", "web")
    c1 = repo.commit({"deploy/app.yaml": configmap("app", release="v1")})
    daemon = start_daemon(f"--namespace={ops}")
    apply_objects(
        mgmt,
        environment("east", ops, repo.file_url, target=web_a, branch="main", **kube_config(a.secret)),
        environment("west", ops, repo.file_url, target=web_b, branch="main", **kube_config(b.secret)),
    )
    for name in ("east", "west"):
        ready_at(mgmt, ops, name, f"main@sha1:{c1}")
    cluster_a = f"{ops}/{a.secret}"

    # 1. a's API server stops (refused) while the next revision is on its way.
    c2 = repo.commit({"deploy/app.yaml": configmap("app", release="v2")})
    a.route.down()
    ready_at(mgmt, ops, "west", f"main@sha1:{c2}", timeout=60)
    assert configmap_data(b.info, "app", web_b) == {"release": "v2"}
    ready = wait_reason(mgmt, ops, "east", "ClusterUnreachable", timeout=120)
    assert cluster_a in ready["message"], ready
    assert configmap_data(a.info, "app", web_a) == {"release": "v1"}
    assert daemon.metric("gitopsd_cluster_reachable", cluster=cluster_a) == 0
    assert daemon.metric("gitopsd_cluster_errors_total", cluster=cluster_a) > 0
    assert daemon.metric("gitopsd_cluster_reachable", cluster=f"{ops}/{b.secret}") == 1
    a.route.up()
    ready_at(mgmt, ops, "east", f"main@sha1:{c2}", timeout=180)
    assert configmap_data(a.info, "app", web_a) == {"release": "v2"}
    assert daemon.metric("gitopsd_cluster_reachable", cluster=cluster_a) == 1

    # 2. a vanishes from the network (accepted, never answered): b still takes a push at once.
    a.route.blackhole()
    c3 = repo.commit({"deploy/app.yaml": configmap("app", release="v3")})
    ready_at(mgmt, ops, "west", f"main@sha1:{c3}", timeout=60)
    assert configmap_data(b.info, "app", web_b) == {"release": "v3"}
    ready = wait_reason(mgmt, ops, "east", "ClusterUnreachable", timeout=180)
    assert cluster_a in ready["message"], ready
    assert configmap_data(a.info, "app", web_a) == {"release": "v2"}
    # Still b's: another push while a is black-holed.
    c4 = repo.commit({"deploy/app.yaml": configmap("app", release="v4")})
    ready_at(mgmt, ops, "west", f"main@sha1:{c4}", timeout=60)
    a.route.forward()
    ready_at(mgmt, ops, "east", f"main@sha1:{c4}", timeout=180)
    assert configmap_data(a.info, "app", web_a) == {"release": "v4"}
    assert daemon.starts == 1 and daemon.proc is not None, "gitopsd was restarted"
