"""One list+watch of one resource type in one scope, mirrored into memory.

The loop client-go's reflector taught controllers, for plain JSON:

- **list** (paginated, by label) and remember the list's ``resourceVersion``;
- **watch** from there with ``allowWatchBookmarks``; every event moves the version on, and a
  bookmark moves it without an object, so a reconnect resumes where the stream stopped;
- the server ends a watch after ``timeoutSeconds``: watch again from the last version;
- the connection drops or the API server restarts: watch again from the last version after a
  backoff (0.5 s doubling to 30 s, jittered);
- **410 Gone** (the version was compacted away): list again and diff the new list against the
  store, emitting ADDED / MODIFIED / DELETED for what changed meanwhile, so a subscriber misses
  no change and sees none twice;
- **403 / 404** on the list or watch (RBAC does not allow it, or the CRD was deleted): the
  scope is marked failed with a one-line reason, its store emptied (404: the objects are gone,
  so DELETED is emitted; 403: they may exist, so nothing is claimed), and it is retried after
  ``retry_failed`` seconds.

Stored objects are stripped (``strip``) of what gitopsd never reads, and their repeated
strings shared (``compact``), to bound memory.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from gitopsd.aio import wait_set
from gitopsd.kube.client import Kube
from gitopsd.kube.discovery import Resource
from gitopsd.kube.errors import Forbidden, Gone, KubeError, NotFound, Unauthorized

#: Annotations nobody in gitopsd reads; client-side apply's copy of the whole object is the big one.
STRIPPED_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})
log = structlog.get_logger("gitopsd.kube.watch")
BACKOFF_START = 0.5
BACKOFF_MAX = 30.0

Key = tuple[str, str]  # (namespace or "", name)
#: Strings up to this length are shared between stored objects (names, kinds, field paths,
#: label values, timestamps); longer ones are mostly unique (messages, certificates).
SHARED_STRING_MAX = 128
#: Distinct field sets kept for sharing (the oldest is let go beyond this).
SHARED_FIELD_SETS_MAX = 4096
_field_sets: dict[str, dict[str, Any]] = {}


@dataclass(frozen=True, slots=True)
class Change:
    """One change of a cached object: ``old`` is None when ADDED, ``new`` None when DELETED."""

    type: str  # ADDED | MODIFIED | DELETED
    resource: Resource
    old: dict[str, Any] | None
    new: dict[str, Any] | None

    @property
    def object(self) -> dict[str, Any]:
        found = self.new if self.new is not None else self.old
        assert found is not None  # a Change always carries one of the two
        return found


Emit = Callable[[Change], None]


def strip(obj: Mapping[str, Any], manager: str | None) -> dict[str, Any]:
    """``obj`` without what gitopsd never reads: the field sets of managers other than
    ``manager``'s Apply entry (the entries stay, for who-wrote-when) and the last-applied annotation.

    The result is ``compact``; the field set kept is one object shared by every stored object
    with an equal one (a thousand Deployments from one template have one), so it is read-only."""
    meta = dict(obj.get("metadata") or {})
    entries = meta.get("managedFields")
    if isinstance(entries, list):
        meta["managedFields"] = [_slim_entry(e, manager) for e in entries if isinstance(e, Mapping)]
    annotations = meta.get("annotations")
    if isinstance(annotations, Mapping) and STRIPPED_ANNOTATIONS.intersection(annotations):
        kept = {k: v for k, v in annotations.items() if k not in STRIPPED_ANNOTATIONS}
        if kept:
            meta["annotations"] = kept
        else:
            del meta["annotations"]
    out: dict[str, Any] = compact({**obj, "metadata": meta})
    for entry in out["metadata"].get("managedFields") or ():
        if isinstance(entry, dict) and isinstance(entry.get("fieldsV1"), dict):
            entry["fieldsV1"] = _shared_field_set(entry["fieldsV1"])
    return out


def _shared_field_set(fields: dict[str, Any]) -> dict[str, Any]:
    key = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    found = _field_sets.get(key)
    if found is None:
        if len(_field_sets) >= SHARED_FIELD_SETS_MAX:
            del _field_sets[next(iter(_field_sets))]
        found = _field_sets[key] = fields
    return found


def compact(value: Any) -> Any:
    """``value`` (decoded JSON) rebuilt with its keys and short strings shared with every other
    compacted object: a decoder makes a new string for each key of each object, so the thousands
    of objects of a cache would otherwise hold thousands of copies of ``"metadata"`` or
    ``"f:spec"``. Equal to ``value``; containers are new, so the result can be kept and edited."""
    if isinstance(value, dict):
        return {sys.intern(k) if type(k) is str else k: compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [compact(v) for v in value]
    if type(value) is str and len(value) <= SHARED_STRING_MAX:
        return sys.intern(value)
    return value


def _slim_entry(entry: Mapping[str, Any], manager: str | None) -> dict[str, Any]:
    if entry.get("manager") == manager and entry.get("operation") == "Apply" and not entry.get("subresource"):
        return dict(entry)
    return {k: v for k, v in entry.items() if k != "fieldsV1"}


def _key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def _version(obj: Mapping[str, Any] | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "")


class Reflector:
    """Keeps ``store`` equal to the objects of ``resource`` in ``namespace`` (None: all) that match
    ``label_selector`` and ``field_selector``; ``run`` until cancelled. Every change is passed to ``emit``."""

    def __init__(
        self,
        kube: Kube,
        resource: Resource,
        namespace: str | None,
        emit: Emit,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        field_manager: str | None = None,
        retry_failed: float = 60.0,
        watch_timeout: int = 300,
    ) -> None:
        self.kube = kube
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.field_manager = field_manager
        self.retry_failed = retry_failed
        self.watch_timeout = watch_timeout
        self.store: dict[Key, dict[str, Any]] = {}
        self.resource_version = ""
        self.failure: str | None = None
        self.relists = 0  # lists after the first (410 Gone, or after a failure)
        self.restarts = 0  # watches reopened after a drop, an error or an API server restart
        #: When the server last sent anything (a list, an event, a bookmark, a watch's end): a
        #: stalled watch (a black-holed connection) stays silent without closing.
        self.heard: float | None = None
        self._emit = emit
        self._synced = asyncio.Event()
        self._listed_once = False

    # -- reading ---------------------------------------------------------------------------

    @property
    def synced(self) -> bool:
        return self._synced.is_set() and self.failure is None

    async def wait_synced(self, timeout: float) -> bool:
        await wait_set(self._synced, timeout)
        return self.synced

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.store.get((namespace, name))

    def objects(self) -> Iterator[dict[str, Any]]:
        return iter(list(self.store.values()))

    @property
    def scope(self) -> str:
        where = f"namespace {self.namespace}" if self.namespace else "all namespaces"
        return f"{self.resource.plural}.{self.resource.group or 'core'} in {where}"

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """List (unless an earlier run listed: then resume from ``resource_version``), then watch."""
        backoff = BACKOFF_START
        need_list = not self._listed_once
        while True:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                    backoff = BACKOFF_START
                await self._watch()
            except Gone:
                need_list = True  # compacted away: list again (at once), diffing against the store
            except (Forbidden, NotFound, Unauthorized) as exc:
                self._fail(exc)
                need_list = True
                await asyncio.sleep(self.retry_failed)
            except (KubeError, ValueError) as exc:  # dropped, unreachable, a 5xx, a torn line
                self.restarts += 1
                log.info("watch dropped; resuming", scope=self.scope, error=str(exc)[:200], retry_in=round(backoff, 1))
                await asyncio.sleep(backoff * (0.5 + random.random()))  # noqa: S311 (jitter)
                backoff = min(backoff * 2, BACKOFF_MAX)

    async def _relist(self) -> None:
        listed = await self.kube.list(
            self.resource.path(self.namespace), label_selector=self.label_selector, field_selector=self.field_selector
        )
        self.heard = time.monotonic()
        if self._listed_once:
            self.relists += 1
        self._listed_once = True
        fresh = {_key(item): strip(item, self.field_manager) for item in listed.items}
        old = self.store
        self.store = fresh
        self.resource_version = listed.resource_version
        self.failure = None
        self._synced.set()
        for key, obj in fresh.items():
            before = old.get(key)
            if before is None:
                self._emit(Change("ADDED", self.resource, None, obj))
            elif _version(before) != _version(obj):
                self._emit(Change("MODIFIED", self.resource, before, obj))
        for key, before in old.items():
            if key not in fresh:
                self._emit(Change("DELETED", self.resource, before, None))

    async def _watch(self) -> None:
        async for event in self.kube.watch(
            self.resource.path(self.namespace),
            resource_version=self.resource_version,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            timeout_seconds=self.watch_timeout,
        ):
            self.heard = time.monotonic()
            version = _version(event.object)
            if event.type == "BOOKMARK":
                self.resource_version = version or self.resource_version
                continue
            if event.type not in ("ADDED", "MODIFIED", "DELETED"):
                continue
            obj = strip(event.object, self.field_manager)
            obj.setdefault("apiVersion", self.resource.api_version)
            obj.setdefault("kind", self.resource.kind)
            key = _key(obj)
            before = self.store.get(key)
            if event.type == "DELETED":
                self.store.pop(key, None)
                self._emit(Change("DELETED", self.resource, before or obj, None))
            else:
                self.store[key] = obj
                self._emit(Change("MODIFIED" if before is not None else "ADDED", self.resource, before, obj))
            self.resource_version = version or self.resource_version
        self.heard = time.monotonic()  # the server ended the watch (its timeout)

    def _fail(self, exc: KubeError) -> None:
        verb = "may not be listed" if isinstance(exc, (Forbidden, Unauthorized)) else "is no longer served"
        self.failure = f"{self.scope} {verb}: {str(exc).splitlines()[0][:200]}"
        log.warning("watch cache: kind unavailable; retrying later", reason=self.failure, retry_in=self.retry_failed)
        old, self.store = self.store, {}
        self._synced.clear()
        if isinstance(exc, NotFound):  # the type is gone, and its objects with it
            for before in old.values():
                self._emit(Change("DELETED", self.resource, before, None))
