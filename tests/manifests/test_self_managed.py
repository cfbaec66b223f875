"""gitopsd deploys its own install bases from Git (self-management), as a user's second step would.

The bases carry text gitopsd must not touch: the adapter's prometheus-adapter rules hold
``${1}``-style templates and the dashboard ``${datasource}``. Before substitution became opt-in
both bases were Stalled on them, so gitopsd could not manage itself or the adapter.

A private cluster: the APIServices the adapter base registers point at nothing that serves
them, which must not reach the other tests' cluster (see conftest.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from e2e.cluster import ClusterInfo, LocalCluster, new_cluster_dir
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from gitopsd.cli.common import CRD_MISSING
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import apply_objects, condition, get_json, gitopsd_cli, wait_for
from tests.manifests import kit

pytestmark = pytest.mark.cluster

NAMESPACE = "gitopsd-system"


@pytest.fixture
def own_cluster(request: pytest.FixtureRequest) -> Iterator[ClusterInfo]:
    """A cluster of this test's own, with the Environment CRD created and gitopsd's namespace made
    (and, before that, the CLI's message for a cluster without the CRD checked)."""
    local = LocalCluster(new_cluster_dir("e2e-self"), "ipv4", binaries=request.getfixturevalue("binaries"))
    try:
        cluster = local.start()
        # Before anything is installed, the CLI says what is missing (not "Environment not found").
        for args in (("get",), ("get", "dev"), ("history", "dev")):
            out = gitopsd_cli(cluster, *args, "-n", NAMESPACE)
            assert out.returncode == 1, out
            assert out.stderr == f"error: {CRD_MISSING}\n", out.stderr
        # Created (an Update manager), as a first `kubectl create` would: gitopsd then owns them by apply.
        for args in (("create", "-f", str(kit.MANIFESTS / "gitopsd" / "crd.yaml")), ("create", "namespace", NAMESPACE)):
            out = kubectl(cluster, *args)
            assert out.returncode == 0, out.stderr
        out = kubectl(cluster, "wait", "--for=condition=Established", "crd/environments.gitopsd.dev", "--timeout=60s")
        assert out.returncode == 0, out.stderr
        yield cluster
    finally:
        local.stop(remove=True)


def _environment(name: str, url: str, path: str) -> dict[str, object]:
    return {
        "apiVersion": "gitopsd.dev/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"source": {"url": url, "branch": "main", "path": path}, "interval": "1h", "wait": {"timeout": "5m"}},
    }


def test_gitopsd_deploys_its_own_bases_from_git(own_cluster: ClusterInfo, tmp_path: Path) -> None:
    """manifests/gitopsd and manifests/metrics-adapter, pushed to Git, become Ready Environments applied as written."""
    repo = WorkRepo.create(tmp_path / "remote" / "platform.git", tmp_path / "work")
    shutil.copytree(kit.MANIFESTS, tmp_path / "work" / "manifests")
    commit = repo.commit({}, "the install bases")

    daemon = DaemonProcess(own_cluster.kubeconfig, tmp_path / "daemon", f"--namespace={NAMESPACE}").start()
    try:
        apply_objects(
            own_cluster,
            _environment("gitopsd", repo.file_url, "manifests/gitopsd"),
            _environment("metrics-adapter", repo.file_url, "manifests/metrics-adapter"),
        )

        def both_ready() -> dict[str, dict[str, object]] | None:
            items = get_json(own_cluster, "environments.gitopsd.dev", "-n", NAMESPACE)["items"]
            envs = {i["metadata"]["name"]: i for i in items}
            ready = [condition(e, "Ready") for e in envs.values()]
            if len(envs) == 2 and all(c.get("status") == "True" for c in ready):
                return envs
            assert not any(c.get("reason") in ("SubstitutionFailed", "InvalidSpec") for c in ready), ready
            raise AssertionError(ready)  # wait_for reports the last conditions seen

        try:
            envs = wait_for("both bases Ready", both_ready, timeout=420)
        except pytest.fail.Exception as exc:
            pytest.fail(f"{exc}\n--- gitopsd's log (tail):\n{daemon.log_text()[-4000:]}")
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log_text()[-3000:]
    for env in envs.values():
        assert env["status"]["lastAppliedRevision"] == f"main@sha1:{commit}"  # type: ignore[index]

    # The adapter's rules reach the cluster exactly as in Git (templates and all).
    rendered = kit.kustomize(kit.MANIFESTS / "metrics-adapter")
    want = next(d for d in rendered if d["kind"] == "ConfigMap" and "config.yaml" in (d.get("data") or {}))
    live = get_json(own_cluster, "configmap", want["metadata"]["name"], "-n", want["metadata"]["namespace"])
    assert live["data"]["config.yaml"] == want["data"]["config.yaml"]
    assert "${1}_per_second" in live["data"]["config.yaml"]
    assert yaml.safe_load(live["data"]["config.yaml"])  # still the adapter's config
    deployment = get_json(own_cluster, "deployment", "gitopsd", "-n", NAMESPACE)
    assert deployment["metadata"]["labels"]["gitopsd.dev/environment"] == f"{NAMESPACE}.gitopsd"
