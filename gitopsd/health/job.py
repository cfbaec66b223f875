"""Job: Current once complete (or suspended), Failed as soon as the controller says so
(``Failed``, or ``FailureTarget`` before the pods are gone), in progress while it runs.

kstatus itself counts a started Job as Current; like Flux's own Job reader we wait for
completion instead, so a migration Job that fails fails the release's health gate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitopsd.health.status import Health, condition, count, field, is_true


def assess(obj: Mapping[str, Any]) -> Health:
    parallelism = count(obj, "spec.parallelism", 1)
    completions = count(obj, "spec.completions", parallelism)
    succeeded = count(obj, "status.succeeded")
    failed = count(obj, "status.failed")
    active = count(obj, "status.active")
    for kind in ("Failed", "FailureTarget"):
        if is_true(obj, kind):
            reason = str((condition(obj, kind) or {}).get("reason") or "JobFailed")
            summary = f"{failed} failed, {succeeded} of {completions} succeeded"
            return Health.failed(reason, f"job failed ({reason}): {summary}")
    if is_true(obj, "Complete"):
        return Health.current(f"completed: {succeeded} of {completions} succeeded")
    if is_true(obj, "Suspended"):
        return Health.current("suspended")
    if not field(obj, "status.startTime"):
        return Health.progressing("JobNotStarted", "not started")
    return Health.progressing("JobRunning", f"running: {succeeded} of {completions} succeeded, {active} active")
