"""ReplicaSet: every replica labelled, available and ready, none left over. A
``ReplicaFailure`` condition (pods could not be created, e.g. quota) is reported, still
in progress: the controller keeps trying.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitopsd.health.status import Health, condition, count


def assess(obj: Mapping[str, Any]) -> Health:
    failure = condition(obj, "ReplicaFailure")
    if failure is not None and failure.get("status") == "True":
        return Health.progressing("ReplicaFailure", f"cannot create pods: {failure.get('message') or 'see its pods'}")
    spec = count(obj, "spec.replicas", 1)
    replicas = count(obj, "status.replicas")
    labelled = count(obj, "status.fullyLabeledReplicas")
    available = count(obj, "status.availableReplicas")
    ready = count(obj, "status.readyReplicas")
    if spec > labelled:
        return Health.progressing("LessLabelled", f"{labelled} of {spec} replicas labelled")
    if spec > available:
        return Health.progressing("LessAvailable", f"{available} of {spec} replicas available")
    if spec > ready:
        return Health.progressing("LessReady", f"{ready} of {spec} replicas ready")
    if replicas > spec:
        return Health.progressing("ExtraPods", f"{replicas - spec} replicas pending termination")
    return Health.current(f"{available} of {spec} replicas available")
