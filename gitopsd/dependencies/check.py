"""Are an Environment's dependencies Ready? Asked before each reconcile renders anything.

A dependency is ready when it has done what it was last asked: ``Ready`` True for its current
generation (``observedGeneration == generation``), the revision it attempted is the one it
applied (``lastAppliedRevision == lastAttemptedRevision``) and no revision is held. Until then
the dependent is not reconciled at all (nothing rendered, applied or pruned), and its Ready
condition says ``AwaitingDependencies``, naming each dependency not ready and why; Flux's
``dependsOn`` waits the same way. The daemon queues a waiting Environment again as soon as a
dependency it names turns ready (``waiting_on``), and on its interval otherwise.

A cycle through this Environment (``a → b → a``) is refused by name and makes it Stalled: the
walk follows ``spec.dependsOn`` of each dependency as the API server has it now, at most
``MAX_WALK`` Environments deep.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gitopsd import environments
from gitopsd.context import RunContext
from gitopsd.errors import GitopsdError
from gitopsd.kube import KubeAPI, NotFound

AWAITING = "AwaitingDependencies"
CYCLE = "DependencyCycle"
#: Environments a cycle search reads at most (each one GET).
MAX_WALK = 100


class AwaitingDependencies(GitopsdError):
    """A dependency is missing or not Ready yet: retried (Reconciling), not Stalled."""

    reason = AWAITING
    transient = True


class DependencyCycle(GitopsdError):
    """``spec.dependsOn`` leads back to this Environment: Stalled until a person breaks the cycle."""

    reason = CYCLE


async def check(ctx: RunContext) -> None:
    """Return when every dependency is ready; raise ``AwaitingDependencies`` or ``DependencyCycle``."""
    env = ctx.env
    if not env.spec.depends_on:
        return
    me = f"{env.namespace}/{env.name}"
    graph = _Graph(ctx.services.kube)
    cycle = await graph.cycle_through(me, [d.key(env.namespace) for d in env.spec.depends_on])
    if cycle:
        raise DependencyCycle(f"spec.dependsOn makes a cycle: {' → '.join(cycle)}; nothing is applied")
    waiting: list[str] = []
    for dependency in env.spec.depends_on:
        key = dependency.key(env.namespace)
        obj = await graph.get(key)
        why = "not found" if obj is None else not_ready(obj)
        if why:
            waiting.append(f"{key} ({why})")
    if waiting:
        raise AwaitingDependencies(f"waiting for {', '.join(waiting)}")


def not_ready(obj: Mapping[str, Any]) -> str:
    """Why ``obj`` (a raw Environment) does not count as ready for its dependents; "" when it does."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is None:
        return "not reconciled yet"
    if ready.get("status") != "True":
        return f"Ready is {ready.get('status')}: {ready.get('reason')}"
    if status.get("observedGeneration") != meta.get("generation"):
        return f"generation {meta.get('generation')} not reconciled yet"
    attempted, applied = status.get("lastAttemptedRevision"), status.get("lastAppliedRevision")
    if attempted != applied:
        return f"{attempted} attempted, {applied} applied"
    if status.get("held"):
        return f"holding {(status.get('held') or {}).get('revision')}"
    return ""


def waiting_on(key: str, obj: Mapping[str, Any], everyone: Iterable[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """Environments (keys) waiting for ``key``, now that it is ready; none while it is not."""
    if not_ready(obj):
        return []
    found = []
    for other_key, other in everyone:
        status = other.get("status") or {}
        ready: Mapping[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        if ready.get("reason") != AWAITING:
            continue
        namespace = str((other.get("metadata") or {}).get("namespace") or "")
        if key in (_key(entry, namespace) for entry in _raw_deps(other)):
            found.append(other_key)
    return found


class _Graph:
    """Environments read once per check, and the edges of their ``spec.dependsOn``."""

    def __init__(self, kube: KubeAPI) -> None:
        self.kube = kube
        self.read: dict[str, dict[str, Any] | None] = {}

    async def get(self, key: str) -> dict[str, Any] | None:
        if key not in self.read:
            namespace, _, name = key.partition("/")
            try:
                self.read[key] = await environments.get(self.kube, namespace, name)
            except NotFound:
                self.read[key] = None
        return self.read[key]

    async def cycle_through(self, me: str, first: list[str]) -> list[str]:
        """The path ``me → … → me`` if the dependencies lead back to ``me``; [] otherwise."""
        stack: list[tuple[str, list[str]]] = [(key, [me, key]) for key in reversed(first)]
        seen: set[str] = set()
        while stack and len(seen) < MAX_WALK:
            key, path = stack.pop()
            if key == me:
                return path
            if key in seen:
                continue
            seen.add(key)
            obj = await self.get(key)
            if obj is None:
                continue
            namespace = key.partition("/")[0]
            for entry in reversed(_raw_deps(obj)):
                stack.append((_key(entry, namespace), [*path, _key(entry, namespace)]))
        return []


def _raw_deps(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    deps = (obj.get("spec") or {}).get("dependsOn") or []
    return [d for d in deps if isinstance(d, Mapping) and d.get("name")] if isinstance(deps, list) else []


def _key(entry: Mapping[str, Any], namespace: str) -> str:
    return f"{entry.get('namespace') or namespace}/{entry.get('name')}"
