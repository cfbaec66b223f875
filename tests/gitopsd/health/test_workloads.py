"""kstatus rules for workload controllers, on plain objects."""

from __future__ import annotations

from typing import Any

from gitopsd.health import Status, assess


def deployment(
    spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None, generation: int = 1
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "dev", "generation": generation},
        "spec": {"replicas": 3, "progressDeadlineSeconds": 600, **(spec or {})},
        "status": {"observedGeneration": 1, **(status or {})},
    }


ROLLED_OUT = {
    "replicas": 3,
    "updatedReplicas": 3,
    "readyReplicas": 3,
    "availableReplicas": 3,
    "conditions": [
        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
        {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
    ],
}


def test_deployment_rolled_out_is_current() -> None:
    """All replicas updated, available and ready, and the controller agrees: Current."""
    health = assess(deployment(status=ROLLED_OUT))
    assert health.status is Status.CURRENT and health.message == "3 of 3 replicas available"


def test_deployment_with_unavailable_replicas_says_how_many() -> None:
    """Pods that never turn ready: '1 of 3 replicas available'."""
    status = {**ROLLED_OUT, "readyReplicas": 1, "availableReplicas": 1}
    health = assess(deployment(status=status))
    assert health.status is Status.IN_PROGRESS and health.reason == "LessAvailable"
    assert health.message == "1 of 3 replicas available"


def test_deployment_progress_deadline_exceeded_fails_at_once() -> None:
    """ProgressDeadlineExceeded is Failed, whatever the counters say."""
    status = {
        "replicas": 3,
        "updatedReplicas": 3,
        "conditions": [
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": 'ReplicaSet "web-1" has timed out progressing.',
            }
        ],
    }
    health = assess(deployment(status=status))
    assert health.status is Status.FAILED and health.reason == "ProgressDeadlineExceeded"
    assert "timed out progressing" in health.message


def test_deployment_spec_not_yet_observed_is_in_progress() -> None:
    """A new generation the controller has not seen: its status is about the old spec."""
    health = assess(deployment(status=ROLLED_OUT, generation=2))
    assert health.status is Status.IN_PROGRESS and health.reason == "LatestGenerationNotObserved"


def test_deployment_rollout_steps_in_order() -> None:
    """Too few replicas, then too few updated, then old ones terminating, each named."""
    assert assess(deployment(status={"replicas": 1})).message == "1 of 3 replicas created"
    assert assess(deployment(status={"replicas": 3, "updatedReplicas": 2})).message == "2 of 3 replicas updated"
    old = {"replicas": 4, "updatedReplicas": 3}
    assert assess(deployment(status=old)).message == "1 old replicas pending termination"


def test_deployment_scaled_to_zero_is_current() -> None:
    """Zero replicas with the rollout complete is Current (the bench's shape)."""
    status = {"conditions": ROLLED_OUT["conditions"]}
    assert assess(deployment(spec={"replicas": 0}, status=status)).status is Status.CURRENT


def test_deployment_without_available_condition_waits() -> None:
    """Counters fine but Available not True yet: still in progress."""
    status = {**ROLLED_OUT, "conditions": ROLLED_OUT["conditions"][:1]}
    assert assess(deployment(status=status)).reason == "DeploymentNotAvailable"


def statefulset(status: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {"replicas": 2, **spec},
        "status": status,
    }


def test_statefulset_rules() -> None:
    """Ready counts, then revisions; OnDelete is updated by hand and counts as current."""
    done = {
        "replicas": 2,
        "readyReplicas": 2,
        "currentReplicas": 2,
        "updatedReplicas": 2,
        "currentRevision": "r1",
        "updateRevision": "r1",
    }
    assert assess(statefulset(done)).status is Status.CURRENT
    assert assess(statefulset({**done, "readyReplicas": 1})).message == "1 of 2 replicas ready"
    assert assess(statefulset({**done, "updateRevision": "r2"})).reason == "RevisionMismatch"
    assert assess(statefulset({}, updateStrategy={"type": "OnDelete"})).status is Status.CURRENT
    partitioned = statefulset({**done, "updatedReplicas": 0}, updateStrategy={"rollingUpdate": {"partition": 1}})
    assert assess(partitioned).message == "0 of 1 replicas updated"


def test_daemonset_rules() -> None:
    """One pod per node: scheduled, updated, available, ready; unobserved means not yet."""
    base = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "generation": 1}}
    done = {
        "observedGeneration": 1,
        "desiredNumberScheduled": 3,
        "currentNumberScheduled": 3,
        "updatedNumberScheduled": 3,
        "numberAvailable": 3,
        "numberReady": 3,
    }
    assert assess({**base, "status": done}).status is Status.CURRENT
    assert assess({**base, "status": {**done, "numberAvailable": 2}}).message == "2 of 3 pods available"
    assert assess({**base, "status": {}}).reason == "NoObservedGeneration"


def test_replicaset_rules() -> None:
    """Available and ready counts; ReplicaFailure is reported with its message."""
    base = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-1"}, "spec": {"replicas": 2}}
    done = {"replicas": 2, "fullyLabeledReplicas": 2, "availableReplicas": 2, "readyReplicas": 2}
    assert assess({**base, "status": done}).status is Status.CURRENT
    assert assess({**base, "status": {**done, "availableReplicas": 0}}).message == "0 of 2 replicas available"
    failing = {**done, "conditions": [{"type": "ReplicaFailure", "status": "True", "message": "exceeded quota"}]}
    health = assess({**base, "status": failing})
    assert health.reason == "ReplicaFailure" and "exceeded quota" in health.message
