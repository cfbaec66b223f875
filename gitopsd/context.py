"""What one reconcile works on (``RunContext``) and the services every reconcile shares (``Services``).

The reconcile core is split by concern — ``reconcile`` (what to do this time), ``rollout``
(apply one release and judge it), ``rollback`` (restore, hold), ``promotion`` (the guard),
``gates.runner``/``gates.conclude`` (verification) — and every one of them takes a
``RunContext``: the Environment, the status being built, its release ledger, the request that
started the run and where progress goes. None of them sees the ``Reconciler``, so imports
point one way::

    reconcile → gates.runner → gates.conclude → rollback → rollout → context
    reconcile → promotion → rollout

**Status.** ``ctx.status`` is the status as this run wants it. ``ctx.stage(new)`` only
changes it; ``ctx.write_status(new)`` also writes it when it differs from what the server
holds. Writes that must reach the server before the next step (write-order step 3: the
inventory that covers an apply, before the apply) use ``write_status``; everything else stages,
and the reconcile ends with one ``flush``. A run that changes nothing writes nothing.

**Source.** ``Source`` is the port to Git and the renderer (``resolve`` a revision, ``render``
it), so the decision tree runs in unit tests on an in-memory source and Kubernetes fake.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol

from gitopsd import environments
from gitopsd.apply import Applier, ApplyMemo
from gitopsd.clusters import IN_CLUSTER, KubeConfigInvalid, cluster_name
from gitopsd.clusters.registry import Registry
from gitopsd.clusters.target import Target
from gitopsd.events import EventRecorder, EventType
from gitopsd.gates.memory import Memory
from gitopsd.gates.prometheus import Connection, HttpPrometheus, Prometheus
from gitopsd.kube import KubeAPI
from gitopsd.lifecycle import Announcer, LifecycleEvent
from gitopsd.lifecycle import EventType as LifecycleType
from gitopsd.metrics import Metrics
from gitopsd.model import Manifest, Revision
from gitopsd.outcome import Aside, involved, stay
from gitopsd.releases import Ledger, Ledgers, Owner
from gitopsd.releases.store import Listing
from gitopsd.sources import redact_url
from gitopsd.spec import Environment
from gitopsd.status import READY, Status, checked, condition
from gitopsd.tenancy import Tenancy

Progress = Callable[[str], None]
#: Opens a Prometheus client for one gate step (tests give an in-memory one).
PrometheusOpener = Callable[[Connection], AbstractAsyncContextManager[Prometheus]]


def _open_http(connection: Connection) -> AbstractAsyncContextManager[Prometheus]:
    return HttpPrometheus.open(connection)


@dataclass(frozen=True, slots=True)
class Resolved:
    """A source revision and what was needed to reach it (credentials), for the render that follows."""

    revision: Revision
    access: Any = None


class Source(Protocol):
    """Where an Environment's desired objects come from: Git and the renderer, or a fake in tests."""

    async def resolve(self, env: Environment, *, fresh: bool) -> Resolved:
        """The revision the Environment's source points at now (``fresh``: ask the remote, no cache)."""
        ...

    async def render(
        self, env: Environment, resolved: Resolved, *, cluster: KubeAPI | None = None
    ) -> tuple[Sequence[Manifest], str]:
        """The objects at ``resolved`` and their digest (the release identity). What the render asks
        of a cluster (which kinds are namespaced, Helm's version and API versions) it asks of
        ``cluster``, the one the objects go to (None: the management cluster)."""
        ...

    def forget(self, uid: str) -> None:
        """Drop what is remembered about a deleted Environment."""
        ...


@dataclass(slots=True)
class Services:
    """What every reconcile shares: the management cluster (``kube``: Environments, status,
    Events), its own target's parts (``applier``, ``ledgers``, memos) and the remote targets
    (``clusters``: see ``gitopsd.clusters``)."""

    kube: KubeAPI
    source: Source
    recorder: EventRecorder
    metrics: Metrics
    announcer: Announcer
    clock: Callable[[], datetime]
    applier: Applier
    ledgers: Ledgers
    gates: Memory = field(default_factory=Memory)
    prometheus: PrometheusOpener = _open_http
    memos: dict[str, ApplyMemo] = field(default_factory=dict)
    tenancy: Tenancy = field(default_factory=Tenancy)
    appliers: dict[str, Applier] = field(default_factory=dict)
    #: The remote targets (None: every Environment deploys in-cluster; one with kubeConfig fails).
    clusters: Registry | None = None
    local: Target = field(init=False)
    #: The target of each Environment's run in progress (by uid), for ``memo``.
    running: dict[str, Target] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.local = Target(IN_CLUSTER, self.kube, self.applier, self.ledgers, self.memos, self.appliers)

    def identity(self, env: Environment) -> str | None:
        """The user ``env``'s writes impersonate (None: gitopsd's own identity)."""
        return self.tenancy.user(env.namespace, env.spec.service_account_name)

    def applier_for(self, env: Environment) -> Applier:
        """The in-cluster applier acting as ``env``'s ServiceAccount (one per identity, sharing the cache)."""
        self.local.applier = self.applier  # tests swap it
        return self.local.applier_for(self.identity(env))

    def memo(self, uid: str, identity: str | None = None) -> ApplyMemo:
        """The applier's memory of what it last applied for Environment ``uid`` as ``identity``, kept
        by the target its run uses (a new identity starts empty: every object is dry-run again as it)."""
        return self.running.get(uid, self.local).memo(uid, identity)

    async def acquire(self, env: Environment) -> Target:
        """``env``'s target, for one run (``release`` it after)."""
        self.local.applier = self.applier  # tests swap it
        target = await self.acquire_other(env)
        self.running[env.uid] = target
        return target

    def release(self, env: Environment, target: Target) -> None:
        if self.running.get(env.uid) is target:
            del self.running[env.uid]
        if target is not self.local and self.clusters is not None:
            self.clusters.release(target)

    async def scan(self, env: Environment, owner: Owner) -> Listing:
        """``env``'s release records, read on its target (the promotion guard reads another Environment's)."""
        target = await self.acquire_other(env)
        try:
            return await target.ledgers.store.scan(owner)
        finally:
            if target is not self.local and self.clusters is not None:
                self.clusters.release(target)

    async def acquire_other(self, env: Environment) -> Target:
        """``env``'s target, without marking it as ``env``'s run (see ``acquire``)."""
        if env.spec.kube_config is None:
            return self.local
        if self.clusters is None:
            raise KubeConfigInvalid(f"{env.key}: spec.kubeConfig is not supported here (no cluster registry)")
        return await self.clusters.acquire(env)

    def forget(self, uid: str) -> None:
        self.local.forget(uid)
        if self.clusters is not None:
            self.clusters.forget(uid)
        self.source.forget(uid)


