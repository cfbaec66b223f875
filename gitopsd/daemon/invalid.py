"""An Environment whose spec is refused: its status says why (Stalled), and when to look again."""

from __future__ import annotations

from typing import Any

import structlog

from gitopsd import environments, status
from gitopsd.daemon.settings import INVALID_RETRY
from gitopsd.errors import SpecError
from gitopsd.events import EventRecorder
from gitopsd.fields import SPEC
from gitopsd.informer import key_of
from gitopsd.kube import KubeAPI, KubeError

log = structlog.get_logger("gitopsd.daemon")


async def report_invalid(kube: KubeAPI, recorder: EventRecorder, obj: dict[str, Any], exc: SpecError) -> None:
    """Write ``exc`` to ``obj``'s status (Ready False, Stalled) and an Event, once per change."""
    meta = obj.get("metadata") or {}
    old = dict(obj.get("status") or {})
    new = status.failed(
        old, int(meta.get("generation") or 0), exc.reason, exc.message, environments.now_rfc3339(), stalled=True
    )
    log.warning("invalid Environment", environment=key_of(obj), error=exc.message)
    if new != old:
        try:
            await environments.write_status(kube, meta["namespace"], meta["name"], new)
            await recorder.record(obj, "Warning", exc.reason, exc.message)
        except KubeError as write_error:
            log.warning("status not written", environment=key_of(obj), error=str(write_error))


def interval_of(obj: dict[str, Any]) -> float:
    """When to look again at an Environment whose spec was refused: its interval if that one reads, else a minute.

    An interval under 1s counts as unreadable, as the CRD refuses it.
    """
    spec = obj.get("spec")
    try:
        return SPEC.duration((spec if isinstance(spec, dict) else {}).get("interval", "1m"), "interval", at_least=1)
    except SpecError:
        return INVALID_RETRY
