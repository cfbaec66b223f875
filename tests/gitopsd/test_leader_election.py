"""Leader election on a real Lease, and high availability of ``gitopsd run``.

In-process: two electors on one Lease (optimistic concurrency, release, expiry). Then real
daemons: only the leader writes, a standby forwards webhooks to it, ``kill -9`` of the leader
hands over once the lease expires, SIGTERM hands over at once; and two shards, each with its
own Lease, reconcile only their own Environments.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e import procs
from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from gitopsd.kube import Kube
from gitopsd.leader import LEASES, LeaderElector, LeaseSettings
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import apply_objects, environment, get_json, secret, wait_for, wait_ready
from tests.gitopsd.webhooks.payloads import encode, post, signed_headers

pytestmark = pytest.mark.cluster
log = logging.getLogger(__name__)

CONFIGMAP = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: app}}\ndata: {{release: "{}"}}\n'
LEASE = {"leaseDuration": "6s", "renewDeadline": "4s", "retryPeriod": "500ms"}


@pytest.fixture
def ops(gitopsd_crd: ClusterInfo) -> Iterator[str]:
    name = f"ha-{secrets.token_hex(3)}"
    assert kubectl(gitopsd_crd, "create", "namespace", name).returncode == 0
    yield name
    kubectl(gitopsd_crd, "delete", "namespace", name, "--wait=false")


def _lease(cluster: ClusterInfo, namespace: str, name: str) -> dict[str, Any]:
    out = kubectl(cluster, "get", "lease", name, "-n", namespace, "-o", "json")
    return json.loads(out.stdout) if out.returncode == 0 else {}


def _holder(cluster: ClusterInfo, namespace: str, name: str) -> str | None:
    return (_lease(cluster, namespace, name).get("spec") or {}).get("holderIdentity")


def _identity(daemon: DaemonProcess) -> str:
    assert daemon.proc is not None
    return f"{socket.gethostname()}_{daemon.proc.pid}"


def _readyz(daemon: DaemonProcess) -> str:
    with urllib.request.urlopen(daemon.url("/readyz"), timeout=5) as resp:  # noqa: S310 (loopback)
        return str(resp.read().decode())


async def test_two_electors_share_one_lease(gitopsd_crd: ClusterInfo, ops: str) -> None:
    """One wins; the other waits; release hands over at once; a dead holder is replaced after the lease duration."""
    async with Kube.from_kubeconfig(gitopsd_crd.kubeconfig) as kube:
        settings = {"namespace": ops, "name": "unit", "lease_duration": 3.0, "renew_deadline": 2.0,
                    "retry_period": 0.2}  # fmt: skip
        a = LeaderElector(kube, LeaseSettings(identity="a", webhook_url="http://a:8081", **settings))  # type: ignore[arg-type]
        b = LeaderElector(kube, LeaseSettings(identity="b", **settings))  # type: ignore[arg-type]
        stop = asyncio.Event()
        assert await a.acquire(stop)
        lease = await kube.get(LEASES.path(ops, "unit"))
        assert lease["spec"]["holderIdentity"] == "a" and lease["spec"]["leaseDurationSeconds"] == 3
        assert lease["metadata"]["annotations"]["gitopsd.dev/webhook-url"] == "http://a:8081"
        # b keeps trying for a second while a renews: it stays a standby and learns who leads.
        b_task = asyncio.create_task(b.acquire(stop))
        keep_a = asyncio.create_task(a.keep(stop))
        await asyncio.sleep(1.0)
        assert not b_task.done() and not b.is_leader
        assert (b.holder, b.leader_url) == ("a", "http://a:8081")
        # A write based on an old resourceVersion is refused: nobody can overwrite a newer record.
        stale = dict(lease, spec={**lease["spec"], "holderIdentity": "intruder"})
        with pytest.raises(Exception, match=r"Conflict|modified|409"):
            await kube.replace(LEASES.path(ops, "unit"), stale)
        # a dies without releasing (its renewals stop): b takes over once a's record is 3s old.
        keep_a.cancel()
        died = time.monotonic()
        assert await asyncio.wait_for(b_task, timeout=10)
        waited = time.monotonic() - died
        assert 2.5 <= waited <= 6, waited
        lease = await kube.get(LEASES.path(ops, "unit"))
        assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1
        # b releases: the record says nobody holds it, for 1s, and a gets it on its next try.
        await b.release()
        lease = await kube.get(LEASES.path(ops, "unit"))
        assert lease["spec"].get("holderIdentity") is None and lease["spec"]["leaseDurationSeconds"] == 1
        started = time.monotonic()
        assert await asyncio.wait_for(a.acquire(stop), timeout=5)
        assert time.monotonic() - started < 1.5
        await a.release()


async def test_a_leader_whose_lease_is_taken_stops_leading(gitopsd_crd: ClusterInfo, ops: str) -> None:
    """Someone else holds the Lease now (an operator's edit, a split brain): keep() raises LeadershipLost."""
    from gitopsd.leader import LeadershipLost

    async with Kube.from_kubeconfig(gitopsd_crd.kubeconfig) as kube:
        a = LeaderElector(kube, LeaseSettings(ops, "taken", "a", 5.0, 3.0, 0.2))
        stop = asyncio.Event()
        assert await a.acquire(stop)
        lease = await kube.get(LEASES.path(ops, "taken"))
        lease["spec"]["holderIdentity"] = "intruder"
        await kube.replace(LEASES.path(ops, "taken"), lease)
        with pytest.raises(LeadershipLost, match="was taken by intruder"):
            await asyncio.wait_for(a.keep(stop), timeout=5)


async def test_a_leader_that_cannot_renew_gives_up_within_the_renew_deadline(
    gitopsd_crd: ClusterInfo, ops: str, tmp_path: Path
) -> None:
    """The API server unreachable from the leader: after renewDeadline it stops leading (before the lease ends)."""
    import yaml

    from gitopsd.leader import LeadershipLost

    config = yaml.safe_load(gitopsd_crd.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{procs.free_port('127.0.0.1')}"
    cut_off = tmp_path / "unreachable.kubeconfig"
    cut_off.write_text(yaml.safe_dump(config))
    async with Kube.from_kubeconfig(gitopsd_crd.kubeconfig) as kube, Kube.from_kubeconfig(cut_off) as dead:
        a = LeaderElector(kube, LeaseSettings(ops, "cut", "a", 6.0, 2.0, 0.3))
        stop = asyncio.Event()
        assert await a.acquire(stop)
        a.kube = dead  # from now on every renewal fails to connect
        started = time.monotonic()
        with pytest.raises(LeadershipLost, match="not renewed for 2s"):
            await asyncio.wait_for(a.keep(stop), timeout=10)
        assert 2.0 <= time.monotonic() - started < 6.0  # gave up before the 6s lease ran out


def _config(path: Path, ops: str, **extra: Any) -> Path:
    path.write_text(json.dumps({"apiVersion": "gitopsd.dev/v1alpha1", "kind": "DaemonConfig",
                                "leaderElection": {"enabled": True, **LEASE}, **extra}))  # fmt: skip
    return path


def test_only_the_leader_reconciles_and_standbys_take_over(
    gitopsd_crd: ClusterInfo, ops: str, repo: WorkRepo, tmp_path: Path
) -> None:
    """Leader writes, standby forwards hooks; kill -9 → takeover within the lease; SIGTERM → at once, exit 0."""
    cluster = gitopsd_crd
    target = f"{ops}-app"
    assert kubectl(cluster, "create", "namespace", target).returncode == 0
    key = secrets.token_hex(16).encode()
    apply_objects(cluster, secret("hooks", ops, {"generic": key}))
    config = _config(tmp_path / "config.yaml", ops, secretNamespace=ops,
                     webhooks={"generic": {"secretRef": {"name": "hooks", "key": "generic"}}})  # fmt: skip
    first = repo.commit({"deploy/app.yaml": CONFIGMAP.format("one")})
    daemons: list[DaemonProcess] = []

    def start(name: str) -> DaemonProcess:
        port = procs.free_port("127.0.0.1")
        daemon = DaemonProcess(
            cluster.kubeconfig, tmp_path / name, f"--namespace={ops}", f"--config={config}",
            f"--webhook-bind-address=127.0.0.1:{port}", f"--webhook-advertise-url=http://127.0.0.1:{port}",
            name=name,
        )  # fmt: skip
        daemon.hooks = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
        daemons.append(daemon)
        return daemon.start()

    try:
        a = start("a")
        wait_for("a leads", lambda: _holder(cluster, ops, "gitopsd") == _identity(a), timeout=20)
        b = start("b")
        assert "standby (leader: " + _identity(a) in _readyz(b)
        apply_objects(cluster, environment("app", ops, repo.file_url, target=target, interval="1h", branch="main"))
        wait_ready(cluster, ops, "app", revision=f"main@sha1:{first}")
        assert a.metric("gitopsd_reconcile_total") >= 1
        assert b.metric("gitopsd_reconcile_total") == 0

        # A push announced to the standby is forwarded to the leader, which deploys it.
        second = repo.commit({"deploy/app.yaml": CONFIGMAP.format("two")})
        body = encode({"repository": repo.file_url, "ref": "refs/heads/main", "after": second})
        status, answer = post(b.hooks + "/hooks/generic", body, signed_headers("generic", key, body))  # type: ignore[attr-defined]
        assert (status, answer["triggered"]) == (202, [f"{ops}/app"]), answer
        wait_ready(cluster, ops, "app", revision=f"main@sha1:{second}")
        assert b.metric("gitopsd_reconcile_total") == 0
        assert b.metric("gitopsd_webhook_requests_total", result="forwarded") == 1

        # kill -9 of the leader: b takes over once the lease (6s) has expired, and deploys.
        a.kill()
        killed = time.monotonic()
        third = repo.commit({"deploy/app.yaml": CONFIGMAP.format("three")})
        wait_for("b leads", lambda: _holder(cluster, ops, "gitopsd") == _identity(b), timeout=15, interval=0.2)
        takeover = time.monotonic() - killed
        assert takeover > 3  # it did wait for the lease to expire: nothing released it
        log.info("kill -9 of the leader -> standby leads after %.1fs (lease 6s)", takeover)
        print(f"takeover after kill -9: {takeover:.1f}s (leaseDuration 6s, retryPeriod 0.5s)")
        wait_ready(cluster, ops, "app", revision=f"main@sha1:{third}")
        assert b.metric("gitopsd_reconcile_total") >= 1

        # SIGTERM of the leader: it releases the Lease, c (waiting) takes over at once; exit 0.
        c = start("c")
        assert "standby" in _readyz(c)
        assert b.proc is not None
        b.proc.popen.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        assert b.proc.popen.wait(timeout=30) == 0
        b.proc = None
        wait_for("c leads", lambda: _holder(cluster, ops, "gitopsd") == _identity(c), timeout=4, interval=0.1)
        handover = time.monotonic() - stopped
        log.info("SIGTERM of the leader -> next leader after %.1fs", handover)
        print(f"handover after SIGTERM: {handover:.1f}s (the lease would have taken 6s)")
        assert "released leadership" in b.log_text()
    finally:
        for daemon in daemons:
            if daemon.proc is not None:
                assert daemon.stop() == 0, daemon.log_text()[-2000:]
        kubectl(cluster, "delete", "namespace", target, "--wait=false")


def test_a_daemon_that_loses_its_lease_stops_and_exits_1(
    gitopsd_crd: ClusterInfo, ops: str, repo: WorkRepo, tmp_path: Path
) -> None:
    """The Lease taken over under a running leader: it stops reconciling at once and exits 1 (to rejoin as standby)."""
    cluster = gitopsd_crd
    config = _config(tmp_path / "config.yaml", ops)
    daemon = DaemonProcess(cluster.kubeconfig, tmp_path / "d", f"--namespace={ops}", f"--config={config}").start()
    try:
        wait_for("it leads", lambda: _holder(cluster, ops, "gitopsd") == _identity(daemon), timeout=20)
        patch = {"spec": {"holderIdentity": "someone-else", "leaseDurationSeconds": 60}}
        out = kubectl(cluster, "patch", "lease", "gitopsd", "-n", ops, "--type=merge", "-p", json.dumps(patch))
        assert out.returncode == 0, out.stderr
        assert daemon.proc is not None
        assert daemon.proc.popen.wait(timeout=20) == 1
        daemon.proc = None
        text = daemon.log_text()
        assert "leadership lost: stopping all work now" in text and "was taken by someone-else" in text
        assert _holder(cluster, ops, "gitopsd") == "someone-else"  # it did not release what it no longer held
    finally:
        if daemon.proc is not None:
            daemon.stop()


def test_two_shards_each_reconcile_only_their_environments(
    gitopsd_crd: ClusterInfo, ops: str, repo: WorkRepo, tmp_path: Path
) -> None:
    """--shard-selector a / b: each daemon leads its own Lease and reconciles only its labelled Environments."""
    cluster = gitopsd_crd
    commit = repo.commit({"deploy/app.yaml": CONFIGMAP.format("one")})
    config = _config(tmp_path / "config.yaml", ops)
    shards = {}
    try:
        for shard in ("a", "b"):
            shards[shard] = DaemonProcess(
                cluster.kubeconfig, tmp_path / shard, f"--namespace={ops}", f"--config={config}",
                f"--shard-selector=gitopsd.dev/shard={shard}", name=f"shard-{shard}",
            ).start()  # fmt: skip
        envs = []
        for name, shard in (("a1", "a"), ("a2", "a"), ("b1", "b"), ("none", None)):
            target = f"{ops}-{name}"
            assert kubectl(cluster, "create", "namespace", target).returncode == 0
            env = environment(name, ops, repo.file_url, target=target, interval="2s", branch="main")
            if shard:
                env["metadata"]["labels"] = {"gitopsd.dev/shard": shard}
            envs.append(env)
        apply_objects(cluster, *envs)
        for name in ("a1", "a2", "b1"):
            wait_ready(cluster, ops, name, revision=f"main@sha1:{commit}")
        time.sleep(3)
        for shard, mine in (("a", {"a1", "a2"}), ("b", {"b1"})):
            daemon = shards[shard]
            names = ("a1", "a2", "b1", "none")
            reconciled = {n for n in names if daemon.metric("gitopsd_reconcile_total", environment=f"{ops}.{n}")}
            assert reconciled == mine, (shard, reconciled)
        assert "status" not in get_json(cluster, "environments.gitopsd.dev", "none", "-n", ops)
        leases = {
            i["metadata"]["name"]: i["spec"]["holderIdentity"] for i in get_json(cluster, "leases", "-n", ops)["items"]
        }
        assert len(leases) == 2 and all(n.startswith("gitopsd-gitopsd-dev-shard-") for n in leases), leases
        assert sorted(leases.values()) == sorted(_identity(d) for d in shards.values())
    finally:
        for daemon in shards.values():
            assert daemon.stop() == 0, daemon.log_text()[-2000:]
        for name in ("a1", "a2", "b1", "none"):
            kubectl(cluster, "delete", "namespace", f"{ops}-{name}", "--wait=false")
