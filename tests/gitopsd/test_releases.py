"""Restore-driven delivery through a real ``gitopsd run``: records, automatic and manual rollback, holds, history.

One Environment follows release tags (``semver: ">=1.0.0"``) with ``rollback.auto``: v1 is
healthy, v2's pods never turn Ready (kwok), v3 is healthy again. Then the Git repository is
deleted from disk and release 1 is restored by hand; then every bad rollback request is tried.
"""

from __future__ import annotations

import base64
import gzip
import json
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo, git_env, init_bare
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import (
    apply_objects,
    condition,
    env_object,
    environment,
    get_json,
    gitopsd_cli,
    versions,
    wait_for,
    wait_ready,
)

pytestmark = pytest.mark.cluster

NEVER_READY = '"e2e.gitopsd.dev/never-ready": "true"'


def app(release: str, *, ready: bool = True, extra: bool = False) -> dict[str, str]:
    labels = "app: api" + ("" if ready else f", {NEVER_READY}")
    files = {
        "deploy/app.yaml": f"""\
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{release: "{release}"}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: api}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: api}}}}
  template:
    metadata: {{labels: {{{labels}}}}}
    spec: {{containers: [{{name: api, image: "registry.invalid/api:{release}"}}]}}
""",
    }
    if extra:
        files["deploy/extra.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\ndata: {k: v}\n"
    return files


def records(cluster: ClusterInfo, namespace: str, name: str) -> dict[int, dict[str, Any]]:
    """Release number → head Secret of the Environment's records."""
    items = get_json(
        cluster, "secrets", "-n", namespace, "-l", f"gitopsd.dev/release-of={name},!gitopsd.dev/release-part"
    )["items"]
    return {int(i["metadata"]["labels"]["gitopsd.dev/release"]): i for i in items}


def results(cluster: ClusterInfo, namespace: str, name: str) -> dict[int, str]:
    return {n: s["metadata"]["labels"]["gitopsd.dev/result"] for n, s in records(cluster, namespace, name).items()}


def status_of(cluster: ClusterInfo, namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = env_object(cluster, namespace, name).get("status") or {}
    return result


def _push_all(repo: WorkRepo) -> None:
    subprocess.run(
        ["git", "push", "--quiet", "--tags", "origin", "HEAD"], cwd=repo.work, env=git_env(repo.work), check=True
    )


def test_bad_release_is_rolled_back_held_and_restored_without_git(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """v1 healthy → v2 never Ready → auto rollback, v2 held (again after resume) → v3 → rollback to 1 with Git gone."""
    cluster = gitopsd_crd
    ops, app_ns = namespaces("ops"), namespaces("shop")
    repo.commit(app("v1"))
    v1 = repo.tag("v1.0.0")
    daemon = start_daemon(f"--namespace={ops}")
    manifest = environment("prod", ops, repo.file_url, target=app_ns, semver=">=1.0.0")
    manifest["spec"].update(wait={"timeout": "8s"}, rollback={"auto": True})
    apply_objects(cluster, manifest)
    wait_ready(cluster, ops, "prod", revision=f"v1.0.0@sha1:{v1}")
    assert results(cluster, ops, "prod") == {1: "Healthy"}
    st = status_of(cluster, ops, "prod")
    assert st["release"] == 1 and st["history"][0]["result"] == "Healthy"
    head = records(cluster, ops, "prod")[1]
    assert head["type"] == "gitopsd.dev/release.v1"
    assert head["metadata"]["ownerReferences"][0]["uid"] == env_object(cluster, ops, "prod")["metadata"]["uid"]
    bundle = json.loads(gzip.decompress(base64.b64decode(head["data"]["bundle"])))
    assert {b["object"]["kind"] for b in bundle} == {"ConfigMap", "Deployment"}
    assert all("gitopsd.dev/environment" not in (b["object"]["metadata"].get("labels") or {}) for b in bundle)

    # v2 never becomes Ready: release 2 fails its gate, release 3 restores release 1, v2 is held.
    repo.commit(app("v2", ready=False))
    v2 = repo.tag("v2.0.0")

    def rolled_back() -> dict[str, Any] | None:
        st = status_of(cluster, ops, "prod")
        ok = st.get("release") == 3 and (st.get("held") or {}).get("revision") == f"v2.0.0@sha1:{v2}"
        return st if ok and condition({"status": st}, "Ready").get("status") == "True" else None

    st = wait_for("automatic rollback of v2", rolled_back, timeout=60)
    assert st["lastAppliedRevision"] == f"v1.0.0@sha1:{v1}"
    assert st["held"]["reason"] == "HealthCheckFailed" and st["held"]["release"] == 2
    assert results(cluster, ops, "prod") == {1: "Healthy", 2: "RolledBack", 3: "Healthy"}
    assert records(cluster, ops, "prod")[3]["metadata"]["annotations"]["release.gitopsd.dev/note"] == "rollback to 1"
    assert get_json(cluster, "configmap", "settings", "-n", app_ns)["data"]["release"] == "v1"
    pod_labels = get_json(cluster, "deployment", "api", "-n", app_ns)["spec"]["template"]["metadata"]["labels"]
    assert "e2e.gitopsd.dev/never-ready" not in pod_labels
    assert daemon.metric("gitopsd_rollbacks_total", reason="HealthCheckFailed") == 1
    events = get_json(cluster, "events", "-n", ops, "--field-selector", "reason=RolledBack")["items"]
    assert [e["type"] for e in events] == ["Warning"] and "holding v2.0.0" in events[0]["message"]

    # Held: several intervals pass (2s each) and v2 is never applied again.
    before = versions(cluster, app_ns)
    reconciles = daemon.metric("gitopsd_reconcile_total")
    wait_for("four more reconciles", lambda: daemon.metric("gitopsd_reconcile_total") >= reconciles + 4, timeout=30)
    assert versions(cluster, app_ns) == before
    assert sorted(records(cluster, ops, "prod")) == [1, 2, 3]
    assert status_of(cluster, ops, "prod")["release"] == 3

    # resume retries v2 as release 4; it fails again and is held again (rolled back to 3), not looped.
    assert gitopsd_cli(cluster, "resume", "prod", "-n", ops).returncode == 0
    wait_for(
        "v2 retried, failed and held again",
        lambda: (
            (st := status_of(cluster, ops, "prod")).get("release") == 5
            and (st.get("held") or {}).get("release") == 4
            and condition({"status": st}, "Ready").get("status") == "True"
        ),
        timeout=60,
    )
    assert results(cluster, ops, "prod") == {1: "Healthy", 2: "RolledBack", 3: "Healthy", 4: "RolledBack",
                                             5: "Healthy"}  # fmt: skip
    assert daemon.metric("gitopsd_rollbacks_total", reason="HealthCheckFailed") == 2

    # v3 is healthy: the source moved, the hold lifts by itself, release 6 deploys it.
    repo.commit(app("v3", extra=True))
    v3 = repo.tag("v3.0.0")
    st = wait_ready(cluster, ops, "prod", revision=f"v3.0.0@sha1:{v3}")
    assert st["status"]["release"] == 6 and "held" not in st["status"]
    assert get_json(cluster, "configmap", "extra", "-n", app_ns)["data"] == {"k": "v"}

    # Git is gone: the manual rollback to release 1 reads only the record, and prunes `extra`.
    shutil.rmtree(repo.bare)
    out = gitopsd_cli(cluster, "rollback", "prod", "-n", ops, "--to", "1", "--wait", "--timeout", "60s")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "as release 7" in out.stdout
    assert kubectl(cluster, "get", "configmap", "extra", "-n", app_ns).returncode != 0
    assert get_json(cluster, "configmap", "settings", "-n", app_ns)["data"]["release"] == "v1"
    st = status_of(cluster, ops, "prod")
    assert st["release"] == 7 and st["held"]["revision"] == f"v3.0.0@sha1:{v3}"
    assert st["lastHandledRollback"]["result"] == "Succeeded"
    assert daemon.metric("gitopsd_rollbacks_total", reason="Manual") == 1
    seventh = records(cluster, ops, "prod")[7]["metadata"]["annotations"]
    assert seventh["release.gitopsd.dev/applied-by"] not in ("", "gitopsd")  # the requesting user

    # history tells all of it, with the right result each.
    out = gitopsd_cli(cluster, "history", "prod", "-n", ops, "-o", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["current"] == 7
    rows = {r["release"]: (r["revision"].split("@")[0], r["result"], r["note"]) for r in doc["releases"]}
    assert rows == {
        1: ("v1.0.0", "Healthy", ""),
        2: ("v2.0.0", "RolledBack", ""),
        3: ("v1.0.0", "Healthy", "rollback to 1"),
        4: ("v2.0.0", "RolledBack", ""),
        5: ("v1.0.0", "Healthy", "rollback to 3"),
        6: ("v3.0.0", "RolledBack", ""),
        7: ("v1.0.0", "Healthy", "rollback to 1"),
    }
    table = gitopsd_cli(cluster, "history", "prod", "-n", ops).stdout.splitlines()
    assert table[0].split()[:4] == ["RELEASE", "REVISION", "DIGEST", "APPLIED"]
    assert len(table) == 8 and "current" in table[7]

    _bad_rollbacks(cluster, ops, app_ns, repo, daemon, start_daemon)


def _bad_rollbacks(
    cluster: ClusterInfo,
    ops: str,
    app_ns: str,
    repo: WorkRepo,
    daemon: DaemonProcess,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """Every bad rollback request: one clear line, exit 1, nothing changed."""
    # Git is back; historyLimit 3 removes releases 1 to 4 (never the current or last healthy one).
    init_bare(repo.bare)
    _push_all(repo)
    out = kubectl(cluster, "patch", "env", "prod", "-n", ops, "--type=merge", "-p", '{"spec":{"historyLimit":3}}')
    assert out.returncode == 0, out.stderr
    try:
        wait_for("records pruned to 3", lambda: sorted(records(cluster, ops, "prod")) == [5, 6, 7])
    except BaseException:
        print(kubectl(cluster, "get", "deploy,rs,pods", "-n", app_ns, "-o", "wide").stdout)
        print(json.dumps(get_json(cluster, "deploy", "api", "-n", app_ns)["status"], indent=1))
        print(json.dumps(get_json(cluster, "pods", "-n", app_ns)["items"], indent=1)[:6000])
        raise

    def refused(*args: str) -> str:
        before = (versions(cluster, app_ns), results(cluster, ops, "prod"), status_of(cluster, ops, "prod")["release"])
        out = gitopsd_cli(cluster, "rollback", "prod", "-n", ops, *args)
        assert out.returncode == 1, out.stdout + out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
        after = (versions(cluster, app_ns), results(cluster, ops, "prod"), status_of(cluster, ops, "prod")["release"])
        assert after == before
        return lines[0]

    assert "release 9 of" in refused("--to", "9") and "does not exist (the newest is 7)" in refused("--to", "9")
    assert "was removed by historyLimit (3): the oldest kept is 5" in refused("--to", "1")
    assert "is the current release" in refused("--to", "7")

    # A corrupted record: its bundle no longer matches its digest.
    name = records(cluster, ops, "prod")[6]["metadata"]["name"]
    forged = base64.b64encode(gzip.compress(b'[{"origin":"x","object":{"kind":"ConfigMap"}}]')).decode()
    patch = json.dumps({"data": {"bundle": forged}})
    assert kubectl(cluster, "patch", "secret", name, "-n", ops, "--type=merge", "-p", patch).returncode == 0
    line = refused("--to", "6")
    assert "corrupted" in line and "digest" in line, line

    # A foreign Secret dressed as release 8: not owned by this Environment.
    foreign = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "gitopsd.dev/release.v1",
        "metadata": {
            "name": "gitopsd.release.v1.prod.v8",
            "namespace": ops,
            "labels": {"gitopsd.dev/release-of": "prod", "gitopsd.dev/release": "8", "gitopsd.dev/result": "Healthy"},
        },
        "data": {"bundle": forged},
    }
    apply_objects(cluster, foreign)
    line = refused("--to", "8")
    assert "not owned by Environment" in line, line
    out = gitopsd_cli(cluster, "history", "prod", "-n", ops)
    assert "Invalid" in out.stdout and "gitopsd.release.v1.prod.v8" in out.stdout

    # Suspended.
    assert gitopsd_cli(cluster, "suspend", "prod", "-n", ops).returncode == 0
    assert "is suspended: run 'gitopsd resume prod' first" in refused("--to", "5")
    # Un-suspended by hand: `gitopsd resume` would also lift the hold on v3 and deploy it again.
    out = kubectl(cluster, "patch", "env", "prod", "-n", ops, "--type=merge", "-p", '{"spec":{"suspend":false}}')
    assert out.returncode == 0, out.stderr

    # Another rollback still in progress (the daemon is down, so the first request stays pending).
    assert daemon.stop() == 0
    pending = json.dumps({"token": "t-1", "to": 5, "by": "someone-else", "at": "2026-01-01T00:00:00Z"})
    out = kubectl(cluster, "annotate", "--overwrite", "env", "prod", "-n", ops, f"gitopsd.dev/rollback={pending}")
    assert out.returncode == 0, out.stderr
    assert "already in progress (requested by someone-else" in refused("--to", "5")
    # The daemon comes back and carries out the pending request: release 5 restored as release 9
    # (8 is taken by the foreign Secret: numbers never collide with anything that looks like a record).
    daemon.start()
    wait_for(
        "the pending rollback handled",
        lambda: (status_of(cluster, ops, "prod").get("lastHandledRollback") or {}).get("token") == "t-1",
        timeout=60,
    )
    st = status_of(cluster, ops, "prod")
    assert st["lastHandledRollback"]["result"] == "Succeeded" and st["release"] == 9, st
