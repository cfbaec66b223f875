"""kube-apiserver restarted under a running daemon (issue 13, Faults): the daemon carries on by itself.

A private cluster (the shared one is never restarted) whose kube-apiserver is stopped and
started again on the same port and etcd, as when a control-plane node reboots: every object
and resourceVersion survives, every watch and connection drops. Once in the middle of a sync
(its release record written, the bundle being applied or its health awaited) and once while
idle. Afterwards, with the same daemon process: Ready at the new revision, release numbers
contiguous, no record Pending, no release recorded twice, no object of the bundle deleted
(same uids), the watches back (a spec change and a ``kubectl scale`` / delete are acted on long
before the 10 minute interval) and the restart visible in the watch cache's metrics.
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from e2e.binaries import Binaries
from e2e.cluster import ClusterInfo, LocalCluster, new_cluster_dir
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import CRD, apply_objects, condition, environment, get_json, wait_for, wait_ready
from tests.gitopsd.test_releases import records, status_of

pytestmark = pytest.mark.cluster

CONFIGMAPS = 30
#: Generous for a loaded machine, and far below the 10 minute interval the watches are proved against.
DEADLINE = 90.0
WATCH_METRICS = ("gitopsd_watch_restarts_total", "gitopsd_watch_cache_relists_total")


@dataclass(frozen=True, slots=True)
class Restartable:
    local: LocalCluster
    info: ClusterInfo


@pytest.fixture(scope="module")
def restartable(binaries: Binaries) -> Iterator[Restartable]:
    """A private one-node cluster with the Environment CRD, whose API server the tests restart."""
    local = LocalCluster(new_cluster_dir("e2e-apiserver-restart"), "ipv4", nodes=1, binaries=binaries)
    try:
        info = local.start()
        out = kubectl(info, "apply", "--server-side", "-f", str(CRD))
        assert out.returncode == 0, out.stderr
        out = kubectl(info, "wait", "--for=condition=Established", "crd/environments.gitopsd.dev", "--timeout=30s")
        assert out.returncode == 0, out.stderr
        yield Restartable(local, info)
    finally:
        local.stop(remove=True)


@pytest.fixture
def daemon_on(restartable: Restartable, tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start ``gitopsd run`` on the private cluster; stopped after the test (it must exit 0)."""
    started: list[DaemonProcess] = []

    def start(*extra: str) -> DaemonProcess:
        daemon = DaemonProcess(restartable.info.kubeconfig, tmp_path / f"gitopsd-{len(started)}", *extra).start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.proc is not None:
            code = daemon.stop()
            assert code == 0, f"gitopsd exited {code} at SIGTERM:\n{daemon.log_text()[-3000:]}"


def _namespace(cluster: ClusterInfo, prefix: str) -> str:
    name = f"{prefix}-{hex(time.monotonic_ns())[-6:]}"
    out = kubectl(cluster, "create", "namespace", name)
    assert out.returncode == 0, out.stderr
    return name


def _app(value: int) -> dict[str, str]:
    """A bundle of ``CONFIGMAPS`` ConfigMaps and a Deployment whose rollout takes a few seconds."""
    maps = "".join(
        f'---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings-{i:02}}}\ndata: {{value: "{value}"}}\n'
        for i in range(CONFIGMAPS)
    )
    return {
        "deploy/app.yaml": f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 2
  minReadySeconds: 4
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}, annotations: {{value: "{value}"}}}}
    spec: {{containers: [{{name: web, image: "registry.invalid/web:{value}"}}]}}
{maps}"""
    }


def _bundle(head: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """kind/name → object of a release record's bundle (every part decodes: the record is whole)."""
    items = json.loads(gzip.decompress(base64.b64decode(head["data"]["bundle"])))
    return {f"{i['object']['kind']}/{i['object']['metadata']['name']}": i["object"] for i in items}


def _uids(cluster: ClusterInfo, namespace: str) -> dict[str, str]:
    items = get_json(cluster, "deployments,configmaps", "-n", namespace, "-l", "gitopsd.dev/environment")["items"]
    return {f"{i['kind']}/{i['metadata']['name']}": i["metadata"]["uid"] for i in items}


