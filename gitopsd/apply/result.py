"""What one sync did, object by object, for status messages, Events, metrics and the CLI."""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field

from gitopsd.apply.inventory import Inventory
from gitopsd.model import ObjectRef


class Action(enum.StrEnum):
    CREATED = "created"
    CONFIGURED = "configured"  # the desired state changed (a new commit, a spec change)
    UNCHANGED = "unchanged"
    DRIFT_CORRECTED = "drift-corrected"  # the live object was changed by hand; restored
    PRUNED = "pruned"
    PRUNE_SKIPPED = "prune-skipped"  # left Git but kept; ``detail`` says why


#: Actions that wrote the object.
WRITES = frozenset({Action.CREATED, Action.CONFIGURED, Action.DRIFT_CORRECTED})


@dataclass(frozen=True, slots=True)
class ObjectResult:
    """One object's outcome. ``fields`` are the paths that changed (``.spec.replicas``) when known."""

    ref: ObjectRef
    action: Action
    origin: str = ""
    fields: tuple[str, ...] = ()
    detail: str = ""

    def __str__(self) -> str:
        text = f"{self.ref} {self.action}"
        if self.fields:
            text += f" ({', '.join(self.fields)})"
        if self.detail:
            text += f": {self.detail}"
        return text


@dataclass(frozen=True, slots=True)
class SyncResult:
    """The new inventory, every object's outcome, and what it cost (requests to the API server)."""

    inventory: Inventory
    objects: tuple[ObjectResult, ...] = ()
    requests: int = 0
    writes: int = 0
    duration: float = 0.0
    #: True when the render was empty and ``allow_empty`` was off: nothing applied or pruned.
    empty_render: bool = False
    requests_by_kind: dict[str, int] = field(default_factory=dict)
    #: Seconds per step: observe, dry_run, write_<stage>, settle_and_deferred_dry_run, prune.
    timings: dict[str, float] = field(default_factory=dict)

    def with_action(self, action: Action) -> list[ObjectResult]:
        return [o for o in self.objects if o.action is action]

    def action_counts(self) -> dict[str, int]:
        counts = Counter(o.action.value for o in self.objects)
        return {a.value: counts.get(a.value, 0) for a in Action}

    @property
    def changed_count(self) -> int:
        """Objects created or configured (a drift correction is counted apart)."""
        return sum(1 for o in self.objects if o.action in (Action.CREATED, Action.CONFIGURED))

    @property
    def drift_count(self) -> int:
        return sum(1 for o in self.objects if o.action is Action.DRIFT_CORRECTED)

    @property
    def pruned_count(self) -> int:
        return sum(1 for o in self.objects if o.action is Action.PRUNED)

    def drifted(self) -> list[ObjectRef]:
        return [o.ref for o in self.objects if o.action is Action.DRIFT_CORRECTED]

    def summary(self) -> str:
        """``3 created, 1 configured, 1 drift-corrected, 2 pruned, 40 unchanged``."""
        counts = self.action_counts()
        parts = [f"{n} {name}" for name, n in counts.items() if n]
        return ", ".join(parts) if parts else "nothing to apply"
