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
from gitopsd.kube import Kube, NotFound, Resource
from gitopsd.model import ENVIRONMENT_LABEL, ObjectRef

#: More missing objects than this in one kind and namespace: list the namespace, not GET each.
LIST_THRESHOLD = 8
PAGE_SIZE = 2000


@dataclass(slots=True)
class LiveState:
    """Live objects by identity; ``absent`` holds identities known not to exist."""

    objects: dict[ObjectRef, dict[str, Any]] = field(default_factory=dict)
    absent: set[ObjectRef] = field(default_factory=set)

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        return self.objects.get(ref)

    def known(self, ref: ObjectRef) -> bool:
        return ref in self.objects or ref in self.absent

    def add(self, items: Iterable[Mapping[str, Any]]) -> None:
        for item in items:
            self.objects[ObjectRef.of(item)] = dict(item)


def owner_selector(owner: str) -> str:
    return f"{ENVIRONMENT_LABEL}={owner}"


def list_scopes(wanted: Iterable[tuple[ObjectRef, Resource]]) -> list[tuple[Resource, str | None]]:
    """The labelled lists worth making: (type, namespace or None for cluster-wide), one per kind
    with more than ``LIST_THRESHOLD`` wanted objects; the other kinds are read by GET."""
    kinds: dict[tuple[str, str], tuple[Resource, set[ObjectRef]]] = {}
    for ref, resource in wanted:
        kinds.setdefault((resource.group, resource.kind), (resource, set()))[1].add(ref)
    scopes: list[tuple[Resource, str | None]] = []
    for resource, refs in kinds.values():
        if len(refs) <= LIST_THRESHOLD:
            continue
        namespaces = {ref.namespace for ref in refs}
        shared = next(iter(namespaces)) if len(namespaces) == 1 and resource.namespaced else ""
        scopes.append((resource, shared or None))
    return scopes


async def observe(
    kube: Kube, owner: str, wanted: Iterable[tuple[ObjectRef, Resource]], *, concurrency: int
) -> LiveState:
    """The ``wanted`` objects that carry our label, for kinds with many of them (``list_scopes``)."""
    live = LiveState()
    scopes = list_scopes(wanted)

    async def list_scope(scope: tuple[Resource, str | None]) -> list[dict[str, Any]]:
        resource, namespace = scope
        result = await kube.list(resource.path(namespace), label_selector=owner_selector(owner), page_size=PAGE_SIZE)
        return result.items

    for outcome in await bounded(scopes, list_scope, concurrency):
        if isinstance(outcome, Exception):
            raise outcome
        live.add(outcome)
    return live


async def fill(kube: Kube, live: LiveState, wanted: Iterable[tuple[ObjectRef, Resource]], *, concurrency: int) -> None:
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
        try:
            obj = await kube.get(resource.path(ref.namespace or None, ref.name))
        except NotFound:
            return None
        obj.setdefault("apiVersion", resource.api_version)
        obj.setdefault("kind", resource.kind)
        return obj

    for members, outcome in zip(lists, await bounded(lists, list_namespace, concurrency), strict=True):
        if isinstance(outcome, Exception):
            raise outcome
        live.add(outcome)
        live.absent.update(ref for ref, _ in members if ref not in live.objects)
    for (ref, _), got in zip(gets, await bounded(gets, get_one, concurrency), strict=True):
        if isinstance(got, Exception):
            raise got
        if got is None:
            live.absent.add(ref)
        else:
            live.objects[ref] = got
