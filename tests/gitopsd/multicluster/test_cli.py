"""The CLI on an Environment that deploys into another cluster: get, history, render, diff, rollback.

The user's kubeconfig names the management cluster only; the CLI reaches the target the way the
daemon does, through the Environment's kubeconfig Secret.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import apply_objects, env_object, environment, gitopsd_cli
from tests.gitopsd.multicluster.conftest import Remote, configmap, configmap_data, kube_config, ready_at

pytestmark = pytest.mark.cluster


def test_cli_reads_a_remote_environment_from_its_target(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    target_namespaces: Callable[[str, str], str],
    remote: Callable[..., Remote],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """get -A shows CLUSTER; history lists the target's records; render, diff and rollback work on target b."""
    mgmt = gitopsd_crd
    ops, local = namespaces("ops"), namespaces("local")
    b = remote("b", ops)
    web = target_namespaces("b", "web")
    c1 = repo.commit({"deploy/app.yaml": configmap("app", release="v1")})
    start_daemon(f"--namespace={ops}")
    apply_objects(
        mgmt,
        environment("far", ops, repo.file_url, target=web, branch="main", interval="1h", **kube_config(b.secret)),
        environment("near", ops, repo.file_url, target=local, branch="main", interval="1h"),
    )
    ready_at(mgmt, ops, "far", f"main@sha1:{c1}")
    ready_at(mgmt, ops, "near", f"main@sha1:{c1}")
    c2 = repo.commit({"deploy/app.yaml": configmap("app", release="v2")})
    assert gitopsd_cli(mgmt, "sync", "far", "-n", ops, "--wait").returncode == 0
    ready_at(mgmt, ops, "far", f"main@sha1:{c2}")

    # get -A: the CLUSTER column says where each deploys.
    out = gitopsd_cli(mgmt, "get", "-A")
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    column = header.split().index("CLUSTER")
    clusters = {row.split()[1]: row.split()[column - 2] for row in rows if row.split()[0] == ops}
    assert clusters == {"far": b.secret, "near": "in-cluster"}, out.stdout  # VERIFIED and HELD are empty

    # history: the records on target b (none on the management cluster).
    out = gitopsd_cli(mgmt, "history", "far", "-n", ops, "-o", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert [(r["release"], r["revision"], r["current"]) for r in doc["releases"]] == [
        (1, f"main@sha1:{c1}", False),
        (2, f"main@sha1:{c2}", True),
    ]
    assert "signaturesUnchecked" not in doc, doc  # the target's key was read there

    # render: as the daemon renders it; diff: against target b's live objects.
    out = gitopsd_cli(mgmt, "render", "far", "-n", ops)
    assert out.returncode == 0, out.stderr
    assert "release: v2" in out.stdout and f"namespace: {web}" in out.stdout
    out = gitopsd_cli(mgmt, "diff", "far", "-n", ops)
    assert out.returncode == 0, out.stdout + out.stderr
    # Suspended first: the daemon reverts a hand edit on the target at once otherwise.
    assert gitopsd_cli(mgmt, "suspend", "far", "-n", ops).returncode == 0
    edit = '{"data":{"release":"hand-edit"}}'
    assert kubectl(b.info, "patch", "configmap", "app", "-n", web, "-p", edit).returncode == 0
    out = gitopsd_cli(mgmt, "diff", "far", "-n", ops)
    assert out.returncode == 1 and "hand-edit" in out.stdout, out.stdout + out.stderr
    assert gitopsd_cli(mgmt, "resume", "far", "-n", ops).returncode == 0

    # rollback: release 1 restored on target b, recorded there as release 3.
    out = gitopsd_cli(mgmt, "rollback", "far", "-n", ops, "--to", "1", "--wait", "--timeout", "2m")
    assert out.returncode == 0, out.stdout + out.stderr
    assert configmap_data(b.info, "app", web) == {"release": "v1"}
    assert env_object(mgmt, ops, "far")["status"]["release"] == 3

    # The target gone: a one-line error naming the cluster, exit 2.
    b.route.down()
    out = gitopsd_cli(mgmt, "history", "far", "-n", ops)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.startswith("error: ") and f"{ops}/{b.secret}" in out.stderr, out.stderr
