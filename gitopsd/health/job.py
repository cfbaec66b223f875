"""Job: Failed as soon as the controller says so (``Failed`` or ``FailureTarget``), Current
once complete, suspended, or started and running (a Job that runs is what was asked for).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitopsd.health.status import Health, count, field, is_true


def assess(obj: Mapping[str, Any]) -> Health:
    parallelism = count(obj, "spec.parallelism", 1)
    completions = count(obj, "spec.completions", parallelism)
    succeeded = count(obj, "status.succeeded")
    failed = count(obj, "status.failed")
    active = count(obj, "status.active")
    for kind in ("Failed", "FailureTarget"):
        if is_true(obj, kind):
            reason = _reason(obj, kind) or "JobFailed"
            return Health.failed(
                reason, f"job failed ({reason}): {failed} failed, {succeeded} of {completions} succeeded"
            )
    if is_true(obj, "Complete"):
        return Health.current(f"completed: {succeeded} of {completions} succeeded")
    if is_true(obj, "Suspended"):
        return Health.current("suspended")
    if not field(obj, "status.startTime"):
        return Health.progressing("JobNotStarted", "not started")
    return Health.current(f"running: {active} active, {succeeded} succeeded, {failed} failed")


def _reason(obj: Mapping[str, Any], kind: str) -> str:
    for cond in field(obj, "status.conditions", []) or []:
        if isinstance(cond, Mapping) and cond.get("type") == kind:
            return str(cond.get("reason") or "")
    return ""
