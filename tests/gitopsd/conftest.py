"""Fixtures for gitopsd's end-to-end tests: the CRD installed, a daemon per test, Git repositories."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from tests.e2e.kube import kubectl

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "manifests" / "gitopsd" / "crd.yaml"


@pytest.fixture(scope="session")
def gitopsd_crd(cluster_ipv4: ClusterInfo) -> ClusterInfo:
    """The Environment CRD applied to the IPv4 cluster and Established."""
    out = kubectl(cluster_ipv4, "apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    assert out.returncode == 0, out.stderr
    out = kubectl(cluster_ipv4, "wait", "--for=condition=Established", "crd/environments.gitopsd.dev", "--timeout=30s")
    assert out.returncode == 0, out.stderr
    return cluster_ipv4


@pytest.fixture
def namespaces(gitopsd_crd: ClusterInfo) -> Iterator[Callable[[str], str]]:
    """Make namespaces with a unique suffix; delete them after the test."""
    made: list[str] = []
    suffix = hex(time.monotonic_ns())[-6:]

    def make(prefix: str) -> str:
        name = f"{prefix}-{suffix}"
        out = kubectl(gitopsd_crd, "create", "namespace", name)
        assert out.returncode == 0, out.stderr
        made.append(name)
        return name

    yield make
    for name in made:
        kubectl(gitopsd_crd, "delete", "namespace", name, "--wait=false")


@pytest.fixture
def repo(tmp_path: Path) -> WorkRepo:
    """A developer's clone; Environments read its bare origin (``repo.file_url``)."""
    return WorkRepo.create(tmp_path / "remote" / "shop.git", tmp_path / "work")


@pytest.fixture
def start_daemon(gitopsd_crd: ClusterInfo, tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start ``gitopsd run`` with extra arguments; every daemon is stopped (and must exit 0) after the test."""
    started: list[DaemonProcess] = []

    def start(*extra: str, name: str = "gitopsd") -> DaemonProcess:
        daemon = DaemonProcess(gitopsd_crd.kubeconfig, tmp_path / name, *extra, name=name).start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.proc is not None:
            code = daemon.stop()
            assert code == 0, f"{daemon.name} exited {code} at SIGTERM:\n{daemon.log_text()[-3000:]}"


def environment(
    name: str, namespace: str, url: str, *, target: str, path: str = "deploy", interval: str = "2s", **ref: Any
) -> dict[str, Any]:
    extra = {k: ref.pop(k) for k in list(ref) if k not in ("branch", "tag", "semver", "commit", "secretRef")}
    return {
        "apiVersion": "gitopsd.dev/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "source": {"url": url, "path": path, **ref},
            "targetNamespace": target,
            "interval": interval,
            "wait": {"timeout": "60s"},
            **extra,
        },
    }


def apply_objects(cluster: ClusterInfo, *objects: dict[str, Any]) -> None:
    doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
    out = kubectl(cluster, "apply", "--server-side", "--field-manager=tests", "-f", "-", input=doc)
    assert out.returncode == 0, out.stderr


def get_json(cluster: ClusterInfo, *args: str) -> Any:
    out = kubectl(cluster, "get", *args, "-o", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.5) -> Any:
    """Poll ``check`` until it returns something truthy (bounded); fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except AssertionError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def condition(env: dict[str, Any], type_: str) -> dict[str, Any]:
    for cond in (env.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return {}


def secret(name: str, namespace: str, data: dict[str, bytes]) -> dict[str, Any]:
    """A Secret manifest holding ``data`` (base64-encoded as the API wants)."""
    import base64

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }


def env_object(cluster: ClusterInfo, namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = get_json(cluster, "environments.gitopsd.dev", name, "-n", namespace)
    return result


def wait_ready(cluster: ClusterInfo, namespace: str, name: str, *, revision: str | None = None) -> dict[str, Any]:
    """Wait until Ready=True (at ``revision`` when given, e.g. ``main@sha1:...``)."""

    def check() -> dict[str, Any] | None:
        env = env_object(cluster, namespace, name)
        st = env.get("status") or {}
        ok = condition(env, "Ready").get("status") == "True"
        if ok and (revision is None or st.get("lastAppliedRevision") == revision):
            return env
        return None

    result: dict[str, Any] = wait_for(f"{namespace}/{name} Ready" + (f" at {revision}" if revision else ""), check)
    return result


def wait_reason(cluster: ClusterInfo, namespace: str, name: str, reason: str, timeout: float = 60) -> dict[str, Any]:
    """Wait until Ready=False with ``reason``; return the Ready condition."""

    def check() -> dict[str, Any] | None:
        ready = condition(env_object(cluster, namespace, name), "Ready")
        return ready if ready.get("status") == "False" and ready.get("reason") == reason else None

    result: dict[str, Any] = wait_for(f"{namespace}/{name} Ready=False reason {reason}", check, timeout=timeout)
    return result


def versions(cluster: ClusterInfo, namespace: str, kinds: str = "deployments,services,configmaps") -> dict[str, str]:
    """kind/name → resourceVersion of gitopsd-managed objects in ``namespace`` (to prove nothing was written)."""
    items = get_json(cluster, kinds, "-n", namespace, "-l", "gitopsd.dev/environment")["items"]
    return {f"{i['kind']}/{i['metadata']['name']}": i["metadata"]["resourceVersion"] for i in items}


def gitopsd_cli(cluster: ClusterInfo | None, *args: str, timeout: float = 120) -> Any:
    """Run the ``gitopsd`` command (``python -m gitopsd``) against ``cluster``; returns the CompletedProcess."""
    import subprocess
    import sys

    kube = [f"--kubeconfig={cluster.kubeconfig}"] if cluster is not None else []
    return subprocess.run(
        [sys.executable, "-m", "gitopsd", *args, *kube],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
