"""Rules that hold for any kind, applied before the kind's own (kstatus' generic checks).

* being deleted → Terminating;
* ``status.observedGeneration`` behind ``metadata.generation`` → InProgress (the controller has
  not seen the latest spec, so whatever else the status says is about an older one);
* the standard conditions ``Reconciling=True`` → InProgress and ``Stalled=True`` → Failed.

``ready_condition`` is the fallback for kinds without rules of their own: a ``Ready``
condition decides (True → Current, otherwise InProgress with its message).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitopsd.health.status import Health, Status, condition, field


def check(obj: Mapping[str, Any]) -> Health | None:
    """A verdict from the generic rules alone, or None to go on with the kind's rules."""
    meta = obj.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return Health(Status.TERMINATING, "being deleted", "Terminating")
    generation = meta.get("generation")
    observed = field(obj, "status.observedGeneration")
    if isinstance(generation, int) and isinstance(observed, int) and observed != generation:
        return Health.progressing(
            "LatestGenerationNotObserved",
            f"generation {generation} not yet observed by its controller (observed {observed})",
        )
    reconciling = condition(obj, "Reconciling")
    if reconciling is not None and reconciling.get("status") == "True":
        return Health.progressing(str(reconciling.get("reason") or "Reconciling"), _text(reconciling, "reconciling"))
    stalled = condition(obj, "Stalled")
    if stalled is not None and stalled.get("status") == "True":
        return Health.failed(str(stalled.get("reason") or "Stalled"), _text(stalled, "stalled"))
    return None


def ready_condition(obj: Mapping[str, Any]) -> Health | None:
    ready = condition(obj, "Ready")
    if ready is None:
        return None
    if ready.get("status") == "True":
        return Health.current("Ready")
    return Health.progressing(str(ready.get("reason") or "NotReady"), _text(ready, "not Ready"))


def _text(cond: Mapping[str, Any], fallback: str) -> str:
    return str(cond.get("message") or cond.get("reason") or fallback)
