"""One reconcile of one Environment: resolve → render → release → apply → prune → health → status.

The engine parts do the work (``sources``, ``render``, ``apply``, ``health``, ``releases``);
this module decides *what* the cluster should run and tells the world: status conditions,
Events, metrics and one summary log line per reconcile. In order, a reconcile:

1. carries out a pending rollback request (``rollback``), or one a crash interrupted;
2. clears a hold on ``gitopsd resume``;
3. resolves the source revision. A **held** revision is not applied: the current release is
   kept (re-applied from its record, so drift is still corrected). When the source moves to
   another revision the hold is lifted by itself;
4. renders it. The same revision and rendered digest as the current release: the current
   release is kept up (drift, health). Anything else is a **new release** — unless a **freeze
   window** is open (``freeze``; ``gitopsd sync --force-freeze`` overrides once, with an Event),
   in which case the current release is kept and status says until when;
5. a new release is recorded before anything is applied, then applied (``rollout``); with
   ``rollback.auto``, one that fails its health gate is rolled back at once.

Steady state is cheap by design: the revision comes from ``ls-remote`` (no fetch), the render
of an unchanged commit and spec is reused from memory (with its digest), the records are read
once per Environment per process, the applier's memo skips dry-runs of objects that did not
move, and an unchanged status is not written. Such a reconcile makes no write to the cluster.

Failure classes: an error that only a person can fix (bad spec or credentials, a manifest the
cluster rejects, a render error) makes the Environment ``Stalled``; one that may pass by
itself (Git or the API server unreachable, a health check that has not passed yet) leaves it
``Reconciling`` and is retried on the next interval. Either way ``Ready`` is False with the
reason, and a Warning Event is posted once per distinct failure, not once per retry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from gitopsd import environments, freeze, promotion, rollback, rollout, status
from gitopsd.apply import EMPTY_RENDER, Applier, Inventory
from gitopsd.clusters.aside import running
from gitopsd.clusters.registry import Registry
from gitopsd.context import RunContext, Services, Source
from gitopsd.dependencies import check as dependencies
from gitopsd.desired import Desired
from gitopsd.errors import GitopsdError
from gitopsd.events import EventRecorder
from gitopsd.gates import runner as gate
from gitopsd.gitsource import GitSource
from gitopsd.kube import KubeAPI, KubeError
from gitopsd.kube.secretwatch import PlainSecretReader, SecretReader
from gitopsd.kube.watchcache import WatchCache
from gitopsd.lifecycle import Announcer, NullAnnouncer
from gitopsd.metrics import Metrics
from gitopsd.outcome import Aside, Outcome, fields_of, stay
from gitopsd.releases import Ledgers, ReleaseInfo, ReleaseStore, Result
from gitopsd.releases import requests as asks
from gitopsd.sources import GitSources
from gitopsd.spec import Environment, parse_environment
from gitopsd.tenancy import Tenancy

log = structlog.get_logger("gitopsd.reconcile")


class Reconciler:
    """Reconciles Environments against one cluster. Keeps per-Environment memory between runs.

    ``source`` replaces Git and the renderer (tests give an in-memory one); ``cache`` is the
    cluster's shared watch cache, handed to the applier for live state; ``secrets`` reads the
    Git credentials (the daemon's ``SecretWatch``; default: a GET at each resolve).
    """

    def __init__(
        self,
        kube: KubeAPI,
        sources: GitSources | None,
        recorder: EventRecorder,
        metrics: Metrics | None = None,
        *,
        kustomize_timeout: float = 60.0,
        ls_remote_max_age: float = 1.0,
        announcer: Announcer | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),  # freeze windows are read against it
        source: Source | None = None,
        cache: WatchCache | None = None,
        secrets: SecretReader | None = None,
        tenancy: Tenancy | None = None,
        clusters: Registry | None = None,
    ) -> None:
        tenancy = tenancy or Tenancy()
        if source is None:
            if sources is None:
                raise ValueError("Reconciler needs sources (Git) or a source")
            desired = Desired(kube, sources, kustomize_timeout)
            source = GitSource(kube, sources, desired, ls_remote_max_age, secrets=secrets, tenancy=tenancy)
        applier = Applier(kube, cache=cache)
        self.kube = kube
        self.recorder = recorder
        self.metrics = metrics or Metrics()
        self.services = Services(
            kube=kube,
            source=source,
            recorder=recorder,
            metrics=self.metrics,
            announcer=announcer or NullAnnouncer(),
            clock=clock,
            applier=applier,
            ledgers=Ledgers(ReleaseStore(kube)),
            tenancy=tenancy,
            clusters=clusters if clusters is not None else Registry(secrets or PlainSecretReader(kube)),
        )
        self._inflight: dict[str, tuple[asyncio.Task[Outcome], str]] = {}
        self._preempted: set[str] = set()

    @property
    def announcer(self) -> Announcer:
        return self.services.announcer

    @announcer.setter
    def announcer(self, announcer: Announcer) -> None:
        self.services.announcer = announcer

    @property
    def applier(self) -> Applier:
        return self.services.applier

    @property
    def ledgers(self) -> Ledgers:
        return self.services.ledgers

    async def close(self) -> None:
        """Close the remote targets' connections (``gitopsd.clusters``)."""
        if self.services.clusters is not None:
            await self.services.clusters.close()

    def forget(self, env: Environment) -> None:
        """Drop what is remembered about a deleted Environment."""
        self.services.forget(env.uid)
        self.metrics.forget(env.key)

    def preempt(self, uid: str) -> bool:
        """Cancel the sync in flight for Environment ``uid``: a rollback request has arrived, or it was deleted.

        A rollback in flight is not preempted (a second request waits, and the CLI refuses it).
        """
        entry = self._inflight.get(uid)
        if entry is None or entry[1] != "sync" or entry[0].done():
            return False
        self._preempted.add(uid)
        entry[0].cancel()
        return True

    async def reconcile(
        self,
        env: Environment,
        *,
        requested_at: str | None = None,
        fresh: bool = False,
        on_progress: Callable[[str], None] | None = None,
        aside: Aside = stay,
    ) -> Outcome:
        """Bring the cluster to what the Environment asks for and record the result.

        ``aside`` wraps the health gate's wait (the daemon frees the worker meanwhile).
        """
        started = time.monotonic()
        ctx = RunContext.start(self.services, env, requested_at=requested_at, progress=on_progress, aside=aside)
        with running(aside):  # a request to a suspect target cluster waits aside (gitopsd.clusters)
            try:
                return await self._reconcile(ctx, fresh, started)
            finally:
                if ctx.target_ is not None:
                    self.services.release(ctx.env, ctx.target_)

    async def _reconcile(self, ctx: RunContext, fresh: bool, started: float) -> Outcome:
        env = ctx.env
        try:
            if env.spec.suspend:
                outcome = await _suspended(ctx)
            else:
                ctx.target_ = await self.services.acquire(env)  # the cluster it deploys into, once per run
                outcome = await self._guarded(ctx, fresh)
        except GitopsdError as exc:
            outcome = await _fail(ctx, exc)
        # Suspended, or its cluster could not be reached (ctx.target_ None): nothing to do there.
        if ctx.target_ is not None and outcome.result not in ("suspended", "preempted"):
            try:  # the verification gate of the current release, one step (gitopsd.gates.runner)
                outcome = await gate.after(ctx, outcome)
            except GitopsdError as exc:
                ctx.requested_at = None
                outcome = await _fail(ctx, exc)
        if ctx.target_ is not None and outcome.result not in ("suspended", "preempted"):
            await _note_watches(ctx)
        if outcome.result != "preempted":
            try:
                await ctx.flush()  # the one status write of a run that had nothing to write earlier
            except KubeError as exc:
                outcome = await _fail(ctx, exc)
        outcome = Outcome(**{**fields_of(outcome), "duration": time.monotonic() - started, "status": ctx.status})
        self._report(env, outcome)
        return outcome

    async def _guarded(self, ctx: RunContext, fresh: bool) -> Outcome:
        """Run the reconcile as a task a rollback request can preempt (see ``preempt``)."""
        uid = ctx.env.uid
        kind = "rollback" if asks.pending_rollback(ctx.env.annotations, ctx.status) else "sync"
        task = asyncio.create_task(_run(ctx, fresh))
        self._inflight[uid] = (task, kind)
        try:
            return await task
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if uid in self._preempted and task.cancelled() and not (me is not None and me.cancelling()):
                log.info("sync preempted (rollback request or deletion)", environment=ctx.env.key)
                ctx.target.ledgers.forget(uid)  # a record write may have been cut short: read them again
                return Outcome("preempted")
            raise
        finally:
            self._inflight.pop(uid, None)
            self._preempted.discard(uid)

    def _report(self, env: Environment, outcome: Outcome) -> None:
        self.metrics.seed(env.key)
        self.metrics.reconcile_duration.labels(env.key).observe(outcome.duration)
        self.metrics.reconcile_total.labels(env.key, outcome.result).inc()
        fields: dict[str, object] = {
            "environment": env.key,
            "revision": str(outcome.revision) if outcome.revision else None,
            "release": outcome.release,
            "result": outcome.result,
            "changed": outcome.changed,
            "pruned": outcome.pruned,
            "drift": outcome.drift,
            "duration_s": round(outcome.duration, 3),
        }
        if outcome.error is not None:
            fields.update(reason=outcome.error.reason, error=outcome.error.message)
        elif outcome.health is not None and not outcome.health.healthy:
            fields.update(reason="HealthCheckFailed", error=outcome.health.message)
        self.metrics.ready.labels(env.key).set(1 if status.is_true(outcome.status, status.READY) else 0)
        (log.warning if outcome.result == "failed" else log.info)("reconciled", **fields)


# -- one run -------------------------------------------------------------------------------------


async def _suspended(ctx: RunContext) -> Outcome:
    request = asks.pending_rollback(ctx.env.annotations, ctx.status)
    if request is not None:
        name = ctx.env.name
        refused = GitopsdError(f"{ctx.env.namespace}/{name} is suspended: run 'gitopsd resume {name}' first")
        await rollback.refuse(ctx, request, refused)
    ctx.stage(status.handled(ctx.status, ctx.requested_at))
    return Outcome("suspended")


async def _run(ctx: RunContext, fresh: bool) -> Outcome:
    request = asks.pending_rollback(ctx.env.annotations, ctx.status)
    if request is not None:
        # Status as the server has it now: a preempted sync may have written it a moment ago.
        env = ctx.env
        ctx.reload(parse_environment(await environments.get(ctx.services.kube, env.namespace, env.name)))
    ledger = await ctx.ledger()
    if request is not None:
        return await rollback.requested(ctx, request)
    leftover = ledger.leftover(ctx.status)
    if leftover is not None and leftover.is_rollback:
        outcome = await rollback.resume_leftover(ctx, leftover)
        if outcome is not None:
            return outcome
    resume = asks.pending_resume(ctx.env.annotations, ctx.status)
    if resume is not None:
        await rollback.lift_hold(ctx, resume)
    return await _sync(ctx, fresh)


async def _sync(ctx: RunContext, fresh: bool) -> Outcome:
    """The source path: resolve, render, and keep, hold, freeze, promote or deploy a new release."""
    env, services, ledger = ctx.env, ctx.services, await ctx.ledger()
    spec, now = env.spec, environments.now_rfc3339()
    await dependencies.check(ctx)  # spec.dependsOn: nothing resolved, rendered or applied before they are Ready
    resolved = await services.source.resolve(env, fresh=fresh)
    revision = resolved.revision
    current = ledger.current(ctx.status)
    held = ctx.status.get("held") or {}
    if held.get("revision") == str(revision):
        return await rollback.keep_current(ctx, current, note=rollback.held_note(ctx.status))
    if held:
        message = f"the source moved to {revision}: the hold on {held.get('revision')} is lifted"
        ctx.stage(status.unheld(ctx.status))
        ctx.announce("resumed", revision, "SourceMoved", message)
    try:
        manifests, digest = await services.source.render(env, resolved, cluster=ctx.target.kube)
    except GitopsdError:
        ctx.stage({**ctx.status, "lastAttemptedRevision": str(revision)})  # _fail writes it
        raise
    if not manifests and not spec.allow_empty:
        ctx.stage({**ctx.status, "lastAttemptedRevision": str(revision)})
        raise GitopsdError(f"{revision}: {EMPTY_RENDER}; set spec.allowEmpty to prune everything", reason="EmptyRender")
    same = current is not None and current.revision == str(revision) and current.digest == digest
    spec_changed = env.generation != ctx.status.get("observedGeneration")
    if same and current is not None:
        if current.result is Result.PENDING:
            ctx.progress(f"resuming release {current.number} ({revision})")
        step = rollout.Step(manifests, str(revision), current, fresh=current.result is Result.PENDING or spec_changed)
        return await _gate(ctx, step)
    waiting = await promotion.guard(ctx, current, revision, digest)
    if waiting is not None:
        return waiting

    frozen = freeze.active(spec.freeze, services.clock())
    forced = asks.forced_freeze(env.annotations, ctx.requested_at) if frozen else None
    if frozen is not None and forced is None:
        message = f"{revision} waits: {frozen.message}"
        said = status.condition(ctx.status, status.FROZEN)
        if said is None or said.get("message") != message:
            ctx.announce("freeze.blocked", revision, "FreezeWindow", message)
        ctx.stage(status.frozen(ctx.status, message, env.generation, now))
        return await rollback.keep_current(ctx, current, note=f"; {message}")
    if frozen is not None and forced is not None:
        text = f"Deploy of {revision} forced by {forced.by} during a freeze: {frozen.message}"
        await ctx.event("Warning", "FreezeOverridden", text)

    await gate.admit(ctx, revision)  # a gate that cannot work: nothing is deployed
    if str(revision) != ctx.status.get("lastAttemptedRevision") or spec_changed:
        ctx.announce("deploy.started", revision, "Progressing", f"Deploying {revision}")
    wanted = ReleaseInfo(0, str(revision), digest, now, Result.PENDING)
    info = await ledger.begin(ctx.status, wanted, manifests, replaces=Result.SUPERSEDED)
    ctx.progress(f"applying {revision} as release {info.number}")
    previous = Inventory.from_status(ctx.status.get("inventory") or {})
    new_status = status.progressing(
        ctx.status, env.generation, str(revision), f"Applying {revision} as release {info.number}", now
    )
    new_status = status.with_inventory(new_status, rollout.superset(previous, manifests))
    new_status = status.with_release(status.unfrozen(new_status), info.number, ledger.history())
    await ctx.write_status(new_status)  # write-order step 3: status covers what the apply may create
    step = rollout.Step(manifests, str(revision), info, fresh=True, before=previous.to_status())
    return await _gate(ctx, step)


async def _gate(ctx: RunContext, step: rollout.Step) -> Outcome:
    """Roll the step out; with ``rollback.auto``, restore the last Healthy release if it failed its gate."""
    ctx.stage(status.unfrozen(ctx.status))
    outcome = await rollout.run(ctx, step)
    ledger = await ctx.ledger()
    release = ledger.records.get(step.release.number, step.release)
    if (
        ctx.env.spec.rollback_auto
        and outcome.health is not None
        and not outcome.health.healthy
        and release.result is Result.FAILED
        and not release.is_rollback
    ):
        ctx.progress(f"release {release.number} failed its health gate: rolling back")
        return await rollback.automatic(ctx, release)
    return outcome


async def _note_watches(ctx: RunContext) -> None:
    """``WatchFailed`` names the kinds of the inventory the watch cache cannot serve (a Warning
    Event when that changes): they are read with GETs, and their drift waits for the interval."""
    cache = ctx.target.applier.cache
    if cache is None:
        return
    failures: dict[str, str] = {}
    for entry in Inventory.from_status(ctx.status.get("inventory")):
        ref = entry.ref
        name = f"{ref.kind}.{ref.group}" if ref.group else ref.kind
        reason = failures.get(name) or cache.failure_of(ref.group, ref.kind, ref.namespace or None)
        if reason:
            failures[name] = reason
    new = status.watch_failed(ctx.status, failures, ctx.env.generation, environments.now_rfc3339())
    before, after = status.condition(ctx.status, status.WATCH_FAILED), status.condition(new, status.WATCH_FAILED)
    if after is not None and (before is None or before.get("message") != after.get("message")):
        try:
            await ctx.event("Warning", status.WATCH_FAILED, str(after["message"]))
        except KubeError as exc:
            log.warning("event not posted", environment=ctx.env.key, error=str(exc))
    ctx.stage(new)


async def _fail(ctx: RunContext, exc: GitopsdError) -> Outcome:
    """Ready False with the error's reason; Stalled unless the error may pass by itself (``transient``)."""
    env = ctx.env
    new_status = status.failed(
        ctx.status, env.generation, exc.reason, exc.message, environments.now_rfc3339(), stalled=not exc.transient
    )
    if await ctx.warn_once(exc.reason, exc.message):
        ctx.announce("deploy.failed", None, exc.reason, exc.message)
    try:
        await ctx.write_status(status.handled(new_status, ctx.requested_at))
    except KubeError as write_error:
        log.warning("status not written", environment=env.key, error=str(write_error))
    return Outcome("failed", error=exc)
