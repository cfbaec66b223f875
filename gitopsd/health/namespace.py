"""Namespace: Current while Active (a Namespace being deleted is Terminating, see ``generic``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitopsd.health.status import Health, Status, field


def assess(obj: Mapping[str, Any]) -> Health:
    phase = field(obj, "status.phase", "Active")
    if phase == "Terminating":
        return Health(Status.TERMINATING, "being deleted", "Terminating")
    return Health.current(str(phase))
