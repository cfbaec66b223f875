"""Git credentials served from a watch by name, against the real API server: no request after the
first read, a rotation seen without a restart (also by a running daemon), GETs where RBAC refuses the watch."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitserver import GitHttpsServer
from gitopsd.kube import Kube
from gitopsd.kube.secrets import SECRETS, SecretNotFound
from gitopsd.kube.secretwatch import PlainSecretReader, SecretWatch
from tests.e2e.kube import api_client, kubectl, new_namespace, role_kubeconfig
from tests.gitopsd.conftest import apply_objects, environment, secret, wait_ready, wait_reason

pytestmark = pytest.mark.cluster

WHERE = "spec.source.secretRef"
CONFIG = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {source: %s}\n"


def git_secret(name: str, ns: str, password: str) -> dict[str, Any]:
    data = {"username": base64.b64encode(b"deploy").decode(), "password": base64.b64encode(password.encode()).decode()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "data": data}


async def eventually(what: str, check: Callable[[], Any], timeout: float = 30.0) -> None:
    """Await ``check()`` until it returns True (bounded, generous); fail naming ``what``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def ns(cluster_ipv4: ClusterInfo) -> Iterator[str]:
    name = new_namespace(api_client(cluster_ipv4), "secretwatch")
    yield name
    kubectl(cluster_ipv4, "delete", "namespace", name, "--wait=false")


@pytest.fixture
async def kube(cluster_ipv4: ClusterInfo) -> AsyncIterator[Kube]:
    async with Kube.from_kubeconfig(cluster_ipv4.kubeconfig) as client:
        yield client


async def test_reads_after_the_first_make_no_request_and_see_a_rotation(kube: Kube, ns: str) -> None:
    """One list+watch for the name; then no GET, a rotation arrives by the watch, a deletion is SecretNotFound."""
    await kube.create(SECRETS.path(ns), git_secret("git", ns, "first-7c1d"))
    watch = SecretWatch(kube)
    try:
        assert (await watch.read(ns, "git", where=WHERE))["password"] == b"first-7c1d"
        await asyncio.sleep(1)  # the watch opens after the first list
        kube.stats.reset()
        for _ in range(20):
            assert (await watch.read(ns, "git", where=WHERE))["password"] == b"first-7c1d"
        assert kube.stats.snapshot() == {}

        await kube.replace(SECRETS.path(ns, "git"), git_secret("git", ns, "second-9e2a"))
        kube.stats.reset()

        async def rotated() -> bool:
            return (await watch.read(ns, "git"))["password"] == b"second-9e2a"

        await eventually("the rotated password", rotated)
        assert kube.stats.snapshot() == {}  # seen by the watch, not read

        await kube.delete(SECRETS.path(ns, "git"))
        with pytest.raises(SecretNotFound) as by_get:
            await PlainSecretReader(kube).read(ns, "git", where=WHERE)

        async def deleted() -> bool:
            try:
                await watch.read(ns, "git", where=WHERE)
            except SecretNotFound as exc:
                return str(exc) == str(by_get.value)
            return False

        await eventually("the deletion", deleted)
    finally:
        await watch.close()


async def test_rbac_without_watch_falls_back_to_a_get_per_read(
    cluster_ipv4: ClusterInfo, kube: Kube, ns: str, tmp_path: Path
) -> None:
    """The watch is refused (403): every read still answers, with one GET each, and one warning names 'watch'."""
    await kube.create(SECRETS.path(ns), git_secret("git", ns, "only-get-4b8f"))
    async with Kube.from_kubeconfig(
        role_kubeconfig(cluster_ipv4, ns, "old-rbac", "get,list,create,patch,delete", "secrets", tmp_path)
    ) as limited:
        watch = SecretWatch(limited)
        try:
            with structlog.testing.capture_logs() as logs:
                assert (await watch.read(ns, "git"))["password"] == b"only-get-4b8f"

                async def refused() -> bool:
                    await watch.read(ns, "git")
                    return not watch.watching()

                await eventually("the refused watch given up", refused)
                limited.stats.reset()
                for _ in range(3):
                    assert (await watch.read(ns, "git"))["password"] == b"only-get-4b8f"
            assert limited.stats.snapshot() == {"GET secrets": 3}
            ours = [e for e in logs if e.get("event", "").startswith("Secrets cannot be watched")]
            assert len(ours) == 1 and ours[0]["log_level"] == "warning"
            assert 'cannot watch resource "secrets"' in ours[0]["reason"] and "'watch'" in ours[0]["fix"]
            assert "only-get" not in repr(logs)
        finally:
            await watch.close()


def test_a_running_daemon_uses_rotated_credentials_without_a_restart(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    git_https_server: GitHttpsServer,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """Wrong credentials stall the Environment; fixing the Secret makes the same daemon deploy."""
    cluster = gitopsd_crd
    ops, app = namespaces("rot"), namespaces("rotapp")
    work = git_https_server.new_repo(f"rotate-{ops}")
    commit = work.commit({"deploy/cm.yaml": CONFIG % "rotated"})
    manifest = environment("app", ops, git_https_server.url(f"rotate-{ops}"), target=app, branch="main")
    manifest["spec"]["source"]["secretRef"] = {"name": "git"}
    wrong = git_https_server.secret_data(password="not-yet-the-password-5d0c")
    apply_objects(cluster, secret("git", ops, wrong), manifest)
    daemon = start_daemon(f"--namespace={ops}")
    assert daemon.proc is not None
    pid = daemon.proc.pid
    wait_reason(cluster, ops, "app", "GitAuthenticationFailed")
    apply_objects(cluster, secret("git", ops, git_https_server.secret_data()))
    wait_ready(cluster, ops, "app", revision=f"main@sha1:{commit}")
    assert daemon.proc.alive() and daemon.proc.pid == pid  # the same process, never restarted
