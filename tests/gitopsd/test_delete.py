"""Deleting an Environment through a real ``gitopsd run``: the opt-in finalizer ``gitopsd.dev/prune``.

One daemon serves the whole module. Every Environment applies the same directory: a Namespace
of its own (cluster-scoped, deleted last), a plain ConfigMap, one marked ``gitopsd.dev/prune:
disabled``, one a test relabels for another owner by hand, and one a test's admission policy
may forbid deleting.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import apply_objects, condition, environment, get_json, wait_for, wait_ready

pytestmark = pytest.mark.cluster

FINALIZER = "gitopsd.dev/prune"
HOLD = "tests.gitopsd.dev/hold"  # another controller's finalizer, which must survive ours
SUITE_LABEL = "tests.gitopsd.dev/delete-suite"


def files(suffix: str) -> dict[str, str]:
    return {
        "deploy/ns.yaml": f"""\
apiVersion: v1
kind: Namespace
metadata:
  name: extra-${{GITOPSD_ENVIRONMENT}}-{suffix}
  labels: {{{SUITE_LABEL}: "{suffix}"}}
""",
        "deploy/config.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata: {name: app}
data: {a: b}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: keep
  labels: {gitopsd.dev/prune: disabled}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: handed}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: stuck
  labels: {tests.gitopsd.dev/undeletable: "true"}
""",
    }


NEVER_READY_APP = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 1
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api, e2e.gitopsd.dev/never-ready: "true"}}
    spec: {containers: [{name: api, image: registry.invalid/api:1}]}
"""


@dataclass(frozen=True, slots=True)
class Suite:
    cluster: ClusterInfo
    ops: str
    repo: WorkRepo
    daemon: DaemonProcess
    suffix: str


@pytest.fixture(scope="module")
def suite(gitopsd_crd: ClusterInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    """A namespace for Environments, a repository, and one daemon watching that namespace."""
    cluster, base = gitopsd_crd, tmp_path_factory.mktemp("delete")
    suffix = hex(time.monotonic_ns())[-6:]
    ops = f"del-ops-{suffix}"
    assert kubectl(cluster, "create", "namespace", ops).returncode == 0
    repo = WorkRepo.create(base / "remote" / "app.git", base / "work")
    repo.commit({**files(suffix), "slow/app.yaml": NEVER_READY_APP})
    daemon = DaemonProcess(cluster.kubeconfig, base / "gitopsd", f"--namespace={ops}").start()
    yield Suite(cluster, ops, repo, daemon, suffix)
    # A failed test may leave an Environment held by a finalizer: let it go so the namespace can.
    for item in get_json(cluster, "environments.gitopsd.dev", "-n", ops)["items"]:
        name = item["metadata"]["name"]
        kubectl(cluster, "patch", "environments.gitopsd.dev", name, "-n", ops, "--type=merge", "-p",
                '{"metadata":{"finalizers":null}}')  # fmt: skip
    log = daemon.log_text()
    code = daemon.stop()
    kubectl(cluster, "delete", "namespace", ops, "--wait=false")
    kubectl(cluster, "delete", "namespace", "-l", f"{SUITE_LABEL}={suffix}", "--wait=false")
    assert code == 0, f"gitopsd exited {code} at SIGTERM:\n{log[-3000:]}"
    assert "reconcile crashed" not in log, log[-3000:]


def _create(s: Suite, name: str, target: str, *, finalizers: tuple[str, ...] = (), **spec: Any) -> dict[str, Any]:
    env = environment(name, s.ops, s.repo.file_url, target=target, branch="main", interval="1h", substitute={}, **spec)
    if finalizers:
        env["metadata"]["finalizers"] = list(finalizers)
    apply_objects(s.cluster, env)
    return wait_ready(s.cluster, s.ops, name)


def _delete(s: Suite, name: str) -> None:
    out = kubectl(s.cluster, "delete", "environments.gitopsd.dev", name, "-n", s.ops, "--wait=false")
    assert out.returncode == 0, out.stderr


def _env(s: Suite, name: str) -> dict[str, Any] | None:
    out = kubectl(s.cluster, "get", "environments.gitopsd.dev", name, "-n", s.ops, "-o", "json")
    if out.returncode != 0:
        assert "NotFound" in out.stderr, out.stderr
        return None
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _live(s: Suite, name: str, target: str) -> dict[str, bool]:
    """Which of the Environment's objects exist and are not being deleted."""
    found = {}
    for what, args in (
        ("Namespace", ("namespace", f"extra-{name}-{s.suffix}")),
        *((f"ConfigMap/{cm}", ("configmap", cm, "-n", target)) for cm in ("app", "keep", "handed", "stuck")),
    ):
        out = kubectl(s.cluster, "get", *args, "-o", "json", "--ignore-not-found")
        assert out.returncode == 0, out.stderr
        found[what] = bool(out.stdout.strip()) and not json.loads(out.stdout)["metadata"].get("deletionTimestamp")
    return found