def _quiet(_message: str) -> None:
    return None


@dataclass(slots=True)
class RunContext:
    """One reconcile of one Environment: what it works on, and how it writes status and tells people."""

    services: Services
    env: Environment
    status: Status
    requested_at: str | None = None
    progress: Progress = _quiet
    aside: Aside = stay
    ledger_: Ledger | None = None
    target_: Target | None = None

    @classmethod
    def start(
        cls,
        services: Services,
        env: Environment,
        *,
        requested_at: str | None = None,
        progress: Progress | None = None,
        aside: Aside = stay,
    ) -> RunContext:
        return cls(services, env, dict(env.status), requested_at, progress or _quiet, aside)

    @property
    def target(self) -> Target:
        """The cluster this run deploys into (``gitopsd.clusters``), resolved once per run."""
        if self.target_ is None:  # only a run that never resolved it (a bug): never guess a cluster
            raise RuntimeError(f"{self.env.key}: the run's target cluster was not resolved")
        return self.target_

    @property
    def applier(self) -> Applier:
        """The target's applier acting as this Environment's ServiceAccount (see ``gitopsd.tenancy``)."""
        return self.target.applier_for(self.services.identity(self.env))

    def memo(self) -> ApplyMemo:
        """The target applier's memory of what it last applied for this Environment, as its identity."""
        return self.target.memo(self.env.uid, self.services.identity(self.env))

    @property
    def owner(self) -> Owner:
        return Owner(self.env.namespace, self.env.name, self.env.uid)

    async def ledger(self) -> Ledger:
        """The Environment's release ledger (records read once per process, then kept current)."""
        if self.ledger_ is None:
            self.ledger_ = await self.target.ledgers.of(self.owner)
        return self.ledger_

    def reload(self, env: Environment) -> None:
        """Start over from ``env`` as the server has it now (status included)."""
        self.env = env
        self.status = dict(env.status)

    # -- status ---------------------------------------------------------------------------------

    def stage(self, new_status: Status) -> None:
        """The status this run ends with so far; written by the next ``write_status`` or ``flush``."""
        self.status = new_status

    async def write_status(self, new_status: Status) -> None:
        """Make ``new_status`` the status and write it now, unless the server already has exactly it."""
        self.status = new_status
        await self.flush()

    async def flush(self) -> None:
        cluster = cluster_name(self.env)
        if self.status.get("cluster") != cluster:
            self.status = {**self.status, "cluster": cluster}
        if self.status == dict(self.env.status):  # what was last written (or read)
            return
        written = checked(self.status)
        await environments.write_status(self.services.kube, self.env.namespace, self.env.name, written)
        self.env = replace(self.env, status=MappingProxyType(dict(self.status)))

    # -- telling people -------------------------------------------------------------------------

    async def event(self, type_: EventType, reason: str, message: str) -> None:
        """A Kubernetes Event on the Environment."""
        await self.services.recorder.record(involved(self.env), type_, reason, message)

    async def warn_once(self, reason: str, message: str) -> bool:
        """A Warning Event unless Ready already said exactly this; True when posted (a transition)."""
        old = condition(self.env.status, READY)
        if old and old.get("reason") == reason and old.get("message") == message:
            return False
        await self.event("Warning", reason, message)
        return True

    def announce(self, type_: LifecycleType, revision: Revision | None, reason: str, message: str) -> None:
        """A lifecycle event for notifications (Slack, webhooks, commit status)."""
        env = self.env
        previous = env.status.get("lastAppliedRevision")
        self.services.announcer.announce(
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
                source_url=redact_url(env.spec.source.url),
                release=env.status.get("release"),
            )
        )
