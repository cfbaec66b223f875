"""StatefulSet: its controller sets no conditions, so readiness is read from the counters and
revisions (all replicas created, ready, current, and the update revision rolled out).
``OnDelete`` StatefulSets are updated by hand and count as current.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitopsd.health.status import Health, count, field


def assess(obj: Mapping[str, Any]) -> Health:
    if field(obj, "spec.updateStrategy.type") == "OnDelete":
        return Health.current("OnDelete update strategy: updated by hand")
    spec = count(obj, "spec.replicas", 1)
    replicas = count(obj, "status.replicas")
    ready = count(obj, "status.readyReplicas")
    current = count(obj, "status.currentReplicas")
    updated = count(obj, "status.updatedReplicas")
    partition = count(obj, "spec.updateStrategy.rollingUpdate.partition", -1)
    if spec > replicas:
        return Health.progressing("LessReplicas", f"{replicas} of {spec} replicas created")
    if spec > ready:
        return Health.progressing("LessReady", f"{ready} of {spec} replicas ready")
    if replicas > spec:
        return Health.progressing("ExtraPods", f"{replicas - spec} replicas pending termination")
    if partition > 0:
        if updated < spec - partition:
            return Health.progressing("PartitionRollout", f"{updated} of {spec - partition} replicas updated")
        return Health.current(f"partitioned rollout complete: {updated} updated")
    if spec > current:
        return Health.progressing("LessCurrent", f"{current} of {spec} replicas at the current revision")
    if field(obj, "status.currentRevision", "") != field(obj, "status.updateRevision", ""):
        return Health.progressing("RevisionMismatch", "update revision not yet rolled out")
    return Health.current(f"{ready} of {spec} replicas ready")
