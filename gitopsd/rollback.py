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

from collections.abc import Mapping
from typing import Any

from gitopsd import environments, status
from gitopsd.apply import Inventory
from gitopsd.context import RunContext
from gitopsd.errors import GitopsdError
from gitopsd.outcome import Outcome, parse_revision
from gitopsd.releases import ReleaseError, ReleaseInfo, Result, current_number, history
from gitopsd.releases.requests import Request
from gitopsd.rollout import Step, run, superset

#: A failed release's reasons an automatic rollback (and its hold) names as they are; any other is a failed gate.
AUTO_REASONS = ("HealthCheckFailed", "HookFailed")


async def requested(ctx: RunContext, request: Request) -> Outcome:
    """Carry out (or refuse) the rollback request ``request``."""
    env, ledger = ctx.env, await ctx.ledger()
    current = ledger.current(ctx.status)
    if request.error:
        return await refuse(ctx, request, ReleaseError(request.error, reason="InvalidRequest"))
    if current is not None and current.request == request.token:
        # Our own rollback, interrupted after it became current (a crash): finish it.
        manifests = await ledger.bundle(current.number)
        step = Step(manifests, current.revision, current, fresh=current.result is Result.PENDING)
        outcome = await run(ctx, step)
        return await _handled(ctx, request, outcome)
    try:
        target = history.target(
            ledger.records, current_number(ctx.status), request.to,
            environment=env.key.replace(".", "/", 1), limit=env.spec.history_limit,
            invalid=ledger.invalid,
        )  # fmt: skip
        await ledger.bundle(target.number)  # read and verified before anything is written
    except ReleaseError as exc:
        return await refuse(ctx, request, exc)
    outcome = await perform(
        ctx, target, trigger="manual", by=request.by, token=request.token,
        reason="RollbackRequested",
    )  # fmt: skip
    return await _handled(ctx, request, outcome)


async def automatic(ctx: RunContext, failed: ReleaseInfo) -> Outcome:
    """``spec.rollback.auto``: ``failed`` did not pass its health gate (or a hook failed); restore the last
    Healthy release. The hold and the rollback's trigger carry the release's own reason (``HookFailed``
    for a failed hook), so they say what Ready and the Event said."""
    ledger = await ctx.ledger()
    reason = failed.reason if failed.reason in AUTO_REASONS else "HealthCheckFailed"
    target = history.last_healthy(ledger.records, before=failed.number)
    # Records that fail their checks (unsigned, over a bound) are never targets: say so once.
    skipped = sorted(n for n in ledger.invalid if n < failed.number and (target is None or n > target.number))
    if skipped:
        why = f"skipped release(s) {', '.join(map(str, skipped))}: {ledger.invalid[skipped[-1]]}"
        await ctx.event("Warning", "InvalidReleaseSkipped", why)
    if target is not None:
        try:
            await ledger.bundle(target.number)
        except ReleaseError as exc:
            await ctx.event("Warning", exc.reason, f"Cannot roll back: {exc}")
            target = None
    if target is None:
        # Nothing healthy to go back to: hold the failed revision so it is not retried in a loop.
        what = "a hook failed" if reason == "HookFailed" else "failed its health gate"
        message = f"release {failed.number} ({failed.revision}) {what} and no Healthy release is kept"
        ctx.stage(status.held(ctx.status, _hold(failed, reason, "gitopsd")))
        await ctx.event("Warning", "RevisionHeld", f"{message}: holding {failed.revision}")
        ctx.announce("revision.held", None, reason, message)
        return Outcome("failed", release=failed.number, verdict=str(failed.result), message=message)
    return await perform(
        ctx, target, trigger=f"auto:{reason}", by="gitopsd", token=None, reason=reason,
    )  # fmt: skip


async def resume_leftover(ctx: RunContext, leftover: ReleaseInfo) -> Outcome | None:
    """A rollback record written just before a crash (not current yet): the decision stands, carry it out.

    None when its target's record is gone: the leftover is superseded and the run syncs as usual.
    """
    assert leftover.restored_from is not None
    ledger = await ctx.ledger()
    target = ledger.records.get(leftover.restored_from)
    if target is None:
        await ledger.settle(leftover, Result.SUPERSEDED, environments.now_rfc3339(), "its target's record is gone")
        return None
    outcome = await perform(
        ctx, target, trigger=leftover.trigger, by=leftover.applied_by, token=leftover.request,
        reason=leftover.trigger.partition(":")[2] or "RollbackRequested",
    )  # fmt: skip
    request = Request(leftover.request, leftover.applied_by) if leftover.request else None
    return await _handled(ctx, request, outcome) if request else outcome


