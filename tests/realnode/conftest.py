"""Fixtures of the real-node tests: one cluster with a kubelet-run node per IP family, shared by
the session, with the tests' HTTP server image loaded; gitopsd as a host process against it."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from e2e.binaries import Binaries
from e2e.cluster import ClusterInfo, IPFamily, LocalCluster, new_cluster_dir
from e2e.daemon import DaemonProcess
from e2e.procs import log_tail
from e2e.realnode import images
from e2e.realnode.node import RealNode
from tests.e2e.kube import kubectl

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "manifests" / "gitopsd" / "crd.yaml"


@dataclass(frozen=True, slots=True)
class RealCluster:
    """A running harness cluster and its real node."""

    info: ClusterInfo
    node: RealNode


def _run(request: pytest.FixtureRequest, family: IPFamily, binaries: Binaries) -> Iterator[RealCluster]:
    cluster = LocalCluster(new_cluster_dir(f"realnode-{family}"), family, binaries=binaries, real_node=True)
    assert cluster.real_node is not None
    failed_before = request.session.testsfailed
    try:
        info = cluster.start()
        cluster.real_node.load_image(images.httpd_archive())
        yield RealCluster(info, cluster.real_node)
    finally:
        if request.session.testsfailed > failed_before:
            for log in sorted((cluster.directory / "logs").glob("*.log")):
                print(f"\n--- {family} {log.name} (last lines) ---\n{log_tail(log, 30)}", file=sys.__stderr__)
        cluster.stop(remove=True)


@pytest.fixture(scope="session")
def real_cluster_ipv4(request: pytest.FixtureRequest, binaries: Binaries) -> Iterator[RealCluster]:
    """An IPv4 cluster with a real node (kubelet, containerd, kube-proxy), shared by the session."""
    yield from _run(request, "ipv4", binaries)


@pytest.fixture(scope="session")
def real_cluster_ipv6(request: pytest.FixtureRequest, binaries: Binaries) -> Iterator[RealCluster]:
    """An IPv6 cluster with a real node, shared by the session."""
    yield from _run(request, "ipv6", binaries)


@pytest.fixture(scope="session", params=["ipv4", "ipv6"])
def real_cluster(request: pytest.FixtureRequest) -> RealCluster:
    """Run the test once per IP family."""
    rc: RealCluster = request.getfixturevalue(f"real_cluster_{request.param}")
    return rc


@pytest.fixture
def namespace(real_cluster_ipv4: RealCluster) -> Iterator[str]:
    """A fresh namespace on the IPv4 real-node cluster, deleted after the test."""
    name = f"rn-{hex(time.monotonic_ns())[-8:]}"
    assert kubectl(real_cluster_ipv4.info, "create", "namespace", name).returncode == 0
    yield name
    kubectl(real_cluster_ipv4.info, "delete", "namespace", name, "--wait=false")


def create(info: ClusterInfo, namespace: str, *objects: dict[str, Any]) -> None:
    doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
    out = kubectl(info, "create", "-n", namespace, "-f", "-", input=doc)
    assert out.returncode == 0, out.stderr


def get(info: ClusterInfo, namespace: str, *args: str) -> Any:
    out = kubectl(info, "get", "-n", namespace, *args, "-o", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def pod_condition(pod: dict[str, Any], type_: str) -> str | None:
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond["type"] == type_:
            return str(cond["status"])
    return None


@pytest.fixture(scope="session")
def real_gitopsd_crd(real_cluster_ipv4: RealCluster) -> ClusterInfo:
    """The Environment CRD on the IPv4 real-node cluster."""
    info = real_cluster_ipv4.info
    out = kubectl(info, "apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    assert out.returncode == 0, out.stderr
    out = kubectl(info, "wait", "--for=condition=Established", "crd/environments.gitopsd.dev", "--timeout=30s")
    assert out.returncode == 0, out.stderr
    return info


@pytest.fixture
def start_daemon(real_gitopsd_crd: ClusterInfo, tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """``gitopsd run`` on this machine against the real-node cluster; stopped (exit 0) after the test."""
    started: list[DaemonProcess] = []

    def start(*extra: str) -> DaemonProcess:
        daemon = DaemonProcess(real_gitopsd_crd.kubeconfig, tmp_path / "gitopsd", *extra, name="gitopsd").start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.proc is not None:
            code = daemon.stop()
            assert code == 0, f"gitopsd exited {code} at SIGTERM:\n{daemon.log_text()[-3000:]}"