def _settled(cluster: ClusterInfo, ops: str, app_ns: str, value: int) -> str | None:
    """None when the Environment is Ready with every record final and the cluster running the newest; else why not."""
    st = status_of(cluster, ops, "web")
    ready = condition({"status": st}, "Ready")
    if ready.get("status") != "True":
        return f"not Ready: {ready.get('message')}"
    heads = records(cluster, ops, "web")
    pending = [n for n, h in heads.items() if h["metadata"]["labels"]["gitopsd.dev/result"] == "Pending"]
    if pending:
        return f"records still Pending: {pending}"
    if st.get("release") != max(heads):
        return f"status.release {st.get('release')} is not the newest record {max(heads)}"
    bundle = _bundle(heads[max(heads)])
    if len(bundle) != CONFIGMAPS + 1:
        return f"release {max(heads)} holds {len(bundle)} objects, not {CONFIGMAPS + 1}"
    maps = get_json(cluster, "configmaps", "-n", app_ns, "-l", "gitopsd.dev/environment")["items"]
    values = {m["metadata"]["name"]: m["data"]["value"] for m in maps}
    wanted = {k.split("/", 1)[1]: str(value) for k in bundle if k.startswith("ConfigMap/")}
    if values != wanted:
        return f"the cluster holds {values}, not {wanted}"
    return None


def _assert_records_sound(cluster: ClusterInfo, ops: str) -> None:
    heads = records(cluster, ops, "web")
    numbers = sorted(heads)
    assert numbers == list(range(1, len(numbers) + 1)), numbers  # contiguous, none lost
    intents = [
        (h["metadata"]["annotations"]["release.gitopsd.dev/revision"],
         h["metadata"]["annotations"]["release.gitopsd.dev/digest"])
        for _, h in sorted(heads.items())
    ]  # fmt: skip
    duplicates = [n for n, (a, b) in enumerate(itertools.pairwise(intents), 1) if a == b]
    assert duplicates == [], f"releases recorded twice: {duplicates} of {intents}"


def _watch_figure(daemon: DaemonProcess) -> float:
    return sum(daemon.metric(name) for name in WATCH_METRICS)


def _replicas(cluster: ClusterInfo, namespace: str) -> int | None:
    out = kubectl(cluster, "get", "deployment", "web", "-n", namespace, "-o", "json")
    return int(json.loads(out.stdout)["spec"]["replicas"]) if out.returncode == 0 else None


def _prove_watches_back(cluster: ClusterInfo, ops: str, app_ns: str, value: int, interval: str) -> None:
    """A spec change (to ``interval``, minutes), a scale and a delete are each acted on within ``DEADLINE``."""
    patch = json.dumps({"spec": {"interval": interval}})
    out = kubectl(cluster, "patch", "env", "web", "-n", ops, "--type=merge", "-p", patch)
    assert out.returncode == 0, out.stderr
    wait_for(
        "the spec change seen (Environment watch back)",
        lambda: (
            status_of(cluster, ops, "web").get("observedGeneration")
            == get_json(cluster, "env", "web", "-n", ops)["metadata"]["generation"]
        ),
        timeout=DEADLINE,
    )
    out = kubectl(cluster, "scale", "deployment", "web", "-n", app_ns, "--replicas=5")
    assert out.returncode == 0, out.stderr
    out = kubectl(cluster, "delete", "configmap", "settings-07", "-n", app_ns)
    assert out.returncode == 0, out.stderr
    wait_for("kubectl scale reverted (drift watch back)", lambda: _replicas(cluster, app_ns) == 2, timeout=DEADLINE)
    wait_for(
        "the deleted ConfigMap recreated",
        lambda: _settled(cluster, ops, app_ns, value) is None or None,
        timeout=DEADLINE,
    )


