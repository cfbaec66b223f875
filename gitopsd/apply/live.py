"""The live objects a sync needs to see, read with as few requests as the cluster allows.

A sync only ever consults the objects it wants (the render) and the ones it applied before (the
inventory), so those identities decide how each kind is read:

- a kind with more than ``LIST_THRESHOLD`` of them: one list selected by our label
  (``gitopsd.dev/environment=<owner>``), in their namespace when they share one, else cluster-wide;
  in steady state that is all a sync of a large bundle reads;
- a kind with a few: nothing here, they are looked up directly (``fill``, or the prune's own
  lookup). A GET costs kube-apiserver the same whatever the cluster holds, while a labelled list
  filters every object of its kind in scope: measured on the local cluster with 1000 Deployments,
  0.8 ms of apiserver CPU for a GET against 2.5 ms for a cluster-wide labelled list, growing with
  the cluster.

With the cluster's watch cache (``kube.watchcache``), a kind it serves in the object's namespace
is read from memory first (``from_cache``): no request at all. The cache holds only labelled
objects, so an object it lacks (new, unlabelled, or created a moment ago and not seen yet) goes
on to ``fill`` like any other: a miss costs a GET, never a wrong "absent".

Objects not found by the label (new ones, ones someone else labelled or unlabelled) are then
looked up by ``fill``: a GET each when few share a kind and namespace, one unfiltered list of
that namespace when many do (the first sync of a large bundle).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gitopsd.apply.parallel import bounded
from gitopsd.kube import Forbidden, KubeAPI, NotFound, Resource
from gitopsd.kube.watchcache import WatchCache
from gitopsd.model import ENVIRONMENT_LABEL, ObjectRef

#: More missing objects than this in one kind and namespace: list the namespace, not GET each.
LIST_THRESHOLD = 8
PAGE_SIZE = 2000


@dataclass(slots=True)
class LiveState:
    """Live objects by identity; ``absent`` holds identities known not to exist; ``refused`` those
    the identity we act as may not read (RBAC's message): they are neither, and never written."""

    objects: dict[ObjectRef, dict[str, Any]] = field(default_factory=dict)
    absent: set[ObjectRef] = field(default_factory=set)
    refused: dict[ObjectRef, str] = field(default_factory=dict)

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        return self.objects.get(ref)

    def known(self, ref: ObjectRef) -> bool:
        return ref in self.objects or ref in self.absent or ref in self.refused

    def add(self, items: Iterable[Mapping[str, Any]]) -> None:
        for item in items:
            self.objects[ObjectRef.of(item)] = dict(item)


def owner_selector(owner: str) -> str:
    return f"{ENVIRONMENT_LABEL}={owner}"


#: One read: the type, a namespace (None: every one) and a name (None: a list of that scope).
Read = tuple[Resource, str | None, str | None]


def plan_reads(
    wanted: Iterable[tuple[ObjectRef, Resource]], *, list_per_namespace: bool = False
) -> dict[ObjectRef, Read]:
    """How to read each wanted object: a GET for a kind with up to ``LIST_THRESHOLD`` of them;
    else one list of the kind, in their namespace when they share one, cluster-wide otherwise
    (``list_per_namespace``: each namespace's own list, for reads without a label selector)."""
    kinds: dict[tuple[str, str], dict[ObjectRef, Resource]] = {}
    for ref, resource in wanted:
        kinds.setdefault((resource.group, resource.kind), {})[ref] = resource
    reads: dict[ObjectRef, Read] = {}
    for members in kinds.values():
        few = len(members) <= LIST_THRESHOLD
        shared = len({ref.namespace for ref in members}) == 1
        for ref, resource in members.items():
            if few:
                reads[ref] = (resource, ref.namespace or None, ref.name)
            elif resource.namespaced and (list_per_namespace or shared):
                reads[ref] = (resource, ref.namespace, None)
            else:
                reads[ref] = (resource, None, None)
    return reads


def list_scopes(
    wanted: Iterable[tuple[ObjectRef, Resource]], *, per_namespace: bool = False
) -> list[tuple[Resource, str | None]]:
    """The labelled lists worth making (``plan_reads``): (type, namespace or None for cluster-wide)."""
    return _scopes_of(plan_reads(wanted, list_per_namespace=per_namespace))


def _scopes_of(reads: dict[ObjectRef, Read]) -> list[tuple[Resource, str | None]]:
    return list(dict.fromkeys((r, ns) for r, ns, name in reads.values() if name is None))


async def get_object(kube: KubeAPI, resource: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
    """The live object (apiVersion and kind filled in), or None when it does not exist."""
    try:
        obj = await kube.get(resource.path(namespace, name))
    except NotFound:
        return None
    obj.setdefault("apiVersion", resource.api_version)
    obj.setdefault("kind", resource.kind)
    return obj


def from_cache(
    cache: WatchCache, live: LiveState, wanted: Iterable[tuple[ObjectRef, Resource]]
) -> list[tuple[ObjectRef, Resource]]:
    """Record in ``live`` the ``wanted`` objects ``cache`` holds; return the rest (kinds it does
    not serve there yet, failed ones, and objects it does not hold). Starts watching every kind asked for."""
    rest: list[tuple[ObjectRef, Resource]] = []
    for ref, resource in wanted:
        found = cache.get(resource, ref.namespace, ref.name) if cache.covers(resource, ref.namespace) else None
        if found is None:
            rest.append((ref, resource))
        else:
            live.objects[ref] = found
    return rest


async def observe(
    kube: KubeAPI,
    owner: str,
    wanted: Iterable[tuple[ObjectRef, Resource]],
    *,
    concurrency: int,
    per_namespace: bool = False,
) -> LiveState:
    """The ``wanted`` objects that carry our label, for kinds with many of them (``list_scopes``;
    ``per_namespace``: never a cluster-wide list)."""
    live = LiveState()
    reads = plan_reads(wanted, list_per_namespace=per_namespace)
    scopes = _scopes_of(reads)

    async def list_scope(scope: tuple[Resource, str | None]) -> list[dict[str, Any]]:
        resource, namespace = scope
        result = await kube.list(resource.path(namespace), label_selector=owner_selector(owner), page_size=PAGE_SIZE)
        return result.items

    for scope, outcome in zip(scopes, await bounded(scopes, list_scope, concurrency), strict=True):
        if isinstance(outcome, Forbidden):
            live.refused.update((ref, str(outcome)) for ref, read in reads.items() if read == (*scope, None))
            continue
        if isinstance(outcome, Exception):
            raise outcome
        live.add(outcome)
    return live


async def fill(
    kube: KubeAPI, live: LiveState, wanted: Iterable[tuple[ObjectRef, Resource]], *, concurrency: int
) -> None:
    """Look up the ``wanted`` objects ``live`` does not know yet; record them or their absence."""
    groups: dict[tuple[str, str, str], list[tuple[ObjectRef, Resource]]] = defaultdict(list)
    for ref, resource in wanted:
        if not live.known(ref):
            groups[(resource.group, resource.kind, ref.namespace)].append((ref, resource))
    lists = [members for members in groups.values() if len(members) > LIST_THRESHOLD]
    gets = [pair for members in groups.values() if len(members) <= LIST_THRESHOLD for pair in members]

    async def list_namespace(members: list[tuple[ObjectRef, Resource]]) -> list[dict[str, Any]]:
        ref, resource = members[0]
        result = await kube.list(resource.path(ref.namespace or None), page_size=PAGE_SIZE)
        return result.items

    async def get_one(pair: tuple[ObjectRef, Resource]) -> dict[str, Any] | None:
        ref, resource = pair
        return await get_object(kube, resource, ref.namespace or None, ref.name)

    for members, outcome in zip(lists, await bounded(lists, list_namespace, concurrency), strict=True):
        if isinstance(outcome, Forbidden):
            live.refused.update((ref, str(outcome)) for ref, _ in members)
            continue
        if isinstance(outcome, Exception):
            raise outcome
        live.add(outcome)
        live.absent.update(ref for ref, _ in members if ref not in live.objects)
    for (ref, _), got in zip(gets, await bounded(gets, get_one, concurrency), strict=True):
        if isinstance(got, Forbidden):
            live.refused[ref] = str(got)
            continue
        if isinstance(got, Exception):
            raise got
        if got is None:
            live.absent.add(ref)
        else:
            live.objects[ref] = got
