"""A chart with Helm hooks from an HTTP Helm repository, through a real ``gitopsd run``.

The order is read from the API server's own sequence (resourceVersions seen by watches started
before the Environment), never from clocks. Job pods on kwok nodes finish as their
``e2e.gitopsd.dev/exit-code`` annotation says (e2e/kwok/stages.yaml).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.helmrepo import HelmRepo, write_chart
from tests.gitopsd.conftest import apply_objects, condition, env_object, get_json, wait_for
from tests.gitopsd.helm.test_charts import chart_env, config
from tests.gitopsd.phases.watching import Watch, is_true, named

pytestmark = pytest.mark.cluster


def hook_job(prefix: str, hook: str, *, weight: str = "0", policy: str = "", exit_code: str = "0") -> str:
    """A Job hook with ``generateName``; its pod exits with ``exit_code`` (a template: may read values)."""
    policy_line = f"\n    helm.sh/hook-delete-policy: {policy}" if policy else ""
    return f"""\
apiVersion: batch/v1
kind: Job
metadata:
  generateName: {prefix}-
  annotations:
    helm.sh/hook: {hook}
    helm.sh/hook-weight: "{weight}"{policy_line}
spec:
  backoffLimit: 0
  template:
    metadata:
      annotations: {{e2e.gitopsd.dev/exit-code: "{exit_code}"}}
    spec:
      restartPolicy: Never
      containers: [{{name: run, image: registry.invalid/tool:1, command: [run, {prefix}]}}]
