"""Fixtures of the chart tests: helm for the daemon, an HTTP Helm repository, an OCI registry."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.binaries import ensure_helm
from e2e.helmrepo import HelmRepo, OciRegistry, write_chart
from gitopsd.render.helm import HELM_VARIABLE


@pytest.fixture(scope="session", autouse=True)
def helm_for_daemons() -> Iterator[None]:
    """Daemons started by these tests inherit ``GITOPSD_HELM`` (the harness's helm build)."""
    previous = os.environ.get(HELM_VARIABLE)
    os.environ[HELM_VARIABLE] = str(ensure_helm())
    yield
    if previous is None:
        os.environ.pop(HELM_VARIABLE, None)
    else:
        os.environ[HELM_VARIABLE] = previous


@pytest.fixture
def helm_repo(tmp_path: Path) -> Iterator[HelmRepo]:
    repo = HelmRepo(tmp_path / "helmrepo").start()
    yield repo
    repo.stop()


@pytest.fixture
def oci_registry(tmp_path: Path) -> Iterator[OciRegistry]:
    registry = OciRegistry(tmp_path / "registry-logs").start()
    yield registry
    registry.stop()


def shop_chart(directory: Path, version: str, *, greeting: str = "hello", extra: dict[str, str] | None = None) -> Path:
    """A small chart: one ConfigMap whose data shows values, release and capabilities."""
    files = {
        "Chart.yaml": f"apiVersion: v2\nname: shop\nversion: {version}\n",
        "values.yaml": f"greeting: {greeting}\nreplicas: 1\n",
        "templates/config.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\n"
            "data:\n  greeting: {{ .Values.greeting | quote }}\n  replicas: {{ .Values.replicas | quote }}\n"
            "  chart: {{ .Chart.Version | quote }}\n  namespace: {{ .Release.Namespace | quote }}\n"
            "  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n"
            '  hasDeployments: {{ .Capabilities.APIVersions.Has "apps/v1/Deployment" | quote }}\n'
        ),
        **(extra or {}),
    }
    return write_chart(directory, files)
