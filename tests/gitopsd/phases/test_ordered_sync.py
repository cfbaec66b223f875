"""Argo CD-style waves and hooks on a real API server, controllers and kwok nodes, through ``gitopsd run``.

The order is read from the API server's own sequence (the resourceVersion of each change seen by
a watch started before the Environment), never from clocks. Job pods on kwok nodes finish as
their ``e2e.gitopsd.dev/exit-code`` annotation says (e2e/kwok/stages.yaml).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from tests.gitopsd.conftest import apply_objects, condition, env_object, environment, get_json, wait_for, wait_reason
from tests.gitopsd.phases.watching import Watch, is_true, named

pytestmark = pytest.mark.cluster


def configmap(name: str, wave: int, version: str) -> str:
    return f"""\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  annotations: {{argocd.argoproj.io/sync-wave: "{wave}"}}
data: {{version: "{version}"}}
"""


WEB = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations: {argocd.argoproj.io/sync-wave: "0"}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "registry.invalid/web:VERSION"}]
"""


def job(prefix: str, hook: str, exit_code: str = "0", policy: str = "") -> str:
    policy_line = f"\n    argocd.argoproj.io/hook-delete-policy: {policy}" if policy else ""
    return f"""\
apiVersion: batch/v1
kind: Job
metadata:
  generateName: {prefix}-
  annotations:
    argocd.argoproj.io/hook: {hook}{policy_line}
spec:
  backoffLimit: 0
  template:
    metadata:
      annotations: {{e2e.gitopsd.dev/exit-code: "{exit_code}"}}
    spec:
      restartPolicy: Never
      containers: [{{name: run, image: registry.invalid/tool:1, command: [run, {prefix}]}}]
"""


def files(version: str, *, migrate_exit: str = "0") -> dict[str, str]:
    """Argo CD's style: waves -1/0/1, a PreSync migration, a PostSync smoke test, a SyncFail cleanup."""
    return {
        "deploy/early.yaml": configmap("early", -1, version),
        "deploy/web.yaml": WEB.replace("VERSION", version),
        "deploy/late.yaml": configmap("late", 1, version),
        "deploy/migrate.yaml": job("migrate", "PreSync", migrate_exit),
        "deploy/smoke.yaml": job("smoke", "PostSync", policy="HookSucceeded"),
        "deploy/cleanup.yaml": job("cleanup", "SyncFail"),
    }


def _ready_at(cluster: ClusterInfo, ops: str, revision: str) -> bool:
    env = env_object(cluster, ops, "shop")
    applied = (env.get("status") or {}).get("lastAppliedRevision") == revision
    return applied and condition(env, "Ready").get("status") == "True"


def _jobs(cluster: ClusterInfo, namespace: str) -> list[str]:
    return sorted(j["metadata"]["name"] for j in get_json(cluster, "jobs", "-n", namespace)["items"])


