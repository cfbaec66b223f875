"""What can go wrong reading a queue backlog, as one small exception tree.

The serving side turns every :class:`QueueError` into a 503 naming ``upstream``; the
subclasses say why, for logs, metrics and circuit breaking::

    QueueConfigError        a ``queues:`` entry is invalid (start-up, never at serving time)
    QueueError              reading a backlog failed; ``upstream`` names broker + queue
     ├── QueueUnreachable   no connection (refused, unknown host, TLS handshake)
     ├── QueueTimeout       connected or not, no answer within the entry's timeout
     ├── QueueAuthError     credentials missing, wrong, or not allowed to read the queue
     ├── QueueNotFound      the queue, vhost, stream or consumer group does not exist
     └── QueueBadResponse   the broker answered something unusable (5xx, wrong type, no stats)

Messages never carry credentials: ``upstream`` is built without userinfo, and
:func:`scrub` removes known secrets from anything a client library said.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

_MAX_DETAIL = 300


class QueueConfigError(ValueError):
    """A ``queues:`` entry is invalid; the message names the entry (index and name) and the field."""


class QueueError(Exception):
    """Reading a backlog failed. ``upstream`` names the broker (never with credentials)."""

    def __init__(self, upstream: str, message: str) -> None:
        super().__init__(f"{upstream}: {message}")
        self.upstream = upstream


class QueueUnreachable(QueueError):
    """No connection to the broker."""


class QueueTimeout(QueueError):
    """The broker did not answer in time."""


class QueueAuthError(QueueError):
    """Credentials are missing or wrong, or do not allow reading the queue."""


class QueueNotFound(QueueError):
    """The queue (or its vhost, stream or consumer group) does not exist."""


class QueueBadResponse(QueueError):
    """The broker answered, but not with a usable backlog."""


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` cut to a readable length, with every non-empty secret in it replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "..."


@asynccontextmanager
async def deadline(upstream: str, seconds: float) -> AsyncIterator[None]:
    """Bound everything one read does (credentials, connect, query) by the entry's timeout."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError as exc:
        raise QueueTimeout(upstream, f"no answer within {seconds:g}s") from exc
