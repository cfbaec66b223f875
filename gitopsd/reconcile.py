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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from gitopsd import environments, freeze, promotion, rollback, rollout, status
from gitopsd.apply import EMPTY_RENDER, Applier, ApplyMemo, Inventory
from gitopsd.desired import Desired
from gitopsd.desired import load_credentials as load_credentials
from gitopsd.errors import GitopsdError
from gitopsd.events import EventRecorder
from gitopsd.gates import runner as gate
from gitopsd.kube import Kube, KubeError
from gitopsd.lifecycle import Announcer, EventType, LifecycleEvent, NullAnnouncer
from gitopsd.metrics import Metrics
from gitopsd.model import Revision
from gitopsd.outcome import Aside, Outcome, SyncState, fields_of, involved, stay
from gitopsd.releases import Ledger, Ledgers, Owner, ReleaseInfo, ReleaseStore, Result
from gitopsd.releases import requests as asks
from gitopsd.sources import GitSources, redact
from gitopsd.spec import Environment, parse_environment

#: Reasons that may pass by themselves: the Environment keeps Reconciling (retrying) rather
#: than Stalled. Everything else (bad spec, credentials, manifests, ownership...) needs a
#: person: a new commit, or a spec or Secret change.
TRANSIENT_REASONS = frozenset(
    {
        "GitUnreachable",
        "GitTimeout",
        "GitOperationFailed",
        "KubernetesUnreachable",
        "KubernetesError",
        "KustomizeTimeout",
        "Conflict",
        "HealthCheckFailed",
        "DependencyNotReady",
    }
)

log = structlog.get_logger("gitopsd.reconcile")