def test_an_argo_cd_style_repository_converges_in_order(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """PreSync Job complete → wave -1 → wave 0 healthy → wave 1 → PostSync Job; hooks never inventoried."""
    cluster = gitopsd_crd
    ops, target = namespaces("ops"), namespaces("order")
    commit = repo.commit(files("1"))
    start_daemon(f"--namespace={ops}")
    with (
        Watch(cluster, "jobs", target) as jobs,
        Watch(cluster, "configmaps", target) as cms,
        Watch(cluster, "deployments", target) as deps,
    ):
        apply_objects(cluster, environment("shop", ops, repo.file_url, target=target, branch="main"))
        wait_for("shop Ready", lambda: condition(env_object(cluster, ops, "shop"), "Ready").get("status") == "True",
                 timeout=120)  # fmt: skip
    migrated = jobs.first("the migration Complete", lambda o: named("migrate-")(o) and is_true(o, "Complete"))
    early = cms.first("wave -1", named("early"))
    web_created = deps.first("wave 0 created", named("web"))
    web_ready = deps.first("wave 0 available", lambda o: (o.get("status") or {}).get("availableReplicas") == 2)
    late = cms.first("wave 1", named("late"))
    smoke = jobs.first("the PostSync Job", named("smoke-"))
    assert migrated < early < web_created < web_ready < late < smoke
    env = env_object(cluster, ops, "shop")
    assert env["status"]["lastAppliedRevision"] == f"main@sha1:{commit}"
    ids = {e["id"] for e in env["status"]["inventory"]["entries"]}
    assert ids == {f"{target}_early__ConfigMap", f"{target}_late__ConfigMap", f"{target}_web_apps_Deployment"}
    left = _jobs(cluster, target)
    assert len(left) == 1 and left[0].startswith("migrate-")  # smoke: HookSucceeded; no SyncFail ran
    labels = get_json(cluster, "job", left[0], "-n", target)["metadata"]["labels"]
    assert labels["gitopsd.dev/environment"] == f"{ops}.shop" and labels["gitopsd.dev/hook-id"]


def test_a_failing_or_endless_hook_fails_the_release_and_rolls_back(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """A PreSync Job that fails (then one that never ends): HookFailed naming the Job, SyncFail ran, rolled back."""
    cluster = gitopsd_crd
    ops, target = namespaces("ops"), namespaces("hookfail")
    good = repo.commit(files("1"))
    start_daemon(f"--namespace={ops}")
    spec = environment("shop", ops, repo.file_url, target=target, branch="main", rollback={"auto": True})
    spec["spec"]["wait"] = {"timeout": "20s"}
    apply_objects(cluster, spec)
    wait_for("release 1 Ready", lambda: _ready_at(cluster, ops, f"main@sha1:{good}"), timeout=120)
    bad = repo.commit(files("2", migrate_exit="1"))

    def rolled_back() -> bool:
        st = env_object(cluster, ops, "shop").get("status") or {}
        return (st.get("held") or {}).get("revision") == f"main@sha1:{bad}" and st.get("release") == 3

    wait_for("release 2 rolled back as release 3", rolled_back, timeout=180)
    events = get_json(cluster, "events", "-n", ops, "--field-selector", "involvedObject.name=shop")["items"]
    failed = [e["message"] for e in events if e["reason"] == "HookFailed"]
    assert failed and "PreSync hook" in failed[-1] and f"Job.batch/{target}/migrate-" in failed[-1], failed
    assert "BackoffLimitExceeded" in failed[-1] or "exited 1" in failed[-1], failed[-1]
    assert get_json(cluster, "configmap", "early", "-n", target)["data"]["version"] == "1"  # wave -1 never moved
    assert any(name.startswith("cleanup-") for name in _jobs(cluster, target))  # SyncFail ran

    endless = repo.commit(files("3", migrate_exit="never"))

    def endless_failed() -> dict[str, Any] | None:
        ready = condition(env_object(cluster, ops, "shop"), "Ready")
        return ready if ready.get("reason") == "HookFailed" and endless in ready.get("message", "") else None

    ready = wait_for("the endless hook timed out", endless_failed, timeout=180)
    assert "did not finish within 20s" in ready["message"] and "migrate-" in ready["message"], ready
    wait_for("the endless release rolled back",
             lambda: ((env_object(cluster, ops, "shop").get("status") or {}).get("held") or {}).get("revision")
             == f"main@sha1:{endless}", timeout=180)  # fmt: skip
    assert get_json(cluster, "configmap", "late", "-n", target)["data"]["version"] == "1"


def test_depends_on_waits_for_a_ready_dependency_and_refuses_a_cycle(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """shop waits while db is not Ready (nothing applied), follows once it is; a → b → a is Stalled by name."""
    cluster = gitopsd_crd
    ops, db_ns, shop_ns = namespaces("ops"), namespaces("db"), namespaces("shop")
    never_ready = 'labels: {app: web, "e2e.gitopsd.dev/never-ready": "true"}}'
    never = WEB.replace("VERSION", "1").replace("labels: {app: web}}", never_ready)
    repo.commit({"db/web.yaml": never, "shop/config.yaml": configmap("settings", 0, "1")})
    start_daemon(f"--namespace={ops}")
    db = environment("db", ops, repo.file_url, target=db_ns, branch="main", path="db")
    db["spec"]["wait"] = {"timeout": "5s"}
    after_db = [{"name": "db"}]
    shop = environment("shop", ops, repo.file_url, target=shop_ns, branch="main", path="shop", dependsOn=after_db)
    apply_objects(cluster, db, shop)
    ready = wait_reason(cluster, ops, "shop", "AwaitingDependencies", timeout=120)
    assert f"{ops}/db" in ready["message"], ready
    wait_reason(cluster, ops, "db", "HealthCheckFailed", timeout=120)
    assert get_json(cluster, "configmaps", "-n", shop_ns, "-l", "gitopsd.dev/environment")["items"] == []
    with Watch(cluster, "configmaps", shop_ns) as cms, Watch(cluster, "deployments", db_ns) as deps:
        repo.commit({"db/web.yaml": WEB.replace("VERSION", "2")})
        wait_for("shop Ready", lambda: condition(env_object(cluster, ops, "shop"), "Ready").get("status") == "True",
                 timeout=120)  # fmt: skip
    db_ready = deps.first("db available", lambda o: (o.get("status") or {}).get("availableReplicas") == 2)
    assert db_ready < cms.first("shop's ConfigMap", named("settings"))

    apply_objects(
        cluster,
        environment("a", ops, repo.file_url, target=shop_ns, branch="main", path="shop", dependsOn=[{"name": "b"}]),
        environment("b", ops, repo.file_url, target=shop_ns, branch="main", path="shop", dependsOn=[{"name": "a"}]),
    )
    stalled = wait_for("a Stalled", lambda: condition(env_object(cluster, ops, "a"), "Stalled") or None)
    assert stalled["reason"] == "DependencyCycle" and f"{ops}/a → {ops}/b → {ops}/a" in stalled["message"], stalled
