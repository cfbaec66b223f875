"""Fixtures for the multi-cluster tests: two target clusters shared by the session, routes and Secrets per test.

The management cluster is the session's IPv4 cluster (``gitopsd_crd``: the CRD installed, the
daemon of ``start_daemon`` runs against it). Two targets start once for every test here, in
parallel (target ``a`` on 127.0.0.1, target ``b`` on ::1, one kwok node each: they only hold
what gitopsd applies and its release records). Each test reaches a target through its own
proxy (``Remote.route``), so a test that takes a target away only takes its own route away.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from e2e import multicluster
from e2e.binaries import Binaries
from e2e.cluster import ClusterInfo
from e2e.multicluster import Credential, Route, Target, Targets
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import apply_objects, condition, env_object, wait_for


@pytest.fixture(scope="session")
def targets(binaries: Binaries, gitopsd_crd: ClusterInfo) -> Iterator[Targets]:
    """Target clusters ``a`` (IPv4) and ``b`` (IPv6), started once for the session."""
    started = multicluster.start_targets({"a": "ipv4", "b": "ipv6"}, binaries=binaries)
    yield started
    started.stop()


@dataclass(slots=True)
class Remote:
    """A target as one test's Environments reach it: a route, and the kubeconfig Secret naming it."""

    target: Target
    route: Route
    secret: str  # the Secret's name, in ``namespace`` of the management cluster
    namespace: str
    credential: Credential

    @property
    def info(self) -> ClusterInfo:
        return self.target.info

    def kubeconfig(self, credential: Credential | None = None) -> dict[str, Any]:
        return multicluster.kubeconfig(self.route.server, self.target.ca_pem, credential or self.credential)

    def write_secret(self, management: ClusterInfo, credential: Credential | None = None) -> None:
        """(Re)write the kubeconfig Secret, e.g. with a rotated credential."""
        if credential is not None:
            self.credential = credential
        apply_objects(management, multicluster.kubeconfig_secret(self.secret, self.namespace, self.kubeconfig()))


@pytest.fixture
def remote(targets: Targets, gitopsd_crd: ClusterInfo) -> Iterator[Callable[..., Remote]]:
    """``remote("a", namespace)``: a fresh route to target ``a``, a kubeconfig Secret for it in ``namespace``
    (admin unless ``credential``), and ``namespace`` on the target for the release records."""
    made: list[Route] = []
    records: list[tuple[Target, str]] = []

    def make(name: str, namespace: str, *, secret: str | None = None, credential: Credential | None = None) -> Remote:
        target = targets[name]
        route = targets.route(target)
        made.append(route)
        # The target keeps the release records in the namespace named like the Environment's.
        if kubectl(target.info, "get", "namespace", namespace).returncode != 0:
            out = kubectl(target.info, "create", "namespace", namespace)
            assert out.returncode == 0, out.stderr
            records.append((target, namespace))
        cred = credential or multicluster.admin_credential(target)
        found = Remote(target, route, secret or f"cluster-{name}", namespace, cred)
        found.write_secret(gitopsd_crd)
        return found

    yield make
    for route in made:
        route.close()
    for target, ns in records:
        kubectl(target.info, "delete", "namespace", ns, "--wait=false")


@pytest.fixture
def target_namespaces(targets: Targets) -> Iterator[Callable[[str, str], str]]:
    """``target_namespaces("a", "web")``: a namespace with a unique name on target ``a`` (deleted after)."""
    made: list[tuple[Target, str]] = []

    def make(name: str, prefix: str) -> str:
        target = targets[name]
        ns = f"{prefix}-{hex(time.monotonic_ns())[-6:]}"
        out = kubectl(target.info, "create", "namespace", ns)
        assert out.returncode == 0, out.stderr
        made.append((target, ns))
        return ns

    yield make
    for target, ns in made:
        kubectl(target.info, "delete", "namespace", ns, "--wait=false")


def configmap(name: str, **data: str) -> str:
    """A ConfigMap manifest (YAML text) for a repository file."""
    return yaml_doc({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data or {"a": "b"}})


def yaml_doc(obj: dict[str, Any]) -> str:
    return json.dumps(obj) + "\n"  # JSON is YAML


def exists(cluster: ClusterInfo, kind: str, name: str, namespace: str) -> bool:
    return kubectl(cluster, "get", kind, name, "-n", namespace).returncode == 0


def release_secrets(cluster: ClusterInfo, environment: str) -> list[str]:
    """``namespace/name`` of every release record Secret of ``environment`` in ``cluster``."""
    out = kubectl(cluster, "get", "secrets", "-A", "-l", f"gitopsd.dev/release-of={environment}", "-o", "json")
    assert out.returncode == 0, out.stderr
    return sorted(f"{s['metadata']['namespace']}/{s['metadata']['name']}" for s in json.loads(out.stdout)["items"])


def configmap_data(cluster: ClusterInfo, name: str, namespace: str) -> dict[str, str] | None:
    out = kubectl(cluster, "get", "configmap", name, "-n", namespace, "-o", "json")
    if out.returncode != 0:
        return None
    data: dict[str, str] = json.loads(out.stdout).get("data") or {}
    return data


def kube_config(secret: str) -> dict[str, Any]:
    """``spec.kubeConfig`` naming ``secret``."""
    return {"kubeConfig": {"secretRef": {"name": secret}}}


def ready_at(cluster: ClusterInfo, namespace: str, name: str, revision: str, timeout: float = 120) -> dict[str, Any]:
    """Wait (with margin: a cluster's backoff may delay it) until Ready=True at ``revision``."""

    def check() -> dict[str, Any] | None:
        env = env_object(cluster, namespace, name)
        ok = condition(env, "Ready").get("status") == "True"
        return env if ok and (env.get("status") or {}).get("lastAppliedRevision") == revision else None

    found: dict[str, Any] = wait_for(f"{namespace}/{name} Ready at {revision}", check, timeout=timeout)
    return found
