"""When the Environments of a remote cluster (``gitopsd.clusters``) run again, as the daemon decides it.

- A run that found its cluster unreachable (a transient ``ClusterUnreachable``) is retried after
  2, 4, 8 … s, at most its interval, instead of at its interval: short outages cost little.
- When the cluster answers again (its breaker closes: ``Registry`` calls ``recovered``), its
  Environments are queued at once, not at their next backoff.
- When a kubeConfig Secret changes (rotated credentials, a fixed server address; the daemon's
  ``SecretWatch`` sees it within a second: ``secret_changed``), the Environments that name it
  are queued at once; their run builds a new target from the new kubeconfig. An Environment
  waiting out a backoff, or Stalled on a bad kubeconfig, needs no other change to recover.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import structlog

from gitopsd.clusters import ClusterUnreachable, cluster_key
from gitopsd.errors import SpecError
from gitopsd.spec import Environment, parse_environment

log = structlog.get_logger("gitopsd.daemon")

#: ``namespace/name`` and raw object of every Environment the daemon reconciles.
Environments = Callable[[], Iterable[tuple[str, dict[str, Any]]]]


class RemoteClusters:
    """Backoff and wake-ups of remote-cluster Environments; ``queue(key)`` asks for a run now."""

    def __init__(self, environments: Environments, queue: Callable[[str], None]) -> None:
        self.environments = environments
        self.queue = queue
        self._unreachable: dict[str, int] = {}  # Environments whose cluster did not answer, and how often

    def backoff(self, key: str, env: Environment, error: BaseException | None) -> float | None:
        """The delay (before jitter) until ``key`` runs again when ``error`` says its cluster did not
        answer; None when it did (the usual interval applies, and the backoff starts over)."""
        if isinstance(error, ClusterUnreachable) and error.transient:
            failures = self._unreachable[key] = self._unreachable.get(key, 0) + 1
            return min(env.spec.interval, 2.0**failures)
        self._unreachable.pop(key, None)
        return None

    def forget(self, key: str) -> None:
        self._unreachable.pop(key, None)

    def recovered(self, cluster: str) -> None:
        """``cluster`` (``namespace/secret``) answers again: its Environments converge now."""
        namespace = cluster.partition("/")[0]
        self._wake(lambda env: cluster_key(env) == cluster, namespace, "cluster reachable again", cluster)

    def secret_changed(self, namespace: str, name: str) -> None:
        """Secret ``namespace/name`` was changed, created or deleted: the Environments whose
        ``spec.kubeConfig`` names it run now (other Secrets, Git credentials, wait for their interval)."""

        def names_it(env: Environment) -> bool:
            ref = env.spec.kube_config
            return ref is not None and ref.name == name and env.namespace == namespace

        self._wake(names_it, namespace, "kubeConfig Secret changed", f"{namespace}/{name}")

    def _wake(self, chosen: Callable[[Environment], bool], namespace: str, why: str, cluster: str) -> None:
        """Queue the Environments of ``namespace`` that are ``chosen`` (a kubeconfig Secret is
        read in the Environment's own namespace, so no other namespace's can name it)."""
        woken = []
        for key, obj in self.environments():
            if (obj.get("metadata") or {}).get("namespace") != namespace:
                continue
            try:
                env = parse_environment(obj)
            except SpecError:
                continue
            if chosen(env):
                self._unreachable.pop(key, None)
                self.queue(key)
                woken.append(key)
        if woken:
            log.info(f"{why}: queueing its Environments", cluster=cluster, environments=len(woken))
