"""Deleting what left Git, and nothing else.

An object is deleted only when all of these hold:

* it is in the Environment's previous inventory (what it applied last) and not in the render;
* the live object still carries ``gitopsd.dev/environment=<owner>`` (relabelled for another
  Environment, or unlabelled by hand: it is no longer ours, it stays);
* neither its labels nor its annotations say ``gitopsd.dev/prune: disabled``;
* it is not one of the cluster's own namespaces (``default``, ``kube-system``...).

Deletes are sent wave by wave (namespaced objects, other cluster-scoped objects, CRDs,
Namespaces last) with a uid precondition, so an object deleted and recreated by someone else in
between is never hit. A failed delete is named and its entry stays in the inventory, so the
next sync tries again. An empty render never gets here unless ``allowEmpty`` (see ``applier``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gitopsd.apply.errors import PruneFailed, Rejection
from gitopsd.apply.inventory import InventoryEntry
from gitopsd.apply.live import LiveState
from gitopsd.apply.parallel import bounded
from gitopsd.apply.plan import prune_waves
from gitopsd.apply.result import Action, ObjectResult
from gitopsd.kube import ApiError, Conflict, Forbidden, KubeAPI, NotFound, Resource
from gitopsd.model import ENVIRONMENT_LABEL, PRUNE_DISABLED, PRUNE_LABEL, ObjectRef

Resolve = Callable[[InventoryEntry], Awaitable[Resource | None]]


@dataclass(slots=True)
class PruneOutcome:
    results: list[ObjectResult] = field(default_factory=list)
    failures: list[Rejection] = field(default_factory=list)
    #: Entries to keep in the inventory (failed deletes, retried next time).
    keep: list[InventoryEntry] = field(default_factory=list)


#: Namespaces the cluster itself needs: never deleted, even when an Environment adopted one.
SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})


def keep_reason(live: Mapping[str, Any] | None, owner: str) -> str | None:
    """Why a live object that left Git must not be deleted, or None when it may be."""
    if live is None:
        return "already gone"
    if ObjectRef.of(live) in {ObjectRef("", "Namespace", "", n) for n in SYSTEM_NAMESPACES}:
        return "a system namespace is never pruned"
    meta = live.get("metadata") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    holder = labels.get(ENVIRONMENT_LABEL)
    if holder != owner:
        if holder:
            return f"now labelled for Environment {holder}"
        return f"no longer carries the label {ENVIRONMENT_LABEL}={owner}"
    if labels.get(PRUNE_LABEL) == PRUNE_DISABLED or annotations.get(PRUNE_LABEL) == PRUNE_DISABLED:
        return f"{PRUNE_LABEL}: {PRUNE_DISABLED}"
    return None


async def look_up(
    kube: KubeAPI, entries: Sequence[InventoryEntry], live: LiveState, resolve: Resolve, concurrency: int
) -> dict[ObjectRef, tuple[Resource | None, dict[str, Any] | None]]:
    """The type and live object of each entry (GET only those our labelled lists did not show)."""

    async def one(entry: InventoryEntry) -> tuple[Resource | None, dict[str, Any] | None]:
        resource = await resolve(entry)
        if resource is None:
            return None, None
        found = live.get(entry.ref)
        if found is not None or entry.ref in live.absent:
            return resource, found
        try:
            return resource, await kube.get(resource.path(entry.ref.namespace or None, entry.ref.name))
        except NotFound:
            return resource, None
        except Forbidden as exc:  # the identity we act as may not read it: neither gone nor ours to delete
            live.refused[entry.ref] = str(exc)
            return resource, None

    out: dict[ObjectRef, tuple[Resource | None, dict[str, Any] | None]] = {}
    for entry, got in zip(entries, await bounded(entries, one, concurrency), strict=True):
        if isinstance(got, Exception):
            raise got
        out[entry.ref] = got
    return out


async def prune(
    kube: KubeAPI,
    entries: Sequence[InventoryEntry],
    live: LiveState,
    owner: str,
    resolve: Resolve,
    concurrency: int,
) -> PruneOutcome:
    """Delete ``entries`` (what left Git) that are still ours and not protected."""
    outcome = PruneOutcome()
    found = await look_up(kube, entries, live, resolve, concurrency)
    by_ref = {e.ref: e for e in entries}
    targets: dict[ObjectRef, tuple[Resource, dict[str, Any]]] = {}
    for ref, (resource, obj) in found.items():
        if ref in live.refused:
            message = f"cannot read it to delete it: {live.refused[ref]}"
            outcome.failures.append(Rejection(ref, "", PruneFailed.reason, message))
            outcome.keep.append(by_ref[ref])
            continue
        if resource is None:
            outcome.results.append(ObjectResult(ref, Action.PRUNE_SKIPPED, detail="its type is no longer served"))
            continue
        reason = keep_reason(obj, owner)
        if reason is not None or obj is None:
            outcome.results.append(ObjectResult(ref, Action.PRUNE_SKIPPED, detail=reason or "already gone"))
            continue
        targets[ref] = (resource, obj)

    async def delete(ref: ObjectRef) -> str:
        resource, obj = targets[ref]
        uid = (obj.get("metadata") or {}).get("uid")
        try:
            await kube.delete(resource.path(ref.namespace or None, ref.name), uid=str(uid) if uid else None)
        except NotFound:
            return "already gone"
        except Conflict:
            return "replaced by another object of the same name (uid changed); left alone"
        return ""

    for wave in prune_waves(targets):
        for ref, done in zip(wave, await bounded(wave, delete, concurrency), strict=True):
            if isinstance(done, ApiError):
                outcome.failures.append(Rejection(ref, "", PruneFailed.reason, f"delete refused: {done}"))
                outcome.keep.append(by_ref[ref])
            elif isinstance(done, Exception):
                outcome.failures.append(Rejection(ref, "", PruneFailed.reason, f"delete failed: {done}"))
                outcome.keep.append(by_ref[ref])
            elif done:
                outcome.results.append(ObjectResult(ref, Action.PRUNE_SKIPPED, detail=done))
            else:
                outcome.results.append(ObjectResult(ref, Action.PRUNED))
    return outcome
