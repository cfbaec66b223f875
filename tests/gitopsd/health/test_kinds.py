"""kstatus rules for Jobs, Pods, PVCs, Services, CRDs, Namespaces, and the generic ones."""

from __future__ import annotations

from typing import Any

from gitopsd.health import Status, assess


def obj(api_version: str, kind: str, status: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    meta = extra.pop("metadata", {"name": "x"})
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, "status": status or {}, **extra}


def cond(kind: str, status: str = "True", **more: str) -> dict[str, str]:
    return {"type": kind, "status": status, **more}


def test_job_failed_is_failed_and_complete_is_current() -> None:
    """A failed Job fails the wait at once; a completed one is Current; a running one is waited for."""
    failed = assess(obj("batch/v1", "Job", {"failed": 1, "conditions": [cond("Failed", reason="DeadlineExceeded")]}))
    assert failed.status is Status.FAILED and "DeadlineExceeded" in failed.message
    target = assess(obj("batch/v1", "Job", {"conditions": [cond("FailureTarget", reason="BackoffLimitExceeded")]}))
    assert target.status is Status.FAILED
    assert assess(obj("batch/v1", "Job", {"succeeded": 1, "conditions": [cond("Complete")]})).status is Status.CURRENT
    running = assess(obj("batch/v1", "Job", {"startTime": "2026-01-01T00:00:00Z", "active": 1}))
    assert running.status is Status.IN_PROGRESS and running.message == "running: 0 of 1 succeeded, 1 active"
    assert assess(obj("batch/v1", "Job", {})).reason == "JobNotStarted"


def test_pod_rules() -> None:
    """Ready pods and finished pods are current; crash loops fail; unschedulable fails after a grace period."""
    assert assess(obj("v1", "Pod", {"phase": "Running", "conditions": [cond("Ready")]})).status is Status.CURRENT
    assert assess(obj("v1", "Pod", {"phase": "Succeeded"})).status is Status.CURRENT
    not_ready = assess(obj("v1", "Pod", {"phase": "Running", "conditions": [cond("Ready", "False")]}))
    assert not_ready.status is Status.IN_PROGRESS
    looping = {
        "phase": "Running",
        "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}],
    }
    assert assess(obj("v1", "Pod", looping)).status is Status.FAILED
    meta = {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"}
    pending = {
        "phase": "Pending",
        "conditions": [cond("PodScheduled", "False", reason="Unschedulable", message="0/3 nodes")],
    }
    created = 1767225600.0  # 2026-01-01T00:00:00Z
    assert assess(obj("v1", "Pod", pending, metadata=meta), now=created + 5).status is Status.IN_PROGRESS
    late = assess(obj("v1", "Pod", pending, metadata=meta), now=created + 60)
    assert late.status is Status.FAILED and "0/3 nodes" in late.message


def test_pvc_service_namespace() -> None:
    """A PVC is current when Bound; a LoadBalancer waits for its IP; a Namespace is current while Active."""
    assert assess(obj("v1", "PersistentVolumeClaim", {"phase": "Bound"})).status is Status.CURRENT
    assert assess(obj("v1", "PersistentVolumeClaim", {"phase": "Pending"})).message == "not Bound (phase Pending)"
    assert assess(obj("v1", "Service", spec={"type": "ClusterIP", "clusterIP": "10.0.0.1"})).status is Status.CURRENT
    assert assess(obj("v1", "Service", spec={"type": "LoadBalancer"})).status is Status.IN_PROGRESS
    assert assess(obj("v1", "Namespace", {"phase": "Active"})).status is Status.CURRENT
    assert assess(obj("v1", "Namespace", {"phase": "Terminating"})).status is Status.TERMINATING


def test_crd_rules() -> None:
    """Established is current; names refused is failed; installing waits."""
    crd = "apiextensions.k8s.io/v1"
    kind = "CustomResourceDefinition"
    assert assess(obj(crd, kind, {"conditions": [cond("Established")]})).status is Status.CURRENT
    clash = assess(
        obj(crd, kind, {"conditions": [cond("NamesAccepted", "False", reason="KindConflict", message="taken")]})
    )
    assert clash.status is Status.FAILED and clash.reason == "KindConflict"
    assert (
        assess(obj(crd, kind, {"conditions": [cond("Established", "False", reason="Installing")]})).status
        is Status.IN_PROGRESS
    )


def test_generic_rules_for_any_kind() -> None:
    """Deletion, an unobserved generation, Reconciling/Stalled and Ready decide for kinds without rules."""
    custom = "example.com/v1"
    deleting = {"name": "w", "deletionTimestamp": "2026-01-01T00:00:00Z"}
    assert assess(obj(custom, "Widget", metadata=deleting)).status is Status.TERMINATING
    behind = assess(obj(custom, "Widget", {"observedGeneration": 1}, metadata={"name": "w", "generation": 2}))
    assert behind.status is Status.IN_PROGRESS and "generation 2" in behind.message
    assert (
        assess(obj(custom, "Widget", {"conditions": [cond("Stalled", message="bad config")]})).status is Status.FAILED
    )
    assert assess(obj(custom, "Widget", {"conditions": [cond("Reconciling")]})).status is Status.IN_PROGRESS
    not_ready = assess(
        obj(custom, "Widget", {"conditions": [cond("Ready", "False", reason="Waiting", message="db down")]})
    )
    assert not_ready.status is Status.IN_PROGRESS and not_ready.message == "db down"
    assert assess(obj(custom, "Widget", {"conditions": [cond("Ready")]})).status is Status.CURRENT
    assert assess(obj("v1", "ConfigMap")).status is Status.CURRENT
