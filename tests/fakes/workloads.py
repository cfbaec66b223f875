"""Statuses a workload's controller would write, for ``FakeKube.set_status``: there are no
controllers in the fake, so a test says when a Deployment has rolled out or given up."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

#: Reads an object just stored and gives the status its controller would write (None: none).
Controller = Callable[[Mapping[str, Any]], Mapping[str, Any] | None]


def rolled_out(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The status of a Deployment/StatefulSet/ReplicaSet whose every replica is updated and available."""
    replicas = int((obj.get("spec") or {}).get("replicas", 1))
    generation = (obj.get("metadata") or {}).get("generation", 1)
    return {
        "observedGeneration": generation,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "currentReplicas": replicas,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
        ],
    }


def failed(obj: Mapping[str, Any], message: str = "ReplicaSet has timed out progressing") -> dict[str, Any]:
    """The status of a Deployment whose rollout passed its progress deadline."""
    replicas = int((obj.get("spec") or {}).get("replicas", 1))
    return {
        "observedGeneration": (obj.get("metadata") or {}).get("generation", 1),
        "replicas": replicas,
        "updatedReplicas": replicas,
        "availableReplicas": 0,
        "unavailableReplicas": replicas,
        "conditions": [
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": message},
        ],
    }
