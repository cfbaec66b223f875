"""One sync of one Environment: resolve → fetch → render → dry-run → apply → prune → health → status.

The engine parts do the work (``sources``, ``render``, ``apply``, ``health``); this module
decides what to do with their answers and tells the world: status conditions, Events,
metrics and one summary log line per reconcile.

Steady state is cheap by design: the revision comes from ``ls-remote`` (no fetch), the render
of an unchanged commit and spec is reused from memory, the applier's memo skips dry-runs of
objects that did not move, and an unchanged status is not written. Such a reconcile makes no
write to the cluster.

Failure classes: an error that only a person can fix (bad spec or credentials, a manifest the
cluster rejects, a render error) makes the Environment ``Stalled``; one that may pass by
itself (Git or the API server unreachable, a health check that has not passed yet) leaves it
``Reconciling`` and is retried on the next interval. Either way ``Ready`` is False with the
reason, and a Warning Event is posted once per distinct failure, not once per retry.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from gitopsd import environments, status
from gitopsd.apply import (
    EMPTY_RENDER,
    Applier,
    ApplyMemo,
    ApplyOptions,
    HealthReport,
    Inventory,
    PruneFailed,
    SyncResult,
)
from gitopsd.errors import GitopsdError
from gitopsd.events import EventRecorder
from gitopsd.kube import Kube, KubeError, NotFound
from gitopsd.kube.discovery import Resource
from gitopsd.lifecycle import Announcer, EventType, LifecycleEvent, NullAnnouncer
from gitopsd.metrics import Metrics
from gitopsd.model import Manifest, Revision
from gitopsd.render import RenderOptions, render
from gitopsd.render.errors import UnknownKind
from gitopsd.sources import Credentials, GitSources, redact
from gitopsd.spec import API_VERSION, KIND, Environment

SECRETS = Resource("", "v1", "Secret", "secrets", namespaced=True)

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
    }
)

Result = Literal["applied", "unchanged", "failed", "suspended"]
log = structlog.get_logger("gitopsd.reconcile")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one reconcile did, for the daemon, the CLI and the summary log line."""

    result: Result
    revision: Revision | None = None
    changed: int = 0
    pruned: int = 0
    drift: int = 0
    duration: float = 0.0
    error: GitopsdError | None = None
    health: HealthReport | None = None
    status: dict[str, Any] = field(default_factory=dict)  # the Environment's status after this reconcile


@dataclass(slots=True)
class _State:
    """The Environment being reconciled and its status as last written."""

    env: Environment
    status: dict[str, Any]


