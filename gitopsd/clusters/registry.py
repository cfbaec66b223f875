"""One ``Target`` per kubeconfig Secret, built on first use, rebuilt when the Secret changes, closed when idle.

``acquire(env)`` reads ``spec.kubeConfig.secretRef`` through the daemon's ``SecretWatch`` (a
watch by name: no request per reconcile, and a rotated Secret is seen within a second), and
compares what the kubeconfig holds with what the current target was built from. Unchanged: the
same target. Changed: a new target (new connection pool, breaker, watch cache, appliers); the
old one is closed once the runs using it end (``release``). A target no run used for ``idle``
seconds is closed and dropped.

**Release records** of an Environment that deploys into another cluster are written there,
next to what they restore: in the namespace of the same name as the Environment's namespace
(``records_namespace``), labelled with the Environment's name as everywhere. So records stay
keyed by the Environment's namespace/name: a rollback needs only the target, and another
gitopsd that later drives the target with an Environment of the same namespace/name finds
them. (``targetNamespace`` was not chosen: two Environments of one name from two namespaces may
share it.) That namespace must exist on the target; when it does not, the run stops with
``RecordsNamespaceMissing`` naming the cluster and the namespace (nothing is applied).

**Signing.** Records on a target are signed with a key kept on that target (Secret
``gitopsd-release-signing`` in its ``gitopsd-system`` namespace, created on first use), not the
management cluster's: any gitopsd given the target's credentials can check them, while a
tenant who may write Secrets only in its own namespace still cannot forge one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from gitopsd.apply import Applier
from gitopsd.clusters import WHERE, cluster_key, records_namespace
from gitopsd.clusters.breaker import Breaker, State
from gitopsd.clusters.errors import KubeConfigInvalid
from gitopsd.clusters.kube import TargetKube, refused
from gitopsd.clusters.kubeconfig import parse, pick_key
from gitopsd.clusters.liveness import Liveness
from gitopsd.clusters.records import TargetStore
from gitopsd.clusters.target import Target
from gitopsd.errors import GitopsdError
from gitopsd.kube import Conflict, Forbidden, KubeAPI, NotFound
from gitopsd.kube.client import Kube
from gitopsd.kube.config import Connection
from gitopsd.kube.secrets import SecretNotFound
from gitopsd.kube.secretwatch import SecretReader
from gitopsd.kube.watchcache import WatchCache
from gitopsd.model import ENVIRONMENT_LABEL, FIELD_MANAGER
from gitopsd.releases import Ledgers
from gitopsd.releases.signing import INSTALL_NAMESPACE, Keyring
from gitopsd.spec import Environment

log = structlog.get_logger("gitopsd.clusters")

#: Where a target keeps its release signing key.
KEY_NAMESPACE = INSTALL_NAMESPACE
NAMESPACES = "/api/v1/namespaces"


async def _no_renewal() -> WatchCache | None:
    return None


@dataclass(frozen=True, slots=True)
class Built:
    """A target's client and watch cache, how to close them, and how to start the watches over
    (``renew``: after an outage, a watch stuck on a black-holed connection would stay silent for
    minutes). ``Registry.make`` returns it."""

    kube: KubeAPI
    cache: WatchCache | None
    close: Callable[[], Awaitable[None]]
    renew: Callable[[], Awaitable[WatchCache | None]] = _no_renewal


#: Builds the client of cluster ``name`` (its breaker given) from a connection.
Maker = Callable[[str, Connection, Breaker], Built]


class ClusterMeter(Protocol):
    """The per-cluster metrics hooks (``metrics.ClusterMetrics``)."""

    def request(self, cluster: str, seconds: float, reached: bool) -> None: ...

    def reachable(self, cluster: str, up: bool) -> None: ...

    def forget(self, cluster: str) -> None: ...


class NullMeter:
    def request(self, cluster: str, seconds: float, reached: bool) -> None:
        return None

    def reachable(self, cluster: str, up: bool) -> None:
        return None

    def forget(self, cluster: str) -> None:
        return None


def make_target_client(name: str, connection: Connection, breaker: Breaker, meter: ClusterMeter) -> Built:
    """The real client: a breaker-guarded ``TargetKube``, and a watch cache over its own pool."""
    kube = TargetKube(connection, cluster=name, breaker=breaker, observe=lambda s, ok: meter.request(name, s, ok))

    def watches() -> tuple[Kube, WatchCache]:
        watch_client = Kube(connection, max_connections=0, connect_timeout=kube.transport.connect_timeout)
        return watch_client, WatchCache(watch_client, label=ENVIRONMENT_LABEL, field_manager=FIELD_MANAGER)

    current = [watches()]

    async def stop(watch_client: Kube, cache: WatchCache) -> None:
        await cache.close()
        await watch_client.close()

    async def renew() -> WatchCache:
        old, current[0] = current[0], watches()
        await stop(*old)
        return current[0][1]

    async def close() -> None:
        await stop(*current[0])
        await kube.close()

    return Built(kube, current[0][1], close, renew)


class Registry:
    """The targets of the Environments this daemon reconciles (see the module docstring)."""

    def __init__(
        self,
        secrets: SecretReader,
        *,
        make: Maker | None = None,
        meter: ClusterMeter | None = None,
        on_cache: Callable[[WatchCache], object] = lambda _cache: None,
        on_recovered: Callable[[str], None] = lambda _cluster: None,
        concurrency: int = 16,
        idle: float = 1800.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``on_cache``: called with each new target's watch cache (the daemon subscribes drift to
        it); ``on_recovered``: called with a cluster's name when its breaker closes again."""
        self.secrets = secrets
        self.meter: ClusterMeter = meter or NullMeter()
        self.make: Maker = make or (lambda name, conn, breaker: make_target_client(name, conn, breaker, self.meter))
        self.on_cache = on_cache
        self.on_recovered = on_recovered
        self.concurrency = concurrency
        self.idle = idle
        self._clock = clock
        self._targets: dict[str, Target] = {}
        self._retired: list[Target] = []
        self._closing: set[asyncio.Task[None]] = set()
        self._built: dict[str, Built] = {}
        self._renewing: dict[str, asyncio.Task[None]] = {}

    def targets(self) -> dict[str, Target]:
        """The live targets by cluster name."""
        return dict(self._targets)

    def breaker_of(self, cluster: str) -> Breaker | None:
        target = self._targets.get(cluster)
        return target.breaker if target is not None else None

    async def acquire(self, env: Environment) -> Target:
        """``env``'s target (built or rebuilt as needed), counted as used until ``release``.

        ``KubeConfigInvalid`` when the Secret or its kubeconfig cannot be used;
        ``ClusterUnreachable`` when its breaker is open; ``GitopsdError`` (RecordsNamespaceMissing)
        when the target has no namespace for the records.
        """
        ref = env.spec.kube_config
        if ref is None:
            raise ValueError(f"{env.key} deploys in-cluster: it has no remote target")
        self._sweep()
        name = cluster_key(env)
        try:
            secret = await self.secrets.read(env.namespace, ref.name, where=WHERE)
        except SecretNotFound as exc:
            raise KubeConfigInvalid(str(exc)) from None
        key = pick_key(secret, ref)
        raw = secret[key]
        fingerprint = hashlib.sha256(key.encode() + b"\0" + raw).hexdigest()
        target = self._targets.get(name)
        if target is None or target.fingerprint != fingerprint:
            connection = parse(raw, f"{secret.label} key {key!r}")  # KubeConfigInvalid: the old target stays
            if target is not None:
                log.info("kubeconfig Secret changed: reconnecting", cluster=name)
                self._retire(target)
            target = self._build(name, connection, fingerprint)
            self._targets[name] = target
        breaker = target.breaker
        if breaker is not None and breaker.state == "open" and breaker.retry_in() > 0:
            raise refused(name, breaker)
        target.users += 1
        target.last_used = self._clock()
        try:
            if target.liveness is not None:
                await target.liveness.check()  # an idle run asks nothing else: is it there?
            await self._check_namespace(target, records_namespace(env))
        except BaseException:
            self.release(target)
            raise
        return target

    def release(self, target: Target) -> None:
        """A run is done with ``target``."""
        target.users -= 1
        target.last_used = self._clock()
        if target.users <= 0 and target in self._retired:
            self._retired.remove(target)
            self._close_later(target)

    def forget(self, uid: str) -> None:
        for target in self._targets.values():
            target.forget(uid)

    async def close(self) -> None:
        targets = [*self._targets.values(), *self._retired]
        self._targets.clear()
        self._retired.clear()
        for target in targets:
            if target.liveness is not None:
                target.liveness.cancel()
        await asyncio.gather(*(t.close() for t in targets), return_exceptions=True)
        await asyncio.gather(*self._closing, return_exceptions=True)

    # -- building --------------------------------------------------------------------------

    def _build(self, name: str, connection: Connection, fingerprint: str) -> Target:
        breaker = Breaker(clock=self._clock, on_change=lambda state: self._changed(name, state))
        built = self.make(name, connection, breaker)
        if built.cache is not None:
            self.on_cache(built.cache)
        store = TargetStore(built.kube, keys=Keyring(built.kube, namespace=KEY_NAMESPACE))
        self._built[name] = built
        target = Target(
            name=name,
            kube=built.kube,
            applier=Applier(built.kube, cache=built.cache, concurrency=self.concurrency),
            ledgers=Ledgers(store),
            breaker=breaker,
            fingerprint=fingerprint,
            close_=built.close,
        )

        def heard() -> float | None:
            cache = target.applier.cache
            return cache.heard() if cache is not None else None

        async def renew() -> None:
            await asyncio.shield(self._renewal(name))

        target.liveness = Liveness(name, built.kube, breaker, clock=self._clock, heard=heard, renew=renew)
        self.meter.reachable(name, True)
        log.info("cluster target ready", cluster=name, server=connection.server)
        return target

    def _changed(self, name: str, state: State) -> None:
        self.meter.reachable(name, state == "closed")
        if state == "open":
            breaker = self.breaker_of(name)
            log.warning("cluster unreachable: circuit open", cluster=name, error=breaker.last_error if breaker else "")
        elif state == "closed":
            log.info("cluster reachable again", cluster=name)
            self._renewal(name)
            self.on_recovered(name)

    def _renewal(self, name: str) -> asyncio.Task[None]:
        """The renewal of ``name``'s watches in flight, or a new one (recovery and liveness share it)."""
        task = self._renewing.get(name)
        if task is None or task.done():
            task = self._renewing[name] = self._background(self._renew(name), f"renew watches of {name}")
        return task

    async def _renew(self, name: str) -> None:
        """Start the target's watches over, and have its appliers read from the new cache."""
        target, built = self._targets.get(name), self._built.get(name)
        if target is None or built is None:
            return
        cache = await built.renew()
        if cache is not None and self._targets.get(name) is target:
            self.on_cache(cache)
            target.applier.cache = cache
            target.appliers.clear()  # impersonating views hold the old cache: made again on use

    async def _check_namespace(self, target: Target, namespace: str) -> None:
        """The records' namespace (and the signing key's) exist on the target; each checked once."""
        if namespace in target.namespaces:
            return
        try:
            await target.kube.get(f"{NAMESPACES}/{namespace}")
        except NotFound:
            raise GitopsdError(
                f"cluster {target.name} has no namespace {namespace!r}: the release records of Environments of"
                f" namespace {namespace} are kept there, on the target; create it there",
                reason="RecordsNamespaceMissing",
            ) from None
        except Forbidden:
            pass  # not allowed to look: writing the records will say what is wrong
        if KEY_NAMESPACE not in target.namespaces:
            await self._ensure_key_namespace(target)
        target.namespaces.add(namespace)

    async def _ensure_key_namespace(self, target: Target) -> None:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KEY_NAMESPACE,
                "labels": {"app.kubernetes.io/managed-by": "gitopsd"}}}  # fmt: skip
        try:
            await target.kube.get(f"{NAMESPACES}/{KEY_NAMESPACE}")
        except NotFound:
            # Made by another meanwhile, or not ours to make: the key's write then says what is wrong.
            with contextlib.suppress(Conflict, Forbidden):
                await target.kube.create(NAMESPACES, body)
        except Forbidden:
            pass
        target.namespaces.add(KEY_NAMESPACE)

    # -- retiring --------------------------------------------------------------------------

    def _retire(self, target: Target) -> None:
        if target.users > 0:
            self._retired.append(target)
        else:
            self._close_later(target)

    def _close_later(self, target: Target) -> None:
        self._background(target.close(), f"close cluster {target.name}")

    def _background(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        return task

    def _sweep(self) -> None:
        now = self._clock()
        for name, target in list(self._targets.items()):
            if target.users <= 0 and now - target.last_used >= self.idle:
                del self._targets[name]
                self._built.pop(name, None)
                self._renewing.pop(name, None)
                self.meter.forget(name)
                self._close_later(target)


__all__ = ["Built", "ClusterMeter", "Registry", "make_target_client"]
