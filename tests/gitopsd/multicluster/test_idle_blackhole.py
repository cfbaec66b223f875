"""A target black-holed while its Environment has nothing new to apply (issue 16).

An idle run asks the target nothing (watch cache, apply memo), so only the liveness check
(``gitopsd.clusters.liveness``) can notice that the target is gone: the Environment goes Ready
False / ClusterUnreachable naming the cluster, and Ready again once the route forwards, with its
watches working again (a change made on the target is corrected), without a restart of gitopsd.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import apply_objects, environment, wait_for, wait_reason
from tests.gitopsd.multicluster.conftest import Remote, configmap, configmap_data, kube_config, ready_at

pytestmark = pytest.mark.cluster


def test_an_idle_environment_on_a_black_holed_cluster_goes_unreachable_and_comes_back(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    target_namespaces: Callable[[str, str], str],
    remote: Callable[..., Remote],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    mgmt = gitopsd_crd
    ops = namespaces("idle")
    a = remote("a", ops)
    web = target_namespaces("a", "web")
    c1 = repo.commit({"deploy/app.yaml": configmap("app", release="v1")})
    daemon = start_daemon(f"--namespace={ops}")
    apply_objects(mgmt, environment("quiet", ops, repo.file_url, target=web, branch="main", **kube_config(a.secret)))
    ready_at(mgmt, ops, "quiet", f"main@sha1:{c1}")
    cluster = f"{ops}/{a.secret}"

    a.route.blackhole()  # nothing pushed: only the liveness check can notice
    ready = wait_reason(mgmt, ops, "quiet", "ClusterUnreachable", timeout=120)
    assert cluster in ready["message"], ready
    assert daemon.metric("gitopsd_cluster_reachable", cluster=cluster) == 0

    a.route.forward()
    ready_at(mgmt, ops, "quiet", f"main@sha1:{c1}", timeout=180)
    # The watches hear the target again: a change there is drift, corrected.
    out = kubectl(a.info, "patch", "configmap", "app", "-n", web, "--type=merge", "-p", '{"data":{"release":"x"}}')
    assert out.returncode == 0, out.stderr
    wait_for(
        "drift on target a corrected", lambda: configmap_data(a.info, "app", web) == {"release": "v1"}, timeout=120
    )
    assert daemon.starts == 1 and daemon.proc is not None, "gitopsd was restarted"
