"""The health vocabulary: kstatus' statuses, ranked, and one object's verdict.

The statuses are those of sigs.k8s.io/cli-utils' kstatus, so people who know Flux or
``kubectl wait``-style tooling read them the same way. The rank orders them from fine to worst,
for picking the one status that stands for a group of objects.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class Status(enum.StrEnum):
    CURRENT = "Current"  # reconciled and ready
    IN_PROGRESS = "InProgress"  # on its way (rolling out, not yet observed, pods not ready)
    TERMINATING = "Terminating"  # being deleted
    NOT_FOUND = "NotFound"
    UNKNOWN = "Unknown"  # could not be read
    FAILED = "Failed"  # will not get better by waiting (deadline exceeded, job failed)

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {
    Status.CURRENT: 0,
    Status.IN_PROGRESS: 1,
    Status.TERMINATING: 2,
    Status.NOT_FOUND: 3,
    Status.UNKNOWN: 4,
    Status.FAILED: 5,
}


def worst(statuses: Iterable[Status]) -> Status:
    return max(statuses, key=lambda s: s.rank, default=Status.CURRENT)


@dataclass(frozen=True, slots=True)
class Health:
    """One object's status, why (``reason``, CamelCase) and what is not ready (``message``)."""

    status: Status
    message: str
    reason: str = ""

    @property
    def ready(self) -> bool:
        return self.status is Status.CURRENT

    @classmethod
    def current(cls, message: str) -> Health:
        return cls(Status.CURRENT, message)

    @classmethod
    def progressing(cls, reason: str, message: str) -> Health:
        return cls(Status.IN_PROGRESS, message, reason)

    @classmethod
    def failed(cls, reason: str, message: str) -> Health:
        return cls(Status.FAILED, message, reason)


# -- reading raw objects (plain JSON dicts) ----------------------------------------------------


def field(obj: Mapping[str, Any], path: str, default: Any = None) -> Any:
    """``field(obj, "status.readyReplicas", 0)``: a nested value, or ``default`` when absent."""
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node or node[part] is None:
            return default
        node = node[part]
    return node


def count(obj: Mapping[str, Any], path: str, default: int = 0) -> int:
    value = field(obj, path, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in field(obj, "status.conditions", []) or []:
        if isinstance(cond, Mapping) and cond.get("type") == kind:
            return cond
    return None


def is_true(obj: Mapping[str, Any], kind: str) -> bool:
    cond = condition(obj, kind)
    return cond is not None and cond.get("status") == "True"
