"""Bring the cluster to one release: apply its bundle, gate on health, record the verdict, report.

Every path of a reconcile ends here, whatever chose the bundle: a new Git revision, the current
release kept while a revision is held or frozen, or a rollback restoring an older release.
The release's record is already written (``ledger.begin``, steps 1-3 of the write order); this
module does steps 4-8: the all-or-nothing apply, the health gate, the verdict on the record,
status, Events, metrics and lifecycle announcements. A rollback release that gets its verdict
here is reported as a rollback (Event, ``gitopsd_rollbacks_total``, ``rollback.performed``),
whichever path finished it, so one interrupted by a crash is still reported once it completes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gitopsd import environments, status
from gitopsd.apply import (
    EMPTY_RENDER,
    ApplyError,
    ApplyOptions,
    DryRunFailed,
    FieldConflict,
    HealthReport,
    InvalidOwner,
    Inventory,
    InventoryEntry,
    OwnershipConflict,
    PruneFailed,
    SyncResult,
)
from gitopsd.context import RunContext
from gitopsd.errors import GitopsdError
from gitopsd.model import Manifest
from gitopsd.outcome import Outcome, parse_revision
from gitopsd.phases import ordered
from gitopsd.phases.classify import synced_objects
from gitopsd.releases import ReleaseInfo, Result

#: Refusals raised before anything was written (without ``inventory``: not even CRDs or Namespaces).
NOTHING_APPLIED = (DryRunFailed, OwnershipConflict, FieldConflict, InvalidOwner)


@dataclass(frozen=True, slots=True)
class Step:
    """What to bring the cluster to: ``release``'s bundle (``manifests``) at ``revision``."""

    manifests: Sequence[Manifest]
    revision: str
    release: ReleaseInfo
    #: A release being deployed (new, or resumed after a crash): wait the whole health timeout.
    fresh: bool
    #: Said after the Ready message: why the source revision is not the one applied (held, frozen).
    note: str = ""
    ready_reason: str = "ReconciliationSucceeded"
    #: The source revision waits for promotion (``gitopsd.promotion``): Ready=False, AwaitingPromotion.
    awaiting: str = ""
    #: The inventory before this step's superset was written (write-order step 3): put back when
    #: the apply was refused whole, so objects never applied are not tracked (and never pruned).
    before: dict[str, Any] | None = None


def superset(previous: Inventory, manifests: Sequence[Manifest]) -> dict[str, Any]:
    """Write-order step 3: the inventory covering everything an interrupted apply may have created."""
    return previous.with_entries(InventoryEntry.of(m.obj) for m in synced_objects(manifests)).to_status()


