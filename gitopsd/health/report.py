"""The verdict over a set of objects after a health wait, with the first one not ready named."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from gitopsd.health.status import Health, Status
from gitopsd.model import ObjectRef


class Overall(enum.StrEnum):
    HEALTHY = "Healthy"  # every object Current
    PROGRESSING = "Progressing"  # not all Current yet, still within the timeout (progress reports)
    FAILED = "Failed"  # an object is Failed: waiting longer will not help
    TIMED_OUT = "TimedOut"  # the timeout passed with objects not Current


@dataclass(frozen=True, slots=True)
class ObjectHealth:
    ref: ObjectRef
    health: Health

    @property
    def status(self) -> Status:
        return self.health.status

    def __str__(self) -> str:
        return f"{self.ref}: {self.health.message}"


@dataclass(frozen=True, slots=True)
class HealthReport:
    overall: Overall
    objects: tuple[ObjectHealth, ...] = ()
    elapsed: float = 0.0

    @property
    def healthy(self) -> bool:
        return self.overall is Overall.HEALTHY

    @property
    def not_ready(self) -> list[ObjectHealth]:
        """Objects not Current, the worst first (Failed before NotFound before InProgress)."""
        pending = [o for o in self.objects if o.status is not Status.CURRENT]
        return sorted(pending, key=lambda o: (-o.status.rank, o.ref))

    @property
    def first_not_ready(self) -> ObjectHealth | None:
        pending = self.not_ready
        return pending[0] if pending else None

    @property
    def message(self) -> str:
        """``Deployment.apps/dev/web: 0 of 3 replicas available (and 2 more not ready)``."""
        total = len(self.objects)
        if self.overall is Overall.HEALTHY:
            return f"{total} object{'s' if total != 1 else ''} healthy"
        pending = self.not_ready
        if not pending:
            return f"{self.overall}"
        text = str(pending[0])
        if len(pending) > 1:
            text += f" (and {len(pending) - 1} more not ready)"
        if self.overall is Overall.TIMED_OUT:
            # A zero timeout is one look (the reconciler re-checking a failed gate), not a wait.
            prefix = f"timed out after {_seconds(self.elapsed)}" if self.elapsed >= 1 else "not ready"
            return f"{prefix}: {text}"
        return text


def summarize(objects: Iterable[ObjectHealth], *, deadline_passed: bool, elapsed: float = 0.0) -> HealthReport:
    items = tuple(sorted(objects, key=lambda o: o.ref))
    statuses = {o.status for o in items}
    if Status.FAILED in statuses:
        overall = Overall.FAILED
    elif statuses <= {Status.CURRENT}:
        overall = Overall.HEALTHY
    elif deadline_passed:
        overall = Overall.TIMED_OUT
    else:
        overall = Overall.PROGRESSING
    return HealthReport(overall, items, elapsed)


def _seconds(value: float) -> str:
    whole = round(value)
    return f"{whole // 60}m{whole % 60}s" if whole >= 60 else f"{value:.0f}s"
