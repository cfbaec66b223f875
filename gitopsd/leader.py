"""Leader election on a ``coordination.k8s.io/v1`` Lease: one replica reconciles, the others stand by.

The algorithm is client-go's (``tools/leaderelection``), so it behaves the way Kubernetes
operators know:

- A candidate reads the Lease every ``retry_period``. It may take the Lease when nobody holds
  it, or when the holder's record has not changed for ``leaseDurationSeconds`` *as measured on
  the candidate's own clock* since it first saw that record (clocks of different machines are
  never compared).
- Every write is an update with the ``resourceVersion`` just read (optimistic concurrency):
  of two candidates writing at once, one gets 409 Conflict and stays a standby.
- The leader renews every ``retry_period``; if no renewal succeeded for ``renew_deadline``
  (shorter than the lease duration, so it stops before anyone else may start) it has lost
  the lease: :meth:`LeaderElector.keep` raises :class:`LeadershipLost` and the daemon stops
  its work at once and exits non-zero (like controller-runtime), to come back as a standby.
- On a clean shutdown the leader releases the Lease (``holderIdentity`` cleared,
  ``leaseDurationSeconds: 1``, as client-go's ``ReleaseOnCancel``), so a standby takes over on
  its next retry instead of waiting out the lease. After ``kill -9`` it takes over once the
  lease duration has passed.

The leader also records its webhook URL in the annotation ``gitopsd.dev/webhook-url``, which
standbys use to forward webhook requests they receive.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from gitopsd.aio import wait_set
from gitopsd.errors import GitopsdError
from gitopsd.kube import Conflict, KubeAPI, KubeError, NotFound, Resource

log = structlog.get_logger("gitopsd.leader")

LEASES = Resource("coordination.k8s.io", "v1", "Lease", "leases", namespaced=True)
URL_ANNOTATION = "gitopsd.dev/webhook-url"
_JITTER = 1.2  # client-go's JitterFactor: retries spread over [period, 1.2 period]


class LeadershipLost(GitopsdError):
    reason = "LeadershipLost"


def default_identity() -> str:
    """``$POD_NAME`` in a pod, else ``hostname_pid`` (unique per process on one machine)."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}_{os.getpid()}"


@dataclass(frozen=True, slots=True)
class LeaseSettings:
    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    webhook_url: str | None = None  # advertised to standbys


class Elector(Protocol):
    """What the daemon needs of leader election (``LeaderElector``, or ``NoElection`` when it is off)."""

    is_leader: bool
    holder: str | None
    leader_url: str | None

    @property
    def identity(self) -> str: ...

    async def acquire(self, stop: asyncio.Event) -> bool: ...

    async def keep(self, stop: asyncio.Event) -> None: ...

    async def release(self) -> None: ...


class NoElection:
    """Leadership when election is off: always the leader, nothing to renew or release."""

    is_leader = True
    identity = "single"
    leader_url: str | None = None
    holder: str | None = None

    async def acquire(self, stop: asyncio.Event) -> bool:
        return not stop.is_set()

    async def keep(self, stop: asyncio.Event) -> None:
        await stop.wait()

    async def release(self) -> None:
        return None


