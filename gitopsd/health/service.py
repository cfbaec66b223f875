"""Service: Current as soon as it exists, except a LoadBalancer still without a cluster IP."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitopsd.health.status import Health, field


def assess(obj: Mapping[str, Any]) -> Health:
    if field(obj, "spec.type", "ClusterIP") == "LoadBalancer" and not field(obj, "spec.clusterIP"):
        return Health.progressing("NoIPAssigned", "LoadBalancer without a cluster IP yet")
    return Health.current("Service is ready")
