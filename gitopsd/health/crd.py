"""CustomResourceDefinition: Current once Established; Failed when its names clash with
another type's (``NamesAccepted`` False) or it cannot be established for another reason."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitopsd.health.status import Health, condition


def assess(obj: Mapping[str, Any]) -> Health:
    names = condition(obj, "NamesAccepted")
    if names is not None and names.get("status") == "False":
        return Health.failed(
            str(names.get("reason") or "NamesNotAccepted"), str(names.get("message") or "names not accepted")
        )
    established = condition(obj, "Established")
    if established is not None:
        if established.get("status") == "True":
            return Health.current("Established")
        if established.get("status") == "False" and established.get("reason") != "Installing":
            reason = str(established.get("reason") or "NotEstablished")
            return Health.failed(reason, str(established.get("message") or "not established"))
    return Health.progressing("Installing", "not yet Established")
