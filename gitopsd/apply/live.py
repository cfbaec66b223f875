"""The live objects a sync needs to see, read with as few requests as the cluster allows.

One list per object kind, selected by our label (``gitopsd.dev/environment=<owner>``), finds
everything this Environment applied before: in steady state that is all a sync reads. Objects
not found that way (new ones, ones someone else labelled or unlabelled) are then looked up
directly: a GET each when few share a kind and namespace, one unfiltered list of that
namespace when many do (the first sync of a large bundle).
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


async def observe(kube: Kube, owner: str, resources: Iterable[Resource], *, concurrency: int) -> LiveState:
    """Everything of these kinds that carries our label: one (paged) list per kind."""
    live = LiveState()
    unique = list({(r.group, r.kind): r for r in resources}.values())

    async def list_kind(resource: Resource) -> list[dict[str, Any]]:
        result = await kube.list(resource.path(), label_selector=owner_selector(owner), page_size=PAGE_SIZE)
        return result.items

    for outcome in await bounded(unique, list_kind, concurrency):
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
