"""Fixtures for the apply engine's tests against the harness's IPv4 cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from e2e.cluster import ClusterInfo
from gitopsd.kube import Kube
from tests.e2e.kube import api_client, kubectl, new_namespace
from tests.gitopsd.apply.helpers import connect


@pytest.fixture
async def kube(cluster_ipv4: ClusterInfo) -> AsyncIterator[Kube]:
    """gitopsd's client for the IPv4 cluster, closed after the test."""
    async with connect(cluster_ipv4) as client:
        yield client


@pytest.fixture
def ns(cluster_ipv4: ClusterInfo) -> Iterator[str]:
    """A fresh namespace, deleted (without waiting) after the test."""
    name = new_namespace(api_client(cluster_ipv4), "apply")
    yield name
    kubectl(cluster_ipv4, "delete", "namespace", name, "--wait=false")
