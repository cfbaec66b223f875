"""Is an object ready? kstatus' rules, as pure functions of the live object.

``assess(obj)`` applies the generic rules (being deleted, generation not yet observed, the
standard ``Reconciling`` / ``Stalled`` conditions), then the kind's own module (Deployment,
StatefulSet, DaemonSet, ReplicaSet, Job, Pod, PVC, Service, CRD, Namespace), then a ``Ready``
condition if the object has one; anything else is Current once it exists. Messages say what is
not ready (``0 of 3 replicas available``); ``report`` names the object.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from gitopsd.health import (
    crd,
    daemonset,
    deployment,
    generic,
    job,
    namespace,
    pod,
    pvc,
    replicaset,
    service,
    statefulset,
)
from gitopsd.health.report import HealthReport, ObjectHealth, Overall, summarize
from gitopsd.health.status import Health, Status, worst

Rule = Callable[[Mapping[str, Any]], Health]

RULES: dict[tuple[str, str], Rule] = {
    ("apps", "Deployment"): deployment.assess,
    ("apps", "StatefulSet"): statefulset.assess,
    ("apps", "DaemonSet"): daemonset.assess,
    ("apps", "ReplicaSet"): replicaset.assess,
    ("batch", "Job"): job.assess,
    ("", "PersistentVolumeClaim"): pvc.assess,
    ("", "Service"): service.assess,
    ("", "Namespace"): namespace.assess,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): crd.assess,
}

#: Kinds with nothing to roll out: ready as soon as they exist, so a wait need not read them.
ALWAYS_READY: frozenset[tuple[str, str]] = frozenset(
    {
        ("", "ConfigMap"),
        ("", "Secret"),
        ("", "ServiceAccount"),
        ("", "LimitRange"),
        ("", "ResourceQuota"),
        ("rbac.authorization.k8s.io", "Role"),
        ("rbac.authorization.k8s.io", "RoleBinding"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("networking.k8s.io", "NetworkPolicy"),
        ("scheduling.k8s.io", "PriorityClass"),
        ("storage.k8s.io", "StorageClass"),
    }
)


def assess(obj: Mapping[str, Any], now: float | None = None) -> Health:
    """The health of one live object. ``now`` (epoch seconds) dates grace periods; default: now."""
    verdict = generic.check(obj)
    if verdict is not None:
        return verdict
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    kind = str(obj.get("kind", ""))
    if (group, kind) == ("", "Pod"):
        return pod.assess(obj, time.time() if now is None else now)
    rule = RULES.get((group, kind))
    if rule is not None:
        return rule(obj)
    return generic.ready_condition(obj) or Health.current("exists (no readiness rules for this kind)")


__all__ = [
    "ALWAYS_READY",
    "RULES",
    "Health",
    "HealthReport",
    "ObjectHealth",
    "Overall",
    "Status",
    "assess",
    "summarize",
    "worst",
]
