"""A release with waves or hooks, synced in Argo CD's order.

1. Every object of the Sync phase is dry-run first (``Applier.diff``): a rejection refuses the
   whole release before any hook runs or anything is written, as a plain sync does.
2. **PreSync** hooks, one after another; a failed one stops the sync.
3. **Waves** in ascending order: each one applied server-side (cumulatively: waves up to this
   one, so earlier waves are only re-checked), its Sync hooks run, then its objects awaited
   healthy before the next wave starts. Nothing is pruned before the last wave, which is
   applied with the Environment's prune setting.
4. The caller's health gate over the whole inventory, then ``finish``: **PostSync** hooks when
   it passed, **SyncFail** hooks when anything failed.

Hooks run only when the release is being deployed (new, resumed after a crash, after a spec
change) or is retried after a hook failed: the steady-state re-apply of a release (drift
correction every interval) applies the waves in order but runs no hook. A failed hook or an
unhealthy wave is returned as a failed ``HealthReport`` naming the object, so it fails the
release exactly like a failed health gate (automatic rollback, hold).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from gitopsd.apply import (
    Action,
    ApplyError,
    ApplyMemo,
    ApplyOptions,
    HealthReport,
    Inventory,
    InventoryEntry,
    ObjectHealth,
    Overall,
    SyncResult,
)
from gitopsd.context import RunContext
from gitopsd.health.status import Health
from gitopsd.model import Manifest, ObjectRef
from gitopsd.phases.classify import Hook, Phases, Wave, classify
from gitopsd.phases.hooks import HookRun, HookRunner
from gitopsd.releases import ReleaseInfo, Result

#: The reason a failed hook gives the release and the Ready condition.
HOOK_FAILED = "HookFailed"
_PRUNING = frozenset({Action.PRUNED, Action.PRUNE_SKIPPED})
#: How long a hook may run when the Environment has no health gate (``wait.timeout: 0``).
DEFAULT_HOOK_TIMEOUT = 300.0


@dataclass(frozen=True, slots=True)
class Applied:
    """What the Sync phase did; ``failure`` when a hook or a wave stopped it before the end."""

    result: SyncResult
    failure: HealthReport | None = None


@dataclass(frozen=True, slots=True)
class Order:
    """How one rollout runs: the release's phases, whether its hooks run, whether to dry-run first."""

    phases: Phases
    #: A release being deployed (new, resumed, spec changed), or retried after a failed hook.
    hooks: bool
    #: Dry-run every object before the first wave: the release has no Healthy verdict yet.
    validate: bool

    @classmethod
    def of(cls, manifests: Sequence[Manifest], fresh: bool, release: ReleaseInfo) -> Order:
        """Raises ``BadAnnotation`` (the render already refused such objects, so only an old record can)."""
        hooks = fresh or (release.result is Result.FAILED and release.reason == HOOK_FAILED)
        return cls(classify(manifests), hooks, fresh or release.result is not Result.HEALTHY)


def failure_words(report: HealthReport) -> tuple[str, str]:
    """(condition reason, message head) for a failed gate: a hook's failure or the health check's."""
    first = report.first_not_ready
    if first is not None and first.health.reason == HOOK_FAILED:
        return HOOK_FAILED, "Hook failed"
    return "HealthCheckFailed", "Health check failed"


async def apply(ctx: RunContext, order: Order, previous: Inventory, options: ApplyOptions, memo: ApplyMemo) -> Applied:
    """PreSync hooks, then the waves; see the module doc. Raises ``ApplyError`` like ``Applier.sync``.

    A release without hooks or waves is one plain ``Applier.sync``, as before ordering existed.
    """
    applier, phases, hooks = ctx.applier, order.phases, order.hooks
    if not phases.ordered:
        return Applied(await applier.sync(phases.synced, previous, options, memo))
    validate = order.validate
    if validate and phases.synced:
        await applier.diff(phases.synced, previous, dataclasses.replace(options, prune=False))
    runner = _runner(ctx)
    if hooks:
        failed = await _run_hooks(ctx, runner, phases.pre_sync)
        if failed is not None:
            await run_sync_fail(ctx, phases)
            return Applied(SyncResult(inventory=previous), _report(failed))
    done: list[SyncResult] = []
    applied: list[Manifest] = []
    waves = phases.waves or (Wave(0, ()),)  # only hooks: the last "wave" still prunes (or says empty)
    last = len(waves) - 1
    try:
        for index, wave in enumerate(waves):
            applied += wave.manifests
            final = index == last
            result: SyncResult | None = None
            if applied or final:
                wave_options = options if final else dataclasses.replace(options, prune=False)
                result = await applier.sync(applied, previous, wave_options, memo if final else memo.partial())
                done.append(_only(result, wave, final))
            if hooks and wave.hooks:
                failed = await _run_hooks(ctx, runner, wave.hooks)
                if failed is not None:
                    await run_sync_fail(ctx, phases)
                    return Applied(_merged(done, previous, partial=True), _report(failed))
            if final or result is None:
                continue
            report = await _await_wave(ctx, wave, result, hooks)
            if report is not None and not report.healthy:
                if hooks:
                    await run_sync_fail(ctx, phases)
                return Applied(_merged(done, previous, partial=True), report)
    except ApplyError as exc:
        if done:  # earlier waves were written: they stay tracked, whatever this wave's error says
            grown = _merged(done, previous, partial=True).inventory
            exc.inventory = (exc.inventory or previous).with_entries(grown)
            if hooks:
                await run_sync_fail(ctx, phases)
        raise
    return Applied(_merged(done, previous, partial=False))