def _events(s: Suite, name: str, reason: str) -> list[str]:
    items = get_json(s.cluster, "events", "-n", s.ops, "--field-selector", f"involvedObject.name={name}")["items"]
    return [e["message"] for e in items if e.get("reason") == reason]


def _release_secrets(s: Suite, name: str) -> list[str]:
    items = get_json(s.cluster, "secrets", "-n", s.ops, "-l", f"gitopsd.dev/release-of={name}")["items"]
    return [i["metadata"]["name"] for i in items]


ALL = {
    "Namespace": True,
    "ConfigMap/app": True,
    "ConfigMap/keep": True,
    "ConfigMap/handed": True,
    "ConfigMap/stuck": True,
}


def test_finalizer_prunes_what_is_still_ours_and_keeps_other_finalizers(
    suite: Suite, namespaces: Callable[[str], str]
) -> None:
    """With the finalizer, deleting deletes the objects still ours; prune-disabled and relabelled ones stay."""
    s, target = suite, namespaces("del-app")
    _create(s, "pruned", target, finalizers=(FINALIZER, HOLD))
    assert _live(s, "pruned", target) == ALL
    assert _release_secrets(s, "pruned")
    out = kubectl(s.cluster, "label", "configmap", "handed", "-n", target, "gitopsd.dev/environment=other.owner",
                  "--overwrite")  # fmt: skip
    assert out.returncode == 0, out.stderr

    _delete(s, "pruned")
    env = wait_for(
        "gitopsd to remove its finalizer only",
        lambda: (e := _env(s, "pruned")) and e["metadata"].get("finalizers") == [HOLD] and e,
    )
    assert env["metadata"]["deletionTimestamp"]
    live = _live(s, "pruned", target)
    assert live == {**ALL, "Namespace": False, "ConfigMap/app": False, "ConfigMap/stuck": False}
    (message,) = _events(s, "pruned", "PrunedOnDelete")
    assert f"ConfigMap/{target}/app" in message and f"ConfigMap/{target}/keep: gitopsd.dev/prune: disabled" in message
    assert f"ConfigMap/{target}/handed: now labelled for Environment other.owner" in message

    out = kubectl(s.cluster, "patch", "environments.gitopsd.dev", "pruned", "-n", s.ops, "--type=json", "-p",
                  '[{"op": "remove", "path": "/metadata/finalizers/0"}]')  # fmt: skip
    assert out.returncode == 0, out.stderr
    wait_for("the Environment gone", lambda: _env(s, "pruned") is None)
    wait_for("its release records garbage-collected", lambda: not _release_secrets(s, "pruned"))


def test_without_the_finalizer_objects_stay(suite: Suite, namespaces: Callable[[str], str]) -> None:
    """No finalizer: the Environment goes at once and every object it applied stays."""
    s, target = suite, namespaces("del-app")
    _create(s, "plain", target)
    _delete(s, "plain")
    wait_for("the Environment gone", lambda: _env(s, "plain") is None)
    time.sleep(1.0)  # a daemon that wrongly pruned would do it right away
    assert _live(s, "plain", target) == ALL


def test_suspended_environment_is_orphaned(suite: Suite, namespaces: Callable[[str], str]) -> None:
    """Finalizer but spec.suspend: the finalizer is dropped, the objects stay, an Event says so."""
    s, target = suite, namespaces("del-app")
    _create(s, "paused", target, finalizers=(FINALIZER,))
    out = kubectl(s.cluster, "patch", "environments.gitopsd.dev", "paused", "-n", s.ops, "--type=merge", "-p",
                  '{"spec":{"suspend":true}}')  # fmt: skip
    assert out.returncode == 0, out.stderr
    _delete(s, "paused")
    wait_for("the Environment gone", lambda: _env(s, "paused") is None)
    assert _live(s, "paused", target) == ALL
    assert _events(s, "paused", "OrphanedOnDelete") == ["Deleted; spec.suspend is true: its 5 objects left in place"]


def test_deletion_cuts_a_health_wait_short(suite: Suite, namespaces: Callable[[str], str]) -> None:
    """Deleted while its sync waits (up to 60s) for a Deployment that never turns Ready: finalized at once."""
    s, target = suite, namespaces("del-app")
    env = environment("waiting", s.ops, s.repo.file_url, target=target, path="slow", branch="main", interval="1h")
    env["metadata"]["finalizers"] = [FINALIZER]
    apply_objects(s.cluster, env)
    wait_for("the Deployment applied", lambda: get_json(s.cluster, "deployments", "-n", target)["items"])
    time.sleep(1.0)  # the health wait has begun
    _delete(s, "waiting")
    wait_for("the Environment gone before its health wait ends", lambda: _env(s, "waiting") is None, timeout=30)
    deployments = get_json(s.cluster, "deployments", "-n", target)["items"]
    assert all(d["metadata"].get("deletionTimestamp") for d in deployments), deployments