def test_apiserver_restart_mid_sync(
    restartable: Restartable, repo: WorkRepo, daemon_on: Callable[..., DaemonProcess]
) -> None:
    """The API server restarted after a release is recorded, during its apply or health wait: the daemon finishes it."""
    cluster = restartable.info
    ops, app_ns = _namespace(cluster, "restart-ops"), _namespace(cluster, "restart-app")
    first = repo.commit(_app(1))
    daemon = daemon_on(f"--namespace={ops}")
    manifest = environment("web", ops, repo.file_url, target=app_ns, branch="main", interval="10s")
    manifest["spec"].update(wait={"timeout": "60s"}, historyLimit=100)
    apply_objects(cluster, manifest)
    wait_ready(cluster, ops, "web", revision=f"main@sha1:{first}")
    before_uids = _uids(cluster, app_ns)
    assert len(before_uids) == CONFIGMAPS + 1, before_uids
    released = max(records(cluster, ops, "web"))
    figure = _watch_figure(daemon)

    second = repo.commit(_app(2))
    heads = wait_for(
        f"release {released + 1} recorded",
        lambda: (r := records(cluster, ops, "web")) and max(r) > released and r,
        timeout=DEADLINE,
        interval=0.1,
    )
    result = heads[max(heads)]["metadata"]["labels"]["gitopsd.dev/result"]
    busy = condition({"status": status_of(cluster, ops, "web")}, "Reconciling").get("message")
    restartable.local.restart_apiserver(down=2.0)

    wait_for(
        f"convergence after the restart (record was {result}, daemon: {busy})",
        lambda: _settled(cluster, ops, app_ns, 2) is None or None,
        timeout=DEADLINE,
    )
    assert status_of(cluster, ops, "web")["lastAppliedRevision"] == f"main@sha1:{second}"
    assert daemon.proc is not None and daemon.proc.alive() and daemon.starts == 1, "the daemon itself restarted"
    _assert_records_sound(cluster, ops)
    assert _uids(cluster, app_ns) == before_uids  # nothing of the bundle was pruned or recreated
    wait_for("the watch restart counted", lambda: _watch_figure(daemon) > figure, timeout=DEADLINE)
    _prove_watches_back(cluster, ops, app_ns, 2, "10m")
    _assert_records_sound(cluster, ops)
    print(json.dumps({"restart_during": {"record": result, "reconciling": busy}}))


def test_apiserver_killed_while_idle(
    restartable: Restartable, repo: WorkRepo, daemon_on: Callable[..., DaemonProcess]
) -> None:
    """The API server killed (SIGKILL) while the daemon is idle: no release, no prune, and the watches resume."""
    cluster = restartable.info
    ops, app_ns = _namespace(cluster, "idle-ops"), _namespace(cluster, "idle-app")
    first = repo.commit(_app(1))
    daemon = daemon_on(f"--namespace={ops}")
    manifest = environment("web", ops, repo.file_url, target=app_ns, branch="main", interval="10m")
    manifest["spec"].update(historyLimit=100)
    apply_objects(cluster, manifest)
    wait_ready(cluster, ops, "web", revision=f"main@sha1:{first}")
    wait_for("settled", lambda: _settled(cluster, ops, app_ns, 1) is None or None, timeout=DEADLINE)
    before_uids, before_records = _uids(cluster, app_ns), sorted(records(cluster, ops, "web"))
    figure = _watch_figure(daemon)

    restartable.local.restart_apiserver(down=3.0, kill=True)

    wait_for("the watch restart counted", lambda: _watch_figure(daemon) > figure, timeout=DEADLINE)
    _prove_watches_back(cluster, ops, app_ns, 1, "9m")
    assert daemon.proc is not None and daemon.proc.alive() and daemon.starts == 1, "the daemon itself restarted"
    assert sorted(records(cluster, ops, "web")) == before_records  # an API server restart is no new release
    after = _uids(cluster, app_ns)
    assert {k: v for k, v in after.items() if k != "ConfigMap/settings-07"} == {
        k: v for k, v in before_uids.items() if k != "ConfigMap/settings-07"
    }  # only the ConfigMap deleted by hand was recreated
    _assert_records_sound(cluster, ops)