async def finish(ctx: RunContext, order: Order, applied: Applied, health: HealthReport | None) -> HealthReport | None:
    """After the health gate: PostSync hooks if it passed, SyncFail hooks if it failed.

    Returns the release's gate verdict: ``applied.failure`` (SyncFail already ran), a failed
    PostSync hook, or ``health`` as it was.
    """
    phases = order.phases
    if applied.failure is not None:
        return applied.failure
    if not order.hooks:
        return health
    if health is not None and not health.healthy:
        await run_sync_fail(ctx, phases)
        return health
    failed = await _run_hooks(ctx, _runner(ctx), phases.post_sync)
    if failed is None:
        return health
    await run_sync_fail(ctx, phases)
    return _report(failed)


async def run_sync_fail(ctx: RunContext, phases: Phases) -> None:
    """SyncFail hooks; their own failure is told (Event) but changes nothing more."""
    await _run_hooks(ctx, _runner(ctx), phases.sync_fail)


# -- steps ---------------------------------------------------------------------------------------


def _runner(ctx: RunContext) -> HookRunner:
    timeout = ctx.env.spec.wait_timeout or DEFAULT_HOOK_TIMEOUT
    return HookRunner(ctx.applier.kube, ctx.env.key, timeout, aside=ctx.aside)


async def _run_hooks(ctx: RunContext, runner: HookRunner, hooks: Sequence[Hook]) -> HookRun | None:
    """Run ``hooks`` in order, an Event for each end; the first failed run stops them."""
    for hook in hooks:
        ctx.progress(f"running {hook.phase} hook {hook.name}")
        run = await runner.run(hook)
        if run.succeeded:
            await ctx.event("Normal", "HookSucceeded", f"{run.label} succeeded: {run.message}")
        else:
            await ctx.event("Warning", HOOK_FAILED, f"{run.label} failed: {run.message}")
            return run
    return None


async def _await_wave(ctx: RunContext, wave: Wave, result: SyncResult, hooks: bool) -> HealthReport | None:
    """Wave ``n``'s objects healthy before wave ``n+1``; only when the wave wrote or hooks run."""
    timeout = ctx.env.spec.wait_timeout
    wrote = any(o.ref in _refs(wave) and o.action is not Action.UNCHANGED for o in result.objects)
    if timeout <= 0 or not (wrote or hooks):
        return None
    entries = [e for e in result.inventory if e.ref in _refs(wave)]
    ctx.progress(f"waiting up to {timeout:.0f}s for wave {wave.number} ({len(entries)} objects)")
    async with ctx.aside():
        report = await ctx.applier.wait(Inventory.of(entries), timeout, owner=ctx.env.key)
    if report.healthy:
        await ctx.event("Normal", "WaveApplied", f"wave {wave.number}: {len(entries)} objects applied and healthy")
    return report


def _report(run: HookRun) -> HealthReport:
    """A failed hook as a failed health report naming the hook object (and why)."""
    ref = run.ref or ObjectRef.of(run.hook.manifest.obj)
    health = Health.failed(HOOK_FAILED, f"{run.hook.phase} hook failed: {run.message}")
    return HealthReport(Overall.FAILED, (ObjectHealth(ref, health),))


def _refs(wave: Wave) -> set[ObjectRef]:
    return {m.ref for m in wave.manifests}


def _only(result: SyncResult, wave: Wave, final: bool) -> SyncResult:
    """A cumulative sync's outcomes for this wave's objects (the last one's prunes too)."""
    refs = _refs(wave)
    objects = tuple(o for o in result.objects if o.ref in refs or (final and o.action in _PRUNING))
    return dataclasses.replace(result, objects=objects)


def _merged(done: list[SyncResult], previous: Inventory, *, partial: bool) -> SyncResult:
    """One result for the whole Sync phase. A partial one keeps ``previous`` in the inventory:
    nothing was pruned, and what left Git must stay tracked until a later sync prunes it."""
    if not done:
        return SyncResult(inventory=previous)
    inventory = done[-1].inventory
    if partial:
        inventory = previous.with_entries(InventoryEntry(e.ref, e.version) for e in inventory)
    timings: dict[str, float] = {}
    for n, result in enumerate(done):
        timings.update({f"wave{n}_{k}": v for k, v in result.timings.items()})
    return SyncResult(
        inventory=inventory,
        objects=tuple(o for r in done for o in r.objects),
        requests=sum(r.requests for r in done),
        writes=sum(r.writes for r in done),
        duration=sum(r.duration for r in done),
        empty_render=done[-1].empty_render,
        requests_by_kind={},
        timings=timings,
    )