async def run(ctx: RunContext, step: Step) -> Outcome:
    """Apply ``step``'s bundle, gate it on health, give its release a verdict and stage the status."""
    env, services = ctx.env, ctx.services
    spec, now = env.spec, environments.now_rfc3339()
    was_ready = status.is_true(ctx.status, status.READY)
    revision = parse_revision(step.revision)
    previous = Inventory.from_status(ctx.status.get("inventory") or {})
    memo = ctx.memo()  # the target cluster's memory of this Environment's last apply
    options = ApplyOptions(owner=env.key, prune=spec.prune, allow_empty=spec.allow_empty, force=spec.force)
    release = step.release
    order = ordered.Order.of(step.manifests, step.fresh, release)  # waves and hooks (gitopsd.phases)
    try:
        applied = await ordered.apply(ctx, order, previous, options, memo)
        result = applied.result
    except PruneFailed as exc:
        # Everything else was applied: record that, and say what could not be deleted.
        release = await _verdict(ctx, release, Result.FAILED, exc.reason, now)
        new_status = status.failed(
            ctx.status, env.generation, exc.reason, exc.message, now,
            stalled=True, attempted=step.revision, applied=step.revision,
            inventory=exc.result.inventory.to_status(),
        )  # fmt: skip
        if await ctx.warn_once(exc.reason, exc.message):
            ctx.announce("deploy.failed", revision, exc.reason, exc.message)
        ctx.stage(status.handled(new_status, ctx.requested_at))
        return Outcome("failed", revision, error=exc, release=release.number)
    except ApplyError as exc:
        if exc.inventory is not None:
            ctx.status = status.with_inventory(ctx.status, exc.inventory.to_status())
        elif step.before is not None and isinstance(exc, NOTHING_APPLIED):
            ctx.status = status.with_inventory(ctx.status, step.before)
        await _verdict(ctx, release, Result.FAILED, exc.reason, now)
        raise
    if result.empty_render:
        raise GitopsdError(
            f"{step.revision}: {EMPTY_RENDER}; set spec.allowEmpty to prune everything", reason="EmptyRender"
        )
    changed, pruned, drift = result.changed_count, result.pruned_count, result.drift_count
    touched = bool(changed or pruned or drift)
    for action, n in result.action_counts().items():
        services.metrics.objects_applied.labels(env.key, action).inc(n)
    services.metrics.objects_pruned.labels(env.key).inc(pruned)
    services.metrics.drift_corrected.labels(env.key).inc(drift)
    services.metrics.inventory_objects.labels(env.key).set(len(result.inventory.entries))

    health: HealthReport | None = None
    # Look when something moved, a release is being deployed, Ready was not True, or the release
    # has no Healthy verdict yet (Ready may still be the previous release's after a crash).
    unproven = release.result is not Result.HEALTHY
    if applied.failure is None and spec.wait_timeout > 0 and (touched or step.fresh or not was_ready or unproven):
        # Nothing moved since a failed health check: look once, don't wait the whole timeout again.
        timeout = spec.wait_timeout if (touched or step.fresh) else 0.0
        ctx.progress(f"waiting up to {timeout:.0f}s for {len(result.inventory.entries)} objects to become ready")
        async with ctx.aside():  # only polling: the worker can take another Environment meanwhile
            health = await ctx.applier.wait(result.inventory, timeout, owner=env.key)
    health = await ordered.finish(ctx, order, applied, health)  # PostSync or SyncFail hooks

    inventory = result.inventory.to_status()
    label = _label(release)
    if health is not None and not health.healthy:
        reason, head = ordered.failure_words(health)  # a failed hook fails the release like the gate
        release = await _verdict(ctx, release, Result.FAILED, reason, now)
        message = f"{head} for {step.revision}{label}: {health.message}"
        new_status = status.failed(
            ctx.status, env.generation, reason, message, now,
            stalled=False, attempted=step.revision, applied=step.revision, inventory=inventory,
        )  # fmt: skip
        # Told once per (release, reason): the health message may change wording between retries.
        old = status.condition(env.status, status.READY) or {}
        told = old.get("reason") == reason and str(old.get("message", "")).startswith(
            f"{head} for {step.revision}{label}:"
        )
        await ctx.warn_once(reason, message)
        if not told:
            ctx.announce("health.failed", revision, reason, message)
        ctx.stage(status.handled(new_status, ctx.requested_at))
        return Outcome("failed", revision, changed, pruned, drift, health=health, release=release.number,
                       verdict=str(release.result), message=message)  # fmt: skip

    release = await _verdict(ctx, release, Result.HEALTHY, None, now)
    message = f"Applied revision: {step.revision}{label}"
    if drift:
        message += f"; corrected drift in {_drift_names(result)}"
    message += step.note
    new_status = status.succeeded(ctx.status, env.generation, step.revision, inventory, message, now)
    if step.ready_reason != "ReconciliationSucceeded":
        new_status = status.with_condition(
            new_status, status.READY, True, step.ready_reason, message, env.generation, now
        )
    if step.awaiting:
        text = f"{step.awaiting} ({message})"
        new_status = status.waiting(ctx.status, new_status, "AwaitingPromotion", text, env.generation, now)
    ctx.stage(status.handled(new_status, ctx.requested_at))
    await _prune_records(ctx)
    # A restore that turned healthy was told as rollback.performed (in _verdict); waiting is not a deploy.
    if (step.fresh or not was_ready) and not step.awaiting and not (step.fresh and release.is_rollback):
        ctx.announce("deploy.succeeded", revision, "ReconciliationSucceeded", message)
    if touched:
        summary = f"{step.revision}{label}: {changed} changed, {pruned} pruned"
        await ctx.event("Normal", "ReconciliationSucceeded", f"Applied {summary}")
    if drift:
        restored = f"Restored what was changed by hand: {_drift_names(result)}"
        await ctx.event("Warning", "DriftCorrected", restored)
    return Outcome("applied" if touched else "unchanged", revision, changed, pruned, drift, health=health,
                   release=release.number, verdict=str(release.result), message=message)  # fmt: skip


async def _verdict(ctx: RunContext, release: ReleaseInfo, result: Result, reason: str | None, now: str) -> ReleaseInfo:
    """Write-order step 6: a Pending release gets its verdict (a Failed one may still turn Healthy)."""
    if release.result is not Result.PENDING and not (release.result is Result.FAILED and result is Result.HEALTHY):
        return release
    ledger = await ctx.ledger()
    settled = await ledger.settle(release, result, now, reason)
    ctx.status = status.with_release(ctx.status, None, ledger.history())
    if settled.is_rollback and release.result is Result.PENDING:
        await report_rollback(ctx, settled)
    return settled


async def _prune_records(ctx: RunContext) -> None:
    """Write-order step 8: records past ``historyLimit`` go (status says which are kept)."""
    ledger = await ctx.ledger()
    removed = await ledger.prune(ctx.env.spec.history_limit, ctx.status)
    if removed:
        ctx.stage(status.with_release(ctx.status, None, ledger.history()))


async def report_rollback(ctx: RunContext, release: ReleaseInfo) -> None:
    """A rollback release has its verdict: tell people (Event, metric, lifecycle events)."""
    env, services = ctx.env, ctx.services
    auto = release.trigger.startswith("auto")
    reason = release.trigger.partition(":")[2] if auto else "Manual"
    services.metrics.rollbacks.labels(env.key, reason).inc()
    held = ctx.status.get("held") or {}
    text = f"Rolled back to release {release.restored_from} ({release.revision}) as release {release.number}"
    text += f", {'automatically after ' + reason if auto else 'as requested by ' + release.applied_by}"
    text += f" (now {release.result})"
    if held.get("revision"):
        text += f"; holding {held['revision']}"
    await ctx.event("Warning" if auto else "Normal", "RolledBack", text)
    ctx.announce("rollback.performed", parse_revision(release.revision), reason, text)
    if held.get("revision"):
        ctx.announce("revision.held", parse_revision(str(held["revision"])), str(held.get("reason", reason)), text)


def _label(release: ReleaseInfo) -> str:
    if release.is_rollback:
        return f" (release {release.number}: {release.note})"
    return f" (release {release.number})"


def _drift_names(result: SyncResult) -> str:
    names = [str(ref) for ref in result.drifted()]
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