"""


def hooked_chart(directory: Path, version: str, *, backfill_exit: str = "0") -> Path:
    """Two pre-install/pre-upgrade Jobs (weights 5 and -5, hook-succeeded), a Deployment and a ConfigMap,
    a post-install/post-upgrade Job, and a ``test`` hook."""
    pre = "pre-install,pre-upgrade"
    return write_chart(
        directory,
        {
            "Chart.yaml": f"apiVersion: v2\nname: shop\nversion: {version}\n",
            "values.yaml": "replicas: 2\n",
            # backfill sorts before migrate by name and file: only hook-weight runs migrate first
            "templates/a-backfill.yaml": hook_job(
                "backfill", pre, weight="5", policy="hook-succeeded", exit_code=backfill_exit
            ),
            "templates/b-migrate.yaml": hook_job("migrate", pre, weight="-5", policy="hook-succeeded"),
            "templates/post.yaml": hook_job("post", "post-install,post-upgrade"),
            "templates/test.yaml": hook_job("smoke-test", "test"),
            "templates/config.yaml": (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shop-config}\n"
                "data: {chart: {{ .Chart.Version | quote }}}\n"
            ),
            "templates/web.yaml": (
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n"
                "  replicas: {{ .Values.replicas }}\n  selector: {matchLabels: {app: web}}\n"
                "  template:\n    metadata: {labels: {app: web}}\n"
                '    spec: {containers: [{name: web, image: "registry.invalid/web:{{ .Chart.Version }}"}]}\n'
            ),
        },
    )


def _jobs(cluster: ClusterInfo, namespace: str) -> list[str]:
    return sorted(j["metadata"]["name"] for j in get_json(cluster, "jobs", "-n", namespace)["items"])


def _ready_at(cluster: ClusterInfo, ops: str, revision: str) -> bool:
    env = env_object(cluster, ops, "shop")
    applied = (env.get("status") or {}).get("lastAppliedRevision") == revision
    return applied and condition(env, "Ready").get("status") == "True"


def _deleted(watch: Watch, prefix: str) -> bool:
    return any(kind == "DELETED" and named(prefix)(obj) for kind, obj in watch.events)


def test_a_chart_with_helm_hooks_converges_in_order_and_a_failed_upgrade_hook_rolls_back(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    helm_repo: HelmRepo,
    tmp_path: Path,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """Install: pre hooks by weight (migrate -5, then backfill 5), each Complete before the next and
    deleted once it succeeded; then the chart's objects, the health gate, the post-install Job; the test
    hook never runs. Upgrade to a version whose backfill pre-upgrade Job fails: HookFailed naming the
    Job, nothing of it applied, rolled back (rollback.auto), the version held with reason HookFailed."""
    cluster = gitopsd_crd
    ops, app = namespaces("helm-hooks"), namespaces("helm-hooks-app")
    helm_repo.publish(hooked_chart(tmp_path / "v100", "1.0.0"))
    start_daemon(f"--namespace={ops}")
    chart = {"repository": helm_repo.url, "name": "shop", "version": ">=1.0.0"}
    env = chart_env("shop", ops, app, chart, rollback={"auto": True})
    env["spec"]["wait"] = {"timeout": "30s"}
    with (
        Watch(cluster, "jobs", app) as jobs,
        Watch(cluster, "configmaps", app) as cms,
        Watch(cluster, "deployments", app) as deps,
    ):
        apply_objects(cluster, env)

        wait_for("shop@1.0.0 Ready", lambda: _ready_at(cluster, ops, "shop@1.0.0"), timeout=180)
        wait_for("the post-install Job complete", lambda: any(n.startswith("post-") for n in _jobs(cluster, app)))
        wait_for(
            "the pre hooks deleted",
            lambda: not any(n.startswith(("migrate-", "backfill-")) for n in _jobs(cluster, app)),
        )
    migrate_done = jobs.first("the weight -5 Job Complete", lambda o: named("migrate-")(o) and is_true(o, "Complete"))
    backfill_created = jobs.first("the weight 5 Job", named("backfill-"))
    backfill_done = jobs.first("the weight 5 Job Complete", lambda o: named("backfill-")(o) and is_true(o, "Complete"))
    config_created = cms.first("the chart's ConfigMap", named("shop-config"))
    web_created = deps.first("the Deployment", named("web"))
    web_ready = deps.first("the Deployment available", lambda o: (o.get("status") or {}).get("availableReplicas") == 2)
    post_created = jobs.first("the post-install Job", named("post-"))
    assert migrate_done < backfill_created < backfill_done < min(config_created, web_created)
    assert web_created < web_ready < post_created
    assert _deleted(jobs, "migrate-") and _deleted(jobs, "backfill-")  # hook-succeeded
    assert not any(named("smoke-test")(obj) for _, obj in jobs.events)  # the test hook never runs
    st = env_object(cluster, ops, "shop")["status"]
    assert "Job" not in {e["id"].rsplit("_", 1)[-1] for e in st["inventory"]["entries"]}

    helm_repo.publish(hooked_chart(tmp_path / "v110", "1.1.0", backfill_exit="1"))

    def rolled_back() -> dict[str, Any] | None:
        status = env_object(cluster, ops, "shop").get("status") or {}
        held = status.get("held") or {}
        return status if held.get("revision") == "shop@1.1.0" and status.get("release") == 3 else None

    status = wait_for("shop@1.1.0 failed and rolled back as release 3", rolled_back, timeout=240)
    assert status["held"]["reason"] == "HookFailed" and status["held"]["release"] == 2, status["held"]
    wait_for("release 3 (1.0.0 restored) Ready", lambda: _ready_at(cluster, ops, "shop@1.0.0"), timeout=180)
    events = get_json(cluster, "events", "-n", ops, "--field-selector", "involvedObject.name=shop")["items"]
    failed = [e["message"] for e in events if e["reason"] == "HookFailed"]
    assert failed and "shop@1.1.0" in failed[-1] and f"Job.batch/{app}/backfill-" in failed[-1], failed
    assert "PreSync hook" in failed[-1], failed[-1]
    assert config(cluster, app, "shop-config")["chart"] == "1.0.0"  # the failed upgrade applied nothing
    image = get_json(cluster, "deployment", "web", "-n", app)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.invalid/web:1.0.0"
