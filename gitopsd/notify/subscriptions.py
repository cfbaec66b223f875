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

from dataclasses import dataclass
from typing import Any, cast

from gitopsd.errors import SpecError
from gitopsd.fields import SPEC
from gitopsd.lifecycle import EVENT_TYPES, EventType, LifecycleEvent, Severity

MAX_SUBSCRIPTIONS = 32
_FIELDS = ("notifier", "events", "severity")
_SEVERITIES: tuple[Severity, ...] = ("info", "error")


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
    items = SPEC.items(raw, "notify", what="a list of subscriptions")
    if len(items) > MAX_SUBSCRIPTIONS:
        raise SpecError("notify", f"at most {MAX_SUBSCRIPTIONS} subscriptions (got {len(items)})")
    result: list[Subscription] = []
    for index, item in enumerate(items):
        where = f"notify[{index}]"
        fields = SPEC.mapping(item, where, allowed=_FIELDS)
        name = SPEC.dns_label(fields.get("notifier"), f"{where}.notifier", what="a notifier name")
        if any(s.notifier == name for s in result):
            raise SpecError("notify", f"lists a notifier twice ({name!r})")
        result.append(
            Subscription(name, _events(fields.get("events"), where), _severity(fields.get("severity"), where))
        )
    return tuple(result)


def _events(raw: Any, where: str) -> frozenset[EventType] | None:
    if raw is None:
        return None
    path = f"{where}.events"
    values = SPEC.items(raw, path, what="a list of event types")
    if not values:
        raise SpecError(path, "must not be empty (omit it for every event)")
    return frozenset(cast(EventType, SPEC.choice(value, f"{path}[{n}]", EVENT_TYPES)) for n, value in enumerate(values))


def _severity(raw: Any, where: str) -> Severity:
    if raw is None:
        return "info"
    return cast(Severity, SPEC.choice(raw, f"{where}.severity", _SEVERITIES))