@dataclass(slots=True)
class _Cached:
    key: tuple[str, int]
    manifests: list[Manifest]


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
    applier: Applier = field(init=False)
    _memos: dict[str, ApplyMemo] = field(default_factory=dict, init=False)
    _renders: dict[str, _Cached] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.applier = Applier(self.kube)

    def forget(self, env: Environment) -> None:
        """Drop what is remembered about a deleted Environment."""
        self._memos.pop(env.uid, None)
        self._renders.pop(env.uid, None)
        self.metrics.forget(env.key)

    async def reconcile(
        self,
        env: Environment,
        *,
        requested_at: str | None = None,
        fresh: bool = False,
        on_progress: Callable[[str], None] | None = None,
    ) -> Outcome:
        """Bring the cluster to the Environment's source revision and record the result."""
        started = time.monotonic()
        state = _State(env, dict(env.status))
        if env.spec.suspend:
            await self._write_status(state, status.handled(state.status, requested_at))
            outcome = Outcome("suspended")
        else:
            try:
                outcome = await self._sync(state, requested_at, fresh, on_progress or (lambda _msg: None))
            except GitopsdError as exc:
                outcome = await self._fail(state, exc, requested_at)
        outcome = Outcome(**{**_fields(outcome), "duration": time.monotonic() - started, "status": state.status})
        self._report(env, outcome)
        return outcome

    # -- the happy path --------------------------------------------------------------------

    async def _sync(
        self, state: _State, requested_at: str | None, fresh: bool, progress: Callable[[str], None]
    ) -> Outcome:
        env = state.env
        spec, now = env.spec, environments.now_rfc3339()
        creds = await self._credentials(env)
        revision = await self.sources.resolve(spec.source, creds, max_age=0.0 if fresh else self.ls_remote_max_age)
        new_revision = str(revision) != env.status.get("lastAppliedRevision")
        spec_changed = env.generation != env.status.get("observedGeneration")
        was_ready = status.is_true(env.status, status.READY)
        if new_revision or spec_changed:
            if str(revision) != env.status.get("lastAttemptedRevision") or spec_changed:
                self._announce(env, "deploy.started", revision, "Progressing", f"Deploying {revision}")
            progress(f"applying {revision}")
            await self._write_status(
                state, status.progressing(state.status, env.generation, str(revision), f"Applying {revision}", now)
            )
        manifests = await self._render(env, revision, creds)

        previous = Inventory.from_status(env.status.get("inventory") or {})
        memo = self._memos.setdefault(env.uid, ApplyMemo())
        options = ApplyOptions(owner=env.key, prune=spec.prune, allow_empty=spec.allow_empty, force=spec.force)
        try:
            result = await self.applier.sync(manifests, previous, options, memo)
        except PruneFailed as exc:
            # Everything else was applied: record that, and say what could not be deleted.
            inventory = exc.result.inventory.to_status()
            new_status = status.failed(
                state.status, env.generation, exc.reason, exc.message, now,
                stalled=True, attempted=str(revision), applied=str(revision), inventory=inventory,
            )  # fmt: skip
            if await self._warn_once(env, exc.reason, exc.message):
                self._announce(env, "deploy.failed", revision, exc.reason, exc.message)
            await self._write_status(state, status.handled(new_status, requested_at))
            return Outcome("failed", revision, error=exc)
        if result.empty_render:
            hint = "set spec.allowEmpty to prune everything"
            raise GitopsdError(f"{revision}: {EMPTY_RENDER}; {hint}", reason="EmptyRender")
        changed, pruned, drift = _counts(result)
        touched = bool(changed or pruned or drift)
        for action, n in _actions(result).items():
            self.metrics.objects_applied.labels(env.key, action).inc(n)
        self.metrics.objects_pruned.labels(env.key).inc(pruned)
        self.metrics.drift_corrected.labels(env.key).inc(drift)
        self.metrics.inventory_objects.labels(env.key).set(len(result.inventory.entries))

        health: HealthReport | None = None
        if spec.wait_timeout > 0 and (touched or new_revision or spec_changed or not was_ready):
            # Nothing moved since a failed health check: look once, don't wait the whole timeout again.
            timeout = spec.wait_timeout if (touched or new_revision or spec_changed) else 0.0
            progress(f"waiting up to {timeout:.0f}s for {len(result.inventory.entries)} objects to become ready")
            health = await self.applier.wait(result.inventory, timeout, owner=env.key)

        inventory = result.inventory.to_status()
        if health is not None and not health.healthy:
            message = f"Health check failed for {revision}: {health.message}"
            new_status = status.failed(
                state.status, env.generation, "HealthCheckFailed", message, now,
                stalled=False, attempted=str(revision), applied=str(revision), inventory=inventory,
            )  # fmt: skip
            if await self._warn_once(env, "HealthCheckFailed", message):
                self._announce(env, "health.failed", revision, "HealthCheckFailed", message)
            await self._write_status(state, status.handled(new_status, requested_at))
            return Outcome("failed", revision, changed, pruned, drift, health=health, error=None)

        message = f"Applied revision: {revision}"
        if drift:
            message += f"; corrected drift in {_drift_names(result)}"
        new_status = status.succeeded(state.status, env.generation, str(revision), inventory, message, now)
        await self._write_status(state, status.handled(new_status, requested_at))
        if new_revision or spec_changed or not was_ready:
            self._announce(env, "deploy.succeeded", revision, "ReconciliationSucceeded", message)
        if touched:
            summary = f"{revision}: {changed} changed, {pruned} pruned"
            await self.recorder.record(_involved(env), "Normal", "ReconciliationSucceeded", f"Applied {summary}")
        if drift:
            restored = f"Restored what was changed by hand: {_drift_names(result)}"
            await self.recorder.record(_involved(env), "Warning", "DriftCorrected", restored)
        return Outcome("applied" if touched else "unchanged", revision, changed, pruned, drift, health=health)

    async def _credentials(self, env: Environment) -> Credentials | None:
        return await load_credentials(self.kube, env)

    async def _render(self, env: Environment, revision: Revision, creds: Credentials | None) -> list[Manifest]:
        key = (revision.commit, env.generation)
        cached = self._renders.get(env.uid)
        if cached is not None and cached.key == key:
            return cached.manifests
        tree = await self.sources.tree(env.spec.source, creds, revision)
        await self.kube.discovery.ensure()
        options = RenderOptions(
            path=env.spec.source.path,
            environment=env.name,
            revision=revision,
            substitute=env.spec.substitute,
            target_namespace=env.spec.target_namespace,
            kustomize_timeout=self.kustomize_timeout,
        )
        try:
            manifests = await asyncio.to_thread(render, tree, options, self.kube.discovery.scopes())
        except UnknownKind:
            # Maybe a CRD established since discovery was cached: look once more, then believe it.
            await self.kube.discovery.refresh(force=False)
            manifests = await asyncio.to_thread(render, tree, options, self.kube.discovery.scopes())
        self._renders[env.uid] = _Cached(key, manifests)
        return manifests

    # -- failures --------------------------------------------------------------------------

    async def _fail(self, state: _State, exc: GitopsdError, requested_at: str | None) -> Outcome:
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
        await self.recorder.record(_involved(env), "Warning", reason, message)
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

    async def _write_status(self, state: _State, new_status: dict[str, Any]) -> None:
        if new_status == state.status:
            return
        await environments.write_status(self.kube, state.env.namespace, state.env.name, new_status)
        state.status = new_status

    def _report(self, env: Environment, outcome: Outcome) -> None:
        self.metrics.reconcile_duration.labels(env.key).observe(outcome.duration)
        self.metrics.reconcile_total.labels(env.key, outcome.result).inc()
        fields: dict[str, Any] = {
            "environment": env.key,
            "revision": str(outcome.revision) if outcome.revision else None,
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


async def load_credentials(kube: Kube, env: Environment) -> Credentials | None:
    """The Git credentials named by ``spec.source.secretRef`` (None when it names none)."""
    name = env.spec.source.secret_name
    if not name:
        return None
    try:
        secret = await kube.get(SECRETS.path(env.namespace, name))
    except NotFound:
        raise GitopsdError(
            f"spec.source.secretRef: Secret {env.namespace}/{name} not found", reason="SecretNotFound"
        ) from None
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    return Credentials.from_secret(data, f"{env.namespace}/{name}")


def _involved(env: Environment) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": env.name, "namespace": env.namespace, "uid": env.uid},
    }


def _fields(outcome: Outcome) -> dict[str, Any]:
    return {name: getattr(outcome, name) for name in Outcome.__dataclass_fields__}


def _counts(result: SyncResult) -> tuple[int, int, int]:
    return result.changed_count, result.pruned_count, result.drift_count


def _actions(result: SyncResult) -> dict[str, int]:
    return result.action_counts()


def _drift_names(result: SyncResult) -> str:
    names = [str(ref) for ref in result.drifted()]
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
