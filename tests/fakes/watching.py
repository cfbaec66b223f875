"""Watches on the fake: the store's change log replayed after a resourceVersion, then followed.

As kube-apiserver: no version (``""`` or ``"0"``) starts with the current objects as ADDED; a
version below the compaction point is 410 Gone (raised, as the client raises an ERROR event);
an object that stops matching the selector arrives as DELETED and one that starts as ADDED.
A watch ends at ``timeout_seconds``, or when the test ends every watch (``Signals.closed``),
sends a BOOKMARK (``Signals.bookmarks``) or expires them (``Signals.expired``).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass

from gitopsd.aio import wait_set
from gitopsd.kube.client import WatchEvent
from gitopsd.kube.errors import Gone
from tests.fakes.kinds import Kind
from tests.fakes.objects import Change, Store
from tests.fakes.selectors import Match


@dataclass(slots=True)
class Signals:
    """Counters a test bumps; every open watch acts on a change of them."""

    bookmarks: int = 0
    closed: int = 0
    expired: int = 0


@dataclass(frozen=True, slots=True)
class Scope:
    kind: Kind
    namespace: str | None
    match: Match


def _gone(since: int, store: Store) -> Gone:
    return Gone(410, "Expired", f"too old resource version: {since} ({store.compacted})")


async def stream(
    store: Store, signals: Signals, scope: Scope, resource_version: str, timeout_seconds: int
) -> AsyncIterator[WatchEvent]:
    since = int(resource_version) if resource_version not in ("", "0") else None
    if since is not None and since < store.compacted:
        raise _gone(since, store)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_seconds
    closed, expired, bookmarks = signals.closed, signals.expired, signals.bookmarks
    waiter = store.waiter()
    try:
        if since is None:  # no version: the current state as ADDED events first
            since = store.rv
            for _, obj in store.items(scope.kind, scope.namespace):
                if scope.match(obj):
                    yield WatchEvent("ADDED", copy.deepcopy(obj))
        while True:
            waiter.clear()
            if signals.expired != expired or since < store.compacted:
                raise _gone(since, store)
            for change in [c for c in store.changes if c.rv > since]:
                since = change.rv
                event = _event(change, scope)
                if event is not None:
                    yield event
            if signals.bookmarks != bookmarks:
                bookmarks, since = signals.bookmarks, store.rv
                mark = {"apiVersion": scope.kind.api_version, "kind": scope.kind.kind,
                        "metadata": {"resourceVersion": str(since)}}  # fmt: skip
                yield WatchEvent("BOOKMARK", mark)
            remaining = deadline - loop.time()
            if signals.closed != closed or remaining <= 0:
                return
            if not await wait_set(waiter, remaining):
                return
    finally:
        store.forget(waiter)


def _event(change: Change, scope: Scope) -> WatchEvent | None:
    if (change.kind.group, change.kind.plural) != (scope.kind.group, scope.kind.plural):
        return None
    if scope.namespace is not None and (change.new.get("metadata") or {}).get("namespace") != scope.namespace:
        return None
    was = change.old is not None and scope.match(change.old)
    now = scope.match(change.new)
    if change.type == "DELETED":
        return WatchEvent("DELETED", copy.deepcopy(change.new)) if now else None
    if now:
        return WatchEvent("MODIFIED" if was else "ADDED", copy.deepcopy(change.new))
    return WatchEvent("DELETED", copy.deepcopy(change.new)) if was else None
