"""Why a sync did not go through, as exceptions the reconciler turns into condition reasons.

::

    ApplyError                  (GitopsdError)  reason ApplyFailed
    ├── InvalidOwner            the owner is not a usable label value
    ├── DryRunFailed            the API server refused one or more objects in a dry-run;
    │                           also unknown kinds, objects without a name or namespace
    ├── OwnershipConflict       an object belongs to another Environment (label), nothing taken over
    ├── FieldConflict           another server-side *Apply* manager owns a field we set
    ├── DependencyNotReady      a CRD not Established / a Namespace not Active in time
    ├── WriteFailed             a write refused after every dry-run passed (webhook, quota race, 5xx)
    └── PruneFailed             deleting what left Git failed for some objects

Every error that concerns objects carries them as ``rejections`` (all of them, not just the
first) and a message naming file, object and the server's reason. ``inventory`` is set when
some objects were written before the failure (stage-0 CRDs and Namespaces, or the stages before
a failed write): the caller records it so those objects stay tracked and prunable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gitopsd.errors import GitopsdError, truncate
from gitopsd.model import ObjectRef

if TYPE_CHECKING:
    from gitopsd.apply.inventory import Inventory
    from gitopsd.apply.result import SyncResult

#: How many rejected objects a message spells out; ``rejections`` always holds all of them.
MESSAGE_LIMIT = 20


@dataclass(frozen=True, slots=True)
class Rejection:
    """One object that cannot be applied, and why (``reason`` is a short CamelCase category)."""

    ref: ObjectRef
    origin: str
    reason: str
    message: str

    def __str__(self) -> str:
        where = f"{self.origin}: " if self.origin else ""
        return f"{where}{self.ref}: {truncate(self.message, 400)}"


class ApplyError(GitopsdError):
    reason = "ApplyFailed"

    def __init__(
        self,
        message: str,
        *,
        rejections: Sequence[Rejection] = (),
        inventory: Inventory | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.rejections = tuple(rejections)
        self.inventory = inventory


class InvalidOwner(ApplyError):
    reason = "InvalidOwner"


class DryRunFailed(ApplyError):
    reason = "DryRunFailed"


class OwnershipConflict(ApplyError):
    reason = "OwnershipConflict"


class FieldConflict(ApplyError):
    reason = "FieldConflict"


class DependencyNotReady(ApplyError):
    reason = "DependencyNotReady"
    transient = True  # a CRD or Namespace not ready in time: it may be on the next try


class WriteFailed(ApplyError):
    reason = "ApplyFailed"


class PruneFailed(ApplyError):
    """Some objects could not be deleted. ``result`` is the sync's result (everything else was done)."""

    reason = "PruneFailed"

    def __init__(self, message: str, *, rejections: Sequence[Rejection], result: SyncResult) -> None:
        super().__init__(message, rejections=rejections, inventory=result.inventory)
        self.result = result


def describe(rejections: Sequence[Rejection], headline: str) -> str:
    """``headline: a.yaml: Kind/ns/name: reason; b.yaml: ...`` with at most ``MESSAGE_LIMIT`` named."""
    shown = "; ".join(str(r) for r in rejections[:MESSAGE_LIMIT])
    more = len(rejections) - MESSAGE_LIMIT
    return f"{headline}: {shown}" + (f"; and {more} more" if more > 0 else "")


def rejected(rejections: Sequence[Rejection], total: int, *, inventory: Inventory | None = None) -> ApplyError:
    """The error for objects refused before anything (more) was written.

    One kind of refusal gives its own class (all ownership conflicts → ``OwnershipConflict``);
    a mix is a ``DryRunFailed`` whose message still names each object's own reason.
    """
    kinds = {r.reason for r in rejections}
    cls: type[ApplyError] = DryRunFailed
    if kinds == {OwnershipConflict.reason}:
        cls = OwnershipConflict
    elif kinds == {FieldConflict.reason}:
        cls = FieldConflict
    written = "only the CRDs and Namespaces of this bundle were applied" if inventory is not None else "nothing applied"
    noun = "object" if total == 1 else "objects"
    headline = f"{len(rejections)} of {total} {noun} refused, {written}"
    return cls(describe(rejections, headline), rejections=rejections, inventory=inventory)
