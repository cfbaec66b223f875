"""Drift, as the daemon hears of it: a managed object edited or deleted by someone else.

The cluster's watch cache reports every change of a labelled object; ``apply.edits`` tells
which of them took something of ours away. For those, ``DriftTrigger`` queues the owning
Environment at once (without a fresh ``ls-remote``: the source did not move), counts the event
(``gitopsd_drift_events_total``) and logs which object moved, so the edit is reverted in
seconds rather than at the next interval.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from gitopsd.apply import edits
from gitopsd.kube.reflector import Change
from gitopsd.metrics import Metrics
from gitopsd.model import FIELD_MANAGER

log = structlog.get_logger("gitopsd.daemon")


class DriftTrigger:
    """A watch cache subscriber; ``trigger(key)`` queues ``namespace/name`` and says whether it is served here."""

    def __init__(self, trigger: Callable[[str], bool], metrics: Metrics, *, manager: str = FIELD_MANAGER) -> None:
        self.trigger = trigger
        self.metrics = metrics
        self.manager = manager

    def __call__(self, change: Change) -> None:
        owner = edits.edited_owner(change, self.manager)
        if owner is None:
            return
        key = edits.owner_key(owner)
        if self.trigger(key):
            meta = change.object.get("metadata") or {}
            self.metrics.drift_events.labels(owner).inc()
            log.info(
                "managed object changed in the cluster; reconciling",
                environment=key,
                object=f"{change.resource.kind}/{meta.get('namespace') or ''}/{meta.get('name')}".replace("//", "/"),
                change="deleted" if change.new is None else "edited",
            )
