"""The daemon's local copy of the Environments it serves, and what each change of one asks for.

``Informer.run`` lists the Environments (in one namespace or all, of one shard's label) and
watches them from the list's version; the server ending the watch is followed by a new watch
from the last version seen, and a watch that expired (410) or failed (the connection dropped,
the API server restarted) by a new list after a backoff. A relist replaces the copy: objects
no longer listed are forgotten, so a deletion missed while the watch was down still counts.

Every object seen is passed with the one it replaces to ``on_observe``, with the ``Wake`` that
says what it asks of the daemon (``wake``, pure); every object gone to ``on_forget``. The copy
keeps what the daemon reads (``kept``): no ``managedFields``, no client-side apply annotation,
repeated strings shared, so a thousand Environments cost a thousand statuses and specs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from gitopsd import environments, finalizer
from gitopsd.kube import Gone, KubeAPI, KubeError
from gitopsd.kube.reflector import strip
from gitopsd.releases import requests

log = structlog.get_logger("gitopsd.daemon")

BACKOFF_START = 0.5
BACKOFF_MAX = 30.0


@dataclass(frozen=True, slots=True)
class Wake:
    """What one change of an Environment asks of the daemon (nothing, when every field is False)."""

    cancel: bool = False  # Terminating: no regular reconcile any more (dropped from the queue)
    preempt: bool = False  # cut a sync in flight short (deleted with our finalizer; a rollback request)
    fresh: bool = False  # resolve its source anew (``gitopsd sync``)
    queue: bool = False  # reconcile it as soon as a worker is free


def key_of(obj: dict[str, Any]) -> str:
    """``namespace/name`` of a raw object."""
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def kept(obj: dict[str, Any]) -> dict[str, Any]:
    """The part of a listed or watched Environment the daemon keeps: all of it but ``managedFields``
    (the status writer's field set grows with the inventory, and nothing reads it) and
    ``kubectl``'s last-applied annotation, with its strings shared (``reflector.strip``)."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return strip({**obj, "metadata": meta}, None)


def wake(old: dict[str, Any] | None, new: dict[str, Any]) -> Wake:
    """What ``new`` (replacing ``old``, None when first seen) asks of the daemon."""
    if finalizer.terminating(new):
        if finalizer.holds(new) and (old is None or not finalizer.terminating(old)):
            # Deletion waits for us: a sync in flight (a long health wait) is not worth finishing.
            return Wake(cancel=True, preempt=True, queue=True)
        return Wake(cancel=True)
    if old is None:
        return Wake(queue=True)
    meta, old_meta = new.get("metadata") or {}, old.get("metadata") or {}
    requested = (meta.get("annotations") or {}).get(environments.REQUESTED_AT)
    rollback = requests.token_of(meta.get("annotations"), requests.ROLLBACK)
    if rollback and rollback != requests.token_of(old_meta.get("annotations"), requests.ROLLBACK):
        return Wake(preempt=True, queue=True)  # a rollback request preempts a sync (see gitopsd.rollback)
    if requested and requested != (old_meta.get("annotations") or {}).get(environments.REQUESTED_AT):
        return Wake(fresh=True, queue=True)
    if meta.get("generation") != old_meta.get("generation"):
        return Wake(queue=True)
    return Wake()


Observe = Callable[[str, dict[str, Any], Wake], None]
Forget = Callable[[str, dict[str, Any] | None], None]  # None: not held (a DELETED of an unknown key)


class Informer:
    """Keeps a copy of the Environments in ``namespace`` (None: all) matching ``label_selector``."""

    def __init__(
        self,
        kube: KubeAPI,
        namespace: str | None,
        label_selector: str | None,
        *,
        on_observe: Observe,
        on_forget: Forget,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.label_selector = label_selector
        self.on_observe = on_observe
        self.on_forget = on_forget
        #: True once the first list arrived (the copy is whole from then on).
        self.synced = False
        self._objects: dict[str, dict[str, Any]] = {}

    # -- reading ---------------------------------------------------------------------------

    def get(self, key: str) -> dict[str, Any] | None:
        """The Environment ``namespace/name`` as last seen (the object itself, not a copy), or None."""
        return self._objects.get(key)

    def items(self) -> list[tuple[str, dict[str, Any]]]:
        """(``namespace/name``, raw object) of every Environment held, as a list taken now."""
        return list(self._objects.items())

    def __len__(self) -> int:
        return len(self._objects)

    def __contains__(self, key: object) -> bool:
        return key in self._objects

    # -- the loop --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """List, then watch, until ``stop``."""
        backoff = BACKOFF_START
        while not stop.is_set():
            try:
                rv = await self._list()
                self.synced = True
                backoff = BACKOFF_START
                while not stop.is_set():
                    async for event in environments.watch(self.kube, rv, self.namespace, self.label_selector):
                        rv = str((event.object.get("metadata") or {}).get("resourceVersion") or rv)
                        if event.type == "DELETED":
                            self._forget(key_of(event.object))
                        elif event.type in ("ADDED", "MODIFIED"):
                            self._observe(event.object)
            except Gone:
                continue  # the watch fell too far behind: list again
            except KubeError as exc:
                log.warning("watching Environments failed; retrying", error=str(exc), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    async def _list(self) -> str:
        """List into the copy (forgetting what is no longer listed); the list's version.

        Its own frame, so the list's raw items are freed once copied, not kept for as long as
        the watch that follows runs."""
        listed = await environments.list_all(self.kube, self.namespace, self.label_selector)
        seen = set()
        for obj in listed.items:
            seen.add(key_of(obj))
            self._observe(obj)
        for gone in set(self._objects) - seen:
            self._forget(gone)
        return listed.resource_version

    def _observe(self, raw: dict[str, Any]) -> None:
        obj = kept(raw)
        key = key_of(obj)
        old = self._objects.get(key)
        self._objects[key] = obj
        self.on_observe(key, obj, wake(old, obj))

    def _forget(self, key: str) -> None:
        obj = self._objects.pop(key, None)
        self.on_forget(key, obj)
