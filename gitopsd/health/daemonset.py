"""DaemonSet: one pod per eligible node, all updated, available and ready.

Its controller always writes ``observedGeneration``; a DaemonSet without one has not been
looked at yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitopsd.health.status import Health, count, field


def assess(obj: Mapping[str, Any]) -> Health:
    if field(obj, "status.observedGeneration") is None:
        return Health.progressing("NoObservedGeneration", "not yet observed by its controller")
    desired = count(obj, "status.desiredNumberScheduled", -1)
    if desired < 0:
        return Health.progressing("NoDesiredNumber", "desired number of pods not yet computed")
    scheduled = count(obj, "status.currentNumberScheduled")
    updated = count(obj, "status.updatedNumberScheduled")
    available = count(obj, "status.numberAvailable")
    ready = count(obj, "status.numberReady")
    if desired > scheduled:
        return Health.progressing("LessCurrent", f"{scheduled} of {desired} pods scheduled")
    if desired > updated:
        return Health.progressing("LessUpdated", f"{updated} of {desired} pods updated")
    if desired > available:
        return Health.progressing("LessAvailable", f"{available} of {desired} pods available")
    if desired > ready:
        return Health.progressing("LessReady", f"{ready} of {desired} pods ready")
    return Health.current(f"{ready} of {desired} pods ready")
