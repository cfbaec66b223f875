"""What happened to an Environment, as events people are told about (Slack, webhooks, commit status).

The reconciler announces an event only on a state *transition* (a deploy starts, a revision
turns out unhealthy, a rollback happens), never on a steady-state reconcile, so an
Environment that stays broken is announced once. ``Announcer.announce`` must not block: the
notification side queues and delivers off the reconcile path.

Each event's ``id`` is derived from what happened (Environment uid, type, revision and the
reason), not from the clock, so a receiver can drop a duplicate.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal, Protocol

EventType = Literal[
    "deploy.started",
    "deploy.succeeded",
    "deploy.failed",
    "health.failed",
    "rollback.performed",
    "revision.held",
    "resumed",
    "freeze.blocked",
    "verification.failed",
]
EVENT_TYPES: tuple[EventType, ...] = (
    "deploy.started",
    "deploy.succeeded",
    "deploy.failed",
    "health.failed",
    "rollback.performed",
    "revision.held",
    "resumed",
    "freeze.blocked",
    "verification.failed",
)
Severity = Literal["info", "error"]
_ERRORS = frozenset({"deploy.failed", "health.failed", "rollback.performed", "revision.held", "verification.failed"})


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    type: EventType
    namespace: str
    environment: str
    uid: str
    revision: str | None  # "main@sha1:..." or None when no revision was resolved
    previous_revision: str | None
    reason: str
    message: str
    time: str  # RFC 3339
    source_url: str  # the repository, for commit-status notifiers
    release: int | None = None

    @property
    def severity(self) -> Severity:
        return "error" if self.type in _ERRORS else "info"

    @property
    def commit(self) -> str | None:
        """The commit sha of ``revision``, for commit statuses."""
        if not self.revision or "sha1:" not in self.revision:
            return None
        return self.revision.rpartition("sha1:")[2]

    @property
    def id(self) -> str:
        key = "\0".join((self.uid, self.type, self.revision or "", self.reason, str(self.release or "")))
        return hashlib.sha256(key.encode()).hexdigest()[:32]


class Announcer(Protocol):
    def announce(self, event: LifecycleEvent) -> None:
        """Queue ``event`` for delivery; never blocks, never raises."""
        ...


class NullAnnouncer:
    """Announces nothing (no notifiers configured)."""

    def announce(self, event: LifecycleEvent) -> None:
        return None


class RecordingAnnouncer:
    """Keeps every event (for tests of the reconciler and for ``--dry-run`` style tools)."""

    def __init__(self) -> None:
        self.events: list[LifecycleEvent] = []

    def announce(self, event: LifecycleEvent) -> None:
        self.events.append(event)
