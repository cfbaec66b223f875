"""Deployment: rolled out when every replica is updated, available and ready, and the controller
says so (``Progressing`` NewReplicaSetAvailable, ``Available`` True).

A ``Progressing`` condition with reason ``ProgressDeadlineExceeded`` is Failed at once: the
controller gave up on this rollout, waiting longer will not help.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitopsd.health.status import Health, condition, count, field, is_true


def assess(obj: Mapping[str, Any]) -> Health:
    progressing = condition(obj, "Progressing")
    if progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded":
        detail = progressing.get("message") or "the rollout made no progress in time"
        return Health.failed("ProgressDeadlineExceeded", f"progress deadline exceeded: {detail}")
    spec = count(obj, "spec.replicas", 1)
    replicas = count(obj, "status.replicas")
    updated = count(obj, "status.updatedReplicas")
    ready = count(obj, "status.readyReplicas")
    available = count(obj, "status.availableReplicas")
    if spec > replicas:
        return Health.progressing("LessReplicas", f"{replicas} of {spec} replicas created")
    if spec > updated:
        return Health.progressing("LessUpdated", f"{updated} of {spec} replicas updated")
    if replicas > spec:
        return Health.progressing("ExtraPods", f"{replicas - spec} old replicas pending termination")
    if updated > available:
        return Health.progressing("LessAvailable", f"{available} of {updated} replicas available")
    if spec > ready:
        return Health.progressing("LessReady", f"{ready} of {spec} replicas ready")
    # Without a progress deadline the controller never reports the rollout complete.
    if field(obj, "spec.progressDeadlineSeconds") is not None and not (
        progressing is not None and progressing.get("status") == "True"
        and progressing.get("reason") == "NewReplicaSetAvailable"
    ):  # fmt: skip
        return Health.progressing("ReplicaSetNotAvailable", "new ReplicaSet not yet available")
    if not is_true(obj, "Available"):
        return Health.progressing("DeploymentNotAvailable", "Deployment not Available")
    return Health.current(f"{available} of {spec} replicas available")