@dataclass(slots=True)
class Reconciler:
    """Reconciles Environments against one cluster. Keeps per-Environment memory between runs."""

    kube: Kube
    sources: GitSources
    recorder: EventRecorder
    metrics: Metrics = field(default_factory=Metrics)
    kustomize_timeout: float = 60.0
    ls_remote_max_age: float = 1.0
    announcer: Announcer = field(default_factory=NullAnnouncer)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))  # freeze windows are read against it
    applier: Applier = field(init=False)
    ledgers: Ledgers = field(init=False)
    _memos: dict[str, ApplyMemo] = field(default_factory=dict, init=False)
    desired: Desired = field(init=False)
    _inflight: dict[str, tuple[asyncio.Task[Outcome], str]] = field(default_factory=dict, init=False)
    _preempted: set[str] = field(default_factory=set, init=False)
    gates: gate.Memory = field(default_factory=gate.Memory, init=False)

    def __post_init__(self) -> None:
        self.applier = Applier(self.kube)
        self.ledgers = Ledgers(ReleaseStore(self.kube))
        self.desired = Desired(self.kube, self.sources, self.kustomize_timeout)

    def forget(self, env: Environment) -> None:
        """Drop what is remembered about a deleted Environment."""
        self._memos.pop(env.uid, None)
        self.desired.forget(env.uid)
        self.ledgers.forget(env.uid)
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
        state = SyncState(env, dict(env.status), aside)
        progress = on_progress or (lambda _msg: None)
        try:
            if env.spec.suspend:
                outcome = await self._suspended(state, requested_at)
            else:
                outcome = await self._guarded(state, requested_at, fresh, progress)
        except GitopsdError as exc:
            outcome = await self._fail(state, exc, requested_at)
        if outcome.result not in ("suspended", "preempted"):
            try:  # the verification gate of the current release, one step (gitopsd.gates.runner)
                outcome = await gate.after(self, state, outcome, progress)
            except GitopsdError as exc:
                outcome = await self._fail(state, exc, None)
        outcome = Outcome(**{**fields_of(outcome), "duration": time.monotonic() - started, "status": state.status})
        self._report(env, outcome)
        return outcome

    async def _suspended(self, state: SyncState, requested_at: str | None) -> Outcome:
        request = asks.pending_rollback(state.env.annotations, state.status)
        if request is not None:
            name = state.env.name
            refused = GitopsdError(f"{state.env.namespace}/{name} is suspended: run 'gitopsd resume {name}' first")
            await rollback.refuse(self, state, request, refused)
        await self._write_status(state, status.handled(state.status, requested_at))
        return Outcome("suspended")

    async def _guarded(
        self, state: SyncState, requested_at: str | None, fresh: bool, progress: Callable[[str], None]
    ) -> Outcome:
        """Run the reconcile as a task a rollback request can preempt (see ``preempt``)."""
        uid = state.env.uid
        kind = "rollback" if asks.pending_rollback(state.env.annotations, state.status) else "sync"
        task = asyncio.create_task(self._run(state, requested_at, fresh, progress))
        self._inflight[uid] = (task, kind)
        try:
            return await task
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if uid in self._preempted and task.cancelled() and not (me is not None and me.cancelling()):
                log.info("sync preempted (rollback request or deletion)", environment=state.env.key)
                self.ledgers.forget(uid)  # a record write may have been cut short: read them again
                return Outcome("preempted")
            raise
        finally:
            self._inflight.pop(uid, None)
            self._preempted.discard(uid)

    async def _run(
        self, state: SyncState, requested_at: str | None, fresh: bool, progress: Callable[[str], None]
    ) -> Outcome:
        env = state.env
        request = asks.pending_rollback(env.annotations, state.status)
        if request is not None:
            # Status as the server has it now: a preempted sync may have written it a moment ago.
            state.env = env = parse_environment(await environments.get(self.kube, env.namespace, env.name))
            state.status = dict(env.status)
        ledger = await self.ledgers.of(_owner(env))
        if request is not None:
            return await rollback.requested(self, state, ledger, request, progress)
        leftover = ledger.leftover(state.status)
        if leftover is not None and leftover.is_rollback:
            return await rollback.resume_leftover(self, state, ledger, leftover, progress)
        resume = asks.pending_resume(env.annotations, state.status)
        if resume is not None:
            await rollback.lift_hold(self, state, resume)
        return await self._sync(state, ledger, requested_at, fresh, progress)

    async def _sync_again(self, state: SyncState, progress: Callable[[str], None]) -> Outcome:
        ledger = await self.ledgers.of(_owner(state.env))
        return await self._sync(state, ledger, None, False, progress)

    # -- the source path -------------------------------------------------------------------

    async def _sync(
        self,
        state: SyncState,
        ledger: Ledger,
        requested_at: str | None,
        fresh: bool,
        progress: Callable[[str], None],
    ) -> Outcome:
        env = state.env
        spec, now = env.spec, environments.now_rfc3339()
        creds = await load_credentials(self.kube, env)
        revision = await self.sources.resolve(spec.source, creds, max_age=0.0 if fresh else self.ls_remote_max_age)
        current = ledger.current(state.status)
        held = state.status.get("held") or {}
        if held.get("revision") == str(revision):
            note = rollback.held_note(state.status)
            return await rollback.keep_current(self, state, ledger, current, requested_at, progress, note=note)
        if held:
            message = f"the source moved to {revision}: the hold on {held.get('revision')} is lifted"
            state.status = status.unheld(state.status)
            self._announce(env, "resumed", revision, "SourceMoved", message)
        try:
            manifests, digest = await self.desired.render(env, revision, creds)
        except GitopsdError:
            state.status = {**state.status, "lastAttemptedRevision": str(revision)}  # _fail writes it
            raise
        if not manifests and not spec.allow_empty:
            state.status = {**state.status, "lastAttemptedRevision": str(revision)}
            raise GitopsdError(
                f"{revision}: {EMPTY_RENDER}; set spec.allowEmpty to prune everything", reason="EmptyRender"
            )
        same = current is not None and current.revision == str(revision) and current.digest == digest
        spec_changed = env.generation != state.status.get("observedGeneration")
        if same and current is not None:
            if current.result is Result.PENDING:
                progress(f"resuming release {current.number} ({revision})")
            step = rollout.Step(
                manifests, str(revision), current, fresh=current.result is Result.PENDING or spec_changed
            )
            return await self._gate(state, ledger, step, requested_at, progress)
        waiting = await promotion.guard(self, state, ledger, current, revision, digest, requested_at, progress)
        if waiting is not None:
            return waiting

        frozen = freeze.active(spec.freeze, self.clock())
        forced = asks.forced_freeze(env.annotations, requested_at) if frozen else None
        if frozen is not None and forced is None:
            message = f"{revision} waits: {frozen.message}"
            if status.condition(state.status, status.FROZEN) is None or (
                (status.condition(state.status, status.FROZEN) or {}).get("message") != message
            ):
                self._announce(env, "freeze.blocked", revision, "FreezeWindow", message)
            state.status = status.frozen(state.status, message, env.generation, now)
            return await rollback.keep_current(
                self, state, ledger, current, requested_at, progress, note=f"; {message}"
            )
        if frozen is not None and forced is not None:
            text = f"Deploy of {revision} forced by {forced.by} during a freeze: {frozen.message}"
            await self.recorder.record(involved(env), "Warning", "FreezeOverridden", text)

        await gate.admit(self, env, revision)  # a gate that cannot work: nothing is deployed
        if str(revision) != state.status.get("lastAttemptedRevision") or spec_changed:
            self._announce(env, "deploy.started", revision, "Progressing", f"Deploying {revision}")
        wanted = ReleaseInfo(0, str(revision), digest, now, Result.PENDING)
        info = await ledger.begin(state.status, wanted, manifests, replaces=Result.SUPERSEDED)
        progress(f"applying {revision} as release {info.number}")
        previous = Inventory.from_status(state.status.get("inventory") or {})
        new_status = status.progressing(
            state.status, env.generation, str(revision), f"Applying {revision} as release {info.number}", now
        )
        new_status = status.with_inventory(new_status, rollout.superset(previous, manifests))
        new_status = status.with_release(status.unfrozen(new_status), info.number, ledger.history())
        await self._write_status(state, new_status)
        step = rollout.Step(manifests, str(revision), info, fresh=True)
        return await self._gate(state, ledger, step, requested_at, progress)

    async def _gate(
        self,
        state: SyncState,
        ledger: Ledger,
        step: rollout.Step,
        requested_at: str | None,
        progress: Callable[[str], None],
    ) -> Outcome:
        """Roll the step out; with ``rollback.auto``, restore the last Healthy release if it failed its gate."""
        state.status = status.unfrozen(state.status)
        outcome = await rollout.run(self, state, ledger, step, requested_at, progress)
        release = ledger.records.get(step.release.number, step.release)
        if (
            state.env.spec.rollback_auto
            and outcome.health is not None
            and not outcome.health.healthy
            and release.result is Result.FAILED
            and not release.is_rollback
        ):
            progress(f"release {release.number} failed its health gate: rolling back")
            return await rollback.automatic(self, state, ledger, release, progress)
        return outcome

    # -- failures --------------------------------------------------------------------------

    async def _fail(self, state: SyncState, exc: GitopsdError, requested_at: str | None) -> Outcome:
        env = state.env
        stalled = exc.reason not in TRANSIENT_REASONS
        new_status = status.failed(
            state.status, env.generation, exc.reason, exc.message, environments.now_rfc3339(), stalled=stalled
        )
        if await self._warn_once(env, exc.reason, exc.message):
            self._announce(env, "deploy.failed", None, exc.reason, exc.message)
        try:
            await self._write_status(state, status.handled(new_status, requested_at))
        except KubeError as write_error:
            log.warning("status not written", environment=env.key, error=str(write_error))
        return Outcome("failed", error=exc)

    async def _warn_once(self, env: Environment, reason: str, message: str) -> bool:
        """Post a Warning Event unless Ready already said exactly this; True when posted (a transition)."""
        old = status.condition(env.status, status.READY)
        if old and old.get("reason") == reason and old.get("message") == message:
            return False
        await self.recorder.record(involved(env), "Warning", reason, message)
        return True

    def _announce(
        self, env: Environment, type_: EventType, revision: Revision | None, reason: str, message: str
    ) -> None:
        previous = env.status.get("lastAppliedRevision")
        self.announcer.announce(
            LifecycleEvent(
                type=type_,
                namespace=env.namespace,
                environment=env.name,
                uid=env.uid,
                revision=str(revision) if revision else env.status.get("lastAttemptedRevision"),
                previous_revision=str(previous) if previous else None,
                reason=reason,
                message=message,
                time=environments.now_rfc3339(),
                source_url=redact(env.spec.source.url),
                release=env.status.get("release"),
            )
        )

    async def _write_status(self, state: SyncState, new_status: dict[str, Any]) -> None:
        if new_status == dict(state.env.status):  # what was last written (or read)
            state.status = new_status
            return
        await environments.write_status(self.kube, state.env.namespace, state.env.name, new_status)
        state.status = new_status
        state.env = _with_status(state.env, new_status)

    def _report(self, env: Environment, outcome: Outcome) -> None:
        self.metrics.seed(env.key)
        self.metrics.reconcile_duration.labels(env.key).observe(outcome.duration)
        self.metrics.reconcile_total.labels(env.key, outcome.result).inc()
        fields: dict[str, Any] = {
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


def _owner(env: Environment) -> Owner:
    return Owner(env.namespace, env.name, env.uid)


def _with_status(env: Environment, new_status: dict[str, Any]) -> Environment:
    from dataclasses import replace
    from types import MappingProxyType

    return replace(env, status=MappingProxyType(dict(new_status)))
