"""Queue backlogs (RabbitMQ, Redis, SQS) as external metrics: the port the server reads them through.

This module is the contract between the serving side (cache, routes) and the queue readers.
The serving side only needs: parse the ``queues:`` section of the config, open one reader per
entry, and ask it for the current backlog. How each broker is asked lives in the submodules.

SCAFFOLD: the types and signatures below are the agreed interface; the implementations are
being written (see the queue-sources work). ``open_reader`` raises until then.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import aiohttp

QueueKind = Literal["rabbitmq", "redis", "sqs"]


class QueueError(Exception):
    """Reading a backlog failed. ``upstream`` names the broker (never with credentials)."""

    def __init__(self, upstream: str, message: str) -> None:
        super().__init__(f"{upstream}: {message}")
        self.upstream = upstream


class QueueConfigError(ValueError):
    """A ``queues:`` entry is invalid; the message names the entry (index and name) and the field."""


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """One entry of ``queues:``: an external metric ``name`` backed by one broker queue."""

    name: str  # the external metric name
    namespace: str | None  # None: served in every namespace
    labels: Mapping[str, str]  # metric labels, matched by metricLabelSelector
    kind: QueueKind
    upstream: str  # human-readable broker + queue for messages, credentials stripped
    settings: Mapping[str, Any] = field(default_factory=dict)  # kind-specific, validated


@dataclass(frozen=True, slots=True)
class QueueSample:
    """A backlog length and when the broker reported it (unix seconds)."""

    value: float
    timestamp: float


class QueueReader(Protocol):
    """Reads one queue's backlog. Safe to call from one task at a time."""

    config: QueueConfig

    async def read(self) -> QueueSample:
        """The current backlog; raises ``QueueError`` naming the upstream."""
        ...

    async def close(self) -> None: ...


def parse_queues(raw: Sequence[Any] | None, *, where: str = "queues") -> list[QueueConfig]:
    """Validate the ``queues:`` section; raise ``QueueConfigError`` naming entry and field."""
    raise NotImplementedError("queue sources are not implemented yet")


async def open_reader(config: QueueConfig, session: aiohttp.ClientSession) -> QueueReader:
    """A reader for ``config``; HTTP brokers share ``session``."""
    raise NotImplementedError("queue sources are not implemented yet")
