"""Deleting an Environment: delete what it applied first, when (and only when) asked to.

By default a deleted Environment goes at once and its objects stay (its release records go
with it, through their ownerReferences). A user who wants the objects gone puts the finalizer
``gitopsd.dev/prune`` in the Environment's ``metadata.finalizers`` — an explicit opt-in, as
with Argo CD's ``resources-finalizer.argocd.argoproj.io``; gitopsd never adds it itself.

Once such an Environment is Terminating, and unless ``spec.prune`` is false or ``spec.suspend``
is true (then the objects are orphaned, as Flux does for a Kustomization), every object of its
``status.inventory`` is deleted through the prune machinery (``apply.prune``), so its safety
rules hold: only objects still labelled for this Environment, never ``gitopsd.dev/prune:
disabled``, never a system namespace, uid preconditions, namespaces last. Then only our
finalizer is removed, by a JSON patch that first tests the list it read, so a finalizer another
controller added meanwhile is never dropped.

A delete that fails keeps the finalizer: the Environment says why (Ready=False,
``DeletionFailed``, naming each object, with a Warning Event) and only those objects stay in
its inventory, to be tried again (the daemon backs off between tries).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from gitopsd import environments, status
from gitopsd.apply import Action, Inventory, Rejection
from gitopsd.apply.errors import describe
from gitopsd.apply.live import LiveState
from gitopsd.apply.prune import prune
from gitopsd.apply.wait import resolve
from gitopsd.events import EventRecorder
from gitopsd.kube import ApiError, KubeAPI, KubeError, NotFound
from gitopsd.model import FIELD_MANAGER, ObjectRef
from gitopsd.spec import API_VERSION, KIND
from gitopsd.tenancy import Tenancy

#: The finalizer a user adds to have an Environment's objects deleted with it.
FINALIZER = "gitopsd.dev/prune"
DELETION_FAILED = "DeletionFailed"
_PATCH_ATTEMPTS = 5
_NAMED = 5

log = structlog.get_logger("gitopsd.finalizer")


def terminating(obj: Mapping[str, Any]) -> bool:
    """The object has been deleted and waits for its finalizers."""
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def holds(obj: Mapping[str, Any]) -> bool:
    """Our finalizer is on the object."""
    return FINALIZER in ((obj.get("metadata") or {}).get("finalizers") or [])


@dataclass(frozen=True, slots=True)
class Finalized:
    """What finalizing did. ``done``: our finalizer is off (or the Environment is gone)."""

    done: bool
    deleted: tuple[ObjectRef, ...] = ()
    kept: tuple[tuple[ObjectRef, str], ...] = ()
    failures: tuple[Rejection, ...] = ()
    orphaned: str = ""  # why nothing was deleted (prune off, suspended)


async def finalize(
    kube: KubeAPI,
    recorder: EventRecorder,
    namespace: str,
    name: str,
    *,
    concurrency: int = 16,
    tenancy: Tenancy | None = None,
    target: KubeAPI | None = None,
) -> Finalized:
    """Finish the deletion of Environment ``namespace/name`` if it is Terminating and holds our finalizer.

    Reads the object afresh (its inventory as last written). The deletes act as the
    Environment's ServiceAccount under ``tenancy`` (see ``gitopsd.tenancy``), as its applies did.
    Raises ``KubeError`` when the API server cannot be reached; the caller tries again later.
    ``target``: the cluster its objects are in (``spec.kubeConfig``; default ``kube``).
    """
    try:
        obj = await environments.get(kube, namespace, name)
    except NotFound:
        return Finalized(True)
    if not (terminating(obj) and holds(obj)):
        return Finalized(True)
    spec = obj.get("spec") or {}
    owner = f"{namespace}.{name}"
    inventory = Inventory.from_status((obj.get("status") or {}).get("inventory"))
    # Read raw, not through spec.parse_spec: a spec broken in some other field must not block the deletion.
    orphaned = ""
    if spec.get("suspend") is True:
        orphaned = "spec.suspend is true"
    elif spec.get("prune") is False:
        orphaned = "spec.prune is false"
    if orphaned:
        await _release(kube, obj)
        message = f"Deleted; {orphaned}: its {_count(len(inventory))} left in place"
        log.info("finalized", environment=f"{namespace}/{name}", orphaned=orphaned, kept=len(inventory))
        await recorder.record(_involved(obj), "Normal", "OrphanedOnDelete", message)
        return Finalized(True, orphaned=orphaned)

    account = spec.get("serviceAccountName")
    where = target or kube
    deleter = where.impersonating((tenancy or Tenancy()).user(namespace, account if isinstance(account, str) else None))
    pruned = await prune(deleter, list(inventory), LiveState(), owner, lambda e: resolve(where, e), concurrency)
    deleted = tuple(r.ref for r in pruned.results if r.action is Action.PRUNED)
    kept = tuple((r.ref, r.detail) for r in pruned.results if r.action is Action.PRUNE_SKIPPED)
    if pruned.failures:
        headline = f"Deleting the Environment: {len(pruned.failures)} of {len(inventory)} objects could not be deleted"
        message = describe(pruned.failures, headline) + f" (the finalizer {FINALIZER} stays; retrying)"
        log.warning("finalize failed", environment=f"{namespace}/{name}", error=message, deleted=len(deleted))
        await _report_failure(kube, recorder, obj, message, Inventory.of(pruned.keep))
        return Finalized(False, deleted, kept, tuple(pruned.failures))

    await _release(kube, obj)
    message = f"Deleted with its objects: {_count(len(deleted))} deleted{_names(deleted)}"
    if kept:
        message += f", {len(kept)} kept ({'; '.join(f'{ref}: {why}' for ref, why in kept[:_NAMED])}"
        message += f"; and {len(kept) - _NAMED} more)" if len(kept) > _NAMED else ")"
    log.info(
        "finalized",
        environment=f"{namespace}/{name}",
        deleted=[str(r) for r in deleted],
        kept={str(ref): why for ref, why in kept},
    )
    await recorder.record(_involved(obj), "Normal", "PrunedOnDelete", message)
    return Finalized(True, deleted, kept)


async def _release(kube: KubeAPI, obj: dict[str, Any]) -> None:
    """Remove our finalizer, and only ours: the patch tests the list it was computed from."""
    meta = obj.get("metadata") or {}
    path = environments.RESOURCE.path(str(meta.get("namespace")), str(meta.get("name")))
    for _ in range(_PATCH_ATTEMPTS):
        finalizers = list(meta.get("finalizers") or [])
        if FINALIZER not in finalizers:
            return
        patch = [
            {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
            {"op": "remove", "path": f"/metadata/finalizers/{finalizers.index(FINALIZER)}"},
        ]
        try:
            await kube.patch(path, patch, patch_type="json", field_manager=FIELD_MANAGER)
            return
        except NotFound:
            return
        except ApiError as exc:
            if exc.code not in (409, 422):  # 422: the test failed (the list changed): read it again
                raise
        try:
            meta = (await kube.get(path)).get("metadata") or {}
        except NotFound:
            return
    raise KubeError(
        f"{meta.get('namespace')}/{meta.get('name')}: finalizers kept changing; {FINALIZER} not removed yet"
    )


async def _report_failure(
    kube: KubeAPI, recorder: EventRecorder, obj: dict[str, Any], message: str, keep: Inventory
) -> None:
    meta = obj.get("metadata") or {}
    old = dict(obj.get("status") or {})
    new = status.failed(
        old,
        int(meta.get("generation") or 0),
        DELETION_FAILED,
        message,
        environments.now_rfc3339(),
        stalled=False,
        inventory=keep.to_status(),
    )
    try:
        await environments.write_status(kube, str(meta.get("namespace")), str(meta.get("name")), new)
    except KubeError as exc:
        log.warning("status not written", environment=f"{meta.get('namespace')}/{meta.get('name')}", error=str(exc))
    await recorder.record(_involved(obj), "Warning", DELETION_FAILED, message)


def _involved(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {k: meta.get(k) for k in ("name", "namespace", "uid", "resourceVersion")},
    }


def _count(n: int) -> str:
    return f"{n} object" if n == 1 else f"{n} objects"


def _names(refs: tuple[ObjectRef, ...]) -> str:
    if not refs:
        return ""
    shown = ", ".join(str(r) for r in refs[:_NAMED])
    return f" ({shown}{f' and {len(refs) - _NAMED} more' if len(refs) > _NAMED else ''})"
