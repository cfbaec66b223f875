"""The health gate on a real cluster: healthy sets pass, never-ready and failed objects are named."""

from __future__ import annotations

from typing import Any

from e2e.cluster import NEVER_READY_LABEL
from gitopsd.apply import Applier, ApplyOptions, HealthReport, Inventory, Overall
from gitopsd.kube import Kube
from gitopsd.model import Manifest
from tests.gitopsd.apply.helpers import configmap, deploy, owner, service


async def test_healthy_set_is_reported_healthy(kube: Kube, ns: str) -> None:
    """A Deployment whose pods turn Ready, its Service and ConfigMap: Healthy."""
    options = ApplyOptions(owner=owner())
    applier = Applier(kube)
    result = await applier.sync([deploy("web", ns), service("web", ns), configmap("cfg", ns)], Inventory(), options)
    report = await applier.wait(result.inventory, 90, owner=options.owner)
    assert report.overall is Overall.HEALTHY and report.healthy
    assert report.message == "3 objects healthy"


async def test_never_ready_deployment_times_out_with_the_object_named(kube: Kube, ns: str) -> None:
    """Pods that never turn Ready: TimedOut, naming the Deployment and how many replicas are available."""
    options = ApplyOptions(owner=owner())
    applier = Applier(kube)
    never_ready = deploy("web", ns, replicas=2, **{NEVER_READY_LABEL: "true"})
    result = await applier.sync([never_ready, configmap("cfg", ns)], Inventory(), options)
    seen: list[HealthReport] = []
    report = await applier.wait(result.inventory, 8, on_progress=seen.append)
    assert report.overall is Overall.TIMED_OUT and not report.healthy
    first = report.first_not_ready
    assert first is not None and first.ref.name == "web"
    assert f"Deployment.apps/{ns}/web: " in report.message and report.message.startswith("timed out after")
    assert seen and seen[-1] is report and all(r.overall is Overall.PROGRESSING for r in seen[:-1])


async def test_progress_deadline_exceeded_fails_before_the_timeout(kube: Kube, ns: str) -> None:
    """A rollout past its progress deadline fails the wait at once instead of waiting out the timeout."""
    options = ApplyOptions(owner=owner())
    applier = Applier(kube)
    stuck = deploy("web", ns, replicas=1, **{NEVER_READY_LABEL: "true"})
    stuck.obj["spec"]["progressDeadlineSeconds"] = 2
    result = await applier.sync([stuck], Inventory(), options)
    report = await applier.wait(result.inventory, 120, owner=options.owner)
    assert report.overall is Overall.FAILED
    assert report.message.startswith(f"Deployment.apps/{ns}/web: progress deadline exceeded")


async def test_failed_job_fails_the_wait(kube: Kube, ns: str) -> None:
    """A Job past its active deadline is Failed, named with the controller's reason."""
    job: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "migrate", "namespace": ns},
        "spec": {
            "activeDeadlineSeconds": 1,
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {NEVER_READY_LABEL: "true"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "registry.invalid/m:1"}]},
            },
        },
    }
    options = ApplyOptions(owner=owner())
    applier = Applier(kube)
    result = await applier.sync([Manifest(job, "deploy/job.yaml")], Inventory(), options)
    report = await applier.wait(result.inventory, 120, owner=options.owner)
    assert report.overall is Overall.FAILED
    # The deadline deletes the pod, which may count as a failed attempt first: either reason is the controller's.
    assert report.message.startswith(f"Job.batch/{ns}/migrate: job failed (")
    first = report.first_not_ready
    assert first is not None and first.health.reason in {"DeadlineExceeded", "BackoffLimitExceeded"}
