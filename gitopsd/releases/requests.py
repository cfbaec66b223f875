"""Requests people make of the daemon, as annotations on the Environment (like ``flux reconcile``).

The CLI never applies a release itself: it writes a request and the daemon carries it out with
its own apply (so a user needs only the right to patch Environments) and reports in status::

    gitopsd.dev/rollback:     {"token": T, "to": 7 | null, "by": "alice", "at": "<RFC 3339>"}
    gitopsd.dev/resume:       {"token": T, "by": "alice"}        # clears a hold
    gitopsd.dev/force-freeze: {"token": T, "by": "alice"}        # T = the gitopsd.dev/requestedAt it rides with

Each carries a unique token; the daemon writes the token it handled to status
(``lastHandledRollback.token``, ``lastHandledResume``), which is what ``--wait`` follows and
how a request is told to be pending. A value that is not such JSON is handled as refused, with
the reason in status, never ignored silently.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ROLLBACK = "gitopsd.dev/rollback"
RESUME = "gitopsd.dev/resume"
FORCE_FREEZE = "gitopsd.dev/force-freeze"


@dataclass(frozen=True, slots=True)
class Request:
    token: str
    by: str = "unknown"
    to: int | None = None
    at: str = ""
    error: str | None = None  # the annotation could not be read: refuse, saying why

    def to_annotation(self) -> str:
        body: dict[str, Any] = {"token": self.token, "by": self.by}
        if self.at:
            body["at"] = self.at
        if self.to is not None:
            body["to"] = self.to
        return json.dumps(body, separators=(",", ":"))


def new_token() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ") + "-" + uuid.uuid4().hex[:8]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(annotations: Mapping[str, str], key: str) -> Request | None:
    raw = annotations.get(key)
    if raw is None or raw == "":
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("token"), str) or not body["token"]:
        token = "invalid-" + hashlib.sha256(raw.encode()).hexdigest()[:16]
        return Request(token, error=f"annotation {key} is not a request written by gitopsd: {raw[:80]!r}")
    to = body.get("to")
    if to is not None and (isinstance(to, bool) or not isinstance(to, int)):
        by = str(body.get("by") or "unknown")
        return Request(body["token"], by, error=f"annotation {key}: 'to' must be a release number (got {to!r})")
    return Request(body["token"], str(body.get("by") or "unknown"), to, str(body.get("at") or ""))


def pending_rollback(annotations: Mapping[str, str], status: Mapping[str, Any]) -> Request | None:
    """The rollback request not handled yet, if any."""
    request = parse(annotations, ROLLBACK)
    handled = (status.get("lastHandledRollback") or {}).get("token")
    return request if request is not None and request.token != handled else None


def pending_resume(annotations: Mapping[str, str], status: Mapping[str, Any]) -> Request | None:
    request = parse(annotations, RESUME)
    return request if request is not None and request.token != status.get("lastHandledResume") else None


def forced_freeze(annotations: Mapping[str, str], requested_at: str | None) -> Request | None:
    """The freeze override riding with the sync request being handled (an override counts once)."""
    request = parse(annotations, FORCE_FREEZE)
    if request is None or request.error or not requested_at or request.token != requested_at:
        return None
    return request


def token_of(annotations: Mapping[str, str] | None, key: str) -> str | None:
    request = parse(annotations or {}, key)
    return request.token if request else None
