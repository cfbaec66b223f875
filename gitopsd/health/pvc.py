"""PersistentVolumeClaim: Current once Bound to a volume."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitopsd.health.status import Health, field


def assess(obj: Mapping[str, Any]) -> Health:
    phase = field(obj, "status.phase", "Pending")
    if phase == "Bound":
        return Health.current("Bound")
    if phase == "Lost":
        return Health.failed("ClaimLost", "its volume is lost")
    return Health.progressing("NotBound", f"not Bound (phase {phase})")
