"""Rollback: restore an earlier release from its record, as a new release, and hold what was rolled away from.

A restore reads the record only (no Git, no renderer), so it works while the Git server is down
or the repository is gone. It goes through the same all-or-nothing apply as any release
(dry-run of everything first; objects the restored release did not have are pruned), waits for
health, and is recorded as a new release ("rollback to 7"). The revision of the release rolled
away from is **held** (``status.held``): the daemon does not apply it again until the source
moves to another revision or someone runs ``gitopsd resume``.

Who asks:

- a person, through ``gitopsd rollback`` (a request annotation; see ``releases.requests``). A
  request that arrives while a sync of the Environment is in flight *preempts* it: the sync is
  cancelled (safe: the restore applies a whole bundle and status already tracks everything the
  sync may have created) and the release it was deploying ends up RolledBack. A request is
  refused, with the reason in ``status.lastHandledRollback`` and a Warning Event, when its
  target does not exist, was removed by historyLimit, is the current release, its record fails
  its checks, or the Environment is suspended; nothing is changed then.
- the daemon itself, with ``spec.rollback.auto``, when a release fails its health gate: it
  restores the last Healthy release. With none to go back to it only holds the failed revision
  (it does not loop). A rollback release is never rolled back automatically.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from gitopsd import environments, status
from gitopsd.apply import Inventory
from gitopsd.errors import GitopsdError
from gitopsd.outcome import Outcome, SyncState, involved, parse_revision
from gitopsd.releases import Ledger, ReleaseError, ReleaseInfo, Result, current_number, history
from gitopsd.releases.requests import Request
from gitopsd.rollout import Step, run, superset

if TYPE_CHECKING:
    from gitopsd.reconcile import Reconciler

Progress = Callable[[str], None]


async def requested(rec: Reconciler, state: SyncState, ledger: Ledger, request: Request, progress: Progress) -> Outcome:
    """Carry out (or refuse) the rollback request ``request``."""
    env = state.env
    current = ledger.current(state.status)
    if request.error:
        return await refuse(rec, state, request, ReleaseError(request.error, reason="InvalidRequest"))
    if current is not None and current.request == request.token:
        # Our own rollback, interrupted after it became current (a crash): finish it.
        manifests = await ledger.bundle(current.number)
        step = Step(manifests, current.revision, current, fresh=current.result is Result.PENDING)
        outcome = await run(rec, state, ledger, step, None, progress)
        return await _handled(rec, state, request, outcome)
    try:
        target = history.target(
            ledger.records, current_number(state.status), request.to,
            environment=env.key.replace(".", "/", 1), limit=env.spec.history_limit,
            invalid=ledger.invalid,
        )  # fmt: skip
        await ledger.bundle(target.number)  # read and verified before anything is written
    except ReleaseError as exc:
        return await refuse(rec, state, request, exc)
    outcome = await perform(
        rec, state, ledger, target, trigger="manual", by=request.by, token=request.token,
        reason="RollbackRequested", progress=progress,
    )  # fmt: skip
    return await _handled(rec, state, request, outcome)


async def automatic(
    rec: Reconciler, state: SyncState, ledger: Ledger, failed: ReleaseInfo, progress: Progress
) -> Outcome:
    """``spec.rollback.auto``: ``failed`` did not pass its health gate; restore the last Healthy release."""

    env = state.env
    reason = "HealthCheckFailed"
    target = history.last_healthy(ledger.records, before=failed.number)
    if target is not None:
        try:
            await ledger.bundle(target.number)
        except ReleaseError as exc:
            await rec.recorder.record(involved(env), "Warning", exc.reason, f"Cannot roll back: {exc}")
            target = None
    if target is None:
        # Nothing healthy to go back to: hold the failed revision so it is not retried in a loop.
        message = f"release {failed.number} ({failed.revision}) failed its health gate and no Healthy release is kept"
        state.status = status.held(state.status, _hold(failed, reason, "gitopsd"))
        await rec._write_status(state, state.status)
        await rec.recorder.record(involved(env), "Warning", "RevisionHeld", f"{message}: holding {failed.revision}")
        rec._announce(env, "revision.held", None, reason, message)
        return Outcome("failed", release=failed.number, verdict=str(failed.result), message=message)
    return await perform(
        rec, state, ledger, target, trigger=f"auto:{reason}", by="gitopsd", token=None, reason=reason,
        progress=progress,
    )  # fmt: skip


async def resume_leftover(
    rec: Reconciler, state: SyncState, ledger: Ledger, leftover: ReleaseInfo, progress: Progress
) -> Outcome:
    """A rollback record written just before a crash (not current yet): the decision stands, carry it out."""
    assert leftover.restored_from is not None
    target = ledger.records.get(leftover.restored_from)
    if target is None:
        await ledger.settle(leftover, Result.SUPERSEDED, environments.now_rfc3339(), "its target's record is gone")
        return await rec._sync_again(state, progress)
    outcome = await perform(
        rec, state, ledger, target, trigger=leftover.trigger, by=leftover.applied_by, token=leftover.request,
        reason=leftover.trigger.partition(":")[2] or "RollbackRequested", progress=progress,
    )  # fmt: skip
    request = Request(leftover.request, leftover.applied_by) if leftover.request else None
    return await _handled(rec, state, request, outcome) if request else outcome


async def perform(
    rec: Reconciler,
    state: SyncState,
    ledger: Ledger,
    target: ReleaseInfo,
    *,
    trigger: str,
    by: str,
    token: str | None,
    reason: str,
    progress: Progress,
) -> Outcome:
    """Record the restore of ``target`` as a new release, hold what it replaces, apply, gate, report."""
    env = state.env
    now = environments.now_rfc3339()
    manifests = await ledger.bundle(target.number)
    current = ledger.current(state.status)
    wanted = ReleaseInfo(
        number=0, revision=target.revision, digest=target.digest, applied_at=now, result=Result.PENDING,
        applied_by=by, note=f"rollback to {target.number}", trigger=trigger, restored_from=target.number,
        request=token,
    )  # fmt: skip
    info = await ledger.begin(state.status, wanted, manifests, replaces=Result.ROLLED_BACK)
    new_status = dict(state.status)
    if current is not None and current.number != info.number:
        if current.result in (Result.FAILED, Result.HEALTHY):
            await ledger.settle(
                current, Result.ROLLED_BACK, now, f"rolled back to {target.number} by release {info.number}"
            )
        if current.revision != target.revision:
            new_status = status.held(new_status, _hold(current, reason, by))
    message = f"Rolling back to release {target.number} ({target.revision}) as release {info.number}"
    progress(message)
    previous = Inventory.from_status(new_status.get("inventory") or {})
    new_status = status.progressing(new_status, env.generation, target.revision, message, now)
    new_status = status.with_inventory(new_status, superset(previous, manifests))
    new_status = status.with_release(new_status, info.number, ledger.history())
    await rec._write_status(state, status.unfrozen(new_status))
    step = Step(manifests, target.revision, info, fresh=True, note=held_note(state.status))
    return await run(rec, state, ledger, step, None, progress)


async def keep_current(
    rec: Reconciler,
    state: SyncState,
    ledger: Ledger,
    current: ReleaseInfo | None,
    requested_at: str | None,
    progress: Progress,
    *,
    note: str,
) -> Outcome:
    """Keep the current release up (drift, health) while the source revision waits (held or frozen).

    The bundle comes from the record (cached after the first read), never from Git.
    """

    env = state.env
    if current is None and state.status.get("lastAppliedRevision"):
        # Deployed before releases were recorded: leave it as it is until a release can be made.
        await rec._write_status(state, status.handled(state.status, requested_at))
        return Outcome("unchanged", message=note.removeprefix("; "))
    if current is None:
        message = "Nothing deployed yet" + note
        now = environments.now_rfc3339()
        new_status = status.failed(state.status, env.generation, "NothingDeployed", message, now, stalled=False)
        await rec._write_status(state, status.handled(new_status, requested_at))
        return Outcome("unchanged", message=message)
    manifests = await ledger.bundle(current.number)
    ledger.keep_bundle_of(current.number)
    reason = "RevisionHeld" if state.status.get("held") else "ReconciliationSucceeded"
    step = Step(manifests, current.revision, current, fresh=current.result is Result.PENDING, note=note,
                ready_reason=reason)  # fmt: skip
    return await run(rec, state, ledger, step, requested_at, progress)


async def lift_hold(rec: Reconciler, state: SyncState, request: Request) -> None:
    """``gitopsd resume``: lift a hold (the held revision is tried again as a new release)."""
    held = state.status.get("held") or {}
    await rec._write_status(state, status.resume_handled(status.unheld(state.status), request.token))
    if held.get("revision"):
        message = f"hold on {held['revision']} lifted by {request.by}"
        await rec.recorder.record(involved(state.env), "Normal", "Resumed", message)
        rec._announce(state.env, "resumed", parse_revision(str(held["revision"])), "Resumed", message)


async def refuse(rec: Reconciler, state: SyncState, request: Request, exc: GitopsdError) -> Outcome:
    """Say no, changing nothing but the request's answer in status."""

    message = f"rollback refused: {exc.message}"
    await rec.recorder.record(involved(state.env), "Warning", "RollbackRefused", message)
    now = environments.now_rfc3339()
    await rec._write_status(state, status.rollback_handled(state.status, request.token, "Refused", message, None, now))
    return Outcome("unchanged", error=None, message=message)


async def _handled(rec: Reconciler, state: SyncState, request: Request | None, outcome: Outcome) -> Outcome:
    if request is None:
        return outcome
    result = "Succeeded" if outcome.verdict == str(Result.HEALTHY) else "Failed"
    now = environments.now_rfc3339()
    new = status.rollback_handled(state.status, request.token, result, outcome.message, outcome.release, now)
    await rec._write_status(state, new)
    return outcome


def _hold(release: ReleaseInfo, reason: str, by: str) -> dict[str, object]:
    return {
        "revision": release.revision,
        "reason": reason,
        "release": release.number,
        "since": environments.now_rfc3339(),
        "by": by,
    }


def held_note(st: Mapping[str, Any]) -> str:
    """Said after the Ready message while a revision is held."""
    held = st.get("held") or {}
    if not isinstance(held, Mapping) or not held.get("revision"):
        return ""
    return (
        f"; holding {held['revision']} ({held.get('reason')} in release {held.get('release')}): "
        "it resumes when the source moves or on 'gitopsd resume'"
    )
