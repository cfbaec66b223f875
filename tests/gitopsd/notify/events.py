"""LifecycleEvents for notification unit tests."""

from __future__ import annotations

from gitopsd.lifecycle import EventType, LifecycleEvent

SHA = "9ab1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9"
OLD = "77c0ffee00000000000000000000000000000000"


def event(
    type_: EventType = "deploy.succeeded",
    *,
    revision: str | None = f"main@sha1:{SHA}",
    previous: str | None = f"main@sha1:{OLD}",
    reason: str = "ReconciliationSucceeded",
    source_url: str = "git@github.com:Org/Shop.git",
) -> LifecycleEvent:
    return LifecycleEvent(
        type=type_,
        namespace="ops",
        environment="prod",
        uid="uid-1",
        revision=revision,
        previous_revision=previous,
        reason=reason,
        message=f"{type_} for {revision}",
        time="2026-05-01T10:00:00Z",
        source_url=source_url,
        release=7,
    )
