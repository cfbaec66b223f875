"""Fixtures of the install tests: a cluster with manifests/ applied server-side, as a user would.

On the harness the install gets a cluster of its own: the metrics APIServices it registers
point at pods that kwok "runs" but nothing serves, and an unavailable aggregated API stalls
namespace deletion cluster-wide, which must not leak into the other tests' cluster. With
``GITOPSD_E2E_KUBECONFIG`` (kind) the install goes into that cluster, with the image
``GITOPSD_E2E_IMAGE`` that its nodes really run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import ClusterInfo, LocalCluster, new_cluster_dir
from e2e.kind.existing import ExistingCluster
from tests.e2e.kube import kubectl
from tests.manifests import kit

APISERVICES = ("v1beta2.custom.metrics.k8s.io", "v1beta1.custom.metrics.k8s.io", "v1beta1.external.metrics.k8s.io")


@dataclass
class Install:
    cluster: ClusterInfo
    gitopsd: list[dict[str, Any]]
    adapter: list[dict[str, Any]]
    examples: list[dict[str, Any]]
    image: str | None  # the image the nodes really run (kind); None on kwok
    workdir: Path
    notes: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
def install_cluster(request: pytest.FixtureRequest, existing_cluster: ExistingCluster | None) -> Iterator[ClusterInfo]:
    """The cluster the manifests are installed into (a private harness cluster, or the existing one)."""
    if existing_cluster is not None:
        yield existing_cluster.infos[existing_cluster.families[0]]
        return
    local = LocalCluster(new_cluster_dir("e2e-install"), "ipv4", binaries=request.getfixturevalue("binaries"))
    try:
        yield local.start()
    finally:
        local.stop(remove=True)


def _snapshot_apiservices(cluster: ClusterInfo) -> dict[str, dict[str, Any] | None]:
    found: dict[str, dict[str, Any] | None] = {}
    for name in APISERVICES:
        out = kubectl(cluster, "get", "apiservice", name, "-o", "json")
        found[name] = None
        if out.returncode == 0:
            import json

            obj = json.loads(out.stdout)
            found[name] = {k: obj[k] for k in ("apiVersion", "kind", "spec")} | {"metadata": {"name": name}}
    return found


def _restore_apiservices(cluster: ClusterInfo, before: dict[str, dict[str, Any] | None]) -> None:
    for name, obj in before.items():
        if obj is None:
            kubectl(cluster, "delete", "apiservice", name, "--ignore-not-found", "--wait=false")
        else:
            kit.apply(cluster, [obj], manager="e2e-restore")


@pytest.fixture(scope="session")
def installed(
    install_cluster: ClusterInfo, existing_cluster: ExistingCluster | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Install]:
    """manifests/gitopsd, manifests/metrics-adapter and the examples, applied server-side."""
    image = existing_cluster.image if existing_cluster is not None else None
    workdir = tmp_path_factory.mktemp("install")
    gitopsd = kit.kustomize(kit.overlay(workdir / "gitopsd", [kit.MANIFESTS / "gitopsd"], image=image))
    adapter = kit.kustomize(kit.overlay(workdir / "adapter", [kit.MANIFESTS / "metrics-adapter"], image=image))
    examples = kit.kustomize(kit.MANIFESTS / "examples" / "environments") + kit.kustomize(
        kit.MANIFESTS / "examples" / "app"
    )
    before = _snapshot_apiservices(install_cluster)
    kit.apply(install_cluster, gitopsd)
    out = kubectl(
        install_cluster, "wait", "--for=condition=Established", "crd/environments.gitopsd.dev", "--timeout=60s"
    )
    assert out.returncode == 0, out.stderr
    kit.apply(install_cluster, adapter)
    kit.apply(install_cluster, examples)
    try:
        yield Install(install_cluster, gitopsd, adapter, examples, image, workdir)
    finally:
        if existing_cluster is not None and image is None:
            # A harness cluster shared with other tests: nothing serves these APIServices here.
            _restore_apiservices(install_cluster, before)
