"""``spec.notify``: which notifiers hear about an Environment, for which events, from which severity.

::

    notify:
      - notifier: team-slack                     # a name from the daemon config's notifiers
        events: [deploy.failed, rollback.performed, revision.held]   # default: every event
        severity: error                          # info (default): every event; error: failures only

A notifier named here but missing from the daemon config is not a spec error (the spec does
not know the daemon's config): the daemon logs it once and delivers to the others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, cast

from gitopsd.errors import SpecError
from gitopsd.lifecycle import EVENT_TYPES, EventType, LifecycleEvent, Severity

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_SUBSCRIPTIONS = 32


@dataclass(frozen=True, slots=True)
class Subscription:
    notifier: str
    events: frozenset[EventType] | None = None  # None: every event
    severity: Severity = "info"

    def wants(self, event: LifecycleEvent) -> bool:
        if self.events is not None and event.type not in self.events:
            return False
        return self.severity == "info" or event.severity == "error"


def parse_subscriptions(raw: Any) -> tuple[Subscription, ...]:
    """Read ``spec.notify``; raise ``SpecError`` naming the first bad field."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise SpecError("notify", f"must be a list (got {type(raw).__name__})")
    if len(raw) > MAX_SUBSCRIPTIONS:
        raise SpecError("notify", f"at most {MAX_SUBSCRIPTIONS} subscriptions (got {len(raw)})")
    result: list[Subscription] = []
    for index, item in enumerate(raw):
        where = f"notify[{index}]"
        if not isinstance(item, dict):
            raise SpecError(where, f"must be an object (got {type(item).__name__})")
        unknown = sorted(set(item) - {"notifier", "events", "severity"})
        if unknown:
            raise SpecError(f"{where}.{unknown[0]}", "unknown field (known: notifier, events, severity)")
        name = item.get("notifier")
        if not isinstance(name, str) or not _NAME.match(name) or len(name) > 63:
            raise SpecError(f"{where}.notifier", f"required, a notifier name from the daemon config (got {name!r})")
        if any(s.notifier == name for s in result):
            raise SpecError("notify", f"lists a notifier twice ({name!r})")
        result.append(Subscription(name, _events(item.get("events"), where), _severity(item.get("severity"), where)))
    return tuple(result)


def _events(raw: Any, where: str) -> frozenset[EventType] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        raise SpecError(f"{where}.events", "must be a non-empty list of event types (omit it for every event)")
    for number, value in enumerate(raw):
        if value not in EVENT_TYPES:
            raise SpecError(f"{where}.events[{number}]", f"unknown event {value!r} (one of {', '.join(EVENT_TYPES)})")
    return frozenset(cast(list[EventType], raw))


def _severity(raw: Any, where: str) -> Severity:
    if raw is None:
        return "info"
    if raw not in ("info", "error"):
        raise SpecError(f"{where}.severity", f"must be info or error (got {raw!r})")
    return cast(Severity, raw)
