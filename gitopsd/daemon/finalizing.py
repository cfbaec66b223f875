"""Deleted Environments holding ``gitopsd.dev/prune``: their objects deleted where they were deployed.

``finalizer`` does the work; here is what the daemon adds: the cluster to delete on (an
Environment with ``spec.kubeConfig`` deployed into its target, reached through the same
registry as its syncs), and retries with backoff (2, 4, 8 … s, at most ``FINALIZE_RETRY_MAX``)
while a delete fails.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import structlog

from gitopsd import finalizer
from gitopsd.clusters.registry import Registry
from gitopsd.daemon.settings import FINALIZE_RETRY_MAX
from gitopsd.errors import GitopsdError, SpecError
from gitopsd.events import EventRecorder
from gitopsd.kube import KubeAPI
from gitopsd.spec import parse_environment
from gitopsd.tenancy import Tenancy

log = structlog.get_logger("gitopsd.daemon")


class Finalizing:
    """Finalizes Terminating Environments, counting each one's failed tries for its backoff."""

    def __init__(
        self, kube: KubeAPI, recorder: EventRecorder, clusters: Registry, *, concurrency: int, tenancy: Tenancy
    ) -> None:
        self.kube = kube
        self.recorder = recorder
        self.clusters = clusters
        self.concurrency = concurrency
        self.tenancy = tenancy
        self._failures: dict[str, int] = {}  # Terminating Environments whose cleanup failed, and how often

    async def run(self, key: str, obj: dict[str, Any]) -> float | None:
        """Finish a deleted Environment (see ``finalizer``); the delay until the next try while it fails."""
        if not finalizer.holds(obj):
            return None  # not ours to finish: it goes by itself
        meta = obj.get("metadata") or {}
        try:
            async with self.target_of(obj) as target:  # its objects are where it deployed them
                done = await finalizer.finalize(
                    self.kube,
                    self.recorder,
                    str(meta.get("namespace")),
                    str(meta.get("name")),
                    concurrency=self.concurrency,
                    tenancy=self.tenancy,
                    target=target,
                )
        except GitopsdError as exc:
            log.warning("finalize failed", environment=key, error=exc.message)
            done = finalizer.Finalized(False)
        if done.done:
            self._failures.pop(key, None)
            return None
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        return min(2.0**failures, FINALIZE_RETRY_MAX)

    def forget(self, key: str) -> None:
        """``key`` is gone: its count of failures with it."""
        self._failures.pop(key, None)

    @contextlib.asynccontextmanager
    async def target_of(self, obj: dict[str, Any]) -> AsyncIterator[KubeAPI | None]:
        """The client of the remote cluster ``obj`` deploys into (None: this one)."""
        try:
            env = parse_environment(obj)
        except SpecError:
            env = None
        if env is None or env.spec.kube_config is None:
            yield None
            return
        target = await self.clusters.acquire(env)
        try:
            yield target.kube
        finally:
            self.clusters.release(target)