async def perform(
    ctx: RunContext, target: ReleaseInfo, *, trigger: str, by: str, token: str | None, reason: str
) -> Outcome:
    """Record the restore of ``target`` as a new release, hold what it replaces, apply, gate, report."""
    env, ledger = ctx.env, await ctx.ledger()
    now = environments.now_rfc3339()
    manifests = await ledger.bundle(target.number)
    current = ledger.current(ctx.status)
    wanted = ReleaseInfo(
        number=0, revision=target.revision, digest=target.digest, applied_at=now, result=Result.PENDING,
        applied_by=by, note=f"rollback to {target.number}", trigger=trigger, restored_from=target.number,
        request=token,
    )  # fmt: skip
    info = await ledger.begin(ctx.status, wanted, manifests, replaces=Result.ROLLED_BACK)
    new_status = dict(ctx.status)
    if current is not None and current.number != info.number:
        if current.result in (Result.FAILED, Result.HEALTHY):
            await ledger.settle(
                current, Result.ROLLED_BACK, now, f"rolled back to {target.number} by release {info.number}"
            )
        if current.revision != target.revision:
            new_status = status.held(new_status, _hold(current, reason, by))
    message = f"Rolling back to release {target.number} ({target.revision}) as release {info.number}"
    ctx.progress(message)
    previous = Inventory.from_status(new_status.get("inventory") or {})
    new_status = status.progressing(new_status, env.generation, target.revision, message, now)
    new_status = status.with_inventory(new_status, superset(previous, manifests))
    new_status = status.with_release(new_status, info.number, ledger.history())
    await ctx.write_status(status.unfrozen(new_status))  # write-order step 3, before the apply
    step = Step(manifests, target.revision, info, fresh=True, note=held_note(ctx.status), before=previous.to_status())
    return await run(ctx, step)


async def keep_current(ctx: RunContext, current: ReleaseInfo | None, *, note: str) -> Outcome:
    """Keep the current release up (drift, health) while the source revision waits (held or frozen).

    The bundle comes from the record (cached after the first read), never from Git.
    """
    env, ledger = ctx.env, await ctx.ledger()
    if current is None and ctx.status.get("lastAppliedRevision"):
        # Deployed before releases were recorded: leave it as it is until a release can be made.
        ctx.stage(status.handled(ctx.status, ctx.requested_at))
        return Outcome("unchanged", message=note.removeprefix("; "))
    if current is None:
        message = "Nothing deployed yet" + note
        now = environments.now_rfc3339()
        new_status = status.failed(ctx.status, env.generation, "NothingDeployed", message, now, stalled=False)
        ctx.stage(status.handled(new_status, ctx.requested_at))
        return Outcome("unchanged", message=message)
    manifests = await ledger.bundle(current.number)
    ledger.keep_bundle_of(current.number)
    reason = "RevisionHeld" if ctx.status.get("held") else "ReconciliationSucceeded"
    step = Step(manifests, current.revision, current, fresh=current.result is Result.PENDING, note=note,
                ready_reason=reason)  # fmt: skip
    return await run(ctx, step)


async def lift_hold(ctx: RunContext, request: Request) -> None:
    """``gitopsd resume``: lift a hold (the held revision is tried again as a new release)."""
    held = ctx.status.get("held") or {}
    ctx.stage(status.resume_handled(status.unheld(ctx.status), request.token))
    if held.get("revision"):
        message = f"hold on {held['revision']} lifted by {request.by}"
        await ctx.event("Normal", "Resumed", message)
        ctx.announce("resumed", parse_revision(str(held["revision"])), "Resumed", message)


async def refuse(ctx: RunContext, request: Request, exc: GitopsdError) -> Outcome:
    """Say no, changing nothing but the request's answer in status."""

    message = f"rollback refused: {exc.message}"
    await ctx.event("Warning", "RollbackRefused", message)
    now = environments.now_rfc3339()
    ctx.stage(status.rollback_handled(ctx.status, request.token, "Refused", message, None, now))
    return Outcome("unchanged", error=None, message=message)


async def _handled(ctx: RunContext, request: Request | None, outcome: Outcome) -> Outcome:
    if request is None:
        return outcome
    result = "Succeeded" if outcome.verdict == str(Result.HEALTHY) else "Failed"
    now = environments.now_rfc3339()
    ctx.stage(status.rollback_handled(ctx.status, request.token, result, outcome.message, outcome.release, now))
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
