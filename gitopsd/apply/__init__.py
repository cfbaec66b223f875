"""The apply engine: all-or-nothing server-side apply, inventory, prune, drift, diff, health wait.

The reconciler's whole interface to it::

    applier = Applier(kube)
    result = await applier.sync(manifests, Inventory.from_status(raw), ApplyOptions(owner="ns.name"), memo)
    report = await applier.wait(result.inventory, timeout, owner="ns.name")

See ``applier`` for the order of a sync and its one exception to "nothing written before every
dry-run passed", ``conflicts`` for whose fields are taken back, ``prune`` for what may be deleted,
``memo`` for how an unchanged reconcile stays free of writes.
"""

from gitopsd.apply.applier import EMPTY_RENDER, Applier, ApplyOptions
from gitopsd.apply.diff import Change, DiffResult, ObjectDiff
from gitopsd.apply.errors import (
    ApplyError,
    DependencyNotReady,
    DryRunFailed,
    FieldConflict,
    InvalidOwner,
    OwnershipConflict,
    PruneFailed,
    Rejection,
    WriteFailed,
)
from gitopsd.apply.inventory import Inventory, InventoryEntry
from gitopsd.apply.memo import ApplyMemo
from gitopsd.apply.result import Action, ObjectResult, SyncResult
from gitopsd.health import HealthReport, ObjectHealth, Overall

__all__ = [
    "EMPTY_RENDER",
    "Action",
    "Applier",
    "ApplyError",
    "ApplyMemo",
    "ApplyOptions",
    "Change",
    "DependencyNotReady",
    "DiffResult",
    "DryRunFailed",
    "FieldConflict",
    "HealthReport",
    "InvalidOwner",
    "Inventory",
    "InventoryEntry",
    "ObjectDiff",
    "ObjectHealth",
    "ObjectResult",
    "Overall",
    "OwnershipConflict",
    "PruneFailed",
    "Rejection",
    "SyncResult",
    "WriteFailed",
]
