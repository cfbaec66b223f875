"""Scopes with no cluster: built-in kinds kept as data, checked against a real API server (render/scopes.py)."""

from __future__ import annotations

import asyncio

import pytest

from e2e.binaries import KUBERNETES_VERSION
from e2e.cluster import ClusterInfo
from gitopsd.render import OfflineScopes, builtin_kinds
from gitopsd.render.scopes import served_builtin_kinds


@pytest.mark.parametrize(
    ("api_version", "kind", "namespaced"),
    [
        ("v1", "ConfigMap", True),
        ("v1", "Namespace", False),
        ("apps/v1", "Deployment", True),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", False),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition", False),
        ("networking.k8s.io/v1", "IngressClass", False),
        ("autoscaling/v2", "HorizontalPodAutoscaler", True),
        # Another version of a built-in group: the scope of a kind does not depend on it.
        ("autoscaling/v2beta2", "HorizontalPodAutoscaler", True),
        ("apps/v1", "Widget", None),
        ("example.com/v1", "Deployment", None),
        ("extensions/v1beta1", "Ingress", None),
    ],
)
def test_offline_scopes_answer_by_group_and_kind(api_version: str, kind: str, namespaced: bool | None) -> None:
    """Built-in kinds are known in any version of their group; anything else is unknown (None)."""
    assert OfflineScopes().is_namespaced(api_version, kind) is namespaced


def test_builtin_data_comes_from_the_harness_release() -> None:
    """The data names the Kubernetes release it was generated from, the one the harness runs."""
    assert builtin_kinds.SERVER_VERSION == KUBERNETES_VERSION


@pytest.mark.cluster
def test_builtin_data_matches_a_live_api_server(cluster_ipv4: ClusterInfo) -> None:
    """Regenerating from the running kube-apiserver gives exactly the kept data (re-run the generator if not)."""
    version, kinds = asyncio.run(served_builtin_kinds(str(cluster_ipv4.kubeconfig)))
    assert version == builtin_kinds.SERVER_VERSION
    assert kinds == builtin_kinds.NAMESPACED, "run: python -m gitopsd.render.scopes --kubeconfig KUBECONFIG"