class LeaderElector:
    def __init__(self, kube: KubeAPI, settings: LeaseSettings) -> None:
        self.kube = kube
        self.settings = settings
        self.is_leader = False
        self.holder: str | None = None
        self.leader_url: str | None = None
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._observed_duration = 0.0
        self._path = LEASES.path(settings.namespace, settings.name)

    @property
    def identity(self) -> str:
        return self.settings.identity

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this process holds the Lease (True), or until ``stop`` is set (False)."""
        announced = None
        while not stop.is_set():
            if await self._attempt():
                log.info("became leader", lease=self._where(), identity=self.identity)
                return True
            if self.holder != announced:
                announced = self.holder
                log.info("standing by", lease=self._where(), leader=self.holder, identity=self.identity)
            await _sleep(stop, self.settings.retry_period * random.uniform(1.0, _JITTER))  # noqa: S311
        return False

    async def keep(self, stop: asyncio.Event) -> None:
        """Renew until ``stop`` is set; raise :class:`LeadershipLost` when renewal fails for the deadline."""
        renewed = time.monotonic()
        while not stop.is_set():
            await _sleep(stop, self.settings.retry_period)
            if stop.is_set():
                return
            if await self._attempt():
                renewed = time.monotonic()
                continue
            if self.holder not in (None, self.identity):
                raise LeadershipLost(f"Lease {self._where()} was taken by {self.holder}")
            if time.monotonic() - renewed > self.settings.renew_deadline:
                deadline = self.settings.renew_deadline
                raise LeadershipLost(f"Lease {self._where()} not renewed for {deadline:g}s (the renew deadline)")

    async def release(self) -> None:
        """Give the Lease up so a standby takes over at once (only if we still hold it)."""
        if not self.is_leader:
            return
        self.is_leader = False
        try:
            lease = await asyncio.wait_for(self.kube.get(self._path), timeout=self.settings.renew_deadline)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            now = _micro_time()
            lease["spec"] = {
                "holderIdentity": None,
                "leaseDurationSeconds": 1,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": spec.get("leaseTransitions") or 0,
            }
            (lease["metadata"].get("annotations") or {}).pop(URL_ANNOTATION, None)
            await asyncio.wait_for(self.kube.replace(self._path, lease), timeout=self.settings.renew_deadline)
            log.info("released leadership", lease=self._where(), identity=self.identity)
        except (KubeError, TimeoutError) as exc:
            log.warning("Lease not released; a standby takes over when it expires", error=str(exc) or "timeout")

    # -- one try ---------------------------------------------------------------------------

    async def _attempt(self) -> bool:
        try:
            return await asyncio.wait_for(self._try_acquire_or_renew(), timeout=self.settings.renew_deadline)
        except (KubeError, TimeoutError) as exc:
            log.warning("Lease not read or written", lease=self._where(), error=str(exc) or "timeout")
            return False

    async def _try_acquire_or_renew(self) -> bool:
        now = _micro_time()
        try:
            lease = await self.kube.get(self._path)
        except NotFound:
            return await self._create(now)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or None
        record = (holder, spec.get("leaseDurationSeconds"), spec.get("renewTime"), spec.get("acquireTime"))
        if record != self._observed:
            self._observed = record
            self._observed_at = time.monotonic()
            self._observed_duration = float(spec.get("leaseDurationSeconds") or 0)
        self._note(holder, lease)
        if holder and holder != self.identity and time.monotonic() < self._observed_at + self._observed_duration:
            self.is_leader = False
            return False  # held by someone else, and not expired as far as we have seen
        transitions = int(spec.get("leaseTransitions") or 0)
        lease["spec"] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": math.ceil(self.settings.lease_duration),
            "acquireTime": spec.get("acquireTime") if holder == self.identity else now,
            "renewTime": now,
            "leaseTransitions": transitions if holder == self.identity else transitions + 1,
        }
        self._annotate(lease)
        try:
            # The body carries metadata.resourceVersion: the update fails if anyone wrote since.
            updated = await self.kube.replace(self._path, lease)
        except Conflict:
            self.is_leader = False
            return False
        return self._won(updated)

    async def _create(self, now: str) -> bool:
        lease: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.settings.name,
                "namespace": self.settings.namespace,
                "labels": {"app.kubernetes.io/name": "gitopsd"},
            },
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": math.ceil(self.settings.lease_duration),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        self._annotate(lease)
        try:
            created = await self.kube.create(LEASES.path(self.settings.namespace), lease)
        except Conflict:  # AlreadyExists: another candidate created it first
            return False
        return self._won(created)

    def _won(self, lease: dict[str, Any]) -> bool:
        spec = lease.get("spec") or {}
        self._observed = (
            spec.get("holderIdentity"), spec.get("leaseDurationSeconds"), spec.get("renewTime"), spec.get("acquireTime")
        )  # fmt: skip
        self._observed_at = time.monotonic()
        self._observed_duration = float(spec.get("leaseDurationSeconds") or 0)
        self._note(self.identity, lease)
        self.is_leader = True
        return True

    def _annotate(self, lease: dict[str, Any]) -> None:
        annotations = lease["metadata"].setdefault("annotations", {}) or {}
        lease["metadata"]["annotations"] = annotations
        if self.settings.webhook_url:
            annotations[URL_ANNOTATION] = self.settings.webhook_url
        else:
            annotations.pop(URL_ANNOTATION, None)

    def _note(self, holder: str | None, lease: dict[str, Any]) -> None:
        self.holder = holder
        annotations = (lease.get("metadata") or {}).get("annotations") or {}
        self.leader_url = annotations.get(URL_ANNOTATION) if holder else None

    def _where(self) -> str:
        return f"{self.settings.namespace}/{self.settings.name}"


def _micro_time() -> str:
    """metav1.MicroTime: RFC 3339 with microseconds, UTC."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    await wait_set(stop, seconds)
