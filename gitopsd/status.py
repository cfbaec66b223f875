"""Conditions and status with kstatus meaning, as pure functions of the old status.

- ``Ready``: always present. True when the last applied revision is healthy; False with the
  reason why not (``HealthCheckFailed``, ``GitAuthenticationFailed``, ``DryRunFailed``...).
- ``Reconciling``: present (True) while a new revision or spec is being applied or retried.
- ``Stalled``: present (True) when progress needs a person: a bad spec, bad credentials, a
  manifest the cluster rejects. A new commit or spec change clears it.
- ``Frozen``: present (True) while a new revision waits for a freeze window to close.

A condition's ``lastTransitionTime`` moves only when its status flips, so a reconcile that
changes nothing produces an identical status, which is then not written at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict, cast

READY, RECONCILING, STALLED = "Ready", "Reconciling", "Stalled"


class EnvironmentStatus(TypedDict, total=False):
    """Every key of an Environment's status and its type: the one list the daemon writes from.

    The CRD's status schema has exactly these properties (a test compares them), and a status
    with any other key is refused before it is written (``checked``).
    """

    observedGeneration: int
    conditions: list[dict[str, Any]]
    lastAttemptedRevision: str
    lastAppliedRevision: str
    lastHandledReconcileAt: str
    inventory: dict[str, Any]  # gitopsd.apply.Inventory.to_status()
    release: int  # the current release's number
    held: dict[str, Any]  # {revision, reason, release, since, by}
    history: list[dict[str, Any]]  # newest first (gitopsd.releases.Ledger.history)
    lastHandledRollback: dict[str, Any]  # {token, result, message, time[, release]}
    lastHandledResume: str  # the token of the last `gitopsd resume`
    verification: dict[str, Any]  # gitopsd.gates.progress.GateProgress.to_status()
    lastHandledVerify: dict[str, Any]  # {token, result, message[, release]}
    cluster: str  # where it deploys: the kubeconfig Secret's name, or "in-cluster" (gitopsd.clusters)


KEYS = frozenset(EnvironmentStatus.__annotations__)

#: The working form of a status: a plain mapping whose keys are ``EnvironmentStatus``'s.
Status = dict[str, Any]


def checked(status: Mapping[str, Any]) -> EnvironmentStatus:
    """``status`` as an ``EnvironmentStatus``; a key it does not declare is a bug, refused here."""
    unknown = sorted(set(status) - KEYS)
    if unknown:
        raise ValueError(f"status keys not in EnvironmentStatus: {', '.join(unknown)}")
    return cast(EnvironmentStatus, dict(status))


def condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def is_true(status: Mapping[str, Any], type_: str) -> bool:
    cond = condition(status, type_)
    return bool(cond and cond.get("status") == "True")


def with_condition(
    old: Mapping[str, Any], type_: str, value: bool | None, reason: str, message: str, generation: int, now: str
) -> Status:
    """``old`` with one condition set; ``value`` None means Unknown."""
    status: Status = dict(old)
    text = "Unknown" if value is None else ("True" if value else "False")
    conditions = [dict(c) for c in status.get("conditions") or []]
    before = next((c for c in conditions if c.get("type") == type_), None)
    new = {
        "type": type_,
        "status": text,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": before["lastTransitionTime"] if before and before.get("status") == text else now,
    }
    if before is None:
        conditions.append(new)
    else:
        conditions[conditions.index(before)] = new
    status["conditions"] = _ordered(conditions)
    return status


def without_condition(old: Mapping[str, Any], type_: str) -> Status:
    status: Status = dict(old)
    status["conditions"] = [dict(c) for c in status.get("conditions") or [] if c.get("type") != type_]
    return status


def _ordered(conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rank = {READY: 0, RECONCILING: 1, STALLED: 2, "Frozen": 3}
    return sorted(conditions, key=lambda c: (rank.get(c.get("type", ""), 9), c.get("type", "")))


def progressing(old: Mapping[str, Any], generation: int, revision: str, message: str, now: str) -> Status:
    """A new revision or spec is being applied."""
    status: Status = dict(old)
    status["lastAttemptedRevision"] = revision
    status = with_condition(status, RECONCILING, True, "Progressing", message, generation, now)
    status = without_condition(status, STALLED)
    if condition(status, READY) is None:
        status = with_condition(status, READY, None, "Progressing", message, generation, now)
    return status


def succeeded(
    old: Mapping[str, Any],
    generation: int,
    revision: str,
    inventory: Mapping[str, Any],
    message: str,
    now: str,
) -> Status:
    status: Status = dict(old)
    status["observedGeneration"] = generation
    status["lastAttemptedRevision"] = revision
    status["lastAppliedRevision"] = revision
    status["inventory"] = dict(inventory)
    status = with_condition(status, READY, True, "ReconciliationSucceeded", message, generation, now)
    status = without_condition(status, RECONCILING)
    status = without_condition(status, STALLED)
    return status


def failed(
    old: Mapping[str, Any],
    generation: int,
    reason: str,
    message: str,
    now: str,
    *,
    stalled: bool,
    attempted: str | None = None,
    inventory: Mapping[str, Any] | None = None,
    applied: str | None = None,
) -> Status:
    """Ready=False with ``reason``; Stalled when only a person can fix it, else Reconciling (retrying)."""
    status: Status = dict(old)
    status["observedGeneration"] = generation
    if attempted:
        status["lastAttemptedRevision"] = attempted
    if applied:
        status["lastAppliedRevision"] = applied
    if inventory is not None:
        status["inventory"] = dict(inventory)
    status = with_condition(status, READY, False, reason, message, generation, now)
    if stalled:
        status = with_condition(status, STALLED, True, reason, message, generation, now)
        status = without_condition(status, RECONCILING)
    else:
        status = with_condition(status, RECONCILING, True, "RetryScheduled", message, generation, now)
        status = without_condition(status, STALLED)
    return status


def waiting(
    old: Mapping[str, Any], new: Mapping[str, Any] | None, reason: str, message: str, generation: int, now: str
) -> Status:
    """Ready=False with ``reason`` while a revision waits on something outside (``new``: status so far).

    The transition time is kept from ``old`` when Ready was False already, so a reconcile that
    still waits writes nothing.
    """
    status: Status = dict(new if new is not None else old)
    previous = condition(old, READY) or {}
    status = with_condition(status, READY, False, reason, message, generation, now)
    if previous.get("status") == "False":
        for cond in status["conditions"]:
            if cond["type"] == READY:
                cond["lastTransitionTime"] = previous.get("lastTransitionTime", now)
    status = without_condition(status, STALLED)
    return status


def handled(old: Mapping[str, Any], requested_at: str | None) -> Status:
    status: Status = dict(old)
    if requested_at:
        status["lastHandledReconcileAt"] = requested_at
    return status


# -- releases: release number, short history, holds, freezes, handled requests -----------------

FROZEN = "Frozen"


def with_release(old: Mapping[str, Any], number: int | None, history: list[dict[str, Any]]) -> Status:
    """``status.release`` (the current release) and ``status.history`` (newest first)."""
    status: Status = dict(old)
    if number is not None:
        status["release"] = number
    status["history"] = history
    return status


def with_inventory(old: Mapping[str, Any], inventory: Mapping[str, Any]) -> Status:
    status: Status = dict(old)
    status["inventory"] = dict(inventory)
    return status


# -- the watch cache: kinds of the inventory it cannot watch -------------------------------------

WATCH_FAILED = "WatchFailed"


def watch_failed(old: Mapping[str, Any], failures: Mapping[str, str], generation: int, now: str) -> Status:
    """The ``WatchFailed`` condition: kinds of the inventory the daemon cannot watch (RBAC refuses
    the list or watch, the CRD is gone), each with the reason; removed once every kind is watched."""
    if not failures:
        return without_condition(old, WATCH_FAILED) if condition(old, WATCH_FAILED) else dict(old)
    reasons = "; ".join(sorted(set(failures.values())))  # each names its kind and scope
    message = f"{', '.join(sorted(failures))} read with a GET each, drift seen only at the interval: {reasons}"
    return with_condition(old, WATCH_FAILED, True, WATCH_FAILED, message, generation, now)


def held(old: Mapping[str, Any], hold: Mapping[str, Any]) -> Status:
    """Hold a revision back: ``{revision, reason, release, since[, by, message]}``."""
    status: Status = dict(old)
    status["held"] = dict(hold)
    return status


def unheld(old: Mapping[str, Any]) -> Status:
    status: Status = dict(old)
    status.pop("held", None)
    return status


def frozen(old: Mapping[str, Any], message: str, generation: int, now: str) -> Status:
    """The ``Frozen`` condition: a new revision waits for a freeze window to close."""
    status: Status = dict(old)
    status = with_condition(status, FROZEN, True, "FreezeWindow", message, generation, now)
    return status


def unfrozen(old: Mapping[str, Any]) -> Status:
    status: Status = dict(old)
    if condition(status, FROZEN) is not None:
        status = without_condition(status, FROZEN)
    return status


def rollback_handled(
    old: Mapping[str, Any], token: str, result: str, message: str, release: int | None, now: str
) -> Status:
    """``lastHandledRollback``: what became of the rollback request ``token`` (Succeeded, Failed, Refused)."""
    status: Status = dict(old)
    entry: dict[str, Any] = {"token": token, "result": result, "message": message, "time": now}
    if release is not None:
        entry["release"] = release
    status["lastHandledRollback"] = entry
    return status


def resume_handled(old: Mapping[str, Any], token: str) -> Status:
    status: Status = dict(old)
    status["lastHandledResume"] = token
    return status
