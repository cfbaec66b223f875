"""The promotion gate across clusters: prod in target b takes only what staging in target a ran Healthy.

staging's release records live in target a, so prod's gate reads them there (through staging's
kubeconfig Secret); both Environments sit side by side on the management cluster.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from tests.gitopsd.conftest import apply_objects, env_object, environment, wait_reason
from tests.gitopsd.multicluster.conftest import Remote, configmap, configmap_data, kube_config, ready_at

pytestmark = pytest.mark.cluster


def test_prod_in_one_cluster_takes_only_what_staging_in_another_ran_healthy(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    target_namespaces: Callable[[str, str], str],
    remote: Callable[..., Remote],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """A tag on a commit staging (a) ran Healthy deploys to prod (b); a hotfix staging never ran waits, then deploys."""
    mgmt = gitopsd_crd
    ops = namespaces("ops")
    a, b = remote("a", ops), remote("b", ops)
    stage_ns, prod_ns = target_namespaces("a", "stage"), target_namespaces("b", "prod")
    c1 = repo.commit({"deploy/app.yaml": configmap("app", release="v1")})
    start_daemon(f"--namespace={ops}")
    staging = environment("staging", ops, repo.file_url, target=stage_ns, branch="main", **kube_config(a.secret))
    prod = environment("prod", ops, repo.file_url, target=prod_ns, semver=">=1.0.0", **kube_config(b.secret),
                       promotion={"requireHealthyIn": [{"name": "staging"}]})  # fmt: skip
    apply_objects(mgmt, staging, prod)
    ready_at(mgmt, ops, "staging", f"main@sha1:{c1}")
    repo.tag("v1.0.0", ref=c1)
    ready_at(mgmt, ops, "prod", f"v1.0.0@sha1:{c1}")
    assert configmap_data(b.info, "app", prod_ns) == {"release": "v1"}

    # v1.1.0 tags a hotfix commit staging never ran: prod waits and says why.
    repo.branch("hotfix")
    c2 = repo.commit({"deploy/app.yaml": configmap("app", release="v2")})
    repo.tag("v1.1.0")
    ready = wait_reason(mgmt, ops, "prod", "AwaitingPromotion", timeout=60)
    assert f"v1.1.0@sha1:{c2} waits for promotion: staging never deployed commit {c2[:7]}" in ready["message"], ready
    assert env_object(mgmt, ops, "prod")["status"]["release"] == 1
    assert configmap_data(b.info, "app", prod_ns) == {"release": "v1"}

    # main takes the hotfix: staging runs it Healthy in a, then prod deploys v1.1.0 in b.
    repo.switch("main")
    repo.git("merge", "--quiet", "--ff-only", "hotfix")
    repo.git("push", "--quiet", "origin", "main")
    ready_at(mgmt, ops, "staging", f"main@sha1:{c2}")
    ready_at(mgmt, ops, "prod", f"v1.1.0@sha1:{c2}")
    assert configmap_data(b.info, "app", prod_ns) == {"release": "v2"}