def test_failed_delete_keeps_the_finalizer_reports_and_retries(suite: Suite, namespaces: Callable[[str], str]) -> None:
    """A refused delete keeps the finalizer, names the object (condition, Warning Event), and is retried."""
    s, target = suite, namespaces("del-app")
    _create(s, "stuck", target, finalizers=(FINALIZER,))
    policy = f"no-delete-{s.suffix}"
    apply_objects(
        s.cluster,
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": policy},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["DELETE"],
                            "resources": ["configmaps"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": "!has(oldObject.metadata.labels) || "
                        "!('tests.gitopsd.dev/undeletable' in oldObject.metadata.labels)",
                        "message": "undeletable by test policy",
                    }
                ],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": policy},
            "spec": {
                "policyName": policy,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": target}}},
            },
        },
    )
    try:
        wait_for(
            "the policy in force",
            lambda: (
                "undeletable by test policy"
                in kubectl(s.cluster, "delete", "configmap", "stuck", "-n", target, "--dry-run=server").stderr
            ),
        )
        _delete(s, "stuck")
        ready = wait_for(
            "Ready=False DeletionFailed",
            lambda: (c := condition(_env(s, "stuck") or {}, "Ready")).get("reason") == "DeletionFailed" and c,
        )
        assert f"ConfigMap/{target}/stuck: delete refused" in ready["message"]
        assert "undeletable by test policy" in ready["message"]
        env = _env(s, "stuck")
        assert env is not None and env["metadata"]["finalizers"] == [FINALIZER]
        assert [e["id"] for e in env["status"]["inventory"]["entries"]] == [f"{target}_stuck__ConfigMap"]
        assert any(f"ConfigMap/{target}/stuck" in m for m in _events(s, "stuck", "DeletionFailed"))
        live = _live(s, "stuck", target)
        assert live == {**ALL, "Namespace": False, "ConfigMap/app": False, "ConfigMap/handed": False}
    finally:
        kubectl(s.cluster, "delete", "validatingadmissionpolicybinding", policy)
        kubectl(s.cluster, "delete", "validatingadmissionpolicy", policy)
    wait_for("the Environment gone once the delete is allowed", lambda: _env(s, "stuck") is None)
    assert not _live(s, "stuck", target)["ConfigMap/stuck"]
    (message,) = _events(s, "stuck", "PrunedOnDelete")
    assert f"ConfigMap/{target}/stuck" in message


def test_environment_deleted_while_no_daemon_runs_is_finished_at_start(
    suite: Suite, namespaces: Callable[[str], str]
) -> None:
    """Deleted while the daemon is down: it stays Terminating; the restarted daemon prunes and releases it."""
    s, target = suite, namespaces("del-app")
    _create(s, "later", target, finalizers=(FINALIZER,))
    assert s.daemon.stop() == 0
    try:
        _delete(s, "later")
        time.sleep(1.0)
        env = _env(s, "later")
        assert env is not None and env["metadata"]["deletionTimestamp"] and env["metadata"]["finalizers"] == [FINALIZER]
        assert _live(s, "later", target) == ALL
    finally:
        s.daemon.start()
    wait_for("the Environment gone after the restart", lambda: _env(s, "later") is None)
    assert _live(s, "later", target) == {**ALL, "Namespace": False, "ConfigMap/app": False, "ConfigMap/handed": False,
                                         "ConfigMap/stuck": False}  # fmt: skip


def test_finalizer_removal_rereads_a_list_changed_meanwhile(
    gitopsd_crd: ClusterInfo, namespaces: Callable[[str], str]
) -> None:
    """Removing our finalizer from a stale read: the patch's test refuses it, the list is read again, others stay."""
    import asyncio

    from gitopsd import finalizer
    from gitopsd.kube import Kube

    ns = namespaces("del-race")  # no daemon watches it
    env = environment("race", ns, "file:///nowhere.git", target=ns, branch="main")
    env["metadata"]["finalizers"] = [FINALIZER]
    apply_objects(gitopsd_crd, env)
    stale = get_json(gitopsd_crd, "environments.gitopsd.dev", "race", "-n", ns)
    out = kubectl(gitopsd_crd, "patch", "environments.gitopsd.dev", "race", "-n", ns, "--type=json", "-p",
                  json.dumps([{"op": "add", "path": "/metadata/finalizers/0", "value": HOLD}]))  # fmt: skip
    assert out.returncode == 0, out.stderr

    async def release() -> dict[str, int]:
        async with Kube.from_kubeconfig(gitopsd_crd.kubeconfig) as kube:
            await finalizer._release(kube, stale)
            return kube.stats.snapshot()

    assert asyncio.run(release()) == {"GET environments": 1, "PATCH environments": 2}  # refused, read, removed
    assert get_json(gitopsd_crd, "environments.gitopsd.dev", "race", "-n", ns)["metadata"]["finalizers"] == [HOLD]
    out = kubectl(gitopsd_crd, "patch", "environments.gitopsd.dev", "race", "-n", ns, "--type=merge", "-p",
                  '{"metadata":{"finalizers":null}}')  # fmt: skip
    assert out.returncode == 0, out.stderr
