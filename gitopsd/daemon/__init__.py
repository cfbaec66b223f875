"""``gitopsd run``: keep every Environment reconciled, on its interval and at once on change.

Three kinds of task share one event loop:

- the **informer** (``informer``) lists the Environments and watches them (relisting when the
  watch expires or fails), keeping a local copy; a new Environment, a spec change (generation)
  or a ``gitopsd sync`` request (annotation) puts it in the queue at once;
- the **scheduler** puts each Environment in the queue when its interval (±10 % jitter, so
  Environments created together spread out) has passed since its last reconcile;
- a bounded pool of **workers** takes Environments from the queue. One Environment is
  reconciled by at most one worker at a time; asked for again meanwhile, it runs once more
  right after. A reconcile waiting on its health gate steps aside (``Slots``): up to
  ``RUNS_PER_WORKER - 1`` times ``workers`` more Environments can be polling their rollouts
  while ``workers`` of them do work.

A deleted (Terminating) Environment is never synced again. One holding the finalizer
``gitopsd.dev/prune`` is finalized instead (``finalizer``: its objects deleted, then the
finalizer removed), retried with backoff while a delete fails; a sync in flight is cut short.
One found Terminating at start (deleted while no daemon ran) is finalized the same way.

SIGTERM sets ``stop``: no new work is taken, reconciles in flight get ``shutdown_grace``
seconds to finish and are then cancelled (a cancelled sync is safe: the next one converges),
and ``run`` returns.

With leader election (``leader``), the probes and webhook ports serve from the start but the
three kinds of task only run while this process holds the Lease; a standby is ready
(``/readyz`` 200, "standby") and forwards webhooks to the leader. At SIGTERM the Lease is
released once the work has stopped; a leader that fails to renew stops its work at once and
``run`` raises ``LeadershipLost``. ``services`` (notification delivery, secret refresh) run
beside the daemon until ``stop``.

The cluster's **watch cache** (``kube.watchcache``, one per cluster, shared by every
Environment) feeds the applier's live state and health waits, and drift (``drift``): when
someone else edits a field we applied or deletes a managed object, the owning Environment is
queued at once, so the edit is reverted in seconds, not at the next interval. Each kind is
watched from the first reconcile that needs it.

Parts: ``settings`` (flags and figures), ``clusters`` (when remote-cluster Environments run
again: backoff, recovery, a rotated kubeconfig Secret), ``finalizing`` (deleted Environments),
``invalid`` (refused specs).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import structlog
from aiohttp import web

from gitopsd import environments, finalizer, probes
from gitopsd.clusters import cluster_key
from gitopsd.clusters.registry import Registry
from gitopsd.clusters.share import Shares
from gitopsd.daemon.clusters import RemoteClusters
from gitopsd.daemon.finalizing import Finalizing
from gitopsd.daemon.invalid import interval_of, report_invalid
from gitopsd.daemon.settings import INVALID_RETRY, RUNS_PER_WORKER, Service, Settings
from gitopsd.dependencies import check as dependencies
from gitopsd.drift import DriftTrigger
from gitopsd.errors import SpecError
from gitopsd.events import EventRecorder
from gitopsd.informer import Informer, Wake
from gitopsd.kube import Kube
from gitopsd.kube.secretwatch import SecretWatch
from gitopsd.kube.watchcache import WatchCache
from gitopsd.leader import Elector, LeadershipLost, NoElection
from gitopsd.lifecycle import Announcer
from gitopsd.metrics import Metrics
from gitopsd.model import ENVIRONMENT_LABEL, FIELD_MANAGER
from gitopsd.notify.subscriptions import Subscription
from gitopsd.reconcile import Reconciler
from gitopsd.sources import GitSources
from gitopsd.spec import parse_environment
from gitopsd.workqueue import Slot, Slots, WorkQueue

log = structlog.get_logger("gitopsd.daemon")


class Daemon:
    def __init__(
        self,
        kube: Kube,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        sources: GitSources | None = None,
        announcer: Announcer | None = None,
        leader: Elector | None = None,
        webhooks: Callable[[], web.Application] | None = None,
        services: Sequence[Service] = (),
        cache: WatchCache | None = None,
    ) -> None:
        """``cache``: the cluster's watch cache (default: one of our own, watching over a
        connection pool of its own so long watches never wait behind requests)."""
        self.kube = kube
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.sources = sources or GitSources(
            settings.cache_dir / "git",
            timeout=settings.git_timeout,
            on_fetch=lambda url, seconds: self.metrics.git_fetch_duration.labels(url).observe(seconds),
        )
        self._watch_client: Kube | None = None
        if cache is None:
            self._watch_client = Kube(kube.connection, max_connections=0)
            namespaces = [settings.namespace] if settings.namespace else None
            cache = WatchCache(
                self._watch_client, namespaces=namespaces, label=ENVIRONMENT_LABEL, field_manager=FIELD_MANAGER
            )
        self.cache = cache
        self.cache.subscribe(DriftTrigger(lambda key: self.trigger(key, fresh=False), self.metrics))
        self.metrics.watch_cache(self.cache.figures)
        # Git credentials (spec.source.secretRef) watched by name: an idle resolve reads memory.
        self.secrets = SecretWatch(kube, watch_client=self._watch_client)
        # Remote targets (spec.kubeConfig): kubeconfig Secrets read through the same watch by name;
        # a changed one, or a cluster answering again, queues its Environments (daemon.clusters).
        self.remote = RemoteClusters(lambda: self.informer.items(), lambda key: self._work.add(key))
        self.secrets.subscribe(self.remote.secret_changed)
        self.clusters = Registry(
            self.secrets,
            meter=self.metrics.clusters,
            on_cache=lambda target_cache: target_cache.subscribe(
                DriftTrigger(lambda key: self.trigger(key, fresh=False), self.metrics)
            ),
            on_recovered=self.remote.recovered,
        )
        self._shares = Shares(settings.cluster_share or max(1, settings.workers // 2))
        self.reconciler = Reconciler(
            kube,
            self.sources,
            EventRecorder(kube),
            self.metrics,
            cache=cache,
            secrets=self.secrets,
            tenancy=settings.tenancy,
            clusters=self.clusters,
        )
        self.finalizing = Finalizing(
            kube,
            self.reconciler.recorder,
            self.clusters,
            concurrency=self.reconciler.applier.concurrency,
            tenancy=settings.tenancy,
        )
        self.metrics.watch_statuses(self._statuses)
        if announcer is not None:
            self.reconciler.announcer = announcer
        self.leader: Elector = leader or NoElection()
        self.webhooks = webhooks
        self.services = tuple(services)
        self.webhook_port: int | None = None
        self.informer = Informer(
            kube, settings.namespace, settings.label_selector, on_observe=self._observed, on_forget=self._forgotten
        )
        self._work = WorkQueue()
        self._slots = Slots(settings.workers)
        # Waiting for a worker: queued, or taken from the queue and waiting for a slot.
        self.metrics.queue_depth.set_function(lambda: self._work.depth + self._slots.waiting)
        self._fresh: set[str] = set()
        self._busy: set[asyncio.Task[Any]] = set()  # workers in the middle of a reconcile
        self.bound_port: int | None = None

    # -- public ----------------------------------------------------------------------------

    def ready(self) -> tuple[bool, str]:
        if not self.leader.is_leader:
            return True, f"standby (leader: {self.leader.holder or 'none yet'})"
        if not self.informer.synced:
            return False, "listing Environments"
        return True, f"{len(self.informer)} Environments"

    def _statuses(self) -> list[tuple[str, dict[str, Any]]]:
        """(metrics label, status) of the Environments this replica reconciles; none on a standby."""
        if not self.leader.is_leader:
            return []
        found = []
        for _, obj in self.informer.items():
            meta = obj.get("metadata") or {}
            found.append((f"{meta.get('namespace')}.{meta.get('name')}", obj.get("status") or {}))
        return found

    def trigger(self, key: str, *, fresh: bool = True) -> bool:
        """Reconcile ``namespace/name`` as soon as a worker is free (webhooks, tests).

        ``fresh``: resolve the source with an ``ls-remote`` started after this call, shared by
        every Environment of the repository triggered together.
        """
        obj = self.informer.get(key)
        if obj is None or not self.leader.is_leader:
            return False
        if fresh:
            url = ((obj.get("spec") or {}).get("source") or {}).get("url")
            if not (isinstance(url, str) and self.sources.invalidate(url)):
                self._fresh.add(key)
        self._work.add(key)
        return True

    def synced(self) -> bool:
        return self.informer.synced and self.leader.is_leader

    def environments(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(``namespace/name``, raw object) of every Environment this daemon reconciles."""
        return iter(self.informer.items())

    def subscriptions(self, namespace: str, name: str) -> tuple[Subscription, ...]:
        """The Environment's ``spec.notify`` (for the notification dispatcher)."""
        obj = self.informer.get(f"{namespace}/{name}")
        if obj is None:
            return ()
        try:
            return parse_environment(obj).spec.notify
        except SpecError:
            return ()

    async def run(self, stop: asyncio.Event) -> None:
        runner, self.bound_port = await _serve(
            probes.app(self.metrics, self.ready), self.settings.probes_host, self.settings.probes_port
        )
        runners = [runner]
        if self.webhooks is not None:
            hooks, self.webhook_port = await _serve(
                self.webhooks(),
                self.settings.webhook_host,
                self.settings.webhook_port or 0,
                keepalive_timeout=self.settings.webhook_idle_timeout,
            )
            runners.append(hooks)
        log.info(
            "started",
            namespace=self.settings.namespace or "*",
            shard=self.settings.label_selector,
            workers=self.settings.workers,
            probes_port=self.bound_port,
            webhook_port=self.webhook_port,
            identity=self.leader.identity,
        )
        services = [asyncio.create_task(service(stop)) for service in self.services]
        lost: LeadershipLost | None = None
        try:
            if await self.leader.acquire(stop):
                lost = await self._lead(stop)
        finally:
            if lost is not None:
                stop.set()  # the services stop too; the process exits and comes back as a standby
            await self.leader.release()
            await asyncio.gather(*services, return_exceptions=True)
            await self.sources.close()
            await self.reconciler.close()  # the remote targets' connections and watches
            await self.secrets.close()
            await self.cache.close()
            if self._watch_client is not None:
                await self._watch_client.close()
            for each in runners:
                await each.cleanup()
            log.info("stopped")
        if lost is not None:
            raise lost

    async def _lead(self, stop: asyncio.Event) -> LeadershipLost | None:
        """Reconcile until ``stop`` (None) or until the Lease is lost (the error)."""
        lost: LeadershipLost | None = None
        tasks = [
            asyncio.create_task(self.informer.run(stop), name="informer"),
            asyncio.create_task(self._work.run_timer(stop), name="scheduler"),
        ]
        runs = self.settings.workers * RUNS_PER_WORKER
        workers = [asyncio.create_task(self._worker(i), name=f"worker-{i}") for i in range(runs)]
        try:
            await self.leader.keep(stop)
        except LeadershipLost as exc:
            log.error("leadership lost: stopping all work now", error=str(exc))
            lost = exc
        finally:
            log.info("stopping", in_flight=sorted(self._work.running))
            for task in tasks:
                task.cancel()
            # Without the Lease another replica may already be writing: no grace period then.
            await self._drain(workers, 0.0 if lost else self.settings.shutdown_grace)
            await asyncio.gather(*tasks, return_exceptions=True)
        return lost

    async def _drain(self, workers: list[asyncio.Task[None]], grace: float) -> None:
        # Idle workers stop now; busy ones get the grace period to finish their step.
        idle = [w for w in workers if w not in self._busy]
        for worker in idle:
            worker.cancel()
        busy = [w for w in workers if w not in idle]
        if busy:
            _, pending = await asyncio.wait(busy, timeout=grace) if grace > 0 else (set(), set(busy))
            for worker in pending:
                worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    # -- Environment changes ---------------------------------------------------------------

    def _observed(self, key: str, obj: dict[str, Any], wake: Wake) -> None:
        """The informer saw ``obj`` new or changed: do what the change asks (``informer.wake``)."""
        if wake.cancel:
            self._work.cancel(key)
        if wake.preempt:
            self.reconciler.preempt(str((obj.get("metadata") or {}).get("uid") or ""))
        if wake.fresh:
            self._fresh.add(key)
        if wake.queue:
            self._work.add(key)
        for waiting in dependencies.waiting_on(key, obj, self.informer.items()):  # spec.dependsOn
            self._work.add(waiting)

    def _forgotten(self, key: str, obj: dict[str, Any] | None) -> None:
        """The Environment ``key`` is gone: drop its work and what is remembered of it."""
        self._work.cancel(key)
        self.finalizing.forget(key)
        self.remote.forget(key)
        if obj is not None:
            with contextlib.suppress(SpecError):
                self.reconciler.forget(parse_environment(obj))

    # -- workers ---------------------------------------------------------------------------

    async def _worker(self, index: int) -> None:
        task = asyncio.current_task()
        assert task is not None
        while True:
            key = await self._work.get()
            # Busy (given the shutdown grace) only once it holds a slot: one still waiting for a
            # slot has started nothing and stops at once. The object is read when work starts.
            async with self._slots.hold() as slot:
                obj = self.informer.get(key)
                if obj is None:
                    self._work.done(key)
                    continue
                self._busy.add(task)
                try:
                    delay = await self._reconcile(key, obj, slot)
                except asyncio.CancelledError:
                    log.info("reconcile abandoned at shutdown", environment=key)
                    raise
                except Exception:  # a bug must not kill the worker or the daemon
                    log.exception("reconcile crashed", environment=key)
                    delay = INVALID_RETRY
                finally:
                    self._busy.discard(task)
            if not self._work.done(key) and key in self.informer and delay is not None:
                self._work.add_after(key, delay)

    async def _reconcile(self, key: str, obj: dict[str, Any], slot: Slot) -> float | None:
        """Reconcile one Environment; return the delay until its next regular reconcile (None: none)."""
        if finalizer.terminating(obj):
            return await self.finalizing.run(key, obj)
        try:
            env = parse_environment(obj)
        except SpecError as exc:
            await report_invalid(self.kube, self.reconciler.recorder, obj, exc)
            return interval_of(obj)
        annotations = dict(env.annotations)
        requested = annotations.get(environments.REQUESTED_AT)
        if requested == env.status.get("lastHandledReconcileAt"):
            requested = None
        fresh = key in self._fresh
        self._fresh.discard(key)
        # A remote cluster's Environments hold at most its share of the workers (gitopsd.clusters.share).
        async with self._shares.hold(cluster_key(env), slot.aside) as aside:
            outcome = await self.reconciler.reconcile(env, requested_at=requested, fresh=fresh, aside=aside)
        current = self.informer.get(key)
        if current is not None and current.get("metadata", {}).get("uid") == env.uid:
            current["status"] = outcome.status  # until the watch brings our own write back
        jitter = 1 + random.uniform(-self.settings.jitter, self.settings.jitter)  # noqa: S311
        backoff = self.remote.backoff(key, env, outcome.error)  # its cluster did not answer
        if backoff is not None:
            return backoff * jitter
        if outcome.requeue_after is not None:  # a verification sample is due sooner
            return min(env.spec.interval * jitter, outcome.requeue_after)
        return env.spec.interval * jitter


async def _serve(app: web.Application, host: str, port: int, **options: Any) -> tuple[web.AppRunner, int | None]:
    runner = web.AppRunner(app, access_log=None, **options)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = getattr(site, "_server", None)
    bound = server.sockets[0].getsockname()[1] if server is not None and server.sockets else None
    return runner, bound


__all__ = ["RUNS_PER_WORKER", "Daemon", "Service", "Settings"]
