"""Pod: Current when Ready (or finished: a completed pod did what it was for); Failed when a
container is crash-looping, or when it has stayed unschedulable past a short grace period.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gitopsd.health.status import Health, condition, field, is_true

#: How long a pod may stay unschedulable before that counts as a failure (kstatus uses 15 s).
SCHEDULE_GRACE_SECONDS = 15.0


def assess(obj: Mapping[str, Any], now: float | None = None) -> Health:
    phase = field(obj, "status.phase", "")
    if phase == "Succeeded":
        return Health.current("completed")
    if phase == "Failed":
        return Health.current("completed, not successfully")
    if phase == "Running":
        if is_true(obj, "Ready"):
            return Health.current("Ready")
        looping = _waiting(obj, {"CrashLoopBackOff"})
        if looping:
            return Health.failed("ContainerCrashLooping", f"containers crash-looping: {', '.join(looping)}")
        return Health.progressing("PodRunningNotReady", "running but not Ready")
    if phase == "Pending":
        scheduled = condition(obj, "PodScheduled")
        if scheduled is not None and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
            created = _timestamp(field(obj, "metadata.creationTimestamp", ""))
            if now is not None and created is not None and now - created > SCHEDULE_GRACE_SECONDS:
                return Health.failed(
                    "PodUnschedulable", f"cannot be scheduled: {scheduled.get('message') or ''}".rstrip(": ")
                )
            return Health.progressing("PodNotScheduled", "not scheduled yet")
        pulling = _waiting(obj, {"ImagePullBackOff", "ErrImagePull"})
        if pulling:
            return Health.progressing("ImagePull", f"cannot pull the image of {', '.join(pulling)}")
        return Health.progressing("PodPending", "pending")
    return Health.progressing("PodNotObserved", "phase not reported yet")


def _waiting(obj: Mapping[str, Any], reasons: set[str]) -> list[str]:
    names = []
    for status in field(obj, "status.containerStatuses", []) or []:
        if isinstance(status, Mapping) and field(status, "state.waiting.reason") in reasons:
            names.append(str(status.get("name", "?")))
    return names


def _timestamp(text: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
