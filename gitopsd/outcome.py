"""What a reconcile step works on and what it produces, shared by the reconciler's modules.

``reconcile`` (one sync), ``rollout`` (apply one release and judge it) and ``rollback``
(restore, hold) are one unit split by size; the values they pass each other live here so that
none of them imports another's internals at run time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal

from gitopsd.apply import HealthReport
from gitopsd.errors import GitopsdError
from gitopsd.model import Revision
from gitopsd.spec import API_VERSION, KIND, Environment

Result_ = Literal["applied", "unchanged", "failed", "suspended", "preempted"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one reconcile did, for the daemon, the CLI and the summary log line."""

    result: Result_
    revision: Revision | None = None
    changed: int = 0
    pruned: int = 0
    drift: int = 0
    duration: float = 0.0
    error: GitopsdError | None = None
    health: HealthReport | None = None
    status: dict[str, Any] = field(default_factory=dict)  # the Environment's status after this reconcile
    release: int | None = None  # the current release afterwards
    verdict: str | None = None  # that release's result (Healthy, Failed, ...)
    message: str = ""
    #: Come back sooner than the interval (seconds): a verification sample is due.
    requeue_after: float | None = None


#: Wraps a wait that needs no worker (the health gate); the daemon's worker steps aside meanwhile.
Aside = Callable[[], AbstractAsyncContextManager[None]]


def stay() -> AbstractAsyncContextManager[None]:
    """The ``Aside`` of a reconcile run outside the daemon's worker pool: nothing to give up."""
    return contextlib.nullcontext()


@dataclass(slots=True)
class SyncState:
    """The Environment being reconciled and its status as last written."""

    env: Environment
    status: dict[str, Any]
    aside: Aside = stay


def involved(env: Environment) -> dict[str, Any]:
    """The Environment as an Event's involvedObject."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": env.name, "namespace": env.namespace, "uid": env.uid},
    }


def fields_of(outcome: Outcome) -> dict[str, Any]:
    return {name: getattr(outcome, name) for name in Outcome.__dataclass_fields__}


def parse_revision(text: str) -> Revision | None:
    try:
        return Revision.parse(text)
    except ValueError:
        return None
