"""A shared, watch-fed copy of every object gitopsd manages in one cluster.

Every object gitopsd applies carries one label (``gitopsd.dev/environment``); one list+watch per
kind selected by that label keeps all of a kind's managed objects in memory, for every
Environment of the cluster at once. Reads are then free: the applier's live state, the health
gate and drift detection read memory, and a no-op reconcile needs no request at all.

Scopes. A daemon serving every namespace watches each kind cluster-wide. One serving a list of
namespaces (``namespaces``) may not list cluster-wide, so it watches namespaced kinds per
namespace: those it serves from the first use of the kind, and any other namespace an
Environment targets from the first time it is read there. Cluster-scoped kinds are always
watched cluster-wide (a daemon without that right sees the kind fail with Forbidden, and
readers fall back to GETs).

Each scope starts lazily (``start``, or the first ``covers``), is served from memory once its
first list arrived (``covers``), and fails alone: a Forbidden list or a deleted CRD marks that
kind failed with a one-line reason (``failure``) and is retried later; other kinds go on.
A scope of a namespace the daemon does not serve (an Environment's target) that is empty and
unread for ``idle_scope`` seconds is stopped, so the watches follow the namespaces in use.
Subscribers (``subscribe``) see every change after the store holds it; ``changed`` is an
``asyncio.Event`` pulsed on any change, for waiters that re-read.

The watching itself (resume, bookmarks, 410, backoff, stripping) is ``reflector``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from gitopsd.kube.client import Kube
from gitopsd.kube.discovery import Resource
from gitopsd.kube.reflector import Change, Reflector

log = structlog.get_logger("gitopsd.kube.watch")

Subscriber = Callable[[Change], None]
#: An empty scope of a namespace no reconcile reads any more is stopped after this long.
IDLE_SCOPE_SECONDS = 600.0
#: (group, kind, namespace or None for cluster-wide)
ScopeKey = tuple[str, str, str | None]


@dataclass(frozen=True, slots=True)
class Figures:
    """One watched scope, for metrics: objects held, relists, watch restarts, failure if any."""

    kind: str  # "deployments.apps", "configmaps"
    namespace: str  # "" when cluster-wide
    objects: int
    relists: int
    restarts: int
    synced: bool
    failure: str | None


class WatchCache:
    def __init__(
        self,
        kube: Kube,
        *,
        namespaces: Sequence[str] | None = None,
        label: str | None = None,
        field_manager: str | None = None,
        retry_failed: float = 60.0,
        watch_timeout: int = 300,
        idle_scope: float = IDLE_SCOPE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``label``: watch only objects that carry this label key (any value); ``field_manager``:
        keep that manager's field set in ``managedFields`` (others' are stripped); ``idle_scope``:
        seconds after which an empty scope of a namespace not served, read by no reconcile, stops."""
        if namespaces is not None and not namespaces:
            raise ValueError("watch cache: namespaces is None (all) or a non-empty list")
        self.kube = kube
        self.namespaces = tuple(namespaces) if namespaces is not None else None
        self.label = label
        self.field_manager = field_manager
        self.retry_failed = retry_failed
        self.watch_timeout = watch_timeout
        self.changed = asyncio.Event()
        self._reflectors: dict[ScopeKey, Reflector] = {}
        self._tasks: dict[ScopeKey, asyncio.Task[None]] = {}
        self._subscribers: list[Subscriber] = []
        self._closed = False
        self.idle_scope = idle_scope
        self.clock = clock
        self._used: dict[ScopeKey, float] = {}
        self._swept = clock()
        #: Scopes stopped because they were empty and unused (for metrics and tests).
        self.retired = 0

    # -- scopes ----------------------------------------------------------------------------

    def _scope(self, resource: Resource, namespace: str | None) -> ScopeKey | None:
        """The scope that holds ``namespace`` of ``resource``; None when no scope can (no namespace given)."""
        if not resource.namespaced or self.namespaces is None:
            return (resource.group, resource.kind, None)
        if not namespace:
            return None
        return (resource.group, resource.kind, namespace)

    def start(self, resource: Resource, namespace: str | None = None) -> None:
        """Watch ``resource`` (in ``namespace``'s scope) from now on, if not already watched."""
        key = self._scope(resource, namespace)
        if key is None or self._closed:
            return
        now = self.clock()
        self._used[key] = now
        if now - self._swept >= min(60.0, self.idle_scope):
            self._retire_idle(now)
        if key in self._reflectors:
            return
        keys = [key]
        if key[2] is not None and self.namespaces is not None:
            keys += [(key[0], key[1], ns) for ns in self.namespaces if (key[0], key[1], ns) not in self._reflectors]
        for each in dict.fromkeys(keys):
            reflector = Reflector(
                self.kube,
                resource,
                each[2],
                self._dispatch,
                label_selector=self.label,
                field_manager=self.field_manager,
                retry_failed=self.retry_failed,
                watch_timeout=self.watch_timeout,
            )
            self._reflectors[each] = reflector
            self._tasks[each] = asyncio.create_task(reflector.run(), name=f"watch {reflector.scope}")

    def _retire_idle(self, now: float) -> None:
        """Stop the scopes of namespaces this cache does not serve (targets of Environments) that
        hold no object and that no reconcile has read for ``idle_scope`` seconds: a namespace
        whose Environments are gone would otherwise keep a watch (and its connection) for ever.
        Nothing is lost: an empty scope has nothing to report drift on, and it starts again
        at its next read."""
        self._swept = now
        served = self.namespaces or ()
        for key, reflector in list(self._reflectors.items()):
            namespace = key[2]
            if namespace is None or namespace in served or reflector.store or not reflector.synced:
                continue
            if now - self._used.get(key, now) < self.idle_scope:
                continue
            self._tasks.pop(key).cancel()
            del self._reflectors[key]
            self._used.pop(key, None)
            self.retired += 1
            log.info("watch cache: stopped an empty, unused scope", scope=reflector.scope)

    def covers(self, resource: Resource, namespace: str | None) -> bool:
        """True when reads of ``resource`` in ``namespace`` are answered from memory; starts the
        scope if needed (it serves once its first list arrived)."""
        self.start(resource, namespace)
        reflector = self._reflector(resource, namespace)
        return reflector is not None and reflector.synced

    async def wait_synced(self, resource: Resource, namespace: str | None = None, timeout: float = 30.0) -> bool:
        """Start and wait (up to ``timeout``) until ``resource`` is served in ``namespace``'s scope."""
        self.start(resource, namespace)
        reflector = self._reflector(resource, namespace)
        return reflector is not None and await reflector.wait_synced(timeout)

    def synced(self, resource: Resource) -> bool:
        """True when every started scope of ``resource`` is served from memory (False: none started)."""
        found = self._of_kind(resource)
        return bool(found) and all(r.synced for r in found)

    def failure(self, resource: Resource) -> str | None:
        """Why ``resource`` is not served (Forbidden, CRD deleted), or None."""
        return self.failure_of(resource.group, resource.kind)

    def failure_of(self, group: str, kind: str, namespace: str | None = None) -> str | None:
        """Why kind ``kind`` of API group ``group`` is not served (in a scope that covers
        ``namespace``, when given), or None."""
        reasons = [
            r.failure
            for (g, k, scope), r in self._reflectors.items()
            if (g, k) == (group, kind) and r.failure and (namespace is None or scope in (None, namespace))
        ]
        return "; ".join(reasons) if reasons else None

    def failures(self) -> dict[str, str]:
        """Every failed scope's reason, by scope (``deployments.apps in namespace shop``)."""
        return {r.scope: r.failure for r in self._reflectors.values() if r.failure}

    # -- reads -----------------------------------------------------------------------------

    def get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The cached object, or None (absent, or not served: ask ``covers`` first)."""
        reflector = self._reflector(resource, namespace)
        if reflector is None or not reflector.synced:
            return None
        return reflector.get((namespace or "") if resource.namespaced else "", name)

    def owned(self, resource: Resource, value: str) -> list[dict[str, Any]]:
        """Cached objects of ``resource`` whose ``label`` is ``value`` (one Environment's), every scope."""
        if self.label is None:
            return []
        found: list[dict[str, Any]] = []
        for reflector in self._of_kind(resource):
            for obj in reflector.objects():
                if ((obj.get("metadata") or {}).get("labels") or {}).get(self.label) == value:
                    found.append(obj)
        return found

    def heard(self) -> float | None:
        """When any watch last heard from the cluster (``time.monotonic``), None when none has."""
        times = [r.heard for r in self._reflectors.values() if r.heard is not None]
        return max(times) if times else None

    def figures(self) -> list[Figures]:
        out = []
        for reflector in list(self._reflectors.values()):
            res = reflector.resource
            kind = f"{res.plural}.{res.group}" if res.group else res.plural
            out.append(
                Figures(
                    kind,
                    reflector.namespace or "",
                    len(reflector.store),
                    reflector.relists,
                    reflector.restarts,
                    reflector.synced,
                    reflector.failure,
                )
            )
        return out

    # -- changes ---------------------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` with every change (after the store holds it); returns the unsubscribe."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    def _dispatch(self, change: Change) -> None:
        for callback in list(self._subscribers):
            try:
                callback(change)
            except Exception:  # a subscriber's bug must not stop the watch
                log.exception("watch cache subscriber failed", kind=change.resource.kind)
        # Pulse: waiters woken now re-read; the next change sets it again.
        self.changed.set()
        self.changed.clear()

    async def close(self) -> None:
        self._closed = True
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()

    # -- helpers ---------------------------------------------------------------------------

    def _reflector(self, resource: Resource, namespace: str | None) -> Reflector | None:
        key = self._scope(resource, namespace)
        return None if key is None else self._reflectors.get(key)

    def _of_kind(self, resource: Resource) -> list[Reflector]:
        return [r for (g, k, _), r in self._reflectors.items() if (g, k) == (resource.group, resource.kind)]


__all__ = ["Change", "Figures", "WatchCache"]
